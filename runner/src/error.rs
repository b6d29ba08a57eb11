//! The runner's error type: what failed, on which input, and what to do.

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    // Causes are part of the messages (not `#[source]`), so that printing the error chain
    // does not say them twice.
    #[error("{context}: {error}")]
    Io {
        context: String,
        error: std::io::Error,
    },
    #[error("{context}: {errno}")]
    Sys {
        context: String,
        errno: nix::errno::Errno,
    },
    #[error(transparent)]
    Store(#[from] rkt_store::StoreError),
    #[error("invalid pod: {0}")]
    Schema(#[from] rkt_store::schema::SchemaError),
    #[error("pod network: {0}")]
    Net(#[from] rkt_net::NetError),
    #[error("{0}")]
    Invalid(String),
    #[error("no pod matches {0:?}; `rkt list` shows the pods")]
    PodNotFound(String),
    #[error("pod UUID prefix {0:?} matches several pods; give more of the UUID")]
    AmbiguousPod(String),
    #[error("pod {uuid} is {state}: {what}")]
    WrongState {
        uuid: String,
        state: String,
        what: String,
    },
}

pub type Result<T, E = RunnerError> = std::result::Result<T, E>;

/// Attach context to I/O and syscall results.
pub trait Context<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|error| RunnerError::Io {
            context: context(),
            error,
        })
    }
}

impl<T> Context<T> for nix::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|errno| RunnerError::Sys {
            context: context(),
            errno,
        })
    }
}
