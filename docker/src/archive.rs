//! Local Docker/OCI images by path: `docker save` archives (the `manifest.json` form and the
//! legacy `repositories` + `<id>/json` + `<id>/layer.tar` form), and OCI image layouts
//! (`oci-layout`, `index.json`, `blobs/`) as directories or tarballs. Archives are indexed,
//! never extracted: a hostile member name can only fail a lookup.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{io, DockerError, Result};
use crate::manifest::{self, Parsed, MAX_JSON};
use crate::pull::{ImageSource, Layer, Resolved};
use crate::reference::DockerRef;
use rkt_store::docker::{DockerImage, Platform};

/// A directory or an (uncompressed) tar archive, read by member name.
enum Container {
    Dir(PathBuf),
    Tar {
        path: PathBuf,
        members: HashMap<String, (u64, u64)>,
    },
}

/// Normalise a member name; None if it climbs out (`..`) — such a name never matches.
fn member_name(name: &str) -> Option<String> {
    let mut parts = Vec::new();
    for p in name.split('/') {
        match p {
            "" | "." => {}
            ".." => return None,
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

impl Container {
    fn open(path: &Path) -> Result<Container> {
        if path.is_dir() {
            return Ok(Container::Dir(path.to_path_buf()));
        }
        let file = File::open(path).map_err(io(format!("opening {}", path.display())))?;
        let mut archive = tar::Archive::new(file);
        let mut members = HashMap::new();
        let entries = archive
            .entries()
            .map_err(io(format!("reading {} as a tar archive", path.display())))?;
        for entry in entries {
            let entry =
                entry.map_err(io(format!("reading {} as a tar archive", path.display())))?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let name = entry
                .path()
                .map_err(io(format!("reading {}", path.display())))?
                .to_string_lossy()
                .into_owned();
            if let Some(n) = member_name(&name) {
                members.insert(n, (entry.raw_file_position(), entry.size()));
            }
        }
        Ok(Container::Tar {
            path: path.to_path_buf(),
            members,
        })
    }

    fn has(&self, name: &str) -> bool {
        match self {
            Container::Dir(d) => member_name(name).is_some_and(|n| d.join(n).is_file()),
            Container::Tar { members, .. } => {
                member_name(name).is_some_and(|n| members.contains_key(&n))
            }
        }
    }

    /// A member and its size.
    fn open_member(&self, name: &str) -> Result<(Box<dyn Read + Send>, u64)> {
        let missing = || DockerError::Image(format!("the archive has no file {name:?}"));
        let n = member_name(name).ok_or_else(missing)?;
        match self {
            Container::Dir(d) => {
                let p = d.join(&n);
                let meta = std::fs::symlink_metadata(&p).map_err(|_| missing())?;
                if !meta.is_file() {
                    return Err(missing());
                }
                let f = File::open(&p).map_err(io(format!("opening {}", p.display())))?;
                Ok((Box::new(f), meta.len()))
            }
            Container::Tar { path, members } => {
                let (offset, size) = *members.get(&n).ok_or_else(missing)?;
                let mut f = File::open(path).map_err(io(format!("opening {}", path.display())))?;
                f.seek(SeekFrom::Start(offset))
                    .map_err(io(format!("reading {}", path.display())))?;
                Ok((Box::new(f.take(size)), size))
            }
        }
    }

    fn read_small(&self, name: &str) -> Result<Vec<u8>> {
        let (r, size) = self.open_member(name)?;
        if size > MAX_JSON {
            return Err(DockerError::Image(format!(
                "{name} is {size} bytes, too large for metadata"
            )));
        }
        let mut out = Vec::new();
        r.take(MAX_JSON)
            .read_to_end(&mut out)
            .map_err(io(format!("reading {name}")))?;
        Ok(out)
    }

    fn json(&self, name: &str) -> Result<Value> {
        serde_json::from_slice(&self.read_small(name)?)
            .map_err(|e| DockerError::Image(format!("{name} is not valid JSON: {e}")))
    }
}

/// A Docker/OCI image in a local archive or layout directory.
pub struct ArchiveSource {
    container: Container,
    path: PathBuf,
    /// `--image NAME[:TAG]`: which image of a multi-image archive.
    image: Option<String>,
    platform: Platform,
    /// Member holding each layer, by the digest used for it.
    members: HashMap<String, String>,
}

/// Whether `path` looks like a Docker/OCI archive or layout (rather than an ACI).
pub fn is_docker_archive(path: &Path) -> bool {
    if path.is_dir() {
        return path.join("oci-layout").is_file() || path.join("manifest.json").is_file();
    }
    let mut head = [0u8; 512];
    let ok = File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok();
    if !ok || &head[257..262] != b"ustar" {
        return false;
    }
    match Container::open(path) {
        Ok(c) => {
            !c.has("manifest")
                && (c.has("manifest.json") || c.has("repositories") || c.has("oci-layout"))
        }
        Err(_) => false,
    }
}

fn archive_err(path: &Path, msg: impl Into<String>) -> DockerError {
    DockerError::Archive {
        source_name: path.display().to_string(),
        msg: msg.into(),
    }
}

/// A legacy layer ID: `^(\w+:)?[A-Fa-f0-9]+$` (docker2aci's CVE-2016-8579 check).
fn valid_layer_id(id: &str) -> bool {
    let hexpart = match id.split_once(':') {
        Some((alg, h))
            if !alg.is_empty() && alg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
        {
            h
        }
        Some(_) => return false,
        None => id,
    };
    !hexpart.is_empty() && hexpart.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Name and tag of a `repo:tag` as docker2aci names archive images (no registry unless given).
fn split_repo_tag(text: &str) -> Result<(String, String, Option<String>)> {
    let r = DockerRef::parse(text)?;
    let registry = if r.explicit_registry {
        r.registry
    } else {
        String::new()
    };
    Ok((registry, r.repository, r.tag))
}

impl ArchiveSource {
    pub fn open(path: &Path, image: Option<String>, platform: Platform) -> Result<ArchiveSource> {
        let container = Container::open(path)?;
        Ok(ArchiveSource {
            container,
            path: path.to_path_buf(),
            image,
            platform,
            members: HashMap::new(),
        })
    }

    fn sha256_of(&self, member: &str) -> Result<String> {
        let (mut r, _) = self.container.open_member(member)?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = r.read(&mut buf).map_err(io(format!("reading {member}")))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(format!("sha256:{}", hex::encode(h.finalize())))
    }

    fn layer_for(&mut self, member: &str, diff_id: Option<String>, size: u64) -> Result<Layer> {
        let digest = match &diff_id {
            Some(d) => d.clone(),
            None => self.sha256_of(member)?,
        };
        self.members.insert(digest.clone(), member.to_string());
        Ok(Layer {
            digest,
            size: Some(size),
            diff_id,
        })
    }

    fn choose<'a, T>(&self, items: &'a [(String, T)], what: &str) -> Result<&'a T> {
        let want = self.image.as_deref();
        let found: Vec<&(String, T)> = match want {
            Some(w) => {
                let norm = DockerRef::parse(w).ok();
                items
                    .iter()
                    .filter(|(n, _)| {
                        n == w
                            || norm
                                .as_ref()
                                .is_some_and(|x| DockerRef::parse(n).ok().as_ref() == Some(x))
                    })
                    .collect()
            }
            None => items.iter().collect(),
        };
        match found.as_slice() {
            [one] => Ok(&one.1),
            [] if want.is_some() => Err(archive_err(
                &self.path,
                format!(
                    "has no image {:?}; it has: {}",
                    want.unwrap_or_default(),
                    items
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
            [] => Err(archive_err(&self.path, format!("holds no {what}"))),
            _ => Err(archive_err(
                &self.path,
                format!(
                    "holds several images; choose one with --image: {}",
                    items
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }

    fn image(
        &self,
        registry: String,
        repository: String,
        tag: Option<String>,
        config: Value,
        top: Option<String>,
        hash: Option<String>,
    ) -> DockerImage {
        DockerImage {
            registry,
            repository,
            tag,
            original_name: self.path.display().to_string(),
            manifest_hash: hash,
            top_layer: top,
            config,
        }
    }

    /// `docker save` / `skopeo copy docker-archive:`: `manifest.json`.
    fn resolve_docker_save(&mut self) -> Result<Resolved> {
        let list = self.container.json("manifest.json")?;
        let list = list
            .as_array()
            .ok_or_else(|| archive_err(&self.path, "manifest.json is not a list"))?;
        let mut items = Vec::new();
        for m in list {
            let tags = crate::pull::strings(m.get("RepoTags"));
            let name = tags.first().cloned().unwrap_or_else(|| "<untagged>".into());
            items.push((name, m.clone()));
        }
        let m = self.choose(&items, "image")?.clone();
        let name = m
            .get("RepoTags")
            .and_then(|t| t.get(0))
            .and_then(Value::as_str)
            .map(String::from);
        let config_name = m
            .get("Config")
            .and_then(Value::as_str)
            .ok_or_else(|| archive_err(&self.path, "manifest.json entry has no Config"))?
            .to_string();
        let config_bytes = self.container.read_small(&config_name)?;
        let base = config_name.rsplit('/').next().unwrap_or_default();
        let hexname = base.strip_suffix(".json").unwrap_or(base);
        if hexname.len() == 64 && hexname.bytes().all(|b| b.is_ascii_hexdigit()) {
            manifest::verify(&config_name, &format!("sha256:{hexname}"), &config_bytes)?;
        }
        let config: Value = serde_json::from_slice(&config_bytes)
            .map_err(|e| archive_err(&self.path, format!("{config_name} is not JSON: {e}")))?;
        let layer_names = crate::pull::strings(m.get("Layers"));
        let diff_ids = manifest::diff_ids(&config);
        if let Some(ids) = &diff_ids {
            if ids.len() != layer_names.len() {
                return Err(archive_err(
                    &self.path,
                    "the config's diff IDs and the layer list differ in length",
                ));
            }
        }
        let mut layers = Vec::new();
        for (i, member) in layer_names.iter().enumerate() {
            let (_, size) = self.container.open_member(member)?;
            let diff = diff_ids.as_ref().and_then(|d| d.get(i).cloned());
            layers.push(self.layer_for(member, diff, size)?);
        }
        let (registry, repository, tag) = match &name {
            Some(n) => split_repo_tag(n)?,
            None => (String::new(), file_stem(&self.path), None),
        };
        let top = layers.last().map(|l| l.digest.clone());
        let hash = Some(manifest::sha256_digest(&config_bytes));
        Ok(Resolved {
            image: self.image(registry, repository, tag, config, top, hash),
            layers,
        })
    }

    /// Legacy `docker save`: `repositories` and `<id>/json`, `<id>/layer.tar`.
    fn resolve_legacy(&mut self) -> Result<Resolved> {
        let repos = self.container.json("repositories")?;
        let repos = repos
            .as_object()
            .ok_or_else(|| archive_err(&self.path, "repositories is not a JSON object"))?;
        let mut items = Vec::new();
        for (repo, tags) in repos {
            for (tag, id) in tags.as_object().into_iter().flatten() {
                items.push((
                    format!("{repo}:{tag}"),
                    (
                        repo.clone(),
                        tag.clone(),
                        id.as_str().unwrap_or_default().to_string(),
                    ),
                ));
            }
        }
        let (repo, tag, top) = self.choose(&items, "image")?.clone();
        let mut chain = Vec::new();
        let mut seen = HashSet::new();
        let mut id = top.clone();
        let mut top_json = Value::Null;
        loop {
            if !valid_layer_id(&id) {
                return Err(archive_err(
                    &self.path,
                    format!("layer ID {id:?} is invalid (IDs are hex digits)"),
                ));
            }
            if !seen.insert(id.clone()) {
                return Err(archive_err(
                    &self.path,
                    format!("layer {id} is its own ancestor: the layer chain loops"),
                ));
            }
            let json = self.container.json(&format!("{id}/json"))?;
            let parent = json
                .get("parent")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if top_json.is_null() {
                top_json = json;
            }
            chain.push(id.clone());
            if parent.is_empty() {
                break;
            }
            id = parent;
        }
        chain.reverse();
        let mut layers = Vec::new();
        for id in &chain {
            let member = format!("{id}/layer.tar");
            let (_, size) = self.container.open_member(&member)?;
            if size == 0 {
                continue; // docker save writes empty files for layers without changes
            }
            layers.push(self.layer_for(&member, None, size)?);
        }
        let (registry, repository, _) = split_repo_tag(&repo)?;
        let top_digest = layers.last().map(|l| l.digest.clone());
        Ok(Resolved {
            image: self.image(
                registry,
                repository,
                Some(tag),
                top_json,
                top_digest,
                Some(format!(
                    "sha256:{}",
                    top.rsplit(':').next().unwrap_or_default()
                )),
            ),
            layers,
        })
    }

    fn blob_name(digest: &str) -> Result<String> {
        let (alg, hexpart) = digest
            .split_once(':')
            .ok_or_else(|| DockerError::Image(format!("bad digest {digest:?}")))?;
        Ok(format!("blobs/{alg}/{hexpart}"))
    }

    /// OCI image layout: `index.json` and `blobs/`.
    fn resolve_oci(&mut self) -> Result<Resolved> {
        let index = self.container.read_small("index.json")?;
        let what = self.path.display().to_string();
        let Parsed::Index(items) = manifest::parse(&what, &index, None)? else {
            return Err(archive_err(&self.path, "index.json is not an image index"));
        };
        let named: Vec<(String, manifest::Descriptor)> = items
            .iter()
            .map(|d| {
                (
                    d.ref_name.clone().unwrap_or_else(|| d.digest.clone()),
                    d.clone(),
                )
            })
            .collect();
        let chosen = if self.image.is_none()
            && items.iter().any(|d| d.platform.is_some())
            && named.len() > 1
        {
            manifest::select_platform(&what, &items, &self.platform)?.clone()
        } else {
            self.choose(&named, "image")?.clone()
        };
        let tag = chosen.ref_name.clone();
        let mut desc = chosen;
        let mut bytes;
        loop {
            bytes = self.container.read_small(&Self::blob_name(&desc.digest)?)?;
            manifest::verify(&what, &desc.digest, &bytes)?;
            match manifest::parse(&what, &bytes, Some(&desc.media_type))? {
                Parsed::Index(inner) => {
                    desc = manifest::select_platform(&what, &inner, &self.platform)?.clone()
                }
                Parsed::Image { .. } => break,
            }
        }
        let Parsed::Image { config, layers } = manifest::parse(&what, &bytes, None)? else {
            return Err(archive_err(&self.path, "not an image manifest"));
        };
        let config_bytes = self
            .container
            .read_small(&Self::blob_name(&config.digest)?)?;
        manifest::verify(&what, &config.digest, &config_bytes)?;
        let config: Value = serde_json::from_slice(&config_bytes)
            .map_err(|e| archive_err(&self.path, format!("image config is not JSON: {e}")))?;
        let layers = crate::pull::layers_with_diff_ids(&what, &layers, &config)?;
        for l in &layers {
            self.members
                .insert(l.digest.clone(), Self::blob_name(&l.digest)?);
        }
        let top = layers.last().map(|l| l.digest.clone());
        Ok(Resolved {
            image: self.image(
                String::new(),
                file_stem(&self.path),
                tag,
                config,
                top,
                Some(desc.digest),
            ),
            layers,
        })
    }
}

/// docker2aci's name for an OCI layout: the file name up to its first `.`.
fn file_stem(path: &Path) -> String {
    let base = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = base
        .split('.')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if stem.is_empty() {
        "image".into()
    } else {
        stem
    }
}

impl ImageSource for ArchiveSource {
    fn resolve(&mut self) -> Result<Resolved> {
        if self.container.has("manifest.json") {
            self.resolve_docker_save()
        } else if self.container.has("index.json") {
            self.resolve_oci()
        } else if self.container.has("repositories") {
            self.resolve_legacy()
        } else {
            Err(archive_err(
                &self.path,
                "is not a docker save archive or an OCI image layout (no manifest.json, index.json or repositories)",
            ))
        }
    }

    fn open_layer(&mut self, layer: &Layer) -> Result<Box<dyn Read + '_>> {
        let member = self.members.get(&layer.digest).ok_or_else(|| {
            archive_err(&self.path, format!("no file for layer {}", layer.digest))
        })?;
        Ok(self.container.open_member(member)?.0)
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_ids() {
        assert!(valid_layer_id("abc123"));
        assert!(valid_layer_id("sha256:abc123"));
        assert!(!valid_layer_id("../../../etc/abc"));
        assert!(!valid_layer_id(""));
        assert_eq!(member_name("./a//b/"), Some("a/b".into()));
        assert_eq!(member_name("a/../b"), None);
    }
}
