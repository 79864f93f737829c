//! The schedule of a pretraining run that is a function of (seed, step): the BPTT length of
//! every step (AWD-LSTM's variable length), the sampled words of every step, and the layer
//! groups that discriminative rates and gradual unfreezing act on.

use super::corpus::Sampler;
use super::PretrainConfig;
use recurrent::Generator;

/// The BPTT length of step `step` (0-based): AWD-LSTM's, `bptt` with probability 0.95, else
/// half of it, plus normal noise of deviation 5 (at most a quarter of it), within `[1, bptt
/// + 20]` and at least 5 where `bptt` allows.
pub(super) fn seq_len(cfg: &PretrainConfig, step: u64) -> usize {
    let mut g = Generator::new(cfg.seed ^ 0x5E9_1E4 ^ step.wrapping_mul(0xD1B5_4A32_D192_ED03));
    let base = if g.uniform_f64() < 0.95 {
        cfg.bptt as f64
    } else {
        cfg.bptt as f64 / 2.0
    };
    let sd = 5.0f64.min(cfg.bptt as f64 / 4.0);
    let len = (base + sd * g.normal()).round();
    (len as i64)
        .clamp(5.min(cfg.bptt) as i64, cfg.bptt as i64 + 20)
        .max(1) as usize
}

/// The sampled words of step `step`.
pub(super) fn samples_of(cfg: &PretrainConfig, sampler: &Sampler, step: u64) -> Vec<usize> {
    sampler.draw(&mut Generator::new(
        cfg.seed ^ 0x005A_3B1E ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15),
    ))
}

/// The layer groups of a parameter, bottom to top (the embedding, each LSTM layer, the
/// output layer): what discriminative rates and gradual unfreezing act on. `None` for a name
/// outside these.
pub fn layer_group(name: &str, layers: usize) -> Option<usize> {
    if name.starts_with("embedding.") {
        return Some(0);
    }
    if let Some(rest) = name.strip_prefix("rnn.") {
        let l = rest
            .rsplit_once("_l")?
            .1
            .split('_')
            .next()?
            .parse::<usize>()
            .ok()?;
        return (l < layers).then_some(l + 1);
    }
    Some(layers + 1)
}

/// The BPTT length of every step, and the steps of each epoch, for streams of `per_stream`
/// tokens, cut at `max_steps`.
pub(super) fn plan(cfg: &PretrainConfig, per_stream: usize) -> (Vec<usize>, Vec<usize>) {
    let cap = if cfg.max_steps > 0 {
        cfg.max_steps
    } else {
        usize::MAX
    };
    let (mut lengths, mut per_epoch) = (Vec::new(), Vec::new());
    for _ in 0..cfg.epochs {
        let (mut pos, before) = (0, lengths.len());
        while pos + 1 < per_stream && lengths.len() < cap {
            let len = seq_len(cfg, lengths.len() as u64).min(per_stream - 1 - pos);
            lengths.push(len);
            pos += len;
        }
        per_epoch.push(lengths.len() - before);
        if lengths.len() >= cap {
            break;
        }
    }
    (lengths, per_epoch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_groups_run_from_the_embedding_to_the_output_layer() {
        for (name, group) in [
            ("embedding.weight", Some(0)),
            ("rnn.weight_ih_l0", Some(1)),
            ("rnn.weight_hr_l0", Some(1)),
            ("rnn.bias_hh_l1", Some(2)),
            ("rnn.weight_hh_l9", None),
            ("decoder.bias", Some(3)),
            ("fc.weight", Some(3)),
        ] {
            assert_eq!(layer_group(name, 2), group, "{name}");
        }
    }

    #[test]
    fn bptt_lengths_vary_around_bptt_and_cover_each_epoch() {
        let cfg = PretrainConfig {
            epochs: 2,
            ..Default::default()
        };
        let (lengths, per_epoch) = plan(&cfg, 100_001);
        assert_eq!(per_epoch.len(), 2);
        assert_eq!(per_epoch.iter().sum::<usize>(), lengths.len());
        assert_eq!(lengths[..per_epoch[0]].iter().sum::<usize>(), 100_000);
        let mean = lengths.iter().sum::<usize>() as f64 / lengths.len() as f64;
        assert!((64.0..70.0).contains(&mean), "mean length {mean}");
        assert!(lengths.iter().any(|&l| l < 50), "no half-length chunks");
        assert!(lengths.iter().all(|&l| l <= 90));
        let capped = plan(
            &PretrainConfig {
                max_steps: 10,
                ..cfg
            },
            100_001,
        );
        assert_eq!((capped.0.len(), capped.1), (10, vec![10]));
    }
}
