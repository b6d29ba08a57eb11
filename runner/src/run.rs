//! `rkt run` as the pod's supervisor: it holds the pod's lock for the pod's lifetime, starts
//! the pod's init in new mount, PID, UTS and IPC namespaces, forwards SIGTERM/SIGINT/SIGHUP
//! (SIGKILL after a grace period), records how the pod ended and returns the first app's status.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag};

use crate::console::{Console, Relay};
use crate::error::{Context, Result, RunnerError};
use crate::pods::{self, write_atomic, Pod};
use crate::signals;

/// How long apps get between SIGTERM and SIGKILL when the pod is stopped.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(10);

/// Run-time options (`rkt run` and `rkt run-prepared`).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Pod hostname; `rkt-<uuid>` if None.
    pub hostname: Option<String>,
    /// Attach stdin (and the terminal) to the single app.
    pub interactive: bool,
    /// SIGTERM → SIGKILL grace period for apps.
    pub stop_grace: Duration,
    /// `AC_METADATA_URL` for the apps and their event handlers: the URL of the pod's metadata
    /// service (crate `rkt-metadata`, bound by the caller before the pod starts).
    pub metadata_url: Option<String>,
    /// The pod's network namespace (`PodNetwork::netns_path`); the pod's init joins it. None:
    /// the host's network.
    pub netns: Option<std::path::PathBuf>,
    /// Files bind-mounted read-only on a path of every app (`/etc/resolv.conf`, `/etc/hosts`):
    /// (path in the app, source). A relative source is inside the pod directory.
    pub etc_files: Vec<EtcFile>,
    /// `--insecure-options=paths`: leave the apps' /proc without read-only and masked paths.
    pub unprotected_proc: bool,
}

/// A file bind-mounted read-only on a path of every app.
#[derive(Debug, Clone)]
pub struct EtcFile {
    /// Path in the app, e.g. `/etc/resolv.conf`.
    pub path: String,
    /// The file; relative = inside the pod directory.
    pub source: std::path::PathBuf,
    /// An app volume mounted on `path` wins (rkt's order for files not asked for on the CLI).
    pub yields_to_volume: bool,
    /// A fallback: bound only on apps whose rootfs (image or volume) has no file at `path`.
    pub only_if_missing: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            hostname: None,
            interactive: false,
            stop_grace: DEFAULT_STOP_GRACE,
            metadata_url: None,
            netns: None,
            etc_files: Vec::new(),
            unprotected_proc: false,
        }
    }
}

/// What the pod's init needs.
pub(crate) struct PodContext {
    pub dir: std::path::PathBuf,
    pub manifest: rkt_store::schema::PodManifest,
    pub overlay: bool,
    pub opts: RunOptions,
    pub hostname: String,
    /// `--interactive` on a terminal: the app's pseudo-terminal.
    pub console: Option<crate::console::ConsoleFds>,
    /// When the supervisor began starting the pod (for `--debug` phase timings).
    pub started_at: std::time::Instant,
    /// The shared lower layer of empty mount point directories laid over each app's image
    /// ([`mount_points_layer`]); None if it could not be made.
    pub mount_points: Option<std::path::PathBuf>,
    /// Each overlay app's lower dir, as `prepare` recorded it.
    pub lower: std::collections::BTreeMap<String, String>,
}

/// A service of the pod that the supervisor starts only once it is needed: when `ready`
/// becomes readable — a listening socket with a connection waiting, say — `start` runs once,
/// on the supervisor's thread, after the pod's init exists.
///
/// The metadata service is one: most apps never ask it anything, and starting its thread
/// (then stopping and joining it when the pod exits) on every pod start would cost each of
/// them about as much as mounting its root filesystem.
pub struct OnDemand<'a> {
    /// Watched for input (e.g. a duplicate of a listening socket); closed once `start` ran.
    pub ready: OwnedFd,
    /// Starts the service (e.g. its accept thread, which then accepts what is waiting).
    pub start: Box<dyn FnOnce() + 'a>,
}

/// Run a pod that this process holds locked (prepared by it, or taken from `prepared/`):
/// move it to `run/`, supervise it until it exits and return the first app's exit status.
pub fn run(pod: &mut Pod, opts: &RunOptions) -> Result<i32> {
    run_with(pod, opts, None)
}

/// [`run`], with a service started on demand (see [`OnDemand`]). The supervisor must be
/// single-threaded until the pod's init exists (init is forked without exec); `on_demand`
/// starts after that, so it may start threads.
pub fn run_with(pod: &mut Pod, opts: &RunOptions, on_demand: Option<OnDemand<'_>>) -> Result<i32> {
    if !pod.is_locked_by_us() {
        return Err(RunnerError::Invalid(format!(
            "pod {} is not locked",
            pod.uuid
        )));
    }
    let manifest = pod.manifest()?;
    if opts.interactive && manifest.apps.len() != 1 {
        return Err(RunnerError::Invalid(
            "--interactive needs a pod with exactly one app".into(),
        ));
    }
    let recorded = crate::prepare::recorded_rootfs(pod);
    let mode = recorded.mode;
    pod.move_to(pods::RUN)?;
    let console = match opts.interactive {
        true => Console::open_if_terminal()?,
        false => None,
    };
    let ctx = PodContext {
        dir: pod.dir(),
        hostname: opts
            .hostname
            .clone()
            .unwrap_or_else(|| format!("rkt-{}", pod.uuid)),
        manifest,
        overlay: mode.uses_overlay(),
        opts: opts.clone(),
        console: console.as_ref().map(Console::fds),
        started_at: std::time::Instant::now(),
        mount_points: match mode.uses_overlay() {
            true => mount_points_layer(&pod.data_dir()),
            false => None,
        },
        lower: recorded.lower,
    };
    // Lazy pods: the mount points are made shared here, while this process is still
    // single-threaded; the FUSE trees (server threads) are mounted right after init exists
    // and propagate into its mount namespace; init waits at the gate until they are there.
    let points = lazy_mount_points(&ctx, mode)?;
    let gate = points.as_ref().map(|_| crate::gate::gate()).transpose()?;
    let (opener, waiter) = match gate {
        Some((o, w)) => (Some(o), Some(w)),
        None => (None, None),
    };
    let t_init = std::time::Instant::now();
    signals::block()?;
    let flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC;
    let Some(init) = signals::clone_process(flags)? else {
        drop(opener);
        crate::init::main(&ctx, waiter);
    };
    drop(waiter);
    if console.is_some() {
        // SIGWINCH is for the supervisor's wait (supervise). Blocked here, before any thread
        // exists (lazy FUSE servers, the console relay, the metadata service), so that every
        // thread inherits the block: a thread that did not block it could take the signal
        // and, its default action being to ignore it, lose it before the wait reads it.
        let mut winch = SigSet::empty();
        winch.add(Signal::SIGWINCH);
        winch.thread_block().ctx(|| "blocking SIGWINCH".into())?;
    }
    pod.write_text(pods::PID_FILE, &init.to_string())?;
    tracing::debug!(
        elapsed_ms = t_init.elapsed().as_secs_f64() * 1000.0,
        "pod init started"
    );
    let lazy = match serve_lazy(pod, &ctx, points, opener) {
        Ok(lazy) => lazy,
        Err(e) => {
            // init gave up at the gate (or is told to now); reap it before reporting.
            let _ = supervise(init, opts.stop_grace, None, None);
            return Err(e);
        }
    };
    let relay = console.and_then(|c| match c.relay() {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("rkt: --interactive: {e}; stopping the pod");
            let _ = kill(init, Signal::SIGKILL);
            None
        }
    });
    let status = supervise(init, opts.stop_grace, relay.as_ref(), on_demand)?;
    if let Some(r) = relay {
        r.finish();
    }
    drop(lazy);
    crate::cgroups::remove_recorded(&ctx.dir);
    record_missing(&ctx, status)?;
    let codes = pod.app_exit_codes()?;
    Ok(codes.first().and_then(|(_, c)| *c).unwrap_or(status))
}

/// Directories every app's rootfs gets a file system mounted on.
const MOUNT_POINTS: [&str; 3] = ["proc", "sys", "dev"];

/// `DIR/pods/mountpoints`: empty `proc`, `sys` and `dev` directories, made once per data
/// directory and laid over every app's image as the top lower layer of its overlayfs, so that
/// the app's /proc, /sys and /dev exist without each pod creating them in its upper dir (three
/// directories, each an inode allocation and an opaque xattr on the host's filesystem, on
/// every start). Whatever the image has there is hidden by the mounts anyway. None (and the
/// app's supervisor creates them as before) if the layer cannot be made.
fn mount_points_layer(data_dir: &std::path::Path) -> Option<std::path::PathBuf> {
    let layer = data_dir.join("pods").join("mountpoints");
    let complete = |dir: &std::path::Path| MOUNT_POINTS.iter().all(|d| dir.join(d).is_dir());
    if complete(&layer) {
        return Some(layer);
    }
    // Made aside and renamed into place, so no pod ever sees it half made.
    let staged = data_dir
        .join("pods")
        .join(format!(".mountpoints.tmp-{}", std::process::id()));
    let made = (|| {
        let _ = std::fs::remove_dir_all(&staged);
        for d in MOUNT_POINTS {
            std::fs::create_dir_all(staged.join(d))?;
        }
        std::fs::rename(&staged, &layer)
    })();
    let _ = std::fs::remove_dir_all(&staged);
    if let Err(e) = made {
        tracing::debug!(error = %e, "no shared mount point layer; apps create their own");
    }
    complete(&layer).then_some(layer)
}

/// Make the lazy mount points of a `--rootfs=lazy` pod shared (None for other modes).
fn lazy_mount_points(
    ctx: &PodContext,
    mode: crate::RootfsMode,
) -> Result<Option<crate::rootfs::LazyMounts>> {
    if mode != crate::RootfsMode::Lazy {
        return Ok(None);
    }
    crate::rootfs::LazyMounts::prepare(&ctx.dir, &ctx.manifest).map(Some)
}

/// Mount the lazy trees at their prepared points, then open init's gate (or tell init to give
/// up, on error).
fn serve_lazy(
    pod: &Pod,
    ctx: &PodContext,
    points: Option<crate::rootfs::LazyMounts>,
    opener: Option<crate::gate::GateOpener>,
) -> Result<Option<crate::rootfs::LazyMounts>> {
    let (Some(mut mounts), Some(opener)) = (points, opener) else {
        return Ok(None);
    };
    let span = tracing::debug_span!("pod.mount_rootfs", mode = "lazy");
    let _enter = span.enter();
    let t0 = std::time::Instant::now();
    if let Err(e) = mounts.mount(&pod.data_dir(), &ctx.manifest) {
        opener.fail();
        return Err(e);
    }
    if let Err(e) = opener.open() {
        // init is gone already; supervising it reports how it ended.
        tracing::warn!(error = %e, "the pod's init did not wait for its root filesystems");
    }
    tracing::debug!(
        elapsed_ms = t0.elapsed().as_secs_f64() * 1000.0,
        "lazy root filesystems mounted"
    );
    Ok(Some(mounts))
}

/// Wait for init, forwarding stop signals; SIGKILL it if it outlives the grace period. With
/// an interactive console, window size changes are passed on to the app's terminal. A service
/// started on demand is started when its descriptor becomes ready.
fn supervise(
    init: nix::unistd::Pid,
    grace: Duration,
    relay: Option<&Relay>,
    on_demand: Option<OnDemand<'_>>,
) -> Result<i32> {
    let mut set = signals::handled();
    if relay.is_some() {
        // Blocked already, before any thread existed (run_with).
        set.add(Signal::SIGWINCH);
    }
    let mut waiting = Waiting::new(set, on_demand)?;
    loop {
        let Some(signal) = waiting.next()? else {
            continue;
        };
        match signal {
            Signal::SIGWINCH => {
                if let Some(r) = relay {
                    r.resize();
                }
            }
            Signal::SIGCHLD => loop {
                match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                    Ok(st) if st.pid() == Some(init) => {
                        if let Some(code) = signals::exit_code(st) {
                            return Ok(code);
                        }
                    }
                    Ok(nix::sys::wait::WaitStatus::StillAlive) | Err(_) => break,
                    Ok(_) => {}
                }
            },
            Signal::SIGALRM => {
                tracing::warn!("pod did not stop in time; killing it");
                let _ = kill(init, Signal::SIGKILL);
            }
            sig => {
                tracing::info!("received {sig}; stopping the pod");
                let _ = kill(init, Signal::SIGTERM);
                let secs = grace.as_secs().saturating_add(5);
                nix::unistd::alarm::set(u32::try_from(secs).unwrap_or(u32::MAX));
            }
        }
    }
}

/// The supervisor's wait for its (blocked) signals; while an [`OnDemand`] service is not
/// started yet, a poll of both a signalfd and the service's descriptor.
struct Waiting<'a> {
    set: SigSet,
    pending: Option<(SignalFd, OnDemand<'a>)>,
}

impl<'a> Waiting<'a> {
    fn new(set: SigSet, on_demand: Option<OnDemand<'a>>) -> Result<Waiting<'a>> {
        let pending = match on_demand {
            None => None,
            Some(od) => {
                // The signals are blocked (signals::block, and SIGWINCH above): they queue
                // for the signalfd as they would for sigwait.
                let sfd =
                    SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
                        .ctx(|| "creating a signalfd".into())?;
                Some((sfd, od))
            }
        };
        Ok(Waiting { set, pending })
    }

    /// The next signal, or None when woken for something else (the service was started).
    fn next(&mut self) -> Result<Option<Signal>> {
        let Some((sfd, od)) = &self.pending else {
            return self
                .set
                .wait()
                .map(Some)
                .ctx(|| "waiting for signals".into());
        };
        let (signalled, needed) = {
            let mut fds = [
                PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
                PollFd::new(od.ready.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(e).ctx(|| "waiting for signals".into()),
            }
            let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
            (ready(&fds[0]), ready(&fds[1]))
        };
        if needed {
            if let Some((_, od)) = self.pending.take() {
                tracing::debug!("starting an on-demand service of the pod");
                (od.start)();
            }
            // Signals still queued are read by sigwait from now on.
            return Ok(None);
        }
        if !signalled {
            return Ok(None);
        }
        match sfd.read_signal().ctx(|| "reading the signalfd".into())? {
            Some(info) => Ok(i32::try_from(info.ssi_signo)
                .ok()
                .and_then(|n| Signal::try_from(n).ok())),
            None => Ok(None),
        }
    }
}

/// Apps that init could not record (it was killed) get init's own status.
fn record_missing(ctx: &PodContext, status: i32) -> Result<()> {
    for app in &ctx.manifest.apps {
        let f = ctx.dir.join("apps").join(app.name.as_str()).join("exit");
        if !f.exists() {
            if let Some(parent) = f.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            write_atomic(&f, status.to_string().as_bytes())?;
        }
    }
    Ok(())
}
