//! Mount helpers: reading `/proc/self/mountinfo` and unmounting everything below a directory.

use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::error::{Context, Result};

/// Mount points listed in a mountinfo text, in order.
pub fn parse_mountinfo(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape(m)))
        .collect()
}

/// Undo mountinfo's octal escapes (`\040` for a space, …).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = oct
                    .iter()
                    .fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mount points of this process at or below `dir`, deepest first.
pub fn mounts_below(dir: &Path) -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .ctx(|| "reading /proc/self/mountinfo".into())?;
    let mut found: Vec<PathBuf> = parse_mountinfo(&text)
        .into_iter()
        .filter(|m| m.starts_with(dir))
        .collect();
    found.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    found.dedup();
    Ok(found)
}

/// Detach every mount at or below `dir`, deepest first (repeating for stacked mounts).
pub fn unmount_below(dir: &Path) -> Result<()> {
    for _ in 0..16 {
        let found = mounts_below(dir)?;
        if found.is_empty() {
            return Ok(());
        }
        for m in found {
            match umount2(&m, MntFlags::MNT_DETACH) {
                Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
                Err(e) => return Err(e).ctx(|| format!("unmounting {}", m.display())),
            }
        }
    }
    Ok(())
}

/// Make every mount of this mount namespace a slave: mounts made here stay here, while the
/// host's later mounts still propagate in.
pub(crate) fn make_root_slave() -> Result<()> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .ctx(|| "making / a slave mount".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mountinfo() {
        let text = "22 1 0:21 / /proc rw,nosuid shared:5 - proc proc rw\n\
                    90 22 0:50 / /var/lib/rkt/pods/run/a\\040b/rootfs rw - overlay overlay rw\n";
        assert_eq!(
            parse_mountinfo(text),
            vec![
                PathBuf::from("/proc"),
                PathBuf::from("/var/lib/rkt/pods/run/a b/rootfs")
            ]
        );
        assert_eq!(unescape("a\\134b"), "a\\b");
        assert_eq!(unescape("end\\"), "end\\");
    }
}
