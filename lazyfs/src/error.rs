//! Errors of mounting and cleaning up lazy trees.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] rkt_store::StoreError),
    #[error("image {0} cannot be served lazily: {1}")]
    BadImage(String, String),
    #[error("mounting the lazy tree at {}: {error} (root and /dev/fuse are needed)", mountpoint.display())]
    Mount {
        mountpoint: PathBuf,
        error: std::io::Error,
    },
    #[error("{context}: {error}")]
    Io {
        context: String,
        error: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
