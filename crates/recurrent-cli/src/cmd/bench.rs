//! `recurrent bench`: time the speed cases (compare with `scripts/bench_torch.py` and
//! `bench_keras.py`), and optionally the GEMM ceiling.

use super::Ctx;
use crate::bench::{self, BenchOptions};
use anyhow::Result;
use std::path::PathBuf;
use std::process::ExitCode;

/// `recurrent bench`'s arguments.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    options: BenchOptions,
    /// Write the rows as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also measure the GEMM ceiling at the imdb shapes, and print each case's share of the
    /// square-GEMM rate.
    #[arg(long)]
    gemm: bool,
}

/// Run the cases, printing each row as it finishes, then the table.
pub fn run(args: Args, _ctx: &Ctx) -> Result<ExitCode> {
    let opts = args.options;
    opts.validate()?;
    eprintln!(
        "recurrent bench: {} threads, step kernel {}, activations {}, denormals flushed: {}",
        rayon::current_num_threads(),
        recurrent::runtime::step_kernel(),
        recurrent::runtime::instruction_set(),
        recurrent::flush_denormals()
    );
    let mut square = None;
    if args.gemm {
        for (name, gf) in bench::gemm_ceiling() {
            println!("gemm  {name:<50} {gf:>7.1} GFLOP/s");
            if name.starts_with("square") {
                square = Some(gf);
            }
        }
    }
    let mut rows = bench::run(&opts, &mut |r| {
        eprint!(
            "{}",
            bench::table(std::slice::from_ref(r))
                .lines()
                .nth(1)
                .map(|l| format!("{l}\n"))
                .unwrap_or_default()
        )
    })?;
    if let Some(sq) = square {
        for r in &mut rows {
            r.share_of_square_gemm = Some(r.gflops / sq);
        }
    }
    println!("{}", bench::table(&rows));
    if let Some(p) = args.json {
        recurrent::io::write_atomic(&p, serde_json::to_string_pretty(&rows)?.as_bytes())?;
    }
    Ok(ExitCode::SUCCESS)
}
