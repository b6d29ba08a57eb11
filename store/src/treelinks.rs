//! Rendered trees as hard links into the object cache, so the pods of different images that
//! share files (an app and its base image's other dependents) share one inode, and one copy in
//! the page cache.
//!
//! A hard link shares the inode, and with it the mode, owner, times and xattrs, so a tree's
//! regular file links to a *variant* object `objects/xx/<file id>.<16 hex>` whose suffix hashes
//! exactly that metadata; the canonical `objects/xx/<file id>` (0444, root) stays the lazy
//! filesystem's backing file. The first tree to need a variant adopts its freshly rendered
//! file as the object (an atomic `link`); later trees replace theirs with a link to it.
//!
//! The objects are shared, so a tree must never be written in place: `objects/` and `trees/`
//! are 0700 (only root reaches them) and trees are only ever used as read-only overlayfs lower
//! directories (overlayfs copies a file up before the first write). Empty files, sparse files and
//! trees on another filesystem than `objects/` stay plain copies.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::entry::{Entry, EntryKind};
use crate::Store;

/// What linking a tree did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Files now sharing an inode with an object another tree made.
    pub linked: u64,
    /// Files that became new objects.
    pub adopted: u64,
    /// Files left as private copies (empty, sparse, too many links...).
    pub copies: u64,
}

enum Shared {
    Adopted,
    Linked,
}

impl Store {
    /// Replace the regular files of a freshly rendered, still private `rootfs` (rendered from
    /// `entries`, the image's merged view) with hard links into the object cache. Never fails
    /// the render: on a filesystem boundary or an unexpected error the remaining files stay
    /// copies, which is always correct.
    pub(crate) fn link_tree_objects(&self, rootfs: &Path, entries: &[Entry]) -> LinkStats {
        let mut links: HashMap<&str, Vec<&str>> = HashMap::new();
        for e in entries.iter().filter(|e| e.kind == EntryKind::HardLink) {
            if let Some(target) = e.link.as_deref() {
                links.entry(target).or_default().push(&e.path);
            }
        }
        let mut stats = LinkStats::default();
        for e in entries.iter().filter(|e| e.kind == EntryKind::File) {
            let others = links.get(e.path.as_str()).map(Vec::as_slice).unwrap_or(&[]);
            match self.link_one(rootfs, e, others) {
                Ok(Some(Shared::Adopted)) => stats.adopted += 1,
                Ok(Some(Shared::Linked)) => stats.linked += 1,
                Ok(None) => stats.copies += 1,
                Err(err) => {
                    if err.raw_os_error() == Some(libc::EXDEV) {
                        tracing::debug!(
                            "trees and objects are on different filesystems: \
                                         rendered trees keep their own copies"
                        );
                    } else {
                        tracing::warn!(path = %e.path, error = %err,
                            "could not link a rendered file into the object cache; \
                             the tree keeps copies");
                    }
                    return stats;
                }
            }
        }
        stats
    }

    fn link_one(
        &self,
        rootfs: &Path,
        e: &Entry,
        others: &[&str],
    ) -> std::io::Result<Option<Shared>> {
        let (Some(id), None) = (e.file_id, &e.sparse) else {
            return Ok(None);
        };
        let p = rootfs.join(&e.path);
        let m = std::fs::symlink_metadata(&p)?;
        if !m.is_file() || m.len() == 0 || m.len() != e.size {
            return Ok(None);
        }
        let obj = self.variant_path(&id, e, &m);
        if let Some(dir) = obj.parent() {
            self.create_objects_subdir(dir)
                .map_err(|err| std::io::Error::other(err.to_string()))?;
        }
        let shared = match share(&obj, &p, &id, &m) {
            Err(err) if err.raw_os_error() == Some(libc::EMLINK) => return Ok(None),
            r => r?,
        };
        if let Shared::Linked = shared {
            for other in others {
                replace_with_link(&obj, &rootfs.join(other))?;
            }
        }
        Ok(Some(shared))
    }

    /// `objects/xx/<file id>.<hash of mode, owner, times, xattrs>`.
    fn variant_path(&self, id: &crate::FileId, e: &Entry, m: &std::fs::Metadata) -> PathBuf {
        let mut h = blake3::Hasher::new();
        h.update(b"rkt-variant-1\0");
        for n in [
            u64::from(m.mode() & 0o7777),
            u64::from(m.uid()),
            u64::from(m.gid()),
            m.mtime() as u64,
            m.mtime_nsec() as u64,
        ] {
            h.update(&n.to_le_bytes());
        }
        let mut xattrs: Vec<_> = e.xattrs.iter().collect();
        xattrs.sort();
        for (name, value) in xattrs {
            h.update(&(name.len() as u64).to_le_bytes());
            h.update(name.as_bytes());
            h.update(&(value.len() as u64).to_le_bytes());
            h.update(value);
        }
        let suffix = hex::encode(&h.finalize().as_bytes()[..8]);
        let canonical = self.object_path(id);
        canonical.with_file_name(format!("{}.{suffix}", hex::encode(id)))
    }
}

/// Make `p` share its inode with the object `obj`: adopt `p` as the object when there is none
/// yet, otherwise replace `p` with a link to it.
fn share(
    obj: &Path,
    p: &Path,
    id: &crate::FileId,
    m: &std::fs::Metadata,
) -> std::io::Result<Shared> {
    for _ in 0..3 {
        match std::fs::hard_link(p, obj) {
            Ok(()) => return Ok(Shared::Adopted),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        if !object_intact(obj, id, m)? {
            // Written to in place through some tree: never link to it again. Trees that
            // already link it keep their inode; this one gets a fresh object.
            tracing::warn!(object = %obj.display(),
                "object of a rendered tree was modified in place; replacing it");
            match std::fs::remove_file(obj) {
                Ok(()) => continue,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
        }
        match replace_with_link(obj, p) {
            Ok(()) => return Ok(Shared::Linked),
            // Evicted between the two steps: adopt after all.
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other(format!(
        "object {} keeps appearing and disappearing",
        obj.display()
    )))
}

/// Whether the object still has the content `id` and the metadata of the freshly rendered
/// file `m` (a tree is never to be written in place, but a root user could).
fn object_intact(obj: &Path, id: &crate::FileId, m: &std::fs::Metadata) -> std::io::Result<bool> {
    let om = match std::fs::symlink_metadata(obj) {
        Ok(om) => om,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(e),
    };
    let same_meta = om.len() == m.len()
        && om.mode() == m.mode()
        && (om.uid(), om.gid()) == (m.uid(), m.gid())
        && (om.mtime(), om.mtime_nsec()) == (m.mtime(), m.mtime_nsec());
    if !same_meta {
        return Ok(false);
    }
    let mut h = blake3::Hasher::new();
    match h.update_reader(std::fs::File::open(obj)?) {
        Ok(_) => Ok(h.finalize().as_bytes() == id),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e),
    }
}

/// Atomically replace `p` with a hard link to `obj`.
fn replace_with_link(obj: &Path, p: &Path) -> std::io::Result<()> {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = p.with_file_name(format!(".{name}.rkt-link"));
    std::fs::hard_link(obj, &tmp)?;
    if let Err(e) = std::fs::rename(&tmp, p) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}
