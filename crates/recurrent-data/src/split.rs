//! A seeded, stratified hold-out split (the validation set is taken from the training split;
//! the test split is only ever used by `eval`).

use recurrent_core::Generator;

/// Split indices `0..labels.len()` into `(train, validation)` with `fraction` of each label's
/// examples (rounded) in validation. The same labels, fraction and seed always give the same
/// split; both lists are in increasing order.
pub fn stratified_split(labels: &[u8], fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut g = Generator::new(seed);
    let mut classes: Vec<u8> = labels.to_vec();
    classes.sort_unstable();
    classes.dedup();
    let mut val = Vec::new();
    for c in classes {
        let mut idx: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == c).collect();
        g.shuffle(&mut idx);
        let k = ((idx.len() as f64) * fraction.clamp(0.0, 1.0)).round() as usize;
        val.extend_from_slice(&idx[..k]);
    }
    val.sort_unstable();
    let mut is_val = vec![false; labels.len()];
    for &i in &val {
        is_val[i] = true;
    }
    let train = (0..labels.len()).filter(|&i| !is_val[i]).collect();
    (train, val)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stratified_seeded_and_disjoint() {
        let labels: Vec<u8> = (0..1000).map(|i| u8::from(i % 4 == 0)).collect();
        let (tr, va) = stratified_split(&labels, 0.1, 7);
        assert_eq!(va.len(), 100);
        assert_eq!(va.iter().filter(|&&i| labels[i] == 1).count(), 25);
        assert_eq!(tr.len() + va.len(), 1000);
        assert!(tr.iter().all(|i| !va.contains(i)));
        assert_eq!(stratified_split(&labels, 0.1, 7), (tr.clone(), va.clone()));
        assert_ne!(stratified_split(&labels, 0.1, 8).1, va);
    }
}
