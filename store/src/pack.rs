//! Append-only pack files: the compressed bytes of chunks, one after another.
//!
//! A pack starts with an 8-byte magic; each chunk is stored as is (zstd frame or raw bytes).
//! Where a chunk lives (pack, offset, length) is recorded only in the index, so a pack that
//! no committed transaction names is garbage that `gc` removes.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{IoContext, Result, StoreError};

pub const PACK_MAGIC: &[u8; 8] = b"RKTPACK1";

/// Writes one new pack file.
pub struct PackWriter {
    path: PathBuf,
    out: BufWriter<File>,
    offset: u64,
    /// Bytes before this offset have been handed to the kernel for writeback.
    flushed: u64,
}

/// Start writeback every this many bytes, so the final fsync finds little left to write.
const WRITEBACK_EVERY: u64 = 8 << 20;

impl PackWriter {
    /// Create `path` (which must not exist) and write the magic.
    pub fn create(path: PathBuf) -> Result<Self> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .ctx(|| format!("creating pack {}", path.display()))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(PACK_MAGIC)
            .ctx(|| format!("writing pack {}", path.display()))?;
        Ok(PackWriter {
            path,
            out,
            offset: PACK_MAGIC.len() as u64,
            flushed: 0,
        })
    }

    /// Append bytes; returns their offset.
    pub fn append(&mut self, bytes: &[u8]) -> Result<u64> {
        let at = self.offset;
        self.out
            .write_all(bytes)
            .ctx(|| format!("writing pack {}", self.path.display()))?;
        self.offset += bytes.len() as u64;
        if self.offset - self.flushed >= WRITEBACK_EVERY {
            self.start_writeback()?;
        }
        Ok(at)
    }

    /// Push buffered bytes to the kernel and ask it to start writing them out now, without
    /// waiting: the disk works while the import goes on.
    fn start_writeback(&mut self) -> Result<()> {
        self.out
            .flush()
            .ctx(|| format!("writing pack {}", self.path.display()))?;
        start_writeback(self.out.get_ref(), self.flushed, self.offset);
        self.flushed = self.offset;
        Ok(())
    }

    /// Bytes written so far, magic included.
    pub fn size(&self) -> u64 {
        self.offset
    }

    /// Flush and fsync the pack: after this its bytes survive a crash.
    pub fn finish(self) -> Result<PathBuf> {
        let path = self.path.clone();
        let file = self.out.into_inner().map_err(|e| {
            StoreError::io(format!("writing pack {}", path.display()), e.into_error())
        })?;
        file.sync_all()
            .ctx(|| format!("syncing pack {}", path.display()))?;
        Ok(path)
    }
}

/// Ask the kernel to start writing bytes `from..to` of `file` to disk, without waiting; a
/// failure only means the final fsync does all the work.
fn start_writeback(file: &File, from: u64, to: u64) {
    let (from, len) = (from as i64, to.saturating_sub(from) as i64);
    // SAFETY: `file` is an open file for the whole call; sync_file_range only reads its
    // arguments and touches no memory of ours.
    let rc =
        unsafe { libc::sync_file_range(file.as_raw_fd(), from, len, libc::SYNC_FILE_RANGE_WRITE) };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "sync_file_range failed; fsync will do");
    }
}

/// A file being written that is going to be fsynced: writeback starts every
/// [`WRITEBACK_EVERY`] bytes, so the disk works while the writer goes on and the fsync finds
/// little left to write. Buffer it (writes go straight to the file).
pub(crate) struct WritebackFile<'a> {
    file: &'a File,
    written: u64,
    flushed: u64,
}

impl<'a> WritebackFile<'a> {
    pub(crate) fn new(file: &'a File) -> Self {
        WritebackFile {
            file,
            written: 0,
            flushed: 0,
        }
    }
}

impl Write for WritebackFile<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = (&mut &*self.file).write(buf)?;
        self.written += n as u64;
        if self.written - self.flushed >= WRITEBACK_EVERY {
            start_writeback(self.file, self.flushed, self.written);
            self.flushed = self.written;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Reads chunk bytes from packs, keeping files open.
pub struct PackReader {
    dir: PathBuf,
    open: Mutex<HashMap<String, std::sync::Arc<File>>>,
}

impl PackReader {
    pub fn new(dir: PathBuf) -> Self {
        PackReader {
            dir,
            open: Mutex::new(HashMap::new()),
        }
    }

    fn file(&self, pack: &str) -> Result<std::sync::Arc<File>> {
        let mut open = self
            .open
            .lock()
            .map_err(|_| StoreError::Corrupt("pack reader lock poisoned".into()))?;
        if let Some(f) = open.get(pack) {
            return Ok(f.clone());
        }
        let path = self.dir.join(pack);
        let f = std::sync::Arc::new(
            File::open(&path).ctx(|| format!("opening pack {}", path.display()))?,
        );
        open.insert(pack.to_string(), f.clone());
        Ok(f)
    }

    /// Read `len` bytes at `offset` of `pack`.
    pub fn read(&self, pack: &str, offset: u64, len: usize) -> Result<Vec<u8>> {
        let file = self.file(pack)?;
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, offset).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                StoreError::Corrupt(format!(
                    "pack {pack} is shorter than the index says (wanted {len} bytes at {offset})"
                ))
            } else {
                StoreError::io(format!("reading pack {pack}"), e)
            }
        })?;
        Ok(buf)
    }
}

impl PackReader {
    /// Advise the kernel that `len` bytes at `offset` of `pack` (already read) are not needed
    /// again soon (`POSIX_FADV_DONTNEED`): clean pages leave the page cache. Best effort.
    pub fn drop_pages(&self, pack: &str, offset: u64, len: u64) {
        use std::os::fd::AsRawFd;
        let Ok(file) = self.file(pack) else { return };
        let (Ok(off), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
            return;
        };
        // SAFETY: posix_fadvise only reads its integer arguments; the descriptor is open for
        // the duration of the call (`file` holds it).
        let rc =
            unsafe { libc::posix_fadvise(file.as_raw_fd(), off, len, libc::POSIX_FADV_DONTNEED) };
        if rc != 0 {
            tracing::debug!(pack, rc, "posix_fadvise(DONTNEED) on a pack failed");
        }
    }
}

/// fsync a directory so that entries created or renamed in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx(|| format!("syncing directory {}", dir.display()))
}
