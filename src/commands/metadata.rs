//! The pod's metadata service, served by its own `rkt run` (crate `rkt-metadata`): bound before
//! the pod starts, so `AC_METADATA_URL` is known to the apps; its threads start only when the
//! first connection arrives (after the pod's init exists). Host-network pods reach it on the
//! host's 127.0.0.1, private-network pods on their own 127.0.0.1.

use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::path::Path;

use anyhow::{Context, Result};
use rkt_metadata::{BoundMetadataServer, HmacKeyStore, Limits, MetadataServer, PodMetadata};
use rkt_runner::{Pod, RunOptions};
use rkt_store::Store;

use crate::cli::GlobalArgs;

/// What the pod's metadata service serves, read from the store before the network is set up.
pub struct Gathered {
    meta: PodMetadata,
    keys: HmacKeyStore,
}

/// Read the pod's manifests and the host's HMAC key.
pub fn gather(global: &GlobalArgs, store: &Store, pod: &Pod) -> Result<Gathered> {
    let keys = HmacKeyStore::open(&global.dir).context("cannot open the metadata service's key")?;
    let manifest = pod.read_bytes(rkt_runner::pods::MANIFEST_FILE)?;
    let meta = PodMetadata::from_manifests(&pod.uuid, manifest, |id| store.manifest_bytes(id))
        .context("cannot gather the pod's metadata")?;
    Ok(Gathered { meta, keys })
}

/// rkt's metadata service port; private-network pods find their service there.
pub const MDS_PORT: u16 = 18112;

/// Bind the pod's metadata service on 127.0.0.1 and put its URL in `opts`: an ephemeral port
/// of the host's loopback for host networking (`netns` None, pods share it), else port 18112
/// (rkt's) of the loopback of the pod's own network namespace, which only the pod's processes
/// can reach (see docs/metadata-service.md, "Binding").
pub fn bind(
    gathered: Gathered,
    netns: Option<&Path>,
    opts: &mut RunOptions,
) -> Result<BoundMetadataServer> {
    let Gathered { meta, keys } = gathered;
    let bound = match netns {
        None => MetadataServer::bind(meta, SocketAddr::from(([127, 0, 0, 1], 0)), &keys),
        Some(ns) => {
            let listener = rkt_net::listen_in(ns, SocketAddr::from(([127, 0, 0, 1], MDS_PORT)))
                .context("cannot start the metadata service in the pod's network")?;
            MetadataServer::bind_listener(meta, listener, &keys)
        }
    }
    .context("cannot start the metadata service")?;
    opts.metadata_url = Some(bound.url());
    Ok(bound)
}

/// Run the pod with its metadata service: started (its accept thread) when the first
/// connection arrives, which most pods never make; answered from then on.
pub fn run_serving(pod: &mut Pod, opts: &RunOptions, bound: BoundMetadataServer) -> Result<i32> {
    let ready = bound
        .as_fd()
        .try_clone_to_owned()
        .context("cannot watch the metadata service's socket")?;
    let mut server: Option<MetadataServer> = None;
    let slot = &mut server;
    let on_demand = rkt_runner::run::OnDemand {
        ready,
        start: Box::new(move || match bound.serve(Limits::default()) {
            Ok(s) => *slot = Some(s),
            Err(e) => tracing::warn!("the metadata service did not start: {e}"),
        }),
    };
    let code = rkt_runner::run::run_with(pod, opts, Some(on_demand))?;
    drop(server);
    Ok(code)
}
