//! The recurrent family: multi-layer `Rnn`/`Lstm`/`Gru`, the single-step cells, and packed
//! sequences for variable-length batches.

pub mod base;
pub mod cell;
pub mod config;
pub mod layers;
pub mod packed;
pub mod recurrent;

pub use base::{sequence_mask, LayerParams, RnnBase};
pub use cell::{CellConfig, GruCell, LstmCell, RnnCell};
pub use config::{GruConfig, LstmConfig, Nonlinearity, RnnConfig, RnnOptions, VariationalDropout};
pub use layers::{Gru, Lstm, LstmState, Rnn};
pub use packed::{
    invert_permutation, pack_padded_sequence, pack_sequence, pad_packed_sequence, pad_sequence,
    unpack_sequence, unpad_sequence, PackedSequence, PaddingSide,
};
pub use recurrent::{Recurrent, RecurrentCell, RecurrentConfig, RnnMode, RnnState};
