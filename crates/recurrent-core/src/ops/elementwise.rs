//! Elementwise ops: binary arithmetic with NumPy/PyTorch broadcasting, unary functions and
//! scalar arithmetic, with their derivatives.

use super::{backward_fn, take_grad};
use crate::autograd::{needs_grad, record1};
use crate::backend::cpu::activation;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Shapes broadcast together: the output shape and, for each operand, its strides in the
/// output's index space (0 along broadcast dims).
struct Broadcast {
    shape: Vec<usize>,
    a_strides: Vec<usize>,
    b_strides: Vec<usize>,
}

fn strides_for(shape: &[usize], nd: usize, out: &[usize]) -> Vec<usize> {
    let pad = nd - shape.len();
    let mut strides = vec![0usize; nd];
    let mut s = 1;
    for d in (0..shape.len()).rev() {
        strides[pad + d] = if shape[d] == 1 && out[pad + d] != 1 {
            0
        } else {
            s
        };
        s *= shape[d];
    }
    strides
}

impl Broadcast {
    fn new(a: &[usize], b: &[usize]) -> Result<Broadcast> {
        let nd = a.len().max(b.len());
        let mut shape = vec![0; nd];
        for d in 0..nd {
            let da = if d + a.len() >= nd {
                a[d + a.len() - nd]
            } else {
                1
            };
            let db = if d + b.len() >= nd {
                b[d + b.len() - nd]
            } else {
                1
            };
            shape[d] = match (da, db) {
                (x, y) if x == y => x,
                (1, y) => y,
                (x, 1) => x,
                _ => {
                    return Err(Error::invalid(format!(
                        "The size of tensor a ({da}) must match the size of tensor b ({db}) at non-singleton dimension {d}"
                    )))
                }
            };
        }
        Ok(Broadcast {
            a_strides: strides_for(a, nd, &shape),
            b_strides: strides_for(b, nd, &shape),
            shape,
        })
    }

    /// Call `f(out_index, a_index, b_index)` for every output element, in order.
    fn for_each(&self, mut f: impl FnMut(usize, usize, usize)) {
        let n: usize = self.shape.iter().product();
        if n == 0 {
            return;
        }
        let nd = self.shape.len();
        let mut idx = vec![0usize; nd];
        let (mut ia, mut ib) = (0usize, 0usize);
        for o in 0..n {
            f(o, ia, ib);
            let mut d = nd;
            while d > 0 {
                d -= 1;
                idx[d] += 1;
                ia += self.a_strides[d];
                ib += self.b_strides[d];
                if idx[d] < self.shape[d] {
                    break;
                }
                ia -= self.a_strides[d] * idx[d];
                ib -= self.b_strides[d] * idx[d];
                idx[d] = 0;
            }
        }
    }
}

#[derive(Clone, Copy)]
enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
}

fn binary(a: &Tensor, b: &Tensor, op: BinOp) -> Result<Tensor> {
    let name = match op {
        BinOp::Add => "AddBackward",
        BinOp::Sub => "SubBackward",
        BinOp::Mul => "MulBackward",
        BinOp::Div => "DivBackward",
    };
    let f = move |x: f32, y: f32| match op {
        BinOp::Add => x + y,
        BinOp::Sub => x - y,
        BinOp::Mul => x * y,
        BinOp::Div => x / y,
    };
    let same = a.shape() == b.shape();
    let bc = if same {
        None
    } else {
        Some(Broadcast::new(a.shape(), b.shape())?)
    };
    let (ad, bd) = (a.data(), b.data());
    let out: Vec<f32> = match &bc {
        None => ad.iter().zip(bd.iter()).map(|(&x, &y)| f(x, y)).collect(),
        Some(bc) => {
            let mut out = vec![0.0; bc.shape.iter().product()];
            bc.for_each(|o, i, j| out[o] = f(ad[i], bd[j]));
            out
        }
    };
    let shape = bc
        .as_ref()
        .map_or_else(|| a.shape().to_vec(), |b| b.shape.clone());
    let needs = needs_grad(&[a, b]);
    let backward = needs.then(|| {
        // Mul and Div need the operand values.
        let keep = matches!(op, BinOp::Mul | BinOp::Div);
        let av = if keep { ad.to_vec() } else { Vec::new() };
        let bv = if keep { bd.to_vec() } else { Vec::new() };
        let (na, nb) = (ad.len(), bd.len());
        let n_out = out.len();
        backward_fn(move |g, needs| {
            let g = take_grad(g, n_out);
            let mut da = needs[0].then(|| vec![0.0f32; na]);
            let mut db = needs[1].then(|| vec![0.0f32; nb]);
            let mut visit = |o: usize, i: usize, j: usize| {
                let go = g[o];
                let (ga, gb) = match op {
                    BinOp::Add => (go, go),
                    BinOp::Sub => (go, -go),
                    BinOp::Mul => (go * bv[j], go * av[i]),
                    BinOp::Div => (go / bv[j], -go * av[i] / (bv[j] * bv[j])),
                };
                if let Some(da) = da.as_mut() {
                    da[i] += ga;
                }
                if let Some(db) = db.as_mut() {
                    db[j] += gb;
                }
            };
            match &bc {
                None => (0..n_out).for_each(|o| visit(o, o, o)),
                Some(bc) => bc.for_each(visit),
            }
            Ok(vec![da, db])
        })
    });
    drop((ad, bd));
    Ok(record1(name, &[a, b], out, shape, backward))
}

/// A unary op given `f(x)` and its derivative `df(x, y)` with `y = f(x)`.
fn unary(
    x: &Tensor,
    name: &'static str,
    f: impl Fn(f32) -> f32,
    df: fn(f32, f32) -> f32,
) -> Tensor {
    unary_slice(x, name, |xs| xs.iter().map(|&v| f(v)).collect(), df)
}

/// [`unary`] with the forward over the whole buffer (for the vectorised activations: called
/// element by element from here, their polynomial's `mul_add` is a library call on a build
/// without FMA, 10x slower).
fn unary_slice(
    x: &Tensor,
    name: &'static str,
    f: impl FnOnce(&[f32]) -> Vec<f32>,
    df: fn(f32, f32) -> f32,
) -> Tensor {
    let xd = x.data();
    let out: Vec<f32> = f(&xd);
    let backward = needs_grad(&[x]).then(|| {
        let xv = xd.to_vec();
        let yv = out.clone();
        backward_fn(move |g, _| {
            let g = take_grad(g, xv.len());
            Ok(vec![Some(
                g.iter()
                    .zip(xv.iter().zip(&yv))
                    .map(|(&g, (&x, &y))| g * df(x, y))
                    .collect(),
            )])
        })
    });
    drop(xd);
    record1(name, &[x], out, x.shape().to_vec(), backward)
}

impl Tensor {
    /// `self + other`, broadcasting.
    pub fn add(&self, other: &Tensor) -> Result<Tensor> {
        binary(self, other, BinOp::Add)
    }

    /// `self - other`, broadcasting.
    pub fn sub(&self, other: &Tensor) -> Result<Tensor> {
        binary(self, other, BinOp::Sub)
    }

    /// `self * other` elementwise, broadcasting.
    pub fn mul(&self, other: &Tensor) -> Result<Tensor> {
        binary(self, other, BinOp::Mul)
    }

    /// `self / other` elementwise, broadcasting.
    pub fn div(&self, other: &Tensor) -> Result<Tensor> {
        binary(self, other, BinOp::Div)
    }

    /// `self * s`.
    pub fn mul_scalar(&self, s: f32) -> Result<Tensor> {
        let xd = self.data();
        let out: Vec<f32> = xd.iter().map(|&v| v * s).collect();
        drop(xd);
        let backward = needs_grad(&[self]).then(|| {
            let n = self.numel();
            backward_fn(move |g, _| {
                Ok(vec![Some(take_grad(g, n).iter().map(|&v| v * s).collect())])
            })
        });
        Ok(record1(
            "MulBackward",
            &[self],
            out,
            self.shape().to_vec(),
            backward,
        ))
    }

    /// `self + s`.
    pub fn add_scalar(&self, s: f32) -> Result<Tensor> {
        let xd = self.data();
        let out: Vec<f32> = xd.iter().map(|&v| v + s).collect();
        drop(xd);
        let backward = needs_grad(&[self]).then(|| {
            let n = self.numel();
            backward_fn(move |g, _| Ok(vec![Some(take_grad(g, n))]))
        });
        Ok(record1(
            "AddBackward",
            &[self],
            out,
            self.shape().to_vec(),
            backward,
        ))
    }

    /// `-self`.
    pub fn neg(&self) -> Result<Tensor> {
        self.mul_scalar(-1.0)
    }

    /// Hyperbolic tangent.
    pub fn tanh(&self) -> Result<Tensor> {
        Ok(unary_slice(
            self,
            "TanhBackward",
            |xs| {
                let mut y = xs.to_vec();
                activation::tanh_slice(&mut y);
                y
            },
            |_, y| 1.0 - y * y,
        ))
    }

    /// The logistic sigmoid.
    pub fn sigmoid(&self) -> Result<Tensor> {
        Ok(unary_slice(
            self,
            "SigmoidBackward",
            |xs| {
                let mut y = xs.to_vec();
                activation::sigmoid_slice(&mut y);
                y
            },
            |_, y| y * (1.0 - y),
        ))
    }

    /// `max(x, 0)`; derivative 0 at 0, as PyTorch.
    pub fn relu(&self) -> Result<Tensor> {
        Ok(unary(
            self,
            "ReluBackward",
            |v| v.max(0.0),
            |_, y| if y > 0.0 { 1.0 } else { 0.0 },
        ))
    }

    /// `e^x`.
    pub fn exp(&self) -> Result<Tensor> {
        Ok(unary(self, "ExpBackward", f32::exp, |_, y| y))
    }

    /// Natural logarithm.
    pub fn log(&self) -> Result<Tensor> {
        Ok(unary(self, "LogBackward", f32::ln, |x, _| 1.0 / x))
    }

    /// Square root.
    pub fn sqrt(&self) -> Result<Tensor> {
        Ok(unary(self, "SqrtBackward", f32::sqrt, |_, y| 0.5 / y))
    }

    /// `x^p` for a constant exponent.
    pub fn powf(&self, p: f32) -> Result<Tensor> {
        let xd = self.data();
        let out: Vec<f32> = xd.iter().map(|&v| v.powf(p)).collect();
        let backward = needs_grad(&[self]).then(|| {
            let xv = xd.to_vec();
            backward_fn(move |g, _| {
                let g = take_grad(g, xv.len());
                Ok(vec![Some(
                    g.iter()
                        .zip(&xv)
                        .map(|(&g, &x)| g * p * x.powf(p - 1.0))
                        .collect(),
                )])
            })
        });
        drop(xd);
        Ok(record1(
            "PowBackward",
            &[self],
            out,
            self.shape().to_vec(),
            backward,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f32], s: &[usize]) -> Tensor {
        Tensor::from_vec(v.to_vec(), s).unwrap()
    }

    #[test]
    fn broadcasting_forward_and_backward() {
        let a = t(&[1., 2., 3., 4., 5., 6.], &[2, 3]).requires_grad();
        let b = t(&[10., 20., 30.], &[3]).requires_grad();
        let c = t(&[2., 3.], &[2, 1]).requires_grad();
        let y = a.add(&b).unwrap().mul(&c).unwrap();
        assert_eq!(y.shape(), &[2, 3]);
        assert_eq!(y.to_vec(), vec![22., 44., 66., 42., 75., 108.]);
        y.sum().unwrap().backward().unwrap();
        assert_eq!(a.grad().unwrap().to_vec(), vec![2., 2., 2., 3., 3., 3.]);
        assert_eq!(b.grad().unwrap().to_vec(), vec![5., 5., 5.]);
        assert_eq!(c.grad().unwrap().to_vec(), vec![66., 75.]);
        assert!(a.add(&t(&[1., 2.], &[2])).is_err());
    }

    #[test]
    fn division_and_unary_derivatives() {
        let a = t(&[1., 2.], &[2]).requires_grad();
        let b = t(&[4., 8.], &[2]).requires_grad();
        a.div(&b).unwrap().sum().unwrap().backward().unwrap();
        assert_eq!(a.grad().unwrap().to_vec(), vec![0.25, 0.125]);
        assert_eq!(b.grad().unwrap().to_vec(), vec![-1. / 16., -2. / 64.]);
        let x = t(&[0.5, -1.0], &[2]).requires_grad();
        x.tanh().unwrap().sum().unwrap().backward().unwrap();
        let g = x.grad().unwrap().to_vec();
        assert!((g[0] - (1.0 - 0.5f32.tanh().powi(2))).abs() < 1e-6);
        let r = t(&[-1.0, 0.0, 2.0], &[3]).requires_grad();
        r.relu().unwrap().sum().unwrap().backward().unwrap();
        assert_eq!(r.grad().unwrap().to_vec(), vec![0., 0., 1.]);
    }
}
