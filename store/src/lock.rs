//! Advisory file locks (flock) that die with their process, so a `kill -9` never leaves a
//! store locked.

use std::fs::{File, OpenOptions};
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

use crate::error::{Result, StoreError};

/// A held flock; released on drop.
pub struct FileLock {
    _lock: Flock<File>,
}

fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| StoreError::io(format!("opening lock file {}", path.display()), e))
}

fn lock(path: &Path, arg: FlockArg) -> Result<Option<FileLock>> {
    let file = open_lock_file(path)?;
    match Flock::lock(file, arg) {
        Ok(lock) => Ok(Some(FileLock { _lock: lock })),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, errno)) => Err(StoreError::io(
            format!("locking {}", path.display()),
            std::io::Error::from(errno),
        )),
    }
}

/// Wait for a shared lock on `path`.
pub fn shared(path: &Path) -> Result<FileLock> {
    blocking(path, FlockArg::LockShared)
}

/// Wait for an exclusive lock on `path`.
pub fn exclusive(path: &Path) -> Result<FileLock> {
    blocking(path, FlockArg::LockExclusive)
}

fn blocking(path: &Path, arg: FlockArg) -> Result<FileLock> {
    lock(path, arg)?.ok_or_else(|| {
        StoreError::io(
            format!("locking {}", path.display()),
            std::io::ErrorKind::WouldBlock.into(),
        )
    })
}
