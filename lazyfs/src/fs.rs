//! The FUSE filesystem: metadata from the inode table, contents from the object cache.
//!
//! `open` materialises the file's object (verified chunk by chunk) and, when the kernel agreed
//! to FUSE passthrough, registers the object as the open file's backing file: reads and mmap
//! then never come back to this process. Otherwise (no passthrough, the backing ioctl refused,
//! or a sparse file, whose object is its dense content) reads are served from the object with
//! the kernel's page cache kept between opens.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use fuser::{
    BackingId, Errno, FileHandle, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    IoctlFlags, KernelConfig, LockOwner, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyOpen, ReplyStatfs, ReplyXattr, Request,
};
use rkt_store::{EntryKind, ObjectHandle, Store};

use crate::inodes::{file_type, Inodes, Node};

/// Images never change under a mount: the kernel may cache entries and attributes for good.
const TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// Counters a mount exposes (see [`crate::Session::stats`]).
#[derive(Debug, Default)]
pub struct Counters {
    pub opens: AtomicU64,
    pub passthrough_opens: AtomicU64,
    pub fallback_opens: AtomicU64,
    pub fallback_reads: AtomicU64,
    pub open_errors: AtomicU64,
    pub prefetched: AtomicU64,
}

/// State shared between the filesystem (in fuser's session thread) and the [`crate::Session`].
#[derive(Debug, Default)]
pub struct Shared {
    pub counters: Counters,
    /// Whether the kernel accepted FUSE passthrough at init.
    pub passthrough: AtomicBool,
    /// Whether the "no passthrough" warning was logged already.
    fallback_logged: AtomicBool,
    /// Rootfs-relative paths of the files opened, in the order of their first open.
    pub accessed: Mutex<AccessLog>,
}

#[derive(Debug, Default)]
pub struct AccessLog {
    pub order: Vec<String>,
    seen: std::collections::HashSet<u64>,
}

impl Shared {
    fn fallback(&self, why: &str) {
        if !self.fallback_logged.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                reason = why,
                "no FUSE passthrough: file reads go through the \
                FUSE server (page cache kept), slower than native"
            );
        }
    }
}

/// An object open for the kernel, with its passthrough registration if any.
struct Backing {
    object: ObjectHandle,
    id: Option<BackingId>,
}

/// A sparse file's data segments (its object holds them back to back).
type Segments = Option<Box<[(u64, u64)]>>;

#[derive(Default)]
struct OpenTable {
    next_fh: u64,
    by_fh: HashMap<u64, (Arc<Backing>, Segments)>,
    /// One backing per inode while any handle is open: the kernel requires it.
    by_ino: HashMap<u64, Weak<Backing>>,
}

pub struct LazyFs {
    image: String,
    inodes: Arc<Inodes>,
    store: Mutex<Store>,
    open: Mutex<OpenTable>,
    shared: Arc<Shared>,
}

/// The access log of a mount.
pub fn lock_access(shared: &Shared) -> MutexGuard<'_, AccessLog> {
    lock(&shared.accessed)
}

/// At most this many paths are remembered for prefetching.
const MAX_ACCESS_LOG: usize = 100_000;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl LazyFs {
    pub fn new(image: String, inodes: Arc<Inodes>, store: Store, shared: Arc<Shared>) -> Self {
        LazyFs {
            image,
            inodes,
            store: Mutex::new(store),
            open: Mutex::new(OpenTable::default()),
            shared,
        }
    }

    fn node(&self, ino: INodeNo) -> Result<&Node, Errno> {
        self.inodes.get(ino).ok_or(Errno::ENOENT)
    }

    fn record_access(&self, ino: u64) {
        let mut log = lock(&self.shared.accessed);
        if log.order.len() < MAX_ACCESS_LOG && log.seen.insert(ino) {
            let path = self.inodes.path(ino);
            log.order.push(path);
        }
    }

    /// The object of `ino`, opened and held, registered for passthrough when possible.
    fn backing(&self, ino: u64, node: &Node, reply: &ReplyOpen) -> Result<Arc<Backing>, Errno> {
        if let Some(b) = lock(&self.open).by_ino.get(&ino).and_then(Weak::upgrade) {
            return Ok(b);
        }
        let file_id = node.file_id.ok_or(Errno::EIO)?;
        let object = lock(&self.store).open_object(&file_id).map_err(|e| {
            self.shared
                .counters
                .open_errors
                .fetch_add(1, Ordering::Relaxed);
            tracing::error!(image = %self.image, path = %self.inodes.path(ino), error = %e,
                "cannot materialise the file: its open fails with EIO");
            Errno::EIO
        })?;
        if object.was_written() && node.size >= 1 << 20 {
            // Materialising it allocated and freed buffers of its size.
            crate::memory::release_freed();
        }
        let mut id = None;
        if self.shared.passthrough.load(Ordering::Relaxed) && node.sparse().is_none() {
            match reply.open_backing(object.file()) {
                Ok(b) => id = Some(b),
                Err(e) => {
                    self.shared.passthrough.store(false, Ordering::Relaxed);
                    self.shared
                        .fallback(&format!("the kernel refused the backing file: {e}"));
                }
            }
        }
        let b = Arc::new(Backing { object, id });
        lock(&self.open).by_ino.insert(ino, Arc::downgrade(&b));
        Ok(b)
    }

    fn read_object(
        &self,
        b: &Backing,
        sparse: Option<&[(u64, u64)]>,
        off: u64,
        size: u32,
    ) -> std::io::Result<Vec<u8>> {
        let f = b.object.file();
        match sparse {
            None => read_at(f, off, size as usize),
            Some(segments) => read_sparse(f, segments, off, size as usize),
        }
    }
}

fn read_at(f: &std::fs::File, off: u64, size: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; size];
    let mut got = 0;
    while got < size {
        match f.read_at(&mut buf[got..], off + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

/// Read logical bytes of a sparse file whose object holds only the data segments, back to back.
fn read_sparse(
    f: &std::fs::File,
    segments: &[(u64, u64)],
    off: u64,
    size: usize,
) -> std::io::Result<Vec<u8>> {
    let end = off + size as u64;
    let mut out = vec![0u8; size];
    let mut dense = 0u64;
    for &(seg_off, seg_len) in segments {
        let (lo, hi) = (seg_off.max(off), (seg_off + seg_len).min(end));
        if lo < hi {
            let data = read_at(f, dense + (lo - seg_off), (hi - lo) as usize)?;
            let at = (lo - off) as usize;
            out[at..at + data.len()].copy_from_slice(&data);
        }
        dense += seg_len;
    }
    Ok(out)
}

impl Filesystem for LazyFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let ok = config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok()
            // A stack depth of 1 lets overlayfs sit on top (the kernel allows two levels).
            && config.set_max_stack_depth(1).is_ok();
        self.shared.passthrough.store(ok, Ordering::Relaxed);
        if !ok {
            self.shared
                .fallback("the kernel did not offer FUSE_PASSTHROUGH (Linux 6.9+ needed)");
        }
        let _ = config.add_capabilities(InitFlags::FUSE_CACHE_SYMLINKS);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.inodes.lookup(parent, name) {
            Some(ino) => match self.inodes.get(INodeNo(ino)) {
                Some(n) => reply.entry(&TTL, &self.inodes.attr(ino, n), Generation(0)),
                None => reply.error(Errno::ENOENT),
            },
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.node(ino) {
            Ok(n) => reply.attr(&TTL, &self.inodes.attr(ino.0, n)),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.node(ino).map(|n| n.symlink()) {
            Ok(Some(target)) => reply.data(target),
            Ok(None) => reply.error(Errno::EINVAL),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let node = match self.node(ino) {
            Ok(n) if n.kind == EntryKind::File => n,
            Ok(_) => return reply.error(Errno::EINVAL),
            Err(e) => return reply.error(e),
        };
        self.shared.counters.opens.fetch_add(1, Ordering::Relaxed);
        self.record_access(ino.0);
        let b = match self.backing(ino.0, node, &reply) {
            Ok(b) => b,
            Err(e) => return reply.error(e),
        };
        let fh = {
            let mut t = lock(&self.open);
            t.next_fh += 1;
            let fh = t.next_fh;
            t.by_fh
                .insert(fh, (Arc::clone(&b), node.sparse().map(Box::from)));
            fh
        };
        match &b.id {
            Some(id) => {
                self.shared
                    .counters
                    .passthrough_opens
                    .fetch_add(1, Ordering::Relaxed);
                reply.opened_passthrough(FileHandle(fh), FopenFlags::empty(), id);
            }
            None => {
                self.shared
                    .counters
                    .fallback_opens
                    .fetch_add(1, Ordering::Relaxed);
                reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE);
            }
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.shared
            .counters
            .fallback_reads
            .fetch_add(1, Ordering::Relaxed);
        let Some((b, sparse)) = lock(&self.open).by_fh.get(&fh.0).cloned() else {
            return reply.error(Errno::EBADF);
        };
        match self.read_object(&b, sparse.as_deref(), offset, size) {
            Ok(mut data) => {
                let logical = self.inodes.get(ino).map_or(0, |n| n.size);
                data.truncate(logical.saturating_sub(offset) as usize);
                reply.data(&data)
            }
            Err(e) => {
                tracing::error!(image = %self.image, path = %self.inodes.path(ino.0),
                    object = %b.object.path().display(), error = %e, "read failed: EIO");
                reply.error(Errno::EIO)
            }
        }
    }

    /// Nothing to flush in a read-only tree. ENOSYS (without fuser's default warning) makes
    /// the kernel stop sending flushes for this mount, sparing a round trip per close.
    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::ENOSYS);
    }

    /// The tree answers no ioctl: ENOTTY, as a plain file would, and without fuser's default
    /// warning on the pod's stderr (programs such as busybox sh probe their files with ioctls).
    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: ReplyIoctl,
    ) {
        reply.error(Errno::ENOTTY);
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let mut t = lock(&self.open);
        t.by_fh.remove(&fh.0);
        if t.by_ino.get(&ino.0).is_some_and(|w| w.strong_count() == 0) {
            t.by_ino.remove(&ino.0);
        }
        reply.ok();
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let n = match self.node(ino) {
            Ok(n) if n.kind == EntryKind::Dir => n,
            Ok(_) => return reply.error(Errno::ENOTDIR),
            Err(e) => return reply.error(e),
        };
        let dots = [(ino.0, "."), (n.parent(), "..")];
        let dots = dots.iter().map(|(i, name)| (*i, OsStr::new(*name)));
        let kids = self.inodes.children(n);
        for (idx, (child, name)) in dots.chain(kids).enumerate().skip(offset as usize) {
            let kind = self
                .inodes
                .get(INodeNo(child))
                .map_or(fuser::FileType::Directory, |c| file_type(c.kind));
            if reply.add(INodeNo(child), idx as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(0, 0, 0, 0, 0, 4096, 255, 4096);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let n = match self.node(ino) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        match n.xattrs().iter().find(|(k, _)| k.as_os_str() == name) {
            None => reply.error(Errno::ENODATA),
            Some((_, v)) => xattr_reply(reply, size, v),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let n = match self.node(ino) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        let mut names = Vec::new();
        for (k, _) in n.xattrs() {
            names.extend_from_slice(k.as_bytes());
            names.push(0);
        }
        xattr_reply(reply, size, &names);
    }
}

fn xattr_reply(reply: ReplyXattr, size: u32, value: &[u8]) {
    if size == 0 {
        reply.size(value.len() as u32);
    } else if value.len() > size as usize {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn sparse_reads_put_segments_at_their_offsets() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"abcdef").unwrap();
        // Logical file: 2 zero bytes, "abc", 3 zero bytes, "def".
        let segs = [(2, 3), (8, 3)];
        assert_eq!(read_sparse(&f, &segs, 0, 11).unwrap(), b"\0\0abc\0\0\0def");
        assert_eq!(read_sparse(&f, &segs, 3, 6).unwrap(), b"bc\0\0\0d");
    }
}
