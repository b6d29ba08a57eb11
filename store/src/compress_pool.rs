//! zstd compression of new chunks on worker threads. The chunk writer cuts and hashes on its
//! own thread and hands each new chunk here; the workers compress in any order and the writer
//! appends their results to the pack as they come back (a pack records every chunk's offset,
//! so the order inside it does not matter). With compression spread over the host's cores,
//! the chunk writer no longer waits for zstd while the parsing thread has a core to spare.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::error::{Result, StoreError};

/// A chunk ready for its pack: `data` is what goes in the pack (compressed when that made it
/// smaller), `len` the chunk's real length.
pub(crate) struct Packed {
    pub id: [u8; 32],
    pub data: Vec<u8>,
    pub len: u64,
    pub zstd: bool,
}

type Job = ([u8; 32], Vec<u8>);

/// Chunks handed out and not yet collected, at most: bounds the memory of an import (up to
/// this many maximal chunks) and keeps the writer from running far ahead of the workers.
const IN_FLIGHT: usize = 32;

/// Most worker threads, whatever the host has: compression is one of several stages of an
/// import, and each worker holds a zstd context.
const MAX_WORKERS: usize = 4;

pub(crate) struct CompressPool {
    jobs: Option<Sender<Job>>,
    results: Receiver<Result<Packed>>,
    workers: Vec<JoinHandle<()>>,
    in_flight: usize,
}

impl CompressPool {
    /// Start one worker per core (at most [`MAX_WORKERS`]), compressing at zstd `level`.
    pub(crate) fn start(level: i32) -> Result<CompressPool> {
        let n = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, MAX_WORKERS);
        let (jobs, job_rx) = channel::<Job>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (result_tx, results) = channel();
        let mut workers = Vec::with_capacity(n);
        for i in 0..n {
            let compressor = zstd::bulk::Compressor::new(level)
                .map_err(|e| StoreError::io("starting zstd", e))?;
            let (rx, tx) = (job_rx.clone(), result_tx.clone());
            let worker = std::thread::Builder::new()
                .name(format!("rkt-zstd-{i}"))
                .spawn(move || work(compressor, &rx, &tx))
                .map_err(|e| StoreError::io("starting a compression thread", e))?;
            workers.push(worker);
        }
        Ok(CompressPool {
            jobs: Some(jobs),
            results,
            workers,
            in_flight: 0,
        })
    }

    /// Hand a chunk to the workers; returns the chunks finished meanwhile (waiting for one
    /// first when [`IN_FLIGHT`] are out).
    pub(crate) fn submit(&mut self, id: [u8; 32], bytes: Vec<u8>) -> Result<Vec<Packed>> {
        let mut done = Vec::new();
        if self.in_flight >= IN_FLIGHT {
            done.push(self.collect_one()?);
        }
        let sent = self
            .jobs
            .as_ref()
            .is_some_and(|j| j.send((id, bytes)).is_ok());
        if !sent {
            return Err(StoreError::Corrupt(
                "the compression threads stopped unexpectedly".into(),
            ));
        }
        self.in_flight += 1;
        while let Ok(r) = self.results.try_recv() {
            self.in_flight -= 1;
            done.push(r?);
        }
        Ok(done)
    }

    /// Every chunk still out, once compressed.
    pub(crate) fn drain(&mut self) -> Result<Vec<Packed>> {
        let mut done = Vec::with_capacity(self.in_flight);
        while self.in_flight > 0 {
            done.push(self.collect_one()?);
        }
        Ok(done)
    }

    fn collect_one(&mut self) -> Result<Packed> {
        let r = self.results.recv().map_err(|_| {
            StoreError::Corrupt("the compression threads stopped unexpectedly".into())
        })?;
        self.in_flight -= 1;
        r
    }
}

impl Drop for CompressPool {
    fn drop(&mut self) {
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn work(
    mut compressor: zstd::bulk::Compressor<'static>,
    jobs: &Mutex<Receiver<Job>>,
    results: &Sender<Result<Packed>>,
) {
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok((id, bytes)) = job else { return };
        let packed = compressor
            .compress(&bytes)
            .map_err(|e| StoreError::io("compressing a chunk", e))
            .map(|c| {
                let len = bytes.len() as u64;
                if c.len() < bytes.len() {
                    Packed {
                        id,
                        data: c,
                        len,
                        zstd: true,
                    }
                } else {
                    Packed {
                        id,
                        data: bytes,
                        len,
                        zstd: false,
                    }
                }
            });
        if results.send(packed).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chunk_comes_back_once_compressed_when_that_helps() {
        let mut pool = CompressPool::start(1).unwrap();
        let mut got = Vec::new();
        for i in 0..100u8 {
            let bytes = if i % 2 == 0 {
                vec![i; 10_000]
            } else {
                (0..10_000u32)
                    .map(|x| (x.wrapping_mul(2654435761) >> 13) as u8 ^ i)
                    .collect()
            };
            got.extend(pool.submit([i; 32], bytes).unwrap());
        }
        got.extend(pool.drain().unwrap());
        assert_eq!(got.len(), 100);
        got.sort_by_key(|p| p.id);
        for (i, p) in got.iter().enumerate() {
            assert_eq!(p.id, [i as u8; 32]);
            assert_eq!(p.len, 10_000);
            let data = if p.zstd {
                zstd::bulk::decompress(&p.data, 10_000).unwrap()
            } else {
                p.data.clone()
            };
            if i % 2 == 0 {
                assert!(p.zstd, "chunk {i} of one repeated byte must compress");
                assert_eq!(data, vec![i as u8; 10_000]);
            }
            assert_eq!(data.len(), 10_000);
        }
    }
}
