//! The inode table of a mount: an image's merged view turned into inodes, built once at mount
//! from the index (no pack is read), immutable afterwards.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{FileAttr, FileType, INodeNo};
use rkt_store::{Entry, EntryKind, FileId};

/// One inode of the tree.
#[derive(Debug)]
pub struct Node {
    pub kind: EntryKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: i64,
    pub mtime_nsec: u32,
    pub rdev: u32,
    pub nlink: u32,
    pub parent: u64,
    /// The name under which the inode was first listed ("" for the root).
    pub name: OsString,
    pub symlink: Option<Box<[u8]>>,
    pub file_id: Option<FileId>,
    pub sparse: Option<Box<[(u64, u64)]>>,
    pub xattrs: Box<[(OsString, Box<[u8]>)]>,
    /// Directories: entries sorted by name.
    pub children: Vec<(OsString, u64)>,
}

/// All inodes of a mount; inode `n` is `nodes[n - 1]`, the root is inode 1.
#[derive(Debug)]
pub struct Inodes {
    nodes: Vec<Node>,
}

/// Why a merged view cannot be served.
#[derive(Debug, thiserror::Error)]
#[error("entry {path:?}: {reason}")]
pub struct BadEntry {
    pub path: String,
    pub reason: String,
}

fn bad(path: &str, reason: &str) -> BadEntry {
    BadEntry {
        path: path.to_string(),
        reason: reason.to_string(),
    }
}

impl Inodes {
    /// Build the table from a merged view (parents before children, hard links last, as
    /// `Store::merged_entries` returns it).
    pub fn build(entries: Vec<Entry>) -> Result<Inodes, BadEntry> {
        let mut nodes: Vec<Node> = Vec::with_capacity(entries.len());
        let mut by_path: HashMap<String, u64> = HashMap::with_capacity(entries.len());
        for e in entries {
            let (parent_path, name) = match e.path.rfind('/') {
                Some(i) => (&e.path[..i], &e.path[i + 1..]),
                None if e.path.is_empty() => ("", ""),
                None => ("", e.path.as_str()),
            };
            let parent = if e.path.is_empty() {
                if !nodes.is_empty() {
                    return Err(bad("", "the rootfs directory is not first"));
                }
                1
            } else {
                *by_path
                    .get(parent_path)
                    .ok_or_else(|| bad(&e.path, "listed before its parent directory"))?
            };
            if parent as usize > nodes.len() && !e.path.is_empty() {
                return Err(bad(&e.path, "parent out of range"));
            }
            let ino = if e.kind == EntryKind::HardLink {
                let target = e.link.as_deref().unwrap_or_default();
                let ino = *by_path
                    .get(target)
                    .ok_or_else(|| bad(&e.path, "hard link to a path not in the view"))?;
                nodes[ino as usize - 1].nlink += 1;
                ino
            } else {
                nodes.push(node_of(&e, parent, name));
                nodes.len() as u64
            };
            if !e.path.is_empty() {
                let p = &mut nodes[parent as usize - 1];
                if p.kind != EntryKind::Dir {
                    return Err(bad(&e.path, "parent is not a directory"));
                }
                p.children.push((OsString::from(name), ino));
                if e.kind == EntryKind::Dir {
                    p.nlink += 1;
                }
            }
            by_path.insert(e.path, ino);
        }
        if nodes.is_empty() {
            return Err(bad("", "empty view"));
        }
        for n in &mut nodes {
            n.children.sort_by(|a, b| a.0.cmp(&b.0));
            n.children.shrink_to_fit();
        }
        Ok(Inodes { nodes })
    }

    pub fn get(&self, ino: INodeNo) -> Option<&Node> {
        let i = usize::try_from(ino.0).ok()?.checked_sub(1)?;
        self.nodes.get(i)
    }

    pub fn lookup(&self, parent: INodeNo, name: &OsStr) -> Option<u64> {
        let p = self.get(parent)?;
        if name == ".." {
            return Some(p.parent);
        }
        if name == "." {
            return Some(parent.0);
        }
        p.children
            .binary_search_by(|(n, _)| n.as_os_str().cmp(name))
            .ok()
            .map(|i| p.children[i].1)
    }

    /// The rootfs-relative path of an inode (the first name it was listed under).
    pub fn path(&self, ino: u64) -> String {
        let mut parts: Vec<&[u8]> = Vec::new();
        let mut cur = ino;
        for _ in 0..4096 {
            let Some(n) = self.get(INodeNo(cur)) else {
                break;
            };
            if cur == 1 {
                break;
            }
            parts.push(n.name.as_bytes());
            cur = n.parent;
        }
        parts.reverse();
        String::from_utf8_lossy(&parts.join(&b"/"[..])).into_owned()
    }

    /// Inode numbers of regular files by rootfs-relative path (for prefetching).
    pub fn file_id_of(&self, path: &str) -> Option<FileId> {
        let mut cur = 1u64;
        for c in path.split('/').filter(|c| !c.is_empty()) {
            cur = self.lookup(INodeNo(cur), OsStr::new(c))?;
        }
        self.get(INodeNo(cur))?.file_id
    }

    pub fn attr(&self, ino: u64, n: &Node) -> FileAttr {
        let t = time_of(n.mtime, n.mtime_nsec);
        FileAttr {
            ino: INodeNo(ino),
            size: n.size,
            blocks: n.size.div_ceil(512),
            atime: t,
            mtime: t,
            ctime: t,
            crtime: t,
            kind: file_type(n.kind),
            perm: (n.mode & 0o7777) as u16,
            nlink: n.nlink,
            uid: n.uid,
            gid: n.gid,
            rdev: n.rdev,
            blksize: 4096,
            flags: 0,
        }
    }
}

fn node_of(e: &Entry, parent: u64, name: &str) -> Node {
    Node {
        kind: e.kind,
        mode: e.mode,
        uid: e.uid,
        gid: e.gid,
        size: if e.kind == EntryKind::File { e.size } else { 0 },
        mtime: e.mtime,
        mtime_nsec: e.mtime_nsec,
        rdev: encode_dev(e.dev_major, e.dev_minor),
        nlink: if e.kind == EntryKind::Dir { 2 } else { 1 },
        parent,
        name: OsString::from(name),
        symlink: match e.kind {
            EntryKind::Symlink => Some(e.link.clone().unwrap_or_default().into_bytes().into()),
            _ => None,
        },
        file_id: e.file_id,
        sparse: e.sparse.clone().map(Vec::into_boxed_slice),
        xattrs: e
            .xattrs
            .iter()
            .map(|(k, v)| (OsString::from(k), v.clone().into_boxed_slice()))
            .collect(),
        children: Vec::new(),
    }
    .with_size_for_symlink(e)
}

impl Node {
    fn with_size_for_symlink(mut self, e: &Entry) -> Node {
        if e.kind == EntryKind::Symlink {
            self.size = e.link.as_ref().map_or(0, |l| l.len() as u64);
        }
        self
    }
}

/// The kernel's `new_encode_dev`, which FUSE's 32-bit `rdev` uses.
fn encode_dev(major: u32, minor: u32) -> u32 {
    (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12)
}

fn time_of(secs: i64, nsec: u32) -> SystemTime {
    let n = Duration::from_nanos(u64::from(nsec.min(999_999_999)));
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64) + n
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + n
    }
}

pub fn file_type(kind: EntryKind) -> FileType {
    match kind {
        EntryKind::File | EntryKind::HardLink => FileType::RegularFile,
        EntryKind::Dir => FileType::Directory,
        EntryKind::Symlink => FileType::Symlink,
        EntryKind::CharDevice => FileType::CharDevice,
        EntryKind::BlockDevice => FileType::BlockDevice,
        EntryKind::Fifo => FileType::NamedPipe,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, kind: EntryKind) -> Entry {
        Entry {
            path: path.into(),
            kind,
            mode: 0o755,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: 1,
            mtime_nsec: 0,
            link: None,
            dev_major: 0,
            dev_minor: 0,
            xattrs: vec![],
            file_id: None,
            sparse: None,
        }
    }

    #[test]
    fn builds_tree_with_hard_links_and_dir_link_counts() {
        let mut f = entry("a/f", EntryKind::File);
        f.file_id = Some([1; 32]);
        let mut h = entry("g", EntryKind::HardLink);
        h.link = Some("a/f".into());
        let t = Inodes::build(vec![
            entry("", EntryKind::Dir),
            entry("a", EntryKind::Dir),
            f,
            h,
        ])
        .unwrap();
        let a = t.lookup(INodeNo(1), OsStr::new("a")).unwrap();
        let f = t.lookup(INodeNo(a), OsStr::new("f")).unwrap();
        assert_eq!(t.lookup(INodeNo(1), OsStr::new("g")), Some(f));
        assert_eq!(t.get(INodeNo(f)).unwrap().nlink, 2);
        assert_eq!(t.get(INodeNo(1)).unwrap().nlink, 3);
        assert_eq!(t.path(f), "a/f");
        assert_eq!(t.file_id_of("g"), Some([1; 32]));
        assert_eq!(t.lookup(INodeNo(1), OsStr::new("nope")), None);
    }

    #[test]
    fn rejects_orphans() {
        let err = Inodes::build(vec![
            entry("", EntryKind::Dir),
            entry("x/y", EntryKind::Dir),
        ]);
        assert!(err.is_err());
    }

    #[test]
    fn encodes_devices_like_the_kernel() {
        assert_eq!(encode_dev(1, 3), 0x103);
        assert_eq!(encode_dev(8, 0x123), 0x10_0823);
    }
}
