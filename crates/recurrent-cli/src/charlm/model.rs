//! The character model (Embedding → LSTM or GRU → Linear over characters), the text cut into
//! parallel streams and time-major chunks, and the validation loss.

use super::CharConfig;
use crate::tbptt::{chunk, make_streams};
use anyhow::Result;
use recurrent::nn::{
    visit_child, Embedding, EmbeddingConfig, Linear, LinearConfig, Module, Recurrent,
    RecurrentConfig, RnnState,
};
use recurrent::{ClassTarget, CrossEntropyOptions, Generator, Tensor};

/// Embedding → RNN → Linear over characters.
pub struct CharModel {
    embedding: Embedding,
    rnn: Recurrent,
    fc: Linear,
    training: bool,
}

impl Module for CharModel {
    fn visit_parameters(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        visit_child("embedding", &self.embedding, f);
        visit_child("rnn", &self.rnn, f);
        visit_child("fc", &self.fc, f);
    }
    fn set_training(&mut self, t: bool) {
        self.training = t;
        self.rnn.set_training(t);
    }
    fn type_name(&self) -> &'static str {
        "CharModel"
    }
}

impl CharModel {
    /// A fresh model over `vocab` characters.
    pub fn new(cfg: &CharConfig, vocab: usize, g: &mut Generator) -> Result<CharModel> {
        let embedding = EmbeddingConfig::new(vocab, cfg.embedding_dim).init_with(g)?;
        let rnn = RecurrentConfig::new(cfg.cell.mode(), cfg.embedding_dim, cfg.hidden)
            .with_num_layers(cfg.layers)
            .with_dropout(cfg.dropout)
            .init_with(g)?;
        let fc = LinearConfig::new(cfg.hidden, vocab).init_with(g)?;
        Ok(CharModel {
            embedding,
            rnn,
            fc,
            training: true,
        })
    }

    /// Logits `[T*B, V]` for ids laid out `[T, B]` (time-major), starting from `state` (zeros
    /// if `None`), and the final state.
    pub fn forward(
        &self,
        ids: &[usize],
        t: usize,
        b: usize,
        state: Option<&RnnState>,
    ) -> Result<(Tensor, RnnState)> {
        let e = self.embedding.forward(ids, &[t, b])?;
        let (out, st) = self.rnn.forward(&e, state)?;
        let hsz = out.shape()[2];
        let logits = self.fc.forward(&out.reshape(&[t * b, hsz])?)?;
        Ok((logits, st))
    }
}

/// Mean cross-entropy (nats) of the model on `ids` read as `b` streams.
pub fn evaluate(model: &CharModel, ids: &[usize], b: usize, t: usize) -> Result<f64> {
    let _ng = recurrent::no_grad();
    let b = b.min(ids.len() / (t + 1)).max(1);
    let streams = make_streams(ids, b);
    let chunks = (streams[0].len() - 1).div_ceil(t);
    let (mut total, mut count) = (0.0, 0usize);
    let mut state: Option<RnnState> = None;
    for k in 0..chunks {
        let (x, y, len) = chunk(&streams, k, t);
        if len == 0 {
            break;
        }
        let (logits, st) = model.forward(&x, len, b, state.as_ref())?;
        state = Some(st);
        let loss = logits
            .cross_entropy(ClassTarget::Indices(&y), CrossEntropyOptions::default())?
            .item()? as f64;
        total += loss * y.len() as f64;
        count += y.len();
    }
    Ok(total / count.max(1) as f64)
}
