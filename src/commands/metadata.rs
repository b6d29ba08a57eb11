//! The pod's metadata service, served by its own `rkt run` (crate `rkt-metadata`): bound before
//! the pod starts, so `AC_METADATA_URL` is known to the apps; threads started once the
//! supervisor has forked the pod's init.

use anyhow::{Context, Result};
use rkt_metadata::{BoundMetadataServer, HmacKeyStore, Limits, MetadataServer, PodMetadata};
use rkt_runner::{Pod, RunOptions};
use rkt_store::Store;

use crate::cli::GlobalArgs;

/// Bind the metadata service of `pod` on an ephemeral loopback port (pods use the host's
/// network) and put its URL in `opts`.
pub fn bind(
    global: &GlobalArgs,
    store: &Store,
    pod: &Pod,
    opts: &mut RunOptions,
) -> Result<BoundMetadataServer> {
    let keys = HmacKeyStore::open(&global.dir).context("cannot open the metadata service's key")?;
    let manifest = pod.read_bytes(rkt_runner::pods::MANIFEST_FILE)?;
    let meta = PodMetadata::from_manifests(&pod.uuid, manifest, |id| store.manifest_bytes(id))
        .context("cannot gather the pod's metadata")?;
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let bound =
        MetadataServer::bind(meta, loopback, &keys).context("cannot start the metadata service")?;
    opts.metadata_url = Some(bound.url());
    Ok(bound)
}

/// Run the pod with its metadata service serving from the moment init exists.
pub fn run_serving(pod: &mut Pod, opts: &RunOptions, bound: BoundMetadataServer) -> Result<i32> {
    let mut server: Option<MetadataServer> = None;
    let mut bound = Some(bound);
    let code = rkt_runner::run::run_with(pod, opts, || {
        if let Some(b) = bound.take() {
            match b.serve(Limits::default()) {
                Ok(s) => server = Some(s),
                Err(e) => tracing::warn!("the metadata service did not start: {e}"),
            }
        }
    })?;
    drop(server);
    Ok(code)
}
