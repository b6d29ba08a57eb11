//! Mounting an image's lazy tree, and the session that serves it until dropped.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use fuser::{BackgroundSession, Config, MountOption, SessionACL};
use rkt_store::Store;

use crate::access;
use crate::error::{Error, Result};
use crate::fs::{LazyFs as Fs, Shared};
use crate::inodes::Inodes;

/// A mounted lazy tree. Dropping it unmounts the tree (lazily when it is still in use, e.g.
/// under an overlayfs), stops prefetching, writes the access log and trims the object cache.
pub struct Session {
    bg: Option<BackgroundSession>,
    mountpoint: PathBuf,
    store_dir: PathBuf,
    image: String,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    prefetch: Option<JoinHandle<()>>,
}

/// A snapshot of a mount's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Files opened through the mount.
    pub opens: u64,
    /// Opens handed to the kernel with FUSE passthrough.
    pub passthrough_opens: u64,
    /// Opens served by FUSE reads from the object.
    pub fallback_opens: u64,
    /// FUSE read requests served (0 while every open is passed through).
    pub fallback_reads: u64,
    /// Opens that failed (the file could not be materialised: EIO).
    pub open_errors: u64,
    /// Files the background prefetch materialised.
    pub prefetched: u64,
}

/// Entry point: `LazyFs::mount(store_dir, image_id, mountpoint)`.
pub struct LazyFs;

impl LazyFs {
    /// Serve image `image_id` (a full `sha512-…` ID in the store at `store_dir`), merged with
    /// its dependencies, read-only at `mountpoint` (an existing empty directory), from a
    /// background thread of this process. Needs root (CAP_SYS_ADMIN).
    ///
    /// The files the previous mount of the same image opened are materialised in the background
    /// right away.
    pub fn mount(store_dir: &Path, image_id: &str, mountpoint: &Path) -> Result<Session> {
        let span = tracing::debug_span!("lazyfs.mount", image = image_id);
        let _enter = span.enter();
        let t0 = Instant::now();
        let store = Store::open(store_dir)?;
        let image = store.resolve(image_id)?.id;
        let inodes = Arc::new(
            Inodes::build(store.merged_entries(&image)?)
                .map_err(|e| Error::BadImage(image.clone(), e.to_string()))?,
        );
        tracing::debug!(
            elapsed_ms = t0.elapsed().as_millis() as u64,
            "merged view loaded"
        );
        if let Err(e) = store.keep_memory_small() {
            tracing::debug!(error = %e, "cannot shrink the store's page cache");
        }
        crate::memory::fix_mmap_threshold();
        crate::memory::release_freed();

        let shared = Arc::new(Shared::default());
        let fs = Fs::new(
            image.clone(),
            Arc::clone(&inodes),
            store,
            Arc::clone(&shared),
        );
        let t1 = Instant::now();
        let bg = fuser::spawn_mount(fs, mountpoint, &mount_config(&image)).map_err(|e| {
            Error::Mount {
                mountpoint: mountpoint.to_path_buf(),
                error: e,
            }
        })?;
        tracing::debug!(
            elapsed_ms = t1.elapsed().as_millis() as u64,
            passthrough = shared.passthrough.load(Ordering::Relaxed),
            "mounted"
        );

        let stop = Arc::new(AtomicBool::new(false));
        let prefetch = access::start_prefetch(
            store_dir,
            &image,
            inodes,
            Arc::clone(&shared),
            Arc::clone(&stop),
        );
        Ok(Session {
            bg: Some(bg),
            mountpoint: mountpoint.to_path_buf(),
            store_dir: store_dir.to_path_buf(),
            image,
            shared,
            stop,
            prefetch,
        })
    }
}

fn mount_config(image: &str) -> Config {
    let short = image.trim_start_matches("sha512-");
    let short = &short[..short.len().min(32)];
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName(format!("rkt-lazy:{short}")),
        MountOption::Subtype(crate::cleanup::SUBTYPE.to_string()),
        MountOption::RO,
        MountOption::Dev,
        MountOption::Suid,
        MountOption::DefaultPermissions,
    ];
    // Apps run as any user; the kernel enforces modes (default_permissions).
    config.acl = SessionACL::All;
    config
}

impl Session {
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// The full ID of the image served.
    pub fn image(&self) -> &str {
        &self.image
    }

    /// Whether the kernel accepted FUSE passthrough (reads and mmap run in the kernel).
    pub fn passthrough(&self) -> bool {
        self.shared.passthrough.load(Ordering::Relaxed)
    }

    pub fn stats(&self) -> Stats {
        let c = &self.shared.counters;
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            opens: get(&c.opens),
            passthrough_opens: get(&c.passthrough_opens),
            fallback_opens: get(&c.fallback_opens),
            fallback_reads: get(&c.fallback_reads),
            open_errors: get(&c.open_errors),
            prefetched: get(&c.prefetched),
        }
    }

    /// Wait until the background prefetch has finished (tests and benchmarks).
    pub fn wait_prefetch(&mut self) {
        if let Some(h) = self.prefetch.take() {
            let _ = h.join();
        }
    }

    /// Unmount now, reporting failure (`Drop` does the same but can only log).
    pub fn unmount(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.prefetch.take() {
            let _ = h.join();
        }
        let mut result = Ok(());
        if let Some(bg) = self.bg.take() {
            if let Err(e) = bg.umount_and_join() {
                tracing::warn!(mountpoint = %self.mountpoint.display(), error = %e,
                    "unmount failed (still in use?); detaching it lazily");
                result = crate::cleanup::detach(&self.mountpoint);
            }
        }
        let order = std::mem::take(&mut crate::fs::lock_access(&self.shared).order);
        if let Err(e) = access::save(&self.store_dir, &self.image, &order) {
            tracing::warn!(error = %e, "could not save the access log for prefetching");
        }
        if let Ok(store) = Store::open(&self.store_dir) {
            if let Err(e) = store.trim_objects() {
                tracing::warn!(error = %e, "could not trim the object cache");
            }
        }
        result
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!(mountpoint = %self.mountpoint.display(), error = %e,
                "lazy tree left mounted");
        }
    }
}
