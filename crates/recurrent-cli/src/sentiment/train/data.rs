//! The data stage of a sentiment run: find and read the corpus, check it is the one a resumed
//! run started with, hold out the validation split, tokenise, build (or reload) the
//! vocabulary, create the run directory of a new run, and encode the reviews.

use super::run_file::{corpus_fingerprint, RUN_FILE};
use super::setup::Setup;
use crate::datapath::find_imdb;
use crate::sentiment::config::{SentimentConfig, Truncate};
use crate::sentiment::modeldir::{load_config, save_config};
use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use recurrent::io::write_atomic;
use recurrent::Generator;
use recurrent_data::batch::Encoded;
use recurrent_data::imdb::{self, Imdb, ReadOptions};
use recurrent_data::split::stratified_split;
use recurrent_data::vocab::Vocab;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// The encoded training and validation reviews.
pub(super) struct TrainData {
    /// The training reviews (shared with the batch loader's threads).
    pub(super) train: Arc<Vec<Encoded>>,
    /// The validation reviews.
    pub(super) val: Vec<Encoded>,
    /// Entries of the vocabulary.
    pub(super) vocab_len: usize,
}

impl Setup<'_> {
    /// Read, split, tokenise and encode the corpus; a new run's directory is created here.
    pub(super) fn data(&mut self) -> Result<TrainData> {
        let (data_path, corpus) = self.read_corpus()?;
        let fingerprint = corpus_fingerprint(&corpus.train);
        if let Some(want) = self
            .run_file
            .data_sha256
            .as_ref()
            .filter(|_| self.opts.resume)
        {
            if *want != fingerprint {
                bail!(
                    "the corpus at {} does not hold the reviews this run started with (it was {}): \
                     pass --data with that corpus",
                    data_path.display(),
                    self.run_file.data.display()
                );
            }
        }
        let labels: Vec<u8> = corpus.train.iter().map(|r| r.label).collect();
        let (train_idx, val_idx) = self.split(&labels)?;
        let cfg = &self.cfg;
        let tokenize = |idx: &[usize]| -> Vec<Vec<String>> {
            idx.par_iter()
                .map(|&i| cfg.tokenizer.tokenize(&corpus.train[i].text))
                .collect()
        };
        let train_tokens = tokenize(&train_idx);
        let val_tokens = tokenize(&val_idx);
        let vocab = self.vocabulary(&train_tokens, &data_path, fingerprint)?;
        let pick = |idx: &[usize]| idx.iter().map(|&i| labels[i]).collect::<Vec<u8>>();
        let cfg = &self.cfg;
        let train = Arc::new(encode_all(cfg, &vocab, &train_tokens, &pick(&train_idx)));
        let val = encode_all(cfg, &vocab, &val_tokens, &pick(&val_idx));
        let mean_len = train.iter().map(|e| e.ids.len()).sum::<usize>() as f64 / train.len() as f64;
        self.opts.log(format!(
            "{} training / {} validation reviews, vocabulary {} tokens, mean length {:.0} tokens (max_len {})",
            train.len(),
            val.len(),
            vocab.len(),
            mean_len,
            cfg.max_len
        ));
        Ok(TrainData {
            train,
            val,
            vocab_len: vocab.len(),
        })
    }

    /// Find and read the training split. A resumed run reads the data it started with,
    /// unless told where it is now.
    fn read_corpus(&self) -> Result<(PathBuf, Imdb)> {
        let opts = self.opts;
        let remembered: Option<PathBuf> = if opts.resume && opts.data.is_none() {
            Some(self.run_file.data.clone()).filter(|p| p.exists())
        } else {
            None
        };
        let data_path = find_imdb(
            opts.data.as_deref().or(remembered.as_deref()),
            opts.allow_download,
        )?;
        let t0 = Instant::now();
        let corpus = imdb::read(
            &data_path,
            &ReadOptions {
                test: false,
                ..Default::default()
            },
        )
        .with_context(|| format!("reading the IMDB corpus at {}", data_path.display()))?;
        opts.log(format!(
            "Read {} reviews from {} in {:.1} s",
            corpus.train.len(),
            data_path.display(),
            t0.elapsed().as_secs_f64()
        ));
        Ok((data_path, corpus))
    }

    /// The training and validation indices: a stratified split, the training part cut to the
    /// run's `--limit`.
    fn split(&self, labels: &[u8]) -> Result<(Vec<usize>, Vec<usize>)> {
        let cfg = &self.cfg;
        let (mut train_idx, val_idx) = stratified_split(labels, cfg.val_fraction, cfg.seed);
        if let Some(limit) = self.run_file.limit {
            let mut g = Generator::new(cfg.seed ^ 0x11A17);
            g.shuffle(&mut train_idx);
            train_idx.truncate(limit);
            train_idx.sort_unstable();
        }
        if train_idx.is_empty() {
            bail!("no training reviews left (check --limit and val_fraction)");
        }
        Ok((train_idx, val_idx))
    }

    /// The vocabulary: a resumed run's own, the pretrained language model's (`init_from`), or
    /// one built from the training reviews; for a new run
    /// the run directory appears here, whole (settings, vocabulary, data location): a
    /// run that failed or was killed earlier leaves none, and from here on it is resumable.
    fn vocabulary(
        &mut self,
        train_tokens: &[Vec<String>],
        data_path: &Path,
        fingerprint: String,
    ) -> Result<Vocab> {
        let run = &self.opts.out;
        if self.opts.resume {
            return Ok(load_config(run)?.1);
        }
        let v = match &self.lm {
            Some(lm) => lm.vocab.clone(),
            None => Vocab::build(train_tokens, self.cfg.max_vocab, self.cfg.min_freq),
        };
        self.run_file.data =
            std::fs::canonicalize(data_path).unwrap_or_else(|_| data_path.to_path_buf());
        self.run_file.data_sha256 = Some(fingerprint);
        let abort_in_setup = self.opts.abort_in_setup;
        crate::rundir::create(run, |dir| {
            write_atomic(
                &dir.join(RUN_FILE),
                serde_json::to_string_pretty(&self.run_file)?.as_bytes(),
            )?;
            fault_point(abort_in_setup, 1);
            save_config(dir, &self.cfg, &v)?;
            fault_point(abort_in_setup, 2);
            Ok(())
        })?;
        Ok(v)
    }
}

/// A test hook (`--fault-abort-in-setup N`): abort the process, as a kill would, after the
/// `at`-th setup file, to test that a run killed during setup leaves no run directory.
fn fault_point(abort_after: Option<usize>, at: usize) {
    if abort_after == Some(at) {
        std::process::abort();
    }
}

/// Token ids of each review, cut to `max_len` at the configured end (an empty review keeps one
/// `<unk>` step).
fn encode_all(
    cfg: &SentimentConfig,
    vocab: &Vocab,
    tokens: &[Vec<String>],
    labels: &[u8],
) -> Vec<Encoded> {
    tokens
        .par_iter()
        .zip(labels.par_iter())
        .map(|(t, &y)| {
            let n = t.len();
            let keep = match cfg.truncate {
                Truncate::Head => &t[..n.min(cfg.max_len)],
                Truncate::Tail => &t[n.saturating_sub(cfg.max_len)..],
            };
            let mut ids = vocab.encode(keep);
            if ids.is_empty() {
                ids.push(vocab.unk_index()); // an empty review still has one step
            }
            Encoded {
                ids,
                label: y as f32,
            }
        })
        .collect()
}
