//! Pulling a Docker/OCI image into the store: resolve its manifest and config, convert the
//! config to an appc manifest (before anything is downloaded), import each layer the store
//! does not already have (by blob digest or diff ID), then record the squashed image. If
//! anything fails, the layers this pull added are removed again: nothing is kept.

use std::io::Read;

use rkt_store::docker::DockerImage;
use rkt_store::Store;

use crate::error::{DockerError, Result};
use crate::prefetch::{Download, Prefetch};

/// One layer of a resolved image, base first.
#[derive(Debug, Clone)]
pub struct Layer {
    /// `sha256:…` of the blob as the source serves it.
    pub digest: String,
    /// Blob size the manifest promises, if it says.
    pub size: Option<u64>,
    /// `sha256:…` of the uncompressed tar, from the image config, if it says.
    pub diff_id: Option<String>,
}

/// An image whose manifest and config are known.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub image: DockerImage,
    pub layers: Vec<Layer>,
}

/// Where a Docker/OCI image comes from.
pub trait ImageSource {
    /// Read (and verify) the manifest and config.
    fn resolve(&mut self) -> Result<Resolved>;
    /// The layer's blob, as the source has it (its digest is verified by the store).
    fn open_layer(&mut self, layer: &Layer) -> Result<Box<dyn Read + '_>>;
    /// Names the source in messages and the store.
    fn describe(&self) -> String;
    /// For sources where a layer's download is slow next to its import (registries): a way
    /// to open blobs from other threads, so that later layers download while earlier ones
    /// import. None reads every layer in turn.
    fn download(&self) -> Option<Download> {
        None
    }
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct PullOutcome {
    pub id: String,
    pub name: String,
    /// Layers downloaded (or read from the archive) and stored.
    pub layers_fetched: usize,
    /// Layers the store already had: not downloaded.
    pub layers_reused: usize,
    /// Blob bytes read from the source.
    pub bytes_fetched: u64,
    /// Bytes added to packs.
    pub stored_bytes: u64,
}

/// Pull `source` into `store`.
pub fn pull(store: &mut Store, source: &mut dyn ImageSource) -> Result<PullOutcome> {
    let resolved = source.resolve()?;
    let manifest = rkt_store::docker::convert::appc_manifest(&resolved.image)?;
    let _guard = store.import_guard()?;
    let mut added = Vec::new();
    let result = pull_layers(store, source, &resolved, &manifest, &mut added);
    if result.is_err() {
        for digest in added.iter().rev() {
            if let Err(e) = store.remove_unused_layer(digest) {
                tracing::warn!(%digest, "cannot undo layer of a failed pull: {e}");
            }
        }
    }
    result
}

fn pull_layers(
    store: &mut Store,
    source: &mut dyn ImageSource,
    resolved: &Resolved,
    manifest: &[u8],
    added: &mut Vec<String>,
) -> Result<PullOutcome> {
    let mut outcome = PullOutcome {
        id: String::new(),
        name: String::new(),
        layers_fetched: 0,
        layers_reused: 0,
        bytes_fetched: 0,
        stored_bytes: 0,
    };
    let mut ahead = start_prefetch(store, &*source, &resolved.layers)?;
    let mut digests = Vec::new();
    for layer in &resolved.layers {
        if let Some(l) = stored_layer(store, layer)? {
            check_diff_id(layer, &l.diff_id)?;
            tracing::debug!(digest = %layer.digest, "layer already stored");
            outcome.layers_reused += 1;
            digests.push(l.digest);
            continue;
        }
        tracing::info!(digest = %layer.digest, "fetching layer");
        let got = match ahead.as_mut().and_then(|a| a.take(&layer.digest)) {
            Some(spooled) => {
                let mut spooled = spooled?;
                store.import_layer(spooled.reader(), &layer.digest, layer.size)?
            }
            None => store.import_layer(source.open_layer(layer)?, &layer.digest, layer.size)?,
        };
        if got.new {
            added.push(got.digest.clone());
        }
        check_diff_id(layer, &got.diff_id)?;
        outcome.layers_fetched += 1;
        outcome.bytes_fetched += got.blob_bytes;
        outcome.stored_bytes += got.stored_bytes;
        digests.push(got.digest);
    }
    drop(ahead);
    let imported = store.import_layered_image(manifest, &digests, &source.describe())?;
    outcome.stored_bytes += imported.stored_bytes;
    outcome.id = imported.id;
    outcome.name = imported.name;
    Ok(outcome)
}

/// The stored layer with `layer`'s blob digest or diff ID, if any.
fn stored_layer(store: &Store, layer: &Layer) -> Result<Option<rkt_store::docker::LayerInfo>> {
    if let Some(l) = store.layer(&layer.digest)? {
        return Ok(Some(l));
    }
    match &layer.diff_id {
        Some(d) => Ok(store.layer(d)?),
        None => Ok(None),
    }
}

/// Later layers to download in the background: every missing layer after the first (which
/// streams straight into its import), each digest once.
struct Ahead {
    prefetch: Prefetch,
    index: std::collections::HashMap<String, usize>,
}

impl Ahead {
    /// The spooled blob of `digest`, or None if it streams from the source.
    fn take(&mut self, digest: &str) -> Option<Result<crate::prefetch::Spooled>> {
        let k = self.index.remove(digest)?;
        Some(self.prefetch.take(k))
    }
}

fn start_prefetch(
    store: &Store,
    source: &dyn ImageSource,
    layers: &[Layer],
) -> Result<Option<Ahead>> {
    let Some(download) = source.download() else {
        return Ok(None);
    };
    let mut missing: Vec<Layer> = Vec::new();
    for layer in layers {
        let repeated = missing.iter().any(|m| m.digest == layer.digest);
        if !repeated && stored_layer(store, layer)?.is_none() {
            missing.push(layer.clone());
        }
    }
    if missing.len() < 2 {
        return Ok(None);
    }
    missing.remove(0);
    let index = missing
        .iter()
        .enumerate()
        .map(|(k, l)| (l.digest.clone(), k))
        .collect();
    let prefetch = Prefetch::start(download, missing, &store.tmp_dir())?;
    Ok(Some(Ahead { prefetch, index }))
}

fn check_diff_id(layer: &Layer, got: &str) -> Result<()> {
    match &layer.diff_id {
        Some(want) if want != got => Err(DockerError::Image(format!(
            "layer {}: its uncompressed tar has digest {got}, but the image config says {want}; nothing was stored",
            layer.digest
        ))),
        _ => Ok(()),
    }
}

/// Pair a manifest's layer descriptors with the config's diff IDs.
pub(crate) fn layers_with_diff_ids(
    what: &str,
    layers: &[crate::manifest::Descriptor],
    config: &serde_json::Value,
) -> Result<Vec<Layer>> {
    let diff_ids = crate::manifest::diff_ids(config);
    if let Some(ids) = &diff_ids {
        if ids.len() != layers.len() {
            return Err(DockerError::Image(format!(
                "{what}: the manifest lists {} layers but the config {} diff IDs",
                layers.len(),
                ids.len()
            )));
        }
    }
    Ok(layers
        .iter()
        .enumerate()
        .map(|(i, d)| Layer {
            digest: d.digest.clone(),
            size: Some(d.size),
            diff_id: diff_ids.as_ref().and_then(|ids| ids.get(i).cloned()),
        })
        .collect())
}

pub(crate) fn strings(v: Option<&serde_json::Value>) -> Vec<String> {
    v.and_then(serde_json::Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}
