//! Fetching images into the store: local files, `file://`, `http(s)://…/x.aci` and appc
//! names resolved by meta discovery, with signature verification before anything is
//! stored, `auth.d` credentials, and rkt's pull policies.
//!
//! [`fetch_image`] is the one entry point: `rkt fetch` calls it for each argument, and
//! `rkt run` calls it for images it lacks.

pub mod auth;
pub mod discovery;
pub mod docker;
pub mod http;
pub mod manifest;
pub mod meta;
pub mod progress;
pub mod pubkeys;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use rkt_store::schema::ImageManifest;
use rkt_store::{Remote, Store};

use crate::cli::{GlobalArgs, PullPolicy};
use crate::trust::{verify_detached, Keystore};
use discovery::App;
use http::{Client, HttpPolicy, Outcome};

/// Everything a fetch needs; build it with [`FetchContext::new`].
pub struct FetchContext<'a> {
    pub store: &'a mut Store,
    pub keystore: Keystore,
    pub client: Client,
    /// `--insecure-options=image` / `--insecure-skip-verify`: no signature checks.
    pub skip_verify: bool,
    /// `--trust-keys-from-https`: keys discovered over https are trusted without asking.
    pub trust_keys_from_https: bool,
    /// `--insecure-options=pubkey`: discovered keys may come over plain HTTP (which also
    /// needs `http`).
    pub insecure_pubkey: bool,
    pub pull_policy: PullPolicy,
    /// `--signature FILE` for the image being fetched (local files only).
    pub signature: Option<PathBuf>,
    /// Configuration directories (system, local, user), for `auth.d` kinds read later.
    pub config_dirs: Vec<PathBuf>,
    /// `--insecure-options=http`: plain-HTTP registries and URLs are allowed.
    pub allow_http: bool,
    /// Which image of a Docker manifest list / OCI index to fetch (`--platform`).
    pub platform: rkt_store::docker::Platform,
}

impl<'a> FetchContext<'a> {
    pub fn new(
        global: &GlobalArgs,
        store: &'a mut Store,
        pull_policy: PullPolicy,
    ) -> Result<FetchContext<'a>> {
        let mut dirs = vec![global.system_config.clone(), global.local_config.clone()];
        dirs.extend(global.user_config.clone());
        let auth = auth::AuthHeaders::load(&dirs)?;
        let config_dirs = dirs.clone();
        let policy = HttpPolicy {
            allow_http: global.insecure_options.http,
            insecure_tls: global.insecure_options.tls,
        };
        Ok(FetchContext {
            store,
            keystore: Keystore::new(&global.system_config, &global.local_config),
            client: Client::new(policy, auth),
            skip_verify: global.skip_image_verification(),
            trust_keys_from_https: global.trust_keys_from_https,
            insecure_pubkey: global.insecure_options.pubkey,
            pull_policy,
            signature: None,
            config_dirs,
            allow_http: global.insecure_options.http,
            platform: Default::default(),
        })
    }

    fn tmp_dir(&self) -> PathBuf {
        self.store.dir().join("tmp")
    }
}

/// What an image argument names, in rkt's order of checks.
#[derive(Debug, PartialEq, Eq)]
pub enum Source {
    /// `sha512-…`: an image already in the store.
    Id(String),
    /// A local ACI file.
    File(PathBuf),
    /// An http(s) URL.
    Url(String),
    /// `docker://…`
    Docker(String),
    /// An appc name, possibly with version and labels.
    Name(String),
}

pub fn classify(arg: &str) -> Source {
    if arg.starts_with("sha512-") {
        return Source::Id(arg.into());
    }
    if let Some(path) = arg.strip_prefix("file://") {
        return Source::File(path.into());
    }
    if arg.starts_with("http://") || arg.starts_with("https://") {
        return Source::Url(arg.into());
    }
    if arg.starts_with("docker://") || arg.starts_with("docker:") {
        return Source::Docker(arg.into());
    }
    let path = Path::new(arg);
    if path.is_absolute() || path.is_file() {
        return Source::File(path.into());
    }
    if arg.contains(':') {
        return Source::Name(arg.into());
    }
    if arg.contains("./") || arg.ends_with(".aci") {
        return Source::File(path.into());
    }
    Source::Name(arg.into())
}

/// Resolves `image` to an image in the store, fetching (and verifying) it as the pull
/// policy says; returns the image ID (`sha512-…`).
pub fn fetch_image(ctx: &mut FetchContext, image: &str) -> Result<String> {
    match classify(image) {
        Source::Id(_) => Ok(ctx.store.resolve(image)?.id),
        Source::File(path) => fetch_file(ctx, &path),
        Source::Url(url) => fetch_url(ctx, &url),
        Source::Name(name) => fetch_name(ctx, &name),
        Source::Docker(url) => docker::fetch_registry(ctx, &url),
    }
}

fn fetch_file(ctx: &mut FetchContext, path: &Path) -> Result<String> {
    if ctx.pull_policy == PullPolicy::Never {
        bail!(
            "{}: --pull-policy=never only uses images already in the store",
            path.display()
        );
    }
    if rkt_docker::archive::is_docker_archive(path) {
        return docker::fetch_archive(ctx, path);
    }
    if path.is_dir() {
        bail!("{} is a directory, not an ACI file", path.display());
    }
    std::fs::metadata(path)
        .with_context(|| format!("cannot open image file {}", path.display()))?;
    if !ctx.skip_verify {
        let sig_path = match &ctx.signature {
            Some(s) => s.clone(),
            None => beside(path),
        };
        let sig = std::fs::read(&sig_path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                anyhow!(
                    "{} is not signed: no signature file {} found; give its signature with --signature FILE \
                     (made by a key trusted with `rkt trust`), or import the image without verification \
                     with --insecure-options=image",
                    path.display(),
                    sig_path.display()
                )
            } else {
                anyhow!("reading signature {}: {e}", sig_path.display())
            }
        })?;
        let m = manifest::read(path)?;
        check_signature(ctx, path, &sig, m.name.as_str())?;
    }
    import(ctx, path, &path.display().to_string())
}

/// `x.aci` → `x.aci.asc`.
fn beside(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".asc");
    s.into()
}

fn check_signature(ctx: &FetchContext, data: &Path, sig: &[u8], name: &str) -> Result<()> {
    let keyring = ctx.keystore.keyring_for(name)?;
    let fp = verify_detached(&keyring, data, sig, name)?;
    tracing::info!("signature of {name} is good (key {fp})");
    Ok(())
}

fn import(ctx: &mut FetchContext, path: &Path, source: &str) -> Result<String> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot open image file {}", path.display()))?;
    let outcome = ctx
        .store
        .import(file, source)
        .with_context(|| format!("cannot import {source}"))?;
    tracing::info!(id = %outcome.id, new = outcome.new, "fetched {source}");
    Ok(outcome.id)
}

fn fetch_url(ctx: &mut FetchContext, url: &str) -> Result<String> {
    let remote = ctx.store.remote(url)?;
    match (ctx.pull_policy, &remote) {
        (PullPolicy::Never, Some(r)) | (PullPolicy::New, Some(r)) => return Ok(r.image_id.clone()),
        (PullPolicy::Never, None) => {
            bail!("{url} was never fetched and --pull-policy=never forbids fetching it")
        }
        (PullPolicy::Update, Some(r)) if r.is_fresh(Remote::now()) => {
            return Ok(r.image_id.clone())
        }
        _ => {}
    }
    let sig_url = format!("{url}.asc");
    download_verified(ctx, url, &sig_url, remote.as_ref(), None)
}

/// Downloads the signature (unless verification is off), then the image, verifies,
/// checks the manifest against `want` and imports; records the remote.
fn download_verified(
    ctx: &mut FetchContext,
    url: &str,
    sig_url: &str,
    remote: Option<&Remote>,
    want: Option<&Wanted>,
) -> Result<String> {
    let sig = if ctx.skip_verify {
        None
    } else {
        Some(ctx.client.get_small(sig_url)?.ok_or_else(|| {
            anyhow!(
                "{url} is not signed: its signature {sig_url} does not exist (HTTP 404); \
                 ask the publisher to sign it, or fetch without verification with --insecure-options=image"
            )
        })?)
    };
    let etag = remote.and_then(|r| r.etag.as_deref());
    let tmp = ctx.tmp_dir();
    let download = match ctx.client.download(url, &tmp, etag)? {
        Outcome::NotModified { max_age } => {
            let r = remote.ok_or_else(|| anyhow!("{url}: unexpected HTTP 304"))?;
            ctx.store.touch_remote(url, max_age)?;
            tracing::info!("{url} not modified; using {}", r.image_id);
            return Ok(r.image_id.clone());
        }
        Outcome::Fetched(d) => d,
    };
    let m = manifest::read(download.file.path())?;
    if let Some(w) = want {
        check_manifest(&w.asked, &m)?;
        check_defaults(&w.full, &m)?;
    }
    if let Some(sig) = sig {
        check_signature(ctx, download.file.path(), &sig, m.name.as_str())?;
    }
    let id = import(ctx, download.file.path(), url)?;
    ctx.store.set_remote(&Remote {
        url: url.to_string(),
        sig_url: Some(sig_url.to_string()),
        etag: download.etag.clone(),
        image_id: id.clone(),
        cache_max_age: download.max_age,
        download_time: Remote::now(),
    })?;
    Ok(id)
}

/// The name as asked for, and with discovery's defaults filled in.
struct Wanted {
    asked: App,
    full: App,
}

/// The image must be the one asked for: the same name, and every label given by the user
/// equal; the defaulted os/arch only have to match when the image declares them.
fn check_manifest(app: &App, m: &ImageManifest) -> Result<()> {
    if m.name.as_str() != app.name {
        bail!(
            "the image fetched for {:?} is called {:?} in its manifest; refusing it (the discovery server points at the wrong image)",
            app.name,
            m.name.as_str()
        );
    }
    for (k, v) in &app.labels {
        // `latest` is whatever the publisher's discovery serves as the newest version.
        if k == "version" && v == "latest" {
            continue;
        }
        match m.labels.get(k) {
            Some(have) if have == v => {}
            Some(have) => bail!(
                "the image fetched for {} has label {k}={have:?}, but {k}={v:?} was asked for; refusing it",
                app.name
            ),
            None => bail!(
                "the image fetched for {} has no label {k}, but {k}={v:?} was asked for; refusing it",
                app.name
            ),
        }
    }
    Ok(())
}

fn fetch_name(ctx: &mut FetchContext, text: &str) -> Result<String> {
    let app = App::parse(text).map_err(|e| anyhow!("{text:?} is not an image name: {e}"))?;
    let labels: Vec<(String, String)> = app
        .labels
        .clone()
        .into_iter()
        .filter(|(k, v)| !(k == "version" && v == "latest"))
        .collect();
    if ctx.pull_policy != PullPolicy::Update {
        if let Some(info) = ctx.store.find_by_name(&app.name, &labels)? {
            return Ok(info.id);
        }
        if ctx.pull_policy == PullPolicy::Never {
            bail!("image {text:?} is not in the store and --pull-policy=never forbids fetching it");
        }
    }
    let full = app.clone().with_defaults();
    let found = discovery::discover(&full, true, false, &mut |p| discovery_page(&ctx.client, p));
    if found.endpoints.is_empty() {
        bail!(
            "cannot discover where {text} is published: {}",
            found.tried.join("; ")
        );
    }
    if !ctx.skip_verify {
        pubkeys::ensure_keys(ctx, &full)?;
    }
    let want = Wanted { asked: app, full };
    let mut errors = Vec::new();
    for ep in &found.endpoints {
        let remote = ctx.store.remote(&ep.aci)?;
        if ctx.pull_policy == PullPolicy::Update {
            if let Some(r) = remote.as_ref().filter(|r| r.is_fresh(Remote::now())) {
                return Ok(r.image_id.clone());
            }
        }
        match download_verified(ctx, &ep.aci, &ep.asc, remote.as_ref(), Some(&want)) {
            Ok(id) => return Ok(id),
            Err(e) => errors.push(e),
        }
    }
    let mut err = errors
        .pop()
        .unwrap_or_else(|| anyhow!("no endpoint for {text}"));
    if !errors.is_empty() {
        err = err.context(format!(
            "all {} discovered locations of {text} failed; the last error",
            errors.len() + 1
        ));
    }
    Err(err)
}

/// os/arch defaults must not contradict what the image declares.
fn check_defaults(full: &App, m: &ImageManifest) -> Result<()> {
    for k in ["os", "arch"] {
        if let (Some(have), Some(want)) = (m.labels.get(k), full.labels.get(k)) {
            if have != want {
                bail!(
                    "the image fetched for {} is for {k}={have}, not {want}; refusing it",
                    full.name
                );
            }
        }
    }
    Ok(())
}

/// `https://PREFIX?ac-discovery=1`, or plain HTTP when allowed and https failed.
fn discovery_page(client: &Client, prefix: &str) -> Result<String, String> {
    let mut schemes = vec!["https"];
    if client.policy().allow_http {
        schemes.push("http");
    }
    let mut last = String::new();
    for scheme in schemes {
        let url = format!("{scheme}://{prefix}?ac-discovery=1");
        match client.get_small(&url) {
            Ok(Some(body)) => return Ok(String::from_utf8_lossy(&body).into_owned()),
            Ok(None) => last = format!("{url}: HTTP 404"),
            Err(e) => last = format!("{e:#}"),
        }
    }
    Err(last)
}

/// Whether stdin is a terminal we can ask questions on.
pub fn can_prompt() -> bool {
    std::io::stdin().is_terminal()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_like_rkt() {
        assert_eq!(classify("sha512-abcd"), Source::Id("sha512-abcd".into()));
        assert_eq!(classify("/x/y.aci"), Source::File("/x/y.aci".into()));
        assert_eq!(classify("file:///x.aci"), Source::File("/x.aci".into()));
        assert_eq!(classify("./nope.aci"), Source::File("./nope.aci".into()));
        assert_eq!(
            classify("example.com/nginx:1.0"),
            Source::Name("example.com/nginx:1.0".into())
        );
        assert_eq!(
            classify("example.com/nginx"),
            Source::Name("example.com/nginx".into())
        );
        assert_eq!(
            classify("docker://busybox"),
            Source::Docker("docker://busybox".into())
        );
        assert_eq!(
            classify("https://e.com/x.aci"),
            Source::Url("https://e.com/x.aci".into())
        );
    }
}
