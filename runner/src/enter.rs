//! `rkt enter`: run a command inside a running pod's namespaces and an app's rootfs.

use std::ffi::CString;
use std::fs::File;

use nix::sched::{setns, CloneFlags};
use nix::sys::wait::waitpid;

use crate::error::{Context, Result, RunnerError};
use crate::pods::{Pod, PodState};
use crate::signals;

/// Run `cmd` in app `app` (the only app if None) of the running `pod`; return its status.
pub fn enter(pod: &Pod, app: Option<&str>, cmd: &[String]) -> Result<i32> {
    let state = pod.state()?;
    if state != PodState::Running {
        return Err(RunnerError::WrongState {
            uuid: pod.uuid.clone(),
            state: state.to_string(),
            what: "only running pods can be entered".into(),
        });
    }
    let manifest = pod.manifest()?;
    let name = match app {
        Some(n) => manifest
            .app(n)
            .map(|a| a.name.as_str().to_string())
            .ok_or_else(|| RunnerError::Invalid(format!("pod {} has no app {n:?}", pod.uuid)))?,
        None if manifest.apps.len() == 1 => manifest.apps[0].name.as_str().to_string(),
        None => {
            let names: Vec<&str> = manifest.apps.iter().map(|a| a.name.as_str()).collect();
            return Err(RunnerError::Invalid(format!(
                "pod {} has several apps ({}); choose one with --app",
                pod.uuid,
                names.join(", ")
            )));
        }
    };
    let init = pod
        .pid()
        .ok_or_else(|| RunnerError::Invalid(format!("pod {} has no recorded pid", pod.uuid)))?;
    let app_pid = pod
        .read_text(&format!("apps/{name}/pid"))
        .and_then(|p| p.parse::<i32>().ok())
        .ok_or_else(|| {
            RunnerError::Invalid(format!("app {name} of pod {} is not running", pod.uuid))
        })?;
    let open = |pid: i32, ns: &str| {
        let p = format!("/proc/{pid}/ns/{ns}");
        File::open(&p).ctx(|| format!("opening {p} (has app {name} exited?)"))
    };
    let namespaces = [
        (open(init, "ipc")?, CloneFlags::CLONE_NEWIPC),
        (open(init, "uts")?, CloneFlags::CLONE_NEWUTS),
        (open(init, "pid")?, CloneFlags::CLONE_NEWPID),
        (open(app_pid, "mnt")?, CloneFlags::CLONE_NEWNS),
    ];
    let argv = cmd
        .iter()
        .map(|a| {
            CString::new(a.as_str())
                .map_err(|_| RunnerError::Invalid(format!("{a:?} contains NUL")))
        })
        .collect::<Result<Vec<_>>>()?;
    let env: Vec<CString> = enter_env(&manifest, &name);
    // The command gets what the app has: its capability bounding set and its cgroups (opened
    // here, while the host's /sys/fs/cgroup is still visible).
    let app_section = manifest
        .app(&name)
        .and_then(|a| a.app.clone())
        .unwrap_or_default();
    let keep = crate::caps::for_app(&app_section, &name)?;
    let filter = crate::seccomp::filter_for(&app_section, &name)?;
    let cgroups = crate::cgroups::open_recorded(&pod.dir().join("apps").join(&name))?;
    for (f, kind) in &namespaces {
        setns(f, *kind).ctx(|| format!("entering the pod's {kind:?} namespace"))?;
    }
    match signals::fork()? {
        None => {
            let _ = nix::unistd::chdir("/");
            let confined = crate::cgroups::join(&cgroups)
                .and_then(|()| crate::app::confine(&keep, filter.as_ref()));
            if let Err(e) = confined {
                eprintln!("rkt: enter: {e}");
                signals::exit_now(254)
            }
            signals::default_dispositions();
            let program = program_path(&cmd[0]);
            let err = match CString::new(program.clone()) {
                Ok(p) => nix::unistd::execve(&p, &argv, &env).err(),
                Err(_) => Some(nix::errno::Errno::EINVAL),
            };
            let why = err.map(|e| e.desc()).unwrap_or("execve returned");
            eprintln!("rkt: enter: cannot run {program} in the app's rootfs: {why}");
            signals::exit_now(254)
        }
        Some(child) => {
            let st = waitpid(child, None).ctx(|| "waiting for the command".into())?;
            Ok(signals::exit_code(st).unwrap_or(254))
        }
    }
}

/// A command name looked up in appc's default PATH inside the app's rootfs.
fn program_path(cmd: &str) -> String {
    if cmd.contains('/') {
        return cmd.to_string();
    }
    crate::env::DEFAULT_PATH
        .split(':')
        .map(|d| format!("{d}/{cmd}"))
        .find(|p| std::path::Path::new(p).is_file())
        .unwrap_or_else(|| cmd.to_string())
}

fn enter_env(manifest: &rkt_store::schema::PodManifest, name: &str) -> Vec<CString> {
    let vars: crate::env::Vars = manifest
        .app(name)
        .and_then(|a| a.app.as_ref())
        .map(|a| {
            a.environment
                .iter()
                .map(|v| (v.name.clone(), v.value.clone()))
                .collect()
        })
        .unwrap_or_default();
    let mut env = crate::env::runtime_env(&vars, name, None);
    if let Ok(term) = std::env::var("TERM") {
        env.push(format!("TERM={term}"));
    }
    env.into_iter()
        .filter_map(|e| CString::new(e).ok())
        .collect()
}
