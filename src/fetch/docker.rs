//! Docker and OCI images: registry pulls (`docker://…`) and local archives or layouts, through
//! the `rkt-docker` crate. They carry no signatures rkt can verify, so they need
//! `--insecure-options=image`.

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::FetchContext;
use crate::cli::PullPolicy;

fn require_insecure_image(ctx: &FetchContext, what: &str) -> Result<()> {
    if !ctx.skip_verify {
        bail!(
            "fetching {what}: Docker and OCI images carry no signatures rkt can verify; \
             rerun with --insecure-options=image to fetch it without verification"
        );
    }
    Ok(())
}

/// `docker://[REGISTRY[:PORT]/]NAME[:TAG|@DIGEST]`.
pub fn fetch_registry(ctx: &mut FetchContext, url: &str) -> Result<String> {
    let reference = rkt_docker::DockerRef::parse(url)?;
    let name = rkt_store::docker::convert::aci_name(&reference.registry, &reference.repository)?;
    let stored = match &reference.tag {
        Some(tag) if reference.digest.is_none() => {
            let mut labels = vec![("version".to_string(), tag.clone())];
            if let Some((os, arch)) = ctx.platform.appc_labels() {
                labels.push(("os".to_string(), os));
                labels.push(("arch".to_string(), arch));
            }
            ctx.store
                .find_by_name(&name, &labels)
                .ok()
                .flatten()
                .map(|i| i.id)
        }
        _ => None,
    };
    match (ctx.pull_policy, stored) {
        (PullPolicy::New, Some(id)) | (PullPolicy::Never, Some(id)) => return Ok(id),
        (PullPolicy::Never, None) => {
            bail!("image {url:?} is not in the store and --pull-policy=never forbids fetching it")
        }
        _ => {}
    }
    require_insecure_image(ctx, url)?;
    let dirs: Vec<&Path> = ctx.config_dirs.iter().map(|p| p.as_path()).collect();
    let opts = rkt_docker::registry::Options {
        allow_http: ctx.allow_http,
        credentials: rkt_docker::auth::DockerAuth::load(&dirs)?.for_registry(&reference.registry),
        platform: ctx.platform.clone(),
        credentials_hint: credentials_hint(&dirs, &reference.registry),
    };
    let mut source = rkt_docker::registry::RegistrySource::new(url, opts)
        .with_context(|| format!("cannot fetch {url}"))?;
    let outcome =
        rkt_docker::pull(ctx.store, &mut source).with_context(|| format!("cannot fetch {url}"))?;
    report_pull(url, &outcome);
    Ok(outcome.id)
}

/// How to give rkt credentials for `registry`: a `dockerAuth` file in `auth.d/` of one of the
/// configuration directories rkt reads.
fn credentials_hint(dirs: &[&Path], registry: &str) -> String {
    let dirs: Vec<String> = dirs
        .iter()
        .map(|d| d.join("auth.d").display().to_string())
        .collect();
    format!(
        "put a JSON file of kind dockerAuth for it in one of {} (the auth.d/ of \
         --system-config, --local-config or --user-config), e.g. \
         {{\"rktKind\": \"dockerAuth\", \"rktVersion\": \"v1\", \"registries\": [\"{registry}\"], \
         \"credentials\": {{\"user\": \"USER\", \"password\": \"PASSWORD\"}}}}",
        dirs.join(", ")
    )
}

/// A `docker save` tarball, an OCI archive or an OCI layout directory.
pub fn fetch_archive(ctx: &mut FetchContext, path: &Path) -> Result<String> {
    require_insecure_image(ctx, &path.display().to_string())?;
    let mut source = rkt_docker::archive::ArchiveSource::open(path, None, ctx.platform.clone())
        .with_context(|| format!("cannot import {}", path.display()))?;
    let outcome = rkt_docker::pull(ctx.store, &mut source)
        .with_context(|| format!("cannot import {}", path.display()))?;
    report_pull(&path.display().to_string(), &outcome);
    Ok(outcome.id)
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
