//! Image IDs: `sha512-` + the hex SHA-512 of the uncompressed tar (appc).
//!
//! SHA-512 is the costliest step of an import. OpenSSL's AVX2 assembly runs about 1.7 times
//! faster here than the portable Rust implementations (sha2's AVX2 path, ring's, which has no
//! vectorised SHA-512), so the image ID is computed with libcrypto.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use openssl::sha::Sha512;

/// Bytes handed to the hashing thread at a time.
const BLOCK: usize = 1 << 20;
/// Blocks queued for the hashing thread (each one a buffer that is then reused).
const QUEUE: usize = 4;

/// Incremental image-ID hasher. The hash runs on a thread of its own: it is a sequential
/// pass over every byte of the tar, and the thread that reads the archive also parses it and
/// hashes each file, so the two would otherwise add up. If no thread can be started, the
/// caller's thread hashes.
pub struct ImageHasher(Inner);

enum Inner {
    Here(Sha512),
    Threaded(Threaded),
}

struct Threaded {
    buf: Vec<u8>,
    full: Option<SyncSender<Vec<u8>>>,
    empty: Receiver<Vec<u8>>,
    thread: Option<JoinHandle<[u8; 64]>>,
}

impl Default for ImageHasher {
    fn default() -> Self {
        let (full, full_rx) = sync_channel::<Vec<u8>>(QUEUE);
        let (empty_tx, empty) = sync_channel::<Vec<u8>>(QUEUE + 2);
        let spawned = std::thread::Builder::new()
            .name("rkt-sha512".into())
            .spawn(move || {
                let mut h = Sha512::new();
                for mut block in full_rx {
                    h.update(&block);
                    block.clear();
                    // The owner may be gone or have enough buffers: then the block is freed.
                    let _ = empty_tx.try_send(block);
                }
                h.finish()
            });
        match spawned {
            Ok(thread) => ImageHasher(Inner::Threaded(Threaded {
                buf: Vec::with_capacity(BLOCK),
                full: Some(full),
                empty,
                thread: Some(thread),
            })),
            Err(e) => {
                tracing::debug!("hashing on the caller's thread: cannot start one: {e}");
                ImageHasher(Inner::Here(Sha512::new()))
            }
        }
    }
}

impl ImageHasher {
    pub fn update(&mut self, mut bytes: &[u8]) {
        let t = match &mut self.0 {
            Inner::Here(h) => return h.update(bytes),
            Inner::Threaded(t) => t,
        };
        while !bytes.is_empty() {
            let n = (BLOCK - t.buf.len()).min(bytes.len());
            t.buf.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if t.buf.len() == BLOCK {
                t.send();
            }
        }
    }

    /// `sha512-` followed by 128 lowercase hex digits.
    pub fn finish(self) -> String {
        let digest = match self.0 {
            Inner::Here(h) => h.finish(),
            Inner::Threaded(mut t) => t.finish(),
        };
        format!("sha512-{}", hex::encode(digest))
    }
}

impl Threaded {
    fn send(&mut self) {
        let next = self
            .empty
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(BLOCK));
        let block = std::mem::replace(&mut self.buf, next);
        if let Some(full) = &self.full {
            if full.send(block).is_err() {
                // Only a panic ends the thread early; finish() reports it.
                self.full = None;
            }
        }
    }

    fn finish(&mut self) -> [u8; 64] {
        if !self.buf.is_empty() {
            self.send();
        }
        self.full = None;
        let Some(thread) = self.thread.take() else {
            unreachable!("finish consumes the hasher, so it runs once");
        };
        // SHA-512 over byte slices cannot fail: a panic there is a bug, passed on as it was.
        thread
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

impl Drop for Threaded {
    fn drop(&mut self) {
        self.full = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_known_sha512() {
        let mut h = ImageHasher::default();
        h.update(b"ab");
        h.update(b"c");
        assert_eq!(
            h.finish(),
            "sha512-ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
    }

    #[test]
    fn blocks_across_the_thread_hash_like_one_pass() {
        use sha2::Digest;
        let data: Vec<u8> = (0..3 * BLOCK as u32 + 12345)
            .map(|i| (i.wrapping_mul(2654435761) >> 7) as u8)
            .collect();
        let mut h = ImageHasher::default();
        for piece in data.chunks(777_777) {
            h.update(piece);
        }
        let want = format!("sha512-{}", hex::encode(sha2::Sha512::digest(&data)));
        assert_eq!(h.finish(), want);
        let dropped = ImageHasher::default();
        drop(dropped);
    }
}
