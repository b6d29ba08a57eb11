//! The pod's init: PID 1 of the pod's PID namespace. It mounts each app's rootfs (overlayfs)
//! in the pod's mount namespace, starts one app supervisor per app, reaps every process,
//! records each app's exit status and forwards stop signals.

use std::collections::BTreeMap;
use std::path::Path;

use nix::mount::{mount, MsFlags};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::error::{Context, Result, RunnerError};
use crate::gate::GateWaiter;
use crate::pods::write_atomic_at;
use crate::run::PodContext;
use crate::signals;

/// `gate`: for lazy pods, where init waits until the supervisor has mounted the lazy trees.
pub(crate) fn main(ctx: &PodContext, gate: Option<GateWaiter>) -> ! {
    let code = match run(ctx, gate) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rkt: pod init: {e}");
            254
        }
    };
    signals::exit_now(code)
}

fn run(ctx: &PodContext, gate: Option<GateWaiter>) -> Result<i32> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).ctx(|| "prctl(PDEATHSIG)".into())?;
    // A session of the pod's own, without a controlling terminal: apps must not share
    // `rkt run`'s (with it, an app whose output goes to the host's terminal could push input
    // into it with TIOCSTI), and the terminal's job-control signals (^C, ^Z) reach the
    // supervisor only, which stops the pod its own way. The `--interactive` app makes a
    // session of its own on its pseudo-terminal (console.rs).
    nix::unistd::setsid().ctx(|| "setsid for the pod's init".into())?;
    if let Some(ns) = &ctx.opts.netns {
        join_netns(&ctx.dir.join(ns))?;
    }
    // The supervisor is outside this PID namespace (getppid() is 0 here); it checks that init
    // is alive after writing the pid file, and kills it if it dies itself (PDEATHSIG above).
    // Mounts made in the pod stay in the pod; the host's later mounts still propagate in.
    crate::mounts::make_root_slave()?;
    nix::unistd::sethostname(&ctx.hostname).ctx(|| format!("setting hostname {}", ctx.hostname))?;
    if let Some(console) = ctx.console {
        // The supervisor's end: the pod never needs it.
        let _ = nix::unistd::close(console.master);
    }
    // The app of `--interactive` reads rkt run's stdin (a pipe, say) or its own terminal
    // (attached in the app's process); everything else reads /dev/null.
    if !ctx.opts.interactive || ctx.console.is_some() {
        null_stdin()?;
    }
    if let Some(gate) = gate {
        let t0 = std::time::Instant::now();
        gate.wait()?;
        tracing::debug!(
            waited_ms = t0.elapsed().as_secs_f64() * 1000.0,
            "pod init: lazy root filesystems ready"
        );
    }
    // Exit statuses are written through this: a pod's only app shares init's mount namespace
    // and its pivot_root takes init along into the app's root (app.rs, `shares_init_mounts`).
    let apps_dir = std::fs::File::open(ctx.dir.join("apps"))
        .ctx(|| format!("opening {}", ctx.dir.join("apps").display()))?;
    let mut live: BTreeMap<Pid, String> = BTreeMap::new();
    // Apps whose supervisor execs the app itself (no event handlers): init is the one that
    // kills them when the grace period after a stop signal ends.
    let mut direct: Vec<Pid> = Vec::new();
    for app in &ctx.manifest.apps {
        let name = app.name.as_str();
        let dir = ctx.dir.join("apps").join(name);
        if ctx.overlay {
            let lower = ctx.lower.get(name).ok_or_else(|| {
                RunnerError::Invalid(format!(
                    "app {name}: options.json records no overlayfs lower dir; prepare the pod again"
                ))
            })?;
            mount_overlay(&dir, lower, ctx.mount_points.as_deref())?;
        }
        match signals::fork()? {
            None => crate::app::main(ctx, app),
            Some(pid) => {
                live.insert(pid, name.to_string());
                if crate::app::execs_directly(app) {
                    direct.push(pid);
                }
            }
        }
    }
    let first = ctx
        .manifest
        .apps
        .first()
        .map(|a| a.name.as_str().to_string());
    let mut first_code = 0;
    let mut stopping = false;
    while !live.is_empty() {
        match signals::wait()? {
            Signal::SIGCHLD => {
                for (pid, code) in reap() {
                    if let Some(name) = live.remove(&pid) {
                        let f = Path::new(&name).join("exit");
                        write_atomic_at(&apps_dir, &f, code.to_string().as_bytes())?;
                        if Some(&name) == first.as_ref() {
                            first_code = code;
                        }
                    }
                }
            }
            Signal::SIGALRM => {
                for pid in direct.iter().filter(|p| live.contains_key(p)) {
                    let _ = kill(*pid, Signal::SIGKILL);
                }
            }
            _ => {
                for pid in live.keys() {
                    let _ = kill(*pid, Signal::SIGTERM);
                }
                // App supervisors time their own app's grace period; apps that are their own
                // supervisor get it from here.
                if !stopping && !direct.is_empty() {
                    stopping = true;
                    let secs = u32::try_from(ctx.opts.stop_grace.as_secs()).unwrap_or(u32::MAX);
                    nix::unistd::alarm::set(secs.max(1));
                }
            }
        }
    }
    Ok(first_code)
}

/// Join the pod's network namespace (set up by the supervisor): every app shares it.
fn join_netns(ns: &Path) -> Result<()> {
    let f =
        std::fs::File::open(ns).ctx(|| format!("opening network namespace {}", ns.display()))?;
    nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET)
        .ctx(|| format!("joining network namespace {}", ns.display()))
}

/// Reap every exited child; return (pid, status) pairs.
fn reap() -> Vec<(Pid, i32)> {
    let mut out = Vec::new();
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return out,
            Ok(st) => {
                if let (Some(pid), Some(code)) = (st.pid(), signals::exit_code(st)) {
                    out.push((pid, code));
                }
            }
        }
    }
}

fn null_stdin() -> Result<()> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open("/dev/null").ctx(|| "opening /dev/null".into())?;
    nix::unistd::dup2(f.as_raw_fd(), 0).ctx(|| "redirecting stdin".into())?;
    Ok(())
}

/// Mount the app's overlayfs: `lower` (the store's rendered tree, or the lazy tree) below,
/// under the shared layer of mount points if any, upper and work in the pod.
fn mount_overlay(dir: &Path, lower: &str, mount_points: Option<&Path>) -> Result<()> {
    // A relative lower dir (the lazy tree) is inside the app's directory, which moves with the
    // pod's state.
    let lower = path_str(&dir.join(lower))?;
    let upper = dir.join("upper");
    let work = dir.join("work");
    let layer = mount_points.map(path_str).transpose()?;
    let paths = [lower, path_str(&upper)?, path_str(&work)?];
    if let Some(bad) = paths
        .iter()
        .chain(&layer)
        .find(|p| p.contains([',', ':', '\\']))
    {
        return Err(RunnerError::Invalid(format!(
            "cannot use overlayfs with {bad}: the path contains ',', ':' or '\\'; use --no-overlay or another --dir"
        )));
    }
    // The mount point layer is the top lower layer: an image's own /proc, /sys or /dev (which
    // the app's mounts hide) merge below it.
    let lowers = match &layer {
        Some(layer) => format!("{layer}:{}", paths[0]),
        None => paths[0].clone(),
    };
    let data = format!(
        "lowerdir={lowers},upperdir={},workdir={}",
        paths[1], paths[2]
    );
    let target = dir.join("rootfs");
    let overlay = |data: &str| {
        mount(
            Some("overlay"),
            &target,
            Some("overlay"),
            MsFlags::empty(),
            Some(data),
        )
    };
    // `volatile` (Linux 5.10+): the overlay never syncs its upper filesystem. Without it, the
    // last unmount of the overlay — when the pod's mount namespace goes away — runs
    // sync_filesystem on the whole filesystem holding the pod directory, which writes back
    // every dirty file of the host's, not only the pod's, and waits for a journal commit: most
    // of a small pod's start and stop time on a busy host (docs/benchmarks.md, "Pod start").
    // What it gives up: an app's fsync(2) on its root filesystem does not reach the disk. A
    // pod's upper dir is never mounted again (a pod runs once; after a host crash it is
    // garbage), so nothing reads it back after a crash; data that must survive one belongs on
    // a volume, which is a bind mount and syncs as usual. Kernels without the option (EINVAL)
    // get the plain overlay.
    let volatile = format!("{data},volatile");
    match overlay(&volatile) {
        Err(nix::errno::Errno::EINVAL) => overlay(&data),
        r => r,
    }
    .ctx(|| format!("mounting overlayfs on {} ({data})", target.display()))
}

fn path_str(p: &Path) -> Result<String> {
    p.to_str()
        .map(str::to_string)
        .ok_or_else(|| RunnerError::Invalid(format!("{} is not UTF-8", p.display())))
}
