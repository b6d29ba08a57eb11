//! Preparing a pod: resolve each app from its image and the command line, match volumes to
//! mount points, write the pod manifest, create empty volumes, and get each app's rootfs from
//! the store (an overlayfs lower dir, or a copy with `--no-overlay`).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rkt_store::schema::{
    AcIdentifier, AcName, Annotations, App, Environment, EnvironmentVariable, ImageId, Isolator,
    Mount, PodManifest, RuntimeApp, RuntimeImage, SemVer, Volume,
};
use rkt_store::Store;

use crate::env::{merge, Vars};
use crate::error::{Context, Result, RunnerError};
use crate::pods::{self, write_atomic, Pod, Pods};
use crate::rootfs::{lazy_mountpoint, RootfsMode};

/// `--mount volume=NAME,target=/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    pub volume: String,
    pub target: String,
}

impl MountSpec {
    /// Parse rkt's `volume=NAME,target=/path`.
    pub fn parse(s: &str) -> Result<MountSpec> {
        let (mut volume, mut target) = (None, None);
        for part in s.split(',') {
            match part.split_once('=') {
                Some(("volume", v)) if volume.is_none() => volume = Some(v.to_string()),
                Some(("target", t)) if target.is_none() => target = Some(t.to_string()),
                _ => {
                    return Err(RunnerError::Invalid(format!(
                        "--mount {s:?}: expected volume=NAME,target=/PATH"
                    )))
                }
            }
        }
        match (volume, target) {
            (Some(volume), Some(target)) if target.starts_with('/') => {
                Ok(MountSpec { volume, target })
            }
            _ => Err(RunnerError::Invalid(format!(
                "--mount {s:?}: expected volume=NAME,target=/PATH with an absolute target"
            ))),
        }
    }
}

/// One app as the command line describes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppSpec {
    /// Full image ID in the store.
    pub image_id: String,
    pub exec: Option<String>,
    /// Arguments after `--` (None when no `--` was given).
    pub args: Option<Vec<String>>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub supplementary_gids: Option<Vec<i64>>,
    pub name: Option<String>,
    /// `--environment` of this app.
    pub environment: Vars,
    pub mounts: Vec<MountSpec>,
    pub readonly_rootfs: Option<bool>,
    /// Isolators from the command line (`--caps-retain`, …): they replace the image's
    /// isolators of the same kind.
    pub isolators: Vec<Isolator>,
}

/// A pod as the command line describes it.
#[derive(Debug, Clone, Default)]
pub struct PodSpec {
    pub apps: Vec<AppSpec>,
    pub volumes: Vec<Volume>,
    /// `--mount` before the first image: for every app.
    pub mounts: Vec<MountSpec>,
    /// The caller's environment with `--inherit-env`, else empty.
    pub inherited_env: Vars,
    pub set_env_file: Vars,
    pub set_env: Vars,
    /// How the apps' root filesystems are assembled (`--rootfs`; `--no-overlay` is `Copy`).
    pub rootfs: RootfsMode,
    /// `--insecure-options=capabilities`: every app keeps every capability.
    pub all_capabilities: bool,
    /// `--insecure-options=seccomp`: no app gets a seccomp filter.
    pub no_seccomp: bool,
}

/// Prepare a new pod. It is returned locked in `prepare/`; the caller moves it on. `on_uuid`
/// runs as soon as the UUID exists (for `--uuid-file-save`). On failure nothing is left.
pub fn prepare(
    store: &mut Store,
    pods: &Pods,
    spec: &PodSpec,
    on_uuid: impl FnOnce(&str) -> Result<()>,
) -> Result<Pod> {
    let _prepare_lock = pods.prepare_lock(false)?;
    let mut pod = pods.create()?;
    let result = on_uuid(&pod.uuid).and_then(|()| fill(store, &pod, spec));
    if let Err(e) = result {
        if pod.move_to(pods::GARBAGE).is_ok() {
            let _ = std::fs::remove_dir_all(pod.dir());
        }
        return Err(e);
    }
    Ok(pod)
}

fn fill(store: &mut Store, pod: &Pod, spec: &PodSpec) -> Result<()> {
    if spec.apps.is_empty() {
        return Err(RunnerError::Invalid(
            "a pod needs at least one image".into(),
        ));
    }
    let ids: Vec<&str> = spec.apps.iter().map(|a| a.image_id.as_str()).collect();
    write_atomic(&pod.dir().join("images"), ids.join("\n").as_bytes())?;
    let manifest = build_manifest(store, spec)?;
    let mode = effective_mode(spec.rootfs)?;
    create_volumes(pod, &manifest)?;
    set_rootfs(store, pod, &manifest, mode)?;
    manifest.validate()?;
    write_atomic(
        &pod.dir().join(pods::MANIFEST_FILE),
        manifest.to_json_pretty().as_bytes(),
    )
}

/// The mode a pod can use on this host: overlay modes fall back to `copy` without overlayfs
/// (as rkt did); `lazy` needs /dev/fuse.
fn effective_mode(asked: RootfsMode) -> Result<RootfsMode> {
    if asked.uses_overlay() && !overlay_supported() {
        tracing::warn!(
            "disabling overlay support: overlay is not in /proc/filesystems; copying rootfs"
        );
        return Ok(RootfsMode::Copy);
    }
    if asked == RootfsMode::Lazy && !Path::new("/dev/fuse").exists() {
        return Err(RunnerError::Invalid(
            "--rootfs=lazy needs /dev/fuse (modprobe fuse), or use --rootfs=rendered".into(),
        ));
    }
    Ok(asked)
}

/// Assemble (or, for `lazy`, lay out) every app's rootfs for `mode` and record the mode in
/// `options.json`. `run-prepared --rootfs=…` calls it again to change a prepared pod's mode.
pub fn set_rootfs(
    store: &mut Store,
    pod: &Pod,
    manifest: &PodManifest,
    mode: RootfsMode,
) -> Result<()> {
    let span = tracing::debug_span!("rootfs.prepare", mode = mode.as_str());
    let _enter = span.enter();
    let t0 = std::time::Instant::now();
    let mut lower = BTreeMap::new();
    for app in &manifest.apps {
        let id = app
            .image
            .id
            .as_ref()
            .map(|i| i.as_str())
            .unwrap_or_default();
        let name = app.name.as_str();
        if let Some(dir) = app_rootfs(store, pod, name, id, mode)? {
            lower.insert(name.to_string(), dir);
        }
    }
    let options = serde_json::json!({
        "overlay": mode.uses_overlay(),
        "rootfs": mode.as_str(),
        "lower": lower,
    });
    write_atomic(
        &pod.dir().join(pods::OPTIONS_FILE),
        options.to_string().as_bytes(),
    )?;
    tracing::debug!(
        elapsed_ms = t0.elapsed().as_secs_f64() * 1000.0,
        "app root filesystems prepared"
    );
    Ok(())
}

/// What `prepare` recorded in a pod's `options.json` about its root filesystems.
pub struct RecordedRootfs {
    pub mode: RootfsMode,
    /// Each overlay app's lower dir: absolute (the store's rendered tree) or relative to the
    /// app's directory (its lazy tree), as the pod directory moves between states.
    pub lower: BTreeMap<String, String>,
}

/// The root filesystems recorded in a pod's `options.json`. Pods prepared before `--rootfs`
/// existed only say whether they use overlayfs; those prepared before the lower dirs moved
/// into `options.json` have them in `apps/<name>/lower`.
pub fn recorded_rootfs(pod: &Pod) -> RecordedRootfs {
    let v = pod
        .read_text(pods::OPTIONS_FILE)
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .unwrap_or_default();
    let mode = match v["rootfs"].as_str().and_then(|m| m.parse().ok()) {
        Some(mode) => mode,
        None if v["overlay"].as_bool() == Some(true) => RootfsMode::Rendered,
        None => RootfsMode::Copy,
    };
    let mut lower: BTreeMap<String, String> = v["lower"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(app, dir)| Some((app.clone(), dir.as_str()?.to_string())))
        .collect();
    if mode.uses_overlay() && lower.is_empty() {
        for app in pod.manifest().map(|m| m.apps).unwrap_or_default() {
            let name = app.name.as_str();
            if let Some(dir) = pod.read_text(&format!("apps/{name}/lower")) {
                lower.insert(name.to_string(), dir);
            }
        }
    }
    RecordedRootfs { mode, lower }
}

/// The rootfs mode recorded in a pod's `options.json`.
pub fn recorded_mode(pod: &Pod) -> RootfsMode {
    recorded_rootfs(pod).mode
}

/// Change the rootfs mode of a prepared pod that this process holds locked.
pub fn change_rootfs(store: &mut Store, pod: &Pod, asked: RootfsMode) -> Result<()> {
    let mode = effective_mode(asked)?;
    if mode == recorded_mode(pod) {
        return Ok(());
    }
    let manifest = pod.manifest()?;
    set_rootfs(store, pod, &manifest, mode)
}

fn overlay_supported() -> bool {
    use std::io::Read;
    // One read of a buffer the whole list fits in (read_to_string on a /proc file, which has
    // no size, starts at 32 bytes and doubles: eight reads on every pod start).
    let mut text = String::with_capacity(8192);
    std::fs::File::open("/proc/filesystems")
        .and_then(|mut f| f.read_to_string(&mut text))
        .map(|_| {
            text.lines()
                .any(|l| l.split_whitespace().last() == Some("overlay"))
        })
        .unwrap_or(false)
}

/// The pod manifest: each app's image app with the command line's overrides applied.
pub fn build_manifest(store: &Store, spec: &PodSpec) -> Result<PodManifest> {
    let mut volumes = spec.volumes.clone();
    for (i, v) in volumes.iter().enumerate() {
        if volumes[..i].iter().any(|w| w.name == v.name) {
            return Err(RunnerError::Invalid(format!(
                "volume {:?} is given more than once",
                v.name.as_str()
            )));
        }
    }
    let mut apps: Vec<RuntimeApp> = Vec::new();
    for a in &spec.apps {
        let app = runtime_app(store, spec, a, &mut volumes)?;
        if apps.iter().any(|b| b.name == app.name) {
            return Err(RunnerError::Invalid(format!(
                "two apps are named {:?}; give one of them another --name",
                app.name.as_str()
            )));
        }
        apps.push(app);
    }
    Ok(PodManifest {
        ac_version: SemVer::parse("0.8.11").ok(),
        apps,
        volumes,
        isolators: Vec::new(),
        annotations: Annotations::default(),
        ports: Vec::new(),
        user_annotations: Default::default(),
        user_labels: Default::default(),
    })
}

/// The command line's isolators replace the image's of the same kind (the two capability
/// sets count as one kind, and so do the two seccomp sets); `--insecure-options=capabilities`
/// then keeps every capability, `--insecure-options=seccomp` turns the seccomp filter off.
fn apply_isolators(
    app: &mut App,
    cli: &[Isolator],
    all_caps: bool,
    no_seccomp: bool,
) -> Result<()> {
    let caps_kind = |n: &str| n == crate::caps::RETAIN_SET || n == crate::caps::REMOVE_SET;
    let seccomp_kind = |n: &str| n == crate::seccomp::RETAIN_SET || n == crate::seccomp::REMOVE_SET;
    let same_kind = |a: &str, b: &str| {
        a == b || (caps_kind(a) && caps_kind(b)) || (seccomp_kind(a) && seccomp_kind(b))
    };
    for iso in cli {
        app.isolators
            .retain(|i| !same_kind(i.name.as_str(), iso.name.as_str()));
        app.isolators.push(iso.clone());
    }
    if all_caps {
        app.isolators.retain(|i| !caps_kind(i.name.as_str()));
        let name = AcIdentifier::parse(crate::caps::RETAIN_SET)?;
        let value = serde_json::json!({ "set": crate::caps::all_names() });
        app.isolators.push(Isolator::new(name, value)?);
    }
    if no_seccomp {
        app.isolators.retain(|i| !seccomp_kind(i.name.as_str()));
        let name = AcIdentifier::parse(crate::seccomp::RETAIN_SET)?;
        let value = serde_json::json!({ "set": [crate::seccomp::ALL] });
        app.isolators.push(Isolator::new(name, value)?);
    }
    Ok(())
}

fn runtime_app(
    store: &Store,
    spec: &PodSpec,
    a: &AppSpec,
    volumes: &mut Vec<Volume>,
) -> Result<RuntimeApp> {
    let im = store.manifest(&a.image_id)?;
    let image_name = im.name.as_str().to_string();
    let mut app = im.app.clone().unwrap_or_default();
    app.exec = exec_of(&app.exec, a, &image_name)?;
    if let Some(wd) = &a.working_dir {
        app.working_directory = wd.clone();
    }
    app.user = a.user.clone().unwrap_or(app.user);
    app.group = a.group.clone().unwrap_or(app.group);
    for field in [&mut app.user, &mut app.group] {
        if field.is_empty() {
            *field = "0".into();
        }
    }
    if let Some(g) = &a.supplementary_gids {
        app.supplementary_gids = g.clone();
    }
    apply_isolators(
        &mut app,
        &a.isolators,
        spec.all_capabilities,
        spec.no_seccomp,
    )?;
    let image_env: Vars = app
        .environment
        .iter()
        .map(|v| (v.name.clone(), v.value.clone()))
        .collect();
    let env = merge(&[
        &spec.inherited_env,
        &image_env,
        &spec.set_env_file,
        &spec.set_env,
        &a.environment,
    ]);
    app.environment = Environment::new(
        env.into_iter()
            .map(|(name, value)| EnvironmentVariable { name, value })
            .collect(),
    )?;
    let name = match &a.name {
        Some(n) => AcName::parse(n).map_err(|e| RunnerError::Invalid(format!("--name: {e}")))?,
        None => default_app_name(&image_name)?,
    };
    app.check(&format!("app {}", name.as_str()))?;
    let mounts = app_mounts(spec, a, &app, &name, volumes)?;
    Ok(RuntimeApp {
        name,
        image: RuntimeImage {
            name: Some(im.name.clone()),
            id: Some(ImageId::parse(&a.image_id)?),
            labels: Default::default(),
        },
        app: Some(app),
        read_only_root_fs: a.readonly_rootfs.unwrap_or(false),
        mounts,
        annotations: Annotations::default(),
    })
}

/// rkt's rules: `--exec` replaces the command; arguments after `--` replace the image's.
fn exec_of(image_exec: &[String], a: &AppSpec, image: &str) -> Result<Vec<String>> {
    let program = match &a.exec {
        Some(e) => e.clone(),
        None => image_exec.first().cloned().ok_or_else(|| {
            RunnerError::Invalid(format!(
                "image {image} has no app to run; give one with --exec after the image"
            ))
        })?,
    };
    let args = match (&a.args, &a.exec) {
        (Some(args), _) => args.clone(),
        (None, Some(_)) => Vec::new(),
        (None, None) => image_exec.iter().skip(1).cloned().collect(),
    };
    Ok(std::iter::once(program).chain(args).collect())
}

/// The default app name: the sanitized last component of the image name.
pub fn default_app_name(image_name: &str) -> Result<AcName> {
    let last = image_name.rsplit('/').next().unwrap_or(image_name);
    AcName::sanitize(last).map_err(|e| {
        RunnerError::Invalid(format!(
            "cannot name the app of image {image_name}: {e}; give --name"
        ))
    })
}

/// Explicit mounts first, then each mount point matched to a volume of its name, or to a new
/// empty volume `<app>-<mountpoint>`.
fn app_mounts(
    spec: &PodSpec,
    a: &AppSpec,
    app: &App,
    name: &AcName,
    volumes: &mut Vec<Volume>,
) -> Result<Vec<Mount>> {
    let mut mounts = Vec::new();
    for m in spec.mounts.iter().chain(&a.mounts) {
        if !volumes.iter().any(|v| v.name.as_str() == m.volume) {
            return Err(RunnerError::Invalid(format!(
                "--mount volume={}: no --volume of that name",
                m.volume
            )));
        }
        mounts.push(Mount {
            volume: AcName::parse(&m.volume)?,
            path: m.target.clone(),
            app_volume: None,
        });
    }
    for mp in &app.mount_points {
        if mounts
            .iter()
            .any(|m| m.volume == mp.name || m.path == mp.path)
        {
            continue;
        }
        let volume = if volumes.iter().any(|v| v.name == mp.name) {
            mp.name.clone()
        } else {
            let implicit = AcName::parse(&format!("{}-{}", name.as_str(), mp.name.as_str()))?;
            tracing::warn!(
                "no volume for mount point {} of app {}: using an empty volume {}",
                mp.name.as_str(),
                name.as_str(),
                implicit.as_str()
            );
            let mut v = Volume::parse_cli(&format!("{},kind=empty", implicit.as_str()))?;
            v.read_only = None;
            volumes.push(v);
            implicit
        };
        mounts.push(Mount {
            volume,
            path: mp.path.clone(),
            app_volume: None,
        });
    }
    Ok(mounts)
}

fn create_volumes(pod: &Pod, m: &PodManifest) -> Result<()> {
    for v in m.volumes.iter().filter(|v| v.kind == "empty") {
        let dir = pod.dir().join("volumes").join(v.name.as_str());
        std::fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
        let mode_text = v.mode.as_deref().unwrap_or("0755");
        let mode = u32::from_str_radix(mode_text, 8).map_err(|_| {
            RunnerError::Invalid(format!(
                "volume {}: mode {mode_text:?} is not an octal number",
                v.name.as_str()
            ))
        })?;
        let id = |n: Option<i64>, what: &str| {
            u32::try_from(n.unwrap_or(0)).map_err(|_| {
                RunnerError::Invalid(format!("volume {}: bad {what}", v.name.as_str()))
            })
        };
        std::os::unix::fs::chown(&dir, Some(id(v.uid, "uid")?), Some(id(v.gid, "gid")?))
            .ctx(|| format!("chown {}", dir.display()))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode & 0o7777))
            .ctx(|| format!("chmod {}", dir.display()))?;
    }
    Ok(())
}

/// The app's rootfs: overlayfs (mounted at run time) over the store's rendered tree or over
/// the app's lazy tree (returned: the lower dir, for `options.json`), or a rendered copy.
fn app_rootfs(
    store: &mut Store,
    pod: &Pod,
    name: &str,
    id: &str,
    mode: RootfsMode,
) -> Result<Option<String>> {
    let dir = pod.dir().join("apps").join(name);
    let rootfs = dir.join("rootfs");
    let lower = match mode {
        RootfsMode::Rendered => store.rendered_tree(id)?.join("rootfs"),
        RootfsMode::Lazy => {
            let at = lazy_mountpoint(&pod.dir(), name);
            std::fs::create_dir_all(&at).ctx(|| format!("creating {}", at.display()))?;
            // Relative to the app's directory: the pod directory moves between states.
            at.strip_prefix(&dir).map(Path::to_path_buf).unwrap_or(at)
        }
        RootfsMode::Copy => {
            std::fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
            if is_empty_dir(&rootfs) {
                std::fs::remove_dir(&rootfs).ctx(|| format!("removing {}", rootfs.display()))?;
            }
            store.render_image(id, &rootfs, true)?;
            return Ok(None);
        }
    };
    for d in [&rootfs, &dir.join("upper"), &dir.join("work")] {
        std::fs::create_dir_all(d).ctx(|| format!("creating {}", d.display()))?;
    }
    path_text(&lower).map(Some)
}

fn is_empty_dir(p: &Path) -> bool {
    std::fs::read_dir(p).is_ok_and(|mut d| d.next().is_none())
}

fn path_text(p: &Path) -> Result<String> {
    p.to_str()
        .map(str::to_string)
        .ok_or_else(|| RunnerError::Invalid(format!("{} is not UTF-8", p.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A prepared pod whose manifest has apps `a` and `b`, with `options` as its options.json.
    fn pod_with_options(tmp: &Path, options: &str) -> Pod {
        let pod = Pods::new(tmp).create().unwrap();
        let app = |name: &str| {
            serde_json::json!({"name": name, "image": {"id": format!("sha512-{}", "0".repeat(128))},
                "app": {"exec": ["/bin/true"], "user": "0", "group": "0"}})
        };
        let manifest = serde_json::json!({"acKind": "PodManifest", "acVersion": "0.8.11",
            "apps": [app("a"), app("b")]});
        pod.write_text(pods::MANIFEST_FILE, &manifest.to_string())
            .unwrap();
        pod.write_text(pods::OPTIONS_FILE, options).unwrap();
        pod
    }

    #[test]
    fn lower_dirs_are_read_from_options_or_old_lower_files() {
        let tmp = tempfile::tempdir().unwrap();
        let pod = pod_with_options(
            tmp.path(),
            r#"{"overlay":true,"rootfs":"lazy","lower":{"a":"lazy","b":"lazy"}}"#,
        );
        let r = recorded_rootfs(&pod);
        assert_eq!(r.mode, RootfsMode::Lazy);
        assert_eq!(r.lower.get("b").map(String::as_str), Some("lazy"));

        // Pods prepared before the lower dirs moved into options.json.
        let pod = pod_with_options(tmp.path(), r#"{"overlay":true}"#);
        for (app, dir) in [
            ("a", "/store/trees/x/rootfs"),
            ("b", "/store/trees/y/rootfs"),
        ] {
            std::fs::create_dir_all(pod.dir().join("apps").join(app)).unwrap();
            pod.write_text(&format!("apps/{app}/lower"), dir).unwrap();
        }
        let r = recorded_rootfs(&pod);
        assert_eq!(r.mode, RootfsMode::Rendered);
        assert_eq!(
            r.lower.get("a").map(String::as_str),
            Some("/store/trees/x/rootfs")
        );
        assert_eq!(r.lower.len(), 2);

        let pod = pod_with_options(tmp.path(), r#"{"overlay":false,"rootfs":"copy"}"#);
        let r = recorded_rootfs(&pod);
        assert_eq!(r.mode, RootfsMode::Copy);
        assert!(r.lower.is_empty());
    }

    #[test]
    fn exec_overrides() {
        let img = vec!["/bin/app".to_string(), "--default".into()];
        let mut a = AppSpec::default();
        assert_eq!(exec_of(&img, &a, "i").unwrap(), img);
        a.args = Some(vec!["-x".into()]);
        assert_eq!(exec_of(&img, &a, "i").unwrap(), vec!["/bin/app", "-x"]);
        a.exec = Some("/bin/sh".into());
        a.args = None;
        assert_eq!(exec_of(&img, &a, "i").unwrap(), vec!["/bin/sh"]);
        assert!(exec_of(&[], &AppSpec::default(), "i").is_err());
        assert_eq!(
            default_app_name("example.com/Busy_Box").unwrap().as_str(),
            "busy-box"
        );
        assert_eq!(
            MountSpec::parse("volume=data,target=/d").unwrap(),
            MountSpec {
                volume: "data".into(),
                target: "/d".into()
            }
        );
        assert!(MountSpec::parse("volume=data,target=d").is_err());
        assert!(MountSpec::parse("volume=data").is_err());
    }
}
