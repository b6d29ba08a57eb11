//! Garbage collection: remove images unused for a grace period, then — holding the gc lock
//! exclusively, so no import is deduplicating against what is being removed — drop chunks no
//! file uses, compact packs whose live share is low, and delete leftovers of interrupted
//! imports and collections.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use rusqlite::params;

use crate::error::{IoContext, Result, StoreError};
use crate::pack::{self, PackWriter};
use crate::{db, lock, Store};

/// A pack is rewritten when less than this share of its bytes is still live.
const COMPACT_BELOW: f64 = 0.5;

/// Images removed per transaction: one commit (and its fsync) per batch instead of per image,
/// while other writers wait for at most one batch.
const REMOVE_BATCH: usize = 100;

/// The index is vacuumed when at least this many of its pages (and half of them) are free.
const VACUUM_MIN_FREE_PAGES: i64 = 256;

#[derive(Debug, Clone, Default)]
pub struct GcReport {
    /// IDs of the images removed.
    pub removed_images: Vec<String>,
    pub chunks_dropped: u64,
    pub packs_deleted: u64,
    pub packs_compacted: u64,
    /// Bytes of pack files freed on disk.
    pub bytes_freed: u64,
    /// Rendered trees removed (of removed images, or left half-written).
    pub trees_removed: u64,
    /// What happened to the object cache (`objects/`).
    pub objects: crate::objects::ObjectsReport,
    /// Docker/OCI layers that no image used any more.
    pub layers_removed: u64,
}

struct PackUse {
    id: i64,
    name: String,
    size: u64,
    live: u64,
}

impl Store {
    /// Remove images not used within `grace` (except those in `keep`, e.g. images of existing
    /// pods), then reclaim space.
    pub fn gc(&mut self, grace: Duration, keep: &HashSet<String>) -> Result<GcReport> {
        let cutoff =
            crate::images::now_nanos() - i64::try_from(grace.as_nanos()).unwrap_or(i64::MAX);
        let mut report = GcReport::default();
        let doomed: Vec<String> = self
            .list_images()?
            .into_iter()
            .filter(|i| i.last_used < cutoff && !keep.contains(&i.id))
            .map(|i| i.id)
            .collect();
        for batch in doomed.chunks(REMOVE_BATCH) {
            self.remove_images(batch)?;
            report.removed_images.extend_from_slice(batch);
        }
        self.sweep(&mut report)?;
        Ok(report)
    }

    /// Reclaim space of removed images (also what `gc` does after removing images).
    pub fn sweep(&mut self, report: &mut GcReport) -> Result<()> {
        let _exclusive = lock::exclusive(&self.gc_lock_path())?;
        report.layers_removed = self.remove_unused_layers()?;
        let db = self.db.clone();
        report.chunks_dropped = db::write_tx(&mut self.conn, &db, |tx| {
            tx.execute("DELETE FROM chunks WHERE refs <= 0", [])
                .map_err(db.err())
                .map(|n| n as u64)
        })?;
        let (dead, live): (Vec<PackUse>, Vec<PackUse>) =
            self.pack_usage()?.into_iter().partition(|p| p.live == 0);
        self.delete_packs(&dead, report)?;
        for p in live {
            if (p.live as f64) < COMPACT_BELOW * p.size as f64 {
                self.compact_pack(&p, report)?;
            }
        }
        self.remove_orphans(report)?;
        let live: HashSet<String> = self.list_images()?.into_iter().map(|i| i.id).collect();
        report.trees_removed = self.remove_stale_trees(&live)?;
        report.objects = self.sweep_objects()?;
        report.bytes_freed += report.objects.bytes_freed;
        let _ = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
        self.shrink_index();
        Ok(())
    }

    /// Give the index's free pages back to the filesystem when they are most of it (SQLite
    /// keeps the pages of deleted rows in the file otherwise: 16 MB after removing 1,000
    /// images). VACUUM rewrites the file; pods and fetches that read meanwhile keep their
    /// snapshot, and if another writer holds the database, it is left for the next gc.
    fn shrink_index(&mut self) {
        let pragma = |name: &str| -> i64 {
            self.conn
                .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
                .unwrap_or(0)
        };
        let (free, total) = (pragma("freelist_count"), pragma("page_count"));
        if free < VACUUM_MIN_FREE_PAGES || free * 2 < total {
            return;
        }
        match self.conn.execute_batch("VACUUM") {
            Ok(()) => {
                tracing::debug!(free, total, "index vacuumed");
                let _ = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
            }
            Err(e) => tracing::info!("index not vacuumed this time: {e}"),
        }
    }

    fn pack_usage(&self) -> Result<Vec<PackUse>> {
        let e = self.db.err();
        let mut st = self
            .conn
            .prepare(
                "SELECT p.id, p.name, p.size, COALESCE(SUM(c.clen), 0) FROM packs p
                 LEFT JOIN chunks c ON c.pack_id = p.id GROUP BY p.id",
            )
            .map_err(&e)?;
        let rows = st
            .query_map([], |r| {
                Ok(PackUse {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    size: r.get::<_, i64>(2)? as u64,
                    live: r.get::<_, i64>(3)? as u64,
                })
            })
            .map_err(&e)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(e)
    }

    /// Forget packs without live chunks in one transaction, then delete their files (a crash
    /// in between leaves files the index does not name: the next gc removes those).
    fn delete_packs(&mut self, dead: &[PackUse], report: &mut GcReport) -> Result<()> {
        let db = self.db.clone();
        db::write_tx(&mut self.conn, &db, |tx| {
            let mut del = tx
                .prepare_cached("DELETE FROM packs WHERE id = ?1")
                .map_err(db.err())?;
            for p in dead {
                del.execute([p.id]).map_err(db.err())?;
            }
            Ok(())
        })?;
        for p in dead {
            let path = self.packs_dir().join(&p.name);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io(format!("removing {}", path.display()), e)),
            }
            report.packs_deleted += 1;
            report.bytes_freed += p.size;
        }
        Ok(())
    }

    /// Copy a pack's live chunks into a new pack, switch the index over in one transaction,
    /// then delete the old file.
    fn compact_pack(&mut self, p: &PackUse, report: &mut GcReport) -> Result<()> {
        let chunks = self.live_chunks(p.id)?;
        let mut writer = PackWriter::create(self.new_pack_path())?;
        let mut moved = Vec::with_capacity(chunks.len());
        for (id, offset, clen) in chunks {
            let bytes = self.packs.read(&p.name, offset, clen as usize)?;
            moved.push((id, writer.append(&bytes)?));
        }
        let new_size = writer.size();
        let new_path = writer.finish()?;
        pack::sync_dir(&self.packs_dir())?;
        let new_name = new_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let db = self.db.clone();
        let result = db::write_tx(&mut self.conn, &db, |tx| {
            let e = db.err();
            tx.execute(
                "INSERT INTO packs(name, size) VALUES (?1, ?2)",
                params![new_name, new_size as i64],
            )
            .map_err(&e)?;
            let new_id = tx.last_insert_rowid();
            let mut st = tx
                .prepare_cached("UPDATE chunks SET pack_id = ?2, offset = ?3 WHERE id = ?1")
                .map_err(&e)?;
            for (id, offset) in &moved {
                st.execute(params![id, new_id, *offset as i64])
                    .map_err(&e)?;
            }
            tx.execute("DELETE FROM packs WHERE id = ?1", [p.id])
                .map_err(&e)?;
            Ok(())
        });
        if let Err(err) = result {
            let _ = std::fs::remove_file(&new_path);
            return Err(err);
        }
        let old = self.packs_dir().join(&p.name);
        std::fs::remove_file(&old).ctx(|| format!("removing compacted pack {}", old.display()))?;
        report.packs_compacted += 1;
        report.bytes_freed += p.size.saturating_sub(new_size);
        Ok(())
    }

    fn live_chunks(&self, pack_id: i64) -> Result<Vec<(Vec<u8>, u64, u64)>> {
        let e = self.db.err();
        let mut st = self
            .conn
            .prepare("SELECT id, offset, clen FROM chunks WHERE pack_id = ?1 ORDER BY offset")
            .map_err(&e)?;
        let rows = st
            .query_map([pack_id], |r| {
                Ok((
                    r.get(0)?,
                    r.get::<_, i64>(1)? as u64,
                    r.get::<_, i64>(2)? as u64,
                ))
            })
            .map_err(&e)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(e)
    }

    /// Pack files the index does not name (an import or compaction killed before its commit,
    /// or a compaction killed after it), and anything in tmp/.
    fn remove_orphans(&mut self, report: &mut GcReport) -> Result<()> {
        let known: HashSet<String> = self.pack_usage()?.into_iter().map(|p| p.name).collect();
        let dir = self.packs_dir();
        let listing = std::fs::read_dir(&dir).ctx(|| format!("listing {}", dir.display()))?;
        let mut sizes: HashMap<String, u64> = HashMap::new();
        for item in listing {
            let item = item.ctx(|| format!("listing {}", dir.display()))?;
            let name = item.file_name().to_string_lossy().into_owned();
            if !known.contains(&name) {
                sizes.insert(name, item.metadata().map(|m| m.len()).unwrap_or(0));
            }
        }
        for (name, size) in sizes {
            let path = dir.join(&name);
            tracing::debug!(path = %path.display(), "removing orphaned pack");
            std::fs::remove_file(&path)
                .ctx(|| format!("removing orphaned pack {}", path.display()))?;
            report.bytes_freed += size;
            report.packs_deleted += 1;
        }
        self.clean_tmp()
    }

    fn clean_tmp(&self) -> Result<()> {
        let tmp = self.dir.join("tmp");
        let listing = std::fs::read_dir(&tmp).ctx(|| format!("listing {}", tmp.display()))?;
        for item in listing.flatten() {
            let path = item.path();
            let r = if item.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            r.ctx(|| format!("removing leftover {}", path.display()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ACI with `files` small files of its own (many index rows per image).
    fn aci(n: usize, files: usize) -> Vec<u8> {
        let files: Vec<(String, Vec<u8>)> = (0..files)
            .map(|f| {
                let path = format!("a-rather-long-file-name-{n}-{f}");
                (path, format!("image {n} file {f}\n").into_bytes())
            })
            .collect();
        crate::docker::tarwrite::test_aci(&format!("example.com/gc{n}"), &files)
    }

    #[test]
    fn gc_removes_images_in_batches_and_gives_index_space_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let n = REMOVE_BATCH + 20;
        for i in 0..n {
            store.import(aci(i, 60).as_slice(), "test").unwrap();
        }
        let db = dir.path().join("store.db");
        let full = std::fs::metadata(&db).unwrap().len();
        let report = store.gc(Duration::ZERO, &HashSet::new()).unwrap();
        assert_eq!(report.removed_images.len(), n);
        assert!(store.list_images().unwrap().is_empty());
        let free: i64 = store
            .conn
            .query_row("PRAGMA freelist_count", [], |r| r.get(0))
            .unwrap();
        let after = std::fs::metadata(&db).unwrap().len();
        assert!(
            free < VACUUM_MIN_FREE_PAGES && after * 2 < full,
            "index not shrunk: {full} -> {after} bytes, {free} free pages"
        );
        // the store still works
        let again = store.import(aci(0, 3).as_slice(), "test").unwrap();
        assert!(again.new);
    }
}
