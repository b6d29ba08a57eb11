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
/// content starts and filled in once its id is known (its padding follows it).
#[derive(Default)]
pub struct RecipeBuilder {
    ops: Vec<Built>,
}

enum Built {
    Skeleton(Vec<u8>),
    Content { file_id: FileId, len: u64 },
}

impl RecipeBuilder {
    pub fn skeleton(&mut self, bytes: &[u8]) {
        match self.ops.last_mut() {
            Some(Built::Skeleton(pending)) => pending.extend_from_slice(bytes),
            _ => self.ops.push(Built::Skeleton(bytes.to_vec())),
        }
    }

    /// Mark where a file's content goes; returns a slot for [`RecipeBuilder::set_content`].
    pub fn begin_content(&mut self) -> usize {
        self.ops.push(Built::Content {
            file_id: [0; 32],
            len: 0,
        });
        self.ops.len() - 1
    }

    pub fn set_content(&mut self, slot: usize, id: FileId, length: u64) {
        if let Some(Built::Content { file_id, len }) = self.ops.get_mut(slot) {
            *file_id = id;
            *len = length;
        }
    }

    /// The compressed recipe.
    pub fn finish(self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        for op in &self.ops {
            match op {
                Built::Skeleton(bytes) => {
                    out.push(OP_SKELETON);
                    put_varint(&mut out, bytes.len() as u64);
                    out.extend_from_slice(bytes);
                }
                Built::Content { file_id, len } => {
                    out.push(OP_CONTENT);
                    out.extend_from_slice(file_id);
                    put_varint(&mut out, *len);
                }
            }
        }
        zstd::bulk::compress(&out, 3).map_err(|e| StoreError::io("compressing the image recipe", e))
    }
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
