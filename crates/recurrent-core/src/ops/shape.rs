//! Shape ops: reshape and (un)squeeze (views that share storage), and the copying ops
//! permute/transpose, narrow, cat/stack and index_select, with their backward.

use super::{backward_fn, check_dim, split_at_dim, take_grad};
use crate::autograd::{needs_grad, record1, record_view};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Copy `src` (shape `shape`) into a new buffer with dims permuted by `perm`.
fn permute_data(src: &[f32], shape: &[usize], perm: &[usize]) -> (Vec<f32>, Vec<usize>) {
    let nd = shape.len();
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let mut in_strides = vec![1usize; nd];
    for d in (0..nd.saturating_sub(1)).rev() {
        in_strides[d] = in_strides[d + 1] * shape[d + 1];
    }
    let strides: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
    let n = src.len();
    let mut out = Vec::with_capacity(n);
    if n == 0 {
        return (out, out_shape);
    }
    // Copy whole runs when the last dim stays last.
    let (run, outer_dims) = if nd > 0 && perm[nd - 1] == nd - 1 {
        (shape[nd - 1], nd - 1)
    } else {
        (1, nd)
    };
    let mut idx = vec![0usize; outer_dims];
    loop {
        let off: usize = idx.iter().zip(&strides).map(|(i, s)| i * s).sum();
        out.extend_from_slice(&src[off..off + run]);
        // increment the multi-index over out_shape[..outer_dims]
        let mut d = outer_dims;
        loop {
            if d == 0 {
                return (out, out_shape);
            }
            d -= 1;
            idx[d] += 1;
            if idx[d] < out_shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

impl Tensor {
    /// The same values with a new shape of the same size (a view: no copy).
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        if n != self.numel() {
            return Err(Error::invalid(format!(
                "shape '{:?}' is invalid for input of size {}",
                shape,
                self.numel()
            )));
        }
        Ok(record_view(self, shape.to_vec()))
    }

    /// Insert a dimension of size 1 at `dim` (a view).
    pub fn unsqueeze(&self, dim: usize) -> Result<Tensor> {
        if dim > self.ndim() {
            return Err(Error::invalid(format!(
                "unsqueeze: dimension out of range (expected to be in range of [0, {}], but got {dim})",
                self.ndim()
            )));
        }
        let mut s = self.shape().to_vec();
        s.insert(dim, 1);
        Ok(record_view(self, s))
    }

    /// Remove dimension `dim` if it has size 1 (a view; otherwise the tensor unchanged).
    pub fn squeeze(&self, dim: usize) -> Result<Tensor> {
        check_dim(self, dim, "squeeze")?;
        if self.shape()[dim] != 1 {
            return Ok(self.clone());
        }
        let mut s = self.shape().to_vec();
        s.remove(dim);
        Ok(record_view(self, s))
    }

    /// Flatten dims `start..=end` into one (a view).
    pub fn flatten(&self, start: usize, end: usize) -> Result<Tensor> {
        if self.ndim() == 0 {
            return self.reshape(&[1]);
        }
        if start > end || end >= self.ndim() {
            return Err(Error::invalid(format!(
                "flatten: invalid dims {start}..={end} for a {}-d tensor",
                self.ndim()
            )));
        }
        let s = self.shape();
        let mut shape = s[..start].to_vec();
        shape.push(s[start..=end].iter().product());
        shape.extend_from_slice(&s[end + 1..]);
        self.reshape(&shape)
    }

    /// Reorder the dimensions (a copy): output dim `i` is input dim `perm[i]`.
    pub fn permute(&self, perm: &[usize]) -> Result<Tensor> {
        let nd = self.ndim();
        let mut seen = vec![false; nd];
        if perm.len() != nd
            || perm
                .iter()
                .any(|&p| p >= nd || std::mem::replace(&mut seen[p], true))
        {
            return Err(Error::invalid(format!(
                "permute: {perm:?} is not a permutation of the {nd} dims of a tensor of shape {:?}",
                self.shape()
            )));
        }
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            return Ok(self.clone());
        }
        let (out, out_shape) = permute_data(&self.data(), self.shape(), perm);
        let backward = needs_grad(&[self]).then(|| {
            let mut inverse = vec![0; nd];
            for (i, &p) in perm.iter().enumerate() {
                inverse[p] = i;
            }
            let out_shape = out_shape.clone();
            backward_fn(move |g, _| {
                let g = take_grad(g, out_shape.iter().product());
                Ok(vec![Some(permute_data(&g, &out_shape, &inverse).0)])
            })
        });
        Ok(record1(
            "PermuteBackward",
            &[self],
            out,
            out_shape,
            backward,
        ))
    }

    /// Swap two dimensions (a copy).
    pub fn transpose(&self, d0: usize, d1: usize) -> Result<Tensor> {
        check_dim(self, d0, "transpose")?;
        check_dim(self, d1, "transpose")?;
        let mut perm: Vec<usize> = (0..self.ndim()).collect();
        perm.swap(d0, d1);
        self.permute(&perm)
    }

    /// Elements `start..start + len` along `dim` (a copy).
    pub fn narrow(&self, dim: usize, start: usize, len: usize) -> Result<Tensor> {
        check_dim(self, dim, "narrow")?;
        let size = self.shape()[dim];
        if start.checked_add(len).is_none_or(|e| e > size) {
            return Err(Error::invalid(format!(
                "start ({start}) + length ({len}) exceeds dimension size ({size})."
            )));
        }
        let (outer, _, inner) = split_at_dim(self.shape(), dim);
        let src = self.data();
        let mut out = Vec::with_capacity(outer * len * inner);
        for o in 0..outer {
            let base = (o * size + start) * inner;
            out.extend_from_slice(&src[base..base + len * inner]);
        }
        drop(src);
        let mut shape = self.shape().to_vec();
        shape[dim] = len;
        let backward = needs_grad(&[self]).then(|| {
            backward_fn(move |g, _| {
                let g = take_grad(g, outer * len * inner);
                let mut dx = vec![0.0; outer * size * inner];
                for o in 0..outer {
                    let base = (o * size + start) * inner;
                    dx[base..base + len * inner]
                        .copy_from_slice(&g[o * len * inner..(o + 1) * len * inner]);
                }
                Ok(vec![Some(dx)])
            })
        });
        Ok(record1("NarrowBackward", &[self], out, shape, backward))
    }

    /// Index `index` along `dim`, removing that dim.
    pub fn select(&self, dim: usize, index: usize) -> Result<Tensor> {
        self.narrow(dim, index, 1)?.squeeze(dim)
    }

    /// Join tensors along `dim`; all other dims must agree.
    pub fn cat(tensors: &[Tensor], dim: usize) -> Result<Tensor> {
        let first = tensors
            .first()
            .ok_or_else(|| Error::invalid("torch.cat(): expected a non-empty list of Tensors"))?;
        check_dim(first, dim, "cat")?;
        for t in tensors {
            let ok = t.ndim() == first.ndim()
                && t.shape()
                    .iter()
                    .zip(first.shape())
                    .enumerate()
                    .all(|(d, (a, b))| d == dim || a == b);
            if !ok {
                return Err(Error::invalid(format!(
                    "Sizes of tensors must match except in dimension {dim}. Expected {:?} got {:?}",
                    first.shape(),
                    t.shape()
                )));
            }
        }
        let (outer, _, inner) = split_at_dim(first.shape(), dim);
        let sizes: Vec<usize> = tensors.iter().map(|t| t.shape()[dim]).collect();
        let total: usize = sizes.iter().sum();
        let mut out = vec![0.0; outer * total * inner];
        let mut off = 0;
        for (t, &sz) in tensors.iter().zip(&sizes) {
            let src = t.data();
            for o in 0..outer {
                let dst = (o * total + off) * inner;
                out[dst..dst + sz * inner]
                    .copy_from_slice(&src[o * sz * inner..(o + 1) * sz * inner]);
            }
            off += sz;
        }
        let mut shape = first.shape().to_vec();
        shape[dim] = total;
        let refs: Vec<&Tensor> = tensors.iter().collect();
        let backward = needs_grad(&refs).then(|| {
            backward_fn(move |g, needs| {
                let g = take_grad(g, outer * total * inner);
                let mut res = Vec::with_capacity(sizes.len());
                let mut off = 0;
                for (&sz, &need) in sizes.iter().zip(needs) {
                    if need {
                        let mut d = Vec::with_capacity(outer * sz * inner);
                        for o in 0..outer {
                            let s = (o * total + off) * inner;
                            d.extend_from_slice(&g[s..s + sz * inner]);
                        }
                        res.push(Some(d));
                    } else {
                        res.push(None);
                    }
                    off += sz;
                }
                Ok(res)
            })
        });
        Ok(record1("CatBackward", &refs, out, shape, backward))
    }

    /// Stack equally shaped tensors along a new dimension `dim`.
    pub fn stack(tensors: &[Tensor], dim: usize) -> Result<Tensor> {
        let first = tensors
            .first()
            .ok_or_else(|| Error::invalid("stack expects a non-empty TensorList"))?;
        if let Some(t) = tensors.iter().find(|t| t.shape() != first.shape()) {
            return Err(Error::invalid(format!(
                "stack expects each tensor to be equal size, but got {:?} at entry 0 and {:?}",
                first.shape(),
                t.shape()
            )));
        }
        let un: Vec<Tensor> = tensors
            .iter()
            .map(|t| t.unsqueeze(dim))
            .collect::<Result<_>>()?;
        Tensor::cat(&un, dim)
    }

    /// Pick entries `index` along `dim` (a copy; repeats allowed).
    pub fn index_select(&self, dim: usize, index: &[usize]) -> Result<Tensor> {
        check_dim(self, dim, "index_select")?;
        let size = self.shape()[dim];
        if let Some(&bad) = index.iter().find(|&&i| i >= size) {
            return Err(Error::invalid(format!(
                "index_select(): index {bad} is out of bounds for dimension {dim} with size {size}"
            )));
        }
        let (outer, _, inner) = split_at_dim(self.shape(), dim);
        let k = index.len();
        let src = self.data();
        let mut out = Vec::with_capacity(outer * k * inner);
        for o in 0..outer {
            for &i in index {
                let s = (o * size + i) * inner;
                out.extend_from_slice(&src[s..s + inner]);
            }
        }
        drop(src);
        let mut shape = self.shape().to_vec();
        shape[dim] = k;
        let backward = needs_grad(&[self]).then(|| {
            let index = index.to_vec();
            backward_fn(move |g, _| {
                let g = take_grad(g, outer * k * inner);
                let mut dx = vec![0.0; outer * size * inner];
                for o in 0..outer {
                    for (j, &i) in index.iter().enumerate() {
                        let s = (o * size + i) * inner;
                        let gs = (o * k + j) * inner;
                        for (a, b) in dx[s..s + inner].iter_mut().zip(&g[gs..gs + inner]) {
                            *a += b;
                        }
                    }
                }
                Ok(vec![Some(dx)])
            })
        });
        Ok(record1(
            "IndexSelectBackward",
            &[self],
            out,
            shape,
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
    fn permute_matches_index_arithmetic() {
        let x = t(&(0..24).map(|i| i as f32).collect::<Vec<_>>(), &[2, 3, 4]);
        let y = x.permute(&[2, 0, 1]).unwrap();
        assert_eq!(y.shape(), &[4, 2, 3]);
        let yd = y.to_vec();
        for a in 0..2 {
            for b in 0..3 {
                for c in 0..4 {
                    assert_eq!(yd[c * 6 + a * 3 + b], (a * 12 + b * 4 + c) as f32);
                }
            }
        }
        let z = x.transpose(0, 1).unwrap();
        assert_eq!(z.shape(), &[3, 2, 4]);
        assert_eq!(z.to_vec()[4..8], [12.0, 13.0, 14.0, 15.0]);
        assert!(x.permute(&[0, 0, 1]).is_err());
    }

    #[test]
    fn narrow_cat_index_select_and_their_gradients() {
        let x = t(&[1., 2., 3., 4., 5., 6.], &[2, 3]).requires_grad();
        let n = x.narrow(1, 1, 2).unwrap();
        assert_eq!(n.to_vec(), vec![2., 3., 5., 6.]);
        let c = Tensor::cat(&[n.clone(), x.clone()], 1).unwrap();
        assert_eq!(c.shape(), &[2, 5]);
        assert_eq!(c.to_vec(), vec![2., 3., 1., 2., 3., 5., 6., 4., 5., 6.]);
        let s = c.index_select(1, &[0, 0, 4]).unwrap();
        assert_eq!(s.to_vec(), vec![2., 2., 3., 5., 5., 6.]);
        s.sum().unwrap().backward().unwrap();
        // column 0 of c (= x[:,1]) picked twice; column 4 (= x[:,2]) once
        assert_eq!(x.grad().unwrap().to_vec(), vec![0., 2., 1., 0., 2., 1.]);
        assert!(x.narrow(1, 2, 2).is_err());
        assert!(x.index_select(0, &[2]).is_err());
        assert!(Tensor::cat(&[x.clone(), t(&[1.], &[1, 1])], 0).is_err());
        let st = Tensor::stack(&[x.clone(), x.clone()], 0).unwrap();
        assert_eq!(st.shape(), &[2, 2, 3]);
    }
}
