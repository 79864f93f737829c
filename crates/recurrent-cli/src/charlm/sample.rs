//! `recurrent charlm sample`: generate text from a trained character model, one character at
//! a time from the softmax of `logits / temperature` (optionally only the `top_k` most likely).

use super::{load_config, CharModel};
use anyhow::{anyhow, bail, Context, Result};
use recurrent::io::load_safetensors;
use recurrent::nn::Module;
use recurrent::Generator;
use std::io::Write;
use std::path::Path;

/// Sampling settings (the `charlm sample` flags).
#[derive(Clone, Debug, clap::Args)]
pub struct SampleOptions {
    /// Text to start from.
    #[arg(long, default_value = "")]
    pub prompt: String,
    /// Characters to generate.
    #[arg(long, default_value_t = 500)]
    pub length: usize,
    /// Softmax temperature.
    #[arg(long, default_value_t = 0.8)]
    pub temperature: f64,
    /// Sample only among the k most likely characters (0: all).
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Generate text from a trained model directory, calling `emit` for each character.
pub fn sample(dir: &Path, o: &SampleOptions, emit: &mut dyn FnMut(char)) -> Result<String> {
    if !(o.temperature > 0.0 && o.temperature.is_finite()) {
        bail!("--temperature must be positive, got {}", o.temperature);
    }
    let (cfg, chars) = load_config(dir)?;
    let mut model = CharModel::new(&cfg, chars.len(), &mut Generator::new(0))?;
    model
        .load_state_dict(&load_safetensors(&dir.join("model.safetensors"))?, true)
        .context("model.safetensors does not match config.json")?;
    model.set_training(false);
    let _ng = recurrent::no_grad();
    let mut g = Generator::new(o.seed);
    let prompt: Vec<usize> = o
        .prompt
        .chars()
        .map(|c| {
            chars
                .binary_search(&c)
                .map_err(|_| anyhow!("the prompt has {c:?}, which the model never saw"))
        })
        .collect::<Result<_>>()?;
    let start = if prompt.is_empty() {
        vec![g.below(chars.len() as u64) as usize]
    } else {
        prompt
    };
    let (mut logits, mut state) = model.forward(&start, start.len(), 1, None)?;
    let mut out = String::new();
    for _ in 0..o.length {
        let v = chars.len();
        let l = logits.to_vec();
        let pick = draw(&l[l.len() - v..], o, &mut g);
        let c = chars[pick];
        emit(c);
        out.push(c);
        let (lg, st) = model.forward(&[pick], 1, 1, Some(&state))?;
        logits = lg;
        state = st;
    }
    Ok(out)
}

/// Draw a character from the last step's logits `last` (one per character).
fn draw(last: &[f32], o: &SampleOptions, g: &mut Generator) -> usize {
    let v = last.len();
    let mut idx: Vec<usize> = (0..v).collect();
    if o.top_k > 0 && o.top_k < v {
        idx.sort_by(|&a, &b| last[b].total_cmp(&last[a]));
        idx.truncate(o.top_k);
    }
    let m = idx
        .iter()
        .map(|&i| last[i] as f64)
        .fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = idx
        .iter()
        .map(|&i| ((last[i] as f64 - m) / o.temperature).exp())
        .collect();
    let total: f64 = w.iter().sum();
    let mut r = g.uniform_f64() * total;
    let mut pick = idx[idx.len() - 1];
    for (k, &wi) in w.iter().enumerate() {
        if r < wi {
            pick = idx[k];
            break;
        }
        r -= wi;
    }
    pick
}

/// Print a sample, streaming characters to standard output.
pub fn print_sample(dir: &Path, o: &SampleOptions) -> Result<()> {
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    write!(lock, "{}", o.prompt)?;
    sample(dir, o, &mut |c| {
        let _ = write!(lock, "{c}");
        let _ = lock.flush();
    })?;
    writeln!(lock)?;
    Ok(())
}
