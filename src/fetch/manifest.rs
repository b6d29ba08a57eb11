//! Reading the image manifest out of a downloaded ACI before it is stored, to check that
//! it is the image that was asked for.

use std::path::Path;

use anyhow::{bail, Context, Result};
use rkt_store::schema::ImageManifest;
use rkt_store::tarstream::{self, TarEntry, TarError, TarKind, TarSink};

/// Manifests larger than this are refused (appc manifests are a few KiB).
const MAX_MANIFEST: usize = 1 << 20;

#[derive(Default)]
struct ManifestSink {
    in_manifest: bool,
    data: Vec<u8>,
    found: bool,
}

const FOUND: &str = "manifest found";

impl TarSink for ManifestSink {
    fn skeleton(&mut self, _: &[u8]) -> Result<(), TarError> {
        Ok(())
    }
    fn entry(&mut self, entry: &TarEntry) -> Result<(), TarError> {
        let path = entry.path.strip_prefix(b"./").unwrap_or(&entry.path);
        self.in_manifest = path == b"manifest" && entry.kind == TarKind::Regular;
        Ok(())
    }
    fn content(&mut self, bytes: &[u8]) -> Result<(), TarError> {
        if self.in_manifest {
            if self.data.len() + bytes.len() > MAX_MANIFEST {
                return Err(TarError::sink("the manifest is larger than 1 MiB"));
            }
            self.data.extend_from_slice(bytes);
        }
        Ok(())
    }
    fn end_entry(&mut self) -> Result<(), TarError> {
        if self.in_manifest {
            self.found = true;
            return Err(TarError::sink(FOUND));
        }
        Ok(())
    }
}

/// The manifest of the ACI file at `path` (compressed or not).
pub fn read(path: &Path) -> Result<ImageManifest> {
    let file = std::fs::File::open(path)?;
    let (_, reader) = rkt_store::decompress::open(std::io::BufReader::new(file))
        .with_context(|| format!("{} is not a readable ACI", path.display()))?;
    let mut sink = ManifestSink::default();
    match tarstream::parse(reader, &mut sink) {
        Err(TarError::Sink(m)) if m == FOUND => {}
        Err(e) => {
            if !sink.found {
                return Err(e).with_context(|| format!("{} is not a valid ACI", path.display()));
            }
        }
        Ok(_) => {}
    }
    if !sink.found {
        bail!("{} is not a valid ACI: it has no manifest", path.display());
    }
    ImageManifest::parse(&sink.data)
        .with_context(|| format!("{} has an invalid image manifest", path.display()))
}
