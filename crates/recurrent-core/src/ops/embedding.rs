//! Embedding lookup (`F.embedding`): rows of a weight matrix picked by integer ids, with
//! PyTorch's `padding_idx` (that row gets no gradient), `max_norm` (looked-up rows are
//! renormalised in place) and `scale_grad_by_freq`.

use super::{backward_fn, take_grad};
use crate::autograd::{self, needs_grad, record1};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use std::collections::HashMap;

/// Options of an embedding lookup (PyTorch's argument names).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EmbeddingOptions {
    /// Row whose gradient is always zero (and which the `nn` module initialises to zeros).
    pub padding_idx: Option<usize>,
    /// Renormalise every looked-up row whose `norm_type`-norm exceeds this, in place.
    pub max_norm: Option<f32>,
    /// The p of the norm for `max_norm` (default 2).
    pub norm_type: f32,
    /// Scale each row's gradient by the inverse of its frequency in the batch.
    pub scale_grad_by_freq: bool,
}

impl Tensor {
    /// Look up `ids` (of shape `ids_shape`) in this `[num_embeddings, embedding_dim]` weight:
    /// returns `[*ids_shape, embedding_dim]`.
    pub fn embedding(
        &self,
        ids: &[usize],
        ids_shape: &[usize],
        opts: EmbeddingOptions,
    ) -> Result<Tensor> {
        let w = self;
        if w.ndim() != 2 {
            return Err(Error::invalid(format!(
                "embedding: weight must be 2-d, got shape {:?}",
                w.shape()
            )));
        }
        let (v, d) = (w.shape()[0], w.shape()[1]);
        if ids_shape.iter().product::<usize>() != ids.len() {
            return Err(Error::invalid(format!(
                "embedding: {} ids do not fill shape {ids_shape:?}",
                ids.len()
            )));
        }
        if let Some(&bad) = ids.iter().find(|&&i| i >= v) {
            return Err(Error::invalid(format!(
                "index out of range in self: id {bad} with num_embeddings {v}"
            )));
        }
        if let Some(p) = opts.padding_idx {
            if p >= v {
                return Err(Error::invalid("Padding_idx must be within num_embeddings"));
            }
        }
        if let Some(max_norm) = opts.max_norm {
            // As torch.embedding_renorm_: done without recording gradients.
            let _g = autograd::no_grad();
            let mut uniq: Vec<usize> = ids.to_vec();
            uniq.sort_unstable();
            uniq.dedup();
            let p = if opts.norm_type == 0.0 {
                2.0
            } else {
                opts.norm_type
            };
            w.update_data(|wd| {
                for &i in &uniq {
                    let row = &mut wd[i * d..(i + 1) * d];
                    let norm = row
                        .iter()
                        .map(|x| x.abs().powf(p))
                        .sum::<f32>()
                        .powf(1.0 / p);
                    if norm > max_norm {
                        let scale = max_norm / (norm + 1e-7);
                        row.iter_mut().for_each(|x| *x *= scale);
                    }
                }
            })?;
        }
        let wd = w.data();
        let mut out = Vec::with_capacity(ids.len() * d);
        for &i in ids {
            out.extend_from_slice(&wd[i * d..(i + 1) * d]);
        }
        drop(wd);
        let mut shape = ids_shape.to_vec();
        shape.push(d);
        let backward = needs_grad(&[w]).then(|| {
            let ids = ids.to_vec();
            backward_fn(move |g, _| {
                let g = take_grad(g, ids.len() * d);
                let freq: HashMap<usize, usize> = if opts.scale_grad_by_freq {
                    let mut f = HashMap::new();
                    for &i in &ids {
                        *f.entry(i).or_insert(0) += 1;
                    }
                    f
                } else {
                    HashMap::new()
                };
                let mut dw = vec![0.0f32; v * d];
                for (k, &i) in ids.iter().enumerate() {
                    if Some(i) == opts.padding_idx {
                        continue;
                    }
                    let scale = if opts.scale_grad_by_freq {
                        1.0 / freq[&i] as f32
                    } else {
                        1.0
                    };
                    let src = &g[k * d..(k + 1) * d];
                    for (a, b) in dw[i * d..(i + 1) * d].iter_mut().zip(src) {
                        *a += scale * b;
                    }
                }
                Ok(vec![Some(dw)])
            })
        });
        Ok(record1("EmbeddingBackward", &[w], out, shape, backward))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_padding_and_errors() {
        let w = Tensor::from_vec((0..8).map(|v| v as f32).collect(), &[4, 2])
            .unwrap()
            .requires_grad();
        let opts = EmbeddingOptions {
            padding_idx: Some(0),
            ..Default::default()
        };
        let y = w.embedding(&[1, 0, 1, 3], &[2, 2], opts).unwrap();
        assert_eq!(y.shape(), &[2, 2, 2]);
        assert_eq!(y.to_vec(), vec![2., 3., 0., 1., 2., 3., 6., 7.]);
        y.sum().unwrap().backward().unwrap();
        assert_eq!(
            w.grad().unwrap().to_vec(),
            vec![0., 0., 2., 2., 0., 0., 1., 1.]
        );
        assert!(w.embedding(&[4], &[1], opts).is_err());
        let freq = EmbeddingOptions {
            scale_grad_by_freq: true,
            ..Default::default()
        };
        w.zero_grad();
        w.embedding(&[1, 1, 2], &[3], freq)
            .unwrap()
            .sum()
            .unwrap()
            .backward()
            .unwrap();
        assert_eq!(
            w.grad().unwrap().to_vec(),
            vec![0., 0., 1., 1., 1., 1., 0., 0.]
        );
    }

    #[test]
    fn max_norm_renormalises_looked_up_rows() {
        let w = Tensor::from_vec(vec![3., 4., 0.3, 0.4], &[2, 2]).unwrap();
        let opts = EmbeddingOptions {
            max_norm: Some(1.0),
            norm_type: 2.0,
            ..Default::default()
        };
        let y = w.embedding(&[0, 1], &[2], opts).unwrap().to_vec();
        assert!((y[0] - 0.6).abs() < 1e-5 && (y[1] - 0.8).abs() < 1e-5);
        assert_eq!(&y[2..], &[0.3, 0.4]);
        assert!((w.to_vec()[0] - 0.6).abs() < 1e-5);
    }
}
