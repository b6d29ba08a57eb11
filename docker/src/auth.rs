//! Registry credentials from rkt's `dockerAuth` configuration: JSON files in `auth.d/` of the
//! system, local and user configuration directories (later directories override earlier):
//!
//! ```json
//! {"rktKind": "dockerAuth", "rktVersion": "v1",
//!  "registries": ["quay.io"], "credentials": {"user": "u", "password": "p"}}
//! ```

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

use crate::error::{DockerError, Result};

/// A user name and password for HTTP basic auth (and bearer token requests).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <hidden>)", self.user)
    }
}

/// Credentials by registry host.
#[derive(Debug, Default, Clone)]
pub struct DockerAuth(HashMap<String, Credentials>);

impl DockerAuth {
    /// Read `DIR/auth.d/*.json` for each directory, in order; files of other kinds are skipped.
    pub fn load(dirs: &[&Path]) -> Result<DockerAuth> {
        let mut auth = DockerAuth::default();
        for dir in dirs {
            let d = dir.join("auth.d");
            let Ok(list) = std::fs::read_dir(&d) else {
                continue;
            };
            let mut files: Vec<_> = list
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            files.sort();
            for f in files {
                auth.read_file(&f)?;
            }
        }
        Ok(auth)
    }

    fn read_file(&mut self, path: &Path) -> Result<()> {
        let bad = |msg: String| DockerError::Image(format!("{}: {msg}", path.display()));
        let text =
            std::fs::read(path).map_err(crate::error::io(format!("reading {}", path.display())))?;
        let v: Value = serde_json::from_slice(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
        if v.get("rktKind").and_then(Value::as_str) != Some("dockerAuth") {
            return Ok(());
        }
        if v.get("rktVersion").and_then(Value::as_str) != Some("v1") {
            return Err(bad(
                "dockerAuth files must have \"rktVersion\": \"v1\"".into()
            ));
        }
        let regs = v
            .get("registries")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("dockerAuth needs a \"registries\" list".into()))?;
        let creds = v
            .get("credentials")
            .ok_or_else(|| bad("dockerAuth needs \"credentials\"".into()))?;
        let field = |k: &str| {
            creds
                .get(k)
                .and_then(Value::as_str)
                .map(String::from)
                .ok_or_else(|| bad(format!("credentials need a string \"{k}\"")))
        };
        let c = Credentials {
            user: field("user")?,
            password: field("password")?,
        };
        for r in regs {
            let r = r
                .as_str()
                .ok_or_else(|| bad("registries must be strings".into()))?;
            self.0.insert(r.to_string(), c.clone());
        }
        Ok(())
    }

    /// Credentials for `registry` (Docker Hub also answers to `docker.io`).
    pub fn for_registry(&self, registry: &str) -> Option<Credentials> {
        self.0.get(registry).cloned().or_else(|| {
            (registry == rkt_store::docker::convert::DOCKER_HUB)
                .then(|| {
                    self.0
                        .get("docker.io")
                        .or_else(|| self.0.get("index.docker.io"))
                        .cloned()
                })
                .flatten()
        })
    }
}

/// Credentials for `registry` from Docker's own client configuration, as docker2aci read them:
/// `auths[SERVER].auth` (base64 `user:password`) of `DIR/.docker/config.json`, else of the
/// older `DIR/.dockercfg`, where `DIR` is the home directory. Server keys match by host, with
/// or without a scheme and path (`https://index.docker.io/v1/` is Docker Hub).
pub fn from_docker_config(home: &Path, registry: &str) -> Result<Option<Credentials>> {
    for (file, nested) in [(".docker/config.json", true), (".dockercfg", false)] {
        let path = home.join(file);
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let bad = |why: String| DockerError::Image(format!("{}: {why}", path.display()));
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        let auths = if nested { v.get("auths") } else { Some(&v) };
        let Some(auths) = auths.and_then(Value::as_object) else {
            continue;
        };
        for (server, entry) in auths {
            if !server_matches(server, registry) {
                continue;
            }
            let Some(auth) = entry.get("auth").and_then(Value::as_str) else {
                continue;
            };
            use base64::Engine;
            let raw = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|e| bad(format!("auth of {server:?} is not base64: {e}")))?;
            let text = String::from_utf8(raw)
                .map_err(|_| bad(format!("auth of {server:?} is not UTF-8")))?;
            let Some((user, password)) = text.split_once(':') else {
                return Err(bad(format!("auth of {server:?} is not user:password")));
            };
            return Ok(Some(Credentials {
                user: user.to_string(),
                password: password.to_string(),
            }));
        }
    }
    Ok(None)
}

fn server_matches(server: &str, registry: &str) -> bool {
    let host = server
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = host.split('/').next().unwrap_or(host);
    let hub = |h: &str| matches!(h, "index.docker.io" | "docker.io" | "registry-1.docker.io");
    host == registry || (registry == rkt_store::docker::convert::DOCKER_HUB && hub(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_docker_client_config() {
        use base64::Engine;
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".docker")).unwrap();
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        std::fs::write(
            home.path().join(".docker/config.json"),
            format!(
                r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{}"}},"127.0.0.1:5000":{{"auth":"{}"}}}}}}"#,
                b64("hub:pw"),
                b64("me:se:cret")
            ),
        )
        .unwrap();
        let hub = from_docker_config(home.path(), "registry-1.docker.io")
            .unwrap()
            .unwrap();
        assert_eq!((hub.user.as_str(), hub.password.as_str()), ("hub", "pw"));
        let local = from_docker_config(home.path(), "127.0.0.1:5000")
            .unwrap()
            .unwrap();
        assert_eq!(
            (local.user.as_str(), local.password.as_str()),
            ("me", "se:cret")
        );
        assert!(from_docker_config(home.path(), "quay.io")
            .unwrap()
            .is_none());
        std::fs::write(
            home.path().join(".docker/config.json"),
            r#"{"auths":{"quay.io":{"auth":"!!"}}}"#,
        )
        .unwrap();
        let err = from_docker_config(home.path(), "quay.io").unwrap_err();
        assert!(err.to_string().contains("not base64"), "{err}");
        // The older ~/.dockercfg has the servers at the top level.
        std::fs::remove_file(home.path().join(".docker/config.json")).unwrap();
        std::fs::write(
            home.path().join(".dockercfg"),
            format!(r#"{{"quay.io":{{"auth":"{}","email":""}}}}"#, b64("q:w")),
        )
        .unwrap();
        let q = from_docker_config(home.path(), "quay.io").unwrap().unwrap();
        assert_eq!(q.user, "q");
    }

    #[test]
    fn reads_docker_auth_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("auth.d")).unwrap();
        std::fs::write(
            dir.path().join("auth.d/a.json"),
            r#"{"rktKind":"dockerAuth","rktVersion":"v1","registries":["r.example","docker.io"],"credentials":{"user":"u","password":"p"}}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("auth.d/b.json"),
            r#"{"rktKind":"auth","rktVersion":"v1"}"#,
        )
        .unwrap();
        let a = DockerAuth::load(&[dir.path()]).unwrap();
        assert_eq!(a.for_registry("r.example").unwrap().user, "u");
        assert_eq!(
            a.for_registry("registry-1.docker.io").unwrap().password,
            "p"
        );
        assert!(a.for_registry("other").is_none());
    }
}
