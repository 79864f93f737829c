//! The sentiment model: Embedding → stacked RNN (LSTM, GRU or Elman) on packed sequences →
//! pooling → Linear → one logit. Parameter names are PyTorch's (`embedding.weight`,
//! `rnn.weight_ih_l0`, ..., `fc.weight`, `fc.bias`), so `scripts/torch_model.py` loads a model
//! directory into the same model in PyTorch.

use super::config::{Pool, SentimentConfig};
use recurrent::nn::{
    visit_child, Embedding, EmbeddingConfig, LayerNorm, Linear, LinearConfig, Module,
    PackedSequence, Recurrent, RecurrentConfig,
};
use recurrent::rng::with_global;
use recurrent::{Generator, PoolMode, Result, Tensor};
use recurrent_data::batch::Batch;

/// Embedding → RNN → pooling → Linear.
#[derive(Clone, Debug)]
pub struct SentimentModel {
    /// `[vocab, embedding_dim]`, padding row 1.
    pub embedding: Embedding,
    /// The recurrent layers (LSTM, GRU or Elman RNN, as `cell` says).
    pub rnn: Recurrent,
    /// Layer normalisation of the pooled features (`norm`).
    pub norm: Option<LayerNorm>,
    /// `[1, features]`.
    pub fc: Linear,
    cfg: SentimentConfig,
    training: bool,
    /// The embedding and the recurrent layers are frozen (gradual unfreezing's first stage):
    /// they run without recording a graph.
    frozen_encoder: bool,
}

impl SentimentModel {
    /// A freshly initialised model for a vocabulary of `vocab_size` entries (`<pad>` at 1).
    pub fn new(
        cfg: &SentimentConfig,
        vocab_size: usize,
        rng: &mut Generator,
    ) -> Result<SentimentModel> {
        let (e, h) = (cfg.embedding_dim, cfg.hidden_size);
        let embedding = EmbeddingConfig::new(vocab_size, e)
            .with_padding_idx(1)
            .init_with(rng)?;
        let mut rnn = RecurrentConfig::new(cfg.cell.mode(), e, h)
            .with_num_layers(cfg.num_layers)
            .with_bidirectional(cfg.bidirectional)
            .with_dropout(cfg.dropout)
            .with_variational_dropout(cfg.var_input, cfg.var_state, cfg.var_output)
            .with_weight_drop(cfg.weight_drop);
        if cfg.proj_size > 0 {
            rnn = rnn.with_proj_size(cfg.proj_size);
        }
        let rnn = rnn.init_with(rng)?;
        let norm = cfg
            .norm
            .then(|| LayerNorm::new(cfg.feature_size()))
            .transpose()?;
        let fc = LinearConfig::new(cfg.feature_size(), 1).init_with(rng)?;
        Ok(SentimentModel {
            embedding,
            rnn,
            norm,
            fc,
            cfg: cfg.clone(),
            training: true,
            frozen_encoder: false,
        })
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &SentimentConfig {
        &self.cfg
    }

    /// Vocabulary size the embedding expects.
    pub fn vocab_size(&self) -> usize {
        self.embedding.weight.shape()[0]
    }

    fn dropout(&self, x: Tensor, p: f64) -> Result<Tensor> {
        if self.training && p > 0.0 {
            with_global(|g| x.dropout(p as f32, true, g))
        } else {
            Ok(x)
        }
    }

    /// Freeze (or unfreeze) the embedding and the recurrent layers: frozen, they run without
    /// recording a graph, so that training the output layer alone costs a forward pass.
    pub fn set_encoder_frozen(&mut self, frozen: bool) {
        self.frozen_encoder = frozen;
    }

    /// Logits `[B]` for a packed batch (rows in the batch's order).
    pub fn forward(&self, batch: &Batch) -> Result<Tensor> {
        let features = {
            let _frozen = self.frozen_encoder.then(recurrent::no_grad);
            self.features(batch)?
        };
        let features = match &self.norm {
            Some(norm) => norm.forward(&features)?,
            None => features,
        };
        let features = self.dropout(features, self.cfg.fc_dropout)?;
        self.fc.forward(&features)?.squeeze(1)
    }

    /// The pooled features `[B, feature_size]` of a packed batch.
    fn features(&self, batch: &Batch) -> Result<Tensor> {
        let emb = self.embedding.forward(&batch.ids, &[batch.ids.len()])?;
        let emb = self.dropout(emb, self.cfg.embed_dropout)?;
        let packed = PackedSequence::new(emb, batch.batch_sizes.clone(), None)?;
        let (out, state) = self.rnn.forward_packed(&packed, None)?;
        let h_n = state.h();
        let last = || -> Result<Tensor> {
            let d = if self.cfg.bidirectional { 2 } else { 1 };
            let layers = h_n.shape()[0];
            let last = h_n.narrow(0, layers - d, d)?; // [D, B, H]
            last.permute(&[1, 0, 2])?
                .reshape(&[batch.len(), d * self.cfg.output_size()])
        };
        let pool = |mode| out.data.packed_pool(&batch.batch_sizes, mode);
        Ok(match self.cfg.pool {
            Pool::Last => last()?,
            Pool::Max => pool(PoolMode::Max)?,
            Pool::Mean => pool(PoolMode::Mean)?,
            Pool::Concat => {
                Tensor::cat(&[last()?, pool(PoolMode::Max)?, pool(PoolMode::Mean)?], 1)?
            }
        })
    }
}

impl Module for SentimentModel {
    fn visit_parameters(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        visit_child("embedding", &self.embedding, f);
        visit_child("rnn", &self.rnn, f);
        if let Some(norm) = &self.norm {
            visit_child("norm", norm, f);
        }
        visit_child("fc", &self.fc, f);
    }
    fn set_training(&mut self, training: bool) {
        self.training = training;
        self.rnn.set_training(training);
    }
    fn type_name(&self) -> &'static str {
        "SentimentModel"
    }
}
