//! Parses arbitrary bytes as a tar stream; whenever the parser accepts the input, the bytes it
//! handed to the sink must reproduce the consumed input exactly, and the sink protocol
//! (entry / content / end_entry) must be respected.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rkt_store::tarstream::{parse, TarEntry, TarError, TarSink};

#[derive(Default)]
struct Concat {
    bytes: Vec<u8>,
    in_entry: bool,
    content_left: u64,
}

impl TarSink for Concat {
    fn skeleton(&mut self, bytes: &[u8]) -> Result<(), TarError> {
        self.bytes.extend_from_slice(bytes);
        Ok(())
    }

    fn entry(&mut self, entry: &TarEntry) -> Result<(), TarError> {
        assert!(!self.in_entry, "entry() called inside an entry");
        self.in_entry = true;
        self.content_left = entry.content_len;
        Ok(())
    }

    fn content(&mut self, bytes: &[u8]) -> Result<(), TarError> {
        assert!(self.in_entry, "content() called outside an entry");
        assert!(
            bytes.len() as u64 <= self.content_left,
            "more content than content_len"
        );
        self.content_left -= bytes.len() as u64;
        self.bytes.extend_from_slice(bytes);
        Ok(())
    }

    fn end_entry(&mut self) -> Result<(), TarError> {
        assert!(self.in_entry, "end_entry() called outside an entry");
        assert_eq!(self.content_left, 0, "less content than content_len");
        self.in_entry = false;
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let mut sink = Concat::default();
    if let Ok(summary) = parse(data, &mut sink) {
        let consumed = &data[..summary.total_bytes as usize];
        assert!(
            sink.bytes == consumed,
            "sink bytes differ from the consumed input"
        );
        assert!(!sink.in_entry, "parse returned inside an entry");
    }
});
