//! ACI layout rules applied while importing: where entries may live, how their paths are
//! normalised, and the checks that make a hostile archive fail before anything is stored.

use std::collections::HashMap;

use crate::entry::{Entry, EntryKind};
use crate::error::{Result, StoreError};

/// Where a tar entry belongs in an ACI.
#[derive(Debug, PartialEq, Eq)]
pub enum Place {
    Manifest,
    /// Rootfs-relative path ("" for `rootfs` itself).
    Rootfs(String),
}

fn invalid(msg: String) -> StoreError {
    StoreError::InvalidImage(msg)
}

/// Normalise an archive path: no absolute paths, no `..`, `.` and empty components dropped.
pub fn normalize(raw: &[u8]) -> Result<String> {
    let text = std::str::from_utf8(raw).map_err(|_| {
        invalid(format!(
            "entry {:?} has a name that is not UTF-8",
            String::from_utf8_lossy(raw)
        ))
    })?;
    if text.starts_with('/') {
        return Err(invalid(format!(
            "entry {text:?} has an absolute path; ACI entries must be relative (manifest, rootfs/...)"
        )));
    }
    clean_components(text).ok_or_else(|| {
        invalid(format!(
            "entry {text:?} contains '..'; entries may not climb out of the image"
        ))
    })
}

/// `text` with empty and `.` components dropped, or None if any component is `..`.
pub(crate) fn clean_components(text: &str) -> Option<String> {
    let mut parts = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// Classify an archive path.
pub fn place(raw: &[u8]) -> Result<Place> {
    let path = normalize(raw)?;
    if path == "manifest" {
        return Ok(Place::Manifest);
    }
    if path == "rootfs" {
        return Ok(Place::Rootfs(String::new()));
    }
    match path.strip_prefix("rootfs/") {
        Some(rest) => Ok(Place::Rootfs(rest.to_string())),
        None => Err(invalid(format!(
            "entry {path:?} is outside rootfs/; an ACI holds only `manifest` and `rootfs/`"
        ))),
    }
}

/// Resolve a hard link's archive target to a rootfs path.
pub fn hardlink_target(raw: &[u8], entry: &str) -> Result<String> {
    match place(raw) {
        Ok(Place::Rootfs(p)) if !p.is_empty() => Ok(p),
        _ => Err(invalid(format!(
            "hard link rootfs/{entry} points to {:?}, which is not a file inside rootfs/",
            String::from_utf8_lossy(raw)
        ))),
    }
}

/// Whole-image checks once every entry is known: every ancestor of an entry that the image
/// itself defines must be a directory (so no symlink or file can redirect a path), and hard
/// links must point to regular files of the image.
pub fn check_tree(entries: &[Entry]) -> Result<()> {
    let kinds: HashMap<&str, EntryKind> =
        entries.iter().map(|e| (e.path.as_str(), e.kind)).collect();
    for e in entries {
        let mut ancestor = e.path.as_str();
        while let Some(pos) = ancestor.rfind('/') {
            ancestor = &ancestor[..pos];
            if let Some(kind) = kinds.get(ancestor) {
                if *kind != EntryKind::Dir {
                    return Err(invalid(format!(
                        "entry rootfs/{} lies under rootfs/{ancestor}, which is a {:?} in the image, not a directory",
                        e.path, kind
                    )));
                }
            }
        }
        if e.kind == EntryKind::HardLink {
            let target = e.link.as_deref().unwrap_or_default();
            if !matches!(
                kinds.get(target),
                Some(EntryKind::File) | Some(EntryKind::HardLink)
            ) {
                return Err(invalid(format!(
                    "hard link rootfs/{} points to rootfs/{target}, which is not a regular file earlier in the archive",
                    e.path
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places() {
        assert_eq!(place(b"manifest").unwrap(), Place::Manifest);
        assert_eq!(place(b"./manifest").unwrap(), Place::Manifest);
        assert_eq!(place(b"rootfs/").unwrap(), Place::Rootfs(String::new()));
        assert_eq!(
            place(b"./rootfs/a//b/./c").unwrap(),
            Place::Rootfs("a/b/c".into())
        );
        for bad in [
            &b"../x"[..],
            b"/abs",
            b"rootfs/../../x",
            b"etc/passwd",
            b"rootfsX/a",
            b"rootfs/a/../b",
        ] {
            assert!(
                place(bad).is_err(),
                "{:?} accepted",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
