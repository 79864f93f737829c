//! The operands of the step product: a weight packed once per call into the panels the tile
//! kernel reads ([`Packed`]), the rows of the left operand ([`Rows`]), and one or two pairs of
//! them ([`Operands`]).

use super::Isa;
use crate::backend::cpu::float::Float;

/// A weight matrix packed for [`product`]: the right operand `B: [K, G·U]` of `A · B`, whose
/// `G·U` output columns are `G` gates of `U` units each (`G = 1` for a plain product).
///
/// Panel `p` covers units `p·UV·W .. (p+1)·UV·W` of every gate (`W` lanes, `UV` vectors per
/// gate, `G·UV` vectors per row of the panel); its `K` rows lie one after the other, each
/// `G·UV·W` elements: gate-major, then the unit vectors, then the lanes. Units past `U` are
/// zero.
#[derive(Debug)]
pub struct Packed<T> {
    pub(super) isa: Isa,
    pub(super) buf: Vec<T>,
    pub(super) start: usize,
    pub(super) k: usize,
    pub(super) units: usize,
    pub(super) gates: usize,
    pub(super) uv: usize,
    pub(super) panels: usize,
}

impl<T: Float> Packed<T> {
    fn build(
        isa: Isa,
        k: usize,
        units: usize,
        gates: usize,
        get: impl Fn(usize, usize) -> T,
    ) -> Self {
        assert!((1..=4).contains(&gates) && gates != 2, "gates: 1, 3 or 4");
        // Only `f32` has vector kernels.
        let isa = if std::mem::size_of::<T>() == 4 {
            isa
        } else {
            Isa::Portable
        };
        let w = isa.lanes();
        let uv = if gates == 1 { 4 } else { 1 };
        let panels = units.div_ceil(uv * w);
        let row = gates * uv * w;
        // 64-byte alignment: the panel rows are loaded as whole vectors.
        let align = (64 / std::mem::size_of::<T>()).max(1);
        let mut buf = vec![T::zero(); panels * k * row + align];
        let start = (align - (buf.as_ptr() as usize / std::mem::size_of::<T>()) % align) % align;
        let data = &mut buf[start..];
        // One output column at a time, `k` elements down the panel: `get` reads a column along
        // `k` contiguously for a transposed (PyTorch-layout) weight, the common case.
        for p in 0..panels {
            let panel = &mut data[p * k * row..(p + 1) * k * row];
            for q in 0..gates {
                for j in 0..uv {
                    for l in 0..w {
                        let unit = (p * uv + j) * w + l;
                        if unit >= units {
                            continue;
                        }
                        let col = q * units + unit;
                        let at = (q * uv + j) * w + l;
                        for kk in 0..k {
                            panel[kk * row + at] = get(kk, col);
                        }
                    }
                }
            }
        }
        Packed {
            isa,
            buf,
            start,
            k,
            units,
            gates,
            uv,
            panels,
        }
    }

    /// `B = Wᵀ` for a weight stored as PyTorch stores it, `W: [gates·units, k]` (one row per
    /// output): `A · B` is `A · Wᵀ`, the forward product of a layer.
    pub fn transposed(isa: Isa, w: &[T], gates: usize, units: usize, k: usize) -> Self {
        assert_eq!(w.len(), gates * units * k);
        Self::build(isa, k, units, gates, |kk, col| w[col * k + kk])
    }

    /// `B = W` for `W: [k, n]`: `A · W`, the backward product of a layer.
    pub fn direct(isa: Isa, w: &[T], k: usize, n: usize) -> Self {
        assert_eq!(w.len(), k * n);
        Self::build(isa, k, n, 1, |kk, col| w[kk * n + col])
    }

    /// The instruction set it was packed for.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// `K`, the inner dimension.
    pub fn inner(&self) -> usize {
        self.k
    }

    /// Output columns: gates × units.
    pub fn outputs(&self) -> usize {
        self.gates * self.units
    }

    #[inline(always)]
    pub(super) fn panel(&self, p: usize) -> *const T {
        let row = self.gates * self.uv * self.lanes();
        // SAFETY: p < panels; the buffer holds panels·k·row elements from `start`.
        unsafe { self.buf.as_ptr().add(self.start + p * self.k * row) }
    }

    #[inline(always)]
    pub(super) fn lanes(&self) -> usize {
        self.isa.lanes()
    }
}

/// The rows of a left operand: row `r` of `rows` starts at `ptr + r·ld` and has `K` elements.
#[derive(Clone, Copy, Debug)]
pub struct Rows<T> {
    pub(super) ptr: *const T,
    pub(super) ld: usize,
    pub(super) rows: usize,
}

impl<T> Rows<T> {
    /// `[rows, k]` rows of `data`, `ld` apart (`data` must hold them; checked).
    pub fn new(data: &[T], rows: usize, k: usize, ld: usize) -> Self {
        assert!(ld >= k || rows <= 1);
        assert!(rows == 0 || k == 0 || (rows - 1) * ld + k <= data.len());
        Rows {
            ptr: data.as_ptr(),
            ld,
            rows,
        }
    }

    /// Rows in the operand.
    pub fn rows(&self) -> usize {
        self.rows
    }
}

/// The operands of a product: `A · B`, or `A₁ · B₁ + A₂ · B₂` in one pass (a step's input
/// and recurrent products together), the `B`s packed alike.
#[derive(Clone, Copy, Debug)]
pub struct Operands<'a, T> {
    pub(super) first: (&'a Packed<T>, Rows<T>),
    pub(super) second: Option<(&'a Packed<T>, Rows<T>)>,
}

impl<'a, T: Float> Operands<'a, T> {
    /// `A · B`.
    pub fn one(b: &'a Packed<T>, a: Rows<T>) -> Self {
        Operands {
            first: (b, a),
            second: None,
        }
    }

    /// `A₁ · B₁ + A₂ · B₂`; panics unless the `B`s have the same panels and the `A`s the same
    /// rows.
    pub fn two(b1: &'a Packed<T>, a1: Rows<T>, b2: &'a Packed<T>, a2: Rows<T>) -> Self {
        assert!(
            (b1.isa, b1.units, b1.gates, b1.uv) == (b2.isa, b2.units, b2.gates, b2.uv)
                && a1.rows == a2.rows,
            "operands packed differently"
        );
        Operands {
            first: (b1, a1),
            second: Some((b2, a2)),
        }
    }

    /// The instruction set the operands were packed for.
    pub fn isa(&self) -> Isa {
        self.first.0.isa
    }

    /// The packing both `B`s share.
    #[inline(always)]
    pub(super) fn layout(&self) -> &'a Packed<T> {
        self.first.0
    }

    #[inline(always)]
    pub(super) fn rows(&self) -> usize {
        self.first.1.rows
    }
}
