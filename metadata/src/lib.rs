//! rkt's implementation of the appc metadata service.
//!
//! Every pod gets its own small HTTP server (no shared daemon): `rkt run` builds a
//! [`PodMetadata`] from the pod manifest and its images' manifests, opens the host's
//! [`HmacKeyStore`], calls [`MetadataServer::start`] and puts [`MetadataServer::url`] in each
//! app's `AC_METADATA_URL`. The server answers the spec's endpoints under
//! `AC_METADATA_URL/acMetadata/v1/` until it is dropped. See `docs/metadata-service.md`.

mod error;
#[doc(hidden)]
pub mod fuzzing;
mod hmac_key;
pub mod http;
mod pod;
mod server;
mod service;
mod uuid;

pub use error::{MetadataError, Result};
pub use hmac_key::{HmacKeyStore, Verification, KEY_DIR, KEY_FILE, KEY_LEN};
pub use pod::{AppMetadata, PodMetadata};
pub use server::{BoundMetadataServer, Limits, MetadataServer};
pub use uuid::PodUuid;
