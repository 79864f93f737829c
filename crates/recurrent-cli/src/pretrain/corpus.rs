//! The language model's text: reviews tokenised as the lab tokenises them, a vocabulary of
//! the held-in reviews with `<eos>` between reviews, the held-out reviews for perplexity, each
//! epoch's stream (the reviews in an order drawn from (seed, epoch)), and the sampler of the
//! sampled softmax.

use anyhow::{bail, Result};
use rayon::prelude::*;
use recurrent::Generator;
use recurrent_data::tokenizer::Tokenizer;
use recurrent_data::vocab::Vocab;

/// The word that ends every review in the stream.
pub const EOS: &str = "<eos>";

/// Tokenised and encoded reviews, split into training and held-out reviews.
pub struct LmCorpus {
    /// The vocabulary (`<unk>`, `<pad>`, then by frequency; `<eos>` among the words).
    pub vocab: Vocab,
    /// Training reviews as ids, each ending with `<eos>`.
    pub train: Vec<Vec<u32>>,
    /// Held-out reviews, likewise.
    pub val: Vec<Vec<u32>>,
}

impl LmCorpus {
    /// Tokenise `texts`, hold out `val_fraction` of them (at least one; drawn from `seed`),
    /// build the vocabulary from the rest (or use `vocab`, a pretrained model's), and encode.
    pub fn new(
        texts: &[&str],
        val_fraction: f64,
        max_vocab: usize,
        min_freq: usize,
        seed: u64,
        vocab: Option<Vocab>,
    ) -> Result<LmCorpus> {
        if texts.len() < 2 {
            bail!(
                "the language model needs at least 2 reviews (one held out), got {}",
                texts.len()
            );
        }
        let mut tokens: Vec<Vec<String>> = texts
            .par_iter()
            .map(|t| Tokenizer::BasicEnglish.tokenize(t))
            .collect();
        for t in &mut tokens {
            t.push(EOS.to_string());
        }
        let mut order: Vec<usize> = (0..texts.len()).collect();
        Generator::new(seed ^ 0x4C4D_5641_4C00).shuffle(&mut order);
        let n_val = ((texts.len() as f64 * val_fraction).ceil() as usize).clamp(1, texts.len() - 1);
        let (val_idx, train_idx) = order.split_at(n_val);
        let (mut val_idx, mut train_idx) = (val_idx.to_vec(), train_idx.to_vec());
        val_idx.sort_unstable();
        train_idx.sort_unstable();
        let vocab = match vocab {
            Some(v) => v,
            None => Vocab::build(train_idx.iter().map(|&i| &tokens[i]), max_vocab, min_freq),
        };
        if vocab.token(vocab.index(EOS)) != Some(EOS) {
            bail!("the vocabulary has no {EOS} word: it is not a language model's vocabulary");
        }
        let encode = |idx: &[usize]| -> Vec<Vec<u32>> {
            idx.par_iter().map(|&i| vocab.encode(&tokens[i])).collect()
        };
        let (train, val) = (encode(&train_idx), encode(&val_idx));
        Ok(LmCorpus { vocab, train, val })
    }

    /// Tokens in the training reviews (`<eos>` included).
    pub fn train_tokens(&self) -> usize {
        self.train.iter().map(Vec::len).sum()
    }

    /// The training stream of epoch `epoch`: the reviews in an order drawn from (seed,
    /// epoch), joined.
    pub fn epoch_stream(&self, seed: u64, epoch: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.train.len()).collect();
        Generator::new(seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .shuffle(&mut order);
        order
            .iter()
            .flat_map(|&i| self.train[i].iter().map(|&id| id as usize))
            .collect()
    }

    /// The held-out reviews, joined in their order.
    pub fn val_stream(&self) -> Vec<usize> {
        self.val.iter().flatten().map(|&id| id as usize).collect()
    }

    /// How often each word occurs in the training reviews.
    pub fn counts(&self) -> Vec<u64> {
        let mut c = vec![0u64; self.vocab.len()];
        for id in self.train.iter().flatten() {
            c[*id as usize] += 1;
        }
        c
    }
}

/// Draws the sampled softmax's words: with replacement, from the unigram distribution raised
/// to the power 0.75 (word2vec's), and gives `log(S · q(w))`, the log expected count of a word
/// among `S` draws, which the loss subtracts from its logit.
pub struct Sampler {
    cdf: Vec<f64>,
    log_expected: Vec<f32>,
    samples: usize,
}

impl Sampler {
    /// A sampler of `samples` words a step for words seen `counts` times.
    ///
    /// ```
    /// use recurrent::Generator;
    /// use recurrent_cli::pretrain::Sampler;
    /// let s = Sampler::new(&[0, 0, 81, 1], 4);
    /// let drawn = s.draw(&mut Generator::new(1));
    /// assert_eq!(drawn.len(), 4);
    /// assert!(drawn.iter().all(|&w| w == 2 || w == 3)); // never a word of count 0
    /// // q(2) = 81^0.75 / (81^0.75 + 1) = 27/28: expected 4 · 27/28 times in 4 draws
    /// assert!((s.log_expected(2) - (4.0f32 * 27.0 / 28.0).ln()).abs() < 1e-6);
    /// ```
    pub fn new(counts: &[u64], samples: usize) -> Sampler {
        let weights: Vec<f64> = counts.iter().map(|&c| (c as f64).powf(0.75)).collect();
        let total: f64 = weights.iter().sum::<f64>().max(f64::MIN_POSITIVE);
        let mut acc = 0.0;
        let cdf = weights
            .iter()
            .map(|w| {
                acc += w / total;
                acc
            })
            .collect();
        let log_expected = weights
            .iter()
            .map(|w| ((samples as f64 * w / total).max(1e-30)).ln() as f32)
            .collect();
        Sampler {
            cdf,
            log_expected,
            samples,
        }
    }

    /// `samples` words drawn from `g`.
    pub fn draw(&self, g: &mut Generator) -> Vec<usize> {
        let last = self.cdf.len() - 1;
        (0..self.samples)
            .map(|_| {
                let u = g.uniform_f64() * self.cdf[last];
                self.cdf.partition_point(|&c| c <= u).min(last)
            })
            .collect()
    }

    /// `log(S · q(word))`.
    pub fn log_expected(&self, word: usize) -> f32 {
        self.log_expected[word]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_holds_out_reviews_and_ends_each_with_eos() {
        let texts = ["a b c", "a b", "b c d", "a", "c c"];
        let c = LmCorpus::new(&texts, 0.2, 100, 1, 7, None).unwrap();
        assert_eq!((c.train.len(), c.val.len()), (4, 1));
        let eos = c.vocab.index(EOS);
        assert!(c
            .train
            .iter()
            .chain(&c.val)
            .all(|r| *r.last().unwrap() == eos));
        // The vocabulary is the held-in reviews' only.
        let held_out: Vec<&str> = c.val[0]
            .iter()
            .map(|&i| c.vocab.token(i).unwrap())
            .collect();
        let all = c.counts();
        assert_eq!(all.iter().sum::<u64>() as usize, c.train_tokens());
        assert!(!held_out.is_empty());
        // Every epoch's stream holds the same tokens in another order.
        let (s0, s1) = (c.epoch_stream(1, 0), c.epoch_stream(1, 1));
        let (mut a, mut b) = (s0.clone(), s1.clone());
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b);
        assert_eq!(s0, c.epoch_stream(1, 0));
        assert!(LmCorpus::new(&["only one"], 0.5, 10, 1, 1, None).is_err());
    }

    #[test]
    fn sampler_follows_the_smoothed_unigram_distribution() {
        let counts = [0u64, 0, 1000, 100, 10];
        let s = Sampler::new(&counts, 20_000);
        let drawn = s.draw(&mut Generator::new(3));
        let share = |w: usize| drawn.iter().filter(|&&d| d == w).count() as f64 / 20_000.0;
        let z: f64 = counts.iter().map(|&c| (c as f64).powf(0.75)).sum();
        for (w, &c) in counts.iter().enumerate().skip(2) {
            let q = (c as f64).powf(0.75) / z;
            assert!((share(w) - q).abs() < 0.01, "word {w}: {} vs {q}", share(w));
        }
        assert_eq!(share(0) + share(1), 0.0);
    }
}
