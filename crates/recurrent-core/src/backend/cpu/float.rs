//! The element types the CPU kernels are written for: `f32` (what tensors hold) and `f64`
//! (what the finite-difference gradient checks run in, as PyTorch's `gradcheck` does).
//!
//! The activation functions are written once here so that every kernel uses the same ones.

use super::gemm::{MatMut, MatRef, Parallelism};
use super::step::{self, Epilogue, Isa, Operands, Requested, Rows, StepKernel};
use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

/// A floating-point element type of the CPU kernels.
pub trait Float:
    num_traits::Float
    + Default
    + Send
    + Sync
    + Debug
    + Display
    + Sum
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + 'static
{
    /// Converts from `f64` (rounding for `f32`).
    fn from_f64(x: f64) -> Self;
    /// Converts to `f64` (exact).
    fn to_f64(self) -> f64;

    /// `dst (+)= a * b` through the GEMM crate; see `backend::cpu::gemm::matmul`.
    fn gemm(
        dst: MatMut<'_, Self>,
        a: MatRef<'_, Self>,
        b: MatRef<'_, Self>,
        accumulate: bool,
        par: Parallelism,
    );

    /// The step kernel a layer of this type uses by default (see `backend::cpu::step`): the GEMM
    /// path, unless `RECURRENT_STEP_KERNEL` asks for a packed kernel (which runs portably).
    fn step_kernel() -> StepKernel {
        match step::requested() {
            Requested::Packed(_) => StepKernel::Packed(Isa::Portable),
            Requested::Auto | Requested::Gemm => StepKernel::Gemm(Isa::Portable),
        }
    }

    /// `step::product` in the instruction set the operands were packed for.
    ///
    /// # Safety
    /// As `step::product`.
    #[inline]
    unsafe fn step_product<E: Epilogue<Self>>(ops: Operands<'_, Self>, epi: &E) {
        step::product_portable(ops, epi)
    }

    /// `step::apply`.
    ///
    /// # Safety
    /// As `step::apply`.
    #[inline]
    unsafe fn step_apply<E: Epilogue<Self>>(
        _isa: Isa,
        prod: Rows<Self>,
        units: usize,
        gates: usize,
        epi: &E,
    ) {
        step::apply_portable(prod, units, gates, epi)
    }

    /// The logistic function `1 / (1 + e^-x)`.
    #[inline(always)]
    fn sigmoid(self) -> Self {
        Self::one() / (Self::one() + (-self).exp())
    }

    /// Hyperbolic tangent.
    #[inline(always)]
    fn tanh_(self) -> Self {
        self.tanh()
    }

    /// `sigmoid` over a slice, in place (vectorised for `f32`).
    #[inline]
    fn sigmoid_slice(x: &mut [Self]) {
        x.iter_mut().for_each(|v| *v = v.sigmoid());
    }

    /// `tanh` over a slice, in place (vectorised for `f32`).
    #[inline]
    fn tanh_slice(x: &mut [Self]) {
        x.iter_mut().for_each(|v| *v = v.tanh_());
    }
}

impl Float for f32 {
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    fn step_kernel() -> StepKernel {
        let best = Isa::best_vector();
        match (step::requested(), best) {
            (Requested::Packed(isa), _) => StepKernel::Packed(isa),
            (Requested::Gemm, _) | (Requested::Auto, None) => {
                StepKernel::Gemm(best.unwrap_or(Isa::Portable))
            }
            (Requested::Auto, Some(isa)) => StepKernel::Packed(isa),
        }
    }
    #[inline]
    unsafe fn step_product<E: Epilogue<Self>>(ops: Operands<'_, Self>, epi: &E) {
        match ops.isa() {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => step::entry::product_avx512(ops, epi),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => step::entry::product_avx2(ops, epi),
            _ => step::product_portable(ops, epi),
        }
    }
    #[inline]
    unsafe fn step_apply<E: Epilogue<Self>>(
        isa: Isa,
        prod: Rows<Self>,
        units: usize,
        gates: usize,
        epi: &E,
    ) {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => step::entry::apply_avx512(prod, units, gates, epi),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => step::entry::apply_avx2(prod, units, gates, epi),
            _ => step::apply_portable(prod, units, gates, epi),
        }
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn gemm(
        dst: MatMut<'_, Self>,
        a: MatRef<'_, Self>,
        b: MatRef<'_, Self>,
        accumulate: bool,
        par: Parallelism,
    ) {
        super::gemm::faer_matmul(dst, a, b, accumulate, par)
    }
    #[inline(always)]
    fn sigmoid(self) -> Self {
        super::activation::sigmoid_f32(self)
    }
    #[inline(always)]
    fn tanh_(self) -> Self {
        super::activation::tanh_f32(self)
    }
    #[inline]
    fn sigmoid_slice(x: &mut [Self]) {
        super::activation::sigmoid_slice(x)
    }
    #[inline]
    fn tanh_slice(x: &mut [Self]) {
        super::activation::tanh_slice(x)
    }
}

impl Float for f64 {
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    fn gemm(
        dst: MatMut<'_, Self>,
        a: MatRef<'_, Self>,
        b: MatRef<'_, Self>,
        accumulate: bool,
        par: Parallelism,
    ) {
        super::gemm::faer_matmul(dst, a, b, accumulate, par)
    }
}
