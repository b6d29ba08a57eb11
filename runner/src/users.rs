//! Users and groups of an app: numbers, names from the app's `/etc/passwd` and `/etc/group`,
//! or a path whose owner is used. Resolved after `pivot_root`, so files are the image's.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::error::{Result, RunnerError};

/// Resolve `user` (number, name or absolute path) to a UID, reading `passwd` for names.
pub fn resolve_user(user: &str, passwd: &str) -> Result<u32> {
    resolve(user, passwd, "user", "/etc/passwd", |m| m.uid())
}

/// Resolve `group` (number, name or absolute path) to a GID, reading `group` for names.
pub fn resolve_group(group: &str, groups: &str) -> Result<u32> {
    resolve(group, groups, "group", "/etc/group", |m| m.gid())
}

fn resolve(
    spec: &str,
    db: &str,
    what: &str,
    file: &str,
    owner: fn(&std::fs::Metadata) -> u32,
) -> Result<u32> {
    if spec.is_empty() {
        return Err(RunnerError::Invalid(format!("no {what} given")));
    }
    if let Ok(n) = spec.parse::<u32>() {
        return Ok(n);
    }
    if spec.starts_with('/') {
        return std::fs::metadata(Path::new(spec))
            .map(|m| owner(&m))
            .map_err(|e| {
                RunnerError::Invalid(format!(
                    "{what} {spec}: cannot stat the path in the image: {e}"
                ))
            });
    }
    lookup(db, spec).ok_or_else(|| {
        RunnerError::Invalid(format!("{what} {spec:?} is not in the image's {file}"))
    })
}

/// The ID (third field) of entry `name` in a passwd/group style file.
pub fn lookup(db: &str, name: &str) -> Option<u32> {
    db.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 3 && f[0] == name)
        .and_then(|f| f[2].trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/sh\n# c\nuser:x:1000:1000::/home/user:/bin/sh\n";

    #[test]
    fn numbers_names_paths() {
        assert_eq!(resolve_user("0", PASSWD).unwrap(), 0);
        assert_eq!(resolve_user("4242", PASSWD).unwrap(), 4242);
        assert_eq!(resolve_user("user", PASSWD).unwrap(), 1000);
        assert_eq!(resolve_group("user", "user:x:1000:\n").unwrap(), 1000);
        let e = resolve_user("nobody", PASSWD).unwrap_err().to_string();
        assert!(
            e.contains("\"nobody\" is not in the image's /etc/passwd"),
            "{e}"
        );
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("owned");
        std::fs::write(&f, b"").unwrap();
        std::os::unix::fs::chown(&f, Some(1234), Some(4321)).unwrap();
        assert_eq!(resolve_user(f.to_str().unwrap(), PASSWD).unwrap(), 1234);
        assert_eq!(resolve_group(f.to_str().unwrap(), "").unwrap(), 4321);
    }
}
