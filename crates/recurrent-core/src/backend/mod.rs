//! Devices and their kernels.
//!
//! Tensors live on a [`Device`]. Ops (in [`crate::ops`]) match on the device of their inputs
//! and call that device's kernels; layer code never sees a device. The CPU backend is
//! `backend::cpu` (private to this crate; `docs/architecture.md` describes it). The `cuda`
//! feature compiles a stub CUDA backend beside it; until that exists, asking for a CUDA
//! device returns [`crate::Error::DeviceUnavailable`].

pub(crate) mod cpu;
#[cfg(feature = "cuda")]
pub(crate) mod cuda;

use crate::{Error, Result};

/// Where a tensor's data lives and its ops run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Device {
    /// The host CPU (all cores, through rayon).
    #[default]
    Cpu,
    /// A CUDA GPU by ordinal.
    Cuda(usize),
}

impl Device {
    #[cfg(feature = "cuda")]
    const CUDA_UNAVAILABLE: &'static str = cuda::UNAVAILABLE;
    #[cfg(not(feature = "cuda"))]
    const CUDA_UNAVAILABLE: &'static str =
        "this build of recurrent has no CUDA backend (it was built without the `cuda` feature)";

    /// The devices this build can run on now (the CPU, and a CUDA device once that backend
    /// exists): what the device conformance tests iterate over.
    ///
    /// ```
    /// use recurrent_core::Device;
    /// assert_eq!(Device::available()[0], Device::Cpu);
    /// ```
    pub fn available() -> Vec<Device> {
        [Device::Cpu, Device::Cuda(0)]
            .into_iter()
            .filter(|d| d.check_available().is_ok())
            .collect()
    }

    /// Check that this build can use the device.
    pub fn check_available(self) -> Result<()> {
        match self {
            Device::Cpu => Ok(()),
            Device::Cuda(i) => Err(Error::DeviceUnavailable {
                device: format!("cuda:{i}"),
                reason: Self::CUDA_UNAVAILABLE.into(),
            }),
        }
    }

    /// Parse `"cpu"`, `"cuda"` or `"cuda:N"`.
    pub fn parse(s: &str) -> Result<Device> {
        match s.trim() {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(i)) => Ok(Device::Cuda(i)),
                _ => Err(Error::invalid(format!(
                    "unknown device {other:?}: expected \"cpu\", \"cuda\" or \"cuda:N\""
                ))),
            },
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}
