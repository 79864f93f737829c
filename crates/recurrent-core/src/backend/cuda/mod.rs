//! The CUDA backend, behind the `cuda` feature: a stub until it is written.
//!
//! It compiles the seams a real backend fills (see `docs/architecture.md`): a storage variant
//! for device memory, and the answer to "is this device usable". Its storage type has no
//! values, so no tensor can live on a CUDA device and no code path reaches CUDA memory; every
//! request for the device returns [`crate::Error::DeviceUnavailable`] with a message that says
//! the backend is not written yet.

/// Memory on a CUDA device. No value of this type can exist until the backend does.
#[derive(Debug, Clone)]
pub enum CudaStorage {}

impl CudaStorage {
    /// Statically unreachable: there is no CUDA memory to act on.
    pub(crate) fn unreachable(&self) -> ! {
        match *self {}
    }
}

/// Why a CUDA device cannot be used in this build.
pub(crate) const UNAVAILABLE: &str =
    "this build's CUDA backend is a stub (the `cuda` feature compiles its seams; it has no kernels yet)";
