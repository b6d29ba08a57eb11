//! Errors of the metadata service crate.

use std::path::PathBuf;

/// What went wrong while preparing or starting a pod's metadata service.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// A pod UUID that is not 32 hexadecimal digits (dashes allowed).
    #[error("invalid pod UUID {0:?}: expected 32 hexadecimal digits, as in 6733c3da-5c8f-4b7d-9b49-9a5f4b6b0c1e")]
    InvalidUuid(String),

    /// The pod manifest could not be parsed.
    #[error("pod manifest: {0}")]
    PodManifest(#[source] rkt_store::schema::SchemaError),

    /// An image manifest could not be parsed.
    #[error("image manifest of {image_id}: {source}")]
    ImageManifest {
        /// The image whose manifest is bad.
        image_id: String,
        /// Why.
        #[source]
        source: rkt_store::schema::SchemaError,
    },

    /// An app of the pod manifest names no image ID.
    #[error("app {0:?} of the pod manifest has no image ID: a pod manifest for the metadata service must be fully reified")]
    MissingImageId(String),

    /// The image manifest of an app could not be obtained.
    #[error("image manifest of {image_id} (app {app:?}): {source}")]
    ImageManifestUnavailable {
        /// The app.
        app: String,
        /// Its image.
        image_id: String,
        /// Why the manifest could not be read.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// Two apps with one name.
    #[error("duplicate app name {0:?} in the pod")]
    DuplicateApp(String),

    /// Reading, creating or checking the HMAC key failed.
    #[error("HMAC key {path}: {source}")]
    KeyIo {
        /// The key file or its directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The HMAC key file exists but is unusable.
    #[error("HMAC key {path}: {problem}")]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong and what to do.
        problem: String,
    },

    /// The operating system gave no random bytes.
    #[error("no random bytes from the operating system: {0}")]
    Random(String),

    /// Binding or running the listener failed.
    #[error("metadata service on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Result with [`MetadataError`].
pub type Result<T, E = MetadataError> = std::result::Result<T, E>;
