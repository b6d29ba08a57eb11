//! Content-defined chunking of one file's bytes (FastCDC 2020, 16/64/256 KiB), streaming:
//! cut points depend only on content, so the same bytes always give the same chunks,
//! whatever the buffer sizes they arrive in.

use fastcdc::v2020::FastCDC;

pub const MIN_CHUNK: u32 = 16 * 1024;
pub const AVG_CHUNK: u32 = 64 * 1024;
pub const MAX_CHUNK: u32 = 256 * 1024;

/// Bytes buffered before cutting; several maximal chunks so that each pass cuts many.
const CUT_BATCH: usize = 4 * MAX_CHUNK as usize;

/// Streams a file's bytes and emits chunks.
#[derive(Default)]
pub struct Chunker {
    buf: Vec<u8>,
}

impl Chunker {
    pub fn new() -> Self {
        Chunker {
            buf: Vec::with_capacity(CUT_BATCH + MAX_CHUNK as usize),
        }
    }

    /// Add bytes; `emit` is called for every chunk whose end is certain.
    pub fn push<E>(
        &mut self,
        mut bytes: &[u8],
        emit: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        while !bytes.is_empty() {
            let room = (CUT_BATCH + MAX_CHUNK as usize).saturating_sub(self.buf.len());
            let take = room.min(bytes.len());
            self.buf.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.buf.len() >= CUT_BATCH + MAX_CHUNK as usize {
                self.cut(false, emit)?;
            }
        }
        Ok(())
    }

    /// The file is complete: emit what is left.
    pub fn finish<E>(&mut self, emit: &mut impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        self.cut(true, emit)
    }

    /// Cut chunks from the buffer. Unless `last`, keep at least one maximal chunk's worth of
    /// bytes, since a cut point near the end could move once more bytes arrive.
    fn cut<E>(
        &mut self,
        last: bool,
        emit: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let len = self.buf.len();
        let keep = if last { 0 } else { MAX_CHUNK as usize };
        let mut start = 0;
        if len > 0 {
            let cdc = FastCDC::new(&self.buf, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK);
            while start < len && len - start > keep {
                let (_, end) = cdc.cut(start, len - start);
                emit(&self.buf[start..end])?;
                start = end;
            }
        }
        self.buf.drain(..start);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks_of(data: &[u8], piece: usize) -> Vec<Vec<u8>> {
        let mut c = Chunker::new();
        let mut out = Vec::new();
        let mut emit = |b: &[u8]| -> Result<(), ()> {
            out.push(b.to_vec());
            Ok(())
        };
        for p in data.chunks(piece.max(1)) {
            c.push(p, &mut emit).unwrap();
        }
        c.finish(&mut emit).unwrap();
        out
    }

    fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn cuts_do_not_depend_on_how_bytes_arrive() {
        let data = pseudo_random(5_000_000, 7);
        let a = chunks_of(&data, 4096);
        let b = chunks_of(&data, 1_000_003);
        let c = chunks_of(&data, data.len());
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(a.concat(), data);
        assert!(a.len() > 20, "expected many chunks, got {}", a.len());
        assert!(a.iter().all(|c| c.len() <= MAX_CHUNK as usize));
    }

    #[test]
    fn an_insertion_only_changes_nearby_chunks() {
        let data = pseudo_random(3_000_000, 9);
        let mut edited = data.clone();
        edited.splice(1_500_000..1_500_000, b"inserted bytes".iter().copied());
        let a = chunks_of(&data, 65536);
        let b = chunks_of(&edited, 65536);
        let common = a.iter().filter(|c| b.contains(c)).count();
        assert!(
            common + 3 >= a.len(),
            "only {common} of {} chunks shared",
            a.len()
        );
    }

    #[test]
    fn small_and_empty_files() {
        assert!(chunks_of(b"", 10).is_empty());
        assert_eq!(chunks_of(b"hello", 2), vec![b"hello".to_vec()]);
    }
}
