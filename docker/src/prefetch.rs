//! Downloading a pull's later layers while the first ones are imported. Imports stay one
//! after the other, base first (so content shared by two layers is stored once), but on a
//! real network a layer's download takes as long as its import or longer: the later blobs are
//! fetched meanwhile, over their own connections, into spool files in the store's `tmp/`
//! (removed when imported, when the pull fails, and by `rkt image gc` after a crash), and
//! imported from there. Downloads run at most [`AHEAD`] layers ahead of the one importing.

use std::collections::HashMap;
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use crate::error::{DockerError, Result};
use crate::pull::Layer;

/// Opens a layer's blob on a connection of its own; shared by the download threads.
pub type Download = Arc<dyn Fn(&Layer) -> Result<Box<dyn Read + Send>> + Send + Sync>;

/// How many layers past the one importing may be downloading or downloaded.
pub const AHEAD: usize = 3;

/// Download threads.
const THREADS: usize = 2;

/// Which layers the downloads may start: those below `taken + AHEAD`.
#[derive(Default)]
struct Window {
    taken: Mutex<usize>,
    moved: Condvar,
}

impl Window {
    /// Wait until layer `k` may be downloaded; false if the pull stopped meanwhile.
    fn wait_for(&self, k: usize, stop: &AtomicBool) -> bool {
        let Ok(mut taken) = self.taken.lock() else {
            return false;
        };
        while k >= *taken + AHEAD {
            if stop.load(Ordering::SeqCst) {
                return false;
            }
            taken = match self
                .moved
                .wait_timeout(taken, std::time::Duration::from_millis(100))
            {
                Ok((t, _)) => t,
                Err(_) => return false,
            };
        }
        !stop.load(Ordering::SeqCst)
    }

    fn advance(&self, taken: usize) {
        if let Ok(mut t) = self.taken.lock() {
            *t = taken;
        }
        self.moved.notify_all();
    }
}

/// A downloaded blob, deleted when dropped.
pub(crate) struct Spooled(tempfile::NamedTempFile);

impl Spooled {
    pub(crate) fn reader(&mut self) -> &mut std::fs::File {
        self.0.as_file_mut()
    }
}

type Arrival = (usize, Result<Spooled>);

/// Background downloads of `layers`, taken in order.
pub(crate) struct Prefetch {
    arrivals: Option<Receiver<Arrival>>,
    ready: HashMap<usize, Result<Spooled>>,
    stop: Arc<AtomicBool>,
    window: Arc<Window>,
    threads: Vec<JoinHandle<()>>,
}

impl Prefetch {
    /// Start downloading `layers` (index `i` of the returned handle is `layers[i]`) into
    /// spool files in `tmp`.
    pub(crate) fn start(download: Download, layers: Vec<Layer>, tmp: &Path) -> Result<Prefetch> {
        let stop = Arc::new(AtomicBool::new(false));
        let window = Arc::new(Window::default());
        let (tx, arrivals) = sync_channel::<Arrival>(AHEAD);
        let next = Arc::new(AtomicUsize::new(0));
        let layers = Arc::new(layers);
        let workers = THREADS.min(layers.len());
        let mut threads = Vec::with_capacity(workers);
        for i in 0..workers {
            let (download, layers, next, stop, tx, window) = (
                download.clone(),
                layers.clone(),
                next.clone(),
                stop.clone(),
                tx.clone(),
                window.clone(),
            );
            let tmp = tmp.to_path_buf();
            let t = std::thread::Builder::new()
                .name(format!("rkt-layer-dl-{i}"))
                .spawn(move || loop {
                    let k = next.fetch_add(1, Ordering::SeqCst);
                    let Some(layer) = layers.get(k) else { return };
                    if !window.wait_for(k, &stop) {
                        return;
                    }
                    let got = spool(&download, layer, &tmp, &stop);
                    if tx.send((k, got)).is_err() {
                        return;
                    }
                })
                .map_err(|e| DockerError::Image(format!("cannot start a download thread: {e}")))?;
            threads.push(t);
        }
        Ok(Prefetch {
            arrivals: Some(arrivals),
            ready: HashMap::new(),
            stop,
            window,
            threads,
        })
    }

    /// The spooled blob of layer `k`, once downloaded.
    pub(crate) fn take(&mut self, k: usize) -> Result<Spooled> {
        self.window.advance(k + 1);
        loop {
            if let Some(got) = self.ready.remove(&k) {
                return got;
            }
            let arrival = self.arrivals.as_ref().and_then(|rx| rx.recv().ok());
            let Some((i, got)) = arrival else {
                return Err(DockerError::Image(format!(
                    "the download of layer {k} stopped without a result"
                )));
            };
            self.ready.insert(i, got);
        }
    }
}

impl Drop for Prefetch {
    /// Stop: downloads in progress end at their next block, spool files are removed.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.arrivals = None;
        self.ready.clear();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Download `layer` into a new spool file in `tmp`, reading at most its promised size plus
/// one byte (a source that sends more is caught by the import's size check, and cannot fill
/// the disk first).
fn spool(download: &Download, layer: &Layer, tmp: &Path, stop: &AtomicBool) -> Result<Spooled> {
    let io = |what: &str, e: std::io::Error| {
        DockerError::Image(format!(
            "layer {}: {what} a spool file in {}: {e}",
            layer.digest,
            tmp.display()
        ))
    };
    let mut file = tempfile::Builder::new()
        .prefix("layer-")
        .tempfile_in(tmp)
        .map_err(|e| io("cannot create", e))?;
    let limit = layer.size.map(|s| s.saturating_add(1)).unwrap_or(u64::MAX);
    let mut blob = download(layer)?.take(limit);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        if stop.load(Ordering::SeqCst) {
            return Err(DockerError::Image(format!(
                "layer {}: download stopped",
                layer.digest
            )));
        }
        let n = match blob.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(DockerError::Image(format!(
                    "layer {}: download failed: {e}",
                    layer.digest
                )))
            }
        };
        file.write_all(&buf[..n])
            .map_err(|e| io("cannot write", e))?;
    }
    file.rewind().map_err(|e| io("cannot rewind", e))?;
    tracing::debug!(digest = %layer.digest, "layer downloaded ahead of its import");
    Ok(Spooled(file))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::io::Cursor;
    use std::sync::{Condvar, Mutex};
    use std::time::Duration;

    use rkt_store::docker::DockerImage;
    use rkt_store::Store;

    use super::*;
    use crate::pull::{ImageSource, Resolved};

    fn layer_tar(name: &str, body: &[u8]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, body).unwrap();
        b.into_inner().unwrap()
    }

    /// Which blobs the download threads were asked for, and a wake-up for whoever waits.
    #[derive(Default)]
    struct Requests {
        seen: Mutex<HashSet<String>>,
        changed: Condvar,
    }

    impl Requests {
        fn record(&self, digest: &str) {
            self.seen.lock().unwrap().insert(digest.to_string());
            self.changed.notify_all();
        }
        fn wait_for(&self, digest: &str) -> bool {
            let seen = self.seen.lock().unwrap();
            let (seen, _) = self
                .changed
                .wait_timeout_while(seen, Duration::from_secs(20), |s| !s.contains(digest))
                .unwrap();
            seen.contains(digest)
        }
    }

    /// An image of three layers whose first blob does not end until the last layer's
    /// download has begun: a pull that fetched layers one after the other never finishes it.
    struct Gated {
        blobs: Vec<(Layer, Vec<u8>)>,
        requests: Arc<Requests>,
        failing: Option<String>,
    }

    impl Gated {
        fn new(failing: Option<usize>) -> Gated {
            let blobs: Vec<(Layer, Vec<u8>)> = (0..3)
                .map(|i| {
                    let tar = layer_tar(&format!("f{i}"), format!("layer {i}\n").as_bytes());
                    let digest = crate::manifest::sha256_digest(&tar);
                    let layer = Layer {
                        digest: digest.clone(),
                        size: Some(tar.len() as u64),
                        diff_id: Some(digest),
                    };
                    (layer, tar)
                })
                .collect();
            let failing = failing.map(|i| blobs[i].0.digest.clone());
            Gated {
                blobs,
                requests: Arc::default(),
                failing,
            }
        }
    }

    struct HeldBack {
        first: Cursor<Vec<u8>>,
        rest: Cursor<Vec<u8>>,
        requests: Arc<Requests>,
        last: String,
    }

    impl Read for HeldBack {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.first.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            if !self.requests.wait_for(&self.last) {
                return Err(std::io::Error::other(
                    "the last layer was not requested while the first was importing",
                ));
            }
            self.rest.read(buf)
        }
    }

    impl ImageSource for Gated {
        fn resolve(&mut self) -> crate::error::Result<Resolved> {
            let diff_ids: Vec<String> = self.blobs.iter().map(|(l, _)| l.digest.clone()).collect();
            Ok(Resolved {
                image: DockerImage {
                    registry: String::new(),
                    repository: "test/gated".into(),
                    tag: Some("1".into()),
                    original_name: "test/gated:1".into(),
                    manifest_hash: None,
                    top_layer: None,
                    config: serde_json::json!({
                        "os": "linux", "architecture": "amd64", "config": {},
                        "rootfs": {"type": "layers", "diff_ids": diff_ids},
                    }),
                },
                layers: self.blobs.iter().map(|(l, _)| l.clone()).collect(),
            })
        }

        fn open_layer(&mut self, layer: &Layer) -> crate::error::Result<Box<dyn Read + '_>> {
            let (first, blob) = &self.blobs[0];
            assert_eq!(layer.digest, first.digest, "only the first layer streams");
            let half = blob.len() / 2;
            Ok(Box::new(HeldBack {
                first: Cursor::new(blob[..half].to_vec()),
                rest: Cursor::new(blob[half..].to_vec()),
                requests: self.requests.clone(),
                last: self.blobs[2].0.digest.clone(),
            }))
        }

        fn describe(&self) -> String {
            "test/gated:1".into()
        }

        fn download(&self) -> Option<Download> {
            let blobs: HashMap<String, Vec<u8>> = self
                .blobs
                .iter()
                .map(|(l, b)| (l.digest.clone(), b.clone()))
                .collect();
            let (requests, failing) = (self.requests.clone(), self.failing.clone());
            Some(Arc::new(move |layer: &Layer| {
                requests.record(&layer.digest);
                if failing.as_deref() == Some(layer.digest.as_str()) {
                    return Err(DockerError::Image("the registry went away".into()));
                }
                let blob = blobs.get(&layer.digest).cloned().unwrap_or_default();
                Ok(Box::new(Cursor::new(blob)) as Box<dyn Read + Send>)
            }))
        }
    }

    fn leftovers(store: &Store) -> Vec<std::path::PathBuf> {
        std::fs::read_dir(store.tmp_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    }

    #[test]
    fn later_layers_download_while_the_first_imports() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let mut source = Gated::new(None);
        let out = crate::pull(&mut store, &mut source).unwrap();
        assert_eq!(out.layers_fetched, 3);
        for (layer, _) in &source.blobs {
            assert!(store.layer(&layer.digest).unwrap().is_some());
        }
        let mut tar = Vec::new();
        store.export(&out.id, &mut tar).unwrap();
        let text = String::from_utf8_lossy(&tar);
        for i in 0..3 {
            assert!(text.contains(&format!("layer {i}\n")), "layer {i} missing");
        }
        assert!(leftovers(&store).is_empty(), "spool files left behind");
    }

    #[test]
    fn a_failed_download_ahead_fails_the_pull_and_keeps_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let mut source = Gated::new(Some(1));
        let err = crate::pull(&mut store, &mut source).unwrap_err();
        assert!(err.to_string().contains("the registry went away"), "{err}");
        for (layer, _) in &source.blobs {
            assert!(store.layer(&layer.digest).unwrap().is_none());
        }
        assert!(store.list_images().unwrap().is_empty());
        assert!(leftovers(&store).is_empty(), "spool files left behind");
    }
}
