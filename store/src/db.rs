//! The SQLite index: schema, migrations and connection settings.
//!
//! Every connection runs in WAL mode with a long busy timeout, and every write transaction
//! starts with `BEGIN IMMEDIATE`, so concurrent `rkt` processes queue for the write lock instead
//! of failing with "database is locked".

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};

use crate::error::{Result, StoreError};

/// Current schema version; bump it and add a step to [`MIGRATIONS`] for every change.
pub const SCHEMA_VERSION: i64 = 4;

/// Migration steps: `MIGRATIONS[n]` takes a store from version `n` to `n + 1`.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE packs (
    id    INTEGER PRIMARY KEY,
    name  TEXT NOT NULL UNIQUE,
    size  INTEGER NOT NULL
);
CREATE TABLE chunks (
    id      BLOB PRIMARY KEY,          -- BLAKE3 of the uncompressed chunk
    pack_id INTEGER NOT NULL REFERENCES packs(id),
    offset  INTEGER NOT NULL,
    clen    INTEGER NOT NULL,          -- bytes in the pack
    len     INTEGER NOT NULL,          -- uncompressed bytes
    zstd    INTEGER NOT NULL,          -- 1 if stored zstd-compressed, 0 if raw
    refs    INTEGER NOT NULL           -- rows of file_chunks that name this chunk
) WITHOUT ROWID;
CREATE INDEX chunks_by_pack ON chunks(pack_id);
CREATE TABLE files (
    id      BLOB PRIMARY KEY,          -- BLAKE3 of the whole content
    size    INTEGER NOT NULL,
    refs    INTEGER NOT NULL           -- content references in image recipes
) WITHOUT ROWID;
CREATE TABLE file_chunks (
    file_id  BLOB NOT NULL,
    seq      INTEGER NOT NULL,
    chunk_id BLOB NOT NULL,
    PRIMARY KEY (file_id, seq)
) WITHOUT ROWID;
CREATE TABLE images (
    id          TEXT PRIMARY KEY,      -- sha512-<128 hex> of the uncompressed tar
    name        TEXT NOT NULL,
    version     TEXT,
    manifest    BLOB NOT NULL,
    size        INTEGER NOT NULL,      -- bytes of the uncompressed tar
    import_time INTEGER NOT NULL,      -- unix nanoseconds
    last_used   INTEGER NOT NULL,      -- unix nanoseconds
    latest      INTEGER NOT NULL DEFAULT 0,
    recipe      BLOB NOT NULL          -- zstd-compressed export recipe (see recipe.rs)
) WITHOUT ROWID;
CREATE INDEX images_by_name ON images(name);
CREATE TABLE image_labels (
    image_id TEXT NOT NULL,
    name     TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (image_id, name)
) WITHOUT ROWID;
CREATE TABLE entries (
    image_id   TEXT NOT NULL,
    path       TEXT NOT NULL,          -- relative to rootfs; '' is rootfs itself
    seq        INTEGER NOT NULL,       -- order in the archive
    kind       TEXT NOT NULL,
    mode       INTEGER NOT NULL,
    uid        INTEGER NOT NULL,
    gid        INTEGER NOT NULL,
    size       INTEGER NOT NULL,
    mtime      INTEGER NOT NULL,
    mtime_nsec INTEGER NOT NULL,
    link       TEXT,
    dev_major  INTEGER NOT NULL,
    dev_minor  INTEGER NOT NULL,
    xattrs     BLOB,                   -- JSON [[name, hex value], ...] or NULL
    file_id    BLOB,
    sparse     TEXT,                   -- JSON [[offset, len], ...] or NULL
    PRIMARY KEY (image_id, path)
) WITHOUT ROWID;
CREATE INDEX entries_by_file ON entries(file_id);
CREATE TABLE remotes (
    url           TEXT PRIMARY KEY,
    sig_url       TEXT,
    etag          TEXT,
    image_id      TEXT NOT NULL,
    cache_max_age INTEGER,
    download_time INTEGER NOT NULL
) WITHOUT ROWID;
"#,
    // ---- version 1 -> 2: Docker/OCI layers (store/src/docker/layer.rs) ----
    r#"
CREATE TABLE layers (
    digest      TEXT PRIMARY KEY,      -- sha256:<hex> of the blob as distributed
    diff_id     TEXT NOT NULL,         -- sha256:<hex> of the uncompressed tar
    size        INTEGER NOT NULL,      -- blob bytes
    tar_size    INTEGER NOT NULL,      -- uncompressed tar bytes
    recipe      BLOB NOT NULL,         -- zstd-compressed recipe of the uncompressed tar
    entries     BLOB NOT NULL,         -- zstd-compressed JSON list of the layer's entries
    import_time INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX layers_by_diff_id ON layers(diff_id);
CREATE TABLE image_layers (
    image_id TEXT NOT NULL,            -- a squashed image made of these layers
    seq      INTEGER NOT NULL,         -- 0 = base layer
    digest   TEXT NOT NULL,
    PRIMARY KEY (image_id, seq)
) WITHOUT ROWID;
CREATE INDEX image_layers_by_digest ON image_layers(digest);
"#,
    // ---- end of version 1 -> 2 ----
    // An index of entries by file_id that no query ever used: it held the 135-character image
    // ID again for every path, about 30 % of store.db (10,000 paths: 2.4 of 8.2 MB), and every
    // import kept it up to date in random order.
    r#"
DROP INDEX IF EXISTS entries_by_file;
"#,
    // ---- end of version 2 -> 3 ----
    // Blobs out of the WITHOUT ROWID tables. Such a table is a key-ordered b-tree of whole
    // rows, and SQLite reads every row a key lookup compares in full, overflow pages included:
    // each lookup of an image read its export recipe (443 KB for an image of 8,920 files), and
    // the UPDATE of its last_used time rewrote it. In rowid tables the key is in an index of its
    // own and a blob is read only when selected.
    r#"
CREATE TABLE image_recipes (
    image_id TEXT PRIMARY KEY,
    recipe   BLOB NOT NULL             -- zstd-compressed export recipe (see recipe.rs)
);
INSERT INTO image_recipes(image_id, recipe) SELECT id, recipe FROM images;
ALTER TABLE images DROP COLUMN recipe;
CREATE TABLE layer_blobs (
    digest  TEXT PRIMARY KEY,
    recipe  BLOB NOT NULL,             -- zstd-compressed recipe of the uncompressed tar
    entries BLOB NOT NULL              -- zstd-compressed JSON list of the layer's entries
);
INSERT INTO layer_blobs(digest, recipe, entries) SELECT digest, recipe, entries FROM layers;
ALTER TABLE layers DROP COLUMN recipe;
ALTER TABLE layers DROP COLUMN entries;
"#,
    // ---- end of version 3 -> 4 ----
];

/// Open (creating and migrating as needed) the index at `path`.
pub fn open(path: &Path) -> Result<Connection> {
    let err = |source| StoreError::Db {
        path: path.to_path_buf(),
        error: source,
    };
    let conn = Connection::open(path).map_err(err)?;
    conn.busy_timeout(Duration::from_secs(600)).map_err(err)?;
    set_wal_mode(&conn).map_err(err)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(err)?;
    conn.pragma_update(None, "foreign_keys", "OFF")
        .map_err(err)?;
    // With the WAL kept between opens (persist_wal), truncate it to nothing whenever it is
    // checkpointed, so the next open finds no frames to recover and re-checkpoint (with
    // three fsyncs) on close.
    conn.pragma_update(None, "journal_size_limit", 0)
        .map_err(err)?;
    persist_wal(&conn);
    migrate(&conn, path)?;
    Ok(conn)
}

/// Switch a new database to WAL (a no-op once it is). The switch needs an exclusive lock, and
/// SQLite answers SQLITE_BUSY at once, without the busy handler, when another process is
/// creating the same new store at that moment: retry for as long as the busy timeout would.
fn set_wal_mode(conn: &Connection) -> rusqlite::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

/// Keep `store.db-wal` and `store.db-shm` when the last connection closes. SQLite otherwise
/// deletes both on every close and creates them again on the next open: two inode
/// allocations and two unlinks for every `rkt` command, a measurable part of a pod start.
/// The WAL is still checkpointed on close, so it stays small.
fn persist_wal(conn: &Connection) {
    let mut on: std::os::raw::c_int = 1;
    // SAFETY: `conn.handle()` is the live sqlite3 handle owned by `conn`, used on this thread
    // only; SQLITE_FCNTL_PERSIST_WAL reads and writes one C int through the pointer, which
    // points at `on` for the duration of the call. "main" is a NUL-terminated C string.
    let rc = unsafe {
        rusqlite::ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            rusqlite::ffi::SQLITE_FCNTL_PERSIST_WAL,
            (&mut on as *mut std::os::raw::c_int).cast(),
        )
    };
    if rc != rusqlite::ffi::SQLITE_OK {
        tracing::debug!(
            rc,
            "SQLITE_FCNTL_PERSIST_WAL refused; the WAL is recreated per open"
        );
    }
}

fn migrate(conn: &Connection, path: &Path) -> Result<()> {
    let err = |source| StoreError::Db {
        path: path.to_path_buf(),
        error: source,
    };
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(err)?;
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    if version > SCHEMA_VERSION {
        return Err(StoreError::Corrupt(format!(
            "{} has schema version {version}, newer than this rkt understands ({SCHEMA_VERSION}); use a newer rkt",
            path.display()
        )));
    }
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate).map_err(err)?;
    // Re-read under the write lock: another process may have migrated meanwhile.
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(err)?;
    for step in MIGRATIONS.iter().skip(version.max(0) as usize) {
        tx.execute_batch(step).map_err(err)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(err)?;
    tx.commit().map_err(err)
}

/// Helper to turn rusqlite errors into [`StoreError::Db`] for one database path.
#[derive(Clone)]
pub struct DbPath(pub PathBuf);

impl DbPath {
    pub fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Db {
            path: self.0.clone(),
            error: source,
        }
    }
}

/// Run `f` in one `BEGIN IMMEDIATE` transaction, committing if it succeeds.
pub fn write_tx<T>(
    conn: &mut Connection,
    db: &DbPath,
    f: impl FnOnce(&Transaction<'_>) -> Result<T>,
) -> Result<T> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db.err())?;
    let value = f(&tx)?;
    tx.commit().map_err(db.err())?;
    Ok(value)
}

/// `SELECT 1 ... LIMIT 1` helper.
pub fn exists(conn: &Connection, sql: &str, param: impl rusqlite::ToSql) -> rusqlite::Result<bool> {
    conn.query_row(sql, [param], |_| Ok(()))
        .optional()
        .map(|o| o.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has_index(conn: &Connection, name: &str) -> bool {
        exists(
            conn,
            "SELECT 1 FROM sqlite_schema WHERE type = 'index' AND name = ?1",
            name,
        )
        .unwrap()
    }

    #[test]
    fn stores_of_version_2_lose_the_unused_entries_index() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = open(&dir.path().join("fresh.db")).unwrap();
        assert!(
            !has_index(&fresh, "entries_by_file"),
            "a new store has none"
        );
        let path = dir.path().join("store.db");
        assert!(has_index(&store_at(&path, 2), "entries_by_file"));
        let conn = open(&path).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        assert!(!has_index(&conn, "entries_by_file"));
        assert!(has_index(&conn, "layers_by_diff_id"), "other indexes stay");
    }

    /// A store at `version`: the migration steps up to it, as an older rkt left it.
    fn store_at(path: &Path, version: usize) -> Connection {
        let conn = Connection::open(path).unwrap();
        for step in &MIGRATIONS[..version] {
            conn.execute_batch(step).unwrap();
        }
        conn.pragma_update(None, "user_version", version as i64)
            .unwrap();
        conn
    }

    #[test]
    fn stores_of_version_3_move_their_blobs_out_of_the_keyed_tables() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let conn = store_at(&path, 3);
        conn.execute_batch(
            "INSERT INTO images(id, name, version, manifest, size, import_time, last_used, latest, recipe)
             VALUES ('sha512-aa', 'example.com/a', NULL, x'7b7d', 1, 2, 3, 1, x'0102');
             INSERT INTO layers(digest, diff_id, size, tar_size, recipe, entries, import_time)
             VALUES ('sha256:bb', 'sha256:cc', 4, 5, x'03', x'04', 6);",
        )
        .unwrap();
        drop(conn);
        let conn = open(&path).unwrap();
        let image: (String, Vec<u8>, i64) = conn
            .query_row(
                "SELECT i.name, r.recipe, i.last_used FROM images i
                 JOIN image_recipes r ON r.image_id = i.id",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(image, ("example.com/a".into(), vec![1, 2], 3));
        let layer: (String, Vec<u8>, Vec<u8>) = conn
            .query_row(
                "SELECT l.diff_id, b.recipe, b.entries FROM layers l
                 JOIN layer_blobs b ON b.digest = l.digest",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(layer, ("sha256:cc".into(), vec![3], vec![4]));
        for (table, column) in [
            ("images", "recipe"),
            ("layers", "recipe"),
            ("layers", "entries"),
        ] {
            let sql = format!("SELECT {column} FROM {table}");
            assert!(conn.prepare(&sql).is_err(), "{table}.{column} is gone");
        }
    }
}
