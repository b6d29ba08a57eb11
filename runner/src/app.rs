//! One app supervisor per app, forked by the pod's init: in its own mount namespace it sets up
//! the app's rootfs (`/proc`, `/sys`, `/dev`, volumes resolved inside the rootfs), pivots into
//! it, runs the `pre-start` handler, the app and the `post-stop` handler with the app's user,
//! groups, environment and working directory, and exits with the app's status. An app with
//! neither handler is exec'd by its supervisor directly (see [`execs_directly`]).

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::fcntl::OFlag;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::sys::stat::{makedev, mknodat, Mode, SFlag};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{Gid, Pid, Uid};
use rkt_store::schema::{App, PodManifest, RuntimeApp};

use crate::env::Vars;
use crate::error::{Context, Result, RunnerError};
use crate::inroot::{ensure_in_root, fd_path, open_at, open_root};
use crate::run::PodContext;
use crate::signals;

/// Set once the app supervisor was asked to stop.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Who and how the app's processes run.
struct Identity {
    uid: Uid,
    gid: Gid,
    groups: Vec<Gid>,
    env: Vec<CString>,
    cwd: String,
    path: String,
    /// The app's capability bounding set.
    caps: caps::CapsHashSet,
    process: crate::os_isolators::ProcessIsolators,
    /// The app's seccomp filter, if it has one.
    seccomp: Option<crate::seccomp::BpfProgram>,
}

pub(crate) fn main(ctx: &PodContext, app: &RuntimeApp) -> ! {
    let code = match run(ctx, app) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rkt: app {}: {e}", app.name.as_str());
            254
        }
    };
    signals::exit_now(code)
}

fn run(ctx: &PodContext, rapp: &RuntimeApp) -> Result<i32> {
    let name = rapp.name.as_str();
    let app = rapp
        .app
        .as_ref()
        .ok_or_else(|| RunnerError::Invalid(format!("app {name} has no app section")))?;
    let dir = ctx.dir.join("apps").join(name);
    // `rkt enter` joins this process's mount namespace: record its PID as the host sees it
    // (the host's /proc is still mounted here).
    let host_pid = std::fs::read_link("/proc/self").ctx(|| "reading /proc/self".into())?;
    crate::pods::write_atomic(&dir.join("pid"), host_pid.to_string_lossy().as_bytes())?;
    let uuid = ctx
        .dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    let limits = crate::cgroups::limits_for(app, name)?;
    crate::cgroups::enter(uuid.as_deref().unwrap_or("pod"), name, &dir, &limits)?;
    let rootfs = dir.join("rootfs");
    if !shares_init_mounts(ctx) {
        unshare(CloneFlags::CLONE_NEWNS).ctx(|| "unshare(CLONE_NEWNS)".into())?;
        crate::mounts::make_root_slave()?;
    }
    bind(&rootfs, &rootfs, true)?;
    let root = open_root(&rootfs)?;
    mount_api_filesystems(&root, ctx)?;
    mount_volumes(&root, &ctx.dir, &ctx.manifest, rapp, app)?;
    mount_etc_files(&root, ctx, rapp)?;
    if rapp.read_only_root_fs {
        remount_ro(&fd_path(&open_root(&rootfs)?), false)?;
    }
    drop(root);
    pivot(&rootfs)?;
    let id = identity(app, name, ctx)?;
    // Before anything is forked: the handlers and the app inherit it.
    id.process.apply_oom_score()?;
    if execs_directly(rapp) {
        // Nothing runs before or after the app: this process becomes it (one fork, exit and
        // reap less per pod start). Init reaps it and records its status, and passes stop
        // signals on, SIGKILL after the grace period included (init.rs).
        tracing::debug!(
            app = name,
            since_pod_start_ms = ctx.started_at.elapsed().as_secs_f64() * 1000.0,
            "first app exec"
        );
        let (prog, argv) = command(&app.exec, &id)?;
        let err = become_app(&id, &prog, &argv, ctx.console);
        return Err(RunnerError::Invalid(format!(
            "cannot run {}: {err}",
            prog.to_string_lossy()
        )));
    }
    if let Some(h) = handler(app, "pre-start") {
        let code = wait_child(spawn(h, &id, None)?, ctx, OnStop::Terminate)?;
        if code != 0 {
            return Err(RunnerError::Invalid(format!(
                "pre-start handler exited with status {code}"
            )));
        }
    }
    let child = spawn(&app.exec, &id, ctx.console)?;
    tracing::debug!(
        app = name,
        since_pod_start_ms = ctx.started_at.elapsed().as_secs_f64() * 1000.0,
        "first app exec"
    );
    let code = wait_child(child, ctx, OnStop::Terminate)?;
    if let Some(h) = handler(app, "post-stop") {
        match spawn(h, &id, None).and_then(|p| wait_child(p, ctx, OnStop::LetFinish)) {
            Ok(0) => {}
            Ok(c) => eprintln!("rkt: app {name}: post-stop handler exited with status {c}"),
            Err(e) => eprintln!("rkt: app {name}: post-stop handler: {e}"),
        }
    }
    Ok(code)
}

/// Whether the app sets its root up in init's mount namespace instead of a copy of it: when it
/// is the pod's only app, no other app needs init's view, and a namespace less to copy and to
/// tear down (with an RCU grace period) was 0.25 ms of each start. Its pivot_root then
/// moves init into the app's root too; init writes exit statuses through a descriptor of the
/// pod's `apps/` directory opened before (init.rs).
fn shares_init_mounts(ctx: &PodContext) -> bool {
    ctx.manifest.apps.len() == 1
}

/// Whether the app's supervisor execs the app itself: when the app has no `pre-start` or
/// `post-stop` handler to run around it.
pub(crate) fn execs_directly(rapp: &RuntimeApp) -> bool {
    rapp.app.as_ref().is_some_and(|app| {
        handler(app, "pre-start").is_none() && handler(app, "post-stop").is_none()
    })
}

fn handler<'a>(app: &'a App, which: &str) -> Option<&'a Vec<String>> {
    app.event_handlers
        .iter()
        .find(|h| h.name == which && !h.exec.is_empty())
        .map(|h| &h.exec)
}

fn bind(src: &Path, dst: &Path, recursive: bool) -> Result<()> {
    let mut flags = MsFlags::MS_BIND;
    if recursive {
        flags |= MsFlags::MS_REC;
    }
    mount(Some(src), dst, None::<&str>, flags, None::<&str>)
        .ctx(|| format!("bind-mounting {} on {}", src.display(), dst.display()))
}

fn remount_ro(target: &str, recursive: bool) -> Result<()> {
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    if recursive {
        flags |= MsFlags::MS_REC;
    }
    mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
        .ctx(|| format!("remounting {target} read-only"))
}

fn mount_fs(
    root: &OwnedFd,
    path: &str,
    fstype: &str,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<()> {
    let target = ensure_in_root(root, path, false)?;
    mount(
        Some(fstype),
        fd_path(&target).as_str(),
        Some(fstype),
        flags,
        data,
    )
    .ctx(|| format!("mounting {fstype} on {path}"))
}

/// `/proc`, `/sys` (read-only) and `/dev` as the appc OS spec requires.
fn mount_api_filesystems(root: &OwnedFd, ctx: &PodContext) -> Result<()> {
    let safe = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount_fs(root, "/proc", "proc", safe, None)?;
    if !ctx.opts.unprotected_proc {
        protect_proc(root)?;
    }
    mount_fs(root, "/sys", "sysfs", safe | MsFlags::MS_RDONLY, None)?;
    mount_fs(
        root,
        "/dev",
        "tmpfs",
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755"),
    )?;
    let dev = open_at(root, "/dev", OFlag::O_PATH | OFlag::O_DIRECTORY)
        .ctx(|| "opening the app's /dev".into())?;
    use std::os::fd::AsRawFd;
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        mknodat(
            Some(dev.as_raw_fd()),
            name,
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            makedev(major, minor),
        )
        .ctx(|| format!("creating /dev/{name}"))?;
        // The umask may have cleared bits: set the mode exactly.
        nix::sys::stat::fchmodat(
            Some(dev.as_raw_fd()),
            name,
            Mode::from_bits_truncate(0o666),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .ctx(|| format!("chmod /dev/{name}"))?;
    }
    let console = console_source(ctx);
    let target = ensure_in_root(root, "/dev/console", true)?;
    bind(&console, Path::new(&fd_path(&target)), false)?;
    mount_fs(
        root,
        "/dev/pts",
        "devpts",
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    )?;
    mount_fs(
        root,
        "/dev/shm",
        "tmpfs",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777"),
    )?;
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        nix::unistd::symlinkat(target, Some(dev.as_raw_fd()), link)
            .ctx(|| format!("creating /dev/{link}"))?;
    }
    Ok(())
}

/// Parts of /proc that reach beyond the pod: writable host settings (sysctls, the SysRq
/// trigger, IRQ affinities, ACPI wakeup) are made read-only or hidden, and the host-wide
/// listings of keys and timers masked (as Docker and rkt do; rkt's `--insecure-options=paths`
/// skips this). Interfaces that need a capability the apps do not have (kcore, PCI config) are
/// left alone, and paths the kernel lacks are skipped. The entries are reached through the
/// freshly mounted procfs's own descriptor, so nothing in the image can redirect them; each
/// costs one or two mount calls of every app's start.
fn protect_proc(root: &OwnedFd) -> Result<()> {
    let proc_dir = open_at(root, "/proc", OFlag::O_PATH | OFlag::O_DIRECTORY)
        .ctx(|| "opening the app's /proc".into())?;
    let base = fd_path(&proc_dir);
    let exists = |name: &str| Path::new(&format!("{base}/{name}")).exists();
    for name in ["sys", "sysrq-trigger", "irq"] {
        if !exists(name) {
            continue;
        }
        let p = format!("{base}/{name}");
        bind(Path::new(&p), Path::new(&p), true)?;
        remount_ro(&p, true)?;
    }
    for name in ["keys", "timer_list", "sched_debug", "latency_stats"] {
        if exists(name) {
            bind(
                Path::new("/dev/null"),
                Path::new(&format!("{base}/{name}")),
                false,
            )?;
        }
    }
    for name in ["acpi", "scsi"] {
        if exists(name) {
            let hidden =
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            mount_fs(root, &format!("/proc/{name}"), "tmpfs", hidden, None)?;
        }
    }
    Ok(())
}

/// The terminal of `rkt run --interactive` (the app's pseudo-terminal), else /dev/null.
fn console_source(ctx: &PodContext) -> PathBuf {
    let fd = match (ctx.opts.interactive, ctx.console) {
        (true, Some(console)) => console.slave,
        (true, None) if nix::unistd::isatty(0).unwrap_or(false) => 0,
        _ => return PathBuf::from("/dev/null"),
    };
    std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap_or_else(|_| "/dev/null".into())
}

/// Bind every volume of the app at its target, resolved inside the rootfs.
fn mount_volumes(
    root: &OwnedFd,
    pod_dir: &Path,
    manifest: &PodManifest,
    rapp: &RuntimeApp,
    app: &App,
) -> Result<()> {
    for m in &rapp.mounts {
        let vol = m
            .app_volume
            .as_ref()
            .or_else(|| manifest.volumes.iter().find(|v| v.name == m.volume))
            .ok_or_else(|| {
                RunnerError::Invalid(format!("mount {}: no volume {}", m.path, m.volume.as_str()))
            })?;
        let source = match vol.kind.as_str() {
            "host" => PathBuf::from(&vol.source),
            _ => pod_dir.join("volumes").join(vol.name.as_str()),
        };
        let md = std::fs::metadata(&source).map_err(|e| {
            RunnerError::Invalid(format!(
                "volume {}: source {}: {e}",
                vol.name.as_str(),
                source.display()
            ))
        })?;
        let mp_ro = app
            .mount_points
            .iter()
            .find(|mp| mp.name == m.volume)
            .is_some_and(|mp| mp.read_only);
        let read_only = vol.read_only.unwrap_or(mp_ro);
        let recursive = vol.recursive.unwrap_or(true);
        let target = ensure_in_root(root, &m.path, !md.is_dir())?;
        bind(&source, Path::new(&fd_path(&target)), recursive)?;
        if read_only {
            // Reopen: the path now names the new mount, not the directory below it.
            let mounted = open_at(root, &m.path, OFlag::O_PATH)
                .ctx(|| format!("reopening volume target {}", m.path))?;
            remount_ro(&fd_path(&mounted), false)?;
        }
    }
    Ok(())
}

/// Bind the pod's generated (or the host's) `/etc/resolv.conf` and `/etc/hosts` read-only on
/// the app's; the file is created in the app's rootfs if the image has none.
fn mount_etc_files(root: &OwnedFd, ctx: &PodContext, rapp: &RuntimeApp) -> Result<()> {
    for f in &ctx.opts.etc_files {
        let path = f.path.as_str();
        if f.yields_to_volume && rapp.mounts.iter().any(|m| m.path == path) {
            continue;
        }
        if f.only_if_missing && exists_in_root(root, path)? {
            continue;
        }
        let source = ctx.dir.join(&f.source);
        let target = ensure_in_root(root, path, true)?;
        bind(&source, Path::new(&fd_path(&target)), false)?;
        let mounted = open_at(root, path, OFlag::O_PATH).ctx(|| format!("reopening {path}"))?;
        remount_ro(&fd_path(&mounted), false)?;
    }
    Ok(())
}

/// Whether `path` names something in the app's rootfs (a symlink counts if its target, resolved
/// inside the rootfs, exists).
fn exists_in_root(root: &OwnedFd, path: &str) -> Result<bool> {
    match open_at(root, path, OFlag::O_PATH) {
        Ok(_) => Ok(true),
        Err(nix::errno::Errno::ENOENT) => Ok(false),
        Err(e) => Err(e).ctx(|| format!("looking for {path} in the app's rootfs")),
    }
}

/// Make the rootfs `/`: pivot_root, then detach the old root (never a bare chroot).
fn pivot(rootfs: &Path) -> Result<()> {
    nix::unistd::chdir(rootfs).ctx(|| format!("chdir {}", rootfs.display()))?;
    nix::unistd::pivot_root(".", ".").ctx(|| format!("pivot_root into {}", rootfs.display()))?;
    umount2(".", MntFlags::MNT_DETACH).ctx(|| "detaching the old root".into())?;
    nix::unistd::chdir("/").ctx(|| "chdir /".into())
}

fn identity(app: &App, name: &str, ctx: &PodContext) -> Result<Identity> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let uid = crate::users::resolve_user(&app.user, &passwd)?;
    let gid = crate::users::resolve_group(&app.group, &groups)?;
    let supp = app
        .supplementary_gids
        .iter()
        .map(|g| {
            u32::try_from(*g)
                .map(Gid::from_raw)
                .map_err(|_| RunnerError::Invalid(format!("supplementary gid {g} is out of range")))
        })
        .collect::<Result<Vec<_>>>()?;
    let vars: Vars = app
        .environment
        .iter()
        .map(|v| (v.name.clone(), v.value.clone()))
        .collect();
    let env = crate::env::runtime_env(&vars, name, ctx.opts.metadata_url.as_deref());
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(crate::env::DEFAULT_PATH)
        .to_string();
    let env = env
        .into_iter()
        .map(|e| {
            CString::new(e).map_err(|_| RunnerError::Invalid("environment contains NUL".into()))
        })
        .collect::<Result<Vec<_>>>()?;
    let cwd = if app.working_directory.is_empty() {
        "/".to_string()
    } else {
        app.working_directory.clone()
    };
    Ok(Identity {
        uid: Uid::from_raw(uid),
        gid: Gid::from_raw(gid),
        groups: supp,
        env,
        cwd,
        path,
        caps: crate::caps::for_app(app, name)?,
        process: crate::os_isolators::for_app(app, name)?,
        seccomp: crate::seccomp::filter_for(app, name)?,
    })
}

/// The program to execute for `exec` and its argument vector.
fn command(exec: &[String], id: &Identity) -> Result<(CString, Vec<CString>)> {
    let program = find_program(exec, &id.path)?;
    let argv = exec
        .iter()
        .map(|a| {
            CString::new(a.as_str())
                .map_err(|_| RunnerError::Invalid(format!("argument {a:?} contains NUL")))
        })
        .collect::<Result<Vec<_>>>()?;
    let prog = CString::new(program.clone())
        .map_err(|_| RunnerError::Invalid(format!("{program:?} contains NUL")))?;
    Ok((prog, argv))
}

/// Start `exec` as the app's identity.
fn spawn(
    exec: &[String],
    id: &Identity,
    console: Option<crate::console::ConsoleFds>,
) -> Result<Pid> {
    let (prog, argv) = command(exec, id)?;
    match signals::fork()? {
        Some(pid) => Ok(pid),
        None => {
            let err = become_app(id, &prog, &argv, console);
            eprintln!("rkt: cannot run {}: {err}", prog.to_string_lossy());
            signals::exit_now(254)
        }
    }
}

/// What an app's process, and a command `rkt enter` runs beside it, give up before exec: the
/// descriptors rkt inherited, the capabilities outside `keep`, and the calls `filter` denies —
/// the filter last, since a retain set may deny close_range.
pub(crate) fn confine(
    keep: &caps::CapsHashSet,
    filter: Option<&crate::seccomp::BpfProgram>,
) -> Result<()> {
    crate::fds::cloexec_above_stdio()?;
    crate::caps::confine(keep)?;
    filter.map_or(Ok(()), crate::seccomp::install)
}

/// In the forked child: drop to the app's credentials, enter its working dir, exec.
fn become_app(
    id: &Identity,
    prog: &CString,
    argv: &[CString],
    console: Option<crate::console::ConsoleFds>,
) -> RunnerError {
    let r = (|| -> Result<()> {
        // The umask every app starts with, whatever `rkt run`'s caller had (rkt's systemd
        // units and runc give 0022 too): an app's files must not depend on the shell it was
        // started from. Before the seccomp filter, which may not allow umask(2).
        nix::sys::stat::umask(Mode::from_bits_truncate(0o022));
        if let Some(console) = console {
            crate::console::attach(console, id.uid, id.gid)?;
        }
        confine(&id.caps, id.seccomp.as_ref())?;
        nix::unistd::setgroups(&id.groups).ctx(|| "setgroups".into())?;
        nix::unistd::setgid(id.gid).ctx(|| format!("setgid {}", id.gid))?;
        nix::unistd::setuid(id.uid).ctx(|| format!("setuid {}", id.uid))?;
        id.process.apply_no_new_privileges()?;
        nix::unistd::chdir(id.cwd.as_str())
            .ctx(|| format!("working directory {} (it must exist in the image)", id.cwd))?;
        signals::unblock_all();
        signals::default_dispositions();
        nix::unistd::execve(prog, argv, &id.env).ctx(|| "execve".into())?;
        Ok(())
    })();
    match r {
        Err(e) => e,
        Ok(()) => RunnerError::Invalid("execve returned".into()),
    }
}

/// The program to execute: an absolute or relative path, or a name looked up in the app's PATH.
fn find_program(exec: &[String], path: &str) -> Result<String> {
    let first = exec
        .first()
        .ok_or_else(|| RunnerError::Invalid("the app has no exec".into()))?;
    if first.contains('/') {
        return Ok(first.clone());
    }
    path.split(':')
        .map(|d| format!("{}/{first}", d.trim_end_matches('/')))
        .find(|p| Path::new(p).is_file())
        .ok_or_else(|| RunnerError::Invalid(format!("{first} not found in PATH {path}")))
}

/// What a stop signal does to the child being waited for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OnStop {
    /// The app and its pre-start handler: SIGTERM now, SIGKILL after the grace period.
    Terminate,
    /// A post-stop handler runs because the app stopped: a stop signal that arrives meanwhile
    /// (systemd signals every process of the unit, init passes the supervisor's on) must not
    /// cut it short; it only gets the grace period, then SIGKILL.
    LetFinish,
}

/// Wait for `child`, handling stop signals as `on_stop` says; SIGKILL it after the grace period.
fn wait_child(child: Pid, ctx: &PodContext, on_stop: OnStop) -> Result<i32> {
    let mut grace_started = false;
    loop {
        match signals::wait()? {
            Signal::SIGCHLD => loop {
                match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(st) if st.pid() == Some(child) => {
                        if let Some(code) = signals::exit_code(st) {
                            nix::unistd::alarm::cancel();
                            return Ok(code);
                        }
                    }
                    Ok(_) => {}
                }
            },
            Signal::SIGALRM => {
                let _ = kill(child, Signal::SIGKILL);
            }
            _ => {
                STOPPING.store(true, Ordering::Relaxed);
                if on_stop == OnStop::Terminate {
                    let _ = kill(child, Signal::SIGTERM);
                }
                if on_stop == OnStop::Terminate || !grace_started {
                    let secs = u32::try_from(ctx.opts.stop_grace.as_secs()).unwrap_or(u32::MAX);
                    nix::unistd::alarm::set(secs.max(1));
                    grace_started = true;
                }
            }
        }
    }
}
