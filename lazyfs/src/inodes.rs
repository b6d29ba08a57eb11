//! The inode table of a mount: an image's merged view turned into inodes, built once at mount
//! from the index (no pack is read), immutable afterwards.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{FileAttr, FileType, INodeNo};
use rkt_store::{Entry, EntryKind, FileId};

/// One inode of the tree. A pod's server holds one per path of its image for as long as the
/// pod runs, so it is kept small: names live in the table's one buffer, directory entries in its
/// one list, and what few files have (a symlink target, xattrs, a sparse map) behind one box.
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
    /// The parent directory's inode number (the root's is its own).
    parent: u32,
    /// The name under which the inode was first listed ("" for the root).
    name: Name,
    /// Directories: their entries, `Inodes::dirents[start..start + len]`, sorted by name.
    children: Span,
    pub file_id: Option<FileId>,
    extra: Option<Box<Extra>>,
}

#[derive(Debug, Default)]
struct Extra {
    symlink: Option<Box<[u8]>>,
    sparse: Option<Box<[(u64, u64)]>>,
    xattrs: Box<[(OsString, Box<[u8]>)]>,
}

/// A name: `Inodes::names[off..off + len]`.
#[derive(Debug, Clone, Copy, Default)]
struct Name {
    off: u32,
    len: u32,
}

#[derive(Debug, Clone, Copy, Default)]
struct Span {
    start: u32,
    len: u32,
}

/// A directory entry: a name and the inode it names (hard links name one inode twice).
#[derive(Debug, Clone, Copy)]
struct Dirent {
    name: Name,
    ino: u32,
}

impl Node {
    pub fn parent(&self) -> u64 {
        u64::from(self.parent)
    }

    pub fn symlink(&self) -> Option<&[u8]> {
        self.extra.as_ref()?.symlink.as_deref()
    }

    pub fn sparse(&self) -> Option<&[(u64, u64)]> {
        self.extra.as_ref()?.sparse.as_deref()
    }

    pub fn xattrs(&self) -> &[(OsString, Box<[u8]>)] {
        self.extra.as_ref().map_or(&[], |x| &x.xattrs)
    }
}

/// All inodes of a mount; inode `n` is `nodes[n - 1]`, the root is inode 1.
#[derive(Debug)]
pub struct Inodes {
    nodes: Vec<Node>,
    /// Every name of the tree, back to back.
    names: Box<[u8]>,
    /// Every directory's entries, each directory's in one run.
    dirents: Box<[Dirent]>,
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

const TOO_BIG: &str = "the image has more paths or longer names than one mount serves (4 GiB)";

impl Inodes {
    /// Build the table from a merged view (parents before children, hard links last, as
    /// `Store::merged_entries` returns it).
    pub fn build(entries: Vec<Entry>) -> Result<Inodes, BadEntry> {
        let mut nodes: Vec<Node> = Vec::with_capacity(entries.len());
        let mut names: Vec<u8> = Vec::new();
        let mut by_path: HashMap<String, u32> = HashMap::with_capacity(entries.len());
        // (parent, name, inode) of every path but the root.
        let mut links: Vec<(u32, Name, u32)> = Vec::with_capacity(entries.len());
        for e in entries {
            let (parent_path, base) = match e.path.rfind('/') {
                Some(i) => (&e.path[..i], &e.path[i + 1..]),
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
            let name = Name {
                off: u32::try_from(names.len()).map_err(|_| bad(&e.path, TOO_BIG))?,
                len: u32::try_from(base.len()).map_err(|_| bad(&e.path, TOO_BIG))?,
            };
            names.extend_from_slice(base.as_bytes());
            let ino = if e.kind == EntryKind::HardLink {
                let target = e.link.as_deref().unwrap_or_default();
                let ino = *by_path
                    .get(target)
                    .ok_or_else(|| bad(&e.path, "hard link to a path not in the view"))?;
                nodes[ino as usize - 1].nlink += 1;
                ino
            } else {
                nodes.push(node_of(&e, parent, name));
                u32::try_from(nodes.len()).map_err(|_| bad(&e.path, TOO_BIG))?
            };
            if !e.path.is_empty() {
                let p = &mut nodes[parent as usize - 1];
                if p.kind != EntryKind::Dir {
                    return Err(bad(&e.path, "parent is not a directory"));
                }
                links.push((parent, name, ino));
                if e.kind == EntryKind::Dir {
                    p.nlink += 1;
                }
            }
            by_path.insert(e.path, ino);
        }
        if nodes.is_empty() {
            return Err(bad("", "empty view"));
        }
        drop(by_path);
        // Hard links took no node: give back the room reserved for them.
        nodes.shrink_to_fit();
        let name_of = |n: Name| &names[n.off as usize..(n.off + n.len) as usize];
        links.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| name_of(a.1).cmp(name_of(b.1))));
        let mut dirents = Vec::with_capacity(links.len());
        for run in links.chunk_by(|a, b| a.0 == b.0) {
            let start = u32::try_from(dirents.len()).map_err(|_| bad("", TOO_BIG))?;
            let len = u32::try_from(run.len()).map_err(|_| bad("", TOO_BIG))?;
            nodes[run[0].0 as usize - 1].children = Span { start, len };
            dirents.extend(run.iter().map(|&(_, name, ino)| Dirent { name, ino }));
        }
        Ok(Inodes {
            nodes,
            names: names.into_boxed_slice(),
            dirents: dirents.into_boxed_slice(),
        })
    }

    pub fn get(&self, ino: INodeNo) -> Option<&Node> {
        let i = usize::try_from(ino.0).ok()?.checked_sub(1)?;
        self.nodes.get(i)
    }

    fn name(&self, n: Name) -> &OsStr {
        let bytes = self
            .names
            .get(n.off as usize..n.off as usize + n.len as usize)
            .unwrap_or_default();
        OsStr::from_bytes(bytes)
    }

    fn dirents(&self, n: &Node) -> &[Dirent] {
        let (start, len) = (n.children.start as usize, n.children.len as usize);
        self.dirents.get(start..start + len).unwrap_or_default()
    }

    /// A directory's entries, sorted by name: (inode, name).
    pub fn children<'a>(&'a self, n: &'a Node) -> impl Iterator<Item = (u64, &'a OsStr)> + 'a {
        self.dirents(n)
            .iter()
            .map(|d| (u64::from(d.ino), self.name(d.name)))
    }

    pub fn lookup(&self, parent: INodeNo, name: &OsStr) -> Option<u64> {
        let p = self.get(parent)?;
        if name == ".." {
            return Some(p.parent());
        }
        if name == "." {
            return Some(parent.0);
        }
        let kids = self.dirents(p);
        kids.binary_search_by(|d| self.name(d.name).cmp(name))
            .ok()
            .map(|i| u64::from(kids[i].ino))
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
            parts.push(self.name(n.name).as_bytes());
            cur = n.parent();
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

fn node_of(e: &Entry, parent: u32, name: Name) -> Node {
    let symlink = match e.kind {
        EntryKind::Symlink => Some(e.link.clone().unwrap_or_default().into_bytes().into()),
        _ => None,
    };
    let extra = Extra {
        symlink,
        sparse: e.sparse.clone().map(Vec::into_boxed_slice),
        xattrs: e
            .xattrs
            .iter()
            .map(|(k, v)| (OsString::from(k), v.clone().into_boxed_slice()))
            .collect(),
    };
    let rare = extra.symlink.is_some() || extra.sparse.is_some() || !extra.xattrs.is_empty();
    Node {
        kind: e.kind,
        mode: e.mode,
        uid: e.uid,
        gid: e.gid,
        size: match e.kind {
            EntryKind::File => e.size,
            EntryKind::Symlink => e.link.as_ref().map_or(0, |l| l.len() as u64),
            _ => 0,
        },
        mtime: e.mtime,
        mtime_nsec: e.mtime_nsec,
        rdev: encode_dev(e.dev_major, e.dev_minor),
        nlink: if e.kind == EntryKind::Dir { 2 } else { 1 },
        parent,
        name,
        children: Span::default(),
        file_id: e.file_id,
        extra: rare.then(|| Box::new(extra)),
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
    fn each_directory_lists_its_entries_sorted() {
        let mut sym = entry("b/link", EntryKind::Symlink);
        sym.link = Some("../a/x".into());
        let mut x = entry("a/x", EntryKind::File);
        x.xattrs = vec![("user.k".into(), b"v".to_vec())];
        let t = Inodes::build(vec![
            entry("", EntryKind::Dir),
            entry("b", EntryKind::Dir),
            entry("a", EntryKind::Dir),
            entry("b/z", EntryKind::File),
            entry("a/y", EntryKind::File),
            sym,
            x,
        ])
        .unwrap();
        let names = |ino: u64| -> Vec<String> {
            let n = t.get(INodeNo(ino)).unwrap();
            t.children(n)
                .map(|(i, name)| {
                    assert_eq!(t.lookup(INodeNo(ino), name), Some(i));
                    name.to_string_lossy().into_owned()
                })
                .collect()
        };
        assert_eq!(names(1), ["a", "b"]);
        let a = t.lookup(INodeNo(1), OsStr::new("a")).unwrap();
        let b = t.lookup(INodeNo(1), OsStr::new("b")).unwrap();
        assert_eq!(names(a), ["x", "y"]);
        assert_eq!(names(b), ["link", "z"]);
        let x = t.lookup(INodeNo(a), OsStr::new("x")).unwrap();
        let link = t.lookup(INodeNo(b), OsStr::new("link")).unwrap();
        assert_eq!(t.path(x), "a/x");
        assert_eq!(t.path(link), "b/link");
        assert_eq!(t.lookup(INodeNo(x), OsStr::new("..")), Some(a));
        let (x, link) = (t.get(INodeNo(x)).unwrap(), t.get(INodeNo(link)).unwrap());
        assert_eq!(x.xattrs()[0].0, "user.k");
        assert_eq!((link.symlink(), link.size), (Some(&b"../a/x"[..]), 6));
        assert!(
            t.get(INodeNo(a)).unwrap().extra.is_none(),
            "plain paths box nothing"
        );
    }

    #[test]
    fn a_node_stays_small() {
        // One per path of the image, for as long as the pod runs (was 184 bytes plus a name
        // and a directory entry with a second copy of it).
        assert!(
            std::mem::size_of::<Node>() <= 112,
            "{}",
            std::mem::size_of::<Node>()
        );
        assert!(std::mem::size_of::<Dirent>() <= 12);
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
