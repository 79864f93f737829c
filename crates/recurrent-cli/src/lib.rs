//! The `recurrent` command-line tool's library: the applications (the IMDB sentiment lab and
//! its siblings), the subcommands that run them (`cmd`), and what they share: the cell a user
//! picks, the training step, Ctrl-C, checkpoints, metrics, plots and data location.

#![warn(missing_docs)]

pub mod bench;
pub mod cell;
pub mod charlm;
pub mod checkpoint;
pub mod cmd;
pub mod datapath;
pub mod diagnose;
pub mod forecast;
pub mod interrupt;
pub mod metrics;
pub mod plot;
pub mod pretrain;
pub mod resume;
pub mod rundir;
pub mod sentiment;
pub mod seq2seq;
pub mod tbptt;
pub mod training;
pub mod validate;
