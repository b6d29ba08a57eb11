//! HTTP(S) downloads with ureq and rustls: TLS verification against Mozilla's roots (or the
//! PEM bundle named by `SSL_CERT_FILE`), plain HTTP and invalid certificates only when the
//! user allowed them, redirects, timeouts, `auth.d` headers, conditional requests, and
//! downloads into the store's `tmp/` that resume with `Range` after a broken connection.

use std::io::{Read, Seek, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tempfile::NamedTempFile;
use ureq::http::Response;
use ureq::tls::{PemItem, RootCerts, TlsConfig};
use ureq::Body;

use super::auth::AuthHeaders;
use super::progress::Progress;

/// Attempts per download (the first plus resumptions).
const ATTEMPTS: u32 = 4;
/// Small documents (discovery pages, keys, signatures) are read up to this size.
const SMALL_LIMIT: u64 = 4 << 20;

/// What the user allowed.
#[derive(Debug, Clone, Default)]
pub struct HttpPolicy {
    /// `--insecure-options=http`: plain HTTP is allowed.
    pub allow_http: bool,
    /// `--insecure-options=tls`: certificates are not verified.
    pub insecure_tls: bool,
}

pub struct Client {
    /// Built on first use: loading the TLS roots costs about a millisecond, which `rkt run`
    /// of an image already in the store should not pay.
    agent: std::sync::OnceLock<ureq::Agent>,
    policy: HttpPolicy,
    auth: AuthHeaders,
}

/// A finished download.
pub struct Downloaded {
    pub file: NamedTempFile,
    pub etag: Option<String>,
    pub max_age: Option<i64>,
}

pub enum Outcome {
    Fetched(Downloaded),
    /// 304 for a conditional request.
    NotModified {
        max_age: Option<i64>,
    },
}

impl Client {
    pub fn new(policy: HttpPolicy, auth: AuthHeaders) -> Client {
        Client {
            agent: std::sync::OnceLock::new(),
            policy,
            auth,
        }
    }

    fn agent(&self) -> Result<&ureq::Agent> {
        if let Some(agent) = self.agent.get() {
            return Ok(agent);
        }
        let agent = build_agent(&self.policy)?;
        Ok(self.agent.get_or_init(|| agent))
    }

    pub fn policy(&self) -> &HttpPolicy {
        &self.policy
    }

    fn check_scheme(&self, url: &str) -> Result<()> {
        if url.starts_with("https://") {
            return Ok(());
        }
        if url.starts_with("http://") {
            if self.policy.allow_http {
                return Ok(());
            }
            bail!("{url} is plain HTTP, which is refused by default; use https, or allow plain HTTP with --insecure-options=http");
        }
        bail!("{url}: only http and https URLs can be fetched")
    }

    fn get(&self, url: &str, headers: &[(&str, String)]) -> Result<Response<Body>> {
        self.check_scheme(url)?;
        let mut req = self.agent()?.get(url);
        if let Some(value) = host_of(url).and_then(|h| self.auth.for_host(&h)) {
            req = req.header("Authorization", value);
        }
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        req.call().map_err(|e| describe(url, e, &self.policy))
    }

    /// A small document; `Ok(None)` on 404.
    pub fn get_small(&self, url: &str) -> Result<Option<Vec<u8>>> {
        let mut resp = self.get(url, &[])?;
        let status = resp.status().as_u16();
        if status == 404 {
            return Ok(None);
        }
        check_status(url, status)?;
        let body = resp
            .body_mut()
            .with_config()
            .limit(SMALL_LIMIT)
            .read_to_vec()
            .map_err(|e| anyhow!("reading {url}: {e}"))?;
        Ok(Some(body))
    }

    /// Downloads `url` into a temporary file in `tmp_dir`. With `if_none_match`, a 304
    /// answer is `NotModified`. A broken transfer is resumed from where it stopped (or
    /// restarted when the server ignores `Range`); a transfer that cannot be completed
    /// leaves no file behind.
    pub fn download(
        &self,
        url: &str,
        tmp_dir: &Path,
        if_none_match: Option<&str>,
    ) -> Result<Outcome> {
        let mut file = NamedTempFile::new_in(tmp_dir)
            .with_context(|| format!("creating a download file in {}", tmp_dir.display()))?;
        let mut have = 0u64;
        let mut etag: Option<String> = None;
        let mut max_age = None;
        let mut progress: Option<Progress> = None;
        let mut last_err = anyhow!("no attempt made");
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(200 * u64::from(attempt)));
                tracing::info!("retrying {url} from byte {have} ({last_err:#})");
            }
            let mut headers = Vec::new();
            if have > 0 {
                headers.push(("Range", format!("bytes={have}-")));
                if let Some(e) = &etag {
                    headers.push(("If-Range", e.clone()));
                }
            } else if let Some(e) = if_none_match {
                headers.push(("If-None-Match", e.to_string()));
            }
            let resp = match self.get(url, &headers) {
                Ok(r) => r,
                Err(e) if is_transient(&e) => {
                    last_err = e;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let status = resp.status().as_u16();
            if status == 304 && have == 0 && if_none_match.is_some() {
                return Ok(Outcome::NotModified {
                    max_age: cache_max_age(&resp),
                });
            }
            let resumed = status == 206 && have > 0 && content_range_start(&resp) == Some(have);
            if !resumed {
                check_status(url, status)?;
                if status != 200 {
                    bail!("{url}: unexpected HTTP status {status}");
                }
                have = 0;
                file.as_file_mut().set_len(0)?;
                file.as_file_mut().rewind()?;
                etag = header(&resp, "etag");
                max_age = cache_max_age(&resp);
            }
            let total = content_length(&resp).map(|n| n + have);
            let p = progress.get_or_insert_with(|| Progress::start(url, total));
            p.set_position(have);
            match copy_body(resp.into_body(), file.as_file_mut(), p) {
                Ok(n) => have += n,
                Err((n, e)) => {
                    have += n;
                    last_err = anyhow!("download of {url} broke off after {have} bytes: {e}");
                    continue;
                }
            }
            if let Some(t) = total.filter(|t| *t != have) {
                last_err = anyhow!("download of {url} ended after {have} of {t} bytes");
                continue;
            }
            file.as_file_mut().sync_all()?;
            if let Some(p) = progress.take() {
                p.finish();
            }
            return Ok(Outcome::Fetched(Downloaded {
                file,
                etag,
                max_age,
            }));
        }
        Err(last_err.context(format!(
            "giving up on {url} after {ATTEMPTS} attempts; nothing was stored"
        )))
    }
}

/// Copies the body; on error returns the bytes written before it.
fn copy_body(
    body: Body,
    out: &mut std::fs::File,
    progress: &mut Progress,
) -> std::result::Result<u64, (u64, std::io::Error)> {
    let mut reader = body.into_reader();
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        let got = match reader.read(&mut buf) {
            Ok(0) => return Ok(n),
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err((n, e)),
        };
        out.write_all(&buf[..got]).map_err(|e| (n, e))?;
        n += got as u64;
        progress.add(got as u64);
    }
}

fn check_status(url: &str, status: u16) -> Result<()> {
    match status {
        200..=299 => Ok(()),
        401 | 403 => bail!("{url}: HTTP {status}, access denied; configure credentials for this host in auth.d (see docs/fetch-and-trust.md)"),
        404 => bail!("{url}: HTTP 404, not found"),
        _ => bail!("{url}: HTTP status {status}"),
    }
}

fn is_transient(e: &anyhow::Error) -> bool {
    let text = format!("{e:#}");
    ["timeout", "io:", "connection", "reset", "broken pipe"]
        .iter()
        .any(|w| text.to_ascii_lowercase().contains(w))
        && !text.contains("certificate")
}

fn describe(url: &str, e: ureq::Error, policy: &HttpPolicy) -> anyhow::Error {
    let text = e.to_string();
    if text.contains("certificate")
        || text.contains("Certificate")
        || matches!(e, ureq::Error::Tls(_))
    {
        let hint = if policy.insecure_tls {
            ""
        } else {
            "; if you trust this server anyway, rerun with --insecure-options=tls, or point SSL_CERT_FILE at its CA certificate"
        };
        return anyhow!("TLS error talking to {url}: {text}{hint}");
    }
    if matches!(e, ureq::Error::RequireHttpsOnly(_)) {
        return anyhow!("{url} redirected to plain HTTP, which is refused by default; allow it with --insecure-options=http");
    }
    anyhow!("fetching {url}: {text}")
}

fn build_agent(policy: &HttpPolicy) -> Result<ureq::Agent> {
    let tls = TlsConfig::builder()
        .root_certs(root_certs()?)
        .disable_verification(policy.insecure_tls)
        .build();
    let config = ureq::Agent::config_builder()
        .tls_config(tls)
        .https_only(!policy.allow_http)
        .http_status_as_error(false)
        .max_redirects(10)
        .timeout_connect(Some(Duration::from_secs(20)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .timeout_recv_body(None)
        .timeout_per_read(Some(Duration::from_secs(60)))
        .user_agent(concat!("rkt/", env!("CARGO_PKG_VERSION")))
        .build();
    Ok(config.into())
}

fn root_certs() -> Result<RootCerts> {
    let Some(path) = std::env::var_os("SSL_CERT_FILE") else {
        return Ok(RootCerts::WebPki);
    };
    let pem = std::fs::read(&path)
        .with_context(|| format!("reading SSL_CERT_FILE {}", Path::new(&path).display()))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        if let PemItem::Certificate(c) =
            item.map_err(|e| anyhow!("SSL_CERT_FILE {}: {e}", Path::new(&path).display()))?
        {
            certs.push(c);
        }
    }
    if certs.is_empty() {
        bail!(
            "SSL_CERT_FILE {} holds no PEM certificates",
            Path::new(&path).display()
        );
    }
    Ok(RootCerts::new_with_certs(&certs))
}

fn header(resp: &Response<Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn content_length(resp: &Response<Body>) -> Option<u64> {
    header(resp, "content-length").and_then(|v| v.trim().parse().ok())
}

/// `Content-Range: bytes START-END/TOTAL` → START.
fn content_range_start(resp: &Response<Body>) -> Option<u64> {
    let v = header(resp, "content-range")?;
    let range = v.trim().strip_prefix("bytes ")?;
    range.split('-').next()?.trim().parse().ok()
}

/// `Cache-Control: max-age=N` (none with `no-cache`/`no-store`).
pub fn cache_max_age(resp: &Response<Body>) -> Option<i64> {
    let v = header(resp, "cache-control")?;
    let mut age = None;
    for d in v.split(',').map(str::trim) {
        if d.eq_ignore_ascii_case("no-cache") || d.eq_ignore_ascii_case("no-store") {
            return None;
        }
        if let Some(n) = d.strip_prefix("max-age=") {
            age = n.trim_matches('"').parse().ok();
        }
    }
    age
}

/// The host name of an http(s) URL (without port or credentials).
pub fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => authority.split(':').next()?,
    };
    Some(host.to_ascii_lowercase())
}
