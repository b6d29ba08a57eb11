//! Importing an ACI in one streaming pass: decompress, hash the tar (image ID), parse it,
//! cut file contents into chunks, store new chunks in a fresh pack, and commit everything in
//! one transaction once the pack is durable.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::PathBuf;

use rusqlite::{params, Transaction};

use crate::aci::{self, Place};
use crate::chunkwriter::{ChunkWriter, NewChunk};
use crate::entry::{Entry, EntryKind, FileId};
use crate::error::{IoContext, Result, StoreError};
use crate::pack::{self, PackWriter};
use crate::recipe::RecipeBuilder;
use crate::schema::ImageManifest;
use crate::tarstream::{self, TarEntry, TarError, TarKind, TarSink};
use crate::{db, lock, Store};

/// Largest manifest accepted (the spec sets none; this bounds memory on hostile input).
const MAX_MANIFEST: u64 = 16 << 20;

/// What an import did.
#[derive(Debug, Clone)]
pub struct ImportOutcome {
    /// `sha512-` + 128 hex digits.
    pub id: String,
    pub name: String,
    /// False when the image was already in the store.
    pub new: bool,
    /// Uncompressed tar bytes.
    pub tar_bytes: u64,
    /// Bytes added to packs.
    pub stored_bytes: u64,
}

/// A distinct file content seen in this import.
pub(crate) struct FileRec {
    pub(crate) size: u64,
    pub(crate) chunks: Vec<[u8; 32]>,
    pub(crate) refs: u64,
}

/// Which paths an archive holds: an ACI (`manifest` and `rootfs/…`) or a Docker/OCI layer
/// (paths relative to `/`, whiteouts kept as ordinary entries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    Aci,
    Layer,
}

/// State of the regular file whose content is streaming.
struct Current {
    slot: usize,
    hasher: blake3::Hasher,
    len: u64,
    manifest: Option<Vec<u8>>,
    /// Content the store already has: not chunked again, only checked against this id.
    known: Option<FileId>,
}

/// Contents an archive is known to hold, for archives the store writes from its own content
/// (a squashed Docker image): the rootfs's regular-file contents in archive order, and which
/// of them the store has. Those are hashed and checked but not cut into chunks again.
#[derive(Debug, Default)]
pub(crate) struct KnownContent {
    pub(crate) order: std::collections::VecDeque<FileId>,
    pub(crate) stored: HashSet<FileId>,
}

struct ImportSink {
    layout: Layout,
    chunks: ChunkWriter,
    /// File ids in the order their contents ended (the chunk writer's order).
    file_order: Vec<FileId>,
    files: HashMap<FileId, FileRec>,
    recipe: RecipeBuilder,
    entries: Vec<Entry>,
    /// Every path of the archive so far (`\0manifest` for the manifest), with its entry's index
    /// in `entries` once that is pushed: a hard link finds its target here, not by a scan.
    seen: HashMap<String, Option<usize>>,
    current: Option<Current>,
    pending_entry: Option<Entry>,
    manifest: Option<Vec<u8>>,
    /// The store error behind a `TarError::Sink`, kept whole so that e.g. a full disk is
    /// reported as such.
    failure: Option<StoreError>,
    known: Option<KnownContent>,
}

impl ImportSink {
    fn begin(&mut self, e: &TarEntry) -> Result<()> {
        let place = match self.layout {
            Layout::Aci => aci::place(&e.path)?,
            Layout::Layer => Place::Rootfs(crate::docker::layer::layer_path(&e.path)?),
        };
        let key = match &place {
            Place::Manifest => "\0manifest".to_string(),
            Place::Rootfs(p) => p.clone(),
        };
        if self.seen.insert(key, None).is_some() {
            return Err(StoreError::InvalidImage(format!(
                "entry {:?} appears twice in the archive",
                String::from_utf8_lossy(&e.path)
            )));
        }
        if e.kind == TarKind::Regular {
            let manifest = match place {
                Place::Manifest if e.size > MAX_MANIFEST => {
                    return Err(StoreError::InvalidImage(format!(
                        "manifest is {} bytes, more than the {MAX_MANIFEST} accepted",
                        e.size
                    )))
                }
                Place::Manifest => Some(Vec::with_capacity(e.size as usize)),
                Place::Rootfs(_) => None,
            };
            let known = match (&place, self.known.as_mut()) {
                (Place::Rootfs(_), Some(k)) => {
                    k.order.pop_front().filter(|id| k.stored.contains(id))
                }
                _ => None,
            };
            self.current = Some(Current {
                slot: self.recipe.begin_content(),
                hasher: blake3::Hasher::new(),
                len: 0,
                manifest,
                known,
            });
        } else if place == Place::Manifest {
            return Err(StoreError::InvalidImage(
                "`manifest` is not a regular file".into(),
            ));
        }
        if let Place::Rootfs(path) = place {
            self.pending_entry = Some(self.entry_from_tar(path, e)?);
        }
        Ok(())
    }

    fn entry_from_tar(&self, path: String, e: &TarEntry) -> Result<Entry> {
        let kind = match e.kind {
            TarKind::Regular => EntryKind::File,
            TarKind::Directory => EntryKind::Dir,
            TarKind::Symlink => EntryKind::Symlink,
            TarKind::HardLink => EntryKind::HardLink,
            TarKind::CharDevice => EntryKind::CharDevice,
            TarKind::BlockDevice => EntryKind::BlockDevice,
            TarKind::Fifo => EntryKind::Fifo,
            TarKind::Other(flag) => {
                return Err(StoreError::InvalidImage(format!(
                    "entry rootfs/{path} has tar type {:?}, which an image cannot hold",
                    char::from(flag)
                )))
            }
        };
        let id32 = |v: u64, what: &str| {
            u32::try_from(v).map_err(|_| {
                StoreError::InvalidImage(format!(
                    "entry rootfs/{path}: {what} {v} does not fit 32 bits"
                ))
            })
        };
        let mut entry = Entry {
            kind,
            mode: e.mode & 0o7777,
            uid: id32(e.uid, "uid")?,
            gid: id32(e.gid, "gid")?,
            size: if kind == EntryKind::File { e.size } else { 0 },
            mtime: e.mtime,
            mtime_nsec: e.mtime_nsec,
            link: None,
            dev_major: e.dev_major,
            dev_minor: e.dev_minor,
            xattrs: Vec::new(),
            file_id: None,
            sparse: e.sparse.clone(),
            path,
        };
        for (name, value) in &e.xattrs {
            let name = String::from_utf8(name.clone()).map_err(|_| {
                StoreError::InvalidImage(format!(
                    "entry rootfs/{}: xattr name is not UTF-8",
                    entry.path
                ))
            })?;
            entry.xattrs.push((name, value.clone()));
        }
        entry.link = match kind {
            EntryKind::Symlink => Some(self.symlink_target(&entry.path, e)?),
            EntryKind::HardLink => {
                let raw = e.link_target.as_deref().unwrap_or_default();
                let target = match self.layout {
                    Layout::Aci => aci::hardlink_target(raw, &entry.path)?,
                    Layout::Layer => crate::docker::layer::hardlink_target(raw, &entry.path)?,
                };
                self.link_hardlink(&mut entry, &target)?;
                Some(target)
            }
            _ => None,
        };
        Ok(entry)
    }

    fn symlink_target(&self, path: &str, e: &TarEntry) -> Result<String> {
        let raw = e.link_target.as_deref().unwrap_or_default();
        String::from_utf8(raw.to_vec()).map_err(|_| {
            StoreError::InvalidImage(format!(
                "symlink rootfs/{path} has a target that is not UTF-8"
            ))
        })
    }

    /// A hard link shares its target's content: record the file id and size.
    fn link_hardlink(&self, entry: &mut Entry, target: &str) -> Result<()> {
        let index = self.seen.get(target).copied().flatten();
        if let Some(t) = index.and_then(|i| self.entries.get(i)) {
            entry.file_id = t.file_id;
            entry.size = t.size;
            entry.sparse = t.sparse.clone();
        }
        Ok(())
    }

    fn content(&mut self, bytes: &[u8]) -> Result<()> {
        let Some(cur) = self.current.as_mut() else {
            return Err(StoreError::InvalidImage(
                "content outside a regular file".into(),
            ));
        };
        cur.hasher.update(bytes);
        cur.len += bytes.len() as u64;
        if let Some(m) = cur.manifest.as_mut() {
            m.extend_from_slice(bytes);
        }
        if cur.known.is_some() {
            return Ok(());
        }
        self.chunks.data(bytes)
    }

    fn end(&mut self) -> Result<()> {
        if let Some(cur) = self.current.take() {
            let file_id = *cur.hasher.finalize().as_bytes();
            match cur.known {
                Some(want) if want != file_id => {
                    return Err(StoreError::Corrupt(format!(
                        "content {} read back from the store hashes to {}; run `rkt image verify`",
                        hex::encode(want),
                        hex::encode(file_id)
                    )))
                }
                Some(_) => {}
                None => {
                    self.chunks.end_file()?;
                    self.file_order.push(file_id);
                }
            }
            self.recipe.set_content(cur.slot, file_id, cur.len);
            let rec = self.files.entry(file_id).or_insert(FileRec {
                size: cur.len,
                chunks: Vec::new(),
                refs: 0,
            });
            rec.refs += 1;
            if let Some(e) = self.pending_entry.as_mut() {
                e.file_id = Some(file_id);
            }
            if cur.manifest.is_some() {
                self.manifest = cur.manifest;
            }
        }
        if let Some(e) = self.pending_entry.take() {
            if let Some(slot) = self.seen.get_mut(&e.path) {
                *slot = Some(self.entries.len());
            }
            self.entries.push(e);
        }
        Ok(())
    }
}

impl ImportSink {
    fn keep(&mut self, r: Result<()>) -> std::result::Result<(), TarError> {
        r.map_err(|e| {
            let err = TarError::sink(&e);
            self.failure = Some(e);
            err
        })
    }
}

impl TarSink for ImportSink {
    fn skeleton(&mut self, bytes: &[u8]) -> std::result::Result<(), TarError> {
        self.recipe.skeleton(bytes);
        Ok(())
    }
    fn entry(&mut self, entry: &TarEntry) -> std::result::Result<(), TarError> {
        let r = self.begin(entry);
        self.keep(r)
    }
    fn content(&mut self, bytes: &[u8]) -> std::result::Result<(), TarError> {
        let r = ImportSink::content(self, bytes);
        self.keep(r)
    }
    fn end_entry(&mut self) -> std::result::Result<(), TarError> {
        let r = self.end();
        self.keep(r)
    }
}

/// Reader that hashes (SHA-512 for images, SHA-256 for layers) and counts everything read
/// through it.
pub(crate) struct HashingReader<R, H = crate::imageid::ImageHasher> {
    pub(crate) inner: R,
    pub(crate) hasher: H,
    pub(crate) bytes: u64,
}

/// What [`HashingReader`] can feed.
pub(crate) trait Update {
    fn update_with(&mut self, bytes: &[u8]);
}

impl Update for crate::imageid::ImageHasher {
    fn update_with(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

impl Update for sha2::Sha256 {
    fn update_with(&mut self, bytes: &[u8]) {
        sha2::Digest::update(self, bytes);
    }
}

impl<R: Read, H: Update> Read for HashingReader<R, H> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update_with(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Everything parsed from one archive, ready to commit.
struct Parsed {
    id: String,
    manifest_bytes: Vec<u8>,
    manifest: ImageManifest,
    entries: Vec<Entry>,
    files: HashMap<FileId, FileRec>,
    new_chunks: HashMap<[u8; 32], NewChunk>,
    recipe: Vec<u8>,
    tar_bytes: u64,
}

impl Store {
    /// Import an ACI (optionally gzip/bzip2/xz/zstd compressed) from `input`.
    /// `source` names the input in error messages.
    pub fn import(&mut self, input: impl Read, source: &str) -> Result<ImportOutcome> {
        self.import_with(input, source, &|_, _| Ok(()), None)
    }

    /// Import an ACI; `also` runs in the committing transaction with the image ID (also when
    /// the image was already stored).
    pub(crate) fn import_with(
        &mut self,
        input: impl Read,
        source: &str,
        also: &dyn Fn(&Transaction<'_>, &str) -> Result<()>,
        known: Option<KnownContent>,
    ) -> Result<ImportOutcome> {
        let _gc_guard = lock::shared(&self.gc_lock_path())?;
        let pack_path = self.new_pack_path();
        let result = self.import_into_pack(input, source, pack_path.clone(), also, known);
        if result.is_err() || matches!(result, Ok((_, false))) {
            let _ = std::fs::remove_file(&pack_path);
        }
        result.map(|(o, _)| o)
    }

    pub(crate) fn new_pack_path(&self) -> PathBuf {
        let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
        let name = format!(
            "{now:x}-{}-{:08x}.pack",
            std::process::id(),
            rand::random::<u32>()
        );
        self.packs_dir().join(name)
    }

    /// Returns the outcome and whether the pack file is now part of the store.
    fn import_into_pack(
        &mut self,
        input: impl Read,
        source: &str,
        pack_path: PathBuf,
        also: &dyn Fn(&Transaction<'_>, &str) -> Result<()>,
        known: Option<KnownContent>,
    ) -> Result<(ImportOutcome, bool)> {
        let started = std::time::Instant::now();
        let pack = PackWriter::create(pack_path)?;
        let (parsed, pack) = self.parse_archive(input, source, pack, known)?;
        tracing::debug!(elapsed = ?started.elapsed(), "archive parsed and chunks written");
        let pack_used = !parsed.new_chunks.is_empty();
        let pack_size = pack.size();
        let pack_path = pack.finish()?;
        pack::sync_dir(&self.packs_dir())?;
        tracing::debug!(elapsed = ?started.elapsed(), "pack durable");
        let pack_name = pack_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = parsed.manifest.name.as_str().to_string();
        let (id, tar_bytes) = (parsed.id.clone(), parsed.tar_bytes);
        let db = self.db.clone();
        let new = db::write_tx(&mut self.conn, &db, |tx| {
            let new = commit(
                tx,
                &db,
                &parsed,
                pack_used.then_some((pack_name.as_str(), pack_size)),
            )?;
            also(tx, &parsed.id)?;
            Ok(new)
        })?;
        tracing::debug!(elapsed = ?started.elapsed(), "index committed");
        let stored_bytes = if new && pack_used { pack_size } else { 0 };
        tracing::debug!(%id, new, tar_bytes, stored_bytes, "import finished");
        Ok((
            ImportOutcome {
                id,
                name,
                new,
                tar_bytes,
                stored_bytes,
            },
            new && pack_used,
        ))
    }

    fn parse_archive(
        &self,
        input: impl Read,
        source: &str,
        pack: PackWriter,
        known: Option<KnownContent>,
    ) -> Result<(Parsed, PackWriter)> {
        let (kind, reader) =
            crate::decompress::open(input).ctx(|| "reading the archive".to_string())?;
        tracing::debug!(source, compression = kind.name(), "importing");
        let mut reader = HashingReader {
            inner: reader,
            hasher: crate::imageid::ImageHasher::default(),
            bytes: 0,
        };
        let chunks = ChunkWriter::start(pack, self.db.0.clone())?;
        let tar = parse_tar(&mut reader, kind, Layout::Aci, chunks, known)?;
        let manifest_bytes = tar.manifest.ok_or_else(|| {
            StoreError::InvalidImage("the archive has no `manifest` entry".to_string())
        })?;
        let manifest = ImageManifest::parse(&manifest_bytes)?;
        let mut entries = tar.entries;
        if !entries.iter().any(|e| e.path.is_empty()) {
            if entries.is_empty() {
                return Err(StoreError::InvalidImage(
                    "the archive has no `rootfs/` directory".into(),
                ));
            }
            entries.insert(0, Entry::implied_dir(""));
        }
        aci::check_tree(&entries)?;
        let parsed = Parsed {
            id: reader.hasher.finish(),
            manifest_bytes,
            manifest,
            entries,
            files: tar.files,
            new_chunks: tar.new_chunks,
            recipe: tar.recipe,
            tar_bytes: reader.bytes,
        };
        Ok((parsed, tar.pack))
    }
}

/// What one pass over a tar produced: its entries, distinct file contents with their chunk
/// lists, the chunks newly written to the pack, and the export recipe.
pub(crate) struct ParsedTar {
    pub(crate) entries: Vec<Entry>,
    pub(crate) files: HashMap<FileId, FileRec>,
    pub(crate) new_chunks: HashMap<[u8; 32], NewChunk>,
    pub(crate) recipe: Vec<u8>,
    /// The ACI's `manifest` bytes (ACI layout only).
    pub(crate) manifest: Option<Vec<u8>>,
    pub(crate) pack: PackWriter,
}

/// Parse an (already decompressed) tar stream, cutting file contents into chunks on the
/// chunk writer's thread; bytes after the tar's end are kept in the recipe.
pub(crate) fn parse_tar(
    reader: &mut impl Read,
    kind: crate::decompress::Compression,
    layout: Layout,
    chunks: ChunkWriter,
    known: Option<KnownContent>,
) -> Result<ParsedTar> {
    let mut sink = ImportSink {
        layout,
        chunks,
        file_order: Vec::new(),
        files: HashMap::new(),
        recipe: RecipeBuilder::default(),
        entries: Vec::new(),
        seen: HashMap::new(),
        current: None,
        pending_entry: None,
        manifest: None,
        failure: None,
        known,
    };
    if let Err(e) = tarstream::parse(&mut *reader, &mut sink) {
        return Err(match sink.failure.take() {
            Some(failure) => failure,
            None => tar_error(e, kind),
        });
    }
    drain_trailing(reader, &mut sink.recipe, kind)?;
    tracing::debug!("tar parsed and hashed; waiting for the chunk writer");
    let written = sink.chunks.finish()?;
    let mut files = sink.files;
    for (file_id, chunks) in sink.file_order.iter().zip(written.files) {
        if let Some(rec) = files.get_mut(file_id) {
            if rec.chunks.is_empty() {
                rec.chunks = chunks;
            }
        }
    }
    Ok(ParsedTar {
        entries: sink.entries,
        files,
        new_chunks: written.new_chunks,
        recipe: sink.recipe.finish()?,
        manifest: sink.manifest,
        pack: written.pack,
    })
}

/// Bytes after the tar's end belong to the image ID and must be exported again.
fn drain_trailing(
    reader: &mut impl Read,
    recipe: &mut RecipeBuilder,
    kind: crate::decompress::Compression,
) -> Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buf).map_err(|e| {
            StoreError::InvalidImage(format!(
                "the {} stream is corrupt or truncated: {e}",
                kind.name()
            ))
        })?;
        if n == 0 {
            return Ok(());
        }
        recipe.skeleton(&buf[..n]);
    }
}

/// Say what is wrong with an archive the parser refused.
fn tar_error(e: TarError, kind: crate::decompress::Compression) -> StoreError {
    match e {
        TarError::Io { offset, source: io } => StoreError::InvalidImage(format!(
            "the {} stream is corrupt or truncated (after {offset} bytes of tar): {io}",
            kind.name()
        )),
        other => StoreError::InvalidImage(other.to_string()),
    }
}

/// Record the image; returns false (and changes nothing) if it was already stored.
fn commit(
    tx: &Transaction<'_>,
    db: &db::DbPath,
    p: &Parsed,
    pack: Option<(&str, u64)>,
) -> Result<bool> {
    let e = db.err();
    if db::exists(tx, "SELECT 1 FROM images WHERE id = ?1", &p.id).map_err(&e)? {
        return Ok(false);
    }
    commit_chunks(tx, db, &p.new_chunks, pack)?;
    commit_files(tx, db, &p.files)?;
    commit_image(tx, db, p)?;
    Ok(true)
}

/// Record a pack and the chunks this import wrote to it.
pub(crate) fn commit_chunks(
    tx: &Transaction<'_>,
    db: &db::DbPath,
    new_chunks: &HashMap<[u8; 32], NewChunk>,
    pack: Option<(&str, u64)>,
) -> Result<()> {
    let e = db.err();
    if let Some((name, size)) = pack {
        tx.execute(
            "INSERT INTO packs(name, size) VALUES (?1, ?2)",
            params![name, size as i64],
        )
        .map_err(&e)?;
        let pack_id = tx.last_insert_rowid();
        let mut ins = tx
            .prepare_cached(
                "INSERT INTO chunks(id, pack_id, offset, clen, len, zstd, refs) VALUES (?1,?2,?3,?4,?5,?6,0)
                 ON CONFLICT(id) DO NOTHING",
            )
            .map_err(&e)?;
        for (id, c) in new_chunks {
            ins.execute(params![
                id.as_slice(),
                pack_id,
                c.offset as i64,
                c.clen as i64,
                c.len as i64,
                c.zstd
            ])
            .map_err(&e)?;
        }
    }
    Ok(())
}

/// Add this import's content references to `files` (new contents get their chunk lists).
pub(crate) fn commit_files(
    tx: &Transaction<'_>,
    db: &db::DbPath,
    files: &HashMap<FileId, FileRec>,
) -> Result<()> {
    let e = db.err();
    let mut bump_file = tx
        .prepare_cached("UPDATE files SET refs = refs + ?2 WHERE id = ?1")
        .map_err(&e)?;
    let mut new_file = tx
        .prepare_cached("INSERT INTO files(id, size, refs) VALUES (?1, ?2, ?3)")
        .map_err(&e)?;
    let mut file_chunk = tx
        .prepare_cached("INSERT INTO file_chunks(file_id, seq, chunk_id) VALUES (?1, ?2, ?3)")
        .map_err(&e)?;
    let mut bump_chunk = tx
        .prepare_cached("UPDATE chunks SET refs = refs + 1 WHERE id = ?1")
        .map_err(&e)?;
    for (id, f) in files {
        if bump_file
            .execute(params![id.as_slice(), f.refs as i64])
            .map_err(&e)?
            > 0
        {
            continue;
        }
        if f.size > 0 && f.chunks.is_empty() {
            return Err(StoreError::Corrupt(format!(
                "content {} vanished from the store during the import; retry",
                hex::encode(id)
            )));
        }
        new_file
            .execute(params![id.as_slice(), f.size as i64, f.refs as i64])
            .map_err(&e)?;
        for (seq, chunk) in f.chunks.iter().enumerate() {
            file_chunk
                .execute(params![id.as_slice(), seq as i64, chunk.as_slice()])
                .map_err(&e)?;
            if bump_chunk.execute(params![chunk.as_slice()]).map_err(&e)? != 1 {
                return Err(StoreError::Corrupt(format!(
                    "chunk {} vanished during import; retry the fetch",
                    hex::encode(chunk)
                )));
            }
        }
    }
    Ok(())
}

fn commit_image(tx: &Transaction<'_>, db: &db::DbPath, p: &Parsed) -> Result<()> {
    let e = db.err();
    let now = crate::images::now_nanos();
    tx.execute(
        "INSERT INTO images(id, name, version, manifest, size, import_time, last_used, latest)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, 0)",
        params![
            p.id,
            p.manifest.name.as_str(),
            p.manifest.version(),
            p.manifest_bytes,
            p.tar_bytes as i64,
            now,
        ],
    )
    .map_err(&e)?;
    tx.execute(
        "INSERT INTO image_recipes(image_id, recipe) VALUES (?1, ?2)",
        params![p.id, p.recipe],
    )
    .map_err(&e)?;
    let mut label = tx
        .prepare_cached(
            "INSERT OR REPLACE INTO image_labels(image_id, name, value) VALUES (?1, ?2, ?3)",
        )
        .map_err(&e)?;
    for l in p.manifest.labels.as_slice().iter() {
        label
            .execute(params![p.id, l.name.as_str(), l.value])
            .map_err(&e)?;
    }
    let mut ins = tx
        .prepare_cached(
            "INSERT INTO entries(image_id, path, seq, kind, mode, uid, gid, size, mtime, mtime_nsec, link,
                                 dev_major, dev_minor, xattrs, file_id, sparse)
             VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16)",
        )
        .map_err(&e)?;
    for (seq, en) in p.entries.iter().enumerate() {
        ins.execute(params![
            p.id,
            en.path,
            seq as i64,
            en.kind.code(),
            en.mode,
            en.uid,
            en.gid,
            en.size as i64,
            en.mtime,
            en.mtime_nsec,
            en.link,
            en.dev_major,
            en.dev_minor,
            crate::images::encode_xattrs(&en.xattrs),
            en.file_id.as_ref().map(|f| f.as_slice()),
            en.sparse
                .as_ref()
                .map(|s| serde_json::to_string(s).unwrap_or_default()),
        ])
        .map_err(&e)?;
    }
    Ok(())
}
