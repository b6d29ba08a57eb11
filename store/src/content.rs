//! Reading file contents back from packs, with every chunk checked against its hash:
//! export (the exact tar), verification, and the content source for rendering.

use std::collections::HashMap;
use std::io::Write;

use rusqlite::Connection;

use crate::entry::FileId;
use crate::error::{IoContext, Result, StoreError};
use crate::pack::PackReader;
use crate::recipe::Op;
use crate::render::{ContentSource, RenderError};
use crate::Store;

/// Where one chunk of a file lives.
struct ChunkLoc {
    id: [u8; 32],
    pack: String,
    offset: u64,
    clen: usize,
    len: usize,
    zstd: bool,
}

/// Reads and checks file contents.
pub(crate) struct Reader<'a> {
    conn: &'a Connection,
    packs: &'a PackReader,
    /// Tell the kernel to drop the pack pages a chunk was read from, once used.
    drop_pack_pages: bool,
    /// Check each file's own hash besides its chunks'.
    check_files: bool,
    /// One zstd context for every chunk (made on first use): a new one per chunk costs more
    /// than decompressing a small chunk.
    unzstd: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(store: &'a Store) -> Self {
        Reader {
            conn: &store.conn,
            packs: &store.packs,
            drop_pack_pages: false,
            check_files: true,
            unzstd: Default::default(),
        }
    }

    /// A reader that checks every chunk but leaves the whole-file hash to its consumer (the
    /// import of a squashed image, which checks each file against the content it expects).
    pub(crate) fn checking_chunks_only(store: &'a Store) -> Self {
        Reader {
            check_files: false,
            ..Reader::new(store)
        }
    }

    /// For materialising objects: the file's bytes will live on in the object's own page
    /// cache, so the pack pages they came from only double the memory a pod's start costs.
    pub(crate) fn dropping_pack_pages(mut self) -> Self {
        self.drop_pack_pages = true;
        self
    }

    fn chunks(&self, file: &FileId) -> Result<Vec<ChunkLoc>> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT c.id, p.name, c.offset, c.clen, c.len, c.zstd FROM file_chunks f
                 JOIN chunks c ON c.id = f.chunk_id JOIN packs p ON p.id = c.pack_id
                 WHERE f.file_id = ?1 ORDER BY f.seq",
            )
            .map_err(|e| StoreError::Corrupt(format!("index query: {e}")))?;
        let rows = st
            .query_map([file.as_slice()], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, bool>(5)?,
                ))
            })
            .map_err(|e| StoreError::Corrupt(format!("index query: {e}")))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, pack, offset, clen, len, zstd) =
                row.map_err(|e| StoreError::Corrupt(format!("index query: {e}")))?;
            let id = <[u8; 32]>::try_from(id.as_slice())
                .map_err(|_| StoreError::Corrupt("chunk id is not 32 bytes".into()))?;
            out.push(ChunkLoc {
                id,
                pack,
                offset: offset as u64,
                clen: clen as usize,
                len: len as usize,
                zstd,
            });
        }
        Ok(out)
    }

    /// Write a file's whole content, checking every chunk and the file's own hash.
    pub(crate) fn write_file(
        &self,
        file: &FileId,
        expect_len: Option<u64>,
        out: &mut dyn Write,
    ) -> Result<u64> {
        let chunks = self.chunks(file)?;
        if chunks.is_empty() && file != blake3::hash(b"").as_bytes() {
            let known = crate::db::exists(
                self.conn,
                "SELECT 1 FROM files WHERE id = ?1",
                file.as_slice(),
            )
            .map_err(|e| StoreError::Corrupt(format!("index query: {e}")))?;
            if !known {
                return Err(StoreError::Corrupt(format!(
                    "content {} is missing from the index",
                    hex::encode(file)
                )));
            }
        }
        let total: u64 = chunks.iter().map(|c| c.len as u64).sum();
        let mut sink = Sink {
            hasher: self.check_files.then(blake3::Hasher::new),
            out,
            n: 0,
        };
        if total >= PIPELINE_MIN_BYTES {
            self.pipelined(&chunks, &mut sink)?;
        } else {
            read_chunks(
                self.packs,
                &mut self.unzstd.borrow_mut(),
                self.drop_pack_pages,
                &chunks,
                |data| sink.take(&data?),
            )?;
        }
        let n = sink.n;
        let hash_ok = sink.hasher.is_none_or(|h| h.finalize().as_bytes() == file);
        if !hash_ok || expect_len.is_some_and(|l| l != n) {
            return Err(StoreError::Corrupt(format!(
                "content {} does not match its hash",
                hex::encode(file)
            )));
        }
        Ok(n)
    }
}

impl Reader<'_> {
    /// Feed `chunks` to `sink` with the reading on a second thread: it reads, decompresses and
    /// checks each chunk while this one hashes the whole file and writes it, so a big file (an
    /// object a pod opens, a file of an export) comes out at about the speed of the slower
    /// half instead of the sum of both.
    fn pipelined(&self, chunks: &[ChunkLoc], sink: &mut Sink<'_>) -> Result<()> {
        let (packs, drop_pages) = (self.packs, self.drop_pack_pages);
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<u8>>>(PIPELINE_DEPTH);
            scope.spawn(move || {
                read_chunks(packs, &mut None, drop_pages, chunks, |data| {
                    let failed = data.is_err();
                    // A closed channel: the writer failed and stopped listening.
                    if tx.send(data).is_err() || failed {
                        Err(())
                    } else {
                        Ok(())
                    }
                })
            });
            // Returning drops `rx`, which ends the reader at its next chunk.
            rx.iter().try_for_each(|data| sink.take(&data?))
        })
    }
}

/// Files of at least this many bytes are read on two threads ([`Reader::pipelined`]).
const PIPELINE_MIN_BYTES: u64 = 8 << 20;
/// Chunks read ahead of the writer.
const PIPELINE_DEPTH: usize = 8;

/// Where a file's checked chunks go: its whole-file hash (unless the caller checks it) and out.
struct Sink<'o> {
    hasher: Option<blake3::Hasher>,
    out: &'o mut dyn Write,
    n: u64,
}

impl Sink<'_> {
    fn take(&mut self, data: &[u8]) -> Result<()> {
        if let Some(h) = &mut self.hasher {
            h.update(data);
        }
        self.n += data.len() as u64;
        self.out
            .write_all(data)
            .ctx(|| "writing file content".to_string())
    }
}

/// Hand each of `chunks`, read and checked ([`read_chunk`]), to `deliver` in order, dropping
/// the pack pages read if `drop_pages`; stops at `deliver`'s first error.
fn read_chunks<E>(
    packs: &PackReader,
    unzstd: &mut Option<zstd::bulk::Decompressor<'static>>,
    drop_pages: bool,
    chunks: &[ChunkLoc],
    mut deliver: impl FnMut(Result<Vec<u8>>) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let mut dropper = drop_pages.then(|| PackPageDropper::new(packs));
    for c in chunks {
        let data = read_chunk(packs, unzstd, c);
        if let (Ok(_), Some(d)) = (&data, &mut dropper) {
            d.used(&c.pack, c.offset, c.clen as u64);
        }
        deliver(data)?;
    }
    Ok(())
}

/// One chunk's bytes from its pack, decompressed with `unzstd` (made on first use) and
/// checked against its BLAKE3 id.
fn read_chunk(
    packs: &PackReader,
    unzstd: &mut Option<zstd::bulk::Decompressor<'static>>,
    c: &ChunkLoc,
) -> Result<Vec<u8>> {
    let raw = packs.read(&c.pack, c.offset, c.clen)?;
    let data = if c.zstd {
        let d = match unzstd {
            Some(d) => d,
            None => unzstd.insert(
                zstd::bulk::Decompressor::new()
                    .map_err(|e| StoreError::io("making a zstd decompressor".to_string(), e))?,
            ),
        };
        d.decompress(&raw, c.len).map_err(|e| {
            StoreError::Corrupt(format!(
                "chunk {} in pack {} does not decompress: {e}",
                hex::encode(c.id),
                c.pack
            ))
        })?
    } else {
        raw
    };
    if data.len() != c.len || blake3::hash(&data).as_bytes() != &c.id {
        return Err(StoreError::Corrupt(format!(
            "chunk {} in pack {} at offset {} does not match its hash",
            hex::encode(c.id),
            c.pack,
            c.offset
        )));
    }
    Ok(data)
}

/// Large folios: the page cache may hold a pack in folios of up to 2 MiB, and the kernel only
/// drops a folio that an advised range covers whole.
const DROP_ALIGN: u64 = 2 << 20;

/// Drops the pack pages a file's chunks were read from, in spans aligned outward to
/// [`DROP_ALIGN`] (a chunk-sized range would leave every large folio it only partly covers).
/// Pages of neighbouring data dropped with them are only cache.
struct PackPageDropper<'a> {
    packs: &'a PackReader,
    /// (pack, start, end) of the chunks used and not dropped yet.
    span: Option<(String, u64, u64)>,
}

impl<'a> PackPageDropper<'a> {
    fn new(packs: &'a PackReader) -> Self {
        PackPageDropper { packs, span: None }
    }

    /// `len` bytes at `offset` of `pack` were read and are not needed again.
    fn used(&mut self, pack: &str, offset: u64, len: u64) {
        let end = offset.saturating_add(len);
        match &mut self.span {
            Some((p, s, e))
                if p == pack && offset >= *s && offset <= e.saturating_add(DROP_ALIGN) =>
            {
                *e = (*e).max(end);
            }
            _ => {
                self.flush();
                self.span = Some((pack.to_string(), offset, end));
            }
        }
        // Drop whole aligned spans as they complete, so a large file never keeps its pack
        // pages cached until the end.
        if let Some((p, s, e)) = &mut self.span {
            let cut = *e / DROP_ALIGN * DROP_ALIGN;
            let from = *s / DROP_ALIGN * DROP_ALIGN;
            if cut >= from + 4 * DROP_ALIGN {
                self.packs.drop_pages(p, from, cut - from);
                *s = cut;
            }
        }
    }

    fn flush(&mut self) {
        if let Some((p, s, e)) = self.span.take() {
            let from = s / DROP_ALIGN * DROP_ALIGN;
            let to = e.div_ceil(DROP_ALIGN).saturating_mul(DROP_ALIGN);
            self.packs.drop_pages(&p, from, to - from);
        }
    }
}

impl Drop for PackPageDropper<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

impl ContentSource for Reader<'_> {
    fn write_content(
        &self,
        file_id: &FileId,
        out: &mut dyn Write,
    ) -> std::result::Result<u64, RenderError> {
        self.write_file(file_id, None, out)
            .map_err(|e| RenderError::Source(e.to_string()))
    }
}

/// A problem `verify` found, named by path.
#[derive(Debug, Clone)]
pub struct VerifyProblem {
    /// `rootfs/...` path (or `manifest`, or the whole image).
    pub path: String,
    pub detail: String,
}

#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    pub files: u64,
    pub bytes: u64,
    pub problems: Vec<VerifyProblem>,
}

/// Sink that discards bytes.
struct Discard;
impl Write for Discard {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writer that hashes what passes through.
struct HashWriter<'a> {
    inner: &'a mut dyn Write,
    hasher: crate::imageid::ImageHasher,
    bytes: u64,
}
impl Write for HashWriter<'_> {
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

impl Store {
    /// Write image `id`'s tar exactly as it was imported; fails (without claiming success) if a
    /// byte does not match.
    pub fn export(&mut self, id: &str, out: &mut dyn Write) -> Result<u64> {
        let recipe = self.recipe(id)?;
        let reader = Reader::new(self);
        let mut w = HashWriter {
            inner: out,
            hasher: Default::default(),
            bytes: 0,
        };
        for op in recipe.ops() {
            match op? {
                Op::Skeleton(b) => w.write_all(b).ctx(|| format!("exporting {id}"))?,
                Op::Content { file_id, len } => {
                    reader.write_file(&file_id, Some(len), &mut w)?;
                }
            }
        }
        let got = w.hasher.finish();
        if got != id {
            return Err(StoreError::Corrupt(format!(
                "export of {id} produced {got}"
            )));
        }
        let bytes = w.bytes;
        self.touch(id)?;
        Ok(bytes)
    }

    /// Re-hash every chunk and file of an image, and the rebuilt archive as a whole; report
    /// damage by path.
    pub fn verify(&self, id: &str) -> Result<VerifyReport> {
        let recipe = self.recipe(id)?;
        let paths = self.paths_by_file(id)?;
        let reader = Reader::new(self);
        let mut report = VerifyReport::default();
        let mut image = HashWriter {
            inner: &mut Discard,
            hasher: Default::default(),
            bytes: 0,
        };
        for op in recipe.ops() {
            match op? {
                Op::Skeleton(b) => image.hasher.update(b),
                Op::Content { file_id, len } => {
                    report.files += 1;
                    match reader.write_file(&file_id, Some(len), &mut image) {
                        Ok(n) => report.bytes += n,
                        Err(e) => report.problems.push(VerifyProblem {
                            path: paths
                                .get(&file_id)
                                .map(|p| p.join(", "))
                                .unwrap_or_else(|| "manifest".into()),
                            detail: e.to_string(),
                        }),
                    }
                }
            }
        }
        let got = image.hasher.finish();
        if report.problems.is_empty() && got != id {
            report.problems.push(VerifyProblem {
                path: "(archive)".into(),
                detail: format!("the rebuilt archive hashes to {got}"),
            });
        }
        Ok(report)
    }

    fn paths_by_file(&self, id: &str) -> Result<HashMap<FileId, Vec<String>>> {
        let mut map: HashMap<FileId, Vec<String>> = HashMap::new();
        for e in self.entries(id)? {
            if let Some(f) = e.file_id {
                map.entry(f).or_default().push(format!("rootfs/{}", e.path));
            }
        }
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes `room` bytes, then fails.
    struct Full {
        room: usize,
    }

    impl Write for Full {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.room == 0 {
                return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            Ok(n)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_failing_writer_stops_both_threads_with_its_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let body: Vec<u8> = (0..(12u32 << 20))
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let aci = crate::docker::tarwrite::test_aci("example.com/c", &[("f".into(), body.clone())]);
        let id = store.import(aci.as_slice(), "test").unwrap().id;
        let file = store.entry(&id, "f").unwrap().unwrap().file_id.unwrap();
        let reader = Reader::new(&store);
        let mut all = Vec::new();
        assert_eq!(
            reader.write_file(&file, None, &mut all).unwrap(),
            body.len() as u64
        );
        assert!(all == body, "the content differs");
        let err = reader
            .write_file(&file, None, &mut Full { room: 3 << 20 })
            .unwrap_err()
            .to_string();
        assert!(err.contains("writing file content"), "{err}");
    }
}
