//! Resource isolators (`resource/memory` and `resource/cpu` limits, `os/linux/cpu-shares`)
//! enforced with cgroup v1
//! controllers: each limited app gets `<controller>/<rkt's cgroup>/rkt-<uuid>/<app>/`, nested
//! under the cgroup `rkt run` itself is in (so a pod never escapes the limits and accounting of
//! whatever started rkt), moves itself there before it starts, and the directories are
//! recorded in the app's directory (`apps/<app>/cgroups`) so that the supervisor removes them
//! when the pod ends and `rkt gc` after a crash.

use std::path::{Path, PathBuf};

use rkt_store::schema::App;

use crate::error::{Context, Result, RunnerError};

/// The resource limits of one app.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Limits {
    /// `resource/memory` limit, bytes.
    pub memory: Option<u64>,
    /// `resource/cpu` limit, thousandths of a CPU.
    pub cpu_millis: Option<u64>,
    /// `os/linux/cpu-shares`: the app's relative CPU weight (the kernel's default is 1024).
    pub cpu_shares: Option<u64>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        self.memory.is_none() && self.cpu_millis.is_none() && self.cpu_shares.is_none()
    }
}

/// CFS period used for CPU limits (the kernel's default).
const CPU_PERIOD_US: u64 = 100_000;
/// Smallest CPU limit the kernel takes (a 1 ms quota per 100 ms period).
pub const MIN_CPU_MILLIS: u64 = 10;
/// Smallest memory limit accepted: below this the app cannot even start.
pub const MIN_MEMORY: u64 = 4 << 20;
const RECORD: &str = "cgroups";

/// The limits `app`'s isolators ask for.
pub(crate) fn limits_for(app: &App, name: &str) -> Result<Limits> {
    let mut limits = Limits::default();
    for iso in &app.isolators {
        if iso.name.as_str() == "os/linux/cpu-shares" {
            let v = iso.value.as_u64().filter(|v| (2..=262_144).contains(v));
            limits.cpu_shares = Some(v.ok_or_else(|| {
                RunnerError::Invalid(format!(
                    "app {name}: cpu-shares must be an integer from 2 to 262144"
                ))
            })?);
            continue;
        }
        let (kind, scale) = match iso.name.as_str() {
            "resource/memory" => ("memory", false),
            "resource/cpu" => ("cpu", true),
            _ => continue,
        };
        let Some(q) = iso.resource_limit() else {
            continue;
        };
        let v = if scale { q.milli_value() } else { q.value() };
        let v = v.and_then(|v| u64::try_from(v).ok()).ok_or_else(|| {
            RunnerError::Invalid(format!(
                "app {name}: {kind} limit {} is not a positive quantity",
                q.as_str()
            ))
        })?;
        check(kind, v).map_err(|e| RunnerError::Invalid(format!("app {name}: {e}")))?;
        match kind {
            "memory" => limits.memory = Some(v),
            _ => limits.cpu_millis = Some(v),
        }
    }
    Ok(limits)
}

/// Refuse limits the kernel would reject or that leave an app unable to run.
pub fn check(kind: &str, v: u64) -> std::result::Result<(), String> {
    match kind {
        "memory" if v < MIN_MEMORY => Err(format!(
            "memory limit {v} bytes is below the {MIN_MEMORY} bytes an app needs to start"
        )),
        "cpu" if v < MIN_CPU_MILLIS => Err(format!(
            "cpu limit {v}m is below the kernel's smallest, {MIN_CPU_MILLIS}m"
        )),
        _ => Ok(()),
    }
}

/// In the app's process (host mounts still visible): create its cgroups, set the limits, move
/// this process in (the app and its handlers inherit them) and record the directories in
/// `app_dir`.
pub(crate) fn enter(uuid: &str, app: &str, app_dir: &Path, limits: &Limits) -> Result<()> {
    if limits.is_empty() {
        return Ok(());
    }
    let mut made = Vec::new();
    let mut settings: Vec<(&str, Vec<(&str, String)>)> = Vec::new();
    if let Some(bytes) = limits.memory {
        settings.push(("memory", vec![("memory.limit_in_bytes", bytes.to_string())]));
    }
    let mut cpu = Vec::new();
    if let Some(millis) = limits.cpu_millis {
        let quota = millis * CPU_PERIOD_US / 1000;
        cpu.push(("cpu.cfs_period_us", CPU_PERIOD_US.to_string()));
        cpu.push(("cpu.cfs_quota_us", quota.to_string()));
    }
    if let Some(shares) = limits.cpu_shares {
        cpu.push(("cpu.shares", shares.to_string()));
    }
    if !cpu.is_empty() {
        settings.push(("cpu", cpu));
    }
    for (controller, files) in settings {
        let dir = controller_dir(controller)?
            .join(format!("rkt-{uuid}"))
            .join(app);
        std::fs::create_dir_all(&dir).ctx(|| format!("creating cgroup {}", dir.display()))?;
        made.push(dir.clone());
        crate::pods::write_atomic(&app_dir.join(RECORD), lines(&made).as_bytes())?;
        for (file, value) in files {
            write(&dir.join(file), &value)?;
        }
        write(&dir.join("cgroup.procs"), "0")?;
    }
    Ok(())
}

fn lines(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| format!("{}\n", p.display())).collect()
}

fn write(path: &Path, value: &str) -> Result<()> {
    std::fs::write(path, value).ctx(|| format!("writing {value} to {}", path.display()))
}

/// Where this process's cgroup of the v1 `controller` is: its mount point joined with the
/// process's path in that hierarchy.
fn controller_dir(controller: &str) -> Result<PathBuf> {
    let missing = || {
        RunnerError::Invalid(format!(
            "a {controller} limit needs the cgroup v1 {controller} controller, and this host \
             has none mounted (cgroup v2-only hosts are not supported yet); run without \
             --{} or the image's resource isolator",
            if controller == "cpu" { "cpu" } else { "memory" }
        ))
    };
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .ctx(|| "reading /proc/self/mountinfo".into())?;
    let mount = mountinfo
        .lines()
        .find_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let mut post = post.split(' ');
            let (fstype, opts) = (post.next()?, post.nth(1)?);
            let is_it = fstype == "cgroup" && opts.split(',').any(|o| o == controller);
            is_it.then(|| pre.split(' ').nth(4).map(PathBuf::from))?
        })
        .ok_or_else(missing)?;
    let own =
        std::fs::read_to_string("/proc/self/cgroup").ctx(|| "reading /proc/self/cgroup".into())?;
    let rel = own
        .lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            ctrls
                .split(',')
                .any(|c| c == controller)
                .then(|| path.to_string())
        })
        .ok_or_else(missing)?;
    Ok(mount.join(rel.trim_start_matches('/')))
}

/// The `cgroup.procs` files of the cgroups recorded for the app in `app_dir`, open for
/// writing (`rkt enter` puts its command there).
pub(crate) fn open_recorded(app_dir: &Path) -> Result<Vec<std::fs::File>> {
    let Ok(text) = std::fs::read_to_string(app_dir.join(RECORD)) else {
        return Ok(Vec::new());
    };
    text.lines()
        .map(|dir| {
            let procs = Path::new(dir).join("cgroup.procs");
            std::fs::OpenOptions::new()
                .write(true)
                .open(&procs)
                .ctx(|| format!("opening {}", procs.display()))
        })
        .collect()
}

/// Move the calling process into the cgroups whose `cgroup.procs` files are given.
pub(crate) fn join(procs: &[std::fs::File]) -> Result<()> {
    use std::io::Write;
    for mut f in procs {
        f.write_all(b"0")
            .ctx(|| "joining the app's cgroup".into())?;
    }
    Ok(())
}

/// Remove the cgroups recorded for the pod in `pod_dir` (its apps' and the pod's own), once
/// its processes are gone; what cannot be removed yet is left for the next `rkt gc`.
pub fn remove_recorded(pod_dir: &Path) {
    let Ok(apps) = std::fs::read_dir(pod_dir.join("apps")) else {
        return;
    };
    for app in apps.flatten() {
        let Ok(text) = std::fs::read_to_string(app.path().join(RECORD)) else {
            continue;
        };
        for line in text.lines() {
            let dir = Path::new(line);
            let pod_level = dir.parent().filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("rkt-"))
            });
            // Only what this module creates: .../rkt-<uuid>/<app> under /sys/fs/cgroup.
            let Some(pod_level) = pod_level.filter(|_| dir.starts_with("/sys/fs/cgroup")) else {
                tracing::warn!(path = line, "not removing an unexpected cgroup record");
                continue;
            };
            remove_cgroup(dir);
            // Fails while another app's cgroup is still inside: the last one removes it.
            let _ = std::fs::remove_dir(pod_level);
        }
    }
}

/// rmdir a cgroup, waiting briefly for exiting processes to leave it.
fn remove_cgroup(dir: &Path) {
    for _ in 0..50 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            Err(e) => {
                tracing::warn!(path = %dir.display(), "cannot remove cgroup: {e}");
                return;
            }
        }
    }
    tracing::warn!(path = %dir.display(), "cgroup still busy; rkt gc will remove it");
}
