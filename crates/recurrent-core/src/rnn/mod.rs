//! Device-neutral recurrent types: which recurrence a layer computes ([`RnnMode`]), the time
//! structure of a packed batch ([`Steps`]) and the sizes of a layer ([`RnnDims`]); and
//! [`host`], one recurrent layer's forward and backward pass over host memory, for callers
//! that hold their own buffers (the autograd op, the Python package).

mod dims;
pub mod host;
mod mode;
mod steps;

pub use dims::RnnDims;
pub use mode::RnnMode;
pub use steps::Steps;
