//! How a pod's app root filesystems are assembled (`--rootfs=lazy|rendered|copy`) and the lazy
//! FUSE trees its supervisor serves while the pod runs.
//!
//! * `rendered`: overlayfs over the store's shared rendered tree (`Store::rendered_tree`).
//! * `lazy`: overlayfs over a read-only FUSE tree of the image (`rkt_lazyfs::LazyFs`), mounted
//!   by the supervisor at `apps/<name>/lazy` in the host mount namespace right before the pod's
//!   namespaces are created (so the pod's mount namespace inherits it), served by a thread of
//!   the supervisor and unmounted when the pod has exited.
//! * `copy`: a private rendered copy of the image (`--no-overlay`, or no overlayfs).

use std::path::{Path, PathBuf};
use std::time::Instant;

use rkt_store::schema::PodManifest;

use crate::error::{Result, RunnerError};

/// A pod's rootfs mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RootfsMode {
    /// A lazy FUSE tree under overlayfs.
    Lazy,
    /// The store's shared rendered tree under overlayfs (the default; see docs/lazy-rootfs.md).
    #[default]
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

/// The lazy trees of a running pod. Dropping it unmounts them (each session writes its access
/// log and trims the object cache); drop it only once the pod's overlays are gone, i.e. after
/// the pod's last process exited.
pub struct LazyMounts {
    sessions: Vec<rkt_lazyfs::Session>,
}

impl LazyMounts {
    /// Mount the lazy tree of every app of the pod at `apps/<name>/lazy`. On error, the trees
    /// mounted so far are unmounted.
    pub fn mount(store_dir: &Path, pod_dir: &Path, manifest: &PodManifest) -> Result<LazyMounts> {
        let mut out = LazyMounts {
            sessions: Vec::new(),
        };
        for app in &manifest.apps {
            let name = app.name.as_str();
            let id = app.image.id.as_ref().map(|i| i.as_str()).ok_or_else(|| {
                RunnerError::Invalid(format!("app {name} has no image ID in the pod manifest"))
            })?;
            let at = lazy_mountpoint(pod_dir, name);
            let t0 = Instant::now();
            let session = rkt_lazyfs::LazyFs::mount(store_dir, id, &at).map_err(|e| {
                RunnerError::Invalid(format!(
                    "cannot mount the lazy rootfs of app {name} at {}: {e}; try --rootfs=rendered",
                    at.display()
                ))
            })?;
            tracing::debug!(
                app = name,
                passthrough = session.passthrough(),
                elapsed_ms = t0.elapsed().as_secs_f64() * 1000.0,
                "lazy rootfs mounted"
            );
            out.sessions.push(session);
        }
        Ok(out)
    }
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
        assert_eq!(RootfsMode::default(), RootfsMode::Rendered);
    }
}
