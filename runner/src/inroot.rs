//! Paths resolved inside an app's root filesystem: symlinks are followed as if the rootfs were
//! `/` (openat2 `RESOLVE_IN_ROOT`), so an image can never point a mount at the host.

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

use crate::error::{Context, Result, RunnerError};

fn how(flags: OFlag) -> OpenHow {
    OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS)
}

/// Open `path` below the directory `root` (an `O_PATH` descriptor), resolving symlinks and
/// `..` inside `root`.
pub fn open_at(root: &OwnedFd, path: &str, flags: OFlag) -> nix::Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    let rel = if path.trim_start_matches('/').is_empty() {
        "."
    } else {
        path.trim_start_matches('/')
    };
    // With RESOLVE_IN_ROOT, a `..` step fails with EAGAIN when any rename or mount happened on
    // the system during the lookup (the kernel cannot prove the walk stayed inside the root);
    // openat2(2) says to retry. Other pods mounting at the same time make that common.
    let mut attempts = 0;
    let fd = loop {
        match openat2(root.as_raw_fd(), rel, how(flags)) {
            Err(Errno::EAGAIN) if attempts < OPENAT2_RETRIES => attempts += 1,
            other => break other?,
        }
    };
    // SAFETY: openat2 returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// How often [`open_at`] retries a lookup the kernel answered with EAGAIN.
const OPENAT2_RETRIES: u32 = 64;

/// Open the directory `root` itself as an `O_PATH` descriptor.
pub fn open_root(root: &Path) -> Result<OwnedFd> {
    let fd = nix::fcntl::open(
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("opening {}", root.display()))?;
    // SAFETY: open returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Open `path` inside `root` as an `O_PATH` descriptor, creating missing components as
/// directories (mode 0755) — or, if `leaf_is_file`, the last one as an empty file. A dangling
/// symlink on the way is followed inside `root` and its target created there.
pub fn ensure_in_root(root: &OwnedFd, path: &str, leaf_is_file: bool) -> Result<OwnedFd> {
    let mut comps = split(path);
    let mut hops = 0;
    'walk: loop {
        for i in 1..=comps.len() {
            let prefix = comps[..i].join("/");
            match open_at(root, &prefix, OFlag::O_PATH) {
                Ok(_) => continue,
                Err(Errno::ENOENT) => {}
                Err(e) => return Err(e).ctx(|| format!("resolving {path} in the app's rootfs")),
            }
            let parent = open_at(
                root,
                &comps[..i - 1].join("/"),
                OFlag::O_PATH | OFlag::O_DIRECTORY,
            )
            .ctx(|| format!("resolving {path} in the app's rootfs"))?;
            let leaf_file = leaf_is_file && i == comps.len();
            match create(&parent, &comps[i - 1], leaf_file) {
                Ok(()) => {}
                Err(Errno::EEXIST) => {
                    // A dangling symlink: continue from its target, inside the root.
                    hops += 1;
                    if hops > 40 {
                        return Err(RunnerError::Invalid(format!(
                            "resolving {path} in the app's rootfs: too many levels of symlinks"
                        )));
                    }
                    let target = readlink_at(&parent, &comps[i - 1])
                        .ctx(|| format!("reading symlink /{prefix} in the app's rootfs"))?;
                    let mut next = if target.starts_with('/') {
                        Vec::new()
                    } else {
                        comps[..i - 1].to_vec()
                    };
                    next.extend(split(&target));
                    next.extend(comps[i..].iter().cloned());
                    comps = next;
                    continue 'walk;
                }
                Err(e) => return Err(e).ctx(|| format!("creating /{prefix} in the app's rootfs")),
            }
        }
        break;
    }
    open_at(root, &comps.join("/"), OFlag::O_PATH)
        .ctx(|| format!("opening {path} in the app's rootfs"))
}

fn split(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(str::to_string)
        .collect()
}

fn create(parent: &OwnedFd, name: &str, file: bool) -> nix::Result<()> {
    use std::os::fd::AsRawFd;
    if file {
        // O_PATH descriptors cannot be used with openat's O_CREAT; use mknodat.
        nix::sys::stat::mknodat(
            Some(parent.as_raw_fd()),
            name,
            nix::sys::stat::SFlag::S_IFREG,
            Mode::from_bits_truncate(0o644),
            0,
        )
    } else {
        nix::sys::stat::mkdirat(
            Some(parent.as_raw_fd()),
            name,
            Mode::from_bits_truncate(0o755),
        )
    }
}

fn readlink_at(parent: &OwnedFd, name: &str) -> nix::Result<String> {
    use std::os::fd::AsRawFd;
    let t = nix::fcntl::readlinkat(Some(parent.as_raw_fd()), name)?;
    t.into_string().map_err(|_| Errno::EINVAL)
}

/// The `/proc/self/fd/N` path of a descriptor, to mount onto exactly what it names.
pub fn fd_path(fd: &OwnedFd) -> String {
    use std::os::fd::AsRawFd;
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_stay_inside() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../..", root.join("etc/up")).unwrap();
        let rfd = open_root(&root).unwrap();
        ensure_in_root(&rfd, "/abs/sub", false).unwrap();
        ensure_in_root(&rfd, "/etc/up/x/y", false).unwrap();
        ensure_in_root(&rfd, "/file", true).unwrap();
        std::os::unix::fs::symlink("/host/dangling", root.join("dangle")).unwrap();
        ensure_in_root(&rfd, "/dangle/z", false).unwrap();
        assert!(
            root.join("host/dangling/z").is_dir(),
            "dangling links resolve inside"
        );
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        assert!(ensure_in_root(&rfd, "/loop/a", false).is_err());
        assert!(
            !outside.join("sub").exists(),
            "escaped through an absolute symlink"
        );
        assert!(root
            .join(outside.strip_prefix("/").unwrap())
            .join("sub")
            .is_dir());
        assert!(root.join("x/y").is_dir(), "'..' must stop at the root");
        assert!(root.join("file").is_file());
    }
}
