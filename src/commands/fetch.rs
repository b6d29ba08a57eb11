//! `rkt fetch`: import images into the store and print their IDs.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rkt_store::Store;

use super::{open_store, short_id};
use crate::cli::{FetchArgs, GlobalArgs, PullPolicy};

/// What an image argument names, in rkt's order of checks.
#[derive(Debug, PartialEq, Eq)]
enum Source {
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

fn classify(arg: &str) -> Source {
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

pub fn run(global: &GlobalArgs, args: FetchArgs) -> Result<u8> {
    let mut store = open_store(global)?;
    for image in &args.images {
        let id = fetch_one(global, &args, &mut store, image)?;
        println!("{}", short_id(&id, args.full));
    }
    Ok(0)
}

fn fetch_one(
    global: &GlobalArgs,
    args: &FetchArgs,
    store: &mut Store,
    image: &str,
) -> Result<String> {
    match classify(image) {
        Source::Id(_) => Ok(store.resolve(image)?.id),
        Source::File(path) => fetch_file(global, args, store, &path),
        Source::Name(name) => match store.resolve(&name) {
            Ok(info) if args.pull_policy != PullPolicy::Update => Ok(info.id),
            _ if args.pull_policy == PullPolicy::Never => {
                bail!("image {name:?} is not in the store and --pull-policy=never forbids fetching it")
            }
            _ => bail!(
                "image {name:?} is not in the store, and fetching by name (appc discovery) is not supported by this rkt yet; fetch the ACI file or URL instead"
            ),
        },
        Source::Url(url) => bail!("fetching {url}: http(s) fetching is not supported by this rkt yet; download the ACI and fetch the file"),
        Source::Docker(url) => fetch_docker(global, args, store, &url),
    }
}

fn require_insecure_image(global: &GlobalArgs, what: &str) -> Result<()> {
    if !global.skip_image_verification() {
        bail!(
            "fetching {what}: Docker and OCI images carry no signatures rkt can verify; \
             rerun with --insecure-options=image to fetch it without verification"
        );
    }
    Ok(())
}

fn fetch_docker(
    global: &GlobalArgs,
    args: &FetchArgs,
    store: &mut Store,
    url: &str,
) -> Result<String> {
    let reference = rkt_docker::DockerRef::parse(url)?;
    let name = rkt_store::docker::convert::aci_name(&reference.registry, &reference.repository)?;
    let stored = match &reference.tag {
        Some(tag) if reference.digest.is_none() => store
            .find_by_name(&name, &[("version".to_string(), tag.clone())])
            .ok()
            .flatten()
            .map(|i| i.id),
        _ => None,
    };
    match (args.pull_policy, stored) {
        (PullPolicy::New, Some(id)) | (PullPolicy::Never, Some(id)) => return Ok(id),
        (PullPolicy::Never, None) => {
            bail!("image {url:?} is not in the store and --pull-policy=never forbids fetching it")
        }
        _ => {}
    }
    require_insecure_image(global, url)?;
    let opts = rkt_docker::registry::Options {
        allow_http: global.insecure_options.http,
        credentials: docker_auth(global)?.for_registry(&reference.registry),
        platform: Default::default(),
    };
    let mut source = rkt_docker::registry::RegistrySource::new(url, opts)
        .with_context(|| format!("cannot fetch {url}"))?;
    let outcome =
        rkt_docker::pull(store, &mut source).with_context(|| format!("cannot fetch {url}"))?;
    report_pull(url, &outcome);
    Ok(outcome.id)
}

fn docker_auth(global: &GlobalArgs) -> Result<rkt_docker::auth::DockerAuth> {
    let mut dirs = vec![
        global.system_config.as_path(),
        global.local_config.as_path(),
    ];
    if let Some(u) = &global.user_config {
        dirs.push(u.as_path());
    }
    Ok(rkt_docker::auth::DockerAuth::load(&dirs)?)
}

fn report_pull(what: &str, o: &rkt_docker::PullOutcome) {
    tracing::info!(
        id = %o.id,
        layers_fetched = o.layers_fetched,
        layers_reused = o.layers_reused,
        bytes_fetched = o.bytes_fetched,
        stored_bytes = o.stored_bytes,
        "fetched {what}"
    );
    eprintln!(
        "rkt: fetched {what}: {} layer(s) downloaded ({} bytes), {} already in the store",
        o.layers_fetched, o.bytes_fetched, o.layers_reused
    );
}

fn fetch_docker_archive(global: &GlobalArgs, store: &mut Store, path: &Path) -> Result<String> {
    require_insecure_image(global, &path.display().to_string())?;
    let mut source = rkt_docker::archive::ArchiveSource::open(path, None, Default::default())
        .with_context(|| format!("cannot import {}", path.display()))?;
    let outcome = rkt_docker::pull(store, &mut source)
        .with_context(|| format!("cannot import {}", path.display()))?;
    report_pull(&path.display().to_string(), &outcome);
    Ok(outcome.id)
}

fn fetch_file(
    global: &GlobalArgs,
    args: &FetchArgs,
    store: &mut Store,
    path: &Path,
) -> Result<String> {
    if args.pull_policy == PullPolicy::Never {
        bail!(
            "{}: --pull-policy=never only uses images already in the store",
            path.display()
        );
    }
    if rkt_docker::archive::is_docker_archive(path) {
        return fetch_docker_archive(global, store, path);
    }
    if !global.skip_image_verification() {
        bail!(
            "fetching {}: image signatures are verified by default, and this rkt cannot verify signatures yet \
             (`rkt trust` and --signature come with signed-image support); rerun with --insecure-options=image \
             to import the image without verification",
            path.display()
        );
    }
    let file =
        File::open(path).with_context(|| format!("cannot open image file {}", path.display()))?;
    if file.metadata().map(|m| m.is_dir()).unwrap_or(false) {
        bail!("{} is a directory, not an ACI file", path.display());
    }
    let outcome = store
        .import(file, &path.display().to_string())
        .with_context(|| format!("cannot import {}", path.display()))?;
    tracing::info!(id = %outcome.id, new = outcome.new, "fetched {}", path.display());
    Ok(outcome.id)
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
