//! Binary classification metrics: accuracy, precision, recall, F1 and the confusion matrix.

use serde::Serialize;

/// Counts of a binary classifier's outcomes (positive = 1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Confusion {
    /// Predicted positive, truly positive.
    pub tp: usize,
    /// Predicted positive, truly negative.
    pub fp: usize,
    /// Predicted negative, truly negative.
    pub tn: usize,
    /// Predicted negative, truly positive.
    pub fn_: usize,
}

impl Confusion {
    /// Count predictions (`prob >= 0.5` is positive) against labels.
    pub fn from_probs(probs: &[f32], labels: &[u8]) -> Confusion {
        let mut c = Confusion::default();
        for (&p, &y) in probs.iter().zip(labels) {
            match (p >= 0.5, y == 1) {
                (true, true) => c.tp += 1,
                (true, false) => c.fp += 1,
                (false, false) => c.tn += 1,
                (false, true) => c.fn_ += 1,
            }
        }
        c
    }

    /// Examples counted.
    pub fn total(&self) -> usize {
        self.tp + self.fp + self.tn + self.fn_
    }

    fn ratio(a: usize, b: usize) -> f64 {
        if b == 0 {
            0.0
        } else {
            a as f64 / b as f64
        }
    }

    /// Fraction correct.
    pub fn accuracy(&self) -> f64 {
        Self::ratio(self.tp + self.tn, self.total())
    }

    /// Of the predicted positives, the fraction truly positive.
    pub fn precision(&self) -> f64 {
        Self::ratio(self.tp, self.tp + self.fp)
    }

    /// Of the true positives, the fraction found.
    pub fn recall(&self) -> f64 {
        Self::ratio(self.tp, self.tp + self.fn_)
    }

    /// Harmonic mean of precision and recall.
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }

    /// A JSON report.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "examples": self.total(),
            "accuracy": self.accuracy(),
            "precision": self.precision(),
            "recall": self.recall(),
            "f1": self.f1(),
            "confusion_matrix": {"rows": "true label (negative, positive)", "columns": "predicted (negative, positive)",
                                 "values": [[self.tn, self.fp], [self.fn_, self.tp]]},
        })
    }
}

impl std::fmt::Display for Confusion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "examples   {}", self.total())?;
        writeln!(f, "accuracy   {:.4}", self.accuracy())?;
        writeln!(f, "precision  {:.4}", self.precision())?;
        writeln!(f, "recall     {:.4}", self.recall())?;
        writeln!(f, "f1         {:.4}", self.f1())?;
        writeln!(f, "confusion matrix (rows: true, columns: predicted)")?;
        writeln!(f, "             negative  positive")?;
        writeln!(f, "  negative  {:>8}  {:>8}", self.tn, self.fp)?;
        write!(f, "  positive  {:>8}  {:>8}", self.fn_, self.tp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_ratios() {
        let c = Confusion::from_probs(&[0.9, 0.2, 0.7, 0.4, 0.5], &[1, 0, 0, 1, 1]);
        assert_eq!((c.tp, c.fp, c.tn, c.fn_), (2, 1, 1, 1));
        assert!((c.accuracy() - 0.6).abs() < 1e-12);
        assert!((c.precision() - 2.0 / 3.0).abs() < 1e-12);
        assert!((c.recall() - 2.0 / 3.0).abs() < 1e-12);
        assert!((c.f1() - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(Confusion::default().f1(), 0.0);
    }
}
