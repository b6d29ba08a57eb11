//! A Docker Registry HTTP API v2 client: manifests (by tag or digest, with platform selection
//! in indexes), blobs, anonymous access, bearer tokens from `WWW-Authenticate` challenges and
//! HTTP basic auth. Every manifest fetched by digest and every config is verified here;
//! layer blobs are verified by the store as they stream in.

use std::io::Read;
use std::time::Duration;

use serde_json::Value;
use ureq::http::Response;
use ureq::{Agent, Body};

use crate::auth::Credentials;
use crate::error::{DockerError, Result};
use crate::manifest::{self, Parsed, ACCEPT, MAX_JSON};
use crate::pull::{ImageSource, Layer, Resolved};
use crate::reference::DockerRef;
use rkt_store::docker::{DockerImage, Platform};

/// How to reach a registry.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Allow plain HTTP (`--insecure-options=http`): tried when HTTPS cannot connect.
    pub allow_http: bool,
    pub credentials: Option<Credentials>,
    pub platform: Platform,
    /// How the user gives this program credentials for the registry (its own configuration
    /// files or flags): said when the registry asks for credentials that are missing or wrong.
    pub credentials_hint: String,
}

/// A registry client for one repository. A clone shares the connection pool and the
/// credentials (another thread's downloads use one).
#[derive(Clone)]
pub struct Registry {
    agent: Agent,
    base: String,
    repository: String,
    registry: String,
    opts: Options,
    authorization: Option<String>,
}

fn registry_err(registry: &str, msg: impl Into<String>) -> DockerError {
    DockerError::Registry {
        registry: registry.to_string(),
        msg: msg.into(),
    }
}

/// Percent-encode a query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Parse `Scheme k="v",k2="v2"` into the scheme and its parameters.
pub fn parse_challenge(header: &str) -> (String, Vec<(String, String)>) {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        params.push((key.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    (scheme.to_ascii_lowercase(), params)
}

impl Registry {
    /// Connect to `r`'s registry (pinging `/v2/` to choose HTTPS or, if allowed, HTTP).
    pub fn connect(r: &DockerRef, opts: Options) -> Result<Registry> {
        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(120)))
            .user_agent("rkt (Rust)")
            .build()
            .into();
        let mut reg = Registry {
            agent,
            base: format!("https://{}", r.registry),
            repository: r.repository.clone(),
            registry: r.registry.clone(),
            opts,
            authorization: None,
        };
        let url = format!("{}/v2/", reg.base);
        match reg.agent.get(&url).call() {
            Ok(_) => {}
            Err(e) if reg.opts.allow_http => {
                tracing::info!("{url}: {e}; trying plain HTTP (--insecure-options=http)");
                reg.base = format!("http://{}", r.registry);
                let url = format!("{}/v2/", reg.base);
                reg.agent
                    .get(&url)
                    .call()
                    .map_err(|e| registry_err(&r.registry, format!("cannot reach {url}: {e}")))?;
            }
            Err(e) => {
                return Err(registry_err(
                    &r.registry,
                    format!(
                    "cannot reach {url}: {e} (a plain-HTTP registry needs --insecure-options=http)"
                ),
                ))
            }
        }
        Ok(reg)
    }

    fn send(&self, url: &str, accept: Option<&str>) -> Result<Response<Body>> {
        let mut req = self.agent.get(url);
        if let Some(a) = accept {
            req = req.header("Accept", a);
        }
        if let Some(auth) = &self.authorization {
            req = req.header("Authorization", auth);
        }
        req.call().map_err(|e| DockerError::Http {
            url: url.to_string(),
            msg: e.to_string(),
        })
    }

    /// GET with authentication on demand; fails on any non-2xx answer.
    fn get(&mut self, url: &str, accept: Option<&str>) -> Result<Response<Body>> {
        let mut resp = self.send(url, accept)?;
        // A 401 with a bearer token in hand means it expired (token servers often grant 300 s,
        // less than a big pull takes): ask for a new one once, as without a token.
        let stale_token = self
            .authorization
            .as_deref()
            .is_some_and(|a| a.starts_with("Bearer "));
        if resp.status().as_u16() == 401 && (self.authorization.is_none() || stale_token) {
            self.authorization = None;
            let challenge = resp
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            self.authenticate(&challenge)?;
            resp = self.send(url, accept)?;
        }
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(resp);
        }
        let body = resp
            .into_body()
            .with_config()
            .limit(4096)
            .read_to_string()
            .unwrap_or_default();
        let hint = match (status, &self.opts.credentials) {
            (401 | 403, Some(c)) => format!(
                " (access denied to user {:?}: check the user name, the password and the user's \
                 rights; {})",
                c.user, self.opts.credentials_hint
            ),
            (401 | 403, None) => format!(
                " (access denied without credentials: {})",
                self.opts.credentials_hint
            ),
            (404, _) => " (no such image, tag or blob)".to_string(),
            _ => String::new(),
        };
        Err(DockerError::Http {
            url: url.to_string(),
            msg: format!("HTTP {status}{hint}: {}", body.trim()),
        })
    }

    fn authenticate(&mut self, challenge: &str) -> Result<()> {
        let (scheme, params) = parse_challenge(challenge);
        let creds = self.opts.credentials.clone();
        match scheme.as_str() {
            "basic" => {
                let c = creds.ok_or_else(|| {
                    registry_err(
                        &self.registry,
                        format!(
                            "asks for a user name and password, and none is configured for it: {}",
                            self.opts.credentials_hint
                        ),
                    )
                })?;
                self.authorization = Some(basic(&c));
                Ok(())
            }
            "bearer" => {
                let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
                let realm = get("realm").ok_or_else(|| {
                    registry_err(&self.registry, "bearer challenge without a realm")
                })?;
                let scope =
                    get("scope").unwrap_or_else(|| format!("repository:{}:pull", self.repository));
                let mut url = format!(
                    "{realm}{}scope={}",
                    if realm.contains('?') { '&' } else { '?' },
                    encode(&scope)
                );
                if let Some(service) = get("service") {
                    url.push_str(&format!("&service={}", encode(&service)));
                }
                let mut req = self.agent.get(&url);
                if let Some(c) = &creds {
                    req = req.header("Authorization", basic(c));
                }
                let resp = req.call().map_err(|e| DockerError::Http {
                    url: url.clone(),
                    msg: e.to_string(),
                })?;
                if !resp.status().is_success() {
                    let status = resp.status().as_u16();
                    let why = match (status, &creds) {
                        (401 | 403, Some(c)) => format!(
                            ": the token service refused user {:?}; check the user name and \
                             password ({})",
                            c.user, self.opts.credentials_hint
                        ),
                        (401 | 403, None) => format!(
                            ": the token service wants credentials, and none is configured for \
                             this registry: {}",
                            self.opts.credentials_hint
                        ),
                        _ => String::new(),
                    };
                    return Err(DockerError::Http {
                        url,
                        msg: format!("token request refused: HTTP {status}{why}"),
                    });
                }
                let v: Value = serde_json::from_slice(
                    &resp
                        .into_body()
                        .with_config()
                        .limit(MAX_JSON)
                        .read_to_vec()
                        .map_err(|e| registry_err(&self.registry, format!("reading token: {e}")))?,
                )
                .map_err(|e| {
                    registry_err(&self.registry, format!("token answer is not JSON: {e}"))
                })?;
                let token = v
                    .get("token")
                    .or_else(|| v.get("access_token"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| registry_err(&self.registry, "token answer has no token"))?;
                self.authorization = Some(format!("Bearer {token}"));
                Ok(())
            }
            _ => Err(registry_err(
                &self.registry,
                format!("requires authentication rkt does not support: {challenge:?}"),
            )),
        }
    }

    fn read_json(&self, resp: Response<Body>, what: &str) -> Result<Vec<u8>> {
        resp.into_body()
            .with_config()
            .limit(MAX_JSON)
            .read_to_vec()
            .map_err(|e| registry_err(&self.registry, format!("reading {what}: {e}")))
    }

    /// A manifest (or index) and its content type.
    pub fn manifest(&mut self, reference: &str) -> Result<(Vec<u8>, Option<String>)> {
        let url = format!("{}/v2/{}/manifests/{reference}", self.base, self.repository);
        let resp = self.get(&url, Some(ACCEPT))?;
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(';').next().unwrap_or(s).trim().to_string());
        let bytes = self.read_json(resp, "the manifest")?;
        if reference.starts_with("sha256:") {
            manifest::verify(&format!("manifest {reference}"), reference, &bytes)?;
        }
        Ok((bytes, ct))
    }

    /// A blob, streaming (the caller verifies its digest).
    pub fn blob(&mut self, digest: &str) -> Result<Box<dyn Read + Send>> {
        let url = format!("{}/v2/{}/blobs/{digest}", self.base, self.repository);
        let resp = self.get(&url, None)?;
        Ok(Box::new(resp.into_body().into_reader()))
    }

    fn small_blob(&mut self, digest: &str, what: &str) -> Result<Vec<u8>> {
        let url = format!("{}/v2/{}/blobs/{digest}", self.base, self.repository);
        let resp = self.get(&url, None)?;
        let bytes = self.read_json(resp, what)?;
        manifest::verify(what, digest, &bytes)?;
        Ok(bytes)
    }
}

fn basic(c: &Credentials) -> String {
    use base64::Engine;
    let raw = format!("{}:{}", c.user, c.password);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// An image in a registry, as an [`ImageSource`].
pub struct RegistrySource {
    reference: DockerRef,
    original: String,
    client: Registry,
}

impl RegistrySource {
    pub fn new(original: &str, opts: Options) -> Result<RegistrySource> {
        let reference = DockerRef::parse(original)?;
        let client = Registry::connect(&reference, opts)?;
        Ok(RegistrySource {
            reference,
            original: original.to_string(),
            client,
        })
    }
}

impl ImageSource for RegistrySource {
    fn resolve(&mut self) -> Result<Resolved> {
        let r = self.reference.reference().to_string();
        let (mut bytes, mut ct) = self.client.manifest(&r)?;
        let mut digest = manifest::sha256_digest(&bytes);
        let what = format!(
            "{}/{}:{}",
            self.reference.registry, self.reference.repository, r
        );
        let mut parsed = manifest::parse(&what, &bytes, ct.as_deref())?;
        if let Parsed::Index(items) = &parsed {
            let chosen =
                manifest::select_platform(&what, items, &self.client.opts.platform)?.clone();
            (bytes, ct) = self.client.manifest(&chosen.digest)?;
            digest = chosen.digest.clone();
            parsed = manifest::parse(&what, &bytes, ct.as_deref())?;
        }
        let Parsed::Image { config, layers } = parsed else {
            return Err(DockerError::Image(format!(
                "{what}: an index points to another index"
            )));
        };
        let config_bytes = self
            .client
            .small_blob(&config.digest, &format!("{what}: image config"))?;
        let config: Value = serde_json::from_slice(&config_bytes)
            .map_err(|e| DockerError::Image(format!("{what}: image config is not JSON: {e}")))?;
        let layers: Vec<Layer> = crate::pull::layers_with_diff_ids(&what, &layers, &config)?;
        Ok(Resolved {
            image: DockerImage {
                registry: self.reference.registry.clone(),
                repository: self.reference.repository.clone(),
                tag: self.reference.tag.clone(),
                original_name: self.original.clone(),
                manifest_hash: Some(digest),
                top_layer: layers.last().map(|l| l.digest.clone()),
                config,
            },
            layers,
        })
    }

    fn open_layer(&mut self, layer: &Layer) -> Result<Box<dyn Read + '_>> {
        Ok(self.client.blob(&layer.digest)?)
    }

    fn describe(&self) -> String {
        self.original.clone()
    }

    fn download(&self) -> Option<crate::prefetch::Download> {
        let client = self.client.clone();
        Some(std::sync::Arc::new(move |layer: &Layer| {
            client.clone().blob(&layer.digest)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#,
        );
        assert_eq!(s, "bearer");
        assert_eq!(
            p[0],
            ("realm".into(), "https://auth.docker.io/token".into())
        );
        assert_eq!(
            p[2],
            ("scope".into(), "repository:library/nginx:pull".into())
        );
        let (s, p) = parse_challenge("Basic realm=x");
        assert_eq!(
            (s.as_str(), p),
            ("basic", vec![("realm".into(), "x".into())])
        );
        assert_eq!(encode("repository:a/b:pull"), "repository%3Aa%2Fb%3Apull");
    }
}
