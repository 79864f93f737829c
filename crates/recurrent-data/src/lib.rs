//! `recurrent-data`: the text side of the IMDB lab and its siblings.
//!
//! - [`tokenizer`]: torchtext's `basic_english` and a character tokenizer;
//! - [`vocab`]: frequency vocabularies with `<unk>`/`<pad>`;
//! - [`imdb`]: the aclImdb corpus from Stanford's archive or an extracted folder;
//! - [`download`]: resumable, verified downloads;
//! - [`split`], [`batch`]: hold-out splits, length-bucketed packed batches and a prefetching
//!   loader;
//! - [`tsv`]: `label<TAB>text` files.
//!
//! It depends on no layer code.

#![warn(missing_docs)]

pub mod batch;
pub mod download;
pub mod imdb;
pub mod split;
pub mod tokenizer;
pub mod tsv;
pub mod vocab;

use std::path::Path;

/// What can go wrong reading or fetching data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// An I/O error on a path.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A corpus whose layout is not aclImdb's, or a bad member.
    #[error("{path}: {reason}")]
    Layout {
        /// The file or member.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Invalid content (a vocabulary, a TSV line...).
    #[error("{0}")]
    Invalid(String),
    /// The data is not where it was looked for.
    #[error("{0}")]
    NotFound(String),
    /// A download that failed (network, truncation).
    #[error("{0}")]
    Download(String),
    /// A file whose size or checksum is wrong.
    #[error("{0}")]
    Checksum(String),
}

impl DataError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// `Result` with [`DataError`].
pub type Result<T, E = DataError> = std::result::Result<T, E>;
