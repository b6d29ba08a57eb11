//! Errors of Docker/OCI image sources: each says what failed, on which input, and what to do.

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("invalid Docker image reference {0:?}: {1}")]
    Reference(String, String),
    #[error("{url}: {msg}")]
    Http { url: String, msg: String },
    #[error("registry {registry}: {msg}")]
    Registry { registry: String, msg: String },
    #[error("{source_name}: {msg}")]
    Archive { source_name: String, msg: String },
    #[error("{0}")]
    Image(String),
    #[error("{context}: {error}")]
    Io {
        context: String,
        error: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] rkt_store::StoreError),
}

pub type Result<T, E = DockerError> = std::result::Result<T, E>;

pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> DockerError {
    let context = context.into();
    move |error| DockerError::Io { context, error }
}
