//! Which files a mount opened, saved at unmount as `DIR/access/<image hex>.json` (a JSON array
//! of rootfs-relative paths in the order of their first open), and prefetched by the next mount
//! of the same image: a background thread materialises them into the object cache, so the
//! pod's start finds them ready.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use rkt_store::Store;

use crate::fs::Shared;
use crate::inodes::Inodes;

/// `DIR/access/<image hex>.json`.
pub fn log_path(store_dir: &Path, image: &str) -> PathBuf {
    store_dir
        .join("access")
        .join(format!("{}.json", image.trim_start_matches("sha512-")))
}

/// The paths the last mount of `image` opened (empty when unknown or unreadable).
pub fn load(store_dir: &Path, image: &str) -> Vec<String> {
    let path = log_path(store_dir, image);
    let Ok(bytes) = std::fs::read(&path) else {
        return Vec::new();
    };
    serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        tracing::warn!(path = %path.display(), error = %e, "ignoring a damaged access log");
        Vec::new()
    })
}

/// Replace the access log of `image` (atomically; nothing is written for an empty list, so a
/// mount that opened nothing keeps the previous log).
pub fn save(store_dir: &Path, image: &str, order: &[String]) -> std::io::Result<()> {
    if order.is_empty() {
        return Ok(());
    }
    let path = log_path(store_dir, image);
    let dir = store_dir.join("access");
    std::fs::create_dir_all(&dir)?;
    let tmp = dir.join(format!(".{}.tmp", std::process::id()));
    std::fs::write(
        &tmp,
        serde_json::to_vec(order).map_err(std::io::Error::other)?,
    )?;
    std::fs::rename(&tmp, &path)
}

/// Start materialising the files of the previous access log in the background.
pub fn start_prefetch(
    store_dir: &Path,
    image: &str,
    inodes: Arc<Inodes>,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
) -> Option<JoinHandle<()>> {
    let paths = load(store_dir, image);
    if paths.is_empty() {
        return None;
    }
    let store_dir = store_dir.to_path_buf();
    let spawned = std::thread::Builder::new()
        .name("lazyfs-prefetch".into())
        .spawn(move || prefetch(&store_dir, &paths, &inodes, &shared, &stop));
    match spawned {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::warn!(error = %e, "could not start prefetching");
            None
        }
    }
}

fn prefetch(
    store_dir: &Path,
    paths: &[String],
    inodes: &Inodes,
    shared: &Shared,
    stop: &AtomicBool,
) {
    let span = tracing::debug_span!("lazyfs.prefetch", files = paths.len());
    let _enter = span.enter();
    let store = match Store::open(store_dir) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "prefetch: cannot open the store");
            return;
        }
    };
    for path in paths {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let Some(id) = inodes.file_id_of(path) else {
            continue;
        };
        match store.materialize(&id) {
            Ok(_) => {
                shared.counters.prefetched.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tracing::warn!(path, error = %e, "prefetch failed"),
        }
    }
    tracing::debug!("prefetch done");
}
