//! The recurrent step's own kernels: the one place in the library with a hand-written matrix
//! product.
//!
//! A step multiplies the state rows by `W_hhᵀ` and applies the cell's equations to the result.
//! Through the general GEMM that means repacking `W_hh` on every step and a round trip of the
//! gate pre-activations through memory (on AMD Zen 5 the GEMM crate reached 195 GFLOP/s on
//! that product in a 32-row slice, against 478 on square products). Here
//! (`docs/step-kernels.md` has the measurements):
//!
//! - [`Packed`]: a weight matrix packed **once per call** into panels in the order the tile
//!   kernel reads them, 64-byte aligned. For `W_hh` a panel holds every gate of a block of
//!   hidden units (LSTM: `i f g o` of 16 units with AVX-512), so one tile of the product holds
//!   all the gates of its units;
//! - [`product`]: tiles of up to 8 rows × one panel, accumulated in vector registers over the
//!   whole inner dimension, then handed to an [`Epilogue`] while still in registers. A cell's
//!   epilogue is its step equations (biases, activations, the cell update), written once over
//!   [`Lanes`](lanes::Lanes); a plain epilogue stores (with a state mask, or accumulating);
//! - run-time dispatch ([`Isa`]): AVX-512 (16 lanes of `f32`), AVX2 with FMA (8), and a
//!   portable one-lane form that every [`Float`] runs (the `f64` gradient checks run it).
//!
//! [`StepKernel`] says which path a call takes: the packed kernel of an instruction set, or
//! the GEMM crate's product followed by the same epilogue (the reference the packed kernels
//! are tested against). `RECURRENT_STEP_KERNEL` (`avx512`, `avx2`, `portable`, `gemm`) forces
//! one for measurements; the default is the best packed kernel for `f32` and the GEMM path
//! for `f64`.

pub mod lanes;
mod packed;
#[cfg(target_arch = "x86_64")]
pub mod x86;

use super::float::Float;
use lanes::{Lanes, Scalar};
pub use packed::{Operands, Packed, Rows};
use std::sync::OnceLock;

/// An instruction set the step kernels are written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512F: 16 lanes of `f32`, 32 registers.
    Avx512,
    /// AVX2 with FMA: 8 lanes of `f32`, 16 registers.
    Avx2,
    /// One lane, plain Rust: any CPU, any [`Float`].
    Portable,
}

impl Isa {
    /// Lanes of `f32` per vector (1 for the portable form, and for every `f64` kernel).
    pub fn lanes(self) -> usize {
        match self {
            Isa::Avx512 => 16,
            Isa::Avx2 => 8,
            Isa::Portable => 1,
        }
    }

    /// The name `RECURRENT_STEP_KERNEL` and the benchmarks use.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2 => "avx2",
            Isa::Portable => "portable",
        }
    }

    /// Whether this CPU runs it.
    pub fn available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => x86::has_avx512(),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86::has_avx2(),
            Isa::Portable => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// Every instruction set this CPU runs, best first.
    pub fn all_available() -> Vec<Isa> {
        [Isa::Avx512, Isa::Avx2, Isa::Portable]
            .into_iter()
            .filter(|i| i.available())
            .collect()
    }

    /// The best vector instruction set of this CPU, if it has one.
    pub fn best_vector() -> Option<Isa> {
        Isa::all_available()
            .into_iter()
            .find(|&i| i != Isa::Portable)
    }
}

/// How a recurrent step runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepKernel {
    /// `W_hh` packed once per call, the product and the cell's equations fused per tile.
    Packed(Isa),
    /// The product through the GEMM crate into a buffer, then the cell's equations over it in
    /// lanes of the given instruction set.
    Gemm(Isa),
}

/// Steps from which a call packs its weights for the step kernels (when the kernel is chosen
/// automatically). Packing costs about one pass of the product over the weights, so a call
/// of one step (a cell stepped from a loop) ran 8x slower packed than through the GEMM
/// crate (LSTM 32 → 64 at batch 1: 25 against 3 µs a step).
pub const PACK_MIN_STEPS: usize = 4;

impl StepKernel {
    /// The kernel for a call of `steps` steps: the GEMM path when so few steps would not
    /// repay packing the weights, unless the environment asked for a packed kernel.
    pub fn for_steps(self, steps: usize) -> StepKernel {
        match self {
            StepKernel::Packed(isa) if steps < PACK_MIN_STEPS && requested() == Requested::Auto => {
                StepKernel::Gemm(isa)
            }
            k => k,
        }
    }

    /// The instruction set of the cell equations.
    pub fn isa(self) -> Isa {
        match self {
            StepKernel::Packed(i) | StepKernel::Gemm(i) => i,
        }
    }

    /// A short name for reports: `avx512`, `avx2`, `portable`, or `gemm+avx512` and so on.
    pub fn name(self) -> String {
        match self {
            StepKernel::Packed(i) => i.name().to_string(),
            StepKernel::Gemm(i) => format!("gemm+{}", i.name()),
        }
    }
}

/// What `RECURRENT_STEP_KERNEL` asks for, read once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requested {
    /// Unset or `auto`.
    Auto,
    /// `gemm`.
    Gemm,
    /// An instruction set's packed kernel.
    Packed(Isa),
}

/// The request in the environment. An unknown value or an instruction set this CPU lacks is
/// reported once on stderr and treated as `auto`.
pub fn requested() -> Requested {
    static R: OnceLock<Requested> = OnceLock::new();
    *R.get_or_init(|| {
        let v = match std::env::var("RECURRENT_STEP_KERNEL") {
            Ok(v) => v.trim().to_ascii_lowercase(),
            Err(_) => return Requested::Auto,
        };
        let r = match v.as_str() {
            "" | "auto" => Requested::Auto,
            "gemm" => Requested::Gemm,
            "avx512" => Requested::Packed(Isa::Avx512),
            "avx2" => Requested::Packed(Isa::Avx2),
            "portable" => Requested::Packed(Isa::Portable),
            other => {
                eprintln!(
                    "recurrent: RECURRENT_STEP_KERNEL={other:?} is not one of auto, avx512, \
                     avx2, portable, gemm; using auto"
                );
                Requested::Auto
            }
        };
        match r {
            Requested::Packed(isa) if !isa.available() => {
                eprintln!(
                    "recurrent: RECURRENT_STEP_KERNEL={v}: this CPU lacks {}; using auto",
                    isa.name()
                );
                Requested::Auto
            }
            r => r,
        }
    })
}

/// What happens to a tile of the product while it is in registers.
///
/// `block` is called once for every row and every block of up to `W` units of a panel:
/// `acc[q]` is the product's value for gate `q` (`q < G`; the rest are zero) at units
/// `unit .. unit + n` of row `row`, `1 <= n <= W`.
pub trait Epilogue<T: Float>: Sync {
    /// Consume one block.
    ///
    /// # Safety
    /// The CPU runs `V`; the epilogue's pointers are valid for `row` and the units.
    unsafe fn block<V: Lanes<T>>(&self, row: usize, unit: usize, n: usize, acc: [V; 4]);
}

/// `out[row, unit..] = acc[0]`, times a mask row and added to what is there, as asked.
#[derive(Debug)]
pub struct Store<T> {
    out: *mut T,
    ld: usize,
    mask: *const T,
    mask_ld: usize,
    accumulate: bool,
}

// SAFETY: the pointers are only used by `block`, whose callers write disjoint rows.
unsafe impl<T: Sync> Sync for Store<T> {}

impl<T: Float> Store<T> {
    /// Write the product into rows `ld` apart at `out` (`accumulate`: add to them).
    pub fn new(out: *mut T, ld: usize, accumulate: bool) -> Self {
        Store {
            out,
            ld,
            mask: std::ptr::null(),
            mask_ld: 0,
            accumulate,
        }
    }

    /// Multiply each row by a row of `mask` first (rows `mask_ld` apart).
    pub fn masked(mut self, mask: Option<&[T]>, mask_ld: usize) -> Self {
        if let Some(m) = mask {
            self.mask = m.as_ptr();
            self.mask_ld = mask_ld;
        }
        self
    }
}

impl<T: Float> Epilogue<T> for Store<T> {
    #[inline(always)]
    unsafe fn block<V: Lanes<T>>(&self, row: usize, unit: usize, n: usize, acc: [V; 4]) {
        let mut v = acc[0];
        if !self.mask.is_null() {
            v = v * V::load(self.mask.add(row * self.mask_ld + unit), n);
        }
        let dst = self.out.add(row * self.ld + unit);
        if self.accumulate {
            v = v + V::load(dst, n);
        }
        v.store(dst, n);
    }
}

/// `A · B` with `B` packed, every tile handed to `epi`.
///
/// # Safety
/// `a` has `b.inner()` readable elements per row; `epi` may write what its rows and units
/// address, and nothing that `a` reads.
pub unsafe fn product<T: Float, E: Epilogue<T>>(b: &Packed<T>, a: Rows<T>, epi: &E) {
    T::step_product(Operands::one(b, a), epi)
}

/// `A₁ · B₁ + A₂ · B₂` in one pass (see [`Operands::two`]), every tile handed to `epi`.
///
/// # Safety
/// As [`product`], for both pairs.
pub unsafe fn product2<T: Float, E: Epilogue<T>>(
    b1: &Packed<T>,
    a1: Rows<T>,
    b2: &Packed<T>,
    a2: Rows<T>,
    epi: &E,
) {
    T::step_product(Operands::two(b1, a1, b2, a2), epi)
}

/// The GEMM path's epilogue: hand `epi` the blocks of a computed product
/// `prod: [rows, gates·units]` (row `r` at `prod + r·ld`), in lanes of `isa`.
///
/// # Safety
/// As [`product`], and `isa` is available.
pub unsafe fn apply<T: Float, E: Epilogue<T>>(
    isa: Isa,
    prod: Rows<T>,
    units: usize,
    gates: usize,
    epi: &E,
) {
    T::step_apply(isa, prod, units, gates, epi)
}

/// Rows of a product tile for `G·UV` vectors per row: as many as keep the accumulators, one
/// panel vector and one broadcast in the registers, at most 8.
#[inline(always)]
fn tile_rows<T: Float, V: Lanes<T>>(nv: usize) -> usize {
    if V::W == 1 {
        return 4;
    }
    (V::REGISTERS / nv - 2).clamp(1, 8)
}

/// [`product`] in lanes `V`.
///
/// # Safety
/// As [`product`], and the CPU runs `V`, whose lanes the operands were packed for.
#[inline(always)]
pub unsafe fn product_in<T: Float, V: Lanes<T>, E: Epilogue<T>>(ops: Operands<'_, T>, epi: &E) {
    let b = ops.layout();
    debug_assert_eq!(b.lanes(), V::W);
    match (b.gates, b.uv) {
        (4, 1) => product_g::<T, V, E, 4, 1>(ops, epi),
        (3, 1) => product_g::<T, V, E, 3, 1>(ops, epi),
        (1, 4) => product_g::<T, V, E, 1, 4>(ops, epi),
        other => unreachable!("no tile kernel for (gates, vectors per gate) = {other:?}"),
    }
}

#[inline(always)]
unsafe fn product_g<T: Float, V: Lanes<T>, E: Epilogue<T>, const G: usize, const UV: usize>(
    ops: Operands<'_, T>,
    epi: &E,
) {
    let mr = tile_rows::<T, V>(G * UV);
    let rows = ops.rows();
    for p in 0..ops.layout().panels {
        let mut r0 = 0;
        while r0 < rows {
            let m = (rows - r0).min(mr);
            match m {
                1 => tile::<T, V, E, G, UV, 1>(ops, p, r0, epi),
                2 => tile::<T, V, E, G, UV, 2>(ops, p, r0, epi),
                3 => tile::<T, V, E, G, UV, 3>(ops, p, r0, epi),
                4 => tile::<T, V, E, G, UV, 4>(ops, p, r0, epi),
                5 => tile::<T, V, E, G, UV, 5>(ops, p, r0, epi),
                6 => tile::<T, V, E, G, UV, 6>(ops, p, r0, epi),
                7 => tile::<T, V, E, G, UV, 7>(ops, p, r0, epi),
                _ => tile::<T, V, E, G, UV, 8>(ops, p, r0, epi),
            }
            r0 += m;
        }
    }
}

/// `acc += a[.., k] · panel row k` for the tile's rows.
#[inline(always)]
unsafe fn fma_row<T: Float, V: Lanes<T>, const G: usize, const UV: usize, const M: usize>(
    acc: &mut [[[V; UV]; G]; M],
    ap: *const T,
    lda: usize,
    bp: *const T,
) {
    for (r, acc_r) in acc.iter_mut().enumerate() {
        let x = V::splat(*ap.add(r * lda));
        for (q, acc_q) in acc_r.iter_mut().enumerate() {
            for (j, acc_j) in acc_q.iter_mut().enumerate() {
                *acc_j = x.mul_add(V::load_full(bp.add((q * UV + j) * V::W)), *acc_j);
            }
        }
    }
}

/// `acc += a[r0..r0 + M] · panel p of b`, over all of `b`'s `K`.
#[inline(always)]
unsafe fn accumulate<T: Float, V: Lanes<T>, const G: usize, const UV: usize, const M: usize>(
    acc: &mut [[[V; UV]; G]; M],
    b: &Packed<T>,
    a: Rows<T>,
    p: usize,
    r0: usize,
) {
    let mut bp = b.panel(p);
    let mut ap = a.ptr.add(r0 * a.ld);
    let step = G * UV * V::W;
    let mut kk = 0;
    if M * G * UV < 8 {
        // Too few accumulators to cover the FMA latency (one or two rows: batch 1 and 2):
        // a second set takes the odd k, and the two are summed at the end.
        let mut odd = [[[V::zero(); UV]; G]; M];
        while kk + 2 <= b.k {
            fma_row::<T, V, G, UV, M>(acc, ap, a.ld, bp);
            fma_row::<T, V, G, UV, M>(&mut odd, ap.add(1), a.ld, bp.add(step));
            bp = bp.add(2 * step);
            ap = ap.add(2);
            kk += 2;
        }
        for (acc_r, odd_r) in acc.iter_mut().zip(&odd) {
            for (acc_q, odd_q) in acc_r.iter_mut().zip(odd_r) {
                for (x, &y) in acc_q.iter_mut().zip(odd_q) {
                    *x = *x + y;
                }
            }
        }
    }
    while kk < b.k {
        fma_row::<T, V, G, UV, M>(acc, ap, a.ld, bp);
        bp = bp.add(step);
        ap = ap.add(1);
        kk += 1;
    }
}

/// One tile: rows `r0..r0 + M` times panel `p`, accumulated over all of `K` (of both operand
/// pairs) in registers, then the epilogue.
#[inline(always)]
unsafe fn tile<
    T: Float,
    V: Lanes<T>,
    E: Epilogue<T>,
    const G: usize,
    const UV: usize,
    const M: usize,
>(
    ops: Operands<'_, T>,
    p: usize,
    r0: usize,
    epi: &E,
) {
    let mut acc = [[[V::zero(); UV]; G]; M];
    accumulate::<T, V, G, UV, M>(&mut acc, ops.first.0, ops.first.1, p, r0);
    if let Some((b, a)) = ops.second {
        accumulate::<T, V, G, UV, M>(&mut acc, b, a, p, r0);
    }
    let units = ops.layout().units;
    let zero = V::zero();
    for (r, acc_r) in acc.iter().enumerate() {
        #[allow(clippy::needless_range_loop)] // j indexes the second level of acc_r
        for j in 0..UV {
            let unit = (p * UV + j) * V::W;
            if unit >= units {
                break;
            }
            let n = (units - unit).min(V::W);
            let gate = |q: usize| if q < G { acc_r[q.min(G - 1)][j] } else { zero };
            epi.block(r0 + r, unit, n, [gate(0), gate(1), gate(2), gate(3)]);
        }
    }
}

/// [`apply`] in lanes `V`.
///
/// # Safety
/// As [`apply`], and the CPU runs `V`.
#[inline(always)]
pub unsafe fn apply_in<T: Float, V: Lanes<T>, E: Epilogue<T>>(
    prod: Rows<T>,
    units: usize,
    gates: usize,
    epi: &E,
) {
    let zero = V::zero();
    for r in 0..prod.rows {
        let row = prod.ptr.add(r * prod.ld);
        let mut unit = 0;
        while unit < units {
            let n = (units - unit).min(V::W);
            let gate = |q: usize| {
                if q < gates {
                    V::load(row.add(q * units + unit), n)
                } else {
                    zero
                }
            };
            epi.block(r, unit, n, [gate(0), gate(1), gate(2), gate(3)]);
            unit += V::W;
        }
    }
}

/// The portable forms, which every [`Float`] has.
///
/// # Safety
/// As [`product`].
#[inline]
pub unsafe fn product_portable<T: Float, E: Epilogue<T>>(ops: Operands<'_, T>, epi: &E) {
    product_in::<T, Scalar<T>, E>(ops, epi)
}

/// See [`product_portable`].
///
/// # Safety
/// As [`apply`].
#[inline]
pub unsafe fn apply_portable<T: Float, E: Epilogue<T>>(
    prod: Rows<T>,
    units: usize,
    gates: usize,
    epi: &E,
) {
    apply_in::<T, Scalar<T>, E>(prod, units, gates, epi)
}

/// The `f32` entry points of each instruction set, compiled with its features.
#[cfg(target_arch = "x86_64")]
pub mod entry {
    use super::x86::{F32x16, F32x8};
    use super::{apply_in, product_in, Epilogue, Operands, Rows};

    /// # Safety
    /// As [`super::product`], on a CPU with AVX-512F, AVX2 and FMA.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub unsafe fn product_avx512<E: Epilogue<f32>>(ops: Operands<'_, f32>, epi: &E) {
        product_in::<f32, F32x16, E>(ops, epi)
    }

    /// # Safety
    /// As [`super::product`], on a CPU with AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn product_avx2<E: Epilogue<f32>>(ops: Operands<'_, f32>, epi: &E) {
        product_in::<f32, F32x8, E>(ops, epi)
    }

    /// # Safety
    /// As [`super::apply`], on a CPU with AVX-512F, AVX2 and FMA.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub unsafe fn apply_avx512<E: Epilogue<f32>>(
        prod: Rows<f32>,
        units: usize,
        gates: usize,
        epi: &E,
    ) {
        apply_in::<f32, F32x16, E>(prod, units, gates, epi)
    }

    /// # Safety
    /// As [`super::apply`], on a CPU with AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn apply_avx2<E: Epilogue<f32>>(
        prod: Rows<f32>,
        units: usize,
        gates: usize,
        epi: &E,
    ) {
        apply_in::<f32, F32x8, E>(prod, units, gates, epi)
    }
}

#[cfg(test)]
mod tests;
