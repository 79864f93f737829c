//! Ctrl-C: the one flag every training loop polls, and the handler that sets it.
//!
//! The first Ctrl-C asks the running job to stop at its next batch boundary (the training
//! loops save a checkpoint there and exit with status 130); a second one exits at once,
//! without saving. Nothing here saves anything: each loop decides what stopping means for it.

use anyhow::{Context, Result};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by the Ctrl-C handler.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Install the Ctrl-C handler (once per process).
pub fn install_handler() -> Result<()> {
    ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            eprintln!("\nInterrupted again: exiting without saving.");
            std::process::exit(130);
        }
        eprintln!("\nInterrupt: saving a checkpoint at the next batch boundary (Ctrl-C again to quit now).");
    })
    .context("installing the Ctrl-C handler")
}

/// Whether Ctrl-C has been pressed: the caller should stop at this batch boundary.
pub fn requested() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}
