//! `recurrent seq2seq`: sequence to sequence (many-to-many with different lengths), an
//! encoder-decoder with optional bidirectional encoder and additive (Bahdanau) attention,
//! trained with teacher forcing and decoded greedily or with beam search.
//!
//! The task is generated reproducibly in code: dates written in many human formats
//! ("3rd of March 2021", "Wed, Mar 3 2021", "03.03.2021", "MAR 3 2021", ...) translated to
//! ISO dates ("2021-03-03"). Every format is unambiguous (day-first formats use dots,
//! month-first ones slashes), so a perfect model exists; the metric is exact-match accuracy
//! on held-out dates.

use crate::cell::Cell;
use crate::training::{Checks, TrainStep};
use anyhow::Result;
use recurrent::nn::{
    pack_padded_sequence, pad_packed_sequence, visit_child, CellConfig, Embedding, EmbeddingConfig,
    Linear, LinearConfig, Module, Recurrent, RecurrentCell, RecurrentConfig, RnnMode, RnnState,
};
use recurrent::optim::{Adam, AdamConfig};
use recurrent::{ClassTarget, CrossEntropyOptions, Generator, Tensor};
use serde::Serialize;

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Day of week, 0 = Monday (Sakamoto's method).
fn weekday(y: i32, m: u32, d: u32) -> usize {
    const T: [i32; 12] = [0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4];
    let y = if m < 3 { y - 1 } else { y };
    let w = (y + y / 4 - y / 100 + y / 400 + T[m as usize - 1] + d as i32) % 7; // 0 = Sunday
    ((w + 6) % 7) as usize
}

fn ordinal(d: u32) -> String {
    let suf = match (d % 10, d % 100) {
        (1, x) if x != 11 => "st",
        (2, x) if x != 12 => "nd",
        (3, x) if x != 13 => "rd",
        _ => "th",
    };
    format!("{d}{suf}")
}

/// Number of source formats.
pub const FORMATS: usize = 11;

/// A date written in format `f` (see the module docs).
pub fn render(y: i32, m: u32, d: u32, f: usize) -> String {
    let mon = MONTHS[m as usize - 1];
    let short = &mon[..3];
    let wd = DAYS[weekday(y, m, d)];
    match f {
        0 => format!("{d} {mon} {y}"),
        1 => format!("{mon} {d}, {y}"),
        2 => format!("{m:02}/{d:02}/{y}"),
        3 => format!("{d:02}.{m:02}.{y}"),
        4 => format!("{}, {d} {short} {y}", &wd[..3]),
        5 => format!("{} of {mon} {y}", ordinal(d)),
        6 => format!("{} {d} {y}", short.to_uppercase()),
        7 => format!("{wd}, {mon} {d}, {y}"),
        8 => format!("{d}-{short}-{y}"),
        9 => format!("{y}{m:02}{d:02}"),
        _ => format!("{}, {} {}", ordinal(d), mon.to_lowercase(), y),
    }
}

/// `(source, target)` pairs: random dates 1950-2049 in random formats.
pub fn dates(n: usize, seed: u64) -> Vec<(String, String)> {
    let mut g = Generator::new(seed);
    (0..n)
        .map(|_| {
            let y = 1950 + g.below(100) as i32;
            let m = 1 + g.below(12) as u32;
            let d = 1 + g.below(days_in_month(y, m) as u64) as u32;
            let f = g.below(FORMATS as u64) as usize;
            (render(y, m, d, f), format!("{y}-{m:02}-{d:02}"))
        })
        .collect()
}

/// Characters ↔ ids, with `<pad>` 0, `<sos>` 1, `<eos>` 2, `<unk>` 3.
#[derive(Clone, Debug)]
pub struct CharVocab {
    chars: Vec<char>,
}

const PAD: usize = 0;
const SOS: usize = 1;
const EOS: usize = 2;
const UNK: usize = 3;

impl CharVocab {
    fn new<'a>(texts: impl Iterator<Item = &'a str>) -> CharVocab {
        let mut chars: Vec<char> = texts.flat_map(str::chars).collect();
        chars.sort_unstable();
        chars.dedup();
        CharVocab { chars }
    }
    fn len(&self) -> usize {
        self.chars.len() + 4
    }
    fn encode(&self, s: &str) -> Vec<usize> {
        s.chars()
            .map(|c| self.chars.binary_search(&c).map_or(UNK, |i| i + 4))
            .collect()
    }
    fn decode(&self, ids: &[usize]) -> String {
        ids.iter()
            .take_while(|&&i| i != EOS)
            .filter_map(|&i| i.checked_sub(4).and_then(|k| self.chars.get(k)))
            .collect()
    }
}

/// Settings.
#[derive(Clone, Debug, Serialize)]
pub struct Seq2SeqConfig {
    /// `gru` or `lstm` (the `seq2seq` subcommand offers these; `rnn` works too).
    pub cell: Cell,
    /// Embedding size.
    pub embedding_dim: usize,
    /// Hidden size (encoder per direction, and decoder).
    pub hidden: usize,
    /// Bidirectional encoder.
    pub bidirectional: bool,
    /// Additive attention.
    pub attention: bool,
    /// Probability of feeding the true previous character during training.
    pub teacher_forcing: f64,
    /// Training pairs.
    pub train: usize,
    /// Held-out pairs.
    pub test: usize,
    /// Epochs.
    pub epochs: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Learning rate.
    pub lr: f64,
    /// Beam width for the beam-search evaluation.
    pub beam: usize,
    /// Seed.
    pub seed: u64,
}

impl Seq2SeqConfig {
    /// Check every setting (messages name the flag), and that the model fits in memory.
    pub fn validate(&self) -> Result<()> {
        use crate::validate::{
            fits_in_memory, positive, positive_real, probability, rnn_parameters, size,
            training_bytes, MAX_WIDTH,
        };
        size("--embedding-dim", self.embedding_dim, MAX_WIDTH)?;
        size("--hidden", self.hidden, MAX_WIDTH)?;
        probability("--teacher-forcing", self.teacher_forcing)?;
        size("--train", self.train, 10_000_000)?;
        size("--test", self.test, 10_000_000)?;
        positive("--epochs", self.epochs)?;
        size("--batch-size", self.batch_size, 1_000_000)?;
        positive_real("--lr", self.lr)?;
        size("--beam", self.beam, 1_000)?;
        let gates = self.cell.gates();
        let dirs = if self.bidirectional { 2 } else { 1 };
        let h = self.hidden as u128;
        let params = rnn_parameters(gates, self.embedding_dim, self.hidden, 1, dirs)
            + rnn_parameters(
                gates,
                self.embedding_dim + dirs * self.hidden,
                self.hidden,
                1,
                1,
            )
            + 8 * h * h;
        let activations = self.batch_size as u128 * 40 * (gates as u128 + 4) * h * 3;
        fits_in_memory(
            "this model",
            training_bytes(params, activations),
            "--hidden, --embedding-dim or --batch-size",
        )
    }
}

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
    fn new(cfg: &Seq2SeqConfig, vs: usize, vt: usize, g: &mut Generator) -> Result<Seq2Seq> {
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

    /// One decoder step: previous tokens `[B]` and state → logits `[B, V]` and the new state.
    fn step(&self, enc: &Encoded, prev: &[usize], state: &RnnState) -> Result<(Tensor, RnnState)> {
        let b = prev.len();
        let emb = self.tgt_emb.forward(prev, &[b])?;
        let h_prev = state.h();
        let context = match (&self.w_q, &enc.proj_keys, &self.v) {
            (Some(w_q), Some(pk), Some(v)) => {
                // e_s = vᵀ tanh(W_q h + W_k k_s);  α = softmax(e + mask);  c = Σ α_s k_s
                let q = w_q.forward(h_prev)?.unsqueeze(1)?; // [B, 1, A]
                let scores = pk.add(&q)?.tanh()?.matmul(v)?.squeeze(2)?; // [B, S]
                let alpha = scores.add(&enc.mask)?.softmax(1)?;
                Some(alpha.unsqueeze(1)?.matmul(&enc.keys)?.squeeze(1)?) // [B, K]
            }
            _ => None,
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
        Ok((self.out.forward(&feat)?, new_state))
    }

    /// Teacher-forced (or partly sampled) loss of a batch.
    fn loss(
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
            let (logits, st) = self.step(&enc, &prev, &state)?;
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
    fn greedy(&self, src: &[Vec<usize>], max_len: usize) -> Result<Vec<Vec<usize>>> {
        let enc = self.encode(src)?;
        let b = src.len();
        let mut prev = vec![SOS; b];
        let mut state = enc.state.clone();
        let mut out = vec![Vec::new(); b];
        let mut done = vec![false; b];
        for _ in 0..max_len {
            let (logits, st) = self.step(&enc, &prev, &state)?;
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

    /// Beam search for one source, keeping `width` hypotheses scored by total log-probability.
    fn beam(&self, src: &[usize], width: usize, max_len: usize) -> Result<Vec<usize>> {
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
            let (logits, st) = self.step(&enc, &prev, &state)?;
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

/// Results.
#[derive(Clone, Debug, Serialize)]
pub struct Seq2SeqReport {
    /// Settings.
    pub config: Seq2SeqConfig,
    /// `(epoch, mean training loss, greedy accuracy on held-out dates, seconds)`.
    pub history: Vec<(usize, f64, f64, f64)>,
    /// Exact-match accuracy, greedy decoding.
    pub greedy_accuracy: f64,
    /// Exact-match accuracy, beam search.
    pub beam_accuracy: f64,
    /// A few held-out examples: (source, target, greedy output).
    pub examples: Vec<(String, String, String)>,
    /// Wall time (s).
    pub seconds: f64,
}

/// Train and evaluate on generated dates.
pub fn run(cfg: &Seq2SeqConfig, quiet: bool) -> Result<Seq2SeqReport> {
    let t0 = std::time::Instant::now();
    cfg.validate()?;
    let train = dates(cfg.train, cfg.seed);
    let test = dates(cfg.test, cfg.seed ^ 0x7E57);
    let sv = CharVocab::new(train.iter().map(|p| p.0.as_str()));
    let tv = CharVocab::new(train.iter().map(|p| p.1.as_str()));
    let mut g = Generator::new(cfg.seed);
    recurrent::manual_seed(cfg.seed);
    let model = Seq2Seq::new(cfg, sv.len(), tv.len(), &mut g)?;
    let mut opt = Adam::new(model.parameters(), AdamConfig::adam().with_lr(cfg.lr))?;
    let enc_src: Vec<Vec<usize>> = train.iter().map(|p| sv.encode(&p.0)).collect();
    let enc_tgt: Vec<Vec<usize>> = train.iter().map(|p| tv.encode(&p.1)).collect();
    let test_src: Vec<Vec<usize>> = test.iter().map(|p| sv.encode(&p.0)).collect();
    let max_len = 12;
    let eval_greedy = |m: &Seq2Seq| -> Result<(f64, Vec<String>)> {
        let _ng = recurrent::no_grad();
        let mut outs = Vec::new();
        for chunk in test_src.chunks(256) {
            outs.extend(m.greedy(chunk, max_len)?.iter().map(|ids| tv.decode(ids)));
        }
        let acc =
            outs.iter().zip(&test).filter(|(o, p)| **o == p.1).count() as f64 / test.len() as f64;
        Ok((acc, outs))
    };
    let step = TrainStep {
        clip: Some(1.0),
        checks: Checks::None,
        names: &[],
    };
    let mut history = Vec::new();
    for epoch in 0..cfg.epochs {
        let te = std::time::Instant::now();
        let mut order: Vec<usize> = (0..train.len()).collect();
        g.shuffle(&mut order);
        let (mut total, mut n) = (0.0, 0usize);
        for idx in order.chunks(cfg.batch_size.max(1)) {
            let src: Vec<Vec<usize>> = idx.iter().map(|&i| enc_src[i].clone()).collect();
            let tgt: Vec<Vec<usize>> = idx.iter().map(|&i| enc_tgt[i].clone()).collect();
            let outcome = step.run(&mut opt, || {
                Ok((model.loss(&src, &tgt, cfg.teacher_forcing, &mut g)?, ()))
            })?;
            total += outcome.loss() * idx.len() as f64;
            n += idx.len();
        }
        let (acc, _) = eval_greedy(&model)?;
        history.push((epoch + 1, total / n as f64, acc, te.elapsed().as_secs_f64()));
        if !quiet {
            eprintln!(
                "epoch {:>3}/{}  loss {:.4}  held-out exact match (greedy) {:.4}  {:.0} s",
                epoch + 1,
                cfg.epochs,
                total / n as f64,
                acc,
                te.elapsed().as_secs_f64()
            );
        }
    }
    let (greedy, outs) = eval_greedy(&model)?;
    let beam_acc = {
        let _ng = recurrent::no_grad();
        let mut ok = 0;
        for (s, p) in test_src.iter().zip(&test) {
            if tv.decode(&model.beam(s, cfg.beam.max(1), max_len)?) == p.1 {
                ok += 1;
            }
        }
        ok as f64 / test.len() as f64
    };
    let examples = test
        .iter()
        .zip(&outs)
        .take(8)
        .map(|(p, o)| (p.0.clone(), p.1.clone(), o.clone()))
        .collect();
    Ok(Seq2SeqReport {
        config: cfg.clone(),
        history,
        greedy_accuracy: greedy,
        beam_accuracy: beam_acc,
        examples,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Translate dates with a freshly trained model is not offered (models are small and fast to
/// train); this renders one date in every format, for the README.
pub fn formats_example() -> Vec<String> {
    (0..FORMATS).map(|f| render(2021, 3, 3, f)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_and_formats() {
        assert_eq!(weekday(2021, 3, 3), 2); // a Wednesday
        assert_eq!(weekday(2000, 1, 1), 5); // a Saturday
        assert_eq!(days_in_month(2000, 2), 29);
        assert_eq!(days_in_month(1900, 2), 28);
        assert_eq!(render(2021, 3, 3, 4), "Wed, 3 Mar 2021");
        assert_eq!(render(2021, 3, 3, 5), "3rd of March 2021");
        assert_eq!(render(2011, 12, 11, 10), "11th, december 2011");
        let d = dates(100, 1);
        assert_eq!(d, dates(100, 1));
        assert!(d.iter().all(|(_, t)| t.len() == 10 && &t[4..5] == "-"));
        let v = CharVocab::new(["ab"].into_iter());
        assert_eq!(v.decode(&v.encode("ba")), "ba");
        assert_eq!(v.encode("z"), vec![UNK]);
    }
}
