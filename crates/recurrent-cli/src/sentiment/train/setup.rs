//! The first stage of a sentiment run: open it. A new run needs an absent or empty directory
//! (made later, with the data); a resumed one brings back its settings, its run file and its
//! last checkpoint, applying and announcing the options that may change.

use super::run_file::RunFile;
use super::{TrainOptions, TrainSummary, TrainerState};
use crate::cell::Cell;
use crate::checkpoint::{self, Files};
use crate::pretrain::{load_lm, LmDir};
use crate::sentiment::config::SentimentConfig;
use crate::sentiment::modeldir::load_config;
use anyhow::{anyhow, bail, Context, Result};

/// A run before its data and model: its settings, where it stands, and its last checkpoint.
pub(super) struct Setup<'a> {
    pub(super) cfg: SentimentConfig,
    pub(super) opts: &'a TrainOptions,
    pub(super) run_file: RunFile,
    pub(super) state: TrainerState,
    pub(super) checkpoint: Option<Files>,
    /// The pretrained language model of `init_from`, read when the run starts from it (a new
    /// run, or a resumed one without a checkpoint yet).
    pub(super) lm: Option<LmDir>,
}

/// What opening a run found.
pub(super) enum Opened<'a> {
    /// A run to train.
    Ready(Box<Setup<'a>>),
    /// A resumed run that has no epochs left.
    Finished(TrainSummary),
}

impl<'a> Setup<'a> {
    /// Open the run in `opts.out`: a new one (the directory must be absent or empty; it is
    /// made once the data is read), or on resume the settings, run file and last checkpoint
    /// it left.
    pub(super) fn open(cfg: SentimentConfig, opts: &'a TrainOptions) -> Result<Opened<'a>> {
        let run_file = RunFile {
            limit: opts.limit,
            skip_nonfinite: opts.skip_nonfinite,
            threads: Some(opts.threads),
            ..RunFile::default()
        };
        let (cfg, run_file, checkpoint) = if opts.resume {
            Self::resumed(opts)?
        } else {
            if !crate::rundir::is_absent_or_empty(&opts.out)? {
                bail!(
                    "{} already exists and is not empty: resume it with `recurrent train --resume {}`, or choose another --out (nothing was overwritten)",
                    opts.out.display(),
                    opts.out.display()
                );
            }
            (cfg, run_file, None)
        };
        let lm = match cfg.init_from.as_str() {
            "" => None,
            _ if checkpoint.is_some() => None,
            dir => Some(
                load_lm(std::path::Path::new(dir)).with_context(|| format!("--init-from {dir}"))?,
            ),
        };
        let cfg = match &lm {
            Some(lm) if !opts.resume => with_encoder_of(cfg, lm, opts),
            _ => cfg,
        };
        cfg.validate()?;
        let mut state: TrainerState = match &checkpoint {
            Some(files) => serde_json::from_slice(
                files
                    .get("trainer.json")
                    .ok_or_else(|| anyhow!("checkpoint without trainer.json"))?,
            )
            .context("corrupt trainer state")?,
            None => TrainerState::default(),
        };
        if state.finished && state.epoch >= cfg.epochs {
            opts.log(format!(
                "{} is already finished ({} epochs); pass --epochs to train longer",
                opts.out.display(),
                state.epoch
            ));
            return Ok(Opened::Finished(state.summary(false, 0.0)));
        }
        state.finished = false;
        Ok(Opened::Ready(Box::new(Setup {
            cfg,
            opts,
            run_file,
            state,
            checkpoint,
            lm,
        })))
    }

    /// Everything that defines a resumed run comes back from its directory; the options that
    /// may change are applied and announced.
    fn resumed(opts: &TrainOptions) -> Result<(SentimentConfig, RunFile, Option<Files>)> {
        let run = &opts.out;
        let (mut cfg, _) =
            load_config(run).with_context(|| format!("--resume {}", run.display()))?;
        let run_file = RunFile::load(run).with_context(|| format!("--resume {}", run.display()))?;
        if let Some(e) = opts.epochs_override.filter(|&e| e != cfg.epochs) {
            eprintln!(
                "--epochs {e}: the run was started with {}; the learning-rate schedule now spans {e} epochs from here on",
                cfg.epochs
            );
            cfg.epochs = e;
        }
        if let Some(p) = opts.patience_override.filter(|&p| p != cfg.patience) {
            eprintln!("--patience {p}: the run was started with {}", cfg.patience);
            cfg.patience = p;
        }
        match run_file.threads {
            Some(t) if t != opts.threads => eprintln!(
                "--threads {}: the run was started with {t}; the results may differ in their last bits from an uninterrupted run (the batch slices depend on the thread count)",
                opts.threads
            ),
            _ => {}
        }
        // With settings but no checkpoint yet, the run starts from the beginning.
        let checkpoint = match checkpoint::load_latest(run, &mut |w| eprintln!("warning: {w}"))? {
            Some((name, files)) => {
                opts.log(format!("Resuming {} from checkpoint {name}", run.display()));
                Some(files)
            }
            None => {
                opts.log(format!(
                    "{} has no checkpoint yet: starting it from the beginning",
                    run.display()
                ));
                None
            }
        };
        Ok((cfg, run_file, checkpoint))
    }
}

/// `cfg` with the architecture of the pretrained encoder `lm`: its tokenizer, vocabulary
/// size, embedding, a unidirectional LSTM of its sizes (announced when they change a setting).
fn with_encoder_of(cfg: SentimentConfig, lm: &LmDir, opts: &TrainOptions) -> SentimentConfig {
    let c = &lm.info.config;
    let new = SentimentConfig {
        tokenizer: recurrent_data::tokenizer::Tokenizer::BasicEnglish,
        max_vocab: lm.vocab.len() - 2,
        cell: Cell::Lstm,
        embedding_dim: c.embedding_dim,
        hidden_size: c.hidden,
        proj_size: c.proj_size(),
        num_layers: c.layers,
        bidirectional: false,
        ..cfg.clone()
    };
    if new != cfg {
        opts.log(format!(
            "--init-from {}: a unidirectional LSTM {}x{}{}, embedding {}, vocabulary {} words (the pretrained encoder's)",
            lm.dir.display(),
            new.num_layers,
            new.hidden_size,
            match new.proj_size {
                0 => String::new(),
                p => format!(" projected to {p}"),
            },
            new.embedding_dim,
            lm.vocab.len()
        ));
    }
    new
}
