//! Image manifests (Docker v2 schema 2, OCI) and indexes (Docker manifest lists, OCI image
//! indexes), with platform selection.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{DockerError, Result};
use rkt_store::docker::Platform;

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_V1: &str = "application/vnd.docker.distribution.manifest.v1";

/// Every manifest type we accept, for `Accept` headers.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// Largest manifest or config accepted.
pub const MAX_JSON: u64 = 8 << 20;

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    pub platform: Option<Platform>,
    /// `org.opencontainers.image.ref.name`, in OCI layout indexes.
    pub ref_name: Option<String>,
}

/// A parsed manifest.
#[derive(Debug, Clone)]
pub enum Parsed {
    Image {
        config: Descriptor,
        layers: Vec<Descriptor>,
    },
    Index(Vec<Descriptor>),
}

fn bad(what: &str, msg: impl Into<String>) -> DockerError {
    DockerError::Image(format!("{what}: {}", msg.into()))
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Check that `bytes` have digest `digest` (only sha256 is accepted).
pub fn verify(what: &str, digest: &str, bytes: &[u8]) -> Result<()> {
    if !digest.starts_with("sha256:") {
        return Err(bad(
            what,
            format!("digest {digest:?} is not sha256; only sha256 is supported"),
        ));
    }
    let got = sha256_digest(bytes);
    if got != digest {
        return Err(bad(
            what,
            format!("content has digest {got}, not {digest}: corrupted or forged"),
        ));
    }
    Ok(())
}

fn descriptor(what: &str, v: &Value) -> Result<Descriptor> {
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(String::from);
    let digest = s("digest").ok_or_else(|| bad(what, "a descriptor has no digest"))?;
    rkt_store_digest_check(what, &digest)?;
    let size = v
        .get("size")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad(what, format!("descriptor {digest} has no size")))?;
    let platform = v.get("platform").map(|p| Platform {
        os: p
            .get("os")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        architecture: p
            .get("architecture")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        variant: p.get("variant").and_then(Value::as_str).map(String::from),
    });
    let ref_name = v
        .get("annotations")
        .and_then(|a| a.get("org.opencontainers.image.ref.name"))
        .and_then(Value::as_str)
        .map(String::from);
    Ok(Descriptor {
        media_type: s("mediaType").unwrap_or_default(),
        digest,
        size,
        platform,
        ref_name,
    })
}

fn rkt_store_digest_check(what: &str, digest: &str) -> Result<()> {
    let ok = digest.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    if ok {
        Ok(())
    } else {
        Err(bad(
            what,
            format!("digest {digest:?} is not sha256:<64 hex digits>"),
        ))
    }
}

/// Parse a manifest or index; `content_type` is the registry's, if any.
pub fn parse(what: &str, bytes: &[u8], content_type: Option<&str>) -> Result<Parsed> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| bad(what, format!("manifest is not JSON: {e}")))?;
    let media = v
        .get("mediaType")
        .and_then(Value::as_str)
        .or(content_type)
        .unwrap_or_default()
        .to_string();
    if media.starts_with(DOCKER_V1) || v.get("schemaVersion").and_then(Value::as_u64) == Some(1) {
        return Err(bad(
            what,
            "Docker image manifest v2 schema 1 is deprecated and not supported; push the image again with a current Docker or skopeo",
        ));
    }
    if let Some(list) = v.get("manifests").and_then(Value::as_array) {
        let items = list
            .iter()
            .map(|d| descriptor(what, d))
            .collect::<Result<Vec<_>>>()?;
        return Ok(Parsed::Index(items));
    }
    let config = v
        .get("config")
        .ok_or_else(|| bad(what, format!("manifest of type {media:?} has no config")))?;
    let config = descriptor(what, config)?;
    let layers = v
        .get("layers")
        .and_then(Value::as_array)
        .ok_or_else(|| bad(what, "manifest has no layers list"))?
        .iter()
        .map(|d| descriptor(what, d))
        .collect::<Result<Vec<_>>>()?;
    for l in &layers {
        if l.media_type.contains("foreign") || l.media_type.contains("nondistributable") {
            return Err(bad(
                what,
                format!(
                    "layer {} is a foreign layer ({}), which rkt cannot fetch",
                    l.digest, l.media_type
                ),
            ));
        }
    }
    Ok(Parsed::Image { config, layers })
}

/// The index entry for `want`: exact os/architecture (and variant if both name one).
pub fn select_platform<'a>(
    what: &str,
    items: &'a [Descriptor],
    want: &Platform,
) -> Result<&'a Descriptor> {
    let fits = |d: &&Descriptor| {
        d.platform.as_ref().is_some_and(|p| {
            p.os == want.os
                && p.architecture == want.architecture
                && (want.variant.is_none() || p.variant.is_none() || p.variant == want.variant)
        })
    };
    items.iter().find(fits).ok_or_else(|| {
        let have: Vec<String> = items
            .iter()
            .filter_map(|d| d.platform.as_ref())
            .map(|p| format!("{}/{}", p.os, p.architecture))
            .collect();
        bad(
            what,
            format!(
                "no image for {}/{} in the index (it has: {})",
                want.os,
                want.architecture,
                if have.is_empty() {
                    "none".to_string()
                } else {
                    have.join(", ")
                }
            ),
        )
    })
}

/// The `rootfs.diff_ids` of an image config, if it lists them.
pub fn diff_ids(config: &Value) -> Option<Vec<String>> {
    config.get("rootfs")?.get("diff_ids")?.as_array().map(|a| {
        a.iter()
            .filter_map(|s| s.as_str().map(String::from))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_linux_amd64() {
        let d = |a: &str| {
            format!(
                r#"{{"digest":"sha256:{}","size":1,"platform":{{"os":"linux","architecture":"{a}"}}}}"#,
                "a".repeat(64)
            )
        };
        let idx = format!(
            r#"{{"schemaVersion":2,"manifests":[{},{}]}}"#,
            d("arm64"),
            d("amd64")
        );
        let Parsed::Index(items) = parse("x", idx.as_bytes(), None).unwrap() else {
            panic!()
        };
        let got = select_platform("x", &items, &Platform::default()).unwrap();
        assert_eq!(got.platform.as_ref().unwrap().architecture, "amd64");
        let want = Platform {
            os: "linux".into(),
            architecture: "s390x".into(),
            variant: None,
        };
        assert!(select_platform("x", &items, &want).is_err());
    }

    #[test]
    fn refuses_schema1_and_bad_digests() {
        assert!(parse("x", br#"{"schemaVersion":1,"fsLayers":[]}"#, None).is_err());
        let m = r#"{"schemaVersion":2,"config":{"digest":"sha256:../x","size":1},"layers":[]}"#;
        assert!(parse("x", m.as_bytes(), None).is_err());
        assert!(verify("x", &sha256_digest(b"a"), b"b").is_err());
        assert!(verify("x", &sha256_digest(b"a"), b"a").is_ok());
    }
}
