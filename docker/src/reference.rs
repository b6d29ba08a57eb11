//! `docker://[REGISTRY[:PORT]/]NAME[:TAG|@DIGEST]` as Docker reads it: the first component is
//! a registry if it has a `.` or `:` or is `localhost`; otherwise the registry is Docker Hub
//! and single names get `library/`; the tag defaults to `latest`.

use crate::error::{DockerError, Result};
use rkt_store::docker::convert::DOCKER_HUB;

/// A parsed Docker image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerRef {
    /// Registry host and port (`registry-1.docker.io` for Docker Hub).
    pub registry: String,
    /// Repository path, e.g. `library/nginx`.
    pub repository: String,
    /// Tag (None when pulling by digest).
    pub tag: Option<String>,
    /// `sha256:…` when pulling by digest.
    pub digest: Option<String>,
    /// Whether the registry was given (false: defaulted to Docker Hub).
    pub explicit_registry: bool,
}

fn bad(text: &str, why: impl Into<String>) -> DockerError {
    DockerError::Reference(text.to_string(), why.into())
}

fn valid_component(c: &str) -> bool {
    !c.is_empty()
        && c.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && c.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
}

impl DockerRef {
    /// Parse `docker://…`, `docker:…` or a bare reference.
    pub fn parse(arg: &str) -> Result<DockerRef> {
        let text = arg
            .strip_prefix("docker://")
            .or_else(|| arg.strip_prefix("docker:"))
            .unwrap_or(arg);
        if text.is_empty() {
            return Err(bad(arg, "no image name"));
        }
        let (rest, digest) = match text.split_once('@') {
            Some((r, d)) => {
                let ok = d.strip_prefix("sha256:").is_some_and(|h| {
                    h.len() == 64
                        && h.bytes()
                            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
                });
                if !ok {
                    return Err(bad(
                        arg,
                        "a digest must be sha256: and 64 lower-case hex digits",
                    ));
                }
                (r, Some(d.to_string()))
            }
            None => (text, None),
        };
        let (first, remainder) = match rest.split_once('/') {
            Some((f, r)) if f.contains('.') || f.contains(':') || f == "localhost" => (Some(f), r),
            _ => (None, rest),
        };
        let (name, tag) = match remainder.rsplit_once(':') {
            Some((n, t)) => (n, Some(t.to_string())),
            None => (remainder, None),
        };
        if let Some(t) = &tag {
            let ok = !t.is_empty()
                && t.len() <= 128
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                && !t.starts_with(['.', '-']);
            if !ok {
                return Err(bad(arg, format!("{t:?} is not a valid tag")));
            }
        }
        if !name.split('/').all(valid_component) {
            return Err(bad(
                arg,
                "repository names are lower-case letters, digits and . _ - separated by /",
            ));
        }
        let registry = match first {
            Some("docker.io") | Some("index.docker.io") | None => DOCKER_HUB.to_string(),
            Some(r) => r.to_string(),
        };
        let repository = if registry == DOCKER_HUB && !name.contains('/') {
            format!("library/{name}")
        } else {
            name.to_string()
        };
        let tag = match (&digest, tag) {
            (Some(_), t) => t,
            (None, Some(t)) => Some(t),
            (None, None) => Some("latest".to_string()),
        };
        Ok(DockerRef {
            registry,
            repository,
            tag,
            digest,
            explicit_registry: first.is_some(),
        })
    }

    /// The tag or digest to ask the registry for.
    pub fn reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> (String, String, Option<String>) {
        let r = DockerRef::parse(s).unwrap();
        (r.registry, r.repository, r.tag)
    }

    #[test]
    fn defaults_like_docker() {
        let hub = DOCKER_HUB.to_string();
        assert_eq!(
            p("busybox"),
            (hub.clone(), "library/busybox".into(), Some("latest".into()))
        );
        assert_eq!(
            p("docker://docker.io/library/busybox:1"),
            (hub.clone(), "library/busybox".into(), Some("1".into()))
        );
        assert_eq!(
            p("docker:gcr.io/google-samples/node-hello:1.0"),
            (
                "gcr.io".into(),
                "google-samples/node-hello".into(),
                Some("1.0".into())
            )
        );
        assert_eq!(
            p("127.0.0.1:5000/test/img:v1"),
            (
                "127.0.0.1:5000".into(),
                "test/img".into(),
                Some("v1".into())
            )
        );
        assert_eq!(
            p("localhost/a"),
            ("localhost".into(), "a".into(), Some("latest".into()))
        );
        assert_eq!(
            p("user/app"),
            (hub, "user/app".into(), Some("latest".into()))
        );
        let d = format!("alpine@sha256:{}", "a".repeat(64));
        let r = DockerRef::parse(&d).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.reference(), format!("sha256:{}", "a".repeat(64)));
    }

    #[test]
    fn bad_references() {
        for s in ["docker://", "Busybox", "a/../b", "x@sha256:12", "a:-x"] {
            assert!(DockerRef::parse(s).is_err(), "{s}");
        }
    }
}
