//! Squashing a layered image into one ACI: layers are applied base first with OCI semantics
//! (whiteouts and opaque directories hide lower layers' entries, never the same layer's),
//! hard links keep sharing content across layers, and the result is written as a
//! deterministic tar — `manifest`, `rootfs`, then the merged entries in path order — whose
//! SHA-512 is the image ID, so `rkt image export` rebuilds it byte for byte.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::ops::Bound;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use rusqlite::params;

use super::layer::LayerEntry;
use super::tarwrite::{self, Header};
use crate::entry::{check_sparse_map, EntryKind, FileId};
use crate::error::{Result, StoreError};
use crate::import::{ImportOutcome, KnownContent};
use crate::{lock, Store};

pub(super) const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// One path of the merged rootfs.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub kind: EntryKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: i64,
    pub link: Option<String>,
    pub dev_major: u32,
    pub dev_minor: u32,
    pub xattrs: Vec<(String, Vec<u8>)>,
    pub file_id: Option<FileId>,
    /// A sparse file's data segments (its content is their concatenation).
    pub sparse: Option<Vec<(u64, u64)>>,
    /// Regular files sharing an inode (hard links) share this number.
    pub inode: u64,
}

/// The merged rootfs: path (relative to `/`, `""` is `/`) to node, in path order, so a
/// directory always comes before what it holds.
#[derive(Default)]
pub(crate) struct Merged {
    pub nodes: BTreeMap<String, Node>,
    next_inode: u64,
}

fn invalid(msg: String) -> StoreError {
    StoreError::InvalidImage(msg)
}

fn split(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("", path),
    }
}

fn child_prefix(dir: &str) -> String {
    if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    }
}

impl Merged {
    fn remove_descendants(&mut self, dir: &str) {
        let prefix = child_prefix(dir);
        if prefix.is_empty() {
            self.nodes.retain(|k, _| k.is_empty());
            return;
        }
        let doomed: Vec<String> = self
            .nodes
            .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            self.nodes.remove(&k);
        }
    }

    fn remove_tree(&mut self, path: &str) {
        self.nodes.remove(path);
        self.remove_descendants(path);
    }

    fn new_inode(&mut self) -> u64 {
        self.next_inode += 1;
        self.next_inode
    }

    /// Make every ancestor of `path` a directory (a lower layer's symlink or file in the way is
    /// replaced, a missing one is created), as extracting the layer over the lower ones would.
    fn ensure_parents(&mut self, path: &str) {
        let mut end = 0;
        while let Some(i) = path[end..].find('/') {
            let dir = &path[..end + i];
            end += i + 1;
            match self.nodes.get(dir) {
                Some(n) if n.kind == EntryKind::Dir => {}
                Some(_) => {
                    self.nodes.remove(dir);
                    self.insert_dir(dir);
                }
                None => self.insert_dir(dir),
            }
        }
    }

    fn insert_dir(&mut self, dir: &str) {
        let inode = self.new_inode();
        self.nodes.insert(
            dir.to_string(),
            Node {
                kind: EntryKind::Dir,
                mode: 0o755,
                uid: 0,
                gid: 0,
                size: 0,
                mtime: 0,
                link: None,
                dev_major: 0,
                dev_minor: 0,
                xattrs: Vec::new(),
                file_id: None,
                sparse: None,
                inode,
            },
        );
    }

    /// Apply one layer on top of what is merged so far.
    pub(crate) fn apply(&mut self, digest: &str, entries: &[LayerEntry]) -> Result<()> {
        // Whiteouts hide lower layers only: apply them all before the layer's own entries.
        for e in entries {
            let (dir, base) = split(&e.path);
            if base == OPAQUE {
                self.remove_descendants(dir);
            } else if base.starts_with(".wh..wh.") {
                // aufs metadata (.wh..wh.plnk, .wh..wh.aufs): not content.
            } else if let Some(name) = base.strip_prefix(WHITEOUT) {
                if name.is_empty() || name == "." || name == ".." {
                    return Err(invalid(format!(
                        "layer {digest}: whiteout /{} names no file",
                        e.path
                    )));
                }
                let target = format!("{}{name}", child_prefix(dir));
                self.remove_tree(&target);
            }
        }
        for e in entries {
            let (_, base) = split(&e.path);
            if base.starts_with(WHITEOUT) {
                continue;
            }
            self.add(digest, e)?;
        }
        Ok(())
    }

    fn add(&mut self, digest: &str, e: &LayerEntry) -> Result<()> {
        let sparse = match (&e.sparse, e.kind) {
            (Some(segs), EntryKind::File) => {
                check_sparse_map(segs, e.size).map_err(|why| {
                    StoreError::Corrupt(format!(
                        "layer {digest}: stored sparse map of /{}: {why}; run `rkt image verify`",
                        e.path
                    ))
                })?;
                Some(segs.clone())
            }
            _ => None,
        };
        if !e.path.is_empty() {
            self.ensure_parents(&e.path);
        }
        let mut node = Node {
            kind: e.kind,
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
            size: e.size,
            mtime: e.mtime,
            link: e.link.clone(),
            dev_major: e.dev_major,
            dev_minor: e.dev_minor,
            xattrs: e.xattrs()?,
            file_id: e.file_id()?,
            sparse,
            inode: 0,
        };
        if e.kind == EntryKind::HardLink {
            let target = e.link.as_deref().unwrap_or_default();
            let t = match self.nodes.get(target) {
                Some(t) if t.kind == EntryKind::File => t.clone(),
                _ => {
                    return Err(invalid(format!(
                        "layer {digest}: hard link /{} points to /{target}, which is not a regular file of this or a lower layer",
                        e.path
                    )))
                }
            };
            node = Node { link: None, ..t };
        } else {
            node.inode = self.new_inode();
        }
        let replaces_dir = self
            .nodes
            .get(&e.path)
            .is_some_and(|old| old.kind == EntryKind::Dir);
        if replaces_dir && node.kind != EntryKind::Dir {
            self.remove_descendants(&e.path);
        }
        self.nodes.insert(e.path.clone(), node);
        Ok(())
    }
}

/// Write the squashed ACI: `manifest`, `rootfs`, then `rootfs/<path>` in path order; the first
/// path of a hard-linked group carries the content, later ones link to it.
/// The importer checks every file against its known content, so the reader checks chunks only.
fn write_aci(store: &Store, manifest: &[u8], merged: &Merged, out: &mut dyn Write) -> Result<()> {
    let root = merged.nodes.get("").cloned().unwrap_or_else(default_root);
    let rest = merged.nodes.iter().filter(|(p, _)| !p.is_empty());
    let reader = crate::content::Reader::checking_chunks_only(store);
    write_tree(&reader, manifest, &root, rest, out)
}

/// Write an ACI of `root` and `nodes` (paths other than `""`, in path order): `manifest`,
/// `rootfs`, then `rootfs/<path>`; the first path of a hard-linked group (nodes sharing an
/// inode) carries the content, later ones link to it.
pub(super) fn write_tree<'a>(
    reader: &crate::content::Reader<'_>,
    manifest: &[u8],
    root: &Node,
    nodes: impl Iterator<Item = (&'a String, &'a Node)>,
    out: &mut dyn Write,
) -> Result<()> {
    let io = |e| StoreError::io("writing an image", e);
    let mut buf = Vec::with_capacity(64 * 1024);
    tarwrite::manifest_entry(&mut buf, manifest);
    let mut first_of_inode: std::collections::HashMap<u64, String> = Default::default();
    let root = std::iter::once((String::new(), root));
    for (path, node) in root.chain(nodes.map(|(p, n)| (p.clone(), n))) {
        let archive_path = if path.is_empty() {
            "rootfs".to_string()
        } else {
            format!("rootfs/{path}")
        };
        let mut kind = node.kind;
        let mut link = node.link.clone();
        let mut size = 0;
        // Content bytes in the tar: the data segments of a sparse file.
        let mut content_len = 0;
        let mut sparse = None;
        if kind == EntryKind::File {
            match first_of_inode.get(&node.inode) {
                Some(first) => {
                    kind = EntryKind::HardLink;
                    link = Some(first.clone());
                }
                None => {
                    first_of_inode.insert(node.inode, archive_path.clone());
                    size = node.size;
                    content_len = size;
                    if let Some(segs) = &node.sparse {
                        content_len = check_sparse_map(segs, size).map_err(|why| {
                            StoreError::Corrupt(format!("sparse map of /{path}: {why}"))
                        })?;
                        sparse = Some(segs.as_slice());
                    }
                }
            }
        }
        tarwrite::header(
            &mut buf,
            &Header {
                path: &archive_path,
                kind,
                mode: node.mode,
                uid: node.uid,
                gid: node.gid,
                size,
                mtime: node.mtime,
                link: link.as_deref(),
                dev_major: node.dev_major,
                dev_minor: node.dev_minor,
                xattrs: &node.xattrs,
                sparse,
            },
        );
        if kind == EntryKind::File {
            out.write_all(&buf).map_err(io)?;
            buf.clear();
            let id = node.file_id.unwrap_or(*blake3::hash(b"").as_bytes());
            reader.write_file(&id, Some(content_len), out)?;
            tarwrite::pad(&mut buf, content_len);
        }
        if buf.len() >= 64 * 1024 {
            out.write_all(&buf).map_err(io)?;
            buf.clear();
        }
    }
    tarwrite::end(&mut buf);
    out.write_all(&buf).map_err(io)?;
    out.flush().map_err(io)
}

pub(super) fn default_root() -> Node {
    Node {
        kind: EntryKind::Dir,
        mode: 0o755,
        uid: 0,
        gid: 0,
        size: 0,
        mtime: 0,
        link: None,
        dev_major: 0,
        dev_minor: 0,
        xattrs: Vec::new(),
        file_id: None,
        sparse: None,
        inode: 0,
    }
}

/// Sends written bytes to the importing thread.
struct ChannelWriter {
    tx: SyncSender<Vec<u8>>,
    buf: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 256 * 1024 {
            self.flush()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::take(&mut self.buf);
        self.tx
            .send(chunk)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "import stopped"))
    }
}

struct ChannelReader {
    rx: Receiver<Vec<u8>>,
    cur: Vec<u8>,
    at: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.cur.len() {
            match self.rx.recv() {
                Ok(next) => {
                    self.cur = next;
                    self.at = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.cur.len() - self.at);
        out[..n].copy_from_slice(&self.cur[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl Store {
    /// The merged rootfs of `layers` (base first), with whiteouts applied.
    pub(crate) fn merge_layers(&self, layers: &[String]) -> Result<Merged> {
        let mut merged = Merged::default();
        for digest in layers {
            let entries = self.layer_entries(digest)?;
            merged.apply(digest, &entries)?;
        }
        Ok(merged)
    }

    /// The contents the squashed tar of `merged` holds, in order (as [`write_tree`] writes
    /// them), and which of them the store has: the import checks those instead of chunking them.
    fn known_content(&self, merged: &Merged) -> Result<KnownContent> {
        let mut known = KnownContent::default();
        let mut seen_inodes = std::collections::HashSet::new();
        let mut checked = std::collections::HashSet::new();
        let empty = *blake3::hash(b"").as_bytes();
        for node in merged.nodes.values() {
            if node.kind != EntryKind::File || !seen_inodes.insert(node.inode) {
                continue;
            }
            let id = node.file_id.unwrap_or(empty);
            known.order.push_back(id);
            if checked.insert(id) && self.has_file(&id)? {
                known.stored.insert(id);
            }
        }
        Ok(known)
    }

    fn has_file(&self, id: &FileId) -> Result<bool> {
        crate::db::exists(
            &self.conn,
            "SELECT 1 FROM files WHERE id = ?1",
            id.as_slice(),
        )
        .map_err(self.db.err())
    }

    /// Record a Docker/OCI image made of stored `layers` (blob digests, base first) with the
    /// appc `manifest`: the image is the squashed ACI of its layers, exportable byte for byte,
    /// and it remembers its layers so they stay in the store as long as it does.
    pub fn import_layered_image(
        &mut self,
        manifest: &[u8],
        layers: &[String],
        source: &str,
    ) -> Result<ImportOutcome> {
        let _gc_guard = lock::shared(&self.gc_lock_path())?;
        crate::schema::ImageManifest::parse(manifest)?;
        let merged = self.merge_layers(layers)?;
        let known = self.known_content(&merged)?;
        let (tx, rx) = sync_channel::<Vec<u8>>(16);
        let dir = self.dir.clone();
        let manifest_bytes = manifest.to_vec();
        let writer = std::thread::Builder::new()
            .name("rkt-squash".into())
            .spawn(move || -> Result<()> {
                let store = Store::open(&dir)?;
                let mut out = ChannelWriter {
                    tx,
                    buf: Vec::new(),
                };
                write_aci(&store, &manifest_bytes, &merged, &mut out)
            })
            .map_err(|e| StoreError::io("starting the squash thread", e))?;
        let reader = ChannelReader {
            rx,
            cur: Vec::new(),
            at: 0,
        };
        let db = self.db.clone();
        let link_layers = |tx: &rusqlite::Transaction<'_>, id: &str| -> Result<()> {
            let mut ins = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO image_layers(image_id, seq, digest) VALUES (?1, ?2, ?3)",
                )
                .map_err(db.err())?;
            for (seq, d) in layers.iter().enumerate() {
                ins.execute(params![id, seq as i64, d]).map_err(db.err())?;
            }
            Ok(())
        };
        let imported = self.import_with(reader, source, &link_layers, Some(known));
        let written = writer
            .join()
            .map_err(|_| StoreError::Corrupt("the squash thread panicked".into()))?;
        // The writer's own failure explains a truncated stream better than the importer.
        written?;
        imported
    }
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
            mtime: 0,
            mtime_nsec: 0,
            link: None,
            dev_major: 0,
            dev_minor: 0,
            xattrs: Vec::new(),
            file_id: None,
            sparse: None,
        }
    }

    fn paths(m: &Merged) -> Vec<&str> {
        m.nodes.keys().map(|k| k.as_str()).collect()
    }

    #[test]
    fn whiteouts_hide_lower_layers_only() {
        let mut m = Merged::default();
        m.apply(
            "l1",
            &[
                le("a", EntryKind::Dir),
                le("a/x", EntryKind::File),
                le("a/y", EntryKind::File),
                le("b", EntryKind::File),
            ],
        )
        .unwrap();
        m.apply(
            "l2",
            &[
                le("a/.wh.x", EntryKind::File),
                le("b", EntryKind::File),
                le(".wh.b", EntryKind::File),
            ],
        )
        .unwrap();
        assert_eq!(paths(&m), vec!["a", "a/y", "b"]);
    }

    #[test]
    fn opaque_dirs_hide_lower_contents_and_keep_their_own() {
        let mut m = Merged::default();
        m.apply(
            "l1",
            &[
                le("d", EntryKind::Dir),
                le("d/old", EntryKind::File),
                le("d/sub", EntryKind::Dir),
                le("d/sub/f", EntryKind::File),
                le("dx", EntryKind::File),
            ],
        )
        .unwrap();
        m.apply(
            "l2",
            &[
                le("d", EntryKind::Dir),
                le("d/.wh..wh..opq", EntryKind::File),
                le("d/new", EntryKind::File),
            ],
        )
        .unwrap();
        assert_eq!(paths(&m), vec!["d", "d/new", "dx"]);
    }

    #[test]
    fn hard_links_across_layers_share_an_inode() {
        let mut m = Merged::default();
        let mut f = le("bin/a", EntryKind::File);
        f.file_id = Some(hex::encode([1u8; 32]));
        f.size = 5;
        m.apply("l1", &[le("bin", EntryKind::Dir), f]).unwrap();
        let mut l = le("usr/b", EntryKind::HardLink);
        l.link = Some("bin/a".into());
        m.apply("l2", &[l]).unwrap();
        assert_eq!(m.nodes["usr/b"].inode, m.nodes["bin/a"].inode);
        assert_eq!(m.nodes["usr/b"].size, 5);
        assert_eq!(m.nodes["usr"].kind, EntryKind::Dir);
        let mut bad = le("c", EntryKind::HardLink);
        bad.link = Some("missing".into());
        assert!(m.apply("l3", &[bad]).is_err());
    }

    #[test]
    fn a_file_replacing_a_directory_drops_its_contents() {
        let mut m = Merged::default();
        m.apply("l1", &[le("d", EntryKind::Dir), le("d/f", EntryKind::File)])
            .unwrap();
        m.apply("l2", &[le("d", EntryKind::Symlink)]).unwrap();
        assert_eq!(paths(&m), vec!["d"]);
        m.apply("l3", &[le("d/g", EntryKind::File)]).unwrap();
        assert_eq!(m.nodes["d"].kind, EntryKind::Dir);
    }

    /// A tar of regular files `(path, content)`, written with the squash's tar writer.
    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (path, data) in files {
            tarwrite::header(&mut out, &Header::file(path, data.len() as u64));
            out.extend_from_slice(data);
            tarwrite::pad(&mut out, data.len() as u64);
        }
        tarwrite::end(&mut out);
        out
    }

    /// A layer tar holding `big`, a sparse file of `size` bytes whose data segments are `segs`
    /// (content: letters), written in PAX sparse format 1.0 by the squash's tar writer.
    fn sparse_layer(size: u64, segs: &[(u64, u64)]) -> (Vec<u8>, Vec<u8>) {
        let data: Vec<u8> = segs
            .iter()
            .flat_map(|&(off, len)| (0..len).map(move |i| b'a' + ((off + i) % 26) as u8))
            .collect();
        let mut out = Vec::new();
        tarwrite::header(
            &mut out,
            &Header {
                mode: 0o600,
                mtime: 1,
                sparse: Some(segs),
                ..Header::file("big", size)
            },
        );
        out.extend_from_slice(&data);
        tarwrite::pad(&mut out, data.len() as u64);
        tarwrite::end(&mut out);
        (out, data)
    }

    #[test]
    fn sparse_files_in_layers_stay_sparse_in_the_squashed_image() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        // 64 GiB with two short data segments and a trailing hole.
        let size = 64u64 << 30;
        let segs = [(0, 5), (3 << 30, 100_000), (size, 0)];
        let (layer, data) = sparse_layer(size, &segs);
        let digest = sha256(&layer);
        store.import_layer(layer.as_slice(), &digest, None).unwrap();
        // A second layer hard-links to it.
        let mut l2 = Vec::new();
        tarwrite::header(
            &mut l2,
            &Header {
                kind: EntryKind::HardLink,
                mode: 0o600,
                mtime: 1,
                link: Some("big"),
                ..Header::file("link", 0)
            },
        );
        tarwrite::end(&mut l2);
        let digest2 = sha256(&l2);
        store.import_layer(l2.as_slice(), &digest2, None).unwrap();

        let manifest = br#"{"acKind":"ImageManifest","acVersion":"0.8.11","name":"t"}"#;
        let out = store
            .import_layered_image(manifest, &[digest, digest2], "test")
            .unwrap();
        let mut tar = Vec::new();
        store.export(&out.id, &mut tar).unwrap();
        use sha2::Digest;
        assert_eq!(
            out.id,
            format!("sha512-{}", hex::encode(sha2::Sha512::digest(&tar)))
        );
        assert!(tar.len() < 200_000, "holes are not written: {}", tar.len());
        let entries = store.entries(&out.id).unwrap();
        let big = entries.iter().find(|e| e.path == "big").unwrap();
        assert_eq!(big.size, size);
        assert_eq!(big.sparse.as_deref(), Some(&segs[..]));
        assert_eq!(big.file_id, Some(*blake3::hash(&data).as_bytes()));
        let link = entries.iter().find(|e| e.path == "link").unwrap();
        assert_eq!(link.kind, EntryKind::HardLink);

        // Rendered: the right size, data at its offsets, holes of zeros, one inode.
        let r = dir.path().join("render");
        store.render_image(&out.id, &r, true).unwrap();
        use std::os::unix::fs::{FileExt, MetadataExt};
        let f = std::fs::File::open(r.join("big")).unwrap();
        let md = f.metadata().unwrap();
        assert_eq!(md.len(), size);
        assert!(md.blocks() * 512 < 1 << 20, "{} blocks", md.blocks());
        let mut buf = vec![0u8; 8];
        f.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"abcde\0\0\0");
        f.read_exact_at(&mut buf, (3 << 30) - 4).unwrap();
        assert_eq!(&buf[..4], b"\0\0\0\0");
        assert_eq!(&buf[4..], &data[5..9]);
        f.read_exact_at(&mut buf, size - 8).unwrap();
        assert_eq!(buf, [0u8; 8]);
        assert_eq!(std::fs::metadata(r.join("link")).unwrap().ino(), md.ino());
    }

    #[test]
    fn a_corrupt_stored_sparse_map_is_refused() {
        let mut m = Merged::default();
        let mut e = le("f", EntryKind::File);
        e.size = 10;
        e.file_id = Some(hex::encode([1u8; 32]));
        for bad in [vec![(8, 4)], vec![(4, 2), (0, 2)], vec![(0, 4), (2, 4)]] {
            e.sparse = Some(bad.clone());
            let err = m.apply("l1", std::slice::from_ref(&e)).unwrap_err();
            assert!(err.to_string().contains("sparse map"), "{bad:?}: {err}");
        }
        assert!(m.nodes.is_empty());
    }

    fn sha256(data: &[u8]) -> String {
        use sha2::Digest;
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
    }

    #[test]
    fn squashed_import_checks_known_contents_instead_of_chunking_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let big: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let layer = tar_of(&[("a", b"hello\n"), ("big", &big)]);
        let digest = sha256(&layer);
        store.import_layer(layer.as_slice(), &digest, None).unwrap();
        let manifest = br#"{"acKind":"ImageManifest","acVersion":"0.8.11","name":"t"}"#;
        let out = store
            .import_layered_image(manifest, std::slice::from_ref(&digest), "test")
            .unwrap();
        // Only the manifest is new (the 1.2 MB of content is not packed again), and the
        // image exports to its ID.
        assert!(out.stored_bytes < 200, "{}", out.stored_bytes);
        let mut tar = Vec::new();
        store.export(&out.id, &mut tar).unwrap();
        use sha2::Digest;
        assert_eq!(
            out.id,
            format!("sha512-{}", hex::encode(sha2::Sha512::digest(&tar)))
        );

        // A stream whose content does not match the id it is announced with is refused.
        let hello = *blake3::hash(b"hello\n").as_bytes();
        let known = KnownContent {
            order: [hello].into_iter().collect(),
            stored: [hello].into_iter().collect(),
        };
        let mut aci = Vec::new();
        tarwrite::manifest_entry(&mut aci, manifest);
        let body = tar_of(&[("rootfs/a", b"other\n")]);
        aci.extend_from_slice(&body);
        let err = store
            .import_with(aci.as_slice(), "test", &|_, _| Ok(()), Some(known))
            .unwrap_err();
        assert!(
            err.to_string().contains("read back from the store"),
            "{err}"
        );
    }
}
