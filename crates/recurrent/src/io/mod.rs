//! Reading and writing: safetensors state dicts that move both ways between this crate and
//! PyTorch (`safetensors.torch.save_file(model.state_dict(), path)` / `load_file`), and
//! atomic file writes so that an interrupted save never destroys the previous file.

pub mod atomic;
pub mod safetensors;

pub use self::atomic::{write_atomic, write_atomic_with};
pub use self::safetensors::{
    load_safetensors, load_safetensors_bytes, safetensors_bytes, save_safetensors,
};
