//! The recurrent family: multi-layer `Rnn`/`Lstm`/`Gru`, the single-step cells, and packed
//! sequences for variable-length batches.

pub mod cell;
pub mod layers;
pub mod packed;
pub mod recurrent;

pub use cell::{CellConfig, GruCell, LstmCell, RnnCell};
pub use layers::{
    sequence_mask, Gru, GruConfig, LayerParams, Lstm, LstmConfig, LstmState, Nonlinearity, Rnn,
    RnnBase, RnnConfig, RnnOptions, VariationalDropout,
};
pub use packed::{
    invert_permutation, pack_padded_sequence, pack_sequence, pad_packed_sequence, pad_sequence,
    unpack_sequence, unpad_sequence, PackedSequence, PaddingSide,
};
pub use recurrent::{Recurrent, RecurrentCell, RecurrentConfig, RnnMode, RnnState};
