//! The subcommands of `recurrent`, one module each: its clap arguments (`Args`, derived; where
//! the application has a settings struct, that struct is flattened into them) beside its
//! handler `run(args, ctx) -> Result<ExitCode>`. `main.rs` parses the command line, sets up
//! the process (thread pool, Ctrl-C) and dispatches here.

pub mod bench;
pub mod charlm;
pub mod data;
pub mod diagnose;
pub mod eval;
pub mod forecast;
pub mod predict;
pub mod pretrain;
pub mod seq2seq;
pub mod train;

use crate::resume::{given_options, Given};
use clap::{ArgMatches, Command};

/// What every handler gets beside its own arguments: the process's settings and the parsed
/// command line (to tell the options given explicitly from defaults).
pub struct Ctx {
    /// The worker threads of the pool.
    pub threads: usize,
    /// The whole command-line interface, built.
    command: Command,
    /// The whole command line, parsed.
    matches: ArgMatches,
}

impl Ctx {
    /// The context of a run of `command` (the CLI's, unbuilt) that parsed as `matches`.
    pub fn new(mut command: Command, matches: ArgMatches, threads: usize) -> Ctx {
        command.build();
        Ctx {
            threads,
            command,
            matches,
        }
    }

    /// The options given explicitly to the subcommand at `path` (`["charlm", "train"]`).
    pub fn given(&self, path: &[&str]) -> Vec<Given> {
        let sub = path.iter().fold(&self.command, |c, name| {
            c.find_subcommand(name).expect("a subcommand of the CLI")
        });
        let m = path.iter().fold(&self.matches, |m, name| {
            m.subcommand_matches(name)
                .expect("the subcommand that was parsed")
        });
        given_options(m, sub)
    }
}
