//! Pooling over time of a packed batch: each sequence's maximum or mean over its own steps
//! (padding never enters, since a packed batch has none).

use super::{backward_fn, take_grad};
use crate::autograd::{needs_grad, record1};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// How to pool a sequence's steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolMode {
    /// Elementwise maximum over the steps (gradient to the maximising step).
    Max,
    /// Mean over the steps.
    Mean,
}

impl Tensor {
    /// Pool packed rows `self: [N, F]` (laid out by `batch_sizes`, as `PackedSequence.data`)
    /// over each sequence's steps: returns `[B, F]` in the packed (length-sorted) order.
    pub fn packed_pool(&self, batch_sizes: &[usize], mode: PoolMode) -> Result<Tensor> {
        if self.ndim() != 2 {
            return Err(Error::invalid(format!(
                "packed_pool: expected [N, F] data, got {:?}",
                self.shape()
            )));
        }
        if batch_sizes.is_empty()
            || batch_sizes.contains(&0)
            || batch_sizes.windows(2).any(|w| w[1] > w[0])
        {
            return Err(Error::invalid(format!(
                "packed_pool: batch_sizes must be non-empty, positive and non-increasing, got {batch_sizes:?}"
            )));
        }
        let n: usize = batch_sizes.iter().sum();
        if n != self.shape()[0] {
            return Err(Error::invalid(format!(
                "packed_pool: {} rows but batch_sizes add up to {n}",
                self.shape()[0]
            )));
        }
        let f = self.shape()[1];
        let b = batch_sizes[0];
        let mut offsets = Vec::with_capacity(batch_sizes.len());
        let mut acc = 0;
        for &bs in batch_sizes {
            offsets.push(acc);
            acc += bs;
        }
        let lengths: Vec<usize> = (0..b)
            .map(|r| batch_sizes.partition_point(|&s| s > r))
            .collect();
        let x = self.data();
        let mut out = vec![0.0f32; b * f];
        let mut arg = if mode == PoolMode::Max {
            vec![0usize; b * f]
        } else {
            Vec::new()
        };
        for r in 0..b {
            let o = &mut out[r * f..(r + 1) * f];
            match mode {
                PoolMode::Mean => {
                    for &off in &offsets[..lengths[r]] {
                        o.iter_mut()
                            .zip(&x[(off + r) * f..(off + r + 1) * f])
                            .for_each(|(a, &v)| *a += v);
                    }
                    let inv = 1.0 / lengths[r] as f32;
                    o.iter_mut().for_each(|a| *a *= inv);
                }
                PoolMode::Max => {
                    o.copy_from_slice(&x[r * f..(r + 1) * f]);
                    let a = &mut arg[r * f..(r + 1) * f];
                    a.iter_mut().for_each(|v| *v = r);
                    for &off in &offsets[1..lengths[r]] {
                        let row = (off + r) * f;
                        for j in 0..f {
                            let v = x[row + j];
                            if v > o[j] || (v.is_nan() && !o[j].is_nan()) {
                                o[j] = v;
                                a[j] = off + r;
                            }
                        }
                    }
                }
            }
        }
        drop(x);
        let backward = needs_grad(&[self]).then(|| {
            let batch_sizes = batch_sizes.to_vec();
            backward_fn(move |g, _| {
                let g = take_grad(g, b * f);
                let mut dx = vec![0.0f32; n * f];
                match mode {
                    PoolMode::Max => {
                        for r in 0..b {
                            for j in 0..f {
                                dx[arg[r * f + j] * f + j] += g[r * f + j];
                            }
                        }
                    }
                    PoolMode::Mean => {
                        let mut off = 0;
                        for &bs in &batch_sizes {
                            for r in 0..bs {
                                let inv = 1.0 / lengths[r] as f32;
                                for j in 0..f {
                                    dx[(off + r) * f + j] = g[r * f + j] * inv;
                                }
                            }
                            off += bs;
                        }
                    }
                }
                Ok(vec![Some(dx)])
            })
        });
        Ok(record1(
            if mode == PoolMode::Max {
                "PackedMaxPoolBackward"
            } else {
                "PackedMeanPoolBackward"
            },
            &[self],
            out,
            vec![b, f],
            backward,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_each_sequence_over_its_own_steps() {
        // sequences of lengths 3, 1: packed rows t0:[a0,b0] t1:[a1] t2:[a2], F = 1
        let x = Tensor::from_vec(vec![1.0, 5.0, 3.0, 2.0], &[4, 1])
            .unwrap()
            .requires_grad();
        let bs = [2, 1, 1];
        let m = x.packed_pool(&bs, PoolMode::Max).unwrap();
        assert_eq!(m.to_vec(), vec![3.0, 5.0]);
        let a = x.packed_pool(&bs, PoolMode::Mean).unwrap();
        assert_eq!(a.to_vec(), vec![2.0, 5.0]);
        m.add(&a).unwrap().sum().unwrap().backward().unwrap();
        let third = 1.0 / 3.0;
        let g = x.grad().unwrap().to_vec();
        assert_eq!(g, vec![third, 2.0, 1.0 + third, third]);
        assert!(x.packed_pool(&[1, 2], PoolMode::Max).is_err());
        assert!(x.packed_pool(&[2, 1], PoolMode::Max).is_err());
    }
}
