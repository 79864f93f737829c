//! `nn.Linear`: `y = x Wᵀ + b`.

use super::init;
use super::module::Module;
use crate::rng::with_global;
use crate::{Device, Error, Generator, Result, Tensor};

/// Configuration of a [`Linear`] layer (PyTorch's arguments).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinearConfig {
    /// Features per input row.
    pub in_features: usize,
    /// Features per output row.
    pub out_features: usize,
    /// Whether to learn an additive bias (default true).
    pub bias: bool,
    /// Where the parameters live (default the CPU).
    pub device: Device,
}

impl LinearConfig {
    /// `Linear(in_features, out_features)` with a bias.
    pub fn new(in_features: usize, out_features: usize) -> Self {
        LinearConfig {
            in_features,
            out_features,
            bias: true,
            device: Device::Cpu,
        }
    }

    /// Set `bias`.
    ///
    /// ```
    /// use recurrent::nn::{LinearConfig, Module};
    /// let fc = LinearConfig::new(3, 2).with_bias(false).init().unwrap();
    /// assert!(fc.bias.is_none() && fc.state_dict().len() == 1);
    /// ```
    pub fn with_bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }

    /// Put the parameters on `device` (an error at `init` when this build cannot use it).
    ///
    /// ```
    /// use recurrent::nn::LinearConfig;
    /// use recurrent::Device;
    /// assert!(LinearConfig::new(3, 2).with_device(Device::Cpu).init().is_ok());
    /// assert!(LinearConfig::new(3, 2).with_device(Device::Cuda(0)).init().is_err());
    /// ```
    pub fn with_device(mut self, device: Device) -> Self {
        self.device = device;
        self
    }

    /// Build with the process-wide generator.
    pub fn init(&self) -> Result<Linear> {
        with_global(|g| self.init_with(g))
    }

    /// Build with PyTorch's default initialisation drawn from `rng`.
    pub fn init_with(&self, rng: &mut Generator) -> Result<Linear> {
        self.device.check_available()?;
        let weight = init::kaiming_uniform_linear(self.out_features, self.in_features, rng)?
            .to_device(self.device)?;
        let bias = if self.bias {
            Some(
                init::linear_bias(self.out_features, self.in_features, rng)?
                    .to_device(self.device)?,
            )
        } else {
            None
        };
        Ok(Linear { weight, bias })
    }
}

/// A fully connected layer. Parameters: `weight: [out, in]`, `bias: [out]`.
#[derive(Clone, Debug)]
pub struct Linear {
    /// `[out_features, in_features]`.
    pub weight: Tensor,
    /// `[out_features]`.
    pub bias: Option<Tensor>,
}

impl Linear {
    /// `x: [*, in]` → `[*, out]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.linear(&self.weight, self.bias.as_ref())
    }

    /// A layer from existing tensors (checked: `weight [out, in]`, `bias [out]`).
    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>) -> Result<Linear> {
        if weight.ndim() != 2 {
            return Err(Error::invalid(format!(
                "Linear weight must be 2-d, got {:?}",
                weight.shape()
            )));
        }
        if let Some(b) = &bias {
            if b.shape() != [weight.shape()[0]] {
                return Err(Error::shape("bias", &[weight.shape()[0]], b.shape()));
            }
        }
        Ok(Linear { weight, bias })
    }
}

impl Module for Linear {
    fn visit_parameters(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        f("weight", &self.weight);
        if let Some(b) = &self.bias {
            f("bias", b);
        }
    }
    fn type_name(&self) -> &'static str {
        "Linear"
    }
}
