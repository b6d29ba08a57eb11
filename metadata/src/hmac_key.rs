//! The host's HMAC key for the identity endpoint (`/pod/hmac/sign` and `/pod/hmac/verify`).
//!
//! One key per rkt data directory, shared by every pod's metadata service, so that a pod can
//! verify a signature another pod made. It lives in `DIR/metadata/hmac.key` (64 random bytes,
//! mode 0600 in a 0700 directory), is created on first use by writing a private temporary file
//! and hard-linking it into place (two concurrent first users agree on one key), and is never
//! shown to pods.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha512;

use crate::error::{MetadataError, Result};
use crate::uuid::PodUuid;

/// Length of the key in bytes (the output size of SHA-512).
pub const KEY_LEN: usize = 64;

/// Sub-directory of the rkt data directory holding the key.
pub const KEY_DIR: &str = "metadata";

/// File name of the key.
pub const KEY_FILE: &str = "hmac.key";

type HmacSha512 = Hmac<Sha512>;

/// The outcome of checking a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// The signature was made by a pod of this host with that UUID over that content.
    Valid,
    /// Well-formed, but not a signature of that content by that pod.
    Invalid,
    /// Not base64.
    Malformed,
}

/// The host's HMAC key.
#[derive(Clone)]
pub struct HmacKeyStore {
    key: Arc<[u8; KEY_LEN]>,
    path: PathBuf,
}

impl std::fmt::Debug for HmacKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HmacKeyStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl HmacKeyStore {
    /// Opens the key of the rkt data directory `rkt_dir`, creating it on first use.
    ///
    /// Refuses a key file that is a symlink, not a regular file, of the wrong size, or that
    /// users other than its owner can read or write: such a key cannot be trusted to prove
    /// pod identities.
    pub fn open(rkt_dir: &Path) -> Result<HmacKeyStore> {
        let dir = rkt_dir.join(KEY_DIR);
        match DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(source) => return Err(MetadataError::KeyIo { path: dir, source }),
        }
        let path = dir.join(KEY_FILE);
        loop {
            match read_key(&path) {
                Ok(key) => return Ok(Self::from_parts(key, path)),
                Err(MetadataError::KeyIo { source, .. })
                    if source.kind() == ErrorKind::NotFound =>
                {
                    if let Some(key) = create_key(&dir, &path)? {
                        tracing::info!(path = %path.display(), "created the metadata service HMAC key");
                        return Ok(Self::from_parts(key, path));
                    }
                    // Another process created it first: read theirs.
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A key store holding `key`, stored nowhere (for fuzzing and tests).
    #[doc(hidden)]
    pub fn from_key(key: [u8; KEY_LEN]) -> HmacKeyStore {
        Self::from_parts(key, PathBuf::new())
    }

    fn from_parts(key: [u8; KEY_LEN], path: PathBuf) -> HmacKeyStore {
        HmacKeyStore {
            key: Arc::new(key),
            path,
        }
    }

    /// Where the key is stored.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn mac(&self, uuid: &PodUuid, content: &[u8]) -> HmacSha512 {
        // HMAC accepts keys of any length; new_from_slice cannot fail for HMAC.
        let mut mac = match HmacSha512::new_from_slice(&self.key[..]) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        mac.update(uuid.as_bytes());
        mac.update(content);
        mac
    }

    /// Signs `content` for the pod `uuid`: base64 (standard alphabet, padded) of
    /// HMAC-SHA512(key, the 16 bytes of the UUID ‖ content), as rkt did.
    pub fn sign(&self, uuid: &PodUuid, content: &[u8]) -> String {
        let tag = self.mac(uuid, content).finalize().into_bytes();
        base64::engine::general_purpose::STANDARD.encode(tag)
    }

    /// Checks a base64 `signature` of `content` by the pod `uuid`, in constant time.
    /// Surrounding white space (a trailing newline from `echo`) is ignored.
    pub fn verify(&self, uuid: &PodUuid, content: &[u8], signature: &str) -> Verification {
        let sig = match base64::engine::general_purpose::STANDARD.decode(signature.trim()) {
            Ok(s) => s,
            Err(_) => return Verification::Malformed,
        };
        match self.mac(uuid, content).verify_slice(&sig) {
            Ok(()) => Verification::Valid,
            Err(_) => Verification::Invalid,
        }
    }
}

fn key_io(path: &Path) -> impl FnOnce(std::io::Error) -> MetadataError + '_ {
    move |source| MetadataError::KeyIo {
        path: path.to_path_buf(),
        source,
    }
}

fn bad_key(path: &Path, problem: String) -> MetadataError {
    MetadataError::BadKey {
        path: path.to_path_buf(),
        problem,
    }
}

fn read_key(path: &Path) -> Result<[u8; KEY_LEN]> {
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                bad_key(
                    path,
                    "is a symbolic link; remove it (pods' signatures made with it become invalid)"
                        .into(),
                )
            } else {
                key_io(path)(e)
            }
        })?;
    let meta = file.metadata().map_err(key_io(path))?;
    if !meta.is_file() {
        return Err(bad_key(path, "is not a regular file".into()));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(bad_key(
            path,
            format!(
                "mode {:04o} lets other users read or change it; run chmod 600 on it, or remove it to make a new key",
                meta.mode() & 0o7777
            ),
        ));
    }
    if meta.len() != KEY_LEN as u64 {
        return Err(bad_key(
            path,
            format!(
                "is {} bytes long, not {KEY_LEN}; remove it to make a new key (signatures made with the old one become invalid)",
                meta.len()
            ),
        ));
    }
    let mut key = [0u8; KEY_LEN];
    file.read_exact(&mut key).map_err(key_io(path))?;
    Ok(key)
}

/// Writes a new random key to a private temporary file and links it to `path`.
/// Returns `None` when another process linked its key first.
fn create_key(dir: &Path, path: &Path) -> Result<Option<[u8; KEY_LEN]>> {
    let mut key = [0u8; KEY_LEN];
    rand::rngs::OsRng
        .try_fill_bytes(&mut key)
        .map_err(|e| MetadataError::Random(e.to_string()))?;
    let tmp = dir.join(format!(
        ".{KEY_FILE}.{}.{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let result = write_and_link(&tmp, path, &key);
    let _ = fs::remove_file(&tmp);
    match result {
        Ok(()) => {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(key_io(dir))?;
            Ok(Some(key))
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(None),
        Err(e) => Err(key_io(path)(e)),
    }
}

fn write_and_link(tmp: &Path, path: &Path, key: &[u8]) -> std::io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(tmp)?;
    f.write_all(key)?;
    f.sync_all()?;
    fs::hard_link(tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn uuid() -> PodUuid {
        PodUuid::parse("6733c3da-5c8f-4b7d-9b49-9a5f4b6b0c1e").unwrap()
    }

    #[test]
    fn creates_a_private_key_once_and_reuses_it() {
        let dir = tempfile::tempdir().unwrap();
        let a = HmacKeyStore::open(dir.path()).unwrap();
        let meta = fs::metadata(a.path()).unwrap();
        assert_eq!(meta.len(), KEY_LEN as u64);
        assert_eq!(meta.mode() & 0o777, 0o600);
        let dmeta = fs::metadata(dir.path().join(KEY_DIR)).unwrap();
        assert_eq!(dmeta.mode() & 0o777, 0o700);
        let b = HmacKeyStore::open(dir.path()).unwrap();
        assert_eq!(a.key, b.key);
        // No temporary files are left behind.
        let names: Vec<_> = fs::read_dir(dir.path().join(KEY_DIR)).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn concurrent_first_users_agree_on_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let d = dir.path().to_path_buf();
                std::thread::spawn(move || HmacKeyStore::open(&d).unwrap())
            })
            .collect();
        let stores: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(stores.iter().all(|s| s.key == stores[0].key));
    }

    #[test]
    fn different_directories_have_different_keys() {
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (a, b) = (
            HmacKeyStore::open(d1.path()).unwrap(),
            HmacKeyStore::open(d2.path()).unwrap(),
        );
        assert_ne!(a.key, b.key);
        let sig = a.sign(&uuid(), b"x");
        assert_eq!(b.verify(&uuid(), b"x", &sig), Verification::Invalid);
    }

    #[test]
    fn sign_and_verify() {
        let dir = tempfile::tempdir().unwrap();
        let k = HmacKeyStore::open(dir.path()).unwrap();
        let sig = k.sign(&uuid(), b"Old MacDonald Had A Farm");
        // 64 bytes of HMAC-SHA512 in padded base64.
        assert_eq!(sig.len(), 88);
        assert_eq!(
            k.verify(&uuid(), b"Old MacDonald Had A Farm", &sig),
            Verification::Valid
        );
        assert_eq!(
            k.verify(&uuid(), b"Old MacDonald Had A Farm", &format!("{sig}\n")),
            Verification::Valid
        );
        assert_eq!(
            k.verify(&uuid(), b"Old MacDonald Had A Farn", &sig),
            Verification::Invalid
        );
        let other = PodUuid::parse("6733c3da-5c8f-4b7d-9b49-9a5f4b6b0c1f").unwrap();
        assert_eq!(
            k.verify(&other, b"Old MacDonald Had A Farm", &sig),
            Verification::Invalid
        );
        assert_eq!(
            k.verify(&uuid(), b"Old MacDonald Had A Farm", "not base64!"),
            Verification::Malformed
        );
        assert_eq!(
            k.verify(&uuid(), b"Old MacDonald Had A Farm", "AAAA"),
            Verification::Invalid
        );
    }

    #[test]
    fn signature_is_hmac_sha512_over_uuid_bytes_and_content() {
        let dir = tempfile::tempdir().unwrap();
        let k = HmacKeyStore::open(dir.path()).unwrap();
        let key = fs::read(k.path()).unwrap();
        let mut mac = HmacSha512::new_from_slice(&key).unwrap();
        mac.update(&hex::decode("6733c3da5c8f4b7d9b499a5f4b6b0c1e").unwrap());
        mac.update(b"hello");
        let want = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(k.sign(&uuid(), b"hello"), want);
    }

    #[test]
    fn refuses_unsafe_or_corrupt_keys() {
        let dir = tempfile::tempdir().unwrap();
        let k = HmacKeyStore::open(dir.path()).unwrap();
        let path = k.path().to_path_buf();

        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let e = HmacKeyStore::open(dir.path()).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");

        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&path, b"short").unwrap();
        let e = HmacKeyStore::open(dir.path()).unwrap_err().to_string();
        assert!(e.contains("5 bytes long"), "{e}");

        fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", &path).unwrap();
        let e = HmacKeyStore::open(dir.path()).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
    }

    #[test]
    fn debug_does_not_show_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let k = HmacKeyStore::open(dir.path()).unwrap();
        let shown = format!("{k:?}");
        assert!(!shown.contains("key:"), "{shown}");
    }
}
