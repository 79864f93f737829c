//! The [`Module`] trait: named parameters in PyTorch's registration order, state dicts, and
//! the training/evaluation switch.

use crate::{Error, Result, Tensor};
use recurrent_core::error::ShapeDisplay;

/// An ordered map from PyTorch parameter names to tensors (a `state_dict`).
#[derive(Clone, Debug, Default)]
pub struct StateDict {
    entries: Vec<(String, Tensor)>,
}

impl StateDict {
    /// An empty state dict.
    pub fn new() -> Self {
        Self::default()
    }

    /// Insert or replace a tensor.
    pub fn insert(&mut self, name: impl Into<String>, t: Tensor) {
        let name = name.into();
        match self.entries.iter_mut().find(|(n, _)| *n == name) {
            Some(e) => e.1 = t,
            None => self.entries.push((name, t)),
        }
    }

    /// The tensor stored under `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// Entries in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.entries.iter().map(|(n, t)| (n.as_str(), t))
    }

    /// Names in insertion order.
    pub fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no tensors.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries whose names start with `prefix.`, with the prefix removed.
    pub fn sub(&self, prefix: &str) -> StateDict {
        let p = format!("{prefix}.");
        StateDict {
            entries: self
                .entries
                .iter()
                .filter_map(|(n, t)| n.strip_prefix(&p).map(|s| (s.to_string(), t.clone())))
                .collect(),
        }
    }
}

impl FromIterator<(String, Tensor)> for StateDict {
    fn from_iter<I: IntoIterator<Item = (String, Tensor)>>(iter: I) -> Self {
        let mut sd = StateDict::new();
        for (n, t) in iter {
            sd.insert(n, t);
        }
        sd
    }
}

/// A layer or model: something with named parameters.
///
/// Implement [`Module::visit_parameters`] (and [`Module::set_training`] if the module or a
/// child behaves differently in training); everything else has a default.
pub trait Module {
    /// Call `f(name, parameter)` for every parameter, in PyTorch's registration order, with
    /// PyTorch's names (children's names prefixed by `child_name.`).
    fn visit_parameters(&self, f: &mut dyn FnMut(&str, &Tensor));

    /// Switch between training (dropout active) and evaluation. Containers forward it to
    /// their children.
    fn set_training(&mut self, _training: bool) {}

    /// The type name used in error messages (`LSTM`, `Linear`...).
    fn type_name(&self) -> &'static str {
        "Module"
    }

    /// `(name, parameter)` pairs in registration order.
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut v = Vec::new();
        self.visit_parameters(&mut |n, t| v.push((n.to_string(), t.clone())));
        v
    }

    /// The parameters in registration order (handles: updating them updates the module).
    fn parameters(&self) -> Vec<Tensor> {
        let mut v = Vec::new();
        self.visit_parameters(&mut |_, t| v.push(t.clone()));
        v
    }

    /// Total number of parameter elements.
    fn num_parameters(&self) -> usize {
        let mut n = 0;
        self.visit_parameters(&mut |_, t| n += t.numel());
        n
    }

    /// A snapshot of every parameter's values under its PyTorch name.
    fn state_dict(&self) -> StateDict {
        let mut sd = StateDict::new();
        self.visit_parameters(&mut |n, t| sd.insert(n, t.deep_clone()));
        sd
    }

    /// Copy values from `sd` into the parameters. Every name and shape is checked before
    /// anything is copied, so on error the module is unchanged. With `strict`, tensors in
    /// `sd` that the module does not have are an error too (PyTorch's default).
    fn load_state_dict(&self, sd: &StateDict, strict: bool) -> Result<()> {
        let params = self.named_parameters();
        let mut missing = Vec::new();
        let mut mismatched = Vec::new();
        for (name, p) in &params {
            match sd.get(name) {
                None => missing.push(name.clone()),
                Some(t) if t.shape() != p.shape() => mismatched.push((
                    name.clone(),
                    ShapeDisplay(t.shape().to_vec()),
                    ShapeDisplay(p.shape().to_vec()),
                )),
                Some(_) => {}
            }
        }
        let unexpected: Vec<String> = if strict {
            sd.names()
                .into_iter()
                .filter(|n| !params.iter().any(|(p, _)| p == n))
                .map(str::to_string)
                .collect()
        } else {
            Vec::new()
        };
        if !missing.is_empty() || !unexpected.is_empty() || !mismatched.is_empty() {
            return Err(Error::StateDict {
                module: self.type_name().to_string(),
                missing,
                unexpected,
                mismatched,
            });
        }
        for (name, p) in &params {
            let src = sd.get(name).expect("checked above");
            p.copy_from(&src.data())?;
        }
        Ok(())
    }

    /// Clear the gradients of every parameter.
    fn zero_grad(&self) {
        self.visit_parameters(&mut |_, t| t.zero_grad());
    }
}

/// Visit a child module's parameters with `prefix.` in front of their names.
pub fn visit_child(prefix: &str, child: &dyn Module, f: &mut dyn FnMut(&str, &Tensor)) {
    child.visit_parameters(&mut |n, t| f(&format!("{prefix}.{n}"), t));
}
