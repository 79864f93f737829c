//! The time structure of a packed batch.
//!
//! Every sequence batch is *packed* (as PyTorch's `PackedSequence`): the rows of step `t` are
//! the `batch_sizes[t]` sequences still running at `t`, stored one after the other,
//! `offsets[t] = batch_sizes[0] + ... + batch_sizes[t-1]`. Sequences are sorted by decreasing
//! length, so the active rows at every step are `0..batch_sizes[t]`. A padded `[T, B, *]`
//! batch is the special case `batch_sizes = [B; T]`, with the same memory layout. Rows that
//! have finished keep their state untouched in the `[B, *]` state buffers, so at the end those
//! buffers hold each sequence's state after its own last step: `h_n`.
//!
//! Names used in the kernel comments: `T` steps, `B` batch (`batch_sizes[0]`), `N` packed rows
//! (`sum(batch_sizes)`), `I` input size, `H` hidden size, `P` output size (the projection size
//! of an LSTM with `proj_size`, else `H`), `G` gate width (`4H` LSTM, `3H` GRU, `H` Elman).

/// The time structure of a packed batch: how many rows are active at each step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Steps {
    batch_sizes: Vec<usize>,
    offsets: Vec<usize>,
    total: usize,
}

impl Steps {
    /// From PyTorch-style `batch_sizes`: non-increasing, positive, at least one step.
    /// Returns `None` when they are not (callers turn that into a user-facing error).
    ///
    /// ```
    /// use recurrent_core::rnn::Steps;
    /// let s = Steps::new(&[3, 2, 2, 1]).unwrap(); // lengths 4, 3 and 1
    /// assert_eq!((s.len(), s.batch(), s.total()), (4, 3, 8));
    /// assert!(Steps::new(&[2, 3]).is_none());
    /// ```
    pub fn new(batch_sizes: &[usize]) -> Option<Steps> {
        if batch_sizes.is_empty() || batch_sizes[0] == 0 {
            return None;
        }
        if batch_sizes.windows(2).any(|w| w[1] > w[0]) || batch_sizes.contains(&0) {
            return None;
        }
        let mut offsets = Vec::with_capacity(batch_sizes.len());
        let mut total = 0;
        for &b in batch_sizes {
            offsets.push(total);
            total += b;
        }
        Some(Steps {
            batch_sizes: batch_sizes.to_vec(),
            offsets,
            total,
        })
    }

    /// `T` steps of a full batch of `B` (a padded batch with no padding).
    pub fn full(steps: usize, batch: usize) -> Option<Steps> {
        Steps::new(&vec![batch; steps])
    }

    /// Number of steps `T`.
    pub fn len(&self) -> usize {
        self.batch_sizes.len()
    }

    /// Always false: a `Steps` has at least one step.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The batch `B`, the number of sequences.
    pub fn batch(&self) -> usize {
        self.batch_sizes[0]
    }

    /// Total packed rows `N`.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Active rows at step `t`.
    #[inline]
    pub fn batch_size(&self, t: usize) -> usize {
        self.batch_sizes[t]
    }

    /// The batch sizes.
    pub fn batch_sizes(&self) -> &[usize] {
        &self.batch_sizes
    }

    /// Whether every step has the whole batch (a padded batch).
    pub fn is_full(&self) -> bool {
        let b = self.batch();
        self.batch_sizes.iter().all(|&n| n == b)
    }

    /// The first packed row of step `t`.
    #[inline]
    pub fn offset(&self, t: usize) -> usize {
        self.offsets[t]
    }

    /// The steps in processing order: `0..T`, or `T-1..=0` for the reverse direction.
    pub fn order(&self, reverse: bool) -> impl DoubleEndedIterator<Item = usize> + '_ {
        let t = self.len();
        (0..t).map(move |i| if reverse { t - 1 - i } else { i })
    }

    /// The packed row that held sequence `r`'s state before step `t` (in processing order),
    /// or `None` when the state before `t` is the initial state (`h_0[r]`).
    #[inline]
    pub fn prev_row(&self, t: usize, r: usize, reverse: bool) -> Option<usize> {
        if reverse {
            let p = t + 1;
            (p < self.len() && r < self.batch_sizes[p]).then(|| self.offsets[p] + r)
        } else {
            (t > 0).then(|| self.offsets[t - 1] + r)
        }
    }

    /// Number of steps sequence `r` runs for.
    pub fn length_of(&self, r: usize) -> usize {
        self.batch_sizes.partition_point(|&b| b > r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_of_a_packed_batch() {
        let s = Steps::new(&[3, 2, 2, 1]).unwrap();
        assert_eq!((s.len(), s.batch(), s.total()), (4, 3, 8));
        assert_eq!(
            (0..4).map(|t| s.offset(t)).collect::<Vec<_>>(),
            vec![0, 3, 5, 7]
        );
        assert_eq!(
            (0..3).map(|r| s.length_of(r)).collect::<Vec<_>>(),
            vec![4, 3, 1]
        );
        assert_eq!(s.prev_row(0, 1, false), None);
        assert_eq!(s.prev_row(2, 1, false), Some(4));
        // reverse: sequence 2 (length 1) starts at t=0 from h0
        assert_eq!(s.prev_row(0, 2, true), None);
        assert_eq!(s.prev_row(0, 1, true), Some(4));
        assert_eq!(s.prev_row(3, 0, true), None);
        assert_eq!(s.order(true).collect::<Vec<_>>(), vec![3, 2, 1, 0]);
        assert!(!s.is_full() && Steps::full(3, 2).unwrap().is_full());
        assert!(Steps::new(&[2, 3]).is_none());
        assert!(Steps::new(&[2, 0]).is_none());
        assert!(Steps::new(&[]).is_none());
    }
}
