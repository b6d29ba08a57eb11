//! Feeds arbitrary bytes to the metadata service's request path (HTTP parser, router, form
//! decoding, handlers): it must never panic, and always answer with a well-formed head.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let out = rkt_metadata::fuzzing::answer(data);
    let end = rkt_metadata::http::head_end(&out).expect("answer has a head");
    assert!(out.starts_with(b"HTTP/1.1 "), "bad status line");
    assert!(std::str::from_utf8(&out[..end]).is_ok(), "head is not text");
    let form = rkt_metadata::http::Form::parse(data);
    if let Some(f) = form {
        let _ = f.get("content");
    }
});
