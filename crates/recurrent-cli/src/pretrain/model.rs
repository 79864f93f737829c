//! The language model: embedding (with embedding dropout) → stacked LSTM (variational
//! dropout, weight drop, `proj_size` when tied) → an output layer over the vocabulary, tied to
//! the embedding or its own, trained with a sampled or the full softmax.

use super::corpus::Sampler;
use super::{PretrainConfig, Softmax};
use anyhow::Result;
use recurrent::nn::{
    visit_child, Embedding, EmbeddingConfig, Module, Recurrent, RecurrentConfig, RnnMode, RnnState,
};
use recurrent::rng::with_global;
use recurrent::{ClassTarget, CrossEntropyOptions, Generator, Reduction, Tensor};
use std::collections::HashMap;

/// Embedding → LSTM → output layer. Parameters: `embedding.weight`, `rnn.*` (PyTorch's LSTM
/// names), `decoder.bias`, and `decoder.weight` when not tied.
#[derive(Clone, Debug)]
pub struct LanguageModel {
    /// `[vocab, embedding_dim]` (padding row 1, as the classifier's).
    pub embedding: Embedding,
    /// The LSTM.
    pub rnn: Recurrent,
    /// `[vocab, output_size]` when not tied to the embedding.
    pub decoder_weight: Option<Tensor>,
    /// `[vocab]`.
    pub decoder_bias: Tensor,
    cfg: PretrainConfig,
    training: bool,
}

impl LanguageModel {
    /// A freshly initialised model over `vocab` words.
    pub fn new(cfg: &PretrainConfig, vocab: usize, g: &mut Generator) -> Result<LanguageModel> {
        let embedding = EmbeddingConfig::new(vocab, cfg.embedding_dim)
            .with_padding_idx(1)
            .init_with(g)?;
        let mut rnn = RecurrentConfig::new(RnnMode::Lstm, cfg.embedding_dim, cfg.hidden)
            .with_num_layers(cfg.layers)
            .with_variational_dropout(cfg.var_input, cfg.var_state, cfg.var_output)
            .with_weight_drop(cfg.weight_drop);
        if cfg.proj_size() > 0 {
            rnn = rnn.with_proj_size(cfg.proj_size());
        }
        let rnn = rnn.init_with(g)?;
        let out = cfg.output_size();
        let bound = 1.0 / (out as f32).sqrt();
        let decoder_weight = (!cfg.tie_weights)
            .then(|| {
                Tensor::rand_uniform(&[vocab, out], -bound, bound, g).map(Tensor::requires_grad)
            })
            .transpose()?;
        let decoder_bias = Tensor::zeros(&[vocab])?.requires_grad();
        Ok(LanguageModel {
            embedding,
            rnn,
            decoder_weight,
            decoder_bias,
            cfg: cfg.clone(),
            training: true,
        })
    }

    /// The settings it was built from.
    pub fn config(&self) -> &PretrainConfig {
        &self.cfg
    }

    /// Words in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.embedding.weight.shape()[0]
    }

    /// The output layer's weight: the embedding's when tied.
    fn output_weight(&self) -> &Tensor {
        self.decoder_weight
            .as_ref()
            .unwrap_or(&self.embedding.weight)
    }

    /// The LSTM's outputs `[T*B, output_size]` for ids laid out `[T, B]`, from `state` (zeros
    /// if `None`), and the final state. In training, each word of the vocabulary is dropped
    /// from the whole batch with probability `embed_dropout` (the kept ones scaled by `1/(1-p)`):
    /// AWD-LSTM's embedding dropout, applied to the looked-up rows.
    pub fn hidden(
        &self,
        ids: &[usize],
        t: usize,
        b: usize,
        state: Option<&RnnState>,
    ) -> Result<(Tensor, RnnState)> {
        let mut e = self.embedding.forward(ids, &[t, b])?;
        let p = self.cfg.embed_dropout;
        if self.training && p > 0.0 {
            let mut keep: HashMap<usize, f32> = HashMap::new();
            let scale = (1.0 / (1.0 - p)) as f32;
            let mask: Vec<f32> =
                with_global(|g| {
                    ids.iter()
                        .map(|&w| {
                            *keep.entry(w).or_insert_with(|| {
                                if g.uniform_f64() < p {
                                    0.0
                                } else {
                                    scale
                                }
                            })
                        })
                        .collect()
                });
            e = e.mul(&Tensor::from_vec(mask, &[t, b, 1])?)?;
        }
        let (out, st) = self.rnn.forward(&e, state)?;
        let d = out.shape()[2];
        Ok((out.reshape(&[t * b, d])?, st))
    }

    /// The training loss (mean over the tokens): the sampled softmax over `samples` (drawn by
    /// `sampler`), or the full softmax, as the settings say.
    pub fn train_loss(
        &self,
        h: &Tensor,
        targets: &[i64],
        sampler: &Sampler,
        samples: &[usize],
    ) -> Result<Tensor> {
        match self.cfg.softmax {
            Softmax::Full => Ok(self.full_logits(h)?.cross_entropy(
                ClassTarget::Indices(targets),
                CrossEntropyOptions::default(),
            )?),
            Softmax::Sampled => self.sampled_loss(h, targets, sampler, samples),
        }
    }

    /// Logits over the whole vocabulary, `[N, vocab]`.
    fn full_logits(&self, h: &Tensor) -> Result<Tensor> {
        Ok(h.linear(self.output_weight(), Some(&self.decoder_bias))?)
    }

    /// The sampled softmax: for each row, the true word's logit against the sampled words',
    /// each less its log expected count; a sampled word equal to the row's target is masked
    /// out (an "accidental hit").
    fn sampled_loss(
        &self,
        h: &Tensor,
        targets: &[i64],
        sampler: &Sampler,
        samples: &[usize],
    ) -> Result<Tensor> {
        let (n, s) = (targets.len(), samples.len());
        let w = self.output_weight();
        let y: Vec<usize> = targets.iter().map(|&t| t as usize).collect();
        // z_w = h · w_w + b_w − log(S q(w)), for the true word and the sampled ones.
        let w_s = w.index_select(0, samples)?;
        let b_s = self.decoder_bias.index_select(0, samples)?;
        let mut offset: Vec<f32> = samples.iter().map(|&w| -sampler.log_expected(w)).collect();
        let z_s = h.linear(&w_s, Some(&b_s))?;
        let mut column: HashMap<usize, Vec<usize>> = HashMap::new();
        for (j, &w) in samples.iter().enumerate() {
            column.entry(w).or_default().push(j);
        }
        let hits: Vec<(usize, usize)> = y
            .iter()
            .enumerate()
            .flat_map(|(i, w)| column.get(w).into_iter().flatten().map(move |&j| (i, j)))
            .collect();
        let z_s = if hits.is_empty() {
            z_s.add(&Tensor::from_vec(std::mem::take(&mut offset), &[s])?)?
        } else {
            let mut full = vec![0.0f32; n * s];
            for row in full.chunks_mut(s) {
                row.copy_from_slice(&offset);
            }
            for (i, j) in hits {
                full[i * s + j] = -1e30;
            }
            z_s.add(&Tensor::from_vec(full, &[n, s])?)?
        };
        let w_y = w.index_select(0, &y)?;
        let b_y = self.decoder_bias.index_select(0, &y)?.reshape(&[n, 1])?;
        let q_y: Vec<f32> = y.iter().map(|&w| -sampler.log_expected(w)).collect();
        let z_y = h
            .mul(&w_y)?
            .sum_dim(1, true)?
            .add(&b_y)?
            .add(&Tensor::from_vec(q_y, &[n, 1])?)?;
        let logits = Tensor::cat(&[z_y, z_s], 1)?;
        Ok(logits.cross_entropy(
            ClassTarget::Indices(&vec![0; n]),
            CrossEntropyOptions::default(),
        )?)
    }

    /// The exact summed cross-entropy (nats) of rows `h` for `targets`, over the whole
    /// vocabulary, in row blocks so that the logits stay small.
    pub fn exact_loss_sum(&self, h: &Tensor, targets: &[i64]) -> Result<f64> {
        const ROWS: usize = 1024;
        let mut total = 0.0;
        for start in (0..targets.len()).step_by(ROWS) {
            let len = ROWS.min(targets.len() - start);
            let logits = self.full_logits(&h.narrow(0, start, len)?)?;
            let loss = logits.cross_entropy(
                ClassTarget::Indices(&targets[start..start + len]),
                CrossEntropyOptions {
                    reduction: Reduction::Sum,
                    ..Default::default()
                },
            )?;
            total += loss.item()? as f64;
        }
        Ok(total)
    }
}

impl Module for LanguageModel {
    fn visit_parameters(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        visit_child("embedding", &self.embedding, f);
        visit_child("rnn", &self.rnn, f);
        if let Some(w) = &self.decoder_weight {
            f("decoder.weight", w);
        }
        f("decoder.bias", &self.decoder_bias);
    }
    fn set_training(&mut self, training: bool) {
        self.training = training;
        self.rnn.set_training(training);
    }
    fn type_name(&self) -> &'static str {
        "LanguageModel"
    }
}

/// Mean exact cross-entropy (nats per word) of `model` on the stream `ids`, read as `b`
/// streams in chunks of `t` (evaluation mode, no gradients).
pub fn evaluate(model: &LanguageModel, ids: &[usize], b: usize, t: usize) -> Result<f64> {
    let _ng = recurrent::no_grad();
    let b = b.min(ids.len() / (t + 1)).max(1);
    let streams = crate::tbptt::make_streams(ids, b);
    let (mut total, mut count) = (0.0, 0usize);
    let mut state: Option<RnnState> = None;
    let mut start = 0;
    loop {
        let (x, y, len) = crate::tbptt::chunk_at(&streams, start, t);
        if len == 0 {
            break;
        }
        let (h, st) = model.hidden(&x, len, b, state.as_ref())?;
        state = Some(st);
        total += model.exact_loss_sum(&h, &y)?;
        count += y.len();
        start += len;
    }
    Ok(total / count.max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sampling every word once from a uniform proposal, the corrections are all
    /// `log(V · 1/V) = 0` and the true word's own sample is masked as an accidental hit: the
    /// sampled softmax is then exactly the full softmax.
    #[test]
    fn sampled_softmax_matches_the_full_softmax_when_it_samples_everything_once() {
        let cfg = PretrainConfig {
            embedding_dim: 6,
            hidden: 6,
            layers: 1,
            softmax: Softmax::Sampled,
            ..Default::default()
        };
        let v = 9;
        let m = LanguageModel::new(&cfg, v, &mut Generator::new(2)).unwrap();
        let h = Tensor::randn(&[5, 6], 0.0, 1.0, &mut Generator::new(3)).unwrap();
        let targets = [2i64, 3, 8, 2, 5];
        let sampler = Sampler::new(&[1; 9], 9);
        let samples: Vec<usize> = (0..9).collect();
        let sampled = m
            .train_loss(&h, &targets, &sampler, &samples)
            .unwrap()
            .item()
            .unwrap();
        let full = m.exact_loss_sum(&h, &targets).unwrap() / 5.0;
        assert!((sampled as f64 - full).abs() < 1e-5, "{sampled} vs {full}");
    }
}
