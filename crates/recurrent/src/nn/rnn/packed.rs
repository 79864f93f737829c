//! Variable-length batches: [`PackedSequence`] and PyTorch's `torch.nn.utils.rnn` functions
//! `pack_padded_sequence`, `pad_packed_sequence`, `pad_sequence`, `pack_sequence`,
//! `unpad_sequence` and `unpack_sequence`.
//!
//! A packed batch stores, step by step, only the sequences still running: the rows of step
//! `t` are the first `batch_sizes[t]` sequences in length-sorted order. The recurrent layers
//! run on it without touching padding. All functions here are differentiable (they move rows
//! with `index_select`).

use crate::{Error, Result, Tensor};

/// A batch of variable-length sequences, packed (PyTorch's `PackedSequence`).
#[derive(Clone, Debug)]
pub struct PackedSequence {
    /// `[N, *]`: the rows of every step, step after step (`N = sum(batch_sizes)`).
    pub data: Tensor,
    /// Rows per step; non-increasing, all positive.
    pub batch_sizes: Vec<usize>,
    /// `sorted_indices[j]`: the caller's index of the `j`-th longest sequence (`None`: the
    /// caller's order was already sorted).
    pub sorted_indices: Option<Vec<usize>>,
    /// The inverse permutation of `sorted_indices`.
    pub unsorted_indices: Option<Vec<usize>>,
}

/// The inverse of a permutation.
pub fn invert_permutation(p: &[usize]) -> Vec<usize> {
    let mut inv = vec![0; p.len()];
    for (i, &v) in p.iter().enumerate() {
        inv[v] = i;
    }
    inv
}

impl PackedSequence {
    /// A packed sequence from its parts, checked: `batch_sizes` non-increasing and positive,
    /// their sum equal to `data`'s first dim, and the indices a permutation of the batch.
    pub fn new(
        data: Tensor,
        batch_sizes: Vec<usize>,
        sorted_indices: Option<Vec<usize>>,
    ) -> Result<PackedSequence> {
        if batch_sizes.is_empty()
            || batch_sizes.contains(&0)
            || batch_sizes.windows(2).any(|w| w[1] > w[0])
        {
            return Err(Error::invalid(format!(
                "batch_sizes must be non-empty, positive and non-increasing, got {batch_sizes:?}"
            )));
        }
        let n: usize = batch_sizes.iter().sum();
        if data.ndim() == 0 || data.shape()[0] != n {
            return Err(Error::invalid(format!(
                "packed data must have {n} rows (the sum of batch_sizes), got shape {:?}",
                data.shape()
            )));
        }
        if let Some(s) = &sorted_indices {
            let mut seen = vec![false; batch_sizes[0]];
            if s.len() != batch_sizes[0]
                || s.iter()
                    .any(|&i| i >= seen.len() || std::mem::replace(&mut seen[i], true))
            {
                return Err(Error::invalid(format!(
                    "sorted_indices must be a permutation of 0..{}, got {s:?}",
                    batch_sizes[0]
                )));
            }
        }
        let unsorted_indices = sorted_indices.as_deref().map(invert_permutation);
        Ok(PackedSequence {
            data,
            batch_sizes,
            sorted_indices,
            unsorted_indices,
        })
    }

    /// Number of sequences.
    pub fn batch_size(&self) -> usize {
        self.batch_sizes[0]
    }

    /// Each sequence's length, in the caller's order.
    pub fn lengths(&self) -> Vec<usize> {
        let sorted: Vec<usize> = (0..self.batch_size())
            .map(|r| self.batch_sizes.partition_point(|&b| b > r))
            .collect();
        match &self.unsorted_indices {
            Some(u) => u.iter().map(|&j| sorted[j]).collect(),
            None => sorted,
        }
    }
}

/// Row index of `(t, b)` in a padded `[T, B, *]` (or batch-first `[B, T, *]`) tensor viewed
/// as `[T*B, *]`.
fn padded_row(t: usize, b: usize, steps: usize, batch: usize, batch_first: bool) -> usize {
    if batch_first {
        b * steps + t
    } else {
        t * batch + b
    }
}

/// Pack a padded batch (`torch.nn.utils.rnn.pack_padded_sequence`).
///
/// `input` is `[T, B, *]` (`[B, T, *]` with `batch_first`); `lengths[b]` is sequence `b`'s
/// length. With `enforce_sorted`, lengths must be non-increasing; otherwise the batch is
/// sorted here and the permutation kept in the result.
pub fn pack_padded_sequence(
    input: &Tensor,
    lengths: &[usize],
    batch_first: bool,
    enforce_sorted: bool,
) -> Result<PackedSequence> {
    if input.ndim() < 2 {
        return Err(Error::invalid(format!(
            "pack_padded_sequence: input must have at least 2 dimensions, got {}",
            input.ndim()
        )));
    }
    let (steps, batch) = if batch_first {
        (input.shape()[1], input.shape()[0])
    } else {
        (input.shape()[0], input.shape()[1])
    };
    if lengths.len() != batch {
        return Err(Error::invalid(format!(
            "Expected `len(lengths)` to be equal to batch_size, but got {} (batch_size={batch})",
            lengths.len()
        )));
    }
    if enforce_sorted && lengths.windows(2).any(|w| w[1] > w[0]) {
        return Err(Error::invalid(
            "`lengths` array must be sorted in decreasing order when `enforce_sorted` is True. You can pass \
             `enforce_sorted=False` to pack_padded_sequence and/or pack_sequence to sidestep this requirement if \
             you do not need ONNX exportability.",
        ));
    }
    if lengths.contains(&0) {
        return Err(Error::invalid(
            "Length of all samples has to be greater than 0, but found an element in 'lengths' that is <= 0",
        ));
    }
    if let Some(&bad) = lengths.iter().find(|&&l| l > steps) {
        return Err(Error::invalid(format!(
            "a sequence length ({bad}) exceeds the padded length of the input ({steps})"
        )));
    }
    let sorted_indices: Option<Vec<usize>> = (!enforce_sorted).then(|| {
        let mut idx: Vec<usize> = (0..batch).collect();
        // Stable, so equal lengths keep the caller's order.
        idx.sort_by(|&a, &b| lengths[b].cmp(&lengths[a]));
        idx
    });
    let order: Vec<usize> = sorted_indices
        .clone()
        .unwrap_or_else(|| (0..batch).collect());
    let max_len = lengths[order[0]];
    let batch_sizes: Vec<usize> = (0..max_len)
        .map(|t| order.iter().filter(|&&b| lengths[b] > t).count())
        .collect();
    let mut rows = Vec::with_capacity(batch_sizes.iter().sum());
    for (t, &bt) in batch_sizes.iter().enumerate() {
        for &b in &order[..bt] {
            rows.push(padded_row(t, b, steps, batch, batch_first));
        }
    }
    let feat: Vec<usize> = input.shape()[2..].to_vec();
    let flat = input.reshape(&[steps * batch, feat.iter().product()])?;
    let mut shape = vec![rows.len()];
    shape.extend(&feat);
    let data = flat.index_select(0, &rows)?.reshape(&shape)?;
    PackedSequence::new(data, batch_sizes, sorted_indices)
}

/// Pad a packed batch back (`torch.nn.utils.rnn.pad_packed_sequence`): returns the padded
/// `[T, B, *]` (`[B, T, *]` with `batch_first`) tensor in the caller's batch order, and the
/// lengths. `total_length` pads to a fixed `T` (at least the longest sequence).
pub fn pad_packed_sequence(
    seq: &PackedSequence,
    batch_first: bool,
    padding_value: f32,
    total_length: Option<usize>,
) -> Result<(Tensor, Vec<usize>)> {
    let max_len = seq.batch_sizes.len();
    let steps = match total_length {
        Some(t) if t < max_len => {
            return Err(Error::invalid(format!(
                "Expected total_length to be at least the length of the longest sequence in input, but got \
                 total_length={t} and max sequence length being {max_len}"
            )))
        }
        Some(t) => t,
        None => max_len,
    };
    let batch = seq.batch_size();
    let n = seq.data.shape()[0];
    let feat: Vec<usize> = seq.data.shape()[1..].to_vec();
    let f: usize = feat.iter().product();
    // Output row (t, b) takes packed row offset[t] + position of b in sorted order, or the
    // padding row appended at index n.
    let pos_of: Vec<usize> = match &seq.unsorted_indices {
        Some(u) => u.clone(),
        None => (0..batch).collect(),
    };
    let mut offsets = Vec::with_capacity(max_len);
    let mut acc = 0;
    for &b in &seq.batch_sizes {
        offsets.push(acc);
        acc += b;
    }
    let mut rows = vec![n; steps * batch];
    for t in 0..steps {
        for b in 0..batch {
            let j = pos_of[b];
            if t < max_len && j < seq.batch_sizes[t] {
                rows[padded_row(t, b, steps, batch, batch_first)] = offsets[t] + j;
            }
        }
    }
    let pad = Tensor::full(&[1, f], padding_value)?;
    let src = Tensor::cat(&[seq.data.reshape(&[n, f])?, pad], 0)?;
    let mut shape = if batch_first {
        vec![batch, steps]
    } else {
        vec![steps, batch]
    };
    shape.extend(&feat);
    let out = src.index_select(0, &rows)?.reshape(&shape)?;
    Ok((out, seq.lengths()))
}

/// Which side of a sequence the padding goes on in [`pad_sequence`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PaddingSide {
    /// After the sequence (PyTorch's default).
    #[default]
    Right,
    /// Before it.
    Left,
}

/// Stack sequences of different lengths (`[L_i, *]` each) into one padded tensor
/// `[T, B, *]` (`[B, T, *]` with `batch_first`), `T` the longest length
/// (`torch.nn.utils.rnn.pad_sequence`).
pub fn pad_sequence(
    sequences: &[Tensor],
    batch_first: bool,
    padding_value: f32,
    side: PaddingSide,
) -> Result<Tensor> {
    let first = sequences
        .first()
        .ok_or_else(|| Error::invalid("pad_sequence: received an empty list of sequences"))?;
    if first.ndim() == 0 {
        return Err(Error::invalid(
            "pad_sequence: sequences must have at least one dimension",
        ));
    }
    let feat: Vec<usize> = first.shape()[1..].to_vec();
    for s in sequences {
        if s.ndim() == 0 || s.shape()[1..] != feat[..] {
            return Err(Error::invalid(format!(
                "pad_sequence: all sequences must have the trailing shape {feat:?}, got {:?}",
                s.shape()
            )));
        }
    }
    let f: usize = feat.iter().product();
    let batch = sequences.len();
    let steps = sequences.iter().map(|s| s.shape()[0]).max().unwrap_or(0);
    let mut parts = Vec::with_capacity(batch + 1);
    let mut starts = Vec::with_capacity(batch);
    let mut n = 0;
    for s in sequences {
        starts.push(n);
        n += s.shape()[0];
        parts.push(s.reshape(&[s.shape()[0], f])?);
    }
    parts.push(Tensor::full(&[1, f], padding_value)?);
    let src = Tensor::cat(&parts, 0)?;
    let mut rows = vec![n; steps * batch];
    for (b, s) in sequences.iter().enumerate() {
        let len = s.shape()[0];
        let shift = if side == PaddingSide::Left {
            steps - len
        } else {
            0
        };
        for t in 0..len {
            rows[padded_row(t + shift, b, steps, batch, batch_first)] = starts[b] + t;
        }
    }
    let mut shape = if batch_first {
        vec![batch, steps]
    } else {
        vec![steps, batch]
    };
    shape.extend(&feat);
    src.index_select(0, &rows)?.reshape(&shape)
}

/// Pack a list of sequences (`[L_i, *]` each) directly (`torch.nn.utils.rnn.pack_sequence`).
pub fn pack_sequence(sequences: &[Tensor], enforce_sorted: bool) -> Result<PackedSequence> {
    let lengths: Vec<usize> = sequences
        .iter()
        .map(|s| s.shape().first().copied().unwrap_or(0))
        .collect();
    let padded = pad_sequence(sequences, false, 0.0, PaddingSide::Right)?;
    pack_padded_sequence(&padded, &lengths, false, enforce_sorted)
}

/// Split a padded batch back into its sequences (`torch.nn.utils.rnn.unpad_sequence`).
pub fn unpad_sequence(
    padded: &Tensor,
    lengths: &[usize],
    batch_first: bool,
) -> Result<Vec<Tensor>> {
    if padded.ndim() < 2 {
        return Err(Error::invalid(
            "unpad_sequence: input must have at least 2 dimensions",
        ));
    }
    let bdim = if batch_first { 0 } else { 1 };
    let tdim = 1 - bdim;
    if lengths.len() != padded.shape()[bdim] {
        return Err(Error::invalid(format!(
            "unpad_sequence: {} lengths for a batch of {}",
            lengths.len(),
            padded.shape()[bdim]
        )));
    }
    lengths
        .iter()
        .enumerate()
        .map(|(b, &len)| {
            if len > padded.shape()[tdim] {
                return Err(Error::invalid(format!(
                    "unpad_sequence: length {len} exceeds the padded length {}",
                    padded.shape()[tdim]
                )));
            }
            let seq = padded.select(bdim, b)?;
            seq.narrow(0, 0, len)
        })
        .collect()
}

/// Split a packed batch into its sequences, in the caller's order
/// (`torch.nn.utils.rnn.unpack_sequence`).
pub fn unpack_sequence(seq: &PackedSequence) -> Result<Vec<Tensor>> {
    let (padded, lengths) = pad_packed_sequence(seq, true, 0.0, None)?;
    unpad_sequence(&padded, &lengths, true)
}
