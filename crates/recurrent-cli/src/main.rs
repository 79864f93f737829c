//! `recurrent`: train, evaluate and use recurrent models from the command line.

use anyhow::{bail, Context, Result};
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use recurrent_cli::cell::Cell;
use recurrent_cli::datapath;
use recurrent_cli::sentiment::config::{
    OptimizerKind, Pool, ScheduleKind, SentimentConfig, Truncate,
};
use recurrent_cli::sentiment::train::{train, TrainOptions};
use recurrent_cli::sentiment::{self, EvalSource};
use recurrent_data::download::DownloadSpec;
use recurrent_data::tokenizer::Tokenizer;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc keeps freed memory for reuse: the training step allocates and frees buffers of
/// tens of megabytes, which glibc maps and unmaps every time (page faults took 11% of a step).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "recurrent",
    version,
    about = "Recurrent neural networks (RNN, LSTM, GRU) with PyTorch's semantics, fast on the CPU"
)]
struct Cli {
    /// Worker threads (default: all cores).
    #[arg(long, global = true, env = "RECURRENT_THREADS")]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train an IMDB sentiment classifier (the course's lab).
    Train(Box<TrainArgs>),
    /// Evaluate a trained model: accuracy, precision, recall, F1, confusion matrix.
    Eval(EvalArgs),
    /// Classify texts with a trained model.
    Predict(PredictArgs),
    /// Download or inspect datasets.
    #[command(subcommand)]
    Data(DataCommand),
    /// Time the speed cases (compare with scripts/bench_torch.py and bench_keras.py).
    Bench(BenchArgs),
    /// Forecast a univariate time series (CSV) and compare with naive baselines.
    Forecast(Box<ForecastArgs>),
    /// Character-level language model: train on a text file, sample from it.
    #[command(subcommand)]
    Charlm(CharlmCommand),
    /// Encoder-decoder with attention on a generated date-translation task.
    Seq2seq(Seq2SeqArgs),
    /// Measure the vanishing gradient: ||dL/dh_t|| over time for RNN, LSTM and GRU.
    Diagnose(DiagnoseArgs),
}

/// Dropout variants shared by the subcommands (all off by default).
#[derive(Args, Clone, Copy, Default)]
struct DropoutArgs {
    /// Variational dropout on recurrent layer inputs (one mask per sequence; not in PyTorch).
    #[arg(long, default_value_t = 0.0)]
    var_input: f64,
    /// Variational dropout on the recurrent state h_{t-1}.
    #[arg(long, default_value_t = 0.0)]
    var_state: f64,
    /// Variational dropout on recurrent layer outputs.
    #[arg(long, default_value_t = 0.0)]
    var_output: f64,
    /// DropConnect on the hidden-to-hidden weights (AWD-LSTM's weight drop).
    #[arg(long, default_value_t = 0.0)]
    weight_drop: f64,
}

#[derive(Args)]
struct ForecastArgs {
    /// The CSV file (with a header row).
    #[arg(long)]
    csv: PathBuf,
    /// The value column (name or 0-based index).
    #[arg(long)]
    column: String,
    /// Past values per window.
    #[arg(long, default_value_t = 12)]
    window: usize,
    /// Steps ahead to forecast.
    #[arg(long, default_value_t = 1)]
    horizon: usize,
    /// direct (one output per step) or recursive (feed forecasts back).
    #[arg(long, value_enum, default_value = "direct")]
    strategy: recurrent_cli::forecast::Strategy,
    /// Held-out points at the end (default: a fifth of the series).
    #[arg(long)]
    test: Option<usize>,
    /// Fraction of the remaining points used for validation.
    #[arg(long, default_value_t = 0.1)]
    val_fraction: f64,
    /// Season length for the seasonal-naive baseline (e.g. 12 for monthly data; 0: none).
    #[arg(long, default_value_t = 0)]
    season: usize,
    /// Transform before scaling (undone on the forecasts): none, log, diff or log-diff.
    #[arg(long, value_enum, default_value = "none")]
    transform: recurrent_cli::forecast::Transform,
    /// Recurrent cell.
    #[arg(long, value_enum, default_value = "lstm")]
    cell: Cell,
    /// Hidden size.
    #[arg(long, default_value_t = 32)]
    hidden: usize,
    /// Layers.
    #[arg(long, default_value_t = 1)]
    layers: usize,
    /// Epochs.
    #[arg(long, default_value_t = 200)]
    epochs: usize,
    /// Windows per batch.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 5e-3)]
    lr: f64,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output folder (plot, forecasts, metrics).
    #[arg(long, default_value = "runs/forecast")]
    out: PathBuf,
    /// No progress lines.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    dropout: DropoutArgs,
}

#[derive(Subcommand)]
enum CharlmCommand {
    /// Train on a text file (default: tiny-shakespeare when present).
    Train(Box<CharlmTrainArgs>),
    /// Generate text from a trained model.
    Sample(CharlmSampleArgs),
}

#[derive(Args)]
struct CharlmTrainArgs {
    /// The training text (UTF-8).
    #[arg(long)]
    text: Option<PathBuf>,
    /// The model directory.
    #[arg(long, default_value = "runs/charlm")]
    out: PathBuf,
    /// Continue the run in this directory.
    #[arg(long, value_name = "DIR", conflicts_with = "out")]
    resume: Option<PathBuf>,
    /// lstm or gru.
    #[arg(long, default_value = "lstm", value_parser = Cell::parser(&[Cell::Lstm, Cell::Gru]))]
    cell: Cell,
    /// Embedding size.
    #[arg(long, default_value_t = 64)]
    embedding_dim: usize,
    /// Hidden size.
    #[arg(long, default_value_t = 256)]
    hidden: usize,
    /// Layers.
    #[arg(long, default_value_t = 2)]
    layers: usize,
    /// Dropout between layers.
    #[arg(long, default_value_t = 0.1)]
    dropout: f64,
    /// Characters per BPTT chunk.
    #[arg(long, default_value_t = 100)]
    seq_len: usize,
    /// Parallel streams.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Epochs.
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    /// Use only the first N characters of the text (quick runs).
    #[arg(long)]
    max_chars: Option<usize>,
    /// Stop as if interrupted after N steps (for testing resume).
    #[arg(long, hide = true)]
    stop_after_steps: Option<u64>,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// No progress lines.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
struct CharlmSampleArgs {
    /// The model directory.
    #[arg(long)]
    model: PathBuf,
    /// Text to start from.
    #[arg(long, default_value = "")]
    prompt: String,
    /// Characters to generate.
    #[arg(long, default_value_t = 500)]
    length: usize,
    /// Softmax temperature.
    #[arg(long, default_value_t = 0.8)]
    temperature: f64,
    /// Sample only among the k most likely characters (0: all).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Args)]
struct Seq2SeqArgs {
    /// gru or lstm.
    #[arg(long, default_value = "gru", value_parser = Cell::parser(&[Cell::Gru, Cell::Lstm]))]
    cell: Cell,
    /// Embedding size.
    #[arg(long, default_value_t = 32)]
    embedding_dim: usize,
    /// Hidden size.
    #[arg(long, default_value_t = 128)]
    hidden: usize,
    /// Bidirectional encoder (true/false).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    bidirectional: bool,
    /// Additive attention (true/false).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    attention: bool,
    /// Probability of feeding the true previous character in training.
    #[arg(long, default_value_t = 1.0)]
    teacher_forcing: f64,
    /// Training pairs.
    #[arg(long, default_value_t = 20_000)]
    train: usize,
    /// Held-out pairs.
    #[arg(long, default_value_t = 2_000)]
    test: usize,
    /// Epochs.
    #[arg(long, default_value_t = 8)]
    epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 3e-3)]
    lr: f64,
    /// Beam width.
    #[arg(long, default_value_t = 4)]
    beam: usize,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// No progress lines.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
struct DiagnoseArgs {
    /// Sequence length.
    #[arg(long, default_value_t = 50)]
    steps: usize,
    /// Input features.
    #[arg(long, default_value_t = 8)]
    input: usize,
    /// Hidden size.
    #[arg(long, default_value_t = 64)]
    hidden: usize,
    /// Layers.
    #[arg(long, default_value_t = 2)]
    layers: usize,
    /// Training steps per cell type.
    #[arg(long, default_value_t = 300)]
    train_steps: usize,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output folder.
    #[arg(long, default_value = "runs/diagnose")]
    out: PathBuf,
    /// No progress lines.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
struct BenchArgs {
    /// Cases: imdb, small, bidir, packed (and padded), cell-latency, lab (default: all).
    #[arg(long, value_delimiter = ',')]
    cases: Vec<String>,
    /// Layers: lstm, gru, rnn, lab (default: all).
    #[arg(long, value_delimiter = ',')]
    layers: Vec<String>,
    /// Modes: train, infer (default: both).
    #[arg(long, value_delimiter = ',')]
    modes: Vec<String>,
    /// Timed steps per case (after two warm-up steps).
    #[arg(long, default_value_t = 7)]
    repeat: usize,
    /// Write the rows as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also measure the GEMM ceiling at the imdb shapes.
    #[arg(long)]
    gemm: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Preset {
    /// The tuned default (bidirectional LSTM, max pooling).
    Default,
    /// The course's architecture: embedding -> 2-layer LSTM -> linear on the last hidden state.
    Course,
}

#[derive(Args)]
struct TrainArgs {
    /// Run directory (model, vocabulary, metrics, plots, checkpoints).
    #[arg(long, default_value = "runs/imdb")]
    out: PathBuf,
    /// Continue the interrupted run in this directory.
    #[arg(long, value_name = "DIR", conflicts_with = "out")]
    resume: Option<PathBuf>,
    /// The IMDB corpus: aclImdb_v1.tar.gz, an extracted aclImdb/ folder, or a folder holding one.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Never download the corpus.
    #[arg(long)]
    no_download: bool,
    /// A TOML file of settings (the keys are the long flag names with '_' for '-').
    #[arg(long)]
    config: Option<PathBuf>,
    /// Start from a preset, before the config file and flags.
    #[arg(long, value_enum)]
    preset: Option<Preset>,
    /// Train on at most N reviews (quick experiments).
    #[arg(long)]
    limit: Option<usize>,
    /// Skip steps whose loss or gradient is not finite (default: stop with an error).
    #[arg(long)]
    skip_nonfinite: bool,
    /// No progress bars or logs (errors and per-epoch lines still print).
    #[arg(long)]
    quiet: bool,
    /// Stop as if interrupted after N steps (for testing resume).
    #[arg(long, hide = true)]
    stop_after_steps: Option<u64>,
    /// Replace the loss of these steps by NaN (for testing the non-finite guards).
    #[arg(long, hide = true, value_delimiter = ',')]
    fault_nan_steps: Vec<u64>,
    /// Abort after this many setup steps of the run directory (for testing a kill in setup).
    #[arg(long, hide = true)]
    fault_abort_in_setup: Option<usize>,
    #[command(flatten)]
    settings: Settings,
}

/// Every setting of [`SentimentConfig`] as an optional flag.
#[derive(Args, Default)]
struct Settings {
    /// Tokenizer: basic_english or char.
    #[arg(long)]
    tokenizer: Option<String>,
    /// Vocabulary size (not counting `<unk>` and `<pad>`).
    #[arg(long)]
    max_vocab: Option<usize>,
    /// Minimum token count for the vocabulary.
    #[arg(long)]
    min_freq: Option<usize>,
    /// Tokens kept per review.
    #[arg(long)]
    max_len: Option<usize>,
    /// Keep the head or the tail of long reviews.
    #[arg(long, value_enum)]
    truncate: Option<Truncate>,
    /// Validation fraction held out from train.
    #[arg(long)]
    val_fraction: Option<f64>,
    /// Recurrent cell.
    #[arg(long, value_enum)]
    cell: Option<Cell>,
    /// Embedding size.
    #[arg(long)]
    embedding_dim: Option<usize>,
    /// Hidden size.
    #[arg(long)]
    hidden: Option<usize>,
    /// Recurrent layers.
    #[arg(long)]
    layers: Option<usize>,
    /// Bidirectional recurrence (true/false).
    #[arg(long)]
    bidirectional: Option<bool>,
    /// Dropout between recurrent layers.
    #[arg(long)]
    dropout: Option<f64>,
    /// Dropout on embeddings.
    #[arg(long)]
    embed_dropout: Option<f64>,
    /// Dropout before the output layer.
    #[arg(long)]
    fc_dropout: Option<f64>,
    /// Pooling over time.
    #[arg(long, value_enum)]
    pool: Option<Pool>,
    /// Variational dropout on recurrent layer inputs (one mask per sequence; not in PyTorch).
    #[arg(long)]
    var_input: Option<f64>,
    /// Variational dropout on the recurrent state h_{t-1}.
    #[arg(long)]
    var_state: Option<f64>,
    /// Variational dropout on recurrent layer outputs.
    #[arg(long)]
    var_output: Option<f64>,
    /// DropConnect on the hidden-to-hidden weights (AWD-LSTM's weight drop).
    #[arg(long)]
    weight_drop: Option<f64>,
    /// Maximum epochs.
    #[arg(long)]
    epochs: Option<usize>,
    /// Batch size.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Optimiser.
    #[arg(long, value_enum)]
    optimizer: Option<OptimizerKind>,
    /// Peak learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// Weight decay.
    #[arg(long)]
    weight_decay: Option<f64>,
    /// Gradient norm clipping (0 disables).
    #[arg(long)]
    clip_grad_norm: Option<f64>,
    /// Learning-rate schedule.
    #[arg(long, value_enum)]
    schedule: Option<ScheduleKind>,
    /// Warm-up steps.
    #[arg(long)]
    warmup_steps: Option<usize>,
    /// Early-stopping patience in epochs (0 disables).
    #[arg(long)]
    patience: Option<usize>,
    /// Seed.
    #[arg(long)]
    seed: Option<u64>,
}

impl Settings {
    fn apply(&self, c: &mut SentimentConfig) -> Result<()> {
        if let Some(t) = &self.tokenizer {
            c.tokenizer = Tokenizer::parse(t)
                .with_context(|| format!("unknown tokenizer {t:?} (basic_english or char)"))?;
        }
        macro_rules! set {
            ($($f:ident => $g:ident),*) => {$( if let Some(v) = self.$f.clone() { c.$g = v; } )*};
        }
        set!(max_vocab => max_vocab, min_freq => min_freq, max_len => max_len, truncate => truncate,
             val_fraction => val_fraction, cell => cell, embedding_dim => embedding_dim, hidden => hidden_size,
             layers => num_layers, bidirectional => bidirectional, dropout => dropout, embed_dropout => embed_dropout,
             fc_dropout => fc_dropout, pool => pool, var_input => var_input, var_state => var_state,
             var_output => var_output, weight_drop => weight_drop, epochs => epochs, batch_size => batch_size, optimizer => optimizer,
             lr => lr, weight_decay => weight_decay, clip_grad_norm => clip_grad_norm, schedule => schedule,
             warmup_steps => warmup_steps, patience => patience, seed => seed);
        c.validate()
    }
}

#[derive(Args)]
struct EvalArgs {
    /// The model directory (written by `train`).
    #[arg(long)]
    model: PathBuf,
    /// The IMDB corpus (its test split is used).
    #[arg(long, conflicts_with_all = ["folder", "tsv"])]
    data: Option<PathBuf>,
    /// A labelled folder in the aclImdb layout (a corpus root, or one folder with pos/ and neg/).
    #[arg(long, conflicts_with = "tsv")]
    folder: Option<PathBuf>,
    /// A TSV file of `label<TAB>text` lines.
    #[arg(long)]
    tsv: Option<PathBuf>,
    /// Evaluate on at most N examples (balanced).
    #[arg(long)]
    limit: Option<usize>,
    /// Never download the corpus.
    #[arg(long)]
    no_download: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct PredictArgs {
    /// The model directory (written by `train`).
    #[arg(long)]
    model: PathBuf,
    /// Texts to classify; without any, one text per line is read from standard input.
    texts: Vec<String>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum DataCommand {
    /// Download a dataset into the cache directory (resumable, checksum-verified).
    Download(DownloadArgs),
    /// Show where the IMDB corpus is found and what it holds.
    Info {
        /// The IMDB corpus location to check.
        #[arg(long)]
        data: Option<PathBuf>,
    },
}

#[derive(Args)]
struct DownloadArgs {
    /// The dataset: imdb.
    dataset: String,
    /// Target directory (default: the cache directory).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Download from a mirror instead of Stanford. The file must be the official archive: its
    /// size, SHA-256 and MD5 are checked, unless --sha256 names another file.
    #[arg(long)]
    url: Option<String>,
    /// The SHA-256 of a mirror's file that is not the official archive (a repackaged copy):
    /// that SHA-256 and the archive's layout are checked instead.
    #[arg(long, requires = "url")]
    sha256: Option<String>,
}

/// The matches of the subcommand at `path` (`["charlm", "train"]`).
fn sub_matches<'a>(m: &'a ArgMatches, path: &[&str]) -> &'a ArgMatches {
    path.iter().fold(m, |m, name| {
        m.subcommand_matches(name)
            .expect("the subcommand that was parsed")
    })
}

/// The options given explicitly to the subcommand at `path`.
fn given_options(m: &ArgMatches, path: &[&str]) -> Vec<recurrent_cli::resume::Given> {
    let mut cmd = Cli::command();
    cmd.build();
    let sub = path.iter().fold(&cmd, |c, name| {
        c.find_subcommand(name).expect("a subcommand of the CLI")
    });
    recurrent_cli::resume::given_options(sub_matches(m, path), sub)
}

/// Options of `train` that a resumed run may change (see `recurrent_cli::resume`).
const TRAIN_MAY_CHANGE: &[&str] = &[
    "epochs",
    "patience",
    "threads",
    "quiet",
    "data",
    "no_download",
];
/// Test hooks of `train`, allowed on resume.
const TRAIN_HOOKS: &[&str] = &[
    "stop_after_steps",
    "fault_nan_steps",
    "fault_abort_in_setup",
];

/// Options of `charlm train` that a resumed run may change.
const CHARLM_MAY_CHANGE: &[&str] = &["epochs", "threads", "quiet", "text"];

/// On `charlm train --resume DIR`, refuse options that would change the run.
fn check_charlm_resume(
    dir: &std::path::Path,
    given: &[recurrent_cli::resume::Given],
) -> Result<()> {
    let settings = recurrent_cli::charlm::stored_settings(dir)
        .with_context(|| format!("--resume {}", dir.display()))?;
    let run = recurrent_cli::charlm::CharRunFile::load(dir)?;
    let stored = |id: &str| -> Option<String> {
        match id {
            "max_chars" => run.max_chars.map(|m| m.to_string()),
            key => settings.get(key).map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
        }
    };
    recurrent_cli::resume::refuse_changes(
        given,
        CHARLM_MAY_CHANGE,
        &["stop_after_steps"],
        &stored,
        dir,
    )
}

/// On `train --resume DIR`, refuse options that would change the run, naming what it was
/// started with.
fn check_train_resume(dir: &std::path::Path, given: &[recurrent_cli::resume::Given]) -> Result<()> {
    let (cfg, _) = recurrent_cli::sentiment::modeldir::load_config(dir)
        .with_context(|| format!("--resume {}", dir.display()))?;
    let run = recurrent_cli::sentiment::train::RunFile::load(dir)
        .with_context(|| format!("--resume {}", dir.display()))?;
    let settings = serde_json::to_value(&cfg)?;
    let stored = |id: &str| -> Option<String> {
        match id {
            "limit" => run.limit.map(|l| l.to_string()),
            "skip_nonfinite" => run.skip_nonfinite.then(String::new),
            "config" | "preset" => Some("its settings, which are in config.json".into()),
            _ => {
                let key = match id {
                    "hidden" => "hidden_size",
                    "layers" => "num_layers",
                    other => other,
                };
                settings.get(key).map(|v| match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
            }
        }
    };
    recurrent_cli::resume::refuse_changes(given, TRAIN_MAY_CHANGE, TRAIN_HOOKS, &stored, dir)
}

fn run_train(
    args: TrainArgs,
    given: &[recurrent_cli::resume::Given],
    threads: usize,
) -> Result<ExitCode> {
    let resume = args.resume.is_some();
    if let Some(l) = args.limit {
        recurrent_cli::validate::positive("--limit", l)?;
    }
    let mut cfg = match args.preset {
        Some(Preset::Course) => SentimentConfig::course(),
        _ => SentimentConfig::default(),
    };
    if let Some(dir) = &args.resume {
        check_train_resume(dir, given)?;
    }
    if let Some(p) = &args.config {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        cfg = SentimentConfig::from_toml(&text, &cfg)
            .with_context(|| format!("in {}", p.display()))?;
    }
    args.settings.apply(&mut cfg)?;
    let opts = TrainOptions {
        out: args.resume.clone().unwrap_or(args.out.clone()),
        data: args.data.clone(),
        resume,
        allow_download: !args.no_download,
        limit: args.limit,
        epochs_override: if resume { args.settings.epochs } else { None },
        patience_override: if resume { args.settings.patience } else { None },
        threads,
        stop_after_steps: args.stop_after_steps,
        skip_nonfinite: args.skip_nonfinite,
        fault_nan_steps: args.fault_nan_steps.clone(),
        abort_in_setup: args.fault_abort_in_setup,
        quiet: args.quiet,
        progress: !args.quiet && std::io::stderr().is_terminal(),
    };
    let s = train(cfg, &opts)?;
    if s.interrupted {
        return Ok(ExitCode::from(130));
    }
    eprintln!(
        "Done in {:.0} s: best validation accuracy {:.4} (epoch {}). The model is in {}.\n\
         Evaluate it on the test split: recurrent eval --model {}",
        s.seconds,
        s.best_val_acc,
        s.best_epoch,
        opts.out.display(),
        opts.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Keep freed memory committed instead of returning it to the OS after a delay: training
/// reuses the same large buffers every step, and re-faulting them cost 8% of a step.
fn keep_freed_memory() {
    /// `mi_option_purge_delay` in mimalloc v3's `mi_option_e` (libmimalloc-sys 0.1.49).
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: sets a mimalloc option; valid at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

fn run() -> Result<ExitCode> {
    keep_freed_memory();
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Some(t) = cli.threads {
        recurrent_cli::validate::size("--threads", t, 4096)?;
    }
    recurrent::init_thread_pool(cli.threads).map_err(anyhow::Error::msg)?;
    let threads = rayon::current_num_threads();
    recurrent_cli::interrupt::install_handler()?;
    match cli.command {
        Command::Train(a) => run_train(*a, &given_options(&matches, &["train"]), threads),
        Command::Eval(a) => {
            if let Some(l) = a.limit {
                recurrent_cli::validate::positive("--limit", l)?;
            }
            let source = match (a.folder, a.tsv) {
                (Some(f), _) => EvalSource::Folder(f),
                (_, Some(t)) => EvalSource::Tsv(t),
                _ => EvalSource::Corpus(a.data),
            };
            let c = sentiment::evaluate(&a.model, &source, !a.no_download, a.limit)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&c.to_json())?);
            } else {
                println!("{c}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Predict(a) => {
            let texts = if a.texts.is_empty() {
                if std::io::stdin().is_terminal() {
                    eprintln!("Reading texts from standard input, one per line (Ctrl-D to end).");
                }
                sentiment::read_lines(std::io::stdin().lock())?
            } else {
                a.texts
            };
            for p in sentiment::predict(&a.model, &texts)? {
                if a.json {
                    println!("{}", serde_json::to_string(&p)?);
                } else {
                    let preview: String = p.text.chars().take(60).collect();
                    let more = if p.text.chars().count() > 60 {
                        "..."
                    } else {
                        ""
                    };
                    println!("{}\t{:.4}\t{preview}{more}", p.label, p.probability);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Data(DataCommand::Download(a)) => {
            if a.dataset != "imdb" {
                bail!("unknown dataset {:?} (available: imdb)", a.dataset);
            }
            let mut spec = recurrent_data::download::imdb();
            if let Some(url) = a.url {
                spec.url = url;
            }
            if let Some(sha) = a.sha256 {
                let sha = sha.to_ascii_lowercase();
                if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                    bail!("--sha256 must be 64 hexadecimal digits, got {sha:?}");
                }
                if sha != spec.sha256 {
                    eprintln!(
                        "note: --sha256 names a file other than the official archive: its SHA-256 \
                         and its layout are checked; the official size and MD5 do not apply"
                    );
                    spec = DownloadSpec {
                        sha256: sha,
                        md5: None,
                        size: None,
                        ..spec
                    };
                }
            }
            let dir = a.dir.unwrap_or_else(datapath::cache_dir);
            let p = datapath::download_with_bar(&spec, &dir)?;
            let c = recurrent_data::imdb::read(&p, &Default::default())?.counts();
            println!("{}: {c}", p.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(a) => {
            let opts = recurrent_cli::bench::BenchOptions {
                cases: a.cases,
                layers: a.layers,
                modes: a.modes,
                repeat: a.repeat,
            };
            opts.validate()?;
            eprintln!(
                "recurrent bench: {} threads, activations {}, denormals flushed: {}",
                rayon::current_num_threads(),
                recurrent::backend::cpu::activation::instruction_set(),
                recurrent::flush_denormals()
            );
            if a.gemm {
                for (name, gf) in recurrent_cli::bench::gemm_ceiling() {
                    println!("gemm  {name:<50} {gf:>7.1} GFLOP/s");
                }
            }
            let rows = recurrent_cli::bench::run(&opts, &mut |r| {
                eprint!(
                    "{}",
                    recurrent_cli::bench::table(std::slice::from_ref(r))
                        .lines()
                        .nth(1)
                        .map(|l| format!("{l}\n"))
                        .unwrap_or_default()
                )
            })?;
            println!("{}", recurrent_cli::bench::table(&rows));
            if let Some(p) = a.json {
                recurrent::io::write_atomic(&p, serde_json::to_string_pretty(&rows)?.as_bytes())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Forecast(a) => {
            let cfg = recurrent_cli::forecast::ForecastConfig {
                csv: a.csv.clone(),
                column: a.column.clone(),
                window: a.window,
                horizon: a.horizon,
                strategy: a.strategy,
                test: a.test,
                val_fraction: a.val_fraction,
                season: a.season,
                transform: a.transform,
                cell: a.cell,
                hidden: a.hidden,
                layers: a.layers,
                epochs: a.epochs,
                batch_size: a.batch_size,
                lr: a.lr,
                seed: a.seed,
                out: a.out.clone(),
                dropout: recurrent_cli::forecast::Dropout {
                    var_input: a.dropout.var_input,
                    var_state: a.dropout.var_state,
                    var_output: a.dropout.var_output,
                    weight_drop: a.dropout.weight_drop,
                },
            };
            let r = recurrent_cli::forecast::run(cfg, a.quiet)?;
            println!("{r}");
            eprintln!("Plot, forecasts and metrics in {}", a.out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Charlm(CharlmCommand::Train(a)) => {
            let resume = a.resume.is_some();
            let given = given_options(&matches, &["charlm", "train"]);
            if let Some(dir) = &a.resume {
                check_charlm_resume(dir, &given)?;
            }
            let cfg = recurrent_cli::charlm::CharConfig {
                cell: a.cell,
                embedding_dim: a.embedding_dim,
                hidden: a.hidden,
                layers: a.layers,
                dropout: a.dropout,
                seq_len: a.seq_len,
                batch_size: a.batch_size,
                epochs: a.epochs,
                lr: a.lr,
                seed: a.seed,
                ..Default::default()
            };
            let out = a.resume.clone().unwrap_or(a.out.clone());
            let opts = recurrent_cli::charlm::CharTrainOptions {
                text: if resume {
                    a.text.clone()
                } else {
                    a.text.clone().or_else(recurrent_cli::charlm::default_text)
                },
                out: out.clone(),
                resume,
                max_chars: a.max_chars,
                epochs_override: given.iter().any(|g| g.id == "epochs").then_some(a.epochs),
                threads,
                stop_after_steps: a.stop_after_steps,
                quiet: a.quiet,
            };
            let r = recurrent_cli::charlm::train(cfg, &opts)?;
            if r.interrupted {
                return Ok(ExitCode::from(130));
            }
            println!(
                "best validation loss {:.4} nats/char ({:.3} bits/char) in {:.0} s; sample with: recurrent charlm sample --model {}",
                r.best_val_nats,
                r.best_val_bpc,
                r.seconds,
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Charlm(CharlmCommand::Sample(a)) => {
            recurrent_cli::charlm::print_sample(
                &a.model,
                &recurrent_cli::charlm::SampleOptions {
                    prompt: a.prompt,
                    length: a.length,
                    temperature: a.temperature,
                    top_k: a.top_k,
                    seed: a.seed,
                },
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Seq2seq(a) => {
            let cfg = recurrent_cli::seq2seq::Seq2SeqConfig {
                cell: a.cell,
                embedding_dim: a.embedding_dim,
                hidden: a.hidden,
                bidirectional: a.bidirectional,
                attention: a.attention,
                teacher_forcing: a.teacher_forcing,
                train: a.train,
                test: a.test,
                epochs: a.epochs,
                batch_size: a.batch_size,
                lr: a.lr,
                beam: a.beam,
                seed: a.seed,
            };
            cfg.validate()?;
            if let Some(p) = &a.json {
                // Fail before training when the report could not be written.
                let dir = p.parent().filter(|d| !d.as_os_str().is_empty());
                if let Some(d) = dir.filter(|d| !d.is_dir()) {
                    bail!(
                        "--json {}: the folder {} does not exist",
                        p.display(),
                        d.display()
                    );
                }
            }
            let r = recurrent_cli::seq2seq::run(&cfg, a.quiet)?;
            for (src, tgt, got) in &r.examples {
                println!("{src:<32} -> {got:<10} (expected {tgt})");
            }
            println!(
                "held-out exact match: greedy {:.4}, beam {} {:.4} ({:.0} s)",
                r.greedy_accuracy, cfg.beam, r.beam_accuracy, r.seconds
            );
            if let Some(p) = a.json {
                recurrent::io::write_atomic(&p, serde_json::to_string_pretty(&r)?.as_bytes())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Diagnose(a) => {
            let cfg = recurrent_cli::diagnose::DiagnoseConfig {
                steps: a.steps,
                input: a.input,
                hidden: a.hidden,
                layers: a.layers,
                train_steps: a.train_steps,
                batch: a.batch,
                lr: a.lr,
                seed: a.seed,
            };
            let rs = recurrent_cli::diagnose::run(&cfg, &a.out, a.quiet)?;
            println!(
                "{:<5} {:>22} {:>22} {:>9}",
                "cell", "|dL/dh_0|/|dL/dh_T| init", "after training", "accuracy"
            );
            for r in &rs {
                let t = r.grad_norm_trained.len() - 1;
                println!(
                    "{:<5} {:>22.3e} {:>22.3e} {:>9.3}",
                    r.cell,
                    r.ratio_first_last_init,
                    r.grad_norm_trained[0] / r.grad_norm_trained[t].max(1e-300),
                    r.accuracy
                );
            }
            eprintln!("Plots and CSV in {}", a.out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Data(DataCommand::Info { data }) => {
            let p = datapath::find_imdb(data.as_deref(), false)?;
            let c = recurrent_data::imdb::read(
                &p,
                &recurrent_data::imdb::ReadOptions {
                    include_unsup: true,
                    ..Default::default()
                },
            )?
            .counts();
            println!("{}: {c}", p.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
