//! `rkt stop`, `rkt enter`, `rkt rm` and `rkt gc`.

use anyhow::{bail, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rkt_runner::PodState;

use super::{pod_uuids, pods, require_root};
use crate::cli::{EnterArgs, GcArgs, GlobalArgs, RmArgs, StopArgs};

pub fn stop(global: &GlobalArgs, args: &StopArgs) -> Result<u8> {
    let mut failed = false;
    for uuid in pod_uuids(&args.uuids, args.pod.uuid_file.as_deref())? {
        match stop_one(global, &uuid, args.force) {
            Ok(full) => println!("{full}"),
            Err(e) => {
                eprintln!("rkt: cannot stop pod {uuid}: {e:#}");
                failed = true;
            }
        }
    }
    Ok(if failed { 254 } else { 0 })
}

fn stop_one(global: &GlobalArgs, uuid: &str, force: bool) -> Result<String> {
    let pod = pods(global).find(uuid)?;
    let state = pod.state()?;
    if state != PodState::Running {
        bail!("pod {} is {state}, not running", pod.uuid);
    }
    let (pid, sig) = if force {
        (pod.pid(), Signal::SIGKILL)
    } else {
        (pod.supervisor_pid(), Signal::SIGTERM)
    };
    let Some(pid) = pid else {
        bail!(
            "pod {} has no recorded process yet; retry in a moment",
            pod.uuid
        );
    };
    kill(Pid::from_raw(pid), sig).map_err(|e| anyhow::anyhow!("sending {sig} to {pid}: {e}"))?;
    Ok(pod.uuid.clone())
}

pub fn enter(global: &GlobalArgs, args: &EnterArgs) -> Result<u8> {
    require_root("enter")?;
    let pod = pods(global).find(&args.uuid)?;
    let cmd = if args.cmd.is_empty() {
        vec!["/bin/bash".to_string()]
    } else {
        args.cmd.clone()
    };
    let code = rkt_runner::enter::enter(&pod, args.app.as_deref(), &cmd)?;
    Ok(u8::try_from(code).unwrap_or(254))
}

pub fn rm(global: &GlobalArgs, args: &RmArgs) -> Result<u8> {
    require_root("rm")?;
    let mut failed = false;
    for uuid in pod_uuids(&args.uuids, args.pod.uuid_file.as_deref())? {
        match pods(global).remove(&uuid) {
            Ok(full) => println!("\"{full}\""),
            Err(e) => {
                eprintln!("rkt: cannot remove pod {uuid}: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed { 254 } else { 0 })
}

pub fn gc(global: &GlobalArgs, args: &GcArgs) -> Result<u8> {
    require_root("gc")?;
    let report = pods(global).gc(args.grace_period, args.expire_prepared, args.mark_only)?;
    for uuid in &report.marked {
        eprintln!("rkt: moving pod {uuid:?} to garbage");
    }
    for uuid in &report.removed {
        eprintln!("rkt: garbage collecting pod {uuid:?}");
    }
    for (uuid, e) in &report.failed {
        eprintln!("rkt: cannot remove pod {uuid:?}: {e}");
    }
    Ok(if report.failed.is_empty() { 0 } else { 254 })
}
