//! Buffers owned by Python, passed as `(address, element count)`, and their checked views.

use crate::spec::internal;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use recurrent_core::rnn::Steps;

/// A buffer owned by Python: `(address, element count)`.
pub(crate) type Buf = (usize, usize);

/// The slice behind a Python buffer of `expected` elements.
///
/// # Safety
/// `buf.0` must point to `buf.1` live elements of `T` that stay valid, and are not written
/// by anyone else, for `'a`.
pub(crate) unsafe fn view<'a, T>(buf: Buf, expected: usize, what: &str) -> PyResult<&'a [T]> {
    check_buf::<T>(buf, expected, what)?;
    if expected == 0 {
        return Ok(&[]);
    }
    Ok(std::slice::from_raw_parts(buf.0 as *const T, expected))
}

/// The mutable slice behind a Python buffer of `expected` elements.
///
/// # Safety
/// As [`view`], and nothing else may read or write the buffer for `'a`.
pub(crate) unsafe fn view_mut<'a, T>(
    buf: Buf,
    expected: usize,
    what: &str,
) -> PyResult<&'a mut [T]> {
    check_buf::<T>(buf, expected, what)?;
    if expected == 0 {
        return Ok(&mut []);
    }
    Ok(std::slice::from_raw_parts_mut(buf.0 as *mut T, expected))
}

pub(crate) fn check_buf<T>(buf: Buf, expected: usize, what: &str) -> PyResult<()> {
    if buf.1 != expected {
        return Err(internal(format!(
            "{what} has {} elements, expected {expected}",
            buf.1
        )));
    }
    if expected > 0 && (buf.0 == 0 || !buf.0.is_multiple_of(std::mem::align_of::<T>())) {
        return Err(internal(format!("{what} has a null or misaligned address")));
    }
    Ok(())
}

/// The time structure: `(address of T int64 batch sizes, T, 0)` for a PackedSequence, or
/// `(0, T, B)` for a padded batch.
pub(crate) fn steps_of(steps: (usize, usize, usize)) -> PyResult<Steps> {
    let (addr, t, b) = steps;
    let bad = || {
        PyValueError::new_err(
            "batch_sizes must be positive and non-increasing, with at least one step \
             (a PackedSequence made by torch.nn.utils.rnn.pack_padded_sequence or \
             pack_sequence)",
        )
    };
    if addr == 0 {
        return Steps::full(t, b).ok_or_else(bad);
    }
    // SAFETY: the Python side passes the data of a contiguous int64 CPU tensor of `t` elements.
    let sizes: &[i64] = unsafe { view((addr, t), t, "batch_sizes")? };
    let sizes: Vec<usize> = sizes
        .iter()
        .map(|&s| usize::try_from(s).map_err(|_| bad()))
        .collect::<PyResult<_>>()?;
    Steps::new(&sizes).ok_or_else(bad)
}
