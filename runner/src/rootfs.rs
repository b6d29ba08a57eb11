//! How a pod's app root filesystems are assembled (`--rootfs=lazy|rendered|copy`) and the lazy
//! FUSE trees its supervisor serves while the pod runs.
//!
//! * `rendered`: overlayfs over the store's shared rendered tree (`Store::rendered_tree`).
//! * `lazy`: overlayfs over a read-only FUSE tree of the image (`rkt_lazyfs::LazyFs`), mounted
//!   by the supervisor at `apps/<name>/lazy` in the host mount namespace right after the pod's
//!   init exists, propagated into the pod's namespace through a shared bind mount made before
//!   (see [`LazyMounts`]), served by threads of the supervisor and unmounted when the pod has
//!   exited.
//! * `copy`: a private rendered copy of the image (`--no-overlay`, or no overlayfs).

use std::path::{Path, PathBuf};
use std::time::Instant;

use rkt_store::schema::PodManifest;

use crate::error::{Context, Result, RunnerError};

/// A pod's rootfs mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RootfsMode {
    /// A lazy FUSE tree under overlayfs (the default for images not rendered yet; see
    /// [`RootfsMode::default_for`]).
    #[default]
    Lazy,
    /// The store's shared rendered tree under overlayfs.
    Rendered,
    /// A private copy of the image.
    Copy,
}

impl RootfsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RootfsMode::Lazy => "lazy",
            RootfsMode::Rendered => "rendered",
            RootfsMode::Copy => "copy",
        }
    }

    /// The mode of a pod started without `--rootfs`, picked by measurement (docs/lazy-rootfs.md,
    /// docs/benchmarks.md): when every image of the pod already has its shared rendered tree,
    /// `rendered` (the fastest warm start: no FUSE mount, no server threads); otherwise `lazy`
    /// (a cold start that does not grow with the image, where rendering first costs seconds per
    /// gigabyte); `rendered` on a host without /dev/fuse, where `lazy` cannot work.
    pub fn default_for(store: &rkt_store::Store, image_ids: &[&str]) -> RootfsMode {
        if !Path::new("/dev/fuse").exists() {
            tracing::info!("no /dev/fuse: pods start on rendered trees (--rootfs=rendered)");
            return RootfsMode::Rendered;
        }
        if image_ids.iter().all(|id| store.has_rendered_tree(id)) {
            RootfsMode::Rendered
        } else {
            RootfsMode::Lazy
        }
    }

    /// Whether the app's rootfs is an overlayfs mounted by the pod's init.
    pub fn uses_overlay(self) -> bool {
        self != RootfsMode::Copy
    }
}

impl std::str::FromStr for RootfsMode {
    type Err = RunnerError;

    fn from_str(s: &str) -> Result<RootfsMode> {
        match s {
            "lazy" => Ok(RootfsMode::Lazy),
            "rendered" => Ok(RootfsMode::Rendered),
            "copy" => Ok(RootfsMode::Copy),
            _ => Err(RunnerError::Invalid(format!(
                "--rootfs={s}: expected lazy, rendered or copy"
            ))),
        }
    }
}

impl std::fmt::Display for RootfsMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The mount point of an app's lazy tree in the pod directory.
pub fn lazy_mountpoint(pod_dir: &Path, app: &str) -> PathBuf {
    pod_dir.join("apps").join(app).join("lazy")
}

/// The lazy trees of a running pod, in two steps around the clone of the pod's init:
///
/// 1. [`LazyMounts::prepare`] (before the clone, still single-threaded): bind each app's
///    `apps/<name>/lazy` onto itself and make that mount a shared mount of its own peer group.
///    The pod's mount namespace, copied by the clone, gets a peer of it, which init turns into
///    a slave (`mounts::make_root_slave`): mounts made on it in the host later propagate into
///    the pod, and nothing the pod mounts comes back.
/// 2. [`LazyMounts::mount`] (after the clone): mount each FUSE tree there, which starts its
///    server threads; the mounts propagate into the pod's namespace, where init, released by
///    the start gate, mounts the overlays over them.
///
/// Dropping it unmounts the trees (each session writes its access log and trims the object
/// cache), then the binds; drop it only once the pod's overlays are gone, i.e. after the
/// pod's last process exited.
pub struct LazyMounts {
    points: Vec<PathBuf>,
    sessions: Vec<rkt_lazyfs::Session>,
}

impl LazyMounts {
    /// Make each app's lazy mount point a shared bind mount. On error, the binds made so far
    /// are undone.
    pub fn prepare(pod_dir: &Path, manifest: &PodManifest) -> Result<LazyMounts> {
        let mut out = LazyMounts {
            points: Vec::new(),
            sessions: Vec::new(),
        };
        for app in &manifest.apps {
            let at = lazy_mountpoint(pod_dir, app.name.as_str());
            shared_bind(&at)?;
            out.points.push(at);
        }
        Ok(out)
    }

    /// Mount the lazy tree of every app at its prepared mount point. On error, the caller
    /// drops `self`, which unmounts the trees mounted so far.
    pub fn mount(&mut self, store_dir: &Path, manifest: &PodManifest) -> Result<()> {
        for (app, at) in manifest.apps.iter().zip(&self.points) {
            let name = app.name.as_str();
            let id = app.image.id.as_ref().map(|i| i.as_str()).ok_or_else(|| {
                RunnerError::Invalid(format!("app {name} has no image ID in the pod manifest"))
            })?;
            let t0 = Instant::now();
            let session = rkt_lazyfs::LazyFs::mount(store_dir, id, at).map_err(|e| {
                RunnerError::Invalid(format!(
                    "cannot mount the lazy rootfs of app {name} at {}: {e}; try --rootfs=rendered",
                    at.display()
                ))
            })?;
            if !session.passthrough() {
                tracing::info!(
                    app = name,
                    "the kernel has no FUSE passthrough: app {name} reads its files through the \
                     supervisor (slower, page cache not shared between pods)"
                );
            }
            tracing::debug!(
                app = name,
                passthrough = session.passthrough(),
                elapsed_ms = t0.elapsed().as_secs_f64() * 1000.0,
                "lazy rootfs mounted"
            );
            self.sessions.push(session);
        }
        Ok(())
    }
}

/// Bind `at` onto itself, then give the bind a peer group of its own (private, then shared):
/// later mounts on it propagate to the pod's copy only, not to every namespace that receives
/// the host's mounts.
fn shared_bind(at: &Path) -> Result<()> {
    use nix::mount::{mount, MsFlags};
    let none = None::<&str>;
    mount(Some(at), at, none, MsFlags::MS_BIND, none)
        .ctx(|| format!("bind-mounting {} onto itself", at.display()))?;
    for flag in [MsFlags::MS_PRIVATE, MsFlags::MS_SHARED] {
        if let Err(e) = mount(none, at, none, flag, none) {
            let _ = nix::mount::umount2(at, nix::mount::MntFlags::MNT_DETACH);
            return Err(e).ctx(|| format!("making {} a shared mount", at.display()));
        }
    }
    Ok(())
}

impl Drop for LazyMounts {
    fn drop(&mut self) {
        for s in self.sessions.drain(..) {
            let stats = s.stats();
            tracing::debug!(
                image = s.image(),
                opens = stats.opens,
                passthrough_opens = stats.passthrough_opens,
                fallback_opens = stats.fallback_opens,
                open_errors = stats.open_errors,
                prefetched = stats.prefetched,
                "unmounting lazy rootfs"
            );
            drop(s);
        }
        for at in self.points.drain(..) {
            if let Err(e) = nix::mount::umount2(&at, nix::mount::MntFlags::MNT_DETACH) {
                tracing::warn!(mountpoint = %at.display(), error = %e,
                    "could not unmount the lazy mount point; rkt gc will");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print() {
        for m in [RootfsMode::Lazy, RootfsMode::Rendered, RootfsMode::Copy] {
            assert_eq!(m.as_str().parse::<RootfsMode>().unwrap(), m);
        }
        assert!("overlay".parse::<RootfsMode>().is_err());
        assert!(!RootfsMode::Copy.uses_overlay());
        assert_eq!(RootfsMode::default(), RootfsMode::Lazy);
    }
}
