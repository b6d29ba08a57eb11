//! Finding and removing lazy mounts whose server is gone (a supervisor killed with SIGKILL):
//! the kernel aborts a FUSE connection when its server's `/dev/fuse` descriptor closes, so
//! every access fails with ENOTCONN instead of hanging, but the mount itself stays until it is
//! unmounted. `rkt gc` calls [`unmount_under`] on a dead pod's directory before removing it.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Lazy mounts are `fuse.<SUBTYPE>` in `/proc/self/mountinfo`.
pub const SUBTYPE: &str = "rkt-lazy";

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    pub mountpoint: PathBuf,
    pub fstype: String,
    /// `major:minor` of the mount's device (for FUSE, the connection number is the minor).
    pub dev_minor: u32,
}

/// Mounts of this mount namespace, in mount order.
pub fn mounts() -> Result<Vec<MountInfo>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| Error::Io {
        context: "reading /proc/self/mountinfo".into(),
        error: e,
    })?;
    Ok(text.lines().filter_map(parse_line).collect())
}

fn parse_line(line: &str) -> Option<MountInfo> {
    let fields: Vec<&str> = line.split(' ').collect();
    let dev = fields.get(2)?;
    let mountpoint = unescape(fields.get(4)?);
    let sep = fields.iter().position(|f| *f == "-")?;
    let fstype = fields.get(sep + 1)?.to_string();
    let dev_minor = dev.split(':').nth(1)?.parse().ok()?;
    Some(MountInfo {
        mountpoint: PathBuf::from(mountpoint),
        fstype,
        dev_minor,
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `path` is a lazy tree's mountpoint.
pub fn is_lazy_mount(path: &Path) -> Result<bool> {
    let fstype = format!("fuse.{SUBTYPE}");
    Ok(mounts()?
        .iter()
        .any(|m| m.mountpoint == path && m.fstype == fstype))
}

/// Detach the mount at `path` (MNT_DETACH: it disappears now, and is released when its last
/// user goes).
pub fn detach(path: &Path) -> Result<()> {
    nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH).map_err(|e| Error::Io {
        context: format!("unmounting {}", path.display()),
        error: e.into(),
    })
}

/// Abort the FUSE connection of a lazy mount (its server hung, not dead): every waiting and
/// later request fails with ENOTCONN. Needs fusectl at /sys/fs/fuse/connections (mounted on
/// demand).
pub fn abort_connection(dev_minor: u32) -> Result<()> {
    let conns = Path::new("/sys/fs/fuse/connections");
    if !conns.join(dev_minor.to_string()).exists() {
        let _ = nix::mount::mount(
            Some("fusectl"),
            conns,
            Some("fusectl"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        );
    }
    let abort = conns.join(dev_minor.to_string()).join("abort");
    std::fs::write(&abort, b"1").map_err(|e| Error::Io {
        context: format!("writing {}", abort.display()),
        error: e,
    })
}

/// Abort and detach every mount at or below `dir` (deepest first: an overlayfs over a lazy
/// tree goes before the tree). Returns the mountpoints removed. For `rkt gc` on a pod whose
/// supervisor is dead: never call it on a running pod.
pub fn unmount_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let fstype = format!("fuse.{SUBTYPE}");
    let mut found: Vec<MountInfo> = mounts()?
        .into_iter()
        .filter(|m| m.mountpoint.starts_with(dir))
        .collect();
    found.reverse();
    let mut removed = Vec::new();
    for m in found {
        if m.fstype == fstype {
            if let Err(e) = abort_connection(m.dev_minor) {
                tracing::debug!(error = %e, "could not abort the FUSE connection");
            }
        }
        detach(&m.mountpoint)?;
        tracing::info!(mountpoint = %m.mountpoint.display(), fstype = %m.fstype,
            "removed a stale mount");
        removed.push(m.mountpoint);
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mountinfo_lines() {
        let line = "36 35 0:52 / /var/lib/rkt/pods/run/a\\040b/lower rw,nosuid - fuse.rkt-lazy rkt-lazy:ab ro";
        let m = parse_line(line).unwrap();
        assert_eq!(
            m.mountpoint,
            PathBuf::from("/var/lib/rkt/pods/run/a b/lower")
        );
        assert_eq!(m.fstype, "fuse.rkt-lazy");
        assert_eq!(m.dev_minor, 52);
        assert!(parse_line("garbage").is_none());
    }
}
