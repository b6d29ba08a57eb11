//! `rkt run`, `rkt prepare` and `rkt run-prepared`.

use std::path::Path;

use anyhow::{bail, Context, Result};
use rkt_runner::env::{parse_assignment, parse_env_file, Vars};
use rkt_runner::pods::PREPARED;
use rkt_runner::{AppSpec, MountSpec, PodSpec, PodState, RootfsMode, RunOptions};
use rkt_store::schema::{AcIdentifier, AcName, Isolator, Volume};

use super::pod_net::{self, NetFlags};
use super::run_args::{self, AppArgs, PodFlags};
use super::{fetch, open_store, pods, require_root};
use crate::cli::{GlobalArgs, RunPreparedArgs};

pub fn run(global: &GlobalArgs, raw: &[String], prepare_only: bool) -> Result<u8> {
    let command = if prepare_only { "prepare" } else { "run" };
    require_root(command)?;
    let allowed = if prepare_only {
        run_args::PREPARE_POD
    } else {
        run_args::ALL_POD
    };
    let parsed = run_args::parse(raw, allowed)?;
    let net = parsed.pod.net.check(global)?;
    let mut opts = RunOptions {
        hostname: parsed.pod.hostname.clone(),
        interactive: parsed.pod.interactive,
        stop_grace: stop_grace(parsed.pod.stop_timeout.as_deref())?,
        ..RunOptions::default()
    };
    if opts.interactive && parsed.apps.len() != 1 {
        bail!(
            "--interactive runs exactly one image; {} were given",
            parsed.apps.len()
        );
    }
    let insecure_opts = match &parsed.pod.insecure_options {
        Some(text) => text
            .parse::<crate::insecure::InsecureOptions>()
            .map_err(|e| anyhow::anyhow!("--insecure-options: {e}"))?,
        None => crate::insecure::InsecureOptions::default(),
    }
    .or(global.insecure_options);
    let insecure = insecure_opts.image;
    opts.unprotected_proc = insecure_opts.paths;
    let asked = rootfs_mode(parsed.pod.rootfs.as_deref(), parsed.pod.no_overlay)?;
    let mut store = open_store(global)?;
    let mut apps = Vec::new();
    {
        let span = tracing::debug_span!("pod.resolve_images");
        let _enter = span.enter();
        let t0 = std::time::Instant::now();
        for a in &parsed.apps {
            let id = fetch::image_for_pod(global, insecure, &mut store, &a.image)?;
            apps.push(app_spec(a, id)?);
        }
        tracing::debug!(elapsed_ms = ms(t0), "images resolved");
    }
    let rootfs = asked.unwrap_or_else(|| {
        let ids: Vec<&str> = apps.iter().map(|a| a.image_id.as_str()).collect();
        RootfsMode::default_for(&store, &ids)
    });
    let mut spec = pod_spec(&parsed.pod, apps, rootfs)?;
    spec.all_capabilities = insecure_opts.capabilities;
    spec.no_seccomp = insecure_opts.seccomp;
    let span = tracing::debug_span!("pod.prepare", rootfs = rootfs.as_str());
    let prepare_span = span.enter();
    let t0 = std::time::Instant::now();
    let pods = pods(global);
    let save = parsed.pod.uuid_file_save.clone();
    let mut pod = rkt_runner::prepare::prepare(&mut store, &pods, &spec, |uuid| {
        if let Some(path) = &save {
            std::fs::write(path, uuid).map_err(|error| rkt_runner::RunnerError::Io {
                context: format!("writing the pod UUID to {}", path.display()),
                error,
            })?;
        }
        Ok(())
    })?;
    tracing::debug!(elapsed_ms = ms(t0), "pod prepared");
    drop(prepare_span);
    if prepare_only {
        drop(store);
        let saved = parsed.pod.net.save(&pod);
        discard_on_error(&pods, &mut pod, saved)?;
        pod.move_to(PREPARED)?;
        pod.unlock();
        println!("{}", pod.uuid);
        return Ok(0);
    }
    let gathered = super::metadata::gather(global, &store, &pod);
    drop(store);
    let gathered = discard_on_error(&pods, &mut pod, gathered)?;
    let bound = network_and_metadata(&net, &pod, gathered, &mut opts);
    let bound = discard_on_error(&pods, &mut pod, bound)?;
    run_networked(&mut pod, &opts, bound)
}

/// Set up the pod's network, then bind its metadata service where the pod can reach it; on
/// error the network is released again.
fn network_and_metadata(
    net: &pod_net::NetPlan,
    pod: &rkt_runner::Pod,
    gathered: super::metadata::Gathered,
    opts: &mut RunOptions,
) -> Result<rkt_metadata::BoundMetadataServer> {
    let netns = net.setup(pod, opts)?;
    let bound = super::metadata::bind(gathered, netns.as_deref(), opts);
    if bound.is_err() {
        pod_net::teardown(&pod.dir());
    }
    bound
}

/// Run the pod, then release its network whatever the outcome (exit, stop, failed start).
fn run_networked(
    pod: &mut rkt_runner::Pod,
    opts: &RunOptions,
    bound: rkt_metadata::BoundMetadataServer,
) -> Result<u8> {
    let result = super::metadata::run_serving(pod, opts, bound);
    pod_net::teardown(&pod.dir());
    Ok(u8::try_from(result?).unwrap_or(254))
}

pub fn run_prepared(global: &GlobalArgs, args: &RunPreparedArgs) -> Result<u8> {
    require_root("run-prepared")?;
    let pods = pods(global);
    let mut pod = pods.find(&args.uuid)?;
    let state = pod.state()?;
    if state != PodState::Prepared {
        bail!(
            "pod {} is {state}: only prepared pods can be run with run-prepared",
            pod.uuid
        );
    }
    if !pod.try_lock(nix::fcntl::FlockArg::LockExclusiveNonblock)? {
        bail!("pod {} is being started by another process", pod.uuid);
    }
    let net = NetFlags::load(&pod)?
        .override_with(args.net_flags())
        .check(global)?;
    let mut opts = RunOptions {
        hostname: args.hostname.clone(),
        interactive: args.interactive,
        stop_grace: args.stop_timeout,
        unprotected_proc: global.insecure_options.paths,
        ..RunOptions::default()
    };
    let mut store = open_store(global)?;
    if let Some(text) = &args.rootfs {
        let mode: RootfsMode = text.parse()?;
        rkt_runner::prepare::change_rootfs(&mut store, &pod, mode)
            .with_context(|| format!("cannot switch pod {} to --rootfs={mode}", pod.uuid))?;
    }
    let gathered = super::metadata::gather(global, &store, &pod)?;
    drop(store);
    let bound = network_and_metadata(&net, &pod, gathered, &mut opts)?;
    run_networked(&mut pod, &opts, bound)
}

/// A pod that cannot start is removed, not left prepared in `prepare/`.
fn discard_on_error<T>(
    pods: &rkt_runner::Pods,
    pod: &mut rkt_runner::Pod,
    r: Result<T>,
) -> Result<T> {
    if r.is_err() {
        pod.unlock();
        let _ = pods.remove(&pod.uuid);
    }
    r
}

/// `--rootfs=lazy|rendered|copy`; `--no-overlay` means copy. None: neither flag, so the mode
/// is picked once the images are known ([`RootfsMode::default_for`]).
fn rootfs_mode(flag: Option<&str>, no_overlay: bool) -> Result<Option<RootfsMode>> {
    match (flag, no_overlay) {
        (None, false) => Ok(None),
        (None, true) => Ok(Some(RootfsMode::Copy)),
        (Some(text), no_overlay) => {
            let mode: RootfsMode = text.parse()?;
            if no_overlay && mode != RootfsMode::Copy {
                bail!(
                    "--no-overlay means --rootfs=copy; it cannot be combined with --rootfs={mode}"
                );
            }
            Ok(Some(mode))
        }
    }
}

fn ms(t0: std::time::Instant) -> f64 {
    t0.elapsed().as_secs_f64() * 1000.0
}

fn stop_grace(text: Option<&str>) -> Result<std::time::Duration> {
    match text {
        None => Ok(rkt_runner::DEFAULT_STOP_GRACE),
        Some(t) => crate::duration::parse(t).map_err(|e| anyhow::anyhow!("--stop-timeout: {e}")),
    }
}

/// `--caps-retain` / `--caps-remove` as the appc isolator they stand for.
fn caps_isolators(a: &AppArgs) -> Result<Vec<Isolator>> {
    let (kind, list, flag) = match (&a.caps_retain, &a.caps_remove) {
        (Some(_), Some(_)) => bail!(
            "image {}: --caps-retain and --caps-remove cannot both be given (retain names the whole set)",
            a.image
        ),
        (Some(l), None) => (rkt_runner::caps::RETAIN_SET, l, "--caps-retain"),
        (None, Some(l)) => (rkt_runner::caps::REMOVE_SET, l, "--caps-remove"),
        (None, None) => return Ok(Vec::new()),
    };
    let names = list
        .split(',')
        .filter(|n| !n.trim().is_empty())
        .map(|n| rkt_runner::caps::canonical(n).with_context(|| flag.to_string()))
        .collect::<Result<Vec<_>>>()?;
    if names.is_empty() {
        bail!("{flag}: name at least one capability, e.g. {flag}=CAP_NET_ADMIN");
    }
    let iso = Isolator::new(
        AcIdentifier::parse(kind)?,
        serde_json::json!({ "set": names }),
    )
    .with_context(|| flag.to_string())?;
    Ok(vec![iso])
}

/// `--memory` / `--cpu` as appc `resource/memory` / `resource/cpu` limits (Kubernetes
/// quantities: `64Mi`, `1G`, `500m`).
fn resource_isolators(a: &AppArgs) -> Result<Vec<Isolator>> {
    let mut out = Vec::new();
    for (flag, kind, value) in [("--memory", "memory", &a.memory), ("--cpu", "cpu", &a.cpu)] {
        let Some(v) = value else { continue };
        let q = rkt_store::schema::Quantity::parse(v).map_err(|_| {
            anyhow::anyhow!("{flag}={v}: not a quantity (examples: 64Mi, 1G, 500m)")
        })?;
        let n = if kind == "cpu" {
            q.milli_value()
        } else {
            q.value()
        };
        let n = n
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| anyhow::anyhow!("{flag}={v}: must be positive"))?;
        rkt_runner::cgroups::check(kind, n).map_err(|e| anyhow::anyhow!("{flag}={v}: {e}"))?;
        let name = AcIdentifier::parse(&format!("resource/{kind}"))?;
        let iso = Isolator::new(name, serde_json::json!({ "limit": q.as_str() }))
            .with_context(|| flag.to_string())?;
        out.push(iso);
    }
    Ok(out)
}

/// rkt's `--seccomp mode=remove|retain[,errno=ENAME],CALL,…` as appc's seccomp set isolator.
fn seccomp_isolators(a: &AppArgs) -> Result<Vec<Isolator>> {
    let Some(spec) = &a.seccomp else {
        return Ok(Vec::new());
    };
    let (mut mode, mut errno, mut calls) = (None, None, Vec::new());
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item.split_once('=') {
            Some(("mode", m)) => mode = Some(m),
            Some(("errno", e)) => {
                rkt_runner::seccomp::errno(e).map_err(|e| anyhow::anyhow!("--seccomp: {e}"))?;
                errno = Some(e)
            }
            Some((k, _)) => bail!("--seccomp: unknown option {k:?} (mode=, errno=)"),
            None => calls.push(item),
        }
    }
    let kind = match mode {
        Some("remove") => rkt_runner::seccomp::REMOVE_SET,
        Some("retain") => rkt_runner::seccomp::RETAIN_SET,
        _ => bail!("--seccomp={spec}: give mode=remove or mode=retain, then system calls"),
    };
    if calls.is_empty() {
        bail!("--seccomp={spec}: name at least one system call");
    }
    rkt_runner::seccomp::expand(&calls).map_err(|e| anyhow::anyhow!("--seccomp: {e}"))?;
    let mut value = serde_json::json!({ "set": calls });
    if let Some(e) = errno {
        value["errno"] = serde_json::json!(e);
    }
    let iso = Isolator::new(AcIdentifier::parse(kind)?, value).context("--seccomp")?;
    Ok(vec![iso])
}

/// `--cpu-shares` and `--oom-score-adj` as appc's `os/linux/cpu-shares` and
/// `os/linux/oom-score-adj` (integers, range-checked by the schema).
fn integer_isolators(a: &AppArgs) -> Result<Vec<Isolator>> {
    let mut out = Vec::new();
    for (flag, name, value) in [
        ("--cpu-shares", "os/linux/cpu-shares", &a.cpu_shares),
        (
            "--oom-score-adj",
            "os/linux/oom-score-adj",
            &a.oom_score_adj,
        ),
    ] {
        let Some(v) = value else { continue };
        let n: i64 = v
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("{flag}={v}: not an integer"))?;
        let iso = Isolator::new(AcIdentifier::parse(name)?, serde_json::json!(n))
            .map_err(|e| anyhow::anyhow!("{flag}={v}: {e}"))?;
        out.push(iso);
    }
    Ok(out)
}

fn app_spec(a: &AppArgs, image_id: String) -> Result<AppSpec> {
    let gids = match &a.supplementary_gids {
        None => None,
        Some(s) => Some(
            s.split(',')
                .filter(|g| !g.is_empty())
                .map(|g| {
                    g.trim()
                        .parse::<i64>()
                        .with_context(|| format!("--supplementary-gids: {g:?} is not a number"))
                })
                .collect::<Result<Vec<_>>>()?,
        ),
    };
    Ok(AppSpec {
        image_id,
        exec: a.exec.clone(),
        args: a.args.clone(),
        working_dir: a.working_dir.clone(),
        user: a.user.clone(),
        group: a.group.clone(),
        supplementary_gids: gids,
        name: a.name.clone(),
        environment: assignments(&a.environment, "--environment")?,
        mounts: a
            .mounts
            .iter()
            .map(|m| MountSpec::parse(m))
            .collect::<Result<_, _>>()?,
        readonly_rootfs: a.readonly_rootfs,
        isolators: [
            caps_isolators(a)?,
            resource_isolators(a)?,
            integer_isolators(a)?,
            seccomp_isolators(a)?,
        ]
        .concat(),
    })
}

fn assignments(items: &[String], flag: &str) -> Result<Vars> {
    let mut out: Vars = Vec::new();
    for s in items {
        let (k, v) = parse_assignment(s).with_context(|| flag.to_string())?;
        if out.iter().any(|(o, _)| *o == k) {
            bail!("{flag}: variable {k} is set twice");
        }
        out.push((k, v));
    }
    Ok(out)
}

fn pod_spec(p: &PodFlags, apps: Vec<AppSpec>, rootfs: RootfsMode) -> Result<PodSpec> {
    let mut volumes = Vec::new();
    let mut mounts: Vec<MountSpec> = p
        .mounts
        .iter()
        .map(|m| MountSpec::parse(m))
        .collect::<Result<_, _>>()?;
    for (i, v) in p.volumes.iter().enumerate() {
        // An appc volume is `NAME,kind=…` (names have no ':'); anything else with a ':' is
        // the Docker shorthand, whose errors say what it needs (`./dir:/x` included).
        if v.starts_with('/') || (v.contains(':') && !v.contains(',')) {
            let (vol, mount) = docker_volume(v, i)?;
            volumes.push(vol);
            mounts.push(mount);
        } else {
            volumes.push(Volume::parse_cli(v).with_context(|| format!("--volume {v}"))?);
        }
    }
    let mut set_env_file = Vars::new();
    for f in &p.set_env_file {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("--set-env-file: cannot read {f}"))?;
        let vars = parse_env_file(&text, f)?;
        set_env_file = rkt_runner::env::merge(&[&set_env_file, &vars]);
    }
    Ok(PodSpec {
        apps,
        volumes,
        mounts,
        inherited_env: if p.inherit_env {
            std::env::vars().collect()
        } else {
            Vars::new()
        },
        set_env_file,
        set_env: assignments(&p.set_env, "--set-env")?,
        rootfs,
        all_capabilities: false,
        no_seccomp: false,
    })
}

/// The Docker-style `--volume /host:/ctr[:ro|rw]`, as a host volume mounted in every app.
fn docker_volume(s: &str, index: usize) -> Result<(Volume, MountSpec)> {
    let parts: Vec<&str> = s.split(':').collect();
    let (host, ctr, ro) = match parts.as_slice() {
        [h, c] => (*h, *c, false),
        [h, c, "ro"] => (*h, *c, true),
        [h, c, "rw"] => (*h, *c, false),
        _ => bail!("--volume {s}: expected NAME,kind=... or /HOST/PATH:/CONTAINER/PATH[:ro]"),
    };
    if !Path::new(host).is_absolute() || !ctr.starts_with('/') {
        bail!("--volume {s}: both paths must be absolute (/HOST/PATH:/CONTAINER/PATH[:ro])");
    }
    if !Path::new(host).exists() {
        bail!("--volume {s}: {host} does not exist on the host");
    }
    let name = AcName::parse(&format!("volume-{index}"))?;
    let vol = Volume::parse_cli(&format!(
        "{},kind=host,source={host},readOnly={ro}",
        name.as_str()
    ))
    .with_context(|| format!("--volume {s}"))?;
    Ok((
        vol,
        MountSpec {
            volume: name.as_str().to_string(),
            target: ctr.to_string(),
        },
    ))
}
