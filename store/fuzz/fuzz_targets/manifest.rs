//! Feeds arbitrary bytes to the appc manifest parsers; whatever parses must survive a
//! round trip through its own JSON unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rkt_store::schema::{ImageManifest, PodManifest};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = ImageManifest::parse(data) {
        let again = ImageManifest::parse(m.to_json().as_bytes());
        assert_eq!(again.as_ref().ok(), Some(&m), "image round trip: {again:?}");
        let pretty = ImageManifest::parse(m.to_json_pretty().as_bytes());
        assert_eq!(pretty.as_ref().ok(), Some(&m), "image pretty round trip");
    }
    if let Ok(p) = PodManifest::parse(data) {
        let again = PodManifest::parse(p.to_json().as_bytes());
        assert_eq!(again.as_ref().ok(), Some(&p), "pod round trip: {again:?}");
    }
});
