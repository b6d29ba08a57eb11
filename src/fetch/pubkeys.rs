//! Public keys for `rkt trust` and for name fetches: from files, from URLs, or discovered
//! through a prefix's `ac-discovery-pubkeys` tags; reviewed by the user before they are
//! trusted.

use std::io::{BufRead, Write};

use anyhow::{anyhow, bail, Context, Result};
use sequoia_openpgp::Cert;

use super::discovery::{self, App};
use super::http::Client;
use super::FetchContext;
use crate::trust::{describe_key, parse_keys, TrustScope};

/// Key URLs published for `prefix` (walking up its path).
pub fn discover_key_urls(client: &Client, prefix: &str) -> Result<Vec<String>> {
    let app = App {
        name: prefix.to_string(),
        labels: Default::default(),
    };
    let found = discovery::discover(&app, false, true, &mut |p| super::discovery_page(client, p));
    if found.keys.is_empty() {
        bail!(
            "no public keys are published for {prefix} (ac-discovery-pubkeys): {}",
            found.tried.join("; ")
        );
    }
    Ok(found.keys)
}

/// Keys from a local file or an http(s) URL. Plain HTTP needs `allow_http`.
pub fn load_keys(client: &Client, source: &str, allow_http: bool) -> Result<Vec<Cert>> {
    let bytes = if source.starts_with("https://") || source.starts_with("http://") {
        if source.starts_with("http://") && !allow_http {
            bail!("refusing to fetch key {source} over plain HTTP; use https, or allow it with --insecure-allow-http (rkt trust) or --insecure-options=pubkey,http (fetch)");
        }
        client
            .get_small(source)?
            .ok_or_else(|| anyhow!("key {source} not found (HTTP 404)"))?
    } else {
        std::fs::read(source).with_context(|| format!("cannot read key file {source}"))?
    };
    parse_keys(&bytes).map_err(|e| anyhow!("{source} holds no usable public key: {e}"))
}

/// Shows `cert` and asks whether to trust it; `Ok(false)` when the user says no.
pub fn review(cert: &Cert, scope: &TrustScope) -> Result<bool> {
    let what = match scope {
        TrustScope::Root => "all images (root key)".to_string(),
        TrustScope::Prefix(p) => format!("images under prefix {p:?}"),
    };
    eprintln!("Trusting key for {what}:\n{}", describe_key(cert));
    if !super::can_prompt() {
        bail!(
            "cannot ask whether to trust key {}: standard input is not a terminal; review the fingerprint above and rerun with --skip-fingerprint-review to trust it",
            crate::trust::keystore::fingerprint(cert)
        );
    }
    let stdin = std::io::stdin();
    loop {
        eprint!("Are you sure you want to trust this key (yes/no)? ");
        std::io::stderr().flush()?;
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            bail!("no answer on standard input; the key was not trusted");
        }
        match line.trim().to_ascii_lowercase().as_str() {
            "yes" | "y" => return Ok(true),
            "no" | "n" => return Ok(false),
            _ => eprintln!("Please enter yes or no."),
        }
    }
}

/// Before a name fetch: when no key is trusted for the name, discover its keys and trust
/// them (automatically with --trust-keys-from-https for https keys, else after asking
/// on a terminal). Without either, the later signature check explains what to do.
pub fn ensure_keys(ctx: &mut FetchContext, app: &App) -> Result<()> {
    if !ctx.keystore.keyring_for(&app.name)?.is_empty() {
        return Ok(());
    }
    let auto = ctx.trust_keys_from_https;
    if !auto && !super::can_prompt() {
        return Ok(());
    }
    let urls = match discover_key_urls(&ctx.client, &app.name) {
        Ok(u) => u,
        Err(e) => {
            tracing::info!("{e:#}");
            return Ok(());
        }
    };
    let scope = TrustScope::Prefix(app.name.clone());
    for url in urls {
        let https = url.starts_with("https://");
        let certs = load_keys(&ctx.client, &url, ctx.insecure_pubkey)?;
        for cert in certs {
            let ok = if auto && https {
                eprintln!(
                    "Trusting key {} for {} (fetched from {url} over https, --trust-keys-from-https)",
                    crate::trust::keystore::fingerprint(&cert),
                    app.name
                );
                true
            } else {
                review(&cert, &scope)?
            };
            if ok {
                let path = ctx.keystore.trust(&cert, &scope)?;
                eprintln!("Added key for prefix {:?} at {}", app.name, path.display());
            }
        }
    }
    Ok(())
}
