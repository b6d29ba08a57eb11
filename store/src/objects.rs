//! The object cache: whole files materialised from their chunks, `objects/xx/<hex file id>`,
//! for pods to read at native speed (the lazy filesystem hands them to the kernel as FUSE
//! passthrough backing files; rendered trees hard-link to them).
//!
//! * An object is written to a temporary file in its directory, every chunk checked against its
//!   BLAKE3 id and the whole file against the file id, fsynced, made read-only (0444) and renamed
//!   into place: readers never see a partial object, and concurrent materialisers of the same
//!   file simply race to an identical rename.
//! * **Holds**: whoever serves an object to a running pod keeps it open with a shared `flock`
//!   ([`ObjectHandle`]). Eviction takes the exclusive lock without waiting and skips objects it
//!   cannot lock, so nothing a running pod uses is removed under it. Objects linked from a
//!   rendered tree (link count above 1) are held by that tree and are never evicted.
//! * **Bound**: `objectCacheMaxBytes` in `DIR/config.json` (default 10 GiB). [`Store::trim_objects`]
//!   evicts the least recently used unheld objects until the cache fits; `rkt image gc` runs it
//!   after removing objects whose content is no longer in any image.
//! * **Opened before they are durable**: [`Store::open_object`] (a pod opening a file of its
//!   lazy tree) hands out an object as soon as its verified bytes are written, and publishes it
//!   (fsync, read-only, rename into place) on a background thread holding the gc lock shared:
//!   the pod reads from the page cache while the disk writes, instead of waiting for the write
//!   first (a fifth of a big file's first read). Meanwhile it waits under a name other servers
//!   look for (`pending_path`), so pods of one image still share one copy; dropping the
//!   [`Store`] waits for the publications; a crash leaves only a temporary file, which gc
//!   removes and which no later boot takes for an object.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::fcntl::{Flock, FlockArg};
use serde::Deserialize;

use crate::content::Reader;
use crate::entry::FileId;
use crate::error::{IoContext, Result, StoreError};
use crate::{lock, Store};

/// Name of the store's configuration file, in the store directory.
pub const CONFIG_FILE: &str = "config.json";

/// Default bound of the object cache: 10 GiB.
pub const DEFAULT_OBJECT_CACHE_MAX_BYTES: u64 = 10 << 30;

/// How often [`Store::open_object`] retries when eviction removes an object between its
/// materialisation and its opening.
const OPEN_ATTEMPTS: usize = 4;

/// Store settings read from `DIR/config.json` (every key optional):
/// `{"objectCacheMaxBytes": 10737418240}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreConfig {
    /// Upper bound, in bytes of disk use, of `objects/`; least recently used objects that no
    /// running pod holds are evicted beyond it.
    #[serde(default = "default_max")]
    pub object_cache_max_bytes: u64,
}

fn default_max() -> u64 {
    DEFAULT_OBJECT_CACHE_MAX_BYTES
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            object_cache_max_bytes: DEFAULT_OBJECT_CACHE_MAX_BYTES,
        }
    }
}

/// An object opened for a running pod: the file, held with a shared `flock` so eviction
/// leaves it alone until this handle is dropped.
#[derive(Debug)]
pub struct ObjectHandle {
    file: Flock<File>,
    path: PathBuf,
    len: u64,
    written: bool,
}

impl ObjectHandle {
    /// The open object (read-only).
    pub fn file(&self) -> &File {
        &self.file
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether this open materialised the object and handed it out before it was durable
    /// (rather than finding it). On a machine without a boot id, where an object is published
    /// before it is handed out, the open that wrote it finds it too.
    pub fn was_written(&self) -> bool {
        self.written
    }
}

/// What a trim or sweep of the object cache did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ObjectsReport {
    /// Objects removed (evicted, or of content no image has any more).
    pub removed: u64,
    pub bytes_freed: u64,
    /// Objects that would have been removed but are held by a running pod.
    pub held: u64,
    /// Disk use of `objects/` afterwards.
    pub bytes_after: u64,
}

/// One object found on disk.
struct Found {
    path: PathBuf,
    /// The content id the name starts with (None for unparsable names).
    file_id: Option<FileId>,
    nlink: u64,
    bytes: u64,
    ctime: (i64, i64),
}

impl Store {
    /// `DIR/objects`.
    pub fn objects_dir(&self) -> PathBuf {
        self.dir.join("objects")
    }

    /// Where the object of `file` lives (whether or not it exists).
    pub fn object_path(&self, file: &FileId) -> PathBuf {
        let hex = hex::encode(file);
        self.objects_dir().join(&hex[..2]).join(hex)
    }

    /// The store's settings from `DIR/config.json` (defaults when the file is absent).
    pub fn config(&self) -> Result<StoreConfig> {
        let path = self.dir.join(CONFIG_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StoreError::Io {
                context: format!("reading store configuration {}", path.display()),
                error: std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{e}; expected e.g. {{\"objectCacheMaxBytes\": 10737418240}}"),
                ),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(StoreConfig::default()),
            Err(e) => Err(StoreError::io(format!("reading {}", path.display()), e)),
        }
    }

    /// Materialise the whole content `file` as a read-only object, verified chunk by chunk and
    /// as a whole, and return its path. An existing object is reused (and marked recently used).
    ///
    /// The returned path may be evicted at any time unless it is opened with
    /// [`Store::open_object`] instead.
    pub fn materialize(&self, file: &FileId) -> Result<PathBuf> {
        let path = self.object_path(file);
        if path.exists() {
            mark_used(&path);
            return Ok(path);
        }
        let _writers = lock::shared(&self.gc_lock_path())?;
        if path.exists() {
            mark_used(&path);
            return Ok(path);
        }
        let tmp = self.object_temp_path(file, &path)?;
        let result = self
            .write_object(file, &tmp, true)
            .and_then(|f| publish(&f, &tmp, &path));
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result?;
        tracing::debug!(object = %path.display(), "materialised");
        Ok(path)
    }

    /// A new temporary name beside `path`, the object of `file` (its directory created).
    fn object_temp_path(&self, file: &FileId, path: &Path) -> Result<PathBuf> {
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        self.create_objects_subdir(&dir)?;
        Ok(dir.join(format!(
            ".{}.tmp-{}-{:016x}",
            hex::encode(file),
            std::process::id(),
            rand::random::<u64>()
        )))
    }

    pub(crate) fn create_objects_subdir(&self, dir: &Path) -> Result<()> {
        let objects = self.objects_dir();
        if !objects.exists() {
            std::fs::create_dir_all(&objects).ctx(|| format!("creating {}", objects.display()))?;
            // Objects are shared by every pod: only root may reach them.
            std::fs::set_permissions(&objects, std::fs::Permissions::from_mode(0o700))
                .ctx(|| format!("restricting {}", objects.display()))?;
        }
        std::fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))
    }

    /// Write `file`'s verified content to the new file `tmp`, starting its writeback as it goes
    /// if `writeback` (the caller waits for it to be durable next).
    fn write_object(&self, file: &FileId, tmp: &Path, writeback: bool) -> Result<File> {
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(tmp)
            .ctx(|| format!("creating {}", tmp.display()))?;
        let sink: Box<dyn Write + '_> = match writeback {
            true => Box::new(crate::pack::WritebackFile::new(&f)),
            false => Box::new(&f),
        };
        let mut w = BufWriter::with_capacity(1 << 20, sink);
        Reader::new(self)
            .dropping_pack_pages()
            .write_file(file, None, &mut w)?;
        w.flush().ctx(|| format!("writing {}", tmp.display()))?;
        drop(w);
        Ok(f)
    }

    /// Open `file`'s object, materialising it if needed, and hold it against eviction until
    /// the handle is dropped. A new object is handed out before it is durable (see the module
    /// documentation).
    pub fn open_object(&self, file: &FileId) -> Result<ObjectHandle> {
        for _ in 0..OPEN_ATTEMPTS {
            let path = self.object_path(file);
            let candidate = if path.exists() {
                mark_used(&path);
                path.clone()
            } else if let Some(pending) = pending_path(&path).filter(|p| p.exists()) {
                pending
            } else {
                match self.write_and_open(file, &path)? {
                    Some(mut handle) => {
                        handle.written = true;
                        return Ok(handle);
                    }
                    None => continue,
                }
            };
            if let Some(handle) = hold(&candidate, &path)? {
                return Ok(handle);
            }
        }
        Err(StoreError::Io {
            context: format!("opening the object of {}", hex::encode(file)),
            error: std::io::Error::other(
                "it was evicted repeatedly while being opened; raise objectCacheMaxBytes",
            ),
        })
    }

    /// Write `file`'s object, open it and publish it in the background; None if another
    /// writer got there first (open theirs).
    fn write_and_open(&self, file: &FileId, path: &Path) -> Result<Option<ObjectHandle>> {
        let Some(pending) = pending_path(path) else {
            // No boot id to tell this boot's pending objects by: publish before handing out.
            self.materialize(file)?;
            return Ok(None);
        };
        // Held until the object is in place: gc removes temporary objects.
        let gc = lock::shared(&self.gc_lock_path())?;
        if path.exists() || pending.exists() {
            return Ok(None);
        }
        let tmp = self.object_temp_path(file, path)?;
        let written = self.write_object(file, &tmp, false).and_then(|writer| {
            // Complete and verified: now other servers may open it instead of writing theirs.
            // A link, not a rename: it fails if one of them was first.
            match std::fs::hard_link(&tmp, &pending) {
                Ok(()) => Ok(Some(writer)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(None),
                Err(e) => Err(StoreError::io(format!("linking {}", pending.display()), e)),
            }
        });
        let _ = std::fs::remove_file(&tmp);
        let Some(writer) = written? else {
            return Ok(None);
        };
        tracing::debug!(object = %path.display(), "materialised; publishing in the background");
        self.publishing
            .start(writer, pending.clone(), path.to_path_buf(), gc);
        // Should the publication win the race, the caller finds the object in place.
        hold(&pending, path)
    }

    /// Wait until every object [`Store::open_object`] wrote is durable and in place.
    pub fn wait_for_publications(&self) {
        self.publishing.wait();
    }

    /// Evict least recently used objects that nothing holds until the cache fits its bound.
    pub fn trim_objects(&self) -> Result<ObjectsReport> {
        let max = self.config()?.object_cache_max_bytes;
        let mut found = self.list_objects(false)?;
        let mut report = ObjectsReport {
            bytes_after: found.iter().map(|o| o.bytes).sum(),
            ..Default::default()
        };
        if report.bytes_after <= max {
            return Ok(report);
        }
        found.retain(|o| o.nlink == 1);
        found.sort_by_key(|o| o.ctime);
        for o in found {
            if report.bytes_after <= max {
                break;
            }
            evict_into(&o, &mut report)?;
        }
        if report.bytes_after > max {
            tracing::info!(
                bytes = report.bytes_after,
                max,
                "object cache above its bound: the rest is held by running pods or rendered trees"
            );
        }
        Ok(report)
    }

    /// gc's part (run holding the gc lock exclusively, after stale trees are gone): remove
    /// leftovers of interrupted materialisations, objects whose content no image has any more
    /// (unless held), then trim to the bound.
    pub(crate) fn sweep_objects(&self) -> Result<ObjectsReport> {
        let mut report = ObjectsReport::default();
        for o in self.list_objects(true)? {
            let temp = o
                .path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if temp {
                remove_counted(&o, &mut report)?;
                continue;
            }
            if o.nlink > 1 {
                continue;
            }
            let live = match o.file_id {
                Some(id) => crate::db::exists(
                    &self.conn,
                    "SELECT 1 FROM files WHERE id = ?1",
                    id.as_slice(),
                )
                .map_err(|e| StoreError::Corrupt(format!("index query: {e}")))?,
                None => false,
            };
            if !live {
                evict_into(&o, &mut report)?;
            }
        }
        let trimmed = self.trim_objects()?;
        report.removed += trimmed.removed;
        report.bytes_freed += trimmed.bytes_freed;
        report.held += trimmed.held;
        report.bytes_after = trimmed.bytes_after;
        Ok(report)
    }

    fn list_objects(&self, with_temp: bool) -> Result<Vec<Found>> {
        let objects = self.objects_dir();
        let Ok(subdirs) = std::fs::read_dir(&objects) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for sub in subdirs.flatten() {
            let Ok(listing) = std::fs::read_dir(sub.path()) else {
                continue;
            };
            for item in listing.flatten() {
                let name = item.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') && !with_temp {
                    continue;
                }
                let Ok(m) = item.metadata() else { continue };
                if !m.is_file() {
                    continue;
                }
                out.push(Found {
                    path: item.path(),
                    file_id: parse_object_name(&name),
                    nlink: m.nlink(),
                    bytes: m.blocks() * 512,
                    ctime: (m.ctime(), m.ctime_nsec()),
                });
            }
        }
        Ok(out)
    }
}

/// Make the written object `tmp` durable and read-only, then put it in place at `path`.
fn publish(f: &File, tmp: &Path, path: &Path) -> Result<()> {
    f.sync_all().ctx(|| format!("syncing {}", tmp.display()))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o444))
        .ctx(|| format!("making {} read-only", tmp.display()))?;
    std::fs::rename(tmp, path).ctx(|| format!("publishing {}", path.display()))
}

/// Open `candidate` (the object at `path`, or its temporary file) with a shared lock; None if
/// it was evicted or renamed between the open and the lock (the caller looks again).
fn hold(candidate: &Path, path: &Path) -> Result<Option<ObjectHandle>> {
    let f = match File::open(candidate) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(StoreError::io(
                format!("opening {}", candidate.display()),
                e,
            ))
        }
    };
    let held = Flock::lock(f, FlockArg::LockShared).map_err(|(_, errno)| {
        StoreError::io(format!("locking {}", candidate.display()), errno.into())
    })?;
    let fd_meta = held
        .metadata()
        .ctx(|| format!("inspecting {}", candidate.display()))?;
    Ok(std::fs::symlink_metadata(candidate)
        .is_ok_and(|m| m.ino() == fd_meta.ino() && m.dev() == fd_meta.dev())
        .then(|| ObjectHandle {
            file: held,
            path: path.to_path_buf(),
            len: fd_meta.len(),
            written: false,
        }))
}

/// Where an object [`Store::open_object`] wrote waits, complete and verified but not yet
/// durable, to be put in place at `path`: `.<name>.pending-<boot id>`. Other servers open it
/// instead of writing their own copy. The boot id keeps what a crash of the machine left half
/// on disk from ever being taken for one (gc removes it). None where the boot id is unknown.
fn pending_path(path: &Path) -> Option<PathBuf> {
    static BOOT_ID: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let boot = BOOT_ID.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty() && !s.contains('/'))
    });
    let name = path.file_name()?.to_string_lossy();
    Some(path.with_file_name(format!(".{name}.pending-{}", boot.as_deref()?)))
}

/// The background publications of objects [`Store::open_object`] handed out.
#[derive(Default)]
pub(crate) struct Publishing {
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Publishing {
    /// Publish `pending` as `path` on a thread of its own (here, if none can be started),
    /// keeping `gc` (the gc lock, shared) until it is done.
    fn start(&self, writer: File, pending: PathBuf, path: PathBuf, gc: lock::FileLock) {
        let job = Publication {
            writer,
            pending,
            path,
            _gc: gc,
        };
        let (tx, rx) = std::sync::mpsc::channel::<Publication>();
        let spawned = std::thread::Builder::new()
            .name("rkt-publish".into())
            .spawn(move || rx.recv().map(Publication::run).unwrap_or(()));
        match spawned {
            Ok(handle) => {
                lock_ignoring_poison(&self.threads).push(handle);
                // The thread is waiting for it: the receiver cannot be gone.
                if let Err(unsent) = tx.send(job) {
                    unsent.0.run();
                }
            }
            Err(_) => job.run(),
        }
    }

    pub(crate) fn wait(&self) {
        let threads = std::mem::take(&mut *lock_ignoring_poison(&self.threads));
        for t in threads {
            let _ = t.join();
        }
    }
}

/// One object to publish, with what publishing it holds.
struct Publication {
    writer: File,
    pending: PathBuf,
    path: PathBuf,
    _gc: lock::FileLock,
}

impl Publication {
    fn run(self) {
        if let Err(e) = publish(&self.writer, &self.pending, &self.path) {
            // Pods keep reading their open copy; the next open writes the object again.
            tracing::warn!(object = %self.path.display(), error = %e, "could not publish an object");
            let _ = std::fs::remove_file(&self.pending);
        }
    }
}

fn lock_ignoring_poison<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The content id an object name starts with: `<64 hex>` or `<64 hex>.<variant>`.
fn parse_object_name(name: &str) -> Option<FileId> {
    let hex = name.get(..64)?;
    if name.len() > 64 && !name[64..].starts_with('.') {
        return None;
    }
    let mut id = [0u8; 32];
    hex::decode_to_slice(hex, &mut id).ok()?;
    Some(id)
}

/// Record a use (the change time orders eviction); best effort.
fn mark_used(path: &Path) {
    if let Ok(f) = File::open(path) {
        let now = std::time::SystemTime::now();
        let _ = f.set_times(std::fs::FileTimes::new().set_modified(now));
    }
}

fn remove_counted(o: &Found, report: &mut ObjectsReport) -> Result<()> {
    match std::fs::remove_file(&o.path) {
        Ok(()) => {
            report.removed += 1;
            report.bytes_freed += o.bytes;
            report.bytes_after = report.bytes_after.saturating_sub(o.bytes);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io(format!("removing {}", o.path.display()), e)),
    }
}

/// Remove an object unless a running pod holds it (shared flock) or a tree links it.
fn evict_into(o: &Found, report: &mut ObjectsReport) -> Result<()> {
    let f = match File::open(&o.path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::io(format!("opening {}", o.path.display()), e)),
    };
    let locked = match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
            report.held += 1;
            return Ok(());
        }
        Err((_, errno)) => {
            return Err(StoreError::io(
                format!("locking {}", o.path.display()),
                errno.into(),
            ))
        }
    };
    let fd_meta = locked
        .metadata()
        .ctx(|| format!("inspecting {}", o.path.display()))?;
    let same = std::fs::symlink_metadata(&o.path)
        .is_ok_and(|m| m.ino() == fd_meta.ino() && m.dev() == fd_meta.dev());
    if same && fd_meta.nlink() == 1 {
        tracing::debug!(object = %o.path.display(), "evicting");
        remove_counted(o, report)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_parse() {
        let hex = "ab".repeat(32);
        assert_eq!(parse_object_name(&hex), Some([0xab; 32]));
        assert_eq!(parse_object_name(&format!("{hex}.0123")), Some([0xab; 32]));
        assert_eq!(parse_object_name(&format!("{hex}x")), None);
        assert_eq!(parse_object_name("abc"), None);
    }

    #[test]
    fn config_defaults_and_rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.config().unwrap(), StoreConfig::default());
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            r#"{"objectCacheMaxBytes": 42}"#,
        )
        .unwrap();
        assert_eq!(store.config().unwrap().object_cache_max_bytes, 42);
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            r#"{"objectCacheMaxBytes": "x"}"#,
        )
        .unwrap();
        let err = store.config().unwrap_err().to_string();
        assert!(err.contains("config.json"), "{err}");
    }
}
