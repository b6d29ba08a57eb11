//! `rkt list`, `rkt status` and `rkt cat-manifest`.

use anyhow::Result;
use rkt_runner::PodState;

use super::{pod_uuids, pods};
use crate::cli::{CatManifestArgs, Format, GlobalArgs, ListArgs, StatusArgs};
use crate::output;

/// A pod's time as nanoseconds since the epoch, as `output` formats times.
fn nanos(t: Option<std::time::SystemTime>) -> Option<i64> {
    let since = t?.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(since.as_nanos()).ok()
}

pub fn list(global: &GlobalArgs, args: &ListArgs) -> Result<u8> {
    let mut json = Vec::new();
    let mut rows = Vec::new();
    for pod in pods(global).all()? {
        let Ok(state) = pod.state() else { continue };
        let manifest = pod.manifest().ok();
        let apps: Vec<(String, String)> = manifest
            .iter()
            .flat_map(|m| m.apps.iter())
            .map(|a| {
                let image = a
                    .image
                    .name
                    .as_ref()
                    .map(|n| n.as_str().to_string())
                    .unwrap_or_default();
                (a.name.as_str().to_string(), image)
            })
            .collect();
        let (created, started) = (nanos(pod.created()), nanos(pod.started()));
        if args.format.is_some() {
            json.push(serde_json::json!({
                "name": pod.uuid,
                "state": state.as_str(),
                "networks": super::pod_net::json_field(&pod),
                "app_names": apps.iter().map(|a| a.0.clone()).collect::<Vec<_>>(),
                "created_at": created.map(|n| n / 1_000_000_000),
                "started_at": started.map(|n| n / 1_000_000_000),
            }));
            continue;
        }
        let when = |t: Option<i64>| match t {
            None => String::new(),
            Some(n) if args.full => output::rfc3339(n),
            Some(n) => output::ago(n),
        };
        let uuid = if args.full {
            pod.uuid.clone()
        } else {
            pod.uuid[..8].to_string()
        };
        let (app, image) = apps.first().cloned().unwrap_or_default();
        rows.push(vec![
            uuid,
            app,
            image,
            state.to_string(),
            when(created),
            when(started),
            super::pod_net::list_field(&pod),
        ]);
        for (app, image) in apps.iter().skip(1) {
            rows.push(vec![
                String::new(),
                app.clone(),
                image.clone(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ]);
        }
    }
    match args.format {
        Some(Format::Json) => println!("{}", serde_json::to_string(&json)?),
        Some(Format::JsonPretty) => println!("{}", serde_json::to_string_pretty(&json)?),
        None => {
            let header = [
                "UUID",
                "APP",
                "IMAGE NAME",
                "STATE",
                "CREATED",
                "STARTED",
                "NETWORKS",
            ];
            let legend = (!args.no_legend).then_some(&header[..]);
            print!("{}", output::table(legend, &rows));
        }
    }
    Ok(0)
}

pub fn status(global: &GlobalArgs, args: &StatusArgs) -> Result<u8> {
    let uuids = pod_uuids(args.uuid.as_slice(), args.pod.uuid_file.as_deref())?;
    let mut pod = pods(global).find(&uuids[0])?;
    if args.wait {
        pod.wait_unlocked()?;
        // The supervisor records exit statuses before it lets go of the lock.
        pod = pods(global).find(&pod.uuid)?;
    }
    let state = pod.state()?;
    println!("state={state}");
    let started = nanos(pod.started());
    if let Some(t) = nanos(pod.created()) {
        println!("created={}", output::rfc3339(t));
    }
    if let Some(t) = started {
        println!("started={}", output::rfc3339(t));
    }
    if state == PodState::Running {
        println!("networks={}", super::pod_net::list_field(&pod));
    }
    if let Some(pid) = pod.pid() {
        println!("pid={pid}");
    }
    println!("exited={}", state.is_exited());
    if started.is_some() {
        for (name, code) in pod.app_exit_codes().unwrap_or_default() {
            if let Some(code) = code {
                println!("app-{name}={code}");
            }
        }
    }
    Ok(0)
}

pub fn cat_manifest(global: &GlobalArgs, args: &CatManifestArgs) -> Result<u8> {
    let uuids = pod_uuids(args.uuid.as_slice(), args.pod.uuid_file.as_deref())?;
    let pod = pods(global).find(&uuids[0])?;
    let m = pod.manifest()?;
    println!(
        "{}",
        if args.pretty_print {
            m.to_json_pretty()
        } else {
            m.to_json()
        }
    );
    Ok(0)
}
