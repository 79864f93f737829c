//! Numericalised examples, length-bucketed batches in the packed layout the recurrent layers
//! take, and a loader that builds batches ahead of the model on its own thread.

use recurrent_core::Generator;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

/// One numericalised example.
#[derive(Clone, Debug, PartialEq)]
pub struct Encoded {
    /// Token indices (already truncated; never empty).
    pub ids: Vec<u32>,
    /// The target (1.0 positive, 0.0 negative).
    pub label: f32,
}

/// A batch in packed layout: sequences sorted by decreasing length, step after step.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// Token indices in packed order (`sum(batch_sizes)` of them).
    pub ids: Vec<usize>,
    /// Sequences still running at each step.
    pub batch_sizes: Vec<usize>,
    /// Labels in the batch's (sorted) order.
    pub labels: Vec<f32>,
    /// Lengths in the batch's order.
    pub lengths: Vec<usize>,
    /// Which examples (indices into the dataset) the rows are.
    pub index: Vec<usize>,
}

impl Batch {
    /// Pack the examples `index` of `data`.
    pub fn pack(data: &[Encoded], index: &[usize]) -> Batch {
        let mut order: Vec<usize> = index.to_vec();
        // Stable: equal lengths keep their order, so batches are reproducible.
        order.sort_by(|&a, &b| data[b].ids.len().cmp(&data[a].ids.len()));
        let lengths: Vec<usize> = order.iter().map(|&i| data[i].ids.len()).collect();
        let max_len = lengths.first().copied().unwrap_or(0);
        let batch_sizes: Vec<usize> = (0..max_len)
            .map(|t| lengths.iter().filter(|&&l| l > t).count())
            .collect();
        let mut ids = Vec::with_capacity(lengths.iter().sum());
        for (t, &bt) in batch_sizes.iter().enumerate() {
            for &i in &order[..bt] {
                ids.push(data[i].ids[t] as usize);
            }
        }
        Batch {
            ids,
            batch_sizes,
            labels: order.iter().map(|&i| data[i].label).collect(),
            lengths,
            index: order,
        }
    }

    /// Number of sequences.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the batch has no sequences.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of tokens.
    pub fn tokens(&self) -> usize {
        self.ids.len()
    }
}

/// Batches of `batch_size` over `indices` with similar lengths together (so packing wastes
/// little work on short sequences next to long ones). With `rng`, the pool is shuffled,
/// sorted by length inside chunks of 50 batches, and the batch order shuffled; without, the
/// batches run in order of decreasing length (evaluation).
pub fn bucket_batches(
    data: &[Encoded],
    indices: &[usize],
    batch_size: usize,
    rng: Option<&mut Generator>,
) -> Vec<Vec<usize>> {
    let bs = batch_size.max(1);
    let len = |i: &usize| std::cmp::Reverse(data[*i].ids.len());
    let mut idx = indices.to_vec();
    match rng {
        None => {
            idx.sort_by_key(len);
            idx.chunks(bs).map(<[usize]>::to_vec).collect()
        }
        Some(g) => {
            g.shuffle(&mut idx);
            let mut batches: Vec<Vec<usize>> = Vec::new();
            for chunk in idx.chunks_mut(bs * 50) {
                chunk.sort_by_key(len);
                batches.extend(chunk.chunks(bs).map(<[usize]>::to_vec));
            }
            g.shuffle(&mut batches);
            batches
        }
    }
}

/// Builds batches on a background thread, `ahead` batches in advance.
pub struct Loader {
    rx: Receiver<Batch>,
    handle: Option<JoinHandle<()>>,
}

impl Loader {
    /// Start packing `plan` (lists of example indices) from `data`.
    pub fn new(data: Arc<Vec<Encoded>>, plan: Vec<Vec<usize>>, ahead: usize) -> Loader {
        let (tx, rx) = sync_channel(ahead.max(1));
        let handle = std::thread::Builder::new()
            .name("recurrent-loader".into())
            .spawn(move || {
                for idx in plan {
                    if tx.send(Batch::pack(&data, &idx)).is_err() {
                        return; // the consumer stopped early
                    }
                }
            })
            .expect("spawn loader thread");
        Loader {
            rx,
            handle: Some(handle),
        }
    }
}

impl Iterator for Loader {
    type Item = Batch;
    fn next(&mut self) -> Option<Batch> {
        self.rx.recv().ok()
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        // Unblock the producer, then wait for it.
        let (_tx, rx) = sync_channel(0);
        drop(std::mem::replace(&mut self.rx, rx));
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(ids: &[u32], label: f32) -> Encoded {
        Encoded {
            ids: ids.to_vec(),
            label,
        }
    }

    #[test]
    fn packing_sorts_by_length_and_lays_out_steps() {
        let data = vec![ex(&[1, 2], 0.0), ex(&[3, 4, 5], 1.0), ex(&[6], 1.0)];
        let b = Batch::pack(&data, &[0, 1, 2]);
        assert_eq!(b.index, vec![1, 0, 2]);
        assert_eq!(b.batch_sizes, vec![3, 2, 1]);
        assert_eq!(b.ids, vec![3, 1, 6, 4, 2, 5]);
        assert_eq!(b.labels, vec![1.0, 0.0, 1.0]);
        assert_eq!(b.lengths, vec![3, 2, 1]);
    }

    #[test]
    fn buckets_cover_everything_once_and_the_loader_delivers_in_order() {
        let data: Vec<Encoded> = (0..103)
            .map(|i| ex(&vec![1; 1 + (i * 7) % 13], 0.0))
            .collect();
        let all: Vec<usize> = (0..103).collect();
        let mut g = Generator::new(1);
        let plan = bucket_batches(&data, &all, 10, Some(&mut g));
        let mut seen: Vec<usize> = plan.iter().flatten().copied().collect();
        seen.sort_unstable();
        assert_eq!(seen, all);
        let eval = bucket_batches(&data, &all, 10, None);
        let lens: Vec<usize> = eval.iter().flatten().map(|&i| data[i].ids.len()).collect();
        assert!(
            lens.windows(2).all(|w| w[0] >= w[1]),
            "evaluation batches run longest first"
        );
        let data = Arc::new(data);
        let got: Vec<Batch> = Loader::new(data.clone(), plan.clone(), 2).collect();
        assert_eq!(got.len(), plan.len());
        assert_eq!(got[3], Batch::pack(&data, &plan[3]));
        // dropping a loader early does not hang
        let mut l = Loader::new(data, plan, 1);
        l.next();
        drop(l);
    }
}
