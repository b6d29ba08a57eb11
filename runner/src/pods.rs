//! Pods on disk: `DIR/pods/{embryo,prepare,prepared,run,exited-garbage,garbage}/<uuid>/`.
//!
//! A pod's state is the directory it is in plus whether its directory is locked (flock on the
//! directory itself), as in rkt: states move by atomic `rename(2)` between those directories,
//! and locks die with their process, so a killed `rkt` never leaves a pod that `rkt gc` cannot
//! classify and clean.

use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use rkt_store::schema::PodManifest;

use crate::error::{Context, Result, RunnerError};

pub const EMBRYO: &str = "embryo";
pub const PREPARE: &str = "prepare";
pub const PREPARED: &str = "prepared";
pub const RUN: &str = "run";
pub const EXITED_GARBAGE: &str = "exited-garbage";
pub const GARBAGE: &str = "garbage";
const ALL_DIRS: [&str; 6] = [EMBRYO, PREPARE, PREPARED, RUN, EXITED_GARBAGE, GARBAGE];

/// Names of files in a pod directory. Times are not files of their own: a pod was created when
/// its manifest (the last file `prepare` writes) was written and started when the supervisor
/// recorded its init's PID (each file is an inode to allocate on every pod start).
pub const MANIFEST_FILE: &str = "pod";
/// Host PID of the pod's init.
pub const PID_FILE: &str = "pid";
pub const OPTIONS_FILE: &str = "options.json";

/// A pod's state, as `rkt list` and `rkt status` print it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodState {
    Embryo,
    Preparing,
    AbortedPrepare,
    Prepared,
    Running,
    Exited,
    Deleting,
    ExitedDeleting,
    ExitedGarbage,
    Garbage,
}

impl PodState {
    pub fn as_str(self) -> &'static str {
        match self {
            PodState::Embryo => "embryo",
            PodState::Preparing => "preparing",
            PodState::AbortedPrepare => "aborted prepare",
            PodState::Prepared => "prepared",
            PodState::Running => "running",
            PodState::Exited => "exited",
            PodState::Deleting => "deleting",
            PodState::ExitedDeleting => "exited deleting",
            PodState::ExitedGarbage => "exited garbage",
            PodState::Garbage => "garbage",
        }
    }

    /// Whether the pod has run and stopped.
    pub fn is_exited(self) -> bool {
        matches!(
            self,
            PodState::Exited | PodState::ExitedGarbage | PodState::ExitedDeleting
        )
    }
}

impl std::fmt::Display for PodState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The pods of one data directory.
#[derive(Debug, Clone)]
pub struct Pods {
    root: PathBuf,
}

/// One pod directory, possibly locked by this process.
#[derive(Debug)]
pub struct Pod {
    pub uuid: String,
    /// The state directory the pod was found in (`run`, `prepared`, …).
    pub state_dir: &'static str,
    root: PathBuf,
    lock: Option<Flock<File>>,
}

/// What `Pods::gc` did.
#[derive(Debug, Default)]
pub struct GcReport {
    pub marked: Vec<String>,
    pub removed: Vec<String>,
    pub failed: Vec<(String, String)>,
}

impl Pods {
    /// The pods under `data_dir/pods`.
    pub fn new(data_dir: &Path) -> Pods {
        Pods {
            root: data_dir.join("pods"),
        }
    }

    fn ensure_dirs(&self) -> Result<()> {
        for d in ALL_DIRS {
            let p = self.root.join(d);
            std::fs::create_dir_all(&p).ctx(|| format!("creating {}", p.display()))?;
        }
        Ok(())
    }

    /// Create a new pod: an embryo directory, locked, renamed to `prepare/`.
    pub fn create(&self) -> Result<Pod> {
        let uuid = new_uuid()?;
        let embryo = self.root.join(EMBRYO).join(&uuid);
        // The state directories exist but for the first pod of a data directory: create them
        // only then (six mkdir and stat calls less on every other pod's start).
        let created = match std::fs::create_dir(&embryo) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.ensure_dirs()?;
                std::fs::create_dir(&embryo)
            }
            r => r,
        };
        created.ctx(|| format!("creating {}", embryo.display()))?;
        let mut pod = Pod {
            uuid,
            state_dir: EMBRYO,
            root: self.root.clone(),
            lock: None,
        };
        if !pod.try_lock(FlockArg::LockExclusiveNonblock)? {
            return Err(RunnerError::Invalid(format!(
                "new pod {} is locked by another process",
                pod.uuid
            )));
        }
        if pod.move_to(PREPARE).is_err() {
            // Only `embryo/` was there: make the others, then try again.
            self.ensure_dirs()?;
            pod.move_to(PREPARE)?;
        }
        Ok(pod)
    }

    /// Every pod, in every state directory.
    pub fn all(&self) -> Result<Vec<Pod>> {
        let mut pods = Vec::new();
        for d in ALL_DIRS {
            pods.extend(self.in_dir(d)?);
        }
        Ok(pods)
    }

    fn in_dir(&self, d: &'static str) -> Result<Vec<Pod>> {
        let dir = self.root.join(d);
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).ctx(|| format!("listing {}", dir.display())),
        };
        let mut pods = Vec::new();
        for entry in rd {
            let entry = entry.ctx(|| format!("listing {}", dir.display()))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if is_uuid(&name) {
                pods.push(Pod {
                    uuid: name,
                    state_dir: d,
                    root: self.root.clone(),
                    lock: None,
                });
            }
        }
        pods.sort_by(|a, b| a.uuid.cmp(&b.uuid));
        Ok(pods)
    }

    /// The pod whose UUID is or starts with `prefix`.
    pub fn find(&self, prefix: &str) -> Result<Pod> {
        let p = prefix.trim().to_ascii_lowercase();
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            return Err(RunnerError::Invalid(format!(
                "{prefix:?} is not a pod UUID (or a prefix of one)"
            )));
        }
        let mut matches: Vec<Pod> = self
            .all()?
            .into_iter()
            .filter(|pod| pod.uuid.starts_with(&p))
            .collect();
        match matches.len() {
            0 => Err(RunnerError::PodNotFound(prefix.into())),
            1 => Ok(matches.remove(0)),
            _ if matches.iter().all(|m| m.uuid == matches[0].uuid) => {
                // Seen twice while it was being renamed: take the newest location.
                let uuid = matches[0].uuid.clone();
                self.all()?
                    .into_iter()
                    .find(|pod| pod.uuid == uuid)
                    .ok_or(RunnerError::PodNotFound(prefix.into()))
            }
            _ => Err(RunnerError::AmbiguousPod(prefix.into())),
        }
    }

    /// IDs of the images that pods which may still run or be inspected use: those in
    /// `prepare/`, `prepared/`, `run/` and `exited-garbage/` (as rkt's image gc).
    pub fn image_ids_in_use(&self) -> Result<HashSet<String>> {
        let mut ids = HashSet::new();
        for d in [PREPARE, PREPARED, RUN, EXITED_GARBAGE] {
            for pod in self.in_dir(d)? {
                if let Ok(m) = pod.manifest() {
                    ids.extend(
                        m.apps
                            .iter()
                            .filter_map(|a| a.image.id.as_ref().map(|i| i.as_str().to_string())),
                    );
                }
                // A pod still preparing has written its image IDs before its manifest.
                if let Ok(text) = std::fs::read_to_string(pod.dir().join("images")) {
                    ids.extend(text.lines().map(str::to_string));
                }
            }
        }
        Ok(ids)
    }

    /// Exclusive while image gc computes what pods use; shared while a pod is prepared.
    pub fn prepare_lock(&self, exclusive: bool) -> Result<Flock<File>> {
        let locks = self.root.parent().unwrap_or(&self.root).join("locks");
        let path = locks.join("prepare.lock");
        let open = || {
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
        };
        let f = match open() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&locks).ctx(|| format!("creating {}", locks.display()))?;
                open()
            }
            r => r,
        }
        .ctx(|| format!("opening {}", path.display()))?;
        let arg = if exclusive {
            FlockArg::LockExclusive
        } else {
            FlockArg::LockShared
        };
        Flock::lock(f, arg)
            .map_err(|(_, e)| e)
            .ctx(|| format!("locking {}", path.display()))
    }

    /// rkt's pod gc: mark exited pods and abandoned preparations as garbage, then (unless
    /// `mark_only`) remove garbage, and exited garbage marked more than `grace` ago.
    pub fn gc(
        &self,
        grace: Duration,
        expire_prepared: Duration,
        mark_only: bool,
    ) -> Result<GcReport> {
        self.ensure_dirs()?;
        let mut report = GcReport::default();
        for mut pod in self.in_dir(RUN)? {
            if pod.try_lock(FlockArg::LockExclusiveNonblock)? {
                pod.move_to(EXITED_GARBAGE)?;
                report.marked.push(pod.uuid.clone());
                // Its supervisor died without releasing the network (kill -9): release it now,
                // not when the grace period ends.
                if let Err(e) = rkt_net::PodNetwork::teardown_from_dir(&pod.dir()) {
                    report.failed.push((pod.uuid.clone(), e.to_string()));
                }
            }
        }
        for mut pod in self.in_dir(PREPARE)? {
            if pod.try_lock(FlockArg::LockExclusiveNonblock)? {
                pod.move_to(GARBAGE)?;
                report.marked.push(pod.uuid.clone());
            }
        }
        for mut pod in self.in_dir(PREPARED)? {
            if pod.age()? > expire_prepared && pod.try_lock(FlockArg::LockExclusiveNonblock)? {
                pod.move_to(GARBAGE)?;
                report.marked.push(pod.uuid.clone());
            }
        }
        if mark_only {
            return Ok(report);
        }
        let mut doomed = self.in_dir(GARBAGE)?;
        doomed.extend(self.in_dir(EMBRYO)?);
        for pod in self.in_dir(EXITED_GARBAGE)? {
            if pod.age()? >= grace {
                doomed.push(pod);
            }
        }
        for mut pod in doomed {
            if !pod.try_lock(FlockArg::LockExclusiveNonblock)? {
                continue;
            }
            match pod.destroy() {
                Ok(()) => report.removed.push(pod.uuid.clone()),
                Err(e) => report.failed.push((pod.uuid.clone(), e.to_string())),
            }
        }
        Ok(report)
    }

    /// `rkt rm`: remove a pod that is not running or being prepared, now.
    pub fn remove(&self, prefix: &str) -> Result<String> {
        let mut pod = self.find(prefix)?;
        if !pod.try_lock(FlockArg::LockExclusiveNonblock)? {
            let state = pod.state()?;
            return Err(RunnerError::WrongState {
                uuid: pod.uuid.clone(),
                state: state.to_string(),
                what: "only pods that are not running can be removed; stop it first (`rkt stop`)"
                    .into(),
            });
        }
        match pod.state_dir {
            RUN => pod.move_to(EXITED_GARBAGE)?,
            PREPARE | PREPARED | EMBRYO => pod.move_to(GARBAGE)?,
            _ => {}
        }
        pod.destroy()?;
        Ok(pod.uuid.clone())
    }
}

impl Pod {
    /// The pod's directory in its current state directory.
    pub fn dir(&self) -> PathBuf {
        self.root.join(self.state_dir).join(&self.uuid)
    }

    /// The data directory (`--dir`) the pod belongs to: the image store's directory.
    pub fn data_dir(&self) -> PathBuf {
        self.root
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    /// Whether this process holds the pod's lock.
    pub fn is_locked_by_us(&self) -> bool {
        self.lock.is_some()
    }

    /// Try to lock the pod directory; false if another process holds it.
    pub fn try_lock(&mut self, arg: FlockArg) -> Result<bool> {
        let dir = self.dir();
        let f = File::open(&dir).ctx(|| format!("opening pod directory {}", dir.display()))?;
        match Flock::lock(f, arg) {
            Ok(l) => {
                self.lock = Some(l);
                Ok(true)
            }
            Err((_, Errno::EWOULDBLOCK)) => Ok(false),
            Err((_, e)) => Err(e).ctx(|| format!("locking pod directory {}", dir.display())),
        }
    }

    /// Wait until nobody else holds the pod's lock (the pod stopped running).
    pub fn wait_unlocked(&mut self) -> Result<()> {
        self.try_lock(FlockArg::LockShared).map(|_| ())?;
        self.unlock();
        Ok(())
    }

    /// Drop this process's lock.
    pub fn unlock(&mut self) {
        self.lock = None;
    }

    /// The locked directory's file descriptor (kept by the pod's processes).
    pub fn lock_fd(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        self.lock.as_ref().map(|l| l.as_raw_fd())
    }

    /// Move the pod to another state directory (atomic rename).
    pub fn move_to(&mut self, state_dir: &'static str) -> Result<()> {
        let from = self.dir();
        let to = self.root.join(state_dir).join(&self.uuid);
        std::fs::rename(&from, &to).ctx(|| format!("moving pod {} to {state_dir}", self.uuid))?;
        self.state_dir = state_dir;
        Ok(())
    }

    /// The pod's state: its directory and whether another process holds its lock.
    pub fn state(&self) -> Result<PodState> {
        let locked = if self.lock.is_some() {
            true
        } else {
            let f = match File::open(self.dir()) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Ok(PodState::Deleting)
                }
                Err(e) => return Err(e).ctx(|| format!("opening {}", self.dir().display())),
            };
            match Flock::lock(f, FlockArg::LockSharedNonblock) {
                Ok(_) => false,
                Err((_, Errno::EWOULDBLOCK)) => true,
                Err((_, e)) => return Err(e).ctx(|| format!("locking {}", self.dir().display())),
            }
        };
        Ok(match (self.state_dir, locked) {
            (EMBRYO, _) => PodState::Embryo,
            (PREPARE, true) => PodState::Preparing,
            (PREPARE, false) => PodState::AbortedPrepare,
            (PREPARED, _) => PodState::Prepared,
            (RUN, true) => PodState::Running,
            (RUN, false) => PodState::Exited,
            (EXITED_GARBAGE, true) => PodState::ExitedDeleting,
            (EXITED_GARBAGE, false) => PodState::ExitedGarbage,
            (_, true) => PodState::Deleting,
            (_, false) => PodState::Garbage,
        })
    }

    /// The pod manifest.
    pub fn manifest(&self) -> Result<PodManifest> {
        let bytes = self.read_bytes(MANIFEST_FILE)?;
        Ok(PodManifest::parse(&bytes)?)
    }

    /// The raw pod manifest as written.
    pub fn read_bytes(&self, name: &str) -> Result<Vec<u8>> {
        let p = self.dir().join(name);
        let mut v = Vec::new();
        File::open(&p)
            .and_then(|mut f| f.read_to_end(&mut v))
            .ctx(|| format!("reading {}", p.display()))?;
        Ok(v)
    }

    /// A small text file of the pod, trimmed; None if absent.
    pub fn read_text(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.dir().join(name))
            .ok()
            .map(|s| s.trim().to_string())
    }

    /// Write a small file of the pod atomically.
    pub fn write_text(&self, name: &str, text: &str) -> Result<()> {
        write_atomic(&self.dir().join(name), text.as_bytes())
    }

    /// Host PID of the pod's init, when it ran.
    pub fn pid(&self) -> Option<i32> {
        self.read_text(PID_FILE)?.parse().ok()
    }

    /// Host PID of the pod's supervisor (`rkt run`, `rkt run-prepared`) while the pod runs:
    /// the parent of its init, which the supervisor cloned.
    pub fn supervisor_pid(&self) -> Option<i32> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let ppid: i32 = status
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))?
            .trim()
            .parse()
            .ok()?;
        // 0: a parent this PID namespace does not see (never a supervisor to signal).
        (ppid > 0).then_some(ppid)
    }

    /// When the pod was prepared: the time its manifest was written.
    pub fn created(&self) -> Option<SystemTime> {
        self.modified(MANIFEST_FILE)
    }

    /// When the pod was started: the time its supervisor recorded its init's PID.
    pub fn started(&self) -> Option<SystemTime> {
        self.modified(PID_FILE)
    }

    fn modified(&self, name: &str) -> Option<SystemTime> {
        std::fs::metadata(self.dir().join(name))
            .ok()?
            .modified()
            .ok()
    }

    /// The exit status recorded for each app (None: not exited yet), in manifest order.
    pub fn app_exit_codes(&self) -> Result<Vec<(String, Option<i32>)>> {
        let m = self.manifest()?;
        Ok(m.apps
            .iter()
            .map(|a| {
                let name = a.name.as_str().to_string();
                let code = self
                    .read_text(&format!("apps/{name}/exit"))
                    .and_then(|s| s.parse().ok());
                (name, code)
            })
            .collect())
    }

    /// Time since the pod directory last changed state (its ctime, set by the rename).
    fn age(&self) -> Result<Duration> {
        let md = std::fs::metadata(self.dir()).ctx(|| format!("stat {}", self.dir().display()))?;
        let ctime = SystemTime::UNIX_EPOCH + Duration::new(md.ctime().max(0) as u64, 0);
        Ok(SystemTime::now().duration_since(ctime).unwrap_or_default())
    }

    /// Unmount everything below the pod directory and remove it.
    fn destroy(&mut self) -> Result<()> {
        let dir = self.dir();
        // Lazy trees of a pod whose supervisor was killed: abort their dead FUSE connections
        // (so nothing blocks on them) and detach them with the overlays above them.
        rkt_lazyfs::unmount_under(&dir).map_err(|e| {
            RunnerError::Invalid(format!("unmounting below {}: {e}", dir.display()))
        })?;
        // A teardown error keeps the directory (and its network record) for the next try.
        rkt_net::PodNetwork::teardown_from_dir(&dir)?;
        crate::mounts::unmount_below(&dir)?;
        crate::cgroups::remove_recorded(&dir);
        std::fs::remove_dir_all(&dir).ctx(|| format!("removing {}", dir.display()))?;
        self.lock = None;
        Ok(())
    }
}

/// Write a file through a temporary name and a rename.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, data).ctx(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).ctx(|| format!("writing {}", path.display()))
}

/// [`write_atomic`] of `name` (a relative path) under the open directory `dir`: for a process
/// that may no longer reach the directory by path (a pod's init, once its only app has
/// pivoted their shared mount namespace into the app's root).
pub fn write_atomic_at(dir: &File, name: &Path, data: &[u8]) -> Result<()> {
    use nix::fcntl::{openat, renameat, OFlag};
    use nix::sys::stat::Mode;
    use std::io::Write;
    use std::os::fd::{AsRawFd, FromRawFd};
    let tmp = name.with_extension(format!("tmp-{}", std::process::id()));
    let what = || format!("writing {}", name.display());
    let fd = openat(
        Some(dir.as_raw_fd()),
        &tmp,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o644),
    )
    .ctx(what)?;
    // SAFETY: `fd` was just opened by openat and is owned by nothing else.
    let mut f = unsafe { File::from_raw_fd(fd) };
    f.write_all(data).ctx(what)?;
    drop(f);
    renameat(Some(dir.as_raw_fd()), &tmp, Some(dir.as_raw_fd()), name).ctx(what)
}

/// A random (version 4) UUID.
fn new_uuid() -> Result<String> {
    let mut b = [0u8; 16];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .ctx(|| "reading /dev/urandom".into())?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_v4() {
        let u = new_uuid().unwrap();
        assert!(is_uuid(&u), "{u}");
        assert_eq!(&u[14..15], "4");
        assert_ne!(u, new_uuid().unwrap());
    }

    #[test]
    fn lifecycle_and_prefixes() {
        let tmp = tempfile::tempdir().unwrap();
        let pods = Pods::new(tmp.path());
        let mut pod = pods.create().unwrap();
        assert_eq!(pod.state().unwrap(), PodState::Preparing);
        let other = pods.find(&pod.uuid[..8]).unwrap();
        assert_eq!(other.state().unwrap(), PodState::Preparing);
        pod.move_to(PREPARED).unwrap();
        pod.unlock();
        assert_eq!(
            pods.find(&pod.uuid).unwrap().state().unwrap(),
            PodState::Prepared
        );
        assert!(matches!(pods.find("zz"), Err(RunnerError::Invalid(_))));
        assert!(
            matches!(
                pods.find("0000000"),
                Err(RunnerError::PodNotFound(_)) | Err(RunnerError::AmbiguousPod(_))
            ) || pod.uuid.starts_with("0000000")
        );
        // An aborted prepare is garbage at once.
        let aborted = pods.create().unwrap();
        let uuid = aborted.uuid.clone();
        drop(aborted);
        let r = pods
            .gc(Duration::from_secs(1800), Duration::from_secs(86400), false)
            .unwrap();
        assert!(r.removed.contains(&uuid), "{r:?}");
        assert!(pods.find(&pod.uuid).is_ok(), "a fresh prepared pod stays");
    }
}
