//! The store's error type: every message says what failed, on which input, and what to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    // Causes are part of the messages (not `#[source]`), so that printing the error chain
    // does not say them twice.
    #[error("{context}: {error}")]
    Io {
        context: String,
        error: std::io::Error,
    },
    #[error("store database {path}: {error}")]
    Db {
        path: PathBuf,
        error: rusqlite::Error,
    },
    #[error("no space left on device while {0}; free some space (for example `rkt image gc`) and retry — nothing was stored")]
    NoSpace(String),
    #[error("invalid image archive: {0}")]
    InvalidImage(String),
    #[error("invalid image manifest: {0}")]
    InvalidManifest(crate::schema::SchemaError),
    #[error("no image matches {0:?}; `rkt image list` shows the images in the store")]
    ImageNotFound(String),
    #[error("image reference {reference:?} is ambiguous; it matches:\n{candidates}")]
    AmbiguousImage {
        reference: String,
        candidates: String,
    },
    #[error("invalid image reference {0:?}: {1}")]
    BadReference(String, String),
    #[error("store corruption: {0}")]
    Corrupt(String),
    #[error("image dependency {name} of {image} is not in the store; fetch it first")]
    MissingDependency { image: String, name: String },
    #[error("image dependencies of {0} form a cycle")]
    DependencyCycle(String),
    #[error(transparent)]
    Render(#[from] crate::render::RenderError),
}

impl From<crate::schema::SchemaError> for StoreError {
    fn from(e: crate::schema::SchemaError) -> Self {
        StoreError::InvalidManifest(e)
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// Wrap an I/O error with what was being done, turning ENOSPC/EDQUOT into [`StoreError::NoSpace`].
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        let context = context.into();
        match source.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => StoreError::NoSpace(context),
            _ => StoreError::Io {
                context,
                error: source,
            },
        }
    }
}

/// Attach context to I/O results.
pub trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| StoreError::io(context(), e))
    }
}
