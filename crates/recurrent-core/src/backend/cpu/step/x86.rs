//! The x86-64 vectors of the step kernels: 16 lanes of `f32` in an AVX-512 register, 8 in an
//! AVX2 register (with FMA). The activations use the same `exp` as
//! [`super::super::activation`] (range reduction, Cephes' degree-6 polynomial, `2^n` from the
//! exponent bits), so the fused step and the unfused one agree to the last bit or two.

use super::lanes::Lanes;
use std::arch::x86_64::*;
use std::ops::{Add, Div, Mul, Sub};

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Adding then subtracting 1.5·2^23 rounds to the nearest integer.
const ROUND: f32 = 12_582_912.0;
const P: [f32; 6] = [
    1.987_569_1e-4,
    1.398_2e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    0.5,
];

/// What `exp` needs beyond [`Lanes`]: clamping that keeps NaN, and `2^n` from the bits of the
/// rounded `t = n + 1.5·2^23`.
trait ExpParts: Lanes<f32> {
    /// `min(max(x, lo), hi)`, NaN staying NaN.
    fn clamp(self, lo: f32, hi: f32) -> Self;
    /// `self * 2^n` where `t = n + 1.5·2^23` (as [`super::super::activation::exp_f32`]).
    fn scale_pow2(self, t: Self) -> Self;
}

/// `e^x` lane by lane, as [`super::super::activation::exp_f32`].
#[inline(always)]
fn exp<V: ExpParts>(x: V) -> V {
    // SAFETY: a value of V exists, so its instruction set does.
    let c = |v: f32| unsafe { V::splat(v) };
    let x = x.clamp(-87.0, 88.0);
    let t = x.mul_add(c(LOG2E), c(ROUND));
    let n = t - c(ROUND);
    let r = n.mul_add(c(-LN2_HI), x);
    let r = n.mul_add(c(-LN2_LO), r);
    let mut p = c(P[0]);
    for &k in &P[1..] {
        p = p.mul_add(r, c(k));
    }
    let r2 = r * r;
    let e = p.mul_add(r2, r + c(1.0));
    e.scale_pow2(t)
}

macro_rules! vector {
    (
        $(#[$doc:meta])*
        $name:ident, $reg:ty, $w:expr, $regs:expr,
        set1 = $set1:ident, setzero = $setzero:ident, loadu = $loadu:ident,
        storeu = $storeu:ident, add = $add:ident, sub = $sub:ident, mul = $mul:ident,
        div = $div:ident, fmadd = $fmadd:ident, max = $max:ident, min = $min:ident,
        castps_si = $cast_i:ident, castsi_ps = $cast_f:ident, sub_epi32 = $sub_i:ident,
        add_epi32 = $add_i:ident, slli_epi32 = $slli:ident, set1_epi32 = $set1_i:ident
    ) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug)]
        pub struct $name(pub $reg);

        impl Add for $name {
            type Output = Self;
            #[inline(always)]
            fn add(self, o: Self) -> Self {
                // SAFETY: a value exists, so the instruction set does (see the module doc).
                $name(unsafe { $add(self.0, o.0) })
            }
        }
        impl Sub for $name {
            type Output = Self;
            #[inline(always)]
            fn sub(self, o: Self) -> Self {
                // SAFETY: as in `add`.
                $name(unsafe { $sub(self.0, o.0) })
            }
        }
        impl Mul for $name {
            type Output = Self;
            #[inline(always)]
            fn mul(self, o: Self) -> Self {
                // SAFETY: as in `add`.
                $name(unsafe { $mul(self.0, o.0) })
            }
        }
        impl Div for $name {
            type Output = Self;
            #[inline(always)]
            fn div(self, o: Self) -> Self {
                // SAFETY: as in `add`.
                $name(unsafe { $div(self.0, o.0) })
            }
        }

        impl ExpParts for $name {
            #[inline(always)]
            fn clamp(self, lo: f32, hi: f32) -> Self {
                // `max(a, b)` returns `b` when either is NaN: the input goes second.
                // SAFETY: as in `add`.
                unsafe { $name($min($set1(hi), $max($set1(lo), self.0))) }
            }
            #[inline(always)]
            fn scale_pow2(self, t: Self) -> Self {
                // SAFETY: as in `add`.
                unsafe {
                    let bits = $slli::<23>($add_i(
                        $sub_i($cast_i(t.0), $set1_i(0x4B40_0000)),
                        $set1_i(127),
                    ));
                    $name($mul(self.0, $cast_f(bits)))
                }
            }
        }

        impl Lanes<f32> for $name {
            const W: usize = $w;
            const REGISTERS: usize = $regs;

            #[inline(always)]
            unsafe fn zero() -> Self {
                $name($setzero())
            }
            #[inline(always)]
            unsafe fn splat(x: f32) -> Self {
                $name($set1(x))
            }
            #[inline(always)]
            unsafe fn load(p: *const f32, n: usize) -> Self {
                if n == $w {
                    $name($loadu(p))
                } else {
                    $name(Self::load_partial(p, n))
                }
            }
            #[inline(always)]
            unsafe fn load_full(p: *const f32) -> Self {
                $name($loadu(p))
            }
            #[inline(always)]
            unsafe fn store(self, p: *mut f32, n: usize) {
                if n == $w {
                    $storeu(p, self.0)
                } else {
                    self.store_partial(p, n)
                }
            }
            #[inline(always)]
            fn mul_add(self, b: Self, c: Self) -> Self {
                // SAFETY: as in `add`.
                $name(unsafe { $fmadd(self.0, b.0, c.0) })
            }
            #[inline(always)]
            fn sigmoid(self) -> Self {
                // SAFETY: as in `add`.
                let one = unsafe { Self::splat(1.0) };
                one / (one + exp(unsafe { Self::zero() } - self))
            }
            #[inline(always)]
            fn tanh(self) -> Self {
                // tanh(x) = 1 − 2 / (e^{2x} + 1)
                // SAFETY: as in `add`.
                let (one, two) = unsafe { (Self::splat(1.0), Self::splat(2.0)) };
                one - two / (exp(two * self) + one)
            }
            #[inline(always)]
            fn relu(self) -> Self {
                // SAFETY: as in `add`; `max(0, x)` returns x when x is NaN.
                unsafe { $name($max($setzero(), self.0)) }
            }
            #[inline(always)]
            fn where_positive(self, x: Self) -> Self {
                // SAFETY: as in `add`.
                unsafe { self.select_positive(x) }
            }
        }
    };
}

vector!(
    /// 16 lanes of `f32` (AVX-512F).
    F32x16, __m512, 16, 32,
    set1 = _mm512_set1_ps, setzero = _mm512_setzero_ps, loadu = _mm512_loadu_ps,
    storeu = _mm512_storeu_ps, add = _mm512_add_ps, sub = _mm512_sub_ps, mul = _mm512_mul_ps,
    div = _mm512_div_ps, fmadd = _mm512_fmadd_ps, max = _mm512_max_ps, min = _mm512_min_ps,
    castps_si = _mm512_castps_si512, castsi_ps = _mm512_castsi512_ps,
    sub_epi32 = _mm512_sub_epi32, add_epi32 = _mm512_add_epi32, slli_epi32 = _mm512_slli_epi32,
    set1_epi32 = _mm512_set1_epi32
);

vector!(
    /// 8 lanes of `f32` (AVX2 and FMA).
    F32x8, __m256, 8, 16,
    set1 = _mm256_set1_ps, setzero = _mm256_setzero_ps, loadu = _mm256_loadu_ps,
    storeu = _mm256_storeu_ps, add = _mm256_add_ps, sub = _mm256_sub_ps, mul = _mm256_mul_ps,
    div = _mm256_div_ps, fmadd = _mm256_fmadd_ps, max = _mm256_max_ps, min = _mm256_min_ps,
    castps_si = _mm256_castps_si256, castsi_ps = _mm256_castsi256_ps,
    sub_epi32 = _mm256_sub_epi32, add_epi32 = _mm256_add_epi32, slli_epi32 = _mm256_slli_epi32,
    set1_epi32 = _mm256_set1_epi32
);

impl F32x16 {
    #[inline(always)]
    fn mask(n: usize) -> __mmask16 {
        ((1u32 << n) - 1) as __mmask16
    }
    #[inline(always)]
    unsafe fn load_partial(p: *const f32, n: usize) -> __m512 {
        _mm512_maskz_loadu_ps(Self::mask(n), p)
    }
    #[inline(always)]
    unsafe fn store_partial(self, p: *mut f32, n: usize) {
        _mm512_mask_storeu_ps(p, Self::mask(n), self.0)
    }
    #[inline(always)]
    unsafe fn select_positive(self, x: Self) -> Self {
        let k = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(self.0, _mm512_setzero_ps());
        F32x16(_mm512_maskz_mov_ps(k, x.0))
    }
}

impl F32x8 {
    #[inline(always)]
    unsafe fn mask(n: usize) -> __m256i {
        _mm256_cmpgt_epi32(
            _mm256_set1_epi32(n as i32),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        )
    }
    #[inline(always)]
    unsafe fn load_partial(p: *const f32, n: usize) -> __m256 {
        _mm256_maskload_ps(p, Self::mask(n))
    }
    #[inline(always)]
    unsafe fn store_partial(self, p: *mut f32, n: usize) {
        _mm256_maskstore_ps(p, Self::mask(n), self.0)
    }
    #[inline(always)]
    unsafe fn select_positive(self, x: Self) -> Self {
        let k = _mm256_cmp_ps::<_CMP_GT_OQ>(self.0, _mm256_setzero_ps());
        F32x8(_mm256_and_ps(k, x.0))
    }
}

/// Whether the CPU runs [`F32x16`].
pub fn has_avx512() -> bool {
    is_x86_feature_detected!("avx512f") && has_avx2()
}

/// Whether the CPU runs [`F32x8`].
pub fn has_avx2() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}
