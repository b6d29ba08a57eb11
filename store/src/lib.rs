//! rkt's image store: appc schema types, a content-defined chunk store indexed in SQLite,
//! exact ACI import and export, rendering, verification and garbage collection.
//!
//! Layout under the store directory (`rkt --dir`, default `/var/lib/rkt`):
//! `store.db` (SQLite, WAL), `packs/` (append-only zstd chunk packs), `locks/`, `tmp/`,
//! `objects/` (whole files materialised for pods), `trees/` (rendered trees).
//! See docs/store-format.md for the on-disk format.

mod aci;
mod chunker;
mod chunkwriter;
mod compress_pool;
mod content;
pub mod db;
pub mod decompress;
pub mod docker;
pub mod entry;
pub mod error;
mod gc;
mod imageid;
mod images;
mod import;
mod lock;
pub mod objects;
mod pack;
mod recipe;
mod remotes;
pub mod render;
pub mod schema;
pub mod tarstream;
mod tree;
mod treelinks;
mod view;

use std::path::{Path, PathBuf};

use rusqlite::Connection;

pub use content::{VerifyProblem, VerifyReport};
pub use entry::{Entry, EntryKind, FileId};
pub use error::{Result, StoreError};
pub use gc::GcReport;
pub use images::{ChunkRef, ImageInfo, ImageRef};
pub use import::ImportOutcome;
pub use objects::{ObjectHandle, ObjectsReport, StoreConfig};
pub use remotes::Remote;
pub use treelinks::LinkStats;

use error::IoContext;

/// An open image store.
pub struct Store {
    dir: PathBuf,
    db: db::DbPath,
    conn: Connection,
    packs: pack::PackReader,
    /// Objects handed out before they were durable ([`Store::open_object`]).
    publishing: objects::Publishing,
}

impl Drop for Store {
    /// Objects handed out by [`Store::open_object`] are in place before the store goes.
    fn drop(&mut self) {
        self.publishing.wait();
    }
}

impl Store {
    /// Open the store in `dir`, creating it if needed.
    pub fn open(dir: &Path) -> Result<Store> {
        for sub in ["", "packs", "locks", "tmp"] {
            let p = dir.join(sub);
            std::fs::create_dir_all(&p)
                .ctx(|| format!("creating store directory {}", p.display()))?;
        }
        let db_path = dir.join("store.db");
        let conn = db::open(&db_path)?;
        Ok(Store {
            dir: dir.to_path_buf(),
            db: db::DbPath(db_path),
            conn,
            packs: pack::PackReader::new(dir.join("packs")),
            publishing: Default::default(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// For a store kept open as long as a pod runs (its lazy rootfs server): a small SQLite page
    /// cache, emptied now. Loading an image's merged view fills the default 2 MiB one, which
    /// the server's later lookups (a file's chunk list when it is first opened) do not need.
    pub fn keep_memory_small(&self) -> Result<()> {
        self.conn
            .pragma_update(None, "cache_size", -256)
            .and_then(|()| self.conn.execute_batch("PRAGMA shrink_memory"))
            .map_err(self.db.err())
    }

    /// Scratch space on the store's filesystem; `rkt image gc` empties it (under its
    /// exclusive lock, so never while an import or pull holds the shared one).
    pub fn tmp_dir(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    fn packs_dir(&self) -> PathBuf {
        self.dir.join("packs")
    }

    /// Lock shared by every writer of new data, exclusive for gc's sweep.
    fn gc_lock_path(&self) -> PathBuf {
        self.dir.join("locks").join("gc.lock")
    }
}
