//! Safetensors state dicts with PyTorch's parameter names.
//!
//! Loading accepts what `safetensors.torch.save_file(model.state_dict(), ...)` writes: `F32`,
//! and `F64`, `F16`, `BF16` (converted to `f32`). Everything is validated before use: the
//! header's declared size against the file, every tensor's offsets inside the data and not
//! overlapping (the `safetensors` crate's checks), element counts against shapes, and a cap on
//! the header size, so a corrupt or hostile file is an error, never a crash or a huge
//! allocation.

use super::atomic::write_atomic;
use crate::nn::StateDict;
use crate::{Error, Result, Tensor};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::path::Path;

/// Largest file accepted (bytes), far above any model this crate trains; larger is refused
/// before reading.
pub const MAX_FILE_BYTES: u64 = 16 << 30;

fn f16_to_f32(bits: u16) -> f32 {
    let sign = ((bits >> 15) as u32) << 31;
    let exp = ((bits >> 10) & 0x1f) as u32;
    let frac = (bits & 0x3ff) as u32;
    let v = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // subnormal: normalise
            let mut e = 127 - 15 + 1;
            let mut f = f;
            while f & 0x400 == 0 {
                f <<= 1;
                e -= 1;
            }
            sign | ((e as u32) << 23) | ((f & 0x3ff) << 13)
        }
        (0x1f, f) => sign | 0x7f80_0000 | (f << 13),
        (e, f) => sign | ((e + 127 - 15) << 23) | (f << 13),
    };
    f32::from_bits(v)
}

/// Parse a safetensors file's bytes into a state dict.
pub fn load_safetensors_bytes(bytes: &[u8], what: &str) -> Result<StateDict> {
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| Error::corrupt(what, format!("not a valid safetensors file: {e}")))?;
    let mut names: Vec<(usize, String)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (v.data().as_ptr() as usize, n))
        .collect();
    // Keep the file's order (offsets), which is the saver's order.
    names.sort();
    let mut sd = StateDict::new();
    for (_, name) in names {
        let view = st
            .tensor(&name)
            .map_err(|e| Error::corrupt(what, format!("tensor {name:?}: {e}")))?;
        let shape = view.shape().to_vec();
        let n: usize = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| {
                Error::corrupt(what, format!("tensor {name:?}: shape {shape:?} overflows"))
            })?;
        let raw = view.data();
        let values: Vec<f32> = match view.dtype() {
            Dtype::F32 => raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            Dtype::F64 => raw
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
                .collect(),
            Dtype::F16 => raw.chunks_exact(2).map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]]))).collect(),
            Dtype::BF16 => raw
                .chunks_exact(2)
                .map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16))
                .collect(),
            other => {
                return Err(Error::corrupt(
                    what,
                    format!("tensor {name:?} has dtype {other:?}; only floating-point parameters are supported"),
                ))
            }
        };
        if values.len() != n {
            return Err(Error::corrupt(
                what,
                format!(
                    "tensor {name:?}: {} values for shape {shape:?}",
                    values.len()
                ),
            ));
        }
        sd.insert(name, Tensor::from_vec(values, &shape)?);
    }
    Ok(sd)
}

/// Load a safetensors file (e.g. written by PyTorch) as a state dict.
pub fn load_safetensors(path: &Path) -> Result<StateDict> {
    let meta =
        std::fs::metadata(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(Error::corrupt(
            path.display().to_string(),
            format!(
                "file of {} bytes exceeds the {} byte limit",
                meta.len(),
                MAX_FILE_BYTES
            ),
        ));
    }
    let bytes =
        std::fs::read(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    load_safetensors_bytes(&bytes, &path.display().to_string())
}

/// Serialise a state dict (all `F32`), with optional string metadata.
pub fn safetensors_bytes(
    sd: &StateDict,
    metadata: Option<HashMap<String, String>>,
) -> Result<Vec<u8>> {
    let bufs: Vec<(String, Vec<usize>, Vec<u8>)> = sd
        .iter()
        .map(|(n, t)| {
            let bytes: Vec<u8> = t.data().iter().flat_map(|v| v.to_le_bytes()).collect();
            (n.to_string(), t.shape().to_vec(), bytes)
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = bufs
        .iter()
        .map(|(n, s, b)| {
            TensorView::new(Dtype::F32, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| Error::invalid(format!("tensor {n:?}: {e}")))
        })
        .collect::<Result<_>>()?;
    safetensors::tensor::serialize(views, metadata)
        .map_err(|e| Error::invalid(format!("serialising safetensors: {e}")))
}

/// Save a state dict as a safetensors file, atomically.
pub fn save_safetensors(
    path: &Path,
    sd: &StateDict,
    metadata: Option<HashMap<String, String>>,
) -> Result<()> {
    write_atomic(path, &safetensors_bytes(sd, metadata)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_half_precision() {
        let mut sd = StateDict::new();
        sd.insert(
            "weight",
            Tensor::from_vec(vec![1.0, -2.5, 3.25, 0.0], &[2, 2]).unwrap(),
        );
        sd.insert("bias", Tensor::from_vec(vec![0.5], &[1]).unwrap());
        let bytes = safetensors_bytes(&sd, None).unwrap();
        let back = load_safetensors_bytes(&bytes, "test").unwrap();
        assert_eq!(
            back.get("weight").unwrap().to_vec(),
            vec![1.0, -2.5, 3.25, 0.0]
        );
        assert_eq!(back.get("bias").unwrap().shape(), &[1]);
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
    }

    #[test]
    fn corrupt_bytes_are_errors() {
        let mut sd = StateDict::new();
        sd.insert("w", Tensor::from_vec(vec![1.0; 6], &[2, 3]).unwrap());
        let bytes = safetensors_bytes(&sd, None).unwrap();
        for cut in [0, 4, 8, 20, bytes.len() - 1] {
            assert!(
                load_safetensors_bytes(&bytes[..cut], "t").is_err(),
                "cut {cut}"
            );
        }
        // A header length claiming terabytes.
        let mut huge = bytes.clone();
        huge[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(load_safetensors_bytes(&huge, "t").is_err());
    }
}
