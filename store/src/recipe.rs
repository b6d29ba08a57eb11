//! The export recipe of an image: the archive's non-content bytes, verbatim, interleaved with
//! references to file contents. Replaying it rebuilds the original tar byte for byte.
//!
//! Encoding (then zstd-compressed): a sequence of ops,
//! `0x01 <len: LEB128> <bytes>` (skeleton bytes) or `0x02 <file id: 32 bytes> <len: LEB128>`
//! (a file's whole content).

use crate::entry::FileId;
use crate::error::{Result, StoreError};

const OP_SKELETON: u8 = 1;
const OP_CONTENT: u8 = 2;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op<'a> {
    Skeleton(&'a [u8]),
    Content { file_id: FileId, len: u64 },
}

/// Builds a recipe while an archive streams by. A file's content op is placed when its
/// content starts and filled in once its id is known (its padding follows it). Ops are
/// compressed as soon as everything before them is known, so an archive's headers are never
/// all held in memory at once (a tar of many hard links is almost nothing but headers).
#[derive(Default)]
pub struct RecipeBuilder {
    /// Ops not compressed yet: from the oldest content op whose id is still unknown.
    ops: std::collections::VecDeque<Built>,
    /// The slot number of `ops[0]`.
    first: usize,
    encoder: Option<Encoder>,
    /// Encoding buffer, reused.
    scratch: Vec<u8>,
    failure: Option<std::io::Error>,
}

enum Built {
    Skeleton(Vec<u8>),
    Content {
        file_id: FileId,
        len: u64,
        known: bool,
    },
}

/// Skeleton bytes kept in one op before it is compressed.
const SKELETON_OP_MAX: usize = 64 * 1024;

impl RecipeBuilder {
    pub fn skeleton(&mut self, bytes: &[u8]) {
        match self.ops.back_mut() {
            Some(Built::Skeleton(pending)) if pending.len() < SKELETON_OP_MAX => {
                pending.extend_from_slice(bytes)
            }
            _ => self.ops.push_back(Built::Skeleton(bytes.to_vec())),
        }
        self.compress_known();
    }

    /// Mark where a file's content goes; returns a slot for [`RecipeBuilder::set_content`].
    pub fn begin_content(&mut self) -> usize {
        self.ops.push_back(Built::Content {
            file_id: [0; 32],
            len: 0,
            known: false,
        });
        self.first + self.ops.len() - 1
    }

    pub fn set_content(&mut self, slot: usize, id: FileId, length: u64) {
        let at = slot.checked_sub(self.first);
        if let Some(Built::Content {
            file_id,
            len,
            known,
        }) = at.and_then(|i| self.ops.get_mut(i))
        {
            *file_id = id;
            *len = length;
            *known = true;
        }
        self.compress_known();
    }

    /// Compress the ops at the front that can no longer change: content ops whose id is known
    /// and skeleton runs that something follows (or that are full).
    fn compress_known(&mut self) {
        while let Some(op) = self.ops.front() {
            let done = match op {
                Built::Skeleton(b) => self.ops.len() > 1 || b.len() >= SKELETON_OP_MAX,
                Built::Content { known, .. } => *known,
            };
            if !done {
                return;
            }
            if let Some(op) = self.ops.pop_front() {
                self.first += 1;
                self.encode(&op);
            }
        }
    }

    fn encode(&mut self, op: &Built) {
        self.scratch.clear();
        match op {
            Built::Skeleton(bytes) => {
                self.scratch.push(OP_SKELETON);
                put_varint(&mut self.scratch, bytes.len() as u64);
            }
            Built::Content { file_id, len, .. } => {
                self.scratch.push(OP_CONTENT);
                self.scratch.extend_from_slice(file_id);
                put_varint(&mut self.scratch, *len);
            }
        }
        if self.failure.is_some() {
            return;
        }
        let body = match op {
            Built::Skeleton(bytes) => bytes.as_slice(),
            Built::Content { .. } => &[],
        };
        if let Err(e) = write_op(&mut self.encoder, &self.scratch, body) {
            self.failure = Some(e);
        }
    }

    /// The compressed recipe.
    pub fn finish(mut self) -> Result<Vec<u8>> {
        while let Some(op) = self.ops.pop_front() {
            self.encode(&op);
        }
        let failed = |e| StoreError::io("compressing the image recipe", e);
        if let Some(e) = self.failure.take() {
            return Err(failed(e));
        }
        let encoder = match self.encoder.take() {
            Some(enc) => enc,
            None => new_encoder().map_err(failed)?,
        };
        encoder.finish().map_err(failed)
    }
}

type Encoder = zstd::stream::write::Encoder<'static, Vec<u8>>;

fn new_encoder() -> std::io::Result<Encoder> {
    Encoder::new(Vec::new(), 3)
}

fn write_op(encoder: &mut Option<Encoder>, head: &[u8], body: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let enc = match encoder {
        Some(enc) => enc,
        None => encoder.insert(new_encoder()?),
    };
    enc.write_all(head)?;
    enc.write_all(body)
}

/// A decoded recipe.
pub struct Recipe {
    ops: Vec<u8>,
}

impl Recipe {
    pub fn decode(compressed: &[u8]) -> Result<Recipe> {
        let ops = zstd::stream::decode_all(compressed)
            .map_err(|e| StoreError::Corrupt(format!("image recipe does not decompress: {e}")))?;
        Ok(Recipe { ops })
    }

    /// Iterate over the ops; a malformed recipe yields a `Corrupt` error.
    pub fn ops(&self) -> impl Iterator<Item = Result<Op<'_>>> {
        let mut at = 0usize;
        let ops = &self.ops;
        std::iter::from_fn(move || {
            if at >= ops.len() {
                return None;
            }
            Some(next_op(ops, &mut at))
        })
    }
}

fn corrupt() -> StoreError {
    StoreError::Corrupt("image recipe is malformed".into())
}

fn next_op<'a>(ops: &'a [u8], at: &mut usize) -> Result<Op<'a>> {
    let tag = ops[*at];
    *at += 1;
    match tag {
        OP_SKELETON => {
            let len = usize::try_from(get_varint(ops, at)?).map_err(|_| corrupt())?;
            let end = at
                .checked_add(len)
                .filter(|&e| e <= ops.len())
                .ok_or_else(corrupt)?;
            let bytes = &ops[*at..end];
            *at = end;
            Ok(Op::Skeleton(bytes))
        }
        OP_CONTENT => {
            let end = at
                .checked_add(32)
                .filter(|&e| e <= ops.len())
                .ok_or_else(corrupt)?;
            let mut file_id = [0u8; 32];
            file_id.copy_from_slice(&ops[*at..end]);
            *at = end;
            let len = get_varint(ops, at)?;
            Ok(Op::Content { file_id, len })
        }
        _ => Err(corrupt()),
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn get_varint(buf: &[u8], at: &mut usize) -> Result<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*at).ok_or_else(corrupt)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(corrupt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut b = RecipeBuilder::default();
        b.skeleton(b"head");
        b.skeleton(b"er");
        let slot = b.begin_content();
        b.skeleton(&[0; 1000]);
        b.set_content(slot, [7; 32], 300);
        let slot = b.begin_content();
        b.set_content(slot, [8; 32], 0);
        let r = Recipe::decode(&b.finish().unwrap()).unwrap();
        let ops: Vec<_> = r.ops().collect::<Result<_>>().unwrap();
        assert_eq!(
            ops,
            vec![
                Op::Skeleton(b"header"),
                Op::Content {
                    file_id: [7; 32],
                    len: 300
                },
                Op::Skeleton(&[0; 1000]),
                Op::Content {
                    file_id: [8; 32],
                    len: 0
                },
            ]
        );
    }

    /// A run of skeleton bytes and the content op that ends it, if any.
    type Run = (Vec<u8>, Option<(FileId, u64)>);

    /// Skeleton runs merged and content ops, whatever the op boundaries.
    fn flatten(ops: &[Op<'_>]) -> Vec<Run> {
        let mut out: Vec<Run> = vec![(Vec::new(), None)];
        for op in ops {
            match op {
                Op::Skeleton(b) => match out.last_mut() {
                    Some((run, None)) => run.extend_from_slice(b),
                    _ => out.push((b.to_vec(), None)),
                },
                Op::Content { file_id, len } => {
                    if let Some(last) = out.last_mut().filter(|l| l.1.is_none()) {
                        last.1 = Some((*file_id, *len));
                    } else {
                        out.push((Vec::new(), Some((*file_id, *len))));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn headers_are_compressed_as_they_come() {
        // A tar of 20,000 hard links: 10 MB of headers and no content.
        let mut b = RecipeBuilder::default();
        let mut want = Vec::new();
        for i in 0..20_000u32 {
            let header: Vec<u8> = (0..512).map(|k| (i as u8) ^ (k as u8)).collect();
            b.skeleton(&header);
            want.extend_from_slice(&header);
            let held: usize = b
                .ops
                .iter()
                .map(|op| match op {
                    Built::Skeleton(s) => s.len(),
                    Built::Content { .. } => 32,
                })
                .sum();
            assert!(
                held <= SKELETON_OP_MAX + 512,
                "{held} bytes held after {i} headers"
            );
        }
        let r = Recipe::decode(&b.finish().unwrap()).unwrap();
        let ops: Vec<_> = r.ops().collect::<Result<_>>().unwrap();
        assert_eq!(flatten(&ops), vec![(want, None)]);
    }

    #[test]
    fn ops_wait_for_an_unknown_content_id() {
        let mut b = RecipeBuilder::default();
        let mut want = Vec::new();
        b.skeleton(b"h1");
        let first = b.begin_content();
        // Everything after the first file waits for its id, in order.
        for i in 0..200u8 {
            b.skeleton(&[i; 1000]);
            let slot = b.begin_content();
            b.set_content(slot, [i; 32], u64::from(i));
        }
        assert!(
            b.ops.len() > 200,
            "nothing after an unknown id is compressed"
        );
        b.set_content(first, [255; 32], 7);
        assert!(
            b.ops.len() <= 1,
            "{} ops held once every id is known",
            b.ops.len()
        );
        want.push((b"h1".to_vec(), Some(([255; 32], 7))));
        for i in 0..200u8 {
            want.push((vec![i; 1000], Some(([i; 32], u64::from(i)))));
        }
        let r = Recipe::decode(&b.finish().unwrap()).unwrap();
        let ops: Vec<_> = r.ops().collect::<Result<_>>().unwrap();
        assert_eq!(flatten(&ops), want);
    }

    #[test]
    fn malformed_recipes_are_errors() {
        for raw in [vec![9u8], vec![1, 0x80], vec![1, 5, 1], vec![2, 1, 2]] {
            let c = zstd::bulk::compress(&raw, 1).unwrap();
            let r = Recipe::decode(&c).unwrap();
            assert!(r.ops().any(|o| o.is_err()), "{raw:?} should be malformed");
        }
        assert!(Recipe::decode(b"not zstd").is_err());
    }
}
