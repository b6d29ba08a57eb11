//! The second half of an import, on its own thread: cut each file's content into chunks,
//! skip chunks the store (or this import) already has, have the rest compressed (on the
//! threads of [`CompressPool`]) and append them to the import's pack. The parsing thread
//! hashes the tar and the files meanwhile, so an import keeps a small host's cores busy.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use rusqlite::{Connection, OpenFlags};

use crate::chunker::Chunker;
use crate::compress_pool::{CompressPool, Packed};
use crate::error::{Result, StoreError};
use crate::pack::PackWriter;

/// zstd level for chunks of ACI imports: level 1 keeps compression, even spread over the
/// compression workers, from becoming an import's largest cost.
pub const ZSTD_LEVEL: i32 = 1;

/// zstd level for chunks of Docker layers: their blobs come gzip-compressed (about level 6),
/// and the store is meant to be smaller than the unique blobs; level 3 is about 12% smaller
/// than level 1 (and 6% smaller than gzip -6) on system files, and its cost runs on the
/// compression workers alongside the download, inflate and parse.
pub const LAYER_ZSTD_LEVEL: i32 = 3;

/// Messages queued before the parser waits for the chunk writer.
const QUEUE: usize = 64;

/// Where a chunk written by this import lives in its pack.
pub struct NewChunk {
    pub offset: u64,
    pub clen: u64,
    pub len: u64,
    pub zstd: bool,
}

enum Work {
    Data(Vec<u8>),
    EndFile,
}

/// What the chunk writer produced.
pub struct Written {
    pub pack: PackWriter,
    pub new_chunks: HashMap<[u8; 32], NewChunk>,
    /// Chunk ids of every file, in the order the files ended.
    pub files: Vec<Vec<[u8; 32]>>,
}

/// Handle to the chunk-writer thread.
pub struct ChunkWriter {
    tx: Option<SyncSender<Work>>,
    thread: Option<JoinHandle<Result<Written>>>,
}

impl ChunkWriter {
    pub fn start(pack: PackWriter, db_path: PathBuf) -> Result<ChunkWriter> {
        Self::start_with_level(pack, db_path, ZSTD_LEVEL)
    }

    /// [`ChunkWriter::start`] compressing new chunks at zstd `level`.
    pub fn start_with_level(pack: PackWriter, db_path: PathBuf, level: i32) -> Result<ChunkWriter> {
        let (tx, rx) = sync_channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("rkt-chunks".into())
            .spawn(move || run(rx, pack, &db_path, level))
            .map_err(|e| StoreError::io("starting the chunk writer thread", e))?;
        Ok(ChunkWriter {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Queue content bytes of the current file.
    pub fn data(&mut self, bytes: &[u8]) -> Result<()> {
        self.send(Work::Data(bytes.to_vec()))
    }

    /// The current file is complete.
    pub fn end_file(&mut self) -> Result<()> {
        self.send(Work::EndFile)
    }

    fn send(&mut self, work: Work) -> Result<()> {
        let sent = self
            .tx
            .as_ref()
            .map(|tx| tx.send(work).is_ok())
            .unwrap_or(false);
        if sent {
            return Ok(());
        }
        // The writer stopped early: its own error says why.
        match self.join() {
            Err(e) => Err(e),
            Ok(_) => Err(StoreError::Corrupt(
                "the chunk writer stopped unexpectedly".into(),
            )),
        }
    }

    /// Wait for every queued chunk to be written.
    pub fn finish(mut self) -> Result<Written> {
        self.join()
    }

    fn join(&mut self) -> Result<Written> {
        self.tx = None;
        let thread = self
            .thread
            .take()
            .ok_or_else(|| StoreError::Corrupt("the chunk writer already finished".into()))?;
        thread
            .join()
            .map_err(|_| StoreError::Corrupt("the chunk writer thread panicked".into()))?
    }
}

impl Drop for ChunkWriter {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct State {
    conn: Connection,
    db_path: PathBuf,
    pool: CompressPool,
    /// New chunks handed to the pool and not yet in the pack.
    compressing: HashSet<[u8; 32]>,
    written: Written,
}

fn run(
    rx: Receiver<Work>,
    pack: PackWriter,
    db_path: &std::path::Path,
    level: i32,
) -> Result<Written> {
    let db_err = |source| StoreError::Db {
        path: db_path.to_path_buf(),
        error: source,
    };
    let conn =
        Connection::open_with_flags(db_path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(db_err)?;
    conn.busy_timeout(std::time::Duration::from_secs(600))
        .map_err(db_err)?;
    // One read transaction for the whole import: every lookup reads the same snapshot without
    // taking and dropping the WAL read lock per chunk. A chunk that gc removes after the
    // snapshot is caught when the import commits ("vanished during import"); one that another
    // import adds meanwhile is written twice and deduplicated by the commit's ON CONFLICT.
    conn.execute_batch("BEGIN DEFERRED").map_err(db_err)?;
    let mut st = State {
        conn,
        db_path: db_path.to_path_buf(),
        pool: CompressPool::start(level)?,
        compressing: HashSet::new(),
        written: Written {
            pack,
            new_chunks: HashMap::new(),
            files: Vec::new(),
        },
    };
    let mut chunker = Chunker::new();
    let mut chunks = Vec::new();
    for work in rx {
        match work {
            Work::Data(bytes) => chunker.push(&bytes, &mut |c: &[u8]| {
                st.store(c).map(|id| chunks.push(id))
            })?,
            Work::EndFile => {
                chunker.finish(&mut |c: &[u8]| st.store(c).map(|id| chunks.push(id)))?;
                st.written.files.push(std::mem::take(&mut chunks));
            }
        }
    }
    let rest = st.pool.drain()?;
    st.append(rest)?;
    Ok(st.written)
}

impl State {
    fn known(&self, id: &[u8; 32]) -> Result<bool> {
        if self.written.new_chunks.contains_key(id) {
            return Ok(true);
        }
        crate::db::exists(
            &self.conn,
            "SELECT 1 FROM chunks WHERE id = ?1",
            id.as_slice(),
        )
        .map_err(|source| StoreError::Db {
            path: self.db_path.clone(),
            error: source,
        })
    }

    fn store(&mut self, bytes: &[u8]) -> Result<[u8; 32]> {
        let id = *blake3::hash(bytes).as_bytes();
        if self.compressing.contains(&id) || self.known(&id)? {
            return Ok(id);
        }
        self.compressing.insert(id);
        let done = self.pool.submit(id, bytes.to_vec())?;
        self.append(done)?;
        Ok(id)
    }

    /// Append compressed chunks to the pack and remember where they went.
    fn append(&mut self, done: Vec<Packed>) -> Result<()> {
        for p in done {
            let offset = self.written.pack.append(&p.data)?;
            self.compressing.remove(&p.id);
            let chunk = NewChunk {
                offset,
                clen: p.data.len() as u64,
                len: p.len,
                zstd: p.zstd,
            };
            self.written.new_chunks.insert(p.id, chunk);
        }
        Ok(())
    }
}
