//! Reductions (sum, mean, max over all elements or one dim) and softmax / log-softmax.
//! Sums run in a fixed order, so results are deterministic.

use super::{backward_fn, check_dim, split_at_dim, take_grad};
use crate::autograd::{needs_grad, record1};
use crate::error::Result;
use crate::tensor::Tensor;

fn reduced_shape(shape: &[usize], dim: usize, keepdim: bool) -> Vec<usize> {
    let mut s = shape.to_vec();
    if keepdim {
        s[dim] = 1;
    } else {
        s.remove(dim);
    }
    s
}

impl Tensor {
    /// Sum of all elements (a 0-d tensor). Accumulated in `f64`.
    pub fn sum(&self) -> Result<Tensor> {
        let s: f64 = self.data().iter().map(|&v| v as f64).sum();
        let n = self.numel();
        let backward = needs_grad(&[self]).then(|| {
            backward_fn(move |g, _| {
                let g = take_grad(g, 1)[0];
                Ok(vec![Some(vec![g; n])])
            })
        });
        Ok(record1(
            "SumBackward",
            &[self],
            vec![s as f32],
            vec![],
            backward,
        ))
    }

    /// Mean of all elements (a 0-d tensor; NaN for an empty tensor, as PyTorch).
    pub fn mean(&self) -> Result<Tensor> {
        let n = self.numel();
        self.sum()?.mul_scalar(1.0 / n as f32)
    }

    /// Sum along `dim`.
    pub fn sum_dim(&self, dim: usize, keepdim: bool) -> Result<Tensor> {
        check_dim(self, dim, "sum")?;
        let (outer, size, inner) = split_at_dim(self.shape(), dim);
        let x = self.data();
        let mut out = vec![0.0f32; outer * inner];
        for o in 0..outer {
            let dst = &mut out[o * inner..(o + 1) * inner];
            for k in 0..size {
                let src = &x[(o * size + k) * inner..(o * size + k + 1) * inner];
                dst.iter_mut().zip(src).for_each(|(a, b)| *a += b);
            }
        }
        drop(x);
        let backward = needs_grad(&[self]).then(|| {
            backward_fn(move |g, _| {
                let g = take_grad(g, outer * inner);
                let mut dx = vec![0.0; outer * size * inner];
                for o in 0..outer {
                    for k in 0..size {
                        dx[(o * size + k) * inner..(o * size + k + 1) * inner]
                            .copy_from_slice(&g[o * inner..(o + 1) * inner]);
                    }
                }
                Ok(vec![Some(dx)])
            })
        });
        Ok(record1(
            "SumBackward",
            &[self],
            out,
            reduced_shape(self.shape(), dim, keepdim),
            backward,
        ))
    }

    /// Mean along `dim`.
    pub fn mean_dim(&self, dim: usize, keepdim: bool) -> Result<Tensor> {
        check_dim(self, dim, "mean")?;
        let size = self.shape()[dim];
        self.sum_dim(dim, keepdim)?.mul_scalar(1.0 / size as f32)
    }

    /// Maximum along `dim` and the index of the (first) maximum. The gradient flows to that
    /// index only. NaN propagates as in PyTorch (a NaN is the maximum).
    pub fn max_dim(&self, dim: usize, keepdim: bool) -> Result<(Tensor, Vec<usize>)> {
        check_dim(self, dim, "max")?;
        let (outer, size, inner) = split_at_dim(self.shape(), dim);
        if size == 0 {
            return Err(crate::Error::invalid(
                "max(): Expected reduction dim to have non-zero size.".to_string(),
            ));
        }
        let x = self.data();
        let mut out = vec![f32::NEG_INFINITY; outer * inner];
        let mut arg = vec![0usize; outer * inner];
        for o in 0..outer {
            for i in 0..inner {
                let (mut best, mut bi) = (x[o * size * inner + i], 0);
                for k in 1..size {
                    let v = x[(o * size + k) * inner + i];
                    if best.is_nan() {
                        break;
                    }
                    if v > best || v.is_nan() {
                        best = v;
                        bi = k;
                    }
                }
                out[o * inner + i] = best;
                arg[o * inner + i] = bi;
            }
        }
        drop(x);
        let backward = needs_grad(&[self]).then(|| {
            let arg = arg.clone();
            backward_fn(move |g, _| {
                let g = take_grad(g, outer * inner);
                let mut dx = vec![0.0; outer * size * inner];
                for o in 0..outer {
                    for i in 0..inner {
                        dx[(o * size + arg[o * inner + i]) * inner + i] = g[o * inner + i];
                    }
                }
                Ok(vec![Some(dx)])
            })
        });
        let t = record1(
            "MaxBackward",
            &[self],
            out,
            reduced_shape(self.shape(), dim, keepdim),
            backward,
        );
        Ok((t, arg))
    }

    /// Softmax along `dim` (max-subtracted, stable).
    pub fn softmax(&self, dim: usize) -> Result<Tensor> {
        self.softmax_impl(dim, false)
    }

    /// Log-softmax along `dim` (stable).
    pub fn log_softmax(&self, dim: usize) -> Result<Tensor> {
        self.softmax_impl(dim, true)
    }

    fn softmax_impl(&self, dim: usize, log: bool) -> Result<Tensor> {
        check_dim(self, dim, "softmax")?;
        let (outer, size, inner) = split_at_dim(self.shape(), dim);
        let x = self.data();
        let mut out = vec![0.0f32; x.len()];
        for o in 0..outer {
            for i in 0..inner {
                let at = |k: usize| (o * size + k) * inner + i;
                let m = (0..size)
                    .map(|k| x[at(k)])
                    .fold(f32::NEG_INFINITY, f32::max);
                let m = if m.is_finite() { m } else { 0.0 };
                let z: f64 = (0..size).map(|k| ((x[at(k)] - m) as f64).exp()).sum();
                let lz = z.ln() as f32;
                for k in 0..size {
                    out[at(k)] = if log {
                        x[at(k)] - m - lz
                    } else {
                        ((x[at(k)] - m) as f64).exp() as f32 / z as f32
                    };
                }
            }
        }
        drop(x);
        let backward = needs_grad(&[self]).then(|| {
            let y = out.clone();
            backward_fn(move |g, _| {
                let g = take_grad(g, y.len());
                let mut dx = vec![0.0; y.len()];
                for o in 0..outer {
                    for i in 0..inner {
                        let at = |k: usize| (o * size + k) * inner + i;
                        if log {
                            // y = x − logΣe^x:  dx = g − softmax · Σg
                            let sg: f32 = (0..size).map(|k| g[at(k)]).sum();
                            for k in 0..size {
                                dx[at(k)] = g[at(k)] - y[at(k)].exp() * sg;
                            }
                        } else {
                            // dx = y ⊙ (g − Σ g ⊙ y)
                            let s: f32 = (0..size).map(|k| g[at(k)] * y[at(k)]).sum();
                            for k in 0..size {
                                dx[at(k)] = y[at(k)] * (g[at(k)] - s);
                            }
                        }
                    }
                }
                Ok(vec![Some(dx)])
            })
        });
        let name = if log {
            "LogSoftmaxBackward"
        } else {
            "SoftmaxBackward"
        };
        Ok(record1(name, &[self], out, self.shape().to_vec(), backward))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reductions_and_softmax() {
        let x = Tensor::from_vec(vec![1., 2., 3., 4., 5., 6.], &[2, 3])
            .unwrap()
            .requires_grad();
        assert_eq!(x.sum_dim(0, false).unwrap().to_vec(), vec![5., 7., 9.]);
        assert_eq!(x.sum_dim(1, true).unwrap().shape(), &[2, 1]);
        assert_eq!(x.mean().unwrap().item().unwrap(), 3.5);
        let (m, idx) = x.max_dim(1, false).unwrap();
        assert_eq!((m.to_vec(), idx), (vec![3., 6.], vec![2, 2]));
        let s = x.softmax(1).unwrap().to_vec();
        assert!((s[0] + s[1] + s[2] - 1.0).abs() < 1e-6);
        let ls = x.log_softmax(1).unwrap().to_vec();
        assert!((ls[2] - s[2].ln()).abs() < 1e-6);
        m.sum().unwrap().backward().unwrap();
        assert_eq!(x.grad().unwrap().to_vec(), vec![0., 0., 1., 0., 0., 1.]);
    }
}
