//! The one error type of the library.
//!
//! Every public entry point returns [`Result`]. Messages say what was expected and what was
//! got, in PyTorch's words where PyTorch has them, so a user moving from `torch.nn` recognises
//! them. Kernels never see unchecked user input: validation happens where input enters (module
//! forward, state-dict load, data readers).

use std::fmt;

/// A shape written as PyTorch prints it: `[2, 3, 4]`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ShapeDisplay(pub Vec<usize>);

impl fmt::Display for ShapeDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, "]")
    }
}

impl fmt::Debug for ShapeDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<&[usize]> for ShapeDisplay {
    fn from(s: &[usize]) -> Self {
        ShapeDisplay(s.to_vec())
    }
}

/// Everything that can go wrong in `recurrent`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tensor had the wrong shape. `what` names it (`"h_0"`, `"input"`, a parameter name).
    #[error("{what}: expected shape {expected}, got {got}")]
    ShapeMismatch {
        /// Which tensor.
        what: String,
        /// The shape that was required.
        expected: ShapeDisplay,
        /// The shape that was given.
        got: ShapeDisplay,
    },
    /// An argument outside its valid range, or a combination PyTorch also rejects. The message
    /// is complete (PyTorch's wording where it has one).
    #[error("{0}")]
    InvalidArgument(String),
    /// A device that this build cannot use.
    #[error("device {device} is unavailable: {reason}")]
    DeviceUnavailable {
        /// The device asked for, e.g. `cuda:0`.
        device: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// A misuse of automatic differentiation (backward twice, backward of a non-scalar...).
    #[error("autograd: {0}")]
    Autograd(String),
    /// A value that should be finite is NaN or infinite.
    #[error("non-finite value in {what}: {detail}")]
    NonFinite {
        /// Where it was found (a loss, a gradient, a parameter name).
        what: String,
        /// Extra context: the step, the first offending index.
        detail: String,
    },
    /// A state dict does not fit the module: tensors missing, unexpected (strict loading) or of
    /// the wrong shape, each named (PyTorch's `load_state_dict` report). Nothing was loaded.
    #[error(
        "Error(s) in loading state_dict for {module}:{}",
        describe_state_dict(missing, unexpected, mismatched)
    )]
    StateDict {
        /// The module's type name.
        module: String,
        /// Parameters the module has and the state dict lacks.
        missing: Vec<String>,
        /// Tensors in the state dict the module does not have.
        unexpected: Vec<String>,
        /// `(name, shape in the checkpoint, shape in the module)`.
        mismatched: Vec<(String, ShapeDisplay, ShapeDisplay)>,
    },
    /// A checkpoint or data file that cannot be parsed.
    #[error("corrupt or unreadable {what}: {reason}")]
    Corrupt {
        /// What was being read (a path, "safetensors header"...).
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An I/O error, with the path involved.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, usually with a path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }

    /// Shorthand for [`Error::ShapeMismatch`].
    pub fn shape(what: impl Into<String>, expected: &[usize], got: &[usize]) -> Self {
        Error::ShapeMismatch {
            what: what.into(),
            expected: ShapeDisplay(expected.to_vec()),
            got: ShapeDisplay(got.to_vec()),
        }
    }

    /// Shorthand for [`Error::Io`].
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// Shorthand for [`Error::Corrupt`].
    pub fn corrupt(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

fn describe_state_dict(
    missing: &[String],
    unexpected: &[String],
    mismatched: &[(String, ShapeDisplay, ShapeDisplay)],
) -> String {
    let mut out = String::new();
    let list = |v: &[String]| {
        v.iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !missing.is_empty() {
        out += &format!("\n\tMissing key(s) in state_dict: {}.", list(missing));
    }
    if !unexpected.is_empty() {
        out += &format!("\n\tUnexpected key(s) in state_dict: {}.", list(unexpected));
    }
    for (name, ckpt, model) in mismatched {
        out += &format!(
            "\n\tsize mismatch for {name}: copying a param with shape {ckpt} from checkpoint, the shape in current model is {model}."
        );
    }
    out
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Return `Err(Error::InvalidArgument(format!(...)))` unless the condition holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !($cond) {
            return Err($crate::Error::InvalidArgument(format!($($arg)+)));
        }
    };
}
