//! Matrix products: `matmul` (2-d, batched 3-d, n-d times 2-d, vectors) and `linear`
//! (`x · Wᵀ + b` with PyTorch's weight layout `[out, in]`).

use super::{backward_fn, take_grad};
use crate::autograd::{needs_grad, record1};
use crate::backend::cpu::denormal;
use crate::backend::cpu::gemm::{matmul as gemm, MatMut, MatRef, Parallelism};
use crate::backend::cpu::weight_grads::add_column_sums;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

impl Tensor {
    /// Matrix product with PyTorch's `matmul` shapes:
    /// `[M, K] · [K, N]`, `[*, M, K] · [K, N]` (leading dims flattened), `[B, M, K] · [B, K, N]`,
    /// and 1-d operands treated as a row (left) or column (right) vector and dropped from the
    /// result.
    pub fn matmul(&self, other: &Tensor) -> Result<Tensor> {
        let (a, b) = (self, other);
        if a.ndim() == 0 || b.ndim() == 0 {
            return Err(Error::invalid(
                "both arguments to matmul need to be at least 1D",
            ));
        }
        if a.ndim() == 1 {
            let r = a.unsqueeze(0)?.matmul(b)?;
            let d = r.ndim() - 2;
            return r.squeeze(d);
        }
        if b.ndim() == 1 {
            let r = a.matmul(&b.unsqueeze(1)?)?;
            let d = r.ndim() - 1;
            return r.squeeze(d);
        }
        let (m, k) = (a.shape()[a.ndim() - 2], a.shape()[a.ndim() - 1]);
        let (k2, n) = (b.shape()[b.ndim() - 2], b.shape()[b.ndim() - 1]);
        let mismatch = || {
            Error::invalid(format!(
                "mat1 and mat2 shapes cannot be multiplied ({}x{} and {}x{})",
                a.numel() / k.max(1),
                k,
                k2,
                n
            ))
        };
        if k != k2 {
            return Err(mismatch());
        }
        if b.ndim() == 2 {
            // Flatten the leading dims of `a` into rows.
            let rows = a.numel() / k.max(1);
            let rows = if k == 0 {
                a.shape()[..a.ndim() - 1].iter().product()
            } else {
                rows
            };
            let mut shape = a.shape()[..a.ndim() - 1].to_vec();
            shape.push(n);
            return batched(a, b, 1, rows, k, n, false, shape);
        }
        if a.ndim() == 3 && b.ndim() == 3 && a.shape()[0] == b.shape()[0] {
            let bsz = a.shape()[0];
            return batched(a, b, bsz, m, k, n, true, vec![bsz, m, n]);
        }
        Err(Error::invalid(format!(
            "matmul: unsupported shapes {:?} and {:?} (supported: 2-d, [*, M, K]·[K, N], [B, M, K]·[B, K, N])",
            a.shape(),
            b.shape()
        )))
    }

    /// `x · Wᵀ + b` with `x: [*, in]`, `weight: [out, in]`, `bias: [out]` (PyTorch's
    /// `F.linear`).
    pub fn linear(&self, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        let x = self;
        if weight.ndim() != 2 {
            return Err(Error::invalid(format!(
                "linear: weight must be 2-d, got shape {:?}",
                weight.shape()
            )));
        }
        let (out_f, in_f) = (weight.shape()[0], weight.shape()[1]);
        if x.ndim() == 0 || x.shape()[x.ndim() - 1] != in_f {
            return Err(Error::invalid(format!(
                "mat1 and mat2 shapes cannot be multiplied ({}x{} and {}x{})",
                if x.ndim() == 0 {
                    1
                } else {
                    x.numel() / x.shape()[x.ndim() - 1].max(1)
                },
                x.shape().last().copied().unwrap_or(1),
                in_f,
                out_f
            )));
        }
        if let Some(b) = bias {
            if b.shape() != [out_f] {
                return Err(Error::shape("linear bias", &[out_f], b.shape()));
            }
        }
        denormal::ensure();
        let rows: usize = x.shape()[..x.ndim() - 1].iter().product();
        let mut out = vec![0.0f32; rows * out_f];
        if let Some(b) = bias {
            let bd = b.data();
            for r in out.chunks_exact_mut(out_f.max(1)) {
                r.copy_from_slice(&bd);
            }
        }
        {
            let (xd, wd) = (x.data(), weight.data());
            gemm(
                MatMut::new(&mut out, rows, out_f),
                MatRef::new(&xd, rows, in_f),
                MatRef::new(&wd, out_f, in_f).t(),
                bias.is_some(),
                Parallelism::Auto,
            );
        }
        let mut shape = x.shape()[..x.ndim() - 1].to_vec();
        shape.push(out_f);
        let mut inputs = vec![x, weight];
        if let Some(b) = bias {
            inputs.push(b);
        }
        let backward = needs_grad(&inputs).then(|| {
            let (xs, ws) = (x.clone(), weight.clone());
            backward_fn(move |g, needs| {
                denormal::ensure();
                let g = take_grad(g, rows * out_f);
                let gm = MatRef::new(&g, rows, out_f);
                let dx = needs[0].then(|| {
                    let mut dx = vec![0.0; rows * in_f];
                    gemm(
                        MatMut::new(&mut dx, rows, in_f),
                        gm,
                        MatRef::new(&ws.data(), out_f, in_f),
                        false,
                        Parallelism::Auto,
                    );
                    dx
                });
                let dw = needs[1].then(|| {
                    let mut dw = vec![0.0; out_f * in_f];
                    gemm(
                        MatMut::new(&mut dw, out_f, in_f),
                        gm.t(),
                        MatRef::new(&xs.data(), rows, in_f),
                        false,
                        Parallelism::Auto,
                    );
                    dw
                });
                let mut res = vec![dx, dw];
                if needs.len() > 2 {
                    res.push(needs[2].then(|| {
                        let mut db = vec![0.0; out_f];
                        add_column_sums(&mut db, &g);
                        db
                    }));
                }
                Ok(res)
            })
        });
        Ok(record1("AddmmBackward", &inputs, out, shape, backward))
    }
}

/// `bsz` independent products `[m, k] · [k, n]`; when `!per_batch_b`, one `b` for all rows.
#[allow(clippy::too_many_arguments)]
fn batched(
    a: &Tensor,
    b: &Tensor,
    bsz: usize,
    m: usize,
    k: usize,
    n: usize,
    per_batch_b: bool,
    shape: Vec<usize>,
) -> Result<Tensor> {
    denormal::ensure();
    let mut out = vec![0.0f32; bsz * m * n];
    {
        let (ad, bd) = (a.data(), b.data());
        for i in 0..bsz {
            let bo = if per_batch_b { i * k * n } else { 0 };
            gemm(
                MatMut::new(&mut out[i * m * n..(i + 1) * m * n], m, n),
                MatRef::new(&ad[i * m * k..(i + 1) * m * k], m, k),
                MatRef::new(&bd[bo..bo + k * n], k, n),
                false,
                Parallelism::Auto,
            );
        }
    }
    let backward = needs_grad(&[a, b]).then(|| {
        let (a, b) = (a.clone(), b.clone());
        backward_fn(move |g, needs| {
            denormal::ensure();
            let g = take_grad(g, bsz * m * n);
            let (ad, bd) = (a.data(), b.data());
            let da = needs[0].then(|| {
                let mut da = vec![0.0; bsz * m * k];
                for i in 0..bsz {
                    let bo = if per_batch_b { i * k * n } else { 0 };
                    // dA = G · Bᵀ
                    gemm(
                        MatMut::new(&mut da[i * m * k..(i + 1) * m * k], m, k),
                        MatRef::new(&g[i * m * n..(i + 1) * m * n], m, n),
                        MatRef::new(&bd[bo..bo + k * n], k, n).t(),
                        false,
                        Parallelism::Auto,
                    );
                }
                da
            });
            let db = needs[1].then(|| {
                let mut db = vec![0.0; if per_batch_b { bsz * k * n } else { k * n }];
                for i in 0..bsz {
                    let bo = if per_batch_b { i * k * n } else { 0 };
                    // dB (+)= Aᵀ · G
                    gemm(
                        MatMut::new(&mut db[bo..bo + k * n], k, n),
                        MatRef::new(&ad[i * m * k..(i + 1) * m * k], m, k).t(),
                        MatRef::new(&g[i * m * n..(i + 1) * m * n], m, n),
                        !per_batch_b && i > 0,
                        Parallelism::Auto,
                    );
                }
                db
            });
            Ok(vec![da, db])
        })
    });
    Ok(record1(
        if per_batch_b {
            "BmmBackward"
        } else {
            "MmBackward"
        },
        &[a, b],
        out,
        shape,
        backward,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_and_matmul_agree_and_differentiate() {
        let x = Tensor::from_vec(vec![1., 2., 3., 4., 5., 6.], &[2, 3])
            .unwrap()
            .requires_grad();
        let w = Tensor::from_vec(vec![1., 0., -1., 2., 1., 0.], &[2, 3])
            .unwrap()
            .requires_grad();
        let b = Tensor::from_vec(vec![0.5, -0.5], &[2])
            .unwrap()
            .requires_grad();
        let y = x.linear(&w, Some(&b)).unwrap();
        assert_eq!(y.to_vec(), vec![-1.5, 3.5, -1.5, 12.5]);
        let y2 = x
            .matmul(&w.transpose(0, 1).unwrap())
            .unwrap()
            .add(&b)
            .unwrap();
        assert_eq!(y.to_vec(), y2.to_vec());
        y.sum().unwrap().backward().unwrap();
        assert_eq!(x.grad().unwrap().to_vec(), vec![3., 1., -1., 3., 1., -1.]);
        assert_eq!(w.grad().unwrap().to_vec(), vec![5., 7., 9., 5., 7., 9.]);
        assert_eq!(b.grad().unwrap().to_vec(), vec![2., 2.]);
        assert!(x.linear(&w.transpose(0, 1).unwrap(), None).is_err());
        // batched
        let a = Tensor::from_vec((0..12).map(|v| v as f32).collect(), &[2, 2, 3]).unwrap();
        let c = Tensor::from_vec((0..12).map(|v| v as f32).collect(), &[2, 3, 2]).unwrap();
        let p = a.matmul(&c).unwrap();
        assert_eq!(p.shape(), &[2, 2, 2]);
        assert_eq!(p.to_vec()[..4], [10., 13., 28., 40.]);
        let v = Tensor::from_vec(vec![1., 1., 1.], &[3]).unwrap();
        assert_eq!(x.matmul(&v).unwrap().to_vec(), vec![6., 15.]);
    }
}
