//! Vectors of lanes for the step kernels: what a cell's equations are written against, so that
//! they are written once and run as AVX-512, AVX2 or plain scalar code.
//!
//! A value of a vector type exists only where its instruction set does: the constructors
//! ([`Lanes::zero`], [`Lanes::splat`], [`Lanes::load`]) are `unsafe`, with the caller promising
//! the CPU has the features, so arithmetic on a value that exists is sound. [`Scalar`] is the
//! one-lane portable form (and the form `f64` runs in).

use super::super::float::Float;
use std::ops::{Add, Div, Mul, Sub};

/// A vector of `W` lanes of `T`.
pub trait Lanes<T: Float>:
    Copy + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self> + Div<Output = Self>
{
    /// Lanes per vector.
    const W: usize;
    /// Vector registers of the instruction set (a product tile of `m` rows and `nv` vectors
    /// per row keeps `m * nv` accumulators in them).
    const REGISTERS: usize;

    /// All lanes zero.
    ///
    /// # Safety
    /// The CPU has the instruction set of `Self`.
    unsafe fn zero() -> Self;
    /// All lanes `x`.
    ///
    /// # Safety
    /// As [`Lanes::zero`].
    unsafe fn splat(x: T) -> Self;
    /// The first `n` lanes from `p` (`1 <= n <= W`), the others zero.
    ///
    /// # Safety
    /// As [`Lanes::zero`], and `p` is valid for `n` reads.
    unsafe fn load(p: *const T, n: usize) -> Self;
    /// All `W` lanes from `p`.
    ///
    /// # Safety
    /// As [`Lanes::zero`], and `p` is valid for `W` reads.
    unsafe fn load_full(p: *const T) -> Self;
    /// Store the first `n` lanes at `p` (`1 <= n <= W`).
    ///
    /// # Safety
    /// `p` is valid for `n` writes.
    unsafe fn store(self, p: *mut T, n: usize);

    /// `self * b + c`, fused where the instruction set has it.
    fn mul_add(self, b: Self, c: Self) -> Self;
    /// The logistic function `1 / (1 + e^-x)` on every lane.
    fn sigmoid(self) -> Self;
    /// `tanh` on every lane.
    fn tanh(self) -> Self;
    /// `max(x, 0)` on every lane (NaN propagates).
    fn relu(self) -> Self;
    /// Lanes where `self > 0` keep `x`, the others become zero (the derivative of ReLU,
    /// PyTorch's convention at 0).
    fn where_positive(self, x: Self) -> Self;
}

/// One lane of any [`Float`]: the portable form of the kernels.
#[derive(Clone, Copy, Debug)]
pub struct Scalar<T>(pub T);

impl<T: Float> Add for Scalar<T> {
    type Output = Self;
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        Scalar(self.0 + o.0)
    }
}

impl<T: Float> Sub for Scalar<T> {
    type Output = Self;
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        Scalar(self.0 - o.0)
    }
}

impl<T: Float> Mul for Scalar<T> {
    type Output = Self;
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        Scalar(self.0 * o.0)
    }
}

impl<T: Float> Div for Scalar<T> {
    type Output = Self;
    #[inline(always)]
    fn div(self, o: Self) -> Self {
        Scalar(self.0 / o.0)
    }
}

impl<T: Float> Lanes<T> for Scalar<T> {
    const W: usize = 1;
    const REGISTERS: usize = 16;

    #[inline(always)]
    unsafe fn zero() -> Self {
        Scalar(T::zero())
    }
    #[inline(always)]
    unsafe fn splat(x: T) -> Self {
        Scalar(x)
    }
    #[inline(always)]
    unsafe fn load(p: *const T, _n: usize) -> Self {
        Scalar(*p)
    }
    #[inline(always)]
    unsafe fn load_full(p: *const T) -> Self {
        Scalar(*p)
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut T, _n: usize) {
        *p = self.0;
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        // Not `T::mul_add`: without FMA hardware that is a library call.
        Scalar(self.0 * b.0 + c.0)
    }
    #[inline(always)]
    fn sigmoid(self) -> Self {
        Scalar(self.0.sigmoid())
    }
    #[inline(always)]
    fn tanh(self) -> Self {
        Scalar(self.0.tanh_())
    }
    #[inline(always)]
    fn relu(self) -> Self {
        // NaN stays NaN (as torch.relu): `max` would drop it.
        if self.0 < T::zero() {
            Scalar(T::zero())
        } else {
            self
        }
    }
    #[inline(always)]
    fn where_positive(self, x: Self) -> Self {
        if self.0 > T::zero() {
            x
        } else {
            Scalar(T::zero())
        }
    }
}
