//! Images in the index: references (ID prefix, name, name:version, name,label=value),
//! listing, manifests, entries and removal.

use rusqlite::{params, OptionalExtension, Transaction};

use crate::entry::{Entry, EntryKind};
use crate::error::{Result, StoreError};
use crate::recipe::{Op, Recipe};
use crate::schema::AppRef;
use crate::{db, Store};

/// One image as `rkt image list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImageInfo {
    /// `sha512-` + 128 hex digits.
    pub id: String,
    pub name: String,
    pub version: Option<String>,
    /// Bytes of the uncompressed tar.
    pub size: u64,
    /// Unix nanoseconds.
    pub import_time: i64,
    pub last_used: i64,
    pub latest: bool,
}

/// How a user names an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// `sha512-` followed by at least two hex digits.
    IdPrefix(String),
    /// An appc name with optional version and labels.
    Name {
        name: String,
        labels: Vec<(String, String)>,
    },
}

impl ImageRef {
    pub fn parse(text: &str) -> Result<ImageRef> {
        if let Some(hex) = text.strip_prefix("sha512-") {
            if hex.len() < 2 || hex.len() > 128 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(StoreError::BadReference(
                    text.into(),
                    "an image ID is sha512- followed by at least 2 (at most 128) hex digits".into(),
                ));
            }
            return Ok(ImageRef::IdPrefix(format!(
                "sha512-{}",
                hex.to_ascii_lowercase()
            )));
        }
        let app = AppRef::parse(text)
            .map_err(|e| StoreError::BadReference(text.into(), e.to_string()))?;
        Ok(ImageRef::Name {
            name: app.name.as_str().to_string(),
            labels: app.labels_with_version(),
        })
    }
}

pub fn now_nanos() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos()).unwrap_or(i64::MAX)
}

pub fn encode_xattrs(x: &[(String, Vec<u8>)]) -> Option<String> {
    if x.is_empty() {
        return None;
    }
    let v: Vec<(&str, String)> = x
        .iter()
        .map(|(k, v)| (k.as_str(), hex::encode(v)))
        .collect();
    serde_json::to_string(&v).ok()
}

fn decode_xattrs(text: Option<String>) -> Result<Vec<(String, Vec<u8>)>> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    let v: Vec<(String, String)> = serde_json::from_str(&text)
        .map_err(|e| StoreError::Corrupt(format!("xattrs in index: {e}")))?;
    v.into_iter()
        .map(|(k, h)| {
            hex::decode(h)
                .map(|b| (k, b))
                .map_err(|e| StoreError::Corrupt(format!("xattrs in index: {e}")))
        })
        .collect()
}

const INFO_COLUMNS: &str = "id, name, version, size, import_time, last_used, latest";

fn info_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ImageInfo> {
    Ok(ImageInfo {
        id: r.get(0)?,
        name: r.get(1)?,
        version: r.get(2)?,
        size: r.get::<_, i64>(3)? as u64,
        import_time: r.get(4)?,
        last_used: r.get(5)?,
        latest: r.get(6)?,
    })
}

impl Store {
    /// Every image, oldest import first.
    pub fn list_images(&self) -> Result<Vec<ImageInfo>> {
        let e = self.db.err();
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT {INFO_COLUMNS} FROM images ORDER BY import_time, id"
            ))
            .map_err(&e)?;
        let rows = st.query_map([], info_from_row).map_err(&e)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(e)
    }

    /// Find the one image a reference names.
    pub fn resolve(&self, reference: &str) -> Result<ImageInfo> {
        match ImageRef::parse(reference)? {
            ImageRef::IdPrefix(prefix) => self.resolve_prefix(reference, &prefix),
            ImageRef::Name { name, labels } => self
                .find_by_name(&name, &labels)?
                .ok_or_else(|| StoreError::ImageNotFound(reference.into())),
        }
    }

    fn resolve_prefix(&self, reference: &str, prefix: &str) -> Result<ImageInfo> {
        let e = self.db.err();
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT {INFO_COLUMNS} FROM images WHERE substr(id, 1, ?2) = ?1 ORDER BY id LIMIT 11"
            ))
            .map_err(&e)?;
        let found = st
            .query_map(params![prefix, prefix.len() as i64], info_from_row)
            .map_err(&e)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(&e)?;
        match found.len() {
            0 => Err(StoreError::ImageNotFound(reference.into())),
            1 => Ok(found
                .into_iter()
                .next()
                .ok_or_else(|| StoreError::ImageNotFound(reference.into()))?),
            _ => Err(StoreError::AmbiguousImage {
                reference: reference.into(),
                candidates: found
                    .iter()
                    .map(|i| format!("  {} {}", i.id, i.name))
                    .collect::<Vec<_>>()
                    .join("\n"),
            }),
        }
    }

    /// The newest import of `name` whose labels include all of `labels`.
    pub fn find_by_name(
        &self,
        name: &str,
        labels: &[(String, String)],
    ) -> Result<Option<ImageInfo>> {
        let e = self.db.err();
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT {INFO_COLUMNS} FROM images WHERE name = ?1 ORDER BY latest DESC, import_time DESC, id"
            ))
            .map_err(&e)?;
        let candidates = st
            .query_map([name], info_from_row)
            .map_err(&e)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(&e)?;
        for c in candidates {
            if self.has_labels(&c.id, labels)? {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }

    fn has_labels(&self, id: &str, labels: &[(String, String)]) -> Result<bool> {
        let e = self.db.err();
        let mut st = self
            .conn
            .prepare_cached("SELECT value FROM image_labels WHERE image_id = ?1 AND name = ?2")
            .map_err(&e)?;
        for (k, v) in labels {
            let value: Option<String> = st
                .query_row(params![id, k], |r| r.get(0))
                .optional()
                .map_err(&e)?;
            if value.as_deref() != Some(v.as_str()) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The manifest bytes exactly as stored in the archive.
    pub fn manifest_bytes(&self, id: &str) -> Result<Vec<u8>> {
        self.conn
            .query_row("SELECT manifest FROM images WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(self.db.err())?
            .ok_or_else(|| StoreError::ImageNotFound(id.into()))
    }

    pub fn manifest(&self, id: &str) -> Result<crate::schema::ImageManifest> {
        Ok(crate::schema::ImageManifest::parse(
            &self.manifest_bytes(id)?,
        )?)
    }

    pub(crate) fn recipe(&self, id: &str) -> Result<Recipe> {
        let blob: Vec<u8> = self
            .conn
            .query_row(
                "SELECT recipe FROM image_recipes WHERE image_id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.db.err())?
            .ok_or_else(|| StoreError::ImageNotFound(id.into()))?;
        Recipe::decode(&blob)
    }

    /// Record that an image was used now (drives `rkt image gc`).
    ///
    /// A use within the last minute is not recorded again: gc's grace periods are far
    /// coarser, and a transaction that changes nothing costs no fsync, which matters on the
    /// path of every `rkt run`.
    pub fn touch(&mut self, id: &str) -> Result<()> {
        const RECENT_NANOS: i64 = 60_000_000_000;
        let db = self.db.clone();
        let now = now_nanos();
        // Read first: within the minute there is nothing to write, and even an UPDATE that
        // changes no row takes the WAL write lock and runs three statements.
        let last: Option<i64> = self
            .conn
            .query_row("SELECT last_used FROM images WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(db.err())?;
        if last.is_some_and(|t| t >= now - RECENT_NANOS) {
            return Ok(());
        }
        db::write_tx(&mut self.conn, &db, |tx| {
            tx.execute(
                "UPDATE images SET last_used = ?2 WHERE id = ?1 AND last_used < ?3",
                params![id, now, now - RECENT_NANOS],
            )
            .map_err(db.err())
            .map(|_| ())
        })
    }

    /// Every rootfs entry of an image, in archive order — answered from the index alone.
    pub fn entries(&self, id: &str) -> Result<Vec<Entry>> {
        self.entries_where(id, None)
    }

    /// Entries of an image, all of them or the one at `path`.
    fn entries_where(&self, id: &str, path: Option<&str>) -> Result<Vec<Entry>> {
        let e = self.db.err();
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT path, kind, mode, uid, gid, size, mtime, mtime_nsec, link, dev_major, dev_minor,
                        xattrs, file_id, sparse FROM entries
                 WHERE image_id = ?1 AND (?2 IS NULL OR path = ?2) ORDER BY seq",
            )
            .map_err(&e)?;
        let rows = st
            .query_map(params![id, path], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    (
                        r.get::<_, u32>(2)?,
                        r.get::<_, u32>(3)?,
                        r.get::<_, u32>(4)?,
                    ),
                    (
                        r.get::<_, i64>(5)?,
                        r.get::<_, i64>(6)?,
                        r.get::<_, u32>(7)?,
                    ),
                    r.get::<_, Option<String>>(8)?,
                    (r.get::<_, u32>(9)?, r.get::<_, u32>(10)?),
                    r.get::<_, Option<String>>(11)?,
                    r.get::<_, Option<Vec<u8>>>(12)?,
                    r.get::<_, Option<String>>(13)?,
                ))
            })
            .map_err(&e)?;
        let mut out = Vec::new();
        for row in rows {
            let (
                path,
                kind,
                (mode, uid, gid),
                (size, mtime, mtime_nsec),
                link,
                (dev_major, dev_minor),
                x,
                fid,
                sparse,
            ) = row.map_err(&e)?;
            let kind = EntryKind::from_code(&kind).ok_or_else(|| {
                StoreError::Corrupt(format!("entry {path}: unknown kind {kind:?}"))
            })?;
            let file_id = match fid {
                Some(b) => Some(<[u8; 32]>::try_from(b.as_slice()).map_err(|_| {
                    StoreError::Corrupt(format!("entry {path}: file id is not 32 bytes"))
                })?),
                None => None,
            };
            let sparse = match sparse {
                Some(s) => Some(serde_json::from_str(&s).map_err(|err| {
                    StoreError::Corrupt(format!("entry {path}: sparse map: {err}"))
                })?),
                None => None,
            };
            out.push(Entry {
                xattrs: decode_xattrs(x)?,
                path,
                kind,
                mode,
                uid,
                gid,
                size: size as u64,
                mtime,
                mtime_nsec,
                link,
                dev_major,
                dev_minor,
                file_id,
                sparse,
            });
        }
        Ok(out)
    }

    /// Remove an image from the index; its chunks become garbage for `gc` once no other image
    /// uses them.
    pub fn remove_image(&mut self, id: &str) -> Result<()> {
        let refs = self.content_refs(id)?;
        let db = self.db.clone();
        db::write_tx(&mut self.conn, &db, |tx| remove_in_tx(tx, &db, id, &refs))
    }

    /// Remove several images in one transaction (gc: one commit instead of one per image).
    /// Images already gone (another process removed them) are skipped.
    pub(crate) fn remove_images(&mut self, ids: &[String]) -> Result<()> {
        let mut all = Vec::with_capacity(ids.len());
        for id in ids {
            match self.content_refs(id) {
                Ok(refs) => all.push((id, refs)),
                Err(StoreError::ImageNotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let db = self.db.clone();
        db::write_tx(&mut self.conn, &db, |tx| {
            for (id, refs) in &all {
                match remove_in_tx(tx, &db, id, refs) {
                    Ok(()) | Err(StoreError::ImageNotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })
    }

    /// How many times the image's recipe uses each file content.
    fn content_refs(&self, id: &str) -> Result<std::collections::HashMap<[u8; 32], i64>> {
        let recipe = self.recipe(id)?;
        let mut refs = std::collections::HashMap::new();
        for op in recipe.ops() {
            if let Op::Content { file_id, .. } = op? {
                *refs.entry(file_id).or_default() += 1;
            }
        }
        Ok(refs)
    }
}

fn remove_in_tx(
    tx: &Transaction<'_>,
    db: &db::DbPath,
    id: &str,
    refs: &std::collections::HashMap<[u8; 32], i64>,
) -> Result<()> {
    let e = db.err();
    if tx
        .execute("DELETE FROM images WHERE id = ?1", [id])
        .map_err(&e)?
        == 0
    {
        return Err(StoreError::ImageNotFound(id.into()));
    }
    tx.execute("DELETE FROM image_recipes WHERE image_id = ?1", [id])
        .map_err(&e)?;
    tx.execute("DELETE FROM image_labels WHERE image_id = ?1", [id])
        .map_err(&e)?;
    tx.execute("DELETE FROM entries WHERE image_id = ?1", [id])
        .map_err(&e)?;
    tx.execute("DELETE FROM remotes WHERE image_id = ?1", [id])
        .map_err(&e)?;
    tx.execute("DELETE FROM image_layers WHERE image_id = ?1", [id])
        .map_err(&e)?;
    release_files(tx, db, refs)
}

/// Drop `refs` content references; contents nobody references any more lose their chunk
/// lists, and their chunks' counts drop (gc's sweep reclaims them).
pub(crate) fn release_files(
    tx: &Transaction<'_>,
    db: &db::DbPath,
    refs: &std::collections::HashMap<[u8; 32], i64>,
) -> Result<()> {
    let e = db.err();
    let mut dec = tx
        .prepare_cached("UPDATE files SET refs = refs - ?2 WHERE id = ?1")
        .map_err(&e)?;
    let mut left = tx
        .prepare_cached("SELECT refs FROM files WHERE id = ?1")
        .map_err(&e)?;
    let mut drop_file = tx
        .prepare_cached("DELETE FROM files WHERE id = ?1")
        .map_err(&e)?;
    let mut file_chunks = tx
        .prepare_cached("SELECT chunk_id FROM file_chunks WHERE file_id = ?1")
        .map_err(&e)?;
    let mut drop_chunk = tx
        .prepare_cached("UPDATE chunks SET refs = refs - 1 WHERE id = ?1")
        .map_err(&e)?;
    let mut drop_file_chunks = tx
        .prepare_cached("DELETE FROM file_chunks WHERE file_id = ?1")
        .map_err(&e)?;
    for (file, n) in refs {
        dec.execute(params![file.as_slice(), n]).map_err(&e)?;
        let remaining: Option<i64> = left
            .query_row([file.as_slice()], |r| r.get(0))
            .optional()
            .map_err(&e)?;
        if remaining.is_some_and(|r| r <= 0) {
            drop_file.execute([file.as_slice()]).map_err(&e)?;
            let chunks = file_chunks
                .query_map([file.as_slice()], |r| r.get::<_, Vec<u8>>(0))
                .map_err(&e)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(&e)?;
            for chunk in chunks {
                drop_chunk.execute([chunk]).map_err(&e)?;
            }
            drop_file_chunks.execute([file.as_slice()]).map_err(&e)?;
        }
    }
    Ok(())
}

/// One chunk of a file, as the index lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRef {
    /// BLAKE3 of the chunk's bytes.
    pub id: [u8; 32],
    /// Uncompressed length.
    pub len: u64,
}

impl Store {
    /// One path of an image's rootfs (`""` is the rootfs itself), from the index alone.
    pub fn entry(&self, id: &str, path: &str) -> Result<Option<Entry>> {
        let path = path.trim_start_matches('/').trim_end_matches('/');
        Ok(self.entries_where(id, Some(path))?.into_iter().next())
    }

    /// A file's chunks in order, from the index alone (no pack is read).
    pub fn chunk_list(&self, file: &crate::entry::FileId) -> Result<Vec<ChunkRef>> {
        let e = self.db.err();
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT c.id, c.len FROM file_chunks f JOIN chunks c ON c.id = f.chunk_id
                 WHERE f.file_id = ?1 ORDER BY f.seq",
            )
            .map_err(&e)?;
        let rows = st
            .query_map([file.as_slice()], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?))
            })
            .map_err(&e)?;
        let mut out = Vec::new();
        for row in rows {
            let (id, len) = row.map_err(&e)?;
            let id = <[u8; 32]>::try_from(id.as_slice())
                .map_err(|_| StoreError::Corrupt("chunk id is not 32 bytes".into()))?;
            out.push(ChunkRef {
                id,
                len: len as u64,
            });
        }
        Ok(out)
    }
}
