//! Writing the merged view to disk, never following a symlink.
//!
//! Every path is created relative to a directory file descriptor that was itself opened
//! component by component with `O_NOFOLLOW | O_DIRECTORY` from the destination, so a symlink or
//! a non-directory in a parent position makes the render fail instead of escaping. Directories
//! are created with mode 0700 and only get their final owner, mode, xattrs and mtime in a last
//! pass (deepest first), so nobody else can enter the tree while it is being written and
//! directory mtimes are not disturbed by their children.

use std::ffi::CString;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{
    fchmod, fchmodat, fstatat, futimens, makedev, mkdirat, mknodat, utimensat, FchmodatFlags, Mode,
    SFlag, UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, linkat, symlinkat, Gid, Uid};

use crate::entry::{Entry, EntryKind};

use super::merge::merge_with_levels;
use super::{ContentSource, Layer, RenderError, RenderOptions, RenderStats};

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// Renders `layers` (upper-first: `layers[0]` is the image itself, then its dependencies in
/// appc render order) into `dest`, as [`render_with_levels`] with the layers forming a chain.
pub fn render(
    layers: &[Layer<'_>],
    dest: &Path,
    opts: &RenderOptions,
    src: &dyn ContentSource,
) -> Result<RenderStats, RenderError> {
    render_with_levels(layers, None, dest, opts, src)
}

/// Renders the merged view of `layers` (see [`super::merge_with_levels`]) into `dest`.
///
/// `dest` must be absent (it is created, mode 0755; its parent must exist) or an empty
/// directory, and must not be a symlink. The result is `dest/manifest` (when `opts.manifest`
/// is set) and `dest/rootfs/...`, or the rootfs tree directly in `dest` with
/// `opts.rootfs_only` (then `dest` gets the rootfs directory's owner, mode and mtime).
///
/// On error `dest` is left partially written; the caller removes it.
pub fn render_with_levels(
    layers: &[Layer<'_>],
    levels: Option<&[u16]>,
    dest: &Path,
    opts: &RenderOptions,
    src: &dyn ContentSource,
) -> Result<RenderStats, RenderError> {
    let merged = merge_with_levels(layers, levels, opts.apply_whitelist)?;
    let (dest_fd, created) = open_dest(dest)?;

    let (root, root_path) = if opts.rootfs_only {
        // The tree is written straight into dest: keep others out until the final pass.
        fchmod(dest_fd.as_raw_fd(), Mode::from_bits_truncate(0o700))
            .map_err(|e| RenderError::io(dest, e))?;
        let dup = dest_fd.try_clone().map_err(|e| RenderError::io(dest, e))?;
        (dup, dest.to_path_buf())
    } else {
        if let Some(manifest) = &opts.manifest {
            write_manifest(&dest_fd, dest, manifest)?;
        }
        let rootfs = dest.join("rootfs");
        mkdirat(
            Some(dest_fd.as_raw_fd()),
            "rootfs",
            Mode::from_bits_truncate(0o700),
        )
        .map_err(|e| RenderError::io(&rootfs, e))?;
        let fd = open_at(dest_fd.as_raw_fd(), "rootfs", DIR_FLAGS)
            .map_err(|e| RenderError::io(&rootfs, e))?;
        (fd, rootfs)
    };

    let mut w = Writer {
        layers,
        root,
        root_path,
        cache: None,
        stats: RenderStats::default(),
        warned_chown: false,
    };

    let mut dirs: Vec<(usize, &Entry)> = Vec::new();
    for (li, e) in &merged {
        match e.kind {
            EntryKind::Dir => {
                if !e.path.is_empty() {
                    let (pfd, name) = w.parent(*li, &e.path)?;
                    mkdirat(Some(pfd), name, Mode::from_bits_truncate(0o700))
                        .map_err(|err| RenderError::io(w.abs(&e.path), err))?;
                }
                dirs.push((*li, e));
            }
            EntryKind::HardLink => w.hard_link(*li, e)?,
            EntryKind::File => w.file(*li, e, src)?,
            EntryKind::Symlink
            | EntryKind::CharDevice
            | EntryKind::BlockDevice
            | EntryKind::Fifo => w.special(*li, e)?,
        }
    }

    // Directories last, deepest first, so that creating children does not change their mtime
    // and restrictive modes do not get in the way.
    dirs.sort_by_key(|(_, e)| std::cmp::Reverse(depth(&e.path)));
    for (li, e) in dirs {
        w.finish_dir(li, e)?;
    }

    if created && !opts.rootfs_only {
        fchmod(dest_fd.as_raw_fd(), Mode::from_bits_truncate(0o755))
            .map_err(|e| RenderError::io(dest, e))?;
    }
    tracing::debug!(dest = %dest.display(), files = w.stats.files, dirs = w.stats.dirs,
        bytes = w.stats.bytes, "rendered");
    Ok(w.stats)
}

fn depth(path: &str) -> usize {
    if path.is_empty() {
        0
    } else {
        path.split('/').count()
    }
}

fn open_at(dirfd: RawFd, name: &str, flags: OFlag) -> Result<OwnedFd, Errno> {
    let fd = openat(Some(dirfd), name, flags, Mode::empty())?;
    // SAFETY: `openat` just returned this descriptor; nothing else owns or closes it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens `dest` as a directory (creating it when absent) and checks that it is empty.
/// Returns the descriptor and whether it was created.
fn open_dest(dest: &Path) -> Result<(OwnedFd, bool), RenderError> {
    let mut created = false;
    let fd = match openat(None, dest, DIR_FLAGS, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => {
            nix::unistd::mkdir(dest, Mode::from_bits_truncate(0o700))
                .map_err(|e| RenderError::io(dest, e))?;
            created = true;
            openat(None, dest, DIR_FLAGS, Mode::empty()).map_err(|e| RenderError::io(dest, e))?
        }
        Err(Errno::ENOTDIR | Errno::ELOOP) => {
            return Err(RenderError::DestNotEmpty(dest.to_path_buf()))
        }
        Err(e) => return Err(RenderError::io(dest, e)),
    };
    // SAFETY: `openat` just returned this descriptor; nothing else owns or closes it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    if !created {
        // Read the directory we hold, not whatever `dest` names now.
        let via_fd = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let mut it = std::fs::read_dir(&via_fd).map_err(|e| RenderError::io(dest, e))?;
        if it.next().is_some() {
            return Err(RenderError::DestNotEmpty(dest.to_path_buf()));
        }
    }
    Ok((fd, created))
}

fn write_manifest(dest_fd: &OwnedFd, dest: &Path, manifest: &[u8]) -> Result<(), RenderError> {
    let path = dest.join("manifest");
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = openat(
        Some(dest_fd.as_raw_fd()),
        "manifest",
        flags,
        Mode::from_bits_truncate(0o644),
    )
    .map_err(|e| RenderError::io(&path, e))?;
    // SAFETY: `openat` just returned this descriptor; nothing else owns or closes it.
    let mut f = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    f.write_all(manifest)
        .map_err(|e| RenderError::io(&path, e))?;
    fchmod(f.as_raw_fd(), Mode::from_bits_truncate(0o644)).map_err(|e| RenderError::io(&path, e))
}

struct Writer<'l, 'a> {
    layers: &'l [Layer<'a>],
    /// The rootfs directory.
    root: OwnedFd,
    root_path: PathBuf,
    /// The last parent directory opened: (rootfs-relative path, descriptor).
    cache: Option<(String, OwnedFd)>,
    stats: RenderStats,
    warned_chown: bool,
}

fn split_parent(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("", path),
    }
}

fn timespec(e: &Entry) -> TimeSpec {
    TimeSpec::new(e.mtime, i64::from(e.mtime_nsec.min(999_999_999)))
}

impl Writer<'_, '_> {
    fn abs(&self, rel: &str) -> PathBuf {
        if rel.is_empty() {
            self.root_path.clone()
        } else {
            self.root_path.join(rel)
        }
    }

    fn unsafe_err(&self, li: usize, path: &str, reason: String) -> RenderError {
        RenderError::Unsafe {
            image: self.layers[li].image_id.clone(),
            path: path.to_string(),
            reason,
        }
    }

    /// Opens directory `dir` (rootfs-relative) component by component without following
    /// symlinks.
    fn open_dir(&self, li: usize, dir: &str) -> Result<OwnedFd, RenderError> {
        let mut cur = self
            .root
            .try_clone()
            .map_err(|e| RenderError::io(&self.root_path, e))?;
        if dir.is_empty() {
            return Ok(cur);
        }
        let mut walked = String::new();
        for comp in dir.split('/') {
            if !walked.is_empty() {
                walked.push('/');
            }
            walked.push_str(comp);
            cur = match open_at(cur.as_raw_fd(), comp, DIR_FLAGS) {
                Ok(fd) => fd,
                Err(Errno::ELOOP | Errno::ENOTDIR) => {
                    return Err(self.unsafe_err(
                        li,
                        dir,
                        format!("{walked:?} is not a directory on disk"),
                    ))
                }
                Err(e) => return Err(RenderError::io(self.abs(&walked), e)),
            };
        }
        Ok(cur)
    }

    /// The parent directory descriptor of `path` (valid until the next call) and its last
    /// component.
    fn parent<'p>(&mut self, li: usize, path: &'p str) -> Result<(RawFd, &'p str), RenderError> {
        let (dir, name) = split_parent(path);
        if dir.is_empty() {
            return Ok((self.root.as_raw_fd(), name));
        }
        let hit = matches!(&self.cache, Some((p, _)) if p == dir);
        if !hit {
            let fd = self.open_dir(li, dir)?;
            self.cache = Some((dir.to_string(), fd));
        }
        match &self.cache {
            Some((_, fd)) => Ok((fd.as_raw_fd(), name)),
            None => Err(RenderError::Usage("internal: no parent directory".into())),
        }
    }

    fn chown_result(&mut self, path: &str, r: nix::Result<()>) -> Result<(), RenderError> {
        match r {
            Ok(()) => Ok(()),
            Err(Errno::EPERM) if !nix::unistd::geteuid().is_root() => {
                if !self.warned_chown {
                    tracing::warn!("not running as root: ownership of rendered files not set");
                    self.warned_chown = true;
                }
                Ok(())
            }
            Err(e) => Err(RenderError::io(self.abs(path), e)),
        }
    }

    fn file(&mut self, li: usize, e: &Entry, src: &dyn ContentSource) -> Result<(), RenderError> {
        let (pfd, name) = self.parent(li, &e.path)?;
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = openat(Some(pfd), name, flags, Mode::from_bits_truncate(0o600))
            .map_err(|err| RenderError::io(self.abs(&e.path), err))?;
        // SAFETY: `openat` just returned this descriptor; nothing else owns or closes it.
        let file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });

        let invalid = |reason: String| RenderError::Invalid {
            image: self.layers[li].image_id.clone(),
            path: e.path.clone(),
            reason,
        };
        let expected = match &e.sparse {
            Some(segs) => segs.iter().map(|(_, len)| *len).sum::<u64>(),
            None => e.size,
        };
        let written = match (&e.file_id, &e.sparse) {
            (None, _) if expected == 0 => 0,
            (None, _) => return Err(invalid("regular file without content".into())),
            (Some(id), None) => {
                let mut out = Counting {
                    inner: BufWriter::with_capacity(256 * 1024, &file),
                    n: 0,
                };
                src.write_content(id, &mut out)?;
                out.inner
                    .flush()
                    .map_err(|err| RenderError::io(self.abs(&e.path), err))?;
                out.n
            }
            (Some(id), Some(segs)) => {
                for &(off, len) in segs {
                    if off.checked_add(len).is_none_or(|end| end > e.size) {
                        return Err(invalid(format!(
                            "sparse segment ({off}, {len}) beyond the size {}",
                            e.size
                        )));
                    }
                }
                let mut out = Counting {
                    inner: SparseWriter {
                        file: &file,
                        segs,
                        seg: 0,
                        done: 0,
                    },
                    n: 0,
                };
                src.write_content(id, &mut out)?;
                file.set_len(e.size)
                    .map_err(|err| RenderError::io(self.abs(&e.path), err))?;
                out.n
            }
        };
        if written != expected {
            return Err(invalid(format!(
                "content source wrote {written} bytes, expected {expected}"
            )));
        }
        self.stats.bytes += written;

        let r = fchown(
            file.as_raw_fd(),
            Some(Uid::from_raw(e.uid)),
            Some(Gid::from_raw(e.gid)),
        );
        self.chown_result(&e.path, r)?;
        self.xattrs_fd(li, e, file.as_raw_fd())?;
        fchmod(file.as_raw_fd(), Mode::from_bits_truncate(e.mode & 0o7777))
            .map_err(|err| RenderError::io(self.abs(&e.path), err))?;
        let t = timespec(e);
        futimens(file.as_raw_fd(), &t, &t)
            .map_err(|err| RenderError::io(self.abs(&e.path), err))?;
        self.stats.files += 1;
        Ok(())
    }

    /// Symlinks, devices and fifos.
    fn special(&mut self, li: usize, e: &Entry) -> Result<(), RenderError> {
        let (pfd, name) = self.parent(li, &e.path)?;
        let abs = self.abs(&e.path);
        let io = |err: Errno| RenderError::io(&abs, err);
        match e.kind {
            EntryKind::Symlink => {
                let target = e.link.as_deref().ok_or_else(|| RenderError::Invalid {
                    image: self.layers[li].image_id.clone(),
                    path: e.path.clone(),
                    reason: "symlink without a target".into(),
                })?;
                symlinkat(target, Some(pfd), name).map_err(io)?;
            }
            kind => {
                let sflag = match kind {
                    EntryKind::CharDevice => SFlag::S_IFCHR,
                    EntryKind::BlockDevice => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                let dev = makedev(u64::from(e.dev_major), u64::from(e.dev_minor));
                mknodat(Some(pfd), name, sflag, Mode::from_bits_truncate(0o600), dev)
                    .map_err(io)?;
            }
        }
        let r = fchownat(
            Some(pfd),
            name,
            Some(Uid::from_raw(e.uid)),
            Some(Gid::from_raw(e.gid)),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        );
        self.chown_result(&e.path, r)?;
        self.xattrs_path(li, e)?;
        if e.kind != EntryKind::Symlink {
            // glibc implements AT_SYMLINK_NOFOLLOW through O_PATH and /proc for non-symlinks.
            fchmodat(
                Some(pfd),
                name,
                Mode::from_bits_truncate(e.mode & 0o7777),
                FchmodatFlags::NoFollowSymlink,
            )
            .map_err(io)?;
        }
        let t = timespec(e);
        utimensat(Some(pfd), name, &t, &t, UtimensatFlags::NoFollowSymlink).map_err(io)?;
        self.stats.files += 1;
        Ok(())
    }

    fn hard_link(&mut self, li: usize, e: &Entry) -> Result<(), RenderError> {
        let target = e.link.as_deref().ok_or_else(|| RenderError::Invalid {
            image: self.layers[li].image_id.clone(),
            path: e.path.clone(),
            reason: "hard link without a target".into(),
        })?;
        let (tdir, tname) = split_parent(target);
        let tfd = self.open_dir(li, tdir)?;
        let st = fstatat(
            Some(tfd.as_raw_fd()),
            tname,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|err| RenderError::io(self.abs(target), err))?;
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
            return Err(self.unsafe_err(
                li,
                &e.path,
                format!("hard link target {target:?} is not a regular file"),
            ));
        }
        let (pfd, name) = self.parent(li, &e.path)?;
        linkat(
            Some(tfd.as_raw_fd()),
            tname,
            Some(pfd),
            name,
            nix::fcntl::AtFlags::empty(),
        )
        .map_err(|err| RenderError::io(self.abs(&e.path), err))?;
        self.stats.files += 1;
        Ok(())
    }

    fn finish_dir(&mut self, li: usize, e: &Entry) -> Result<(), RenderError> {
        let fd = if e.path.is_empty() {
            self.root
                .try_clone()
                .map_err(|err| RenderError::io(&self.root_path, err))?
        } else {
            let (pfd, name) = self.parent(li, &e.path)?;
            match open_at(pfd, name, DIR_FLAGS) {
                Ok(fd) => fd,
                Err(Errno::ELOOP | Errno::ENOTDIR) => {
                    return Err(self.unsafe_err(li, &e.path, "not a directory on disk".into()))
                }
                Err(err) => return Err(RenderError::io(self.abs(&e.path), err)),
            }
        };
        let raw = fd.as_raw_fd();
        let r = fchown(raw, Some(Uid::from_raw(e.uid)), Some(Gid::from_raw(e.gid)));
        self.chown_result(&e.path, r)?;
        self.xattrs_fd(li, e, raw)?;
        fchmod(raw, Mode::from_bits_truncate(e.mode & 0o7777))
            .map_err(|err| RenderError::io(self.abs(&e.path), err))?;
        let t = timespec(e);
        futimens(raw, &t, &t).map_err(|err| RenderError::io(self.abs(&e.path), err))?;
        self.stats.dirs += 1;
        Ok(())
    }

    fn xattr_name(&self, li: usize, e: &Entry, name: &str) -> Result<CString, RenderError> {
        CString::new(name).map_err(|_| RenderError::Invalid {
            image: self.layers[li].image_id.clone(),
            path: e.path.clone(),
            reason: format!("xattr name {name:?} contains NUL"),
        })
    }

    fn xattr_result(&self, e: &Entry, name: &str, rc: libc::c_int) -> Result<(), RenderError> {
        if rc == 0 {
            return Ok(());
        }
        match Errno::last() {
            Errno::EOPNOTSUPP => {
                tracing::warn!(path = %e.path, xattr = name, "xattrs not supported here: skipped");
                Ok(())
            }
            err => Err(RenderError::io(self.abs(&e.path), err)),
        }
    }

    fn xattrs_fd(&self, li: usize, e: &Entry, fd: RawFd) -> Result<(), RenderError> {
        for (name, value) in &e.xattrs {
            let cname = self.xattr_name(li, e, name)?;
            // SAFETY: `fd` is an open descriptor owned by the caller for the duration of the
            // call, `cname` is a NUL-terminated string and `value` a live buffer of the given
            // length; the kernel only reads them.
            let rc = unsafe {
                libc::fsetxattr(fd, cname.as_ptr(), value.as_ptr().cast(), value.len(), 0)
            };
            self.xattr_result(e, name, rc)?;
        }
        Ok(())
    }

    /// xattrs of symlinks, devices and fifos, which cannot be opened safely: by path with
    /// `lsetxattr`. Every directory on that path was created by this render (mode 0700 until
    /// the end) and checked not to be a symlink.
    fn xattrs_path(&self, li: usize, e: &Entry) -> Result<(), RenderError> {
        if e.xattrs.is_empty() {
            return Ok(());
        }
        let abs = self.abs(&e.path);
        let cpath = CString::new(abs.as_os_str().as_encoded_bytes()).map_err(|_| {
            RenderError::io(
                &abs,
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "path contains NUL"),
            )
        })?;
        for (name, value) in &e.xattrs {
            let cname = self.xattr_name(li, e, name)?;
            // SAFETY: `cpath` and `cname` are NUL-terminated strings and `value` a live buffer
            // of the given length; the kernel only reads them.
            let rc = unsafe {
                libc::lsetxattr(
                    cpath.as_ptr(),
                    cname.as_ptr(),
                    value.as_ptr().cast(),
                    value.len(),
                    0,
                )
            };
            self.xattr_result(e, name, rc)?;
        }
        Ok(())
    }
}

/// Spreads the dense content of a sparse file over its data segments, leaving holes unwritten.
struct SparseWriter<'f, 's> {
    file: &'f File,
    segs: &'s [(u64, u64)],
    /// Current segment and bytes already written into it.
    seg: usize,
    done: u64,
}

impl Write for SparseWriter<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while let Some(&(off, len)) = self.segs.get(self.seg) {
            if self.done < len {
                let room = usize::try_from(len - self.done).unwrap_or(usize::MAX);
                let n = buf.len().min(room);
                let written = self.file.write_at(&buf[..n], off + self.done)?;
                self.done += written as u64;
                return Ok(written);
            }
            self.seg += 1;
            self.done = 0;
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "more content than the sparse map describes",
        ))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Counts the bytes actually accepted, rather than trusting the content source's own count.
struct Counting<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
