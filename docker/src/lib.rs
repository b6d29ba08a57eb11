//! Docker and OCI images for rkt: where they come from (a Docker Registry HTTP API v2, a
//! `docker save` archive, an OCI image layout directory or tarball) and pulling them into the
//! store layer by layer, so layers already stored are neither downloaded nor stored again.
//!
//! See docs/docker-images.md.

pub mod archive;
pub mod auth;
mod error;
pub mod manifest;
pub mod prefetch;
pub mod pull;
pub mod reference;
pub mod registry;

pub use error::{DockerError, Result};
pub use pull::{pull, PullOutcome};
pub use reference::DockerRef;
