//! The encoder-decoder: an embedding and a (bidirectional) recurrent encoder over the source
//! characters, a bridge to the decoder's initial state, a recurrent cell stepping the decoder
//! with optional additive (Bahdanau) attention over the encoder outputs, and a linear output
//! over the target characters; teacher-forced loss, greedy decoding and beam search.

use super::data::{EOS, PAD, SOS};
use super::Seq2SeqConfig;
use anyhow::Result;
use recurrent::nn::{
    pack_padded_sequence, pad_packed_sequence, visit_child, CellConfig, Embedding, EmbeddingConfig,
    Linear, LinearConfig, Module, Recurrent, RecurrentCell, RecurrentConfig, RnnMode, RnnState,
};
use recurrent::{ClassTarget, CrossEntropyOptions, Generator, Tensor};

/// Attention weights: one row per output step, one weight per source token.
pub(super) type Attention = Vec<Vec<f32>>;

/// The encoder-decoder.
pub struct Seq2Seq {
    src_emb: Embedding,
    tgt_emb: Embedding,
    enc: Recurrent,
    bridge: Linear,
    dec: RecurrentCell,
    w_q: Option<Linear>,
    w_k: Option<Linear>,
    v: Option<Tensor>,
    out: Linear,
    hidden: usize,
}

impl Module for Seq2Seq {
    fn visit_parameters(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        visit_child("src_embedding", &self.src_emb, f);
        visit_child("tgt_embedding", &self.tgt_emb, f);
        visit_child("encoder", &self.enc, f);
        visit_child("bridge", &self.bridge, f);
        visit_child("decoder", &self.dec, f);
        if let (Some(q), Some(k), Some(v)) = (&self.w_q, &self.w_k, &self.v) {
            visit_child("attention.w_q", q, f);
            visit_child("attention.w_k", k, f);
            f("attention.v", v);
        }
        visit_child("out", &self.out, f);
    }
}

/// The encoder's result for a batch.
struct Encoded {
    /// `[B, S, K]` encoder outputs (zeros at padding).
    keys: Tensor,
    /// `[B, S, A]` = `keys · W_kᵀ` (attention only).
    proj_keys: Option<Tensor>,
    /// `[B, S]`: 0 at real positions, -1e9 at padding.
    mask: Tensor,
    /// The decoder's initial state.
    state: RnnState,
}

impl Seq2Seq {
    /// A fresh model for source and target vocabularies of `vs` and `vt` entries.
    pub(super) fn new(
        cfg: &Seq2SeqConfig,
        vs: usize,
        vt: usize,
        g: &mut Generator,
    ) -> Result<Seq2Seq> {
        let (e, h) = (cfg.embedding_dim, cfg.hidden);
        let d = if cfg.bidirectional { 2 } else { 1 };
        let k = d * h;
        let mode = cfg.cell.mode();
        let enc = RecurrentConfig::new(mode, e, h)
            .with_bidirectional(cfg.bidirectional)
            .init_with(g)?;
        let dec_in = e + if cfg.attention { k } else { 0 };
        let dec = RecurrentCell::new_with(mode, &CellConfig::new(dec_in, h), g)?;
        let a = h;
        Ok(Seq2Seq {
            src_emb: EmbeddingConfig::new(vs, e)
                .with_padding_idx(PAD)
                .init_with(g)?,
            tgt_emb: EmbeddingConfig::new(vt, e)
                .with_padding_idx(PAD)
                .init_with(g)?,
            enc,
            bridge: LinearConfig::new(k, h).init_with(g)?,
            dec,
            w_q: cfg
                .attention
                .then(|| LinearConfig::new(h, a).with_bias(false).init_with(g))
                .transpose()?,
            w_k: cfg
                .attention
                .then(|| LinearConfig::new(k, a).init_with(g))
                .transpose()?,
            v: cfg
                .attention
                .then(|| Tensor::rand_uniform(&[a, 1], -0.1, 0.1, g).map(Tensor::requires_grad))
                .transpose()?,
            out: LinearConfig::new(h + if cfg.attention { k } else { 0 }, vt).init_with(g)?,
            hidden: h,
        })
    }

    /// Encode source id sequences (each non-empty).
    fn encode(&self, src: &[Vec<usize>]) -> Result<Encoded> {
        let b = src.len();
        let s_max = src.iter().map(Vec::len).max().unwrap_or(1);
        let mut ids = vec![PAD; b * s_max];
        for (i, s) in src.iter().enumerate() {
            ids[i * s_max..i * s_max + s.len()].copy_from_slice(s);
        }
        let lengths: Vec<usize> = src.iter().map(Vec::len).collect();
        let emb = self.src_emb.forward(&ids, &[b, s_max])?;
        let packed = pack_padded_sequence(&emb, &lengths, true, false)?;
        let (out, enc_state) = self.enc.forward_packed(&packed, None)?;
        let h_n = enc_state.h();
        let (keys, _) = pad_packed_sequence(&out, true, 0.0, Some(s_max))?;
        // Final states of both directions side by side → the decoder's initial state.
        let d = h_n.shape()[0];
        let last = h_n.permute(&[1, 0, 2])?.reshape(&[b, d * self.hidden])?;
        let h0 = self.bridge.forward(&last)?.tanh()?;
        let state = match self.dec.mode() {
            RnnMode::Lstm => RnnState::HC(h0, Tensor::zeros(&[b, self.hidden])?),
            _ => RnnState::H(h0),
        };
        let mut mask = vec![0.0f32; b * s_max];
        for (i, &l) in lengths.iter().enumerate() {
            mask[i * s_max + l..(i + 1) * s_max].fill(-1e9);
        }
        let proj_keys = self.w_k.as_ref().map(|w| w.forward(&keys)).transpose()?;
        Ok(Encoded {
            keys,
            proj_keys,
            mask: Tensor::from_vec(mask, &[b, s_max])?,
            state,
        })
    }

    /// One decoder step: previous tokens `[B]` and state → logits `[B, V]`, the new state, and
    /// the attention weights `[B, S]` (with attention).
    fn step(
        &self,
        enc: &Encoded,
        prev: &[usize],
        state: &RnnState,
    ) -> Result<(Tensor, RnnState, Option<Tensor>)> {
        let b = prev.len();
        let emb = self.tgt_emb.forward(prev, &[b])?;
        let h_prev = state.h();
        let (context, alpha) = match (&self.w_q, &enc.proj_keys, &self.v) {
            (Some(w_q), Some(pk), Some(v)) => {
                // e_s = vᵀ tanh(W_q h + W_k k_s);  α = softmax(e + mask);  c = Σ α_s k_s
                let q = w_q.forward(h_prev)?.unsqueeze(1)?; // [B, 1, A]
                let scores = pk.add(&q)?.tanh()?.matmul(v)?.squeeze(2)?; // [B, S]
                let alpha = scores.add(&enc.mask)?.softmax(1)?;
                let c = alpha.unsqueeze(1)?.matmul(&enc.keys)?.squeeze(1)?; // [B, K]
                (Some(c), Some(alpha))
            }
            _ => (None, None),
        };
        let input = match &context {
            Some(c) => Tensor::cat(&[emb, c.clone()], 1)?,
            None => emb,
        };
        let new_state = self.dec.forward(&input, Some(state))?;
        let feat = match &context {
            Some(c) => Tensor::cat(&[new_state.h().clone(), c.clone()], 1)?,
            None => new_state.h().clone(),
        };
        Ok((self.out.forward(&feat)?, new_state, alpha))
    }

    /// Teacher-forced (or partly sampled) loss of a batch.
    pub(super) fn loss(
        &self,
        src: &[Vec<usize>],
        tgt: &[Vec<usize>],
        tf: f64,
        g: &mut Generator,
    ) -> Result<Tensor> {
        let enc = self.encode(src)?;
        let b = src.len();
        let t_max = tgt.iter().map(Vec::len).max().unwrap_or(0) + 1; // + <eos>
        let mut prev = vec![SOS; b];
        let mut state = enc.state.clone();
        let mut logits_all = Vec::with_capacity(t_max);
        let mut targets = Vec::with_capacity(t_max * b);
        for t in 0..t_max {
            let (logits, st, _) = self.step(&enc, &prev, &state)?;
            state = st;
            let gold: Vec<usize> = tgt
                .iter()
                .map(|s| {
                    if t < s.len() {
                        s[t]
                    } else if t == s.len() {
                        EOS
                    } else {
                        PAD
                    }
                })
                .collect();
            targets.extend(gold.iter().map(|&v| if v == PAD { -100 } else { v as i64 }));
            prev = if g.uniform_f64() < tf {
                gold.clone()
            } else {
                let l = logits.to_vec();
                let v = logits.shape()[1];
                (0..b).map(|r| argmax(&l[r * v..(r + 1) * v])).collect()
            };
            logits_all.push(logits);
        }
        // [T, B, V] → [T*B, V], targets in the same order.
        let all = Tensor::cat(&logits_all, 0)?;
        Ok(all.cross_entropy(
            ClassTarget::Indices(&targets),
            CrossEntropyOptions::default(),
        )?)
    }

    /// Greedy decoding of a batch of sources, up to `max_len` characters each.
    pub(super) fn greedy(&self, src: &[Vec<usize>], max_len: usize) -> Result<Vec<Vec<usize>>> {
        let enc = self.encode(src)?;
        let b = src.len();
        let mut prev = vec![SOS; b];
        let mut state = enc.state.clone();
        let mut out = vec![Vec::new(); b];
        let mut done = vec![false; b];
        for _ in 0..max_len {
            let (logits, st, _) = self.step(&enc, &prev, &state)?;
            state = st;
            let l = logits.to_vec();
            let v = logits.shape()[1];
            for r in 0..b {
                let k = argmax(&l[r * v..(r + 1) * v]);
                prev[r] = k;
                if !done[r] {
                    if k == EOS {
                        done[r] = true;
                    } else {
                        out[r].push(k);
                    }
                }
            }
            if done.iter().all(|&d| d) {
                break;
            }
        }
        Ok(out)
    }

    /// Greedy decoding of one source, with the attention weights of every output step over
    /// the source tokens (`None` for a model without attention). The weights of the step
    /// that produced `<eos>` are included last.
    pub(super) fn greedy_attention(
        &self,
        src: &[usize],
        max_len: usize,
    ) -> Result<(Vec<usize>, Option<Attention>)> {
        let enc = self.encode(&[src.to_vec()])?;
        let mut prev = vec![SOS];
        let mut state = enc.state.clone();
        let (mut out, mut weights) = (Vec::new(), Vec::new());
        for _ in 0..max_len {
            let (logits, st, alpha) = self.step(&enc, &prev, &state)?;
            state = st;
            if let Some(a) = alpha {
                weights.push(a.to_vec());
            }
            let k = argmax(&logits.to_vec());
            if k == EOS {
                break;
            }
            out.push(k);
            prev[0] = k;
        }
        Ok((out, self.w_q.is_some().then_some(weights)))
    }

    /// Beam search for one source, keeping `width` hypotheses scored by total log-probability.
    pub(super) fn beam(&self, src: &[usize], width: usize, max_len: usize) -> Result<Vec<usize>> {
        let enc1 = self.encode(&[src.to_vec()])?;
        // Replicate the encoding for `width` beams.
        let rep = |t: &Tensor| -> Result<Tensor> { Ok(t.index_select(0, &vec![0; width])?) };
        let enc = Encoded {
            keys: rep(&enc1.keys)?,
            proj_keys: enc1.proj_keys.as_ref().map(rep).transpose()?,
            mask: rep(&enc1.mask)?,
            state: map_state(&enc1.state, rep)?,
        };
        let mut beams: Vec<(Vec<usize>, f64, bool)> = vec![(Vec::new(), 0.0, false)];
        let mut state = enc.state.clone();
        for _ in 0..max_len {
            if beams.iter().all(|b| b.2) {
                break;
            }
            let k = beams.len();
            let prev: Vec<usize> = beams
                .iter()
                .map(|b| *b.0.last().unwrap_or(&SOS))
                .chain(std::iter::repeat(SOS))
                .take(width)
                .collect();
            let (logits, st, _) = self.step(&enc, &prev, &state)?;
            let lp = logits.log_softmax(1)?.to_vec();
            let v = logits.shape()[1];
            let mut cands: Vec<(usize, usize, f64)> = Vec::new(); // (beam, token, score)
            for (bi, b) in beams.iter().enumerate().take(k) {
                if b.2 {
                    cands.push((bi, EOS, b.1));
                    continue;
                }
                for tok in 0..v {
                    if tok == PAD || tok == SOS {
                        continue;
                    }
                    cands.push((bi, tok, b.1 + lp[bi * v + tok] as f64));
                }
            }
            cands.sort_by(|a, b| b.2.total_cmp(&a.2));
            cands.truncate(width);
            let parents: Vec<usize> = cands
                .iter()
                .map(|c| c.0)
                .chain(std::iter::repeat(0))
                .take(width)
                .collect();
            state = map_state(&st, |s| Ok(s.index_select(0, &parents)?))?;
            beams = cands
                .iter()
                .map(|&(bi, tok, score)| {
                    let old = &beams[bi];
                    if old.2 || tok == EOS {
                        (old.0.clone(), score, true)
                    } else {
                        let mut s = old.0.clone();
                        s.push(tok);
                        (s, score, false)
                    }
                })
                .collect();
        }
        Ok(beams
            .into_iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|b| b.0)
            .unwrap_or_default())
    }
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

/// `state` with `f` applied to each of its parts (`h`, and `c` for an LSTM).
fn map_state(state: &RnnState, f: impl Fn(&Tensor) -> Result<Tensor>) -> Result<RnnState> {
    Ok(match state {
        RnnState::H(h) => RnnState::H(f(h)?),
        RnnState::HC(h, c) => RnnState::HC(f(h)?, f(c)?),
    })
}
