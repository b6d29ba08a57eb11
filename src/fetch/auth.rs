//! rkt's `auth.d` configuration: per-domain credentials for appc and http(s) fetches.
//!
//! Files `*.json` in `<system-config>/auth.d/`, then `<local-config>/auth.d/`, then
//! `<user-config>/auth.d/` (later ones override earlier ones for the same domain):
//! `{"rktKind": "auth", "rktVersion": "v1", "domains": ["example.com"], "type": "basic",
//! "credentials": {"user": "u", "password": "p"}}` or `"type": "oauth"` with
//! `"credentials": {"token": "t"}` (sent as `Authorization: Bearer t`). Files of other
//! kinds (e.g. `dockerAuth`) are left to their own readers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use base64::Engine;
use serde::Deserialize;

/// `Authorization` header values by domain (host name).
#[derive(Debug, Clone, Default)]
pub struct AuthHeaders {
    by_domain: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Head {
    rkt_kind: String,
    rkt_version: String,
}

#[derive(Deserialize)]
struct AuthV1 {
    domains: Vec<String>,
    #[serde(rename = "type")]
    kind: String,
    credentials: BTreeMap<String, String>,
}

impl AuthHeaders {
    /// Reads every `auth.d` directory in order; missing directories are fine.
    pub fn load(config_dirs: &[PathBuf]) -> Result<AuthHeaders> {
        let mut h = AuthHeaders::default();
        for dir in config_dirs {
            for file in json_files(&dir.join("auth.d"))? {
                h.load_file(&file)
                    .with_context(|| format!("invalid auth configuration {}", file.display()))?;
            }
        }
        Ok(h)
    }

    fn load_file(&mut self, path: &Path) -> Result<()> {
        let bytes = std::fs::read(path)?;
        let head: Head = serde_json::from_slice(&bytes)?;
        if head.rkt_kind != "auth" {
            return Ok(());
        }
        if head.rkt_version != "v1" {
            bail!(
                "rktVersion {:?} is not supported; use \"v1\"",
                head.rkt_version
            );
        }
        let auth: AuthV1 = serde_json::from_slice(&bytes)?;
        let value = header_value(&auth)?;
        for d in auth.domains {
            self.by_domain.insert(d.to_ascii_lowercase(), value.clone());
        }
        Ok(())
    }

    /// The `Authorization` value for requests to `host`, if configured.
    pub fn for_host(&self, host: &str) -> Option<&str> {
        self.by_domain
            .get(&host.to_ascii_lowercase())
            .map(String::as_str)
    }
}

fn header_value(auth: &AuthV1) -> Result<String> {
    let cred = |k: &str| {
        auth.credentials
            .get(k)
            .with_context(|| format!("type {:?} needs credentials.{k}", auth.kind))
    };
    match auth.kind.as_str() {
        "basic" => {
            let raw = format!("{}:{}", cred("user")?, cred("password")?);
            Ok(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(raw)
            ))
        }
        "oauth" => Ok(format!("Bearer {}", cred("token")?)),
        other => bail!("auth type {other:?} is not supported; use \"basic\" or \"oauth\""),
    }
}

fn json_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut files = Vec::new();
    for entry in rd {
        let p = entry?.path();
        if p.extension().is_some_and(|e| e == "json") && p.is_file() {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_and_oauth_with_local_override() {
        let t = tempfile::tempdir().unwrap();
        let (sys, local) = (t.path().join("sys"), t.path().join("local"));
        for d in [&sys, &local] {
            std::fs::create_dir_all(d.join("auth.d")).unwrap();
        }
        std::fs::write(sys.join("auth.d/a.json"), r#"{"rktKind":"auth","rktVersion":"v1","domains":["a.com","B.com"],"type":"basic","credentials":{"user":"u","password":"p"}}"#).unwrap();
        std::fs::write(local.join("auth.d/b.json"), r#"{"rktKind":"auth","rktVersion":"v1","domains":["b.com"],"type":"oauth","credentials":{"token":"tok"}}"#).unwrap();
        std::fs::write(local.join("auth.d/d.json"), r#"{"rktKind":"dockerAuth","rktVersion":"v1","registries":["x"],"credentials":{"user":"u","password":"p"}}"#).unwrap();
        let h = AuthHeaders::load(&[sys.clone(), local.clone()]).unwrap();
        assert_eq!(h.for_host("a.com"), Some("Basic dTpw"));
        assert_eq!(h.for_host("b.com"), Some("Bearer tok"));
        assert_eq!(h.for_host("c.com"), None);
        std::fs::write(
            local.join("auth.d/bad.json"),
            r#"{"rktKind":"auth","rktVersion":"v1","domains":["x"],"type":"aws","credentials":{}}"#,
        )
        .unwrap();
        let e = AuthHeaders::load(&[sys, local]).unwrap_err();
        assert!(format!("{e:#}").contains("bad.json"), "{e:#}");
    }
}
