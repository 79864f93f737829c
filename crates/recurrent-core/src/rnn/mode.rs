//! Which recurrence a layer computes. Layer code, the autograd op and the Python bindings
//! name a recurrence by [`RnnMode`]; the device kernels behind it are chosen from the mode in
//! one place of each backend.

/// Which recurrence a layer computes (PyTorch's `mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RnnMode {
    /// Elman RNN with `tanh`.
    RnnTanh,
    /// Elman RNN with `relu`.
    RnnRelu,
    /// Long short-term memory.
    Lstm,
    /// Gated recurrent unit.
    Gru,
}

impl RnnMode {
    /// Gates per hidden unit: 4 (LSTM), 3 (GRU), 1 (Elman).
    ///
    /// ```
    /// use recurrent_core::rnn::RnnMode;
    /// assert_eq!(RnnMode::Lstm.gate_multiplier(), 4);
    /// ```
    pub fn gate_multiplier(self) -> usize {
        match self {
            RnnMode::Lstm => 4,
            RnnMode::Gru => 3,
            RnnMode::RnnTanh | RnnMode::RnnRelu => 1,
        }
    }

    /// PyTorch's name of the mode.
    pub fn name(self) -> &'static str {
        match self {
            RnnMode::RnnTanh => "RNN_TANH",
            RnnMode::RnnRelu => "RNN_RELU",
            RnnMode::Lstm => "LSTM",
            RnnMode::Gru => "GRU",
        }
    }

    /// The mode from PyTorch's name (`"LSTM"`, `"GRU"`, `"RNN_TANH"`, `"RNN_RELU"`).
    ///
    /// ```
    /// use recurrent_core::rnn::RnnMode;
    /// assert_eq!(RnnMode::parse("GRU"), Some(RnnMode::Gru));
    /// assert_eq!(RnnMode::parse("gru"), None);
    /// ```
    pub fn parse(name: &str) -> Option<RnnMode> {
        [
            RnnMode::RnnTanh,
            RnnMode::RnnRelu,
            RnnMode::Lstm,
            RnnMode::Gru,
        ]
        .into_iter()
        .find(|m| m.name() == name)
    }

    /// Whether the layer carries a cell state `c` beside `h` (the LSTM).
    pub fn has_cell_state(self) -> bool {
        self == RnnMode::Lstm
    }
}
