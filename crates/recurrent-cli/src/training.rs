//! The optimisation step, written once for every training loop of the tool (sentiment,
//! charlm, forecast, seq2seq, diagnose): clear the gradients, compute the loss, backpropagate,
//! clip the gradient norm, update, with the checks for non-finite values an application asks
//! for.
//!
//! It is not a training loop: batching, schedules, metrics, checkpoints and what to do about a
//! bad step (stop with an error, or skip it) stay with each application. The order of the
//! operations is fixed here, so every application draws its random numbers and rounds its
//! floating-point sums in the same order on every run.

use anyhow::Result;
use recurrent::optim::{clip_grad_norm, grad_norm, Optimizer};
use recurrent::Tensor;

/// Which values a step checks for NaN and infinity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checks {
    /// None: a non-finite loss propagates into the parameters.
    None,
    /// The loss, before `backward`.
    Loss,
    /// The loss, every gradient after `backward`, and every parameter after the update.
    All,
}

/// How a step is taken: the clipping norm and the checks.
///
/// ```no_run
/// # use recurrent::optim::{Adam, AdamConfig};
/// # use recurrent::{Reduction, Tensor};
/// # use recurrent_cli::training::{Checks, TrainStep};
/// # fn f(w: Tensor, x: Tensor, y: Tensor) -> anyhow::Result<()> {
/// let mut opt = Adam::new(vec![w.clone()], AdamConfig::adam())?;
/// let step = TrainStep { clip: Some(1.0), checks: Checks::Loss, names: &[] };
/// let outcome = step.run(&mut opt, || Ok((x.matmul(&w)?.mse_loss(&y, Reduction::Mean)?, ())))?;
/// println!("loss {}", outcome.loss());
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct TrainStep<'a> {
    /// Scale the gradients so that their total L2 norm is at most this; `None`: only measure
    /// the norm.
    pub clip: Option<f64>,
    /// The checks for non-finite values.
    pub checks: Checks,
    /// The parameters' names in the optimiser's order, for messages (`parameter k` where
    /// missing).
    pub names: &'a [String],
}

/// What a step did.
#[derive(Debug)]
pub enum StepOutcome<T> {
    /// The parameters were updated.
    Updated {
        /// The loss (before the update).
        loss: f64,
        /// The total L2 norm of the gradients before clipping.
        grad_norm: f64,
        /// What the forward closure returned beside the loss.
        output: T,
    },
    /// A non-finite value was found before the update (only with [`Checks::Loss`] or
    /// [`Checks::All`]): the gradients are cleared and the parameters are unchanged.
    Skipped {
        /// The loss as computed (not finite when the loss was the culprit).
        loss: f64,
        /// What was not finite: `the loss`, or `the gradient of NAME`.
        what: String,
    },
    /// A parameter became non-finite in the update (only with [`Checks::All`]).
    Diverged {
        /// Its name.
        parameter: String,
    },
}

impl<T> StepOutcome<T> {
    /// The loss of the step (NaN for a diverged one).
    pub fn loss(&self) -> f64 {
        match self {
            StepOutcome::Updated { loss, .. } | StepOutcome::Skipped { loss, .. } => *loss,
            StepOutcome::Diverged { .. } => f64::NAN,
        }
    }
}

impl TrainStep<'_> {
    /// One step of `opt` on the loss that `forward` computes (with anything else it returns,
    /// such as the logits or the next recurrent state).
    pub fn run<T>(
        &self,
        opt: &mut dyn Optimizer,
        forward: impl FnOnce() -> Result<(Tensor, T)>,
    ) -> Result<StepOutcome<T>> {
        self.run_inspecting(opt, forward, || Ok(()))
    }

    /// [`TrainStep::run`], calling `inspect` once the gradients are computed and checked, before
    /// they are clipped (to measure them).
    pub fn run_inspecting<T>(
        &self,
        opt: &mut dyn Optimizer,
        forward: impl FnOnce() -> Result<(Tensor, T)>,
        inspect: impl FnOnce() -> Result<()>,
    ) -> Result<StepOutcome<T>> {
        opt.zero_grad();
        let (loss, output) = forward()?;
        let value = loss.item()? as f64;
        if self.checks != Checks::None && !value.is_finite() {
            opt.zero_grad();
            return Ok(StepOutcome::Skipped {
                loss: value,
                what: "the loss".into(),
            });
        }
        loss.backward()?;
        if self.checks == Checks::All {
            let bad = opt
                .params()
                .iter()
                .position(|p| p.with_grad(|g| g.is_some_and(|g| g.iter().any(|v| !v.is_finite()))));
            if let Some(k) = bad {
                opt.zero_grad();
                return Ok(StepOutcome::Skipped {
                    loss: value,
                    what: format!("the gradient of {}", self.name(k)),
                });
            }
        }
        inspect()?;
        let norm = match self.clip {
            Some(max_norm) => clip_grad_norm(opt.params(), max_norm, 2.0, false)?,
            None => grad_norm(opt.params(), 2.0),
        };
        opt.step()?;
        if self.checks == Checks::All {
            let bad = opt
                .params()
                .iter()
                .position(|p| p.data().iter().any(|v| !v.is_finite()));
            if let Some(k) = bad {
                return Ok(StepOutcome::Diverged {
                    parameter: self.name(k),
                });
            }
        }
        Ok(StepOutcome::Updated {
            loss: value,
            grad_norm: norm,
            output,
        })
    }

    fn name(&self, k: usize) -> String {
        self.names
            .get(k)
            .cloned()
            .unwrap_or_else(|| format!("parameter {k}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use recurrent::optim::{Sgd, SgdConfig};
    use recurrent::Reduction;

    fn problem() -> (Tensor, Tensor, Tensor) {
        let w = Tensor::from_vec(vec![0.5, -0.25], &[2, 1])
            .unwrap()
            .requires_grad();
        let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
        let y = Tensor::from_vec(vec![1.0, 0.0], &[2, 1]).unwrap();
        (w, x, y)
    }

    /// The helper takes exactly the step the loops used to write out.
    #[test]
    fn same_as_the_written_out_step() {
        let sgd = || SgdConfig {
            lr: 0.1,
            ..Default::default()
        };
        let (w1, x, y) = problem();
        let mut o1 = Sgd::new(vec![w1.clone()], sgd()).unwrap();
        let names = ["w".to_string()];
        let step = TrainStep {
            clip: Some(0.5),
            checks: Checks::All,
            names: &names,
        };
        let out = step
            .run(&mut o1, || {
                Ok((x.matmul(&w1)?.mse_loss(&y, Reduction::Mean)?, 7))
            })
            .unwrap();
        let (w2, _, _) = problem();
        let mut o2 = Sgd::new(vec![w2.clone()], sgd()).unwrap();
        o2.zero_grad();
        let loss = x
            .matmul(&w2)
            .unwrap()
            .mse_loss(&y, Reduction::Mean)
            .unwrap();
        loss.backward().unwrap();
        let gn = clip_grad_norm(o2.params(), 0.5, 2.0, false).unwrap();
        o2.step().unwrap();
        match out {
            StepOutcome::Updated {
                loss: l,
                grad_norm,
                output,
            } => {
                assert_eq!(l, loss.item().unwrap() as f64);
                assert_eq!(grad_norm, gn);
                assert_eq!(output, 7);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(w1.to_vec(), w2.to_vec());
    }

    #[test]
    fn non_finite_values_are_caught_as_asked() {
        let (w, x, y) = problem();
        let mut opt = Sgd::new(vec![w.clone()], SgdConfig::default()).unwrap();
        let nan = || Ok((Tensor::scalar(f32::NAN), ()));
        let skip = |checks| TrainStep {
            clip: None,
            checks,
            names: &[],
        };
        let s = skip(Checks::Loss).run(&mut opt, nan).unwrap();
        assert!(matches!(s, StepOutcome::Skipped { ref what, .. } if what == "the loss"));
        assert_eq!(
            w.to_vec(),
            vec![0.5, -0.25],
            "a skipped step changes nothing"
        );
        let mut opt = Sgd::new(
            vec![w.clone()],
            SgdConfig {
                lr: f64::INFINITY,
                ..Default::default()
            },
        )
        .unwrap();
        let s = skip(Checks::All)
            .run(&mut opt, || {
                Ok((x.matmul(&w)?.mse_loss(&y, Reduction::Mean)?, ()))
            })
            .unwrap();
        assert!(
            matches!(s, StepOutcome::Diverged { ref parameter } if parameter == "parameter 0"),
            "{s:?}"
        );
    }
}
