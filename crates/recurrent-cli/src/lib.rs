//! The `recurrent` command-line tool's library: the applications (the IMDB sentiment lab and
//! its siblings), checkpoints, metrics, plots and data location.

pub mod alloc;
pub mod bench;
pub mod checkpoint;
pub mod datapath;
pub mod metrics;
pub mod plot;
pub mod sentiment;
