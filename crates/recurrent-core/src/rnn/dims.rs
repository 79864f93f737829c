//! The sizes of one recurrent layer-direction.

/// Sizes of one recurrent layer-direction.
///
/// ```
/// use recurrent_core::rnn::RnnDims;
/// let d = RnnDims { input_size: 8, hidden_size: 16, proj_size: 4 };
/// assert_eq!(d.out_size(), 4);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RnnDims {
    /// `I`, features per input row.
    pub input_size: usize,
    /// `H`, the hidden (and cell) size.
    pub hidden_size: usize,
    /// LSTM `proj_size`; 0 for none.
    pub proj_size: usize,
}

impl RnnDims {
    /// `P`, the size of `h` (and of each output row): `proj_size` if set, else `H`.
    pub fn out_size(&self) -> usize {
        if self.proj_size > 0 {
            self.proj_size
        } else {
            self.hidden_size
        }
    }
}
