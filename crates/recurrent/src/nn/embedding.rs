//! `nn.Embedding`: a lookup table of vectors indexed by token id.

use super::init;
use super::module::Module;
use crate::rng::with_global;
use crate::{Device, EmbeddingOptions, Error, Generator, Result, Tensor};

/// Configuration of an [`Embedding`] (PyTorch's arguments).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EmbeddingConfig {
    /// Size of the vocabulary.
    pub num_embeddings: usize,
    /// Size of each vector.
    pub embedding_dim: usize,
    /// Row that is initialised to zeros and never receives a gradient.
    pub padding_idx: Option<usize>,
    /// Renormalise looked-up rows to at most this norm.
    pub max_norm: Option<f32>,
    /// The p of the norm for `max_norm` (default 2).
    pub norm_type: f32,
    /// Scale gradients by the inverse frequency of each id in the batch.
    pub scale_grad_by_freq: bool,
    /// Where the weight lives (default the CPU).
    pub device: Device,
}

impl EmbeddingConfig {
    /// `Embedding(num_embeddings, embedding_dim)`.
    pub fn new(num_embeddings: usize, embedding_dim: usize) -> Self {
        EmbeddingConfig {
            num_embeddings,
            embedding_dim,
            padding_idx: None,
            max_norm: None,
            norm_type: 2.0,
            scale_grad_by_freq: false,
            device: Device::Cpu,
        }
    }

    /// Put the weight on `device` (an error at `init` when this build cannot use it).
    ///
    /// ```
    /// use recurrent::nn::EmbeddingConfig;
    /// use recurrent::Device;
    /// assert!(EmbeddingConfig::new(10, 4).with_device(Device::Cpu).init().is_ok());
    /// assert!(EmbeddingConfig::new(10, 4).with_device(Device::Cuda(0)).init().is_err());
    /// ```
    pub fn with_device(mut self, device: Device) -> Self {
        self.device = device;
        self
    }

    /// Set `padding_idx`.
    ///
    /// ```
    /// use recurrent::nn::EmbeddingConfig;
    /// let e = EmbeddingConfig::new(10, 4).with_padding_idx(1).init().unwrap();
    /// assert_eq!(&e.weight.to_vec()[4..8], &[0.0; 4]); // the padding row starts at zero
    /// ```
    pub fn with_padding_idx(mut self, idx: usize) -> Self {
        self.padding_idx = Some(idx);
        self
    }

    /// Set `max_norm` (and `norm_type`).
    ///
    /// ```
    /// use recurrent::nn::EmbeddingConfig;
    /// let e = EmbeddingConfig::new(10, 4).with_max_norm(1.0, 2.0).init().unwrap();
    /// let v = e.forward(&[3], &[1]).unwrap().to_vec();
    /// assert!(v.iter().map(|x| x * x).sum::<f32>().sqrt() <= 1.0 + 1e-6);
    /// ```
    pub fn with_max_norm(mut self, max_norm: f32, norm_type: f32) -> Self {
        self.max_norm = Some(max_norm);
        self.norm_type = norm_type;
        self
    }

    /// Set `scale_grad_by_freq`.
    ///
    /// ```
    /// use recurrent::nn::EmbeddingConfig;
    /// let c = EmbeddingConfig::new(10, 4).with_scale_grad_by_freq(true);
    /// assert!(c.scale_grad_by_freq);
    /// ```
    pub fn with_scale_grad_by_freq(mut self, on: bool) -> Self {
        self.scale_grad_by_freq = on;
        self
    }

    fn validate(&self) -> Result<()> {
        if let Some(p) = self.padding_idx {
            if p >= self.num_embeddings {
                return Err(Error::invalid("Padding_idx must be within num_embeddings"));
            }
        }
        Ok(())
    }

    /// Build with the process-wide generator.
    pub fn init(&self) -> Result<Embedding> {
        with_global(|g| self.init_with(g))
    }

    /// Build with `N(0, 1)` weights (padding row zero) drawn from `rng`.
    pub fn init_with(&self, rng: &mut Generator) -> Result<Embedding> {
        self.validate()?;
        self.device.check_available()?;
        Ok(Embedding {
            weight: init::embedding_normal(
                self.num_embeddings,
                self.embedding_dim,
                self.padding_idx,
                rng,
            )?
            .to_device(self.device)?,
            config: *self,
        })
    }
}

/// A lookup table. Parameter: `weight: [num_embeddings, embedding_dim]`.
#[derive(Clone, Debug)]
pub struct Embedding {
    /// `[num_embeddings, embedding_dim]`.
    pub weight: Tensor,
    /// How it was configured.
    pub config: EmbeddingConfig,
}

impl Embedding {
    /// Look up `ids` laid out as `shape` (e.g. `[batch, time]`): returns `[*shape, dim]`.
    pub fn forward(&self, ids: &[usize], shape: &[usize]) -> Result<Tensor> {
        let c = &self.config;
        self.weight.embedding(
            ids,
            shape,
            EmbeddingOptions {
                padding_idx: c.padding_idx,
                max_norm: c.max_norm,
                norm_type: c.norm_type,
                scale_grad_by_freq: c.scale_grad_by_freq,
            },
        )
    }
}

impl Module for Embedding {
    fn visit_parameters(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        f("weight", &self.weight);
    }
    fn type_name(&self) -> &'static str {
        "Embedding"
    }
}
