//! Rendering an image (and its appc dependencies) into a directory tree.
//!
//! The module works on index entries ([`Entry`]) and gets file contents through the
//! [`ContentSource`] trait, so it knows nothing about SQLite or packs.
//!
//! Two steps:
//! * [`merge`] computes the merged view: which entry of which layer wins for every path, with
//!   the layering and `pathWhitelist` semantics of appc's `acirenderer`.
//! * [`render`] writes that view to disk without ever following a symlink
//!   (everything is created relative to directory file descriptors with `O_NOFOLLOW`).
//!
//! # Layering semantics (ported from `appc/spec` `pkg/acirenderer`)
//! Layers are given upper-first: `layers[0]` is the image itself, followed by its dependencies
//! in appc render order (the flattened dependency list of `createDepList`). For every layer:
//! * the rootfs directory itself (`""`) is always kept (first writer wins);
//! * a non-directory entry must be in the layer's own `pathWhitelist`, if it has one;
//! * any entry, directories included, must be in the whitelist of the upper image that
//!   acirenderer's `getUpperPWLM` selects for this layer (see [`merge_with_levels`]);
//! * first writer wins: a path already provided by an upper layer is skipped;
//! * an entry is skipped when an upper layer provides one of its ancestors as a non-directory.
//!
//! Differences from acirenderer, all in the direction of safety or completeness:
//! * within one layer, an entry below a non-directory of the same layer (e.g. a symlink
//!   `a -> /etc` and a file `a/passwd`) is an error ([`RenderError::Unsafe`]) rather than
//!   silently dropped;
//! * ancestors that no surviving entry provides (e.g. filtered out by a whitelist) are
//!   synthesised as directories with mode 0755, owner 0:0 and mtime 0, as tar extraction
//!   would create them; a real directory entry of a lower layer replaces such a synthesised one;
//! * a hard link whose target does not survive in the merged view from the same layer
//!   (shadowed or filtered out) becomes a copy of its target, as docker2aci does.

mod merge;
mod write;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

use crate::entry::{Entry, FileId};

pub use merge::{merge, merge_with_levels};
pub use write::{render, render_with_levels};

/// Where the dense content of regular files comes from (the chunk store, in production).
pub trait ContentSource {
    /// Write the dense content of a regular file (sparse files: the concatenated data segments)
    /// to `out`, returning the number of bytes written.
    fn write_content(
        &self,
        file_id: &FileId,
        out: &mut dyn std::io::Write,
    ) -> Result<u64, RenderError>;
}

/// One image of the list to render.
#[derive(Debug, Clone)]
pub struct Layer<'a> {
    /// The image's ID (used in messages only).
    pub image_id: String,
    /// The image's rootfs entries, in archive order.
    pub entries: &'a [Entry],
    /// The image manifest's `pathWhitelist` (absolute paths); empty means absent.
    pub path_whitelist: Vec<String>,
}

/// How to render.
#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    /// Render the rootfs tree directly into `dest` (no `manifest`, no `rootfs/` level).
    pub rootfs_only: bool,
    /// Apply the images' `pathWhitelist`s (acirenderer semantics).
    pub apply_whitelist: bool,
    /// Written as `dest/manifest` (mode 0644) unless `rootfs_only`.
    pub manifest: Option<Vec<u8>>,
}

/// What [`render`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RenderStats {
    /// Non-directory entries created (regular files, symlinks, hard links, devices, fifos).
    pub files: u64,
    /// Directories created or set up, the rootfs directory included.
    pub dirs: u64,
    /// Content bytes written into regular files (holes of sparse files not counted).
    pub bytes: u64,
}

/// Errors of merging and rendering.
#[derive(thiserror::Error, Debug)]
pub enum RenderError {
    /// The content source failed (the message says why).
    #[error("content source: {0}")]
    Source(String),
    /// A filesystem operation failed.
    /// (The cause is part of the message, not a `#[source]`, so error chains say it once.)
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The image would make the renderer write through a symlink, a non-directory, or outside
    /// the destination.
    #[error("unsafe path {path:?} in image {image}: {reason}")]
    Unsafe {
        image: String,
        path: String,
        reason: String,
    },
    /// An entry is inconsistent (e.g. a regular file without content, a dangling hard link).
    #[error("invalid entry {path:?} in image {image}: {reason}")]
    Invalid {
        image: String,
        path: String,
        reason: String,
    },
    /// The destination exists and is not an empty directory.
    #[error("destination {0} exists and is not an empty directory")]
    DestNotEmpty(PathBuf),
    /// Bad arguments (empty layer list, levels not matching layers...).
    #[error("{0}")]
    Usage(String),
}

impl RenderError {
    /// Convenience for [`ContentSource`] implementations.
    pub fn source_msg(msg: impl std::fmt::Display) -> Self {
        RenderError::Source(msg.to_string())
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: impl Into<std::io::Error>) -> Self {
        RenderError::Io {
            path: path.into(),
            error: source.into(),
        }
    }
}
