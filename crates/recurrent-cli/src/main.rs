//! `recurrent`: train, evaluate and use recurrent models from the command line.
//!
//! This file parses the command line, sets up the process (allocator, thread pool, Ctrl-C)
//! and dispatches to the subcommands in `recurrent_cli::cmd`, one module each.

use anyhow::Result;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use recurrent_cli::cmd::{self, Ctx};
use std::process::ExitCode;

/// mimalloc keeps freed memory for reuse: the training step allocates and frees buffers of
/// tens of megabytes, which glibc maps and unmaps every time (page faults took 11% of a step).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "recurrent",
    version,
    about = "Recurrent neural networks (RNN, LSTM, GRU) with PyTorch's semantics, fast on the CPU"
)]
struct Cli {
    /// Worker threads (default: all cores).
    #[arg(long, global = true, env = "RECURRENT_THREADS")]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train an IMDB sentiment classifier (the course's lab).
    Train(Box<cmd::train::Args>),
    /// Pretrain a word-level LSTM language model on IMDB's own reviews (for `train --init-from`).
    Pretrain(Box<cmd::pretrain::Args>),
    /// Evaluate a trained model: accuracy, precision, recall, F1, confusion matrix.
    Eval(cmd::eval::Args),
    /// Classify texts with a trained model.
    Predict(cmd::predict::Args),
    /// Download or inspect datasets.
    #[command(subcommand)]
    Data(cmd::data::Command),
    /// Time the speed cases (compare with scripts/bench_torch.py and bench_keras.py).
    Bench(cmd::bench::Args),
    /// Forecast a univariate time series (CSV) against naive and ETS baselines; predict with a trained model.
    Forecast(Box<cmd::forecast::Args>),
    /// Character-level language model: train on a text file, sample from it.
    #[command(subcommand)]
    Charlm(cmd::charlm::Command),
    /// Encoder-decoder with attention: train on your tab-separated source/target pairs (or a built-in task), translate.
    Seq2seq(cmd::seq2seq::Args),
    /// Measure the vanishing gradient: ||dL/dh_t|| over time for RNN, LSTM and GRU.
    Diagnose(cmd::diagnose::Args),
}

/// Keep freed memory committed instead of returning it to the OS after a delay: training
/// reuses the same large buffers every step, and re-faulting them cost 8% of a step.
fn keep_freed_memory() {
    /// `mi_option_purge_delay` in mimalloc v3's `mi_option_e` (libmimalloc-sys 0.1.49).
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: sets a mimalloc option; valid at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

fn run() -> Result<ExitCode> {
    keep_freed_memory();
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Some(t) = cli.threads {
        recurrent_cli::validate::size("--threads", t, 4096)?;
    }
    recurrent::init_thread_pool(cli.threads).map_err(anyhow::Error::msg)?;
    let ctx = Ctx::new(Cli::command(), matches, rayon::current_num_threads());
    recurrent_cli::interrupt::install_handler()?;
    match cli.command {
        Command::Train(a) => cmd::train::run(*a, &ctx),
        Command::Pretrain(a) => cmd::pretrain::run(*a, &ctx),
        Command::Eval(a) => cmd::eval::run(a, &ctx),
        Command::Predict(a) => cmd::predict::run(a, &ctx),
        Command::Data(c) => cmd::data::run(c, &ctx),
        Command::Bench(a) => cmd::bench::run(a, &ctx),
        Command::Forecast(a) => cmd::forecast::run(*a, &ctx),
        Command::Charlm(c) => cmd::charlm::run(c, &ctx),
        Command::Seq2seq(a) => cmd::seq2seq::run(a, &ctx),
        Command::Diagnose(a) => cmd::diagnose::run(a, &ctx),
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
