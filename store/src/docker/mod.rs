//! Docker and OCI images in the store: layers imported one by one and remembered by their
//! blob digest and diff ID, Docker image configs converted to appc image manifests as
//! docker2aci does, and layered images squashed into an exact, exportable ACI.
//!
//! See docs/docker-images.md.

pub mod convert;
pub(crate) mod layer;
mod perlayer;
mod squash;
pub(crate) mod tarwrite;

pub use convert::{DockerImage, Platform};
pub use layer::{ImportGuard, LayerInfo, LayerOutcome};
pub use perlayer::LayerAci;
