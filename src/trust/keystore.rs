//! rkt's keystore: armored public keys in files named by their lowercase fingerprint,
//! under `<config>/trustedkeys/root.d/` (trusted for every image) and
//! `<config>/trustedkeys/prefix.d/<prefix>/` (trusted for names below `<prefix>`), in the
//! system configuration directory and the local one. An empty local file masks the system
//! key of the same fingerprint in the same place.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use sequoia_openpgp::parse::Parse;
use sequoia_openpgp::serialize::SerializeInto;
use sequoia_openpgp::Cert;

#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    #[error("reading trusted key {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("trusted key file {path} is not an OpenPGP public key: {reason}")]
    BadKey { path: PathBuf, reason: String },
    #[error("trusted key file {path} holds key {actual}, but is named after another fingerprint; rename or remove it")]
    NameMismatch { path: PathBuf, actual: String },
    #[error("invalid prefix {prefix:?}: {reason}")]
    BadPrefix { prefix: String, reason: String },
    #[error("writing trusted key to {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Where a key is trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustScope {
    /// Every image (`rkt trust --root`).
    Root,
    /// Images whose name is at or below this path prefix.
    Prefix(String),
}

/// The system and local keystore directories.
#[derive(Debug, Clone)]
pub struct Keystore {
    system: PathBuf,
    local: PathBuf,
}

impl Keystore {
    /// `system_config` and `local_config` are rkt's `--system-config` and `--local-config`.
    pub fn new(system_config: &Path, local_config: &Path) -> Keystore {
        Keystore {
            system: system_config.join("trustedkeys"),
            local: local_config.join("trustedkeys"),
        }
    }

    /// The keys that may sign an image called `name`: root keys plus the keys of every
    /// prefix that is a path prefix of `name` (`example.com/a` covers `example.com/a` and
    /// `example.com/a/b`, not `example.com/ab`).
    pub fn keyring_for(&self, name: &str) -> Result<Vec<Cert>, KeystoreError> {
        let mut dirs = vec![PathBuf::from("root.d")];
        let parts: Vec<&str> = name.split('/').collect();
        for n in 1..=parts.len() {
            let rel = parts[..n].join("/");
            if check_prefix(&rel).is_ok() {
                dirs.push(Path::new("prefix.d").join(rel));
            }
        }
        let mut certs = Vec::new();
        for rel in dirs {
            certs.extend(self.load_dir(&rel)?.into_values());
        }
        Ok(certs)
    }

    /// Keys in one relative directory: system keys, then local ones; an empty local file
    /// removes the system key of that fingerprint.
    fn load_dir(&self, rel: &Path) -> Result<BTreeMap<String, Cert>, KeystoreError> {
        let mut keys = BTreeMap::new();
        for base in [&self.system, &self.local] {
            for (fp, path) in key_files(&base.join(rel))? {
                let bytes = std::fs::read(&path).map_err(|source| KeystoreError::Read {
                    path: path.clone(),
                    source,
                })?;
                if bytes.iter().all(u8::is_ascii_whitespace) {
                    keys.remove(&fp);
                    continue;
                }
                let cert = Cert::from_bytes(&bytes).map_err(|e| KeystoreError::BadKey {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                let actual = fingerprint(&cert);
                if actual != fp {
                    return Err(KeystoreError::NameMismatch { path, actual });
                }
                keys.insert(fp, cert);
            }
        }
        Ok(keys)
    }

    /// Stores `cert` (public parts only, armored) in the local keystore; returns its path.
    pub fn trust(&self, cert: &Cert, scope: &TrustScope) -> Result<PathBuf, KeystoreError> {
        let dir = match scope {
            TrustScope::Root => self.local.join("root.d"),
            TrustScope::Prefix(p) => {
                check_prefix(p)?;
                self.local.join("prefix.d").join(p)
            }
        };
        let path = dir.join(fingerprint(cert));
        let werr = |source| KeystoreError::Write {
            path: path.clone(),
            source,
        };
        let armored = cert
            .armored()
            .to_vec()
            .map_err(|e| werr(std::io::Error::other(e.to_string())))?;
        std::fs::create_dir_all(&dir).map_err(werr)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(werr)?;
        tmp.write_all(&armored).map_err(werr)?;
        tmp.as_file().sync_all().map_err(werr)?;
        set_mode(tmp.path(), 0o644).map_err(werr)?;
        tmp.persist(&path).map_err(|e| werr(e.error))?;
        Ok(path)
    }
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// The lowercase hex fingerprint rkt names key files by.
pub fn fingerprint(cert: &Cert) -> String {
    cert.fingerprint().to_hex().to_lowercase()
}

/// Regular files in `dir` whose names look like fingerprints; a missing dir has none.
fn key_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, KeystoreError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(KeystoreError::Read {
                path: dir.into(),
                source,
            })
        }
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|source| KeystoreError::Read {
            path: dir.into(),
            source,
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_fp = name.len() >= 32 && name.bytes().all(|b| b.is_ascii_hexdigit());
        if is_fp && entry.path().is_file() {
            out.push((name.to_lowercase(), entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// A prefix is a relative path of AC-name characters, without empty, `.` or `..` parts.
pub fn check_prefix(prefix: &str) -> Result<(), KeystoreError> {
    let bad = |reason: &str| KeystoreError::BadPrefix {
        prefix: prefix.into(),
        reason: reason.into(),
    };
    if prefix.contains("://") {
        return Err(bad(
            "a prefix is an image name prefix like example.com/app, not a URL",
        ));
    }
    let chars_ok = prefix
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._~/".contains(&b));
    if !chars_ok {
        return Err(bad(
            "only lower-case letters, digits and -._~/ may appear in an image name",
        ));
    }
    if prefix
        .split('/')
        .any(|p| p.is_empty() || p == "." || p == "..")
    {
        return Err(bad(
            "empty, \".\" and \"..\" path components are not allowed",
        ));
    }
    Ok(())
}
