//! Truncated backpropagation through time over a token stream: the stream cut into `B`
//! parallel streams, read in consecutive time-major chunks whose hidden state the caller
//! carries (detached) from one chunk to the next. Shared by the character model and the
//! word-level language model.

/// `ids` cut into `b` streams of equal length (the remainder is dropped).
///
/// ```
/// use recurrent_cli::tbptt::make_streams;
/// assert_eq!(make_streams(&[0, 1, 2, 3, 4, 5, 6], 2), vec![vec![0, 1, 2], vec![3, 4, 5]]);
/// ```
pub fn make_streams(ids: &[usize], b: usize) -> Vec<Vec<usize>> {
    let per = ids.len() / b;
    (0..b)
        .map(|k| ids[k * per..(k + 1) * per].to_vec())
        .collect()
}

/// `[T, B]` inputs and next-token targets of the chunk of `b` streams that starts at `start`
/// and is at most `len` steps long (shorter at the end of the streams): `(inputs, targets,
/// T)`.
///
/// ```
/// use recurrent_cli::tbptt::chunk_at;
/// let streams = vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7]];
/// assert_eq!(chunk_at(&streams, 1, 5), (vec![1, 5, 2, 6], vec![2, 6, 3, 7], 2));
/// ```
pub fn chunk_at(streams: &[Vec<usize>], start: usize, len: usize) -> (Vec<usize>, Vec<i64>, usize) {
    let b = streams.len();
    let len = len.min(streams[0].len().saturating_sub(1 + start));
    let mut x = Vec::with_capacity(len * b);
    let mut y = Vec::with_capacity(len * b);
    for s in 0..len {
        for stream in streams {
            x.push(stream[start + s]);
            y.push(stream[start + s + 1] as i64);
        }
    }
    (x, y, len)
}

/// Chunk `k` of fixed length `t` ([`chunk_at`] at `k * t`).
pub fn chunk(streams: &[Vec<usize>], k: usize, t: usize) -> (Vec<usize>, Vec<i64>, usize) {
    chunk_at(streams, k * t, t)
}
