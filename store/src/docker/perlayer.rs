//! One ACI per Docker layer (`docker2aci --nosquash`), whose rendering through appc
//! dependencies is exactly the squashed image.
//!
//! Layer `k`'s ACI holds the paths layer `k` wrote, as they are once layer `k` is applied
//! (whiteout files themselves are dropped; hard links keep their whole group, so a link into a
//! lower layer carries its target along). The top layer's ACI is the runnable image: it lists
//! every lower layer ACI as a dependency (base first, so appc renders them upper-first) and its
//! `pathWhitelist` is the squashed rootfs's path list, which is how deleted paths (whiteouts,
//! opaque directories, directories replaced by files) stay deleted: appc keeps only whitelisted
//! paths of the dependencies. Finally the layered view is computed with the renderer's own merge
//! and compared with the squash, path by path (kind, metadata, content, hard-link groups);
//! any difference (e.g. a directory re-created implicitly after a whiteout) is fixed by
//! putting the squashed node into the top ACI, and a difference that remains is an error.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;

use sha2::{Digest, Sha512};

use super::layer::LayerEntry;
use super::squash::{default_root, write_tree, Merged, Node, WHITEOUT};
use crate::entry::{Entry, EntryKind, FileId};
use crate::error::{Result, StoreError};
use crate::render::{self, Layer};
use crate::schema::{AcIdentifier, Annotations, Dependency, ImageId, ImageManifest, Labels};
use crate::Store;

/// Fixing rounds before a remaining difference is reported.
const FIX_ROUNDS: usize = 3;

/// One ACI of a per-layer conversion.
#[derive(Debug, Clone)]
pub struct LayerAci {
    /// The Docker layer's blob digest.
    pub digest: String,
    /// The ACI's manifest. The top ACI's dependencies get their image IDs from
    /// [`LayerAci::pin_dependency`] as the lower ACIs are written.
    pub manifest: ImageManifest,
    nodes: BTreeMap<String, Node>,
}

impl LayerAci {
    /// Record the image ID the dependency `name` was written with.
    pub fn pin_dependency(&mut self, name: &AcIdentifier, id: &str) -> Result<()> {
        let dep = self
            .manifest
            .dependencies
            .iter_mut()
            .find(|d| &d.image_name == name)
            .ok_or_else(|| {
                StoreError::InvalidImage(format!(
                    "{} has no dependency named {name}",
                    self.manifest.name
                ))
            })?;
        dep.image_id = Some(ImageId::parse(id)?);
        Ok(())
    }

    /// Paths in the ACI's rootfs, `""` (the rootfs directory) excluded.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.nodes
            .keys()
            .filter(|p| !p.is_empty())
            .map(String::as_str)
    }

    fn root(&self) -> Node {
        self.nodes.get("").cloned().unwrap_or_else(default_root)
    }
}

/// `sha512-…` of everything written through it.
struct Hashing<'a> {
    out: &'a mut dyn Write,
    hash: Sha512,
}

impl Write for Hashing<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(data)?;
        self.hash.update(&data[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl Store {
    /// Plan one ACI per layer of an image made of stored `layers` (blob digests, base first)
    /// with the appc `manifest` of the squashed image. Returns the ACIs base first; the last
    /// one is the runnable image.
    pub fn plan_layer_acis(&self, manifest: &[u8], layers: &[String]) -> Result<Vec<LayerAci>> {
        let top_manifest = ImageManifest::parse(manifest)?;
        let layers = layers
            .iter()
            .map(|d| Ok((d.clone(), self.layer_entries(d)?)))
            .collect::<Result<Vec<_>>>()?;
        plan(&top_manifest, &layers)
    }

    /// Write `aci` as an uncompressed ACI to `out`; returns its image ID.
    pub fn write_layer_aci(&self, aci: &LayerAci, out: &mut dyn Write) -> Result<String> {
        aci.manifest.validate()?;
        let manifest = aci.manifest.to_json();
        let mut hashing = Hashing {
            out,
            hash: Sha512::new(),
        };
        let root = aci.root();
        let rest = aci.nodes.iter().filter(|(p, _)| !p.is_empty());
        let reader = crate::content::Reader::new(self);
        write_tree(&reader, manifest.as_bytes(), &root, rest, &mut hashing)?;
        let digest: [u8; 64] = hashing.hash.finalize().into();
        Ok(ImageId::from_sha512(&digest).to_string())
    }
}

/// [`Store::plan_layer_acis`] on the layers' entries (base first).
fn plan(
    top_manifest: &ImageManifest,
    layers: &[(String, Vec<LayerEntry>)],
) -> Result<Vec<LayerAci>> {
    if layers.is_empty() {
        return Err(StoreError::InvalidImage("the image has no layer".into()));
    }
    let mut merged = Merged::default();
    let mut acis = Vec::with_capacity(layers.len());
    for (k, (digest, entries)) in layers.iter().enumerate() {
        merged.apply(digest, entries)?;
        let paths = entries.iter().map(|e| e.path.as_str()).filter(|p| {
            let base = p.rsplit('/').next().unwrap_or(p);
            !base.starts_with(WHITEOUT)
        });
        let nodes = snapshot(&merged, paths);
        let manifest = if k + 1 == layers.len() {
            top_manifest.clone()
        } else {
            lower_manifest(top_manifest, digest)?
        };
        acis.push(LayerAci {
            digest: digest.clone(),
            manifest,
            nodes,
        });
    }
    let lower: Vec<(AcIdentifier, Labels)> = acis[..acis.len() - 1]
        .iter()
        .map(|a| (a.manifest.name.clone(), a.manifest.labels.clone()))
        .collect();
    let top = acis
        .last_mut()
        .ok_or_else(|| StoreError::InvalidImage("the image has no layer".into()))?;
    top.nodes.insert(
        String::new(),
        merged.nodes.get("").cloned().unwrap_or_else(default_root),
    );
    top.manifest.path_whitelist = merged
        .nodes
        .keys()
        .filter(|p| !p.is_empty())
        .map(|p| format!("/{p}"))
        .collect();
    top.manifest.dependencies = lower
        .into_iter()
        .map(|(image_name, labels)| Dependency {
            image_name,
            image_id: None,
            labels,
            size: 0,
        })
        .collect();
    make_exact(&merged, &mut acis)?;
    Ok(acis)
}

/// The merged nodes of `paths` (as they are now), plus every other path of their hard-link
/// groups.
fn snapshot<'a>(merged: &Merged, paths: impl Iterator<Item = &'a str>) -> BTreeMap<String, Node> {
    let mut nodes = BTreeMap::new();
    let mut linked = HashSet::new();
    for p in paths {
        if let Some(n) = merged.nodes.get(p) {
            if n.kind == EntryKind::File {
                linked.insert(n.inode);
            }
            nodes.insert(p.to_string(), n.clone());
        }
    }
    let shared = inode_counts(merged);
    linked.retain(|i| shared.get(i).copied().unwrap_or(0) > 1);
    if !linked.is_empty() {
        for (p, n) in &merged.nodes {
            if n.kind == EntryKind::File && linked.contains(&n.inode) {
                nodes.insert(p.clone(), n.clone());
            }
        }
    }
    nodes
}

fn inode_counts(merged: &Merged) -> HashMap<u64, usize> {
    let mut counts = HashMap::new();
    for n in merged.nodes.values() {
        if n.kind == EntryKind::File {
            *counts.entry(n.inode).or_insert(0) += 1;
        }
    }
    counts
}

/// A lower layer's manifest: docker2aci's lower-layer name (`NAME-sha256-HEX`), the image's
/// os and arch labels, no app.
fn lower_manifest(top: &ImageManifest, digest: &str) -> Result<ImageManifest> {
    let name = AcIdentifier::sanitize(&format!("{}-{}", top.name, digest.replace(':', "-")))?;
    let labels: Vec<(&str, &str)> = ["os", "arch"]
        .into_iter()
        .filter_map(|l| top.labels.get(l).map(|v| (l, v)))
        .collect();
    Ok(ImageManifest {
        ac_version: top.ac_version.clone(),
        name,
        labels: Labels::from_pairs(labels)?,
        app: None,
        annotations: Annotations::default(),
        dependencies: Vec::new(),
        path_whitelist: Vec::new(),
    })
}

/// Compare the layered rendering with the squash and move differing paths into the top ACI
/// until they agree.
fn make_exact(squash: &Merged, acis: &mut [LayerAci]) -> Result<()> {
    for _ in 0..FIX_ROUNDS {
        let wrong = differences(squash, acis)?;
        if wrong.is_empty() {
            return Ok(());
        }
        tracing::debug!(
            paths = wrong.len(),
            "per-layer ACIs: fixing paths in the top ACI"
        );
        let groups: HashSet<u64> = wrong
            .iter()
            .filter_map(|p| squash.nodes.get(p))
            .filter(|n| n.kind == EntryKind::File)
            .map(|n| n.inode)
            .collect();
        let top = acis
            .last_mut()
            .ok_or_else(|| StoreError::InvalidImage("no layer".into()))?;
        for (p, n) in &squash.nodes {
            let in_group = n.kind == EntryKind::File && groups.contains(&n.inode);
            if in_group || wrong.contains(p) {
                top.nodes.insert(p.clone(), n.clone());
            }
        }
    }
    let wrong = differences(squash, acis)?;
    match wrong.iter().next() {
        None => Ok(()),
        Some(p) => Err(StoreError::InvalidImage(format!(
            "cannot express the image as per-layer ACIs: /{p} (and {} more paths) would render differently from the squashed image; convert it squashed",
            wrong.len() - 1
        ))),
    }
}

/// What a path looks like in a rendered rootfs (hard links resolved to their target).
#[derive(Debug, PartialEq, Eq)]
struct Look {
    kind: EntryKind,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: i64,
    link: Option<String>,
    dev: (u32, u32),
    xattrs: Vec<(String, Vec<u8>)>,
    file_id: Option<FileId>,
    sparse: Option<Vec<(u64, u64)>>,
}

fn empty_id() -> FileId {
    *blake3::hash(b"").as_bytes()
}

fn look_of_node(n: &Node) -> Look {
    let file = n.kind == EntryKind::File;
    Look {
        kind: n.kind,
        mode: n.mode,
        uid: n.uid,
        gid: n.gid,
        size: if file { n.size } else { 0 },
        mtime: n.mtime,
        link: if file { None } else { n.link.clone() },
        dev: (n.dev_major, n.dev_minor),
        xattrs: n.xattrs.clone(),
        file_id: file.then(|| n.file_id.unwrap_or_else(empty_id)),
        sparse: if file { n.sparse.clone() } else { None },
    }
}

fn look_of_entry(e: &Entry) -> Look {
    let file = e.kind == EntryKind::File;
    Look {
        kind: e.kind,
        mode: e.mode,
        uid: e.uid,
        gid: e.gid,
        size: if file { e.size } else { 0 },
        mtime: e.mtime,
        link: if file { None } else { e.link.clone() },
        dev: (e.dev_major, e.dev_minor),
        xattrs: e.xattrs.clone(),
        file_id: file.then(|| e.file_id.unwrap_or_else(empty_id)),
        sparse: if file { e.sparse.clone() } else { None },
    }
}

/// The entries an ACI's import yields, in archive order (as [`write_tree`] writes them).
fn entries_as_written(aci: &LayerAci) -> Vec<Entry> {
    let mut first: HashMap<u64, String> = HashMap::new();
    let root = aci.root();
    let empty = String::new();
    let rest = aci.nodes.iter().filter(|(p, _)| !p.is_empty());
    std::iter::once((&empty, &root))
        .chain(rest)
        .map(|(p, n)| {
            let mut e = Entry {
                path: p.clone(),
                kind: n.kind,
                mode: n.mode,
                uid: n.uid,
                gid: n.gid,
                size: n.size,
                mtime: n.mtime,
                mtime_nsec: 0,
                link: n.link.clone(),
                dev_major: n.dev_major,
                dev_minor: n.dev_minor,
                xattrs: n.xattrs.clone(),
                file_id: (n.kind == EntryKind::File).then(|| n.file_id.unwrap_or_else(empty_id)),
                sparse: n.sparse.clone(),
            };
            if n.kind == EntryKind::File {
                match first.get(&n.inode) {
                    Some(target) => {
                        e.kind = EntryKind::HardLink;
                        e.link = Some(target.clone());
                    }
                    None => {
                        first.insert(n.inode, p.clone());
                    }
                }
            }
            e
        })
        .collect()
}

/// Paths whose layered rendering differs from the squash (hard-link groups included).
fn differences(squash: &Merged, acis: &[LayerAci]) -> Result<HashSet<String>> {
    let entries: Vec<Vec<Entry>> = acis.iter().rev().map(entries_as_written).collect();
    let layers: Vec<Layer<'_>> = acis
        .iter()
        .rev()
        .zip(&entries)
        .map(|(a, e)| Layer {
            image_id: a.digest.clone(),
            entries: e,
            path_whitelist: a.manifest.path_whitelist.clone(),
        })
        .collect();
    let levels: Vec<u16> = (0..layers.len()).map(|i| u16::from(i > 0)).collect();
    let view = render::merge_with_levels(&layers, Some(&levels), true)?;
    let by_path: HashMap<&str, (usize, &Entry)> = view
        .iter()
        .map(|(l, e)| (e.path.as_str(), (*l, e)))
        .collect();
    let mut wrong = HashSet::new();
    let mut squash_to_view: HashMap<u64, (usize, &str)> = HashMap::new();
    let mut view_to_squash: HashMap<(usize, &str), u64> = HashMap::new();
    for (p, n) in &squash.nodes {
        let Some(&(layer, e)) = by_path.get(p.as_str()) else {
            wrong.insert(p.clone());
            continue;
        };
        let (group, target) = match (e.kind, e.link.as_deref()) {
            (EntryKind::HardLink, Some(t)) => match by_path.get(t) {
                Some(&(_, te)) => ((layer, t), te),
                None => {
                    wrong.insert(p.clone());
                    continue;
                }
            },
            _ => ((layer, p.as_str()), e),
        };
        if look_of_node(n) != look_of_entry(target) {
            wrong.insert(p.clone());
            continue;
        }
        if n.kind == EntryKind::File {
            let a = *squash_to_view.entry(n.inode).or_insert(group);
            let b = *view_to_squash.entry(group).or_insert(n.inode);
            if a != group || b != n.inode {
                wrong.insert(p.clone());
            }
        }
    }
    for (_, e) in &view {
        if !squash.nodes.contains_key(&e.path) && !e.path.is_empty() {
            return Err(StoreError::InvalidImage(format!(
                "per-layer ACIs would render /{} which the squashed image does not have",
                e.path
            )));
        }
    }
    Ok(wrong)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn le(path: &str, kind: EntryKind) -> LayerEntry {
        LayerEntry {
            path: path.into(),
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: 7,
            mtime_nsec: 0,
            link: None,
            dev_major: 0,
            dev_minor: 0,
            xattrs: Vec::new(),
            file_id: None,
            sparse: None,
        }
    }

    fn file(path: &str, byte: u8) -> LayerEntry {
        let mut e = le(path, EntryKind::File);
        e.file_id = Some(hex::encode([byte; 32]));
        e.size = 1;
        e
    }

    fn link(path: &str, target: &str) -> LayerEntry {
        let mut e = le(path, EntryKind::HardLink);
        e.link = Some(target.into());
        e
    }

    fn dir(path: &str, mode: u32) -> LayerEntry {
        let mut e = le(path, EntryKind::Dir);
        e.mode = mode;
        e
    }

    fn manifest() -> ImageManifest {
        ImageManifest::parse(br#"{"acKind":"ImageManifest","acVersion":"0.8.11","name":"t/app"}"#)
            .unwrap()
    }

    fn squash(layers: &[(String, Vec<LayerEntry>)]) -> Merged {
        let mut m = Merged::default();
        for (d, e) in layers {
            m.apply(d, e).unwrap();
        }
        m
    }

    fn layers(l: Vec<Vec<LayerEntry>>) -> Vec<(String, Vec<LayerEntry>)> {
        l.into_iter()
            .enumerate()
            .map(|(i, e)| (format!("sha256:{i:064x}"), e))
            .collect()
    }

    #[test]
    fn whiteouts_and_opaque_dirs_become_a_whitelist() {
        let l = layers(vec![
            vec![
                dir("a", 0o755),
                file("a/x", 1),
                dir("o", 0o755),
                file("o/old", 2),
            ],
            vec![
                le("a/.wh.x", EntryKind::File),
                le("o/.wh..wh..opq", EntryKind::File),
                file("o/new", 3),
            ],
        ]);
        let acis = plan(&manifest(), &l).unwrap();
        assert_eq!(acis.len(), 2);
        let top = &acis[1];
        assert_eq!(top.manifest.path_whitelist, vec!["/a", "/o", "/o/new"]);
        assert_eq!(top.manifest.dependencies.len(), 1);
        assert_eq!(
            acis[0].manifest.name.as_str(),
            format!("t/app-sha256-{:064x}", 0)
        );
        assert!(acis[0].manifest.app.is_none());
        // No whiteout file is written, the lower layer keeps its own files.
        assert!(top.paths().all(|p| !p.contains(".wh.")));
        assert_eq!(
            acis[0].paths().collect::<Vec<_>>(),
            vec!["a", "a/x", "o", "o/old"]
        );
        assert!(differences(&squash(&l), &acis).unwrap().is_empty());
    }

    #[test]
    fn an_implicitly_recreated_directory_is_fixed_in_the_top_aci() {
        let l = layers(vec![
            vec![dir("d", 0o700), file("d/a", 1)],
            vec![le(".wh.d", EntryKind::File), file("d/b", 2)],
        ]);
        let merged = squash(&l);
        let mut acis = plan(&manifest(), &l).unwrap();
        assert!(differences(&merged, &acis).unwrap().is_empty());
        // The squash re-creates d as 0755; the base layer's 0700 d would win without the fix.
        assert_eq!(acis[1].nodes["d"].mode, 0o755);
        acis[1].nodes.remove("d");
        let wrong = differences(&merged, &acis).unwrap();
        assert!(wrong.contains("d"), "{wrong:?}");
    }

    #[test]
    fn hard_link_groups_across_layers_stay_together() {
        let l = layers(vec![
            vec![file("f", 1)],
            vec![link("h1", "f")],
            vec![link("h2", "f"), file("g", 2)],
        ]);
        let merged = squash(&l);
        let acis = plan(&manifest(), &l).unwrap();
        assert!(differences(&merged, &acis).unwrap().is_empty());
        assert_eq!(acis[1].paths().collect::<Vec<_>>(), vec!["f", "h1"]);
        assert_eq!(
            acis[2].paths().collect::<Vec<_>>(),
            vec!["f", "g", "h1", "h2"]
        );
        let written = entries_as_written(&acis[2]);
        let h2 = written.iter().find(|e| e.path == "h2").unwrap();
        assert_eq!(
            (h2.kind, h2.link.as_deref()),
            (EntryKind::HardLink, Some("f"))
        );
    }

    #[test]
    fn sparse_files_keep_their_map_and_a_different_map_is_a_difference() {
        let mut f = file("f", 1);
        f.size = 1 << 30;
        f.sparse = Some(vec![(0, 1), (1 << 30, 0)]);
        let l = layers(vec![vec![f], vec![link("h", "f"), file("g", 2)]]);
        let merged = squash(&l);
        let mut acis = plan(&manifest(), &l).unwrap();
        assert!(differences(&merged, &acis).unwrap().is_empty());
        let written = entries_as_written(&acis[1]);
        let f = written.iter().find(|e| e.path == "f").unwrap();
        assert_eq!(f.sparse, Some(vec![(0, 1), (1 << 30, 0)]));
        // The same content spread differently renders differently: caught.
        acis[1].nodes.get_mut("f").unwrap().sparse = Some(vec![(5, 1), (1 << 30, 0)]);
        acis[0].nodes.get_mut("f").unwrap().sparse = Some(vec![(5, 1), (1 << 30, 0)]);
        let wrong = differences(&merged, &acis).unwrap();
        assert!(wrong.contains("f") && wrong.contains("h"), "{wrong:?}");
    }

    #[test]
    fn pinning_sets_the_dependency_image_id() {
        let l = layers(vec![vec![file("f", 1)], vec![file("g", 2)]]);
        let mut acis = plan(&manifest(), &l).unwrap();
        let name = acis[0].manifest.name.clone();
        let id = format!("sha512-{}", "ab".repeat(64));
        acis[1].pin_dependency(&name, &id).unwrap();
        assert_eq!(
            acis[1].manifest.dependencies[0]
                .image_id
                .as_ref()
                .unwrap()
                .as_str(),
            id
        );
        acis[1].manifest.validate().unwrap();
        let other = AcIdentifier::parse("nope").unwrap();
        assert!(acis[1].pin_dependency(&other, &id).is_err());
    }
}
