//! What the index knows about one path of an image's rootfs: everything a filesystem needs,
//! answered from SQLite without reading any pack.

use serde::{Deserialize, Serialize};

/// The kind of a filesystem entry, as stored in the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    /// A hard link to another path of the same image (`link` holds the target path).
    HardLink,
    CharDevice,
    BlockDevice,
    Fifo,
}

impl EntryKind {
    /// Stable code used in the SQLite index.
    pub fn code(self) -> &'static str {
        match self {
            EntryKind::File => "f",
            EntryKind::Dir => "d",
            EntryKind::Symlink => "l",
            EntryKind::HardLink => "h",
            EntryKind::CharDevice => "c",
            EntryKind::BlockDevice => "b",
            EntryKind::Fifo => "p",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Some(match code {
            "f" => EntryKind::File,
            "d" => EntryKind::Dir,
            "l" => EntryKind::Symlink,
            "h" => EntryKind::HardLink,
            "c" => EntryKind::CharDevice,
            "b" => EntryKind::BlockDevice,
            "p" => EntryKind::Fifo,
            _ => return None,
        })
    }
}

/// A file's content identity: BLAKE3 of its bytes.
pub type FileId = [u8; 32];

/// One path of an image's rootfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the rootfs, without leading `/` and without `rootfs/`; "" is the rootfs
    /// directory itself. Always normalised: no `.`, `..` or empty components.
    pub path: String,
    pub kind: EntryKind,
    /// Permission bits including setuid/setgid/sticky (no file type bits).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Logical size in bytes (regular files; 0 otherwise).
    pub size: u64,
    /// Modification time, seconds since the epoch, and nanoseconds.
    pub mtime: i64,
    pub mtime_nsec: u32,
    /// Symlink target (verbatim) or hard-link target (a rootfs-relative path like `path`).
    pub link: Option<String>,
    pub dev_major: u32,
    pub dev_minor: u32,
    /// Extended attributes, in archive order.
    pub xattrs: Vec<(String, Vec<u8>)>,
    /// Content identity of a regular file, and of a hard link (its target's content);
    /// None for every other kind.
    pub file_id: Option<FileId>,
    /// For sparse files: (offset, length) of each data segment; the content bytes are the
    /// concatenation of the segments, holes read as zeros. None for dense files.
    pub sparse: Option<Vec<(u64, u64)>>,
}

impl Entry {
    /// A directory the archive implies but does not list (0755, root-owned, epoch mtime).
    pub fn implied_dir(path: impl Into<String>) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: 0,
            mtime_nsec: 0,
            link: None,
            dev_major: 0,
            dev_minor: 0,
            xattrs: Vec::new(),
            file_id: None,
            sparse: None,
        }
    }
}

/// Checks a sparse file's data segments against its logical `size`: in order, not overlapping,
/// inside the file. Returns the bytes the segments hold (the file's stored content), or why
/// the map is wrong.
pub(crate) fn check_sparse_map(segs: &[(u64, u64)], size: u64) -> Result<u64, String> {
    let (mut end, mut total) = (0u64, 0u64);
    for &(off, len) in segs {
        let seg_end = off
            .checked_add(len)
            .filter(|&e| e <= size)
            .ok_or_else(|| format!("segment {off}+{len} exceeds the file size {size}"))?;
        if off < end {
            return Err(format!("segment at {off} overlaps the previous one"));
        }
        end = seg_end;
        // Cannot overflow: the segments are disjoint and inside `size`.
        total += len;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::check_sparse_map;

    #[test]
    fn sparse_maps_are_checked() {
        assert_eq!(check_sparse_map(&[(0, 4), (10, 2), (20, 0)], 20), Ok(6));
        assert_eq!(check_sparse_map(&[], 1 << 40), Ok(0));
        assert!(check_sparse_map(&[(0, 4), (2, 2)], 20).is_err(), "overlap");
        assert!(
            check_sparse_map(&[(10, 2), (0, 4)], 20).is_err(),
            "unsorted"
        );
        assert!(check_sparse_map(&[(18, 4)], 20).is_err(), "past the size");
        assert!(
            check_sparse_map(&[(u64::MAX, 2)], u64::MAX).is_err(),
            "overflow"
        );
    }
}
