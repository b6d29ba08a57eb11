//! Docker/OCI layers in the store: a layer's tar is parsed like an image's rootfs (entries,
//! content cut into chunks, an exact recipe), its blob digest and diff ID are checked while it
//! streams in, and nothing is recorded unless both match.

use std::collections::HashMap;
use std::io::Read;

use rusqlite::{params, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::chunkwriter::ChunkWriter;
use crate::entry::{Entry, EntryKind, FileId};
use crate::error::{IoContext, Result, StoreError};
use crate::import::{self, HashingReader, Layout};
use crate::pack::{self, PackWriter};
use crate::recipe::{Op, Recipe};
use crate::{db, lock, Store};

/// What importing one layer did.
#[derive(Debug, Clone)]
pub struct LayerOutcome {
    /// `sha256:…` of the blob as distributed (compressed or not).
    pub digest: String,
    /// `sha256:…` of the uncompressed tar.
    pub diff_id: String,
    /// False when the layer was already in the store (nothing was written).
    pub new: bool,
    /// Bytes of the blob read.
    pub blob_bytes: u64,
    /// Bytes added to packs.
    pub stored_bytes: u64,
}

fn invalid(msg: String) -> StoreError {
    StoreError::InvalidImage(msg)
}

/// Normalise a layer tar path to a path relative to `/`: leading `/` and `./` are dropped,
/// `..` components are refused (a layer may not write outside the rootfs).
pub(crate) fn layer_path(raw: &[u8]) -> Result<String> {
    let text = std::str::from_utf8(raw).map_err(|_| {
        invalid(format!(
            "layer entry {:?} has a name that is not UTF-8",
            String::from_utf8_lossy(raw)
        ))
    })?;
    crate::aci::clean_components(text).ok_or_else(|| {
        invalid(format!(
            "layer entry {text:?} contains '..'; a layer may not write outside the rootfs"
        ))
    })
}

/// A hard link's target inside a layer, relative to `/`.
pub(crate) fn hardlink_target(raw: &[u8], entry: &str) -> Result<String> {
    match layer_path(raw) {
        Ok(p) if !p.is_empty() => Ok(p),
        _ => Err(invalid(format!(
            "hard link /{entry} in a layer points to {:?}, which is not a file inside the rootfs",
            String::from_utf8_lossy(raw)
        ))),
    }
}

/// `sha256:<64 hex>`, the only digest form accepted for layers.
pub(crate) fn check_digest(digest: &str) -> Result<()> {
    let ok = digest.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "layer digest {digest:?} is not of the form sha256:<64 lower-case hex digits>"
        )))
    }
}

/// One entry of a stored layer, as kept in `layers.entries` (zstd-compressed JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LayerEntry {
    pub path: String,
    pub kind: EntryKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: i64,
    pub mtime_nsec: u32,
    pub link: Option<String>,
    pub dev_major: u32,
    pub dev_minor: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparse: Option<Vec<(u64, u64)>>,
}

impl LayerEntry {
    fn from_entry(e: Entry) -> LayerEntry {
        LayerEntry {
            path: e.path,
            kind: e.kind,
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
            size: e.size,
            mtime: e.mtime,
            mtime_nsec: e.mtime_nsec,
            link: e.link,
            dev_major: e.dev_major,
            dev_minor: e.dev_minor,
            xattrs: e
                .xattrs
                .into_iter()
                .map(|(k, v)| (k, hex::encode(v)))
                .collect(),
            file_id: e.file_id.map(hex::encode),
            sparse: e.sparse,
        }
    }

    pub(crate) fn file_id(&self) -> Result<Option<FileId>> {
        let Some(text) = &self.file_id else {
            return Ok(None);
        };
        let mut id = [0u8; 32];
        hex::decode_to_slice(text, &mut id).map_err(|_| {
            StoreError::Corrupt(format!("layer entry /{} has a bad file id", self.path))
        })?;
        Ok(Some(id))
    }

    pub(crate) fn xattrs(&self) -> Result<Vec<(String, Vec<u8>)>> {
        self.xattrs
            .iter()
            .map(|(k, v)| {
                hex::decode(v).map(|v| (k.clone(), v)).map_err(|_| {
                    StoreError::Corrupt(format!("layer entry /{}: bad xattr", self.path))
                })
            })
            .collect()
    }
}

/// A stored layer's summary.
#[derive(Debug, Clone)]
pub struct LayerInfo {
    pub digest: String,
    pub diff_id: String,
    pub size: u64,
    pub tar_size: u64,
}

impl Store {
    /// The stored layer whose blob digest or diff ID is `digest`, if any.
    pub fn layer(&self, digest: &str) -> Result<Option<LayerInfo>> {
        self.conn
            .query_row(
                "SELECT digest, diff_id, size, tar_size FROM layers WHERE digest = ?1
                 UNION ALL SELECT digest, diff_id, size, tar_size FROM layers WHERE diff_id = ?1
                 LIMIT 1",
                [digest],
                |r| {
                    Ok(LayerInfo {
                        digest: r.get(0)?,
                        diff_id: r.get(1)?,
                        size: r.get::<_, i64>(2)? as u64,
                        tar_size: r.get::<_, i64>(3)? as u64,
                    })
                },
            )
            .optional()
            .map_err(self.db.err())
    }

    /// The layers (blob digests, base first) a Docker/OCI image was made of; empty for an
    /// image that was not made of layers.
    pub fn image_layers(&self, image_id: &str) -> Result<Vec<String>> {
        let mut q = self
            .conn
            .prepare_cached("SELECT digest FROM image_layers WHERE image_id = ?1 ORDER BY seq")
            .map_err(self.db.err())?;
        let rows = q
            .query_map([image_id], |r| r.get::<_, String>(0))
            .map_err(self.db.err())?;
        rows.collect::<std::result::Result<Vec<_>, _>>()
            .map_err(self.db.err())
    }

    /// Import a layer blob (a tar, optionally gzip/zstd/… compressed) whose SHA-256 must be
    /// `digest` and, if given, whose length must be `size`. A mismatch stores nothing.
    pub fn import_layer(
        &mut self,
        blob: impl Read,
        digest: &str,
        size: Option<u64>,
    ) -> Result<LayerOutcome> {
        check_digest(digest)?;
        if let Some(l) = self.layer(digest)? {
            return Ok(LayerOutcome {
                digest: l.digest,
                diff_id: l.diff_id,
                new: false,
                blob_bytes: 0,
                stored_bytes: 0,
            });
        }
        let _gc_guard = lock::shared(&self.gc_lock_path())?;
        let pack_path = self.new_pack_path();
        let result = self.import_layer_into(blob, digest, size, pack_path.clone());
        if !matches!(result, Ok((_, true))) {
            let _ = std::fs::remove_file(&pack_path);
        }
        result.map(|(o, _)| o)
    }

    fn import_layer_into(
        &mut self,
        blob: impl Read,
        digest: &str,
        size: Option<u64>,
        pack_path: std::path::PathBuf,
    ) -> Result<(LayerOutcome, bool)> {
        let pack = PackWriter::create(pack_path)?;
        // Never read more than the descriptor's size (plus one byte to detect a lie).
        let limit = size.map(|s| s.saturating_add(1)).unwrap_or(u64::MAX);
        let mut raw = HashingReader {
            inner: blob.take(limit),
            hasher: Sha256::new(),
            bytes: 0,
        };
        let (parsed, diff_id, tar_size) = {
            let (kind, reader) =
                crate::decompress::open(&mut raw).ctx(|| format!("reading layer {digest}"))?;
            let mut tar = HashingReader {
                inner: reader,
                hasher: Sha256::new(),
                bytes: 0,
            };
            let chunks = ChunkWriter::start_with_level(
                pack,
                self.db.0.clone(),
                crate::chunkwriter::LAYER_ZSTD_LEVEL,
            )?;
            let parsed = import::parse_tar(&mut tar, kind, Layout::Layer, chunks, None)
                .map_err(|e| in_layer(digest, e))?;
            let tar_size = tar.bytes;
            let diff_id = format!("sha256:{}", hex::encode(tar.hasher.finalize()));
            (parsed, diff_id, tar_size)
        };
        // The decompressor may stop at the end of its stream: the digest covers every byte.
        std::io::copy(&mut raw, &mut std::io::sink()).ctx(|| format!("reading layer {digest}"))?;
        let got = format!("sha256:{}", hex::encode(raw.hasher.clone().finalize()));
        if got != digest {
            return Err(invalid(format!(
                "layer {digest}: the blob's digest is {got}; it was corrupted or the source lied — nothing was stored"
            )));
        }
        if let Some(s) = size {
            if raw.bytes != s {
                return Err(invalid(format!(
                    "layer {digest}: the manifest says {s} bytes but the blob has {}; nothing was stored",
                    raw.bytes
                )));
            }
        }
        let blob_bytes = raw.bytes;
        let pack_used = !parsed.new_chunks.is_empty();
        let pack_size = parsed.pack.size();
        let pack_path = parsed.pack.finish()?;
        pack::sync_dir(&self.packs_dir())?;
        let pack_name = pack_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let entries: Vec<LayerEntry> = parsed
            .entries
            .into_iter()
            .map(LayerEntry::from_entry)
            .collect();
        let entries_json = serde_json::to_vec(&entries)
            .map_err(|e| StoreError::Corrupt(format!("encoding layer entries: {e}")))?;
        let entries_blob = zstd::bulk::compress(&entries_json, 3)
            .map_err(|e| StoreError::io("compressing layer entries", e))?;
        let db = self.db.clone();
        let row = LayerRow {
            digest,
            diff_id: &diff_id,
            size: blob_bytes,
            tar_size,
            recipe: &parsed.recipe,
            entries: &entries_blob,
        };
        let new = db::write_tx(&mut self.conn, &db, |tx| {
            if db::exists(tx, "SELECT 1 FROM layers WHERE digest = ?1", digest).map_err(db.err())? {
                return Ok(false);
            }
            import::commit_chunks(
                tx,
                &db,
                &parsed.new_chunks,
                pack_used.then_some((pack_name.as_str(), pack_size)),
            )?;
            import::commit_files(tx, &db, &parsed.files)?;
            insert_layer(tx, &db, &row)?;
            Ok(true)
        })?;
        tracing::debug!(digest, %diff_id, new, blob_bytes, "layer imported");
        Ok((
            LayerOutcome {
                digest: digest.to_string(),
                diff_id,
                new,
                blob_bytes,
                stored_bytes: if new && pack_used { pack_size } else { 0 },
            },
            new && pack_used,
        ))
    }

    /// The entries of a stored layer, in archive order.
    pub(crate) fn layer_entries(&self, digest: &str) -> Result<Vec<LayerEntry>> {
        let blob: Vec<u8> = self
            .conn
            .query_row(
                "SELECT entries FROM layer_blobs WHERE digest = ?1",
                [digest],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.db.err())?
            .ok_or_else(|| StoreError::Corrupt(format!("layer {digest} is not in the store")))?;
        let json = zstd::stream::decode_all(blob.as_slice()).map_err(|e| {
            StoreError::Corrupt(format!("layer {digest}: entries do not decompress: {e}"))
        })?;
        serde_json::from_slice(&json)
            .map_err(|e| StoreError::Corrupt(format!("layer {digest}: entries are malformed: {e}")))
    }

    /// Rebuild a stored layer's uncompressed tar exactly; fails if it does not hash to the
    /// layer's diff ID.
    pub fn export_layer(&self, digest: &str, out: &mut dyn std::io::Write) -> Result<u64> {
        let (diff_id, recipe): (String, Vec<u8>) = self
            .conn
            .query_row(
                "SELECT l.diff_id, b.recipe FROM layers l JOIN layer_blobs b ON b.digest = l.digest
                 WHERE l.digest = ?1",
                [digest],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(self.db.err())?
            .ok_or_else(|| StoreError::ImageNotFound(digest.into()))?;
        let recipe = Recipe::decode(&recipe)?;
        let reader = crate::content::Reader::new(self);
        let mut w = Sha256Writer {
            inner: out,
            hasher: Sha256::new(),
            bytes: 0,
        };
        for op in recipe.ops() {
            match op? {
                Op::Skeleton(b) => std::io::Write::write_all(&mut w, b)
                    .ctx(|| format!("exporting layer {digest}"))?,
                Op::Content { file_id, len } => {
                    reader.write_file(&file_id, Some(len), &mut w)?;
                }
            }
        }
        let bytes = w.bytes;
        let got = format!("sha256:{}", hex::encode(w.hasher.finalize()));
        if got != diff_id {
            return Err(StoreError::Corrupt(format!(
                "layer {digest} rebuilt to {got}, not its diff ID {diff_id}"
            )));
        }
        Ok(bytes)
    }

    /// Delete layers that no image uses; their contents become garbage once nothing else
    /// references them. Runs under gc's exclusive lock (no pull is between importing its
    /// layers and recording its image).
    pub(crate) fn remove_unused_layers(&mut self) -> Result<u64> {
        let unused: Vec<(String, Vec<u8>)> = {
            let mut st = self
                .conn
                .prepare(
                    "SELECT l.digest, b.recipe FROM layers l JOIN layer_blobs b ON b.digest = l.digest
                     WHERE l.digest NOT IN (SELECT digest FROM image_layers)",
                )
                .map_err(self.db.err())?;
            let rows = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(self.db.err())?;
            rows.collect::<rusqlite::Result<_>>()
                .map_err(self.db.err())?
        };
        for (digest, recipe) in &unused {
            self.remove_layer_rows(digest, recipe)?;
        }
        Ok(unused.len() as u64)
    }

    /// Remove one layer unless an image uses it (undoes the layers of a pull that failed).
    pub fn remove_unused_layer(&mut self, digest: &str) -> Result<()> {
        let recipe: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT recipe FROM layer_blobs WHERE digest = ?1",
                [digest],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.db.err())?;
        match recipe {
            Some(r) => self.remove_layer_rows(digest, &r),
            None => Ok(()),
        }
    }

    fn remove_layer_rows(&mut self, digest: &str, recipe: &[u8]) -> Result<()> {
        let recipe = Recipe::decode(recipe)?;
        let mut refs: HashMap<FileId, i64> = HashMap::new();
        for op in recipe.ops() {
            if let Op::Content { file_id, .. } = op? {
                *refs.entry(file_id).or_default() += 1;
            }
        }
        let db = self.db.clone();
        db::write_tx(&mut self.conn, &db, |tx| {
            if db::exists(tx, "SELECT 1 FROM image_layers WHERE digest = ?1", digest)
                .map_err(db.err())?
            {
                return Ok(());
            }
            let deleted = tx
                .execute("DELETE FROM layers WHERE digest = ?1", [digest])
                .map_err(db.err())?;
            tx.execute("DELETE FROM layer_blobs WHERE digest = ?1", [digest])
                .map_err(db.err())?;
            if deleted == 0 {
                return Ok(());
            }
            crate::images::release_files(tx, &db, &refs)
        })
    }
}

fn in_layer(digest: &str, e: StoreError) -> StoreError {
    match e {
        StoreError::InvalidImage(m) => invalid(format!("layer {digest}: {m}")),
        other => other,
    }
}

struct LayerRow<'a> {
    digest: &'a str,
    diff_id: &'a str,
    size: u64,
    tar_size: u64,
    recipe: &'a [u8],
    entries: &'a [u8],
}

fn insert_layer(tx: &Transaction<'_>, db: &db::DbPath, row: &LayerRow<'_>) -> Result<()> {
    tx.execute(
        "INSERT INTO layers(digest, diff_id, size, tar_size, import_time)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            row.digest,
            row.diff_id,
            row.size as i64,
            row.tar_size as i64,
            crate::images::now_nanos()
        ],
    )
    .map_err(db.err())?;
    tx.execute(
        "INSERT INTO layer_blobs(digest, recipe, entries) VALUES (?1, ?2, ?3)",
        params![row.digest, row.recipe, row.entries],
    )
    .map_err(db.err())?;
    Ok(())
}

/// Writer that hashes (SHA-256) and counts what passes through it.
struct Sha256Writer<'a> {
    inner: &'a mut dyn std::io::Write,
    hasher: Sha256,
    bytes: u64,
}

impl std::io::Write for Sha256Writer<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Held by a pull from its first layer to its image's commit: gc's sweep (which drops layers
/// no image uses yet) waits for it.
pub struct ImportGuard(#[allow(dead_code)] crate::lock::FileLock);

impl Store {
    /// Keep gc from sweeping while a layered image is being pulled.
    pub fn import_guard(&self) -> Result<ImportGuard> {
        Ok(ImportGuard(lock::shared(&self.gc_lock_path())?))
    }
}
