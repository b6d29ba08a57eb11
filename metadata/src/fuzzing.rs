//! The whole request path without sockets, for fuzzing and mutation tests: raw request bytes
//! in, response bytes out, through the same parser, router and handlers as the server.

use std::sync::Arc;

use crate::hmac_key::HmacKeyStore;
use crate::http::{head_end, parse_head, Response, MAX_HEAD};
use crate::pod::{AppMetadata, Pod, PodMetadata};
use crate::service::Service;

/// The token of the fixed pod [`answer`] serves.
pub const TOKEN: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// UUID of that pod.
pub const UUID: &str = "6733c3da-5c8f-4b7d-9b49-9a5f4b6b0c1e";

fn service() -> Option<Service> {
    let meta = PodMetadata {
        uuid: UUID.into(),
        pod_manifest: br#"{"acKind":"PodManifest","acVersion":"0.8.11","apps":[]}"#.to_vec(),
        pod_annotations: vec![("example.com/a".into(), "1".into())],
        apps: vec![AppMetadata {
            name: "web".into(),
            image_id: "sha512-00".into(),
            image_manifest: b"{}".to_vec(),
            annotations: vec![("b".into(), "\u{2603}".into())],
        }],
    };
    Some(Service {
        pod: Pod::new(meta).ok()?,
        keys: HmacKeyStore::from_key([7u8; crate::KEY_LEN]),
        token: TOKEN.into(),
    })
}

/// Answers one raw request (as much of it as the bytes hold) as the server would.
pub fn answer(raw: &[u8]) -> Vec<u8> {
    thread_local! {
        static SERVICE: Option<Arc<Service>> = service().map(Arc::new);
    }
    let Some(service) = SERVICE.with(|s| s.clone()) else {
        return Vec::new();
    };
    let response = match head_end(raw) {
        Some(end) if end <= MAX_HEAD => match parse_head(&raw[..end]) {
            Ok(head) => {
                let body = &raw[end..];
                let body = &body[..body.len().min(head.content_length)];
                let head_only = head.method == "HEAD";
                return service.handle(&head, body).to_bytes(head_only);
            }
            Err(r) => r,
        },
        Some(_) => Response::error(431, "too large"),
        None => Response::error(408, "incomplete"),
    };
    response.to_bytes(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(out: &[u8]) -> u16 {
        let line = out.split(|&b| b == b'\r').next().unwrap_or_default();
        let code = line.get(9..12).unwrap_or_default();
        std::str::from_utf8(code)
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    }

    #[test]
    fn answers_like_the_server() {
        let ok = answer(format!("GET /{TOKEN}/acMetadata/v1/pod/uuid HTTP/1.1\r\n\r\n").as_bytes());
        assert_eq!(status(&ok), 200);
        assert!(ok.ends_with(UUID.as_bytes()));
        assert_eq!(status(&answer(b"GET /x HTTP/1.1\r\n\r\n")), 401);
        assert_eq!(status(&answer(b"GET /x HTTP/1.1\r\n")), 408);
    }

    /// Thousands of deterministic mutations of valid requests: no panic, and always a
    /// well-formed answer with one of the statuses the service uses.
    #[test]
    fn mutated_requests_always_get_a_well_formed_answer() {
        let seeds = [
            format!("GET /{TOKEN}/acMetadata/v1/apps/web/annotations/b HTTP/1.1\r\nHost: a\r\n\r\n"),
            format!("POST /{TOKEN}/acMetadata/v1/pod/hmac/verify?uuid={UUID} HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 30\r\n\r\ncontent=a%20b&signature=AAAA+x"),
            format!("POST /{TOKEN}/acMetadata/v1/pod/hmac/sign HTTP/1.0\nContent-Length: 9\nContent-Type: application/x-www-form-urlencoded\n\ncontent=x"),
        ];
        let mut state = 0x2545f4914f6cdd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let interesting = b"%/?&=:\r\n +-0123456789abcdefAZ\x00\xff";
        for round in 0..20_000 {
            let mut m = seeds[round % seeds.len()].clone().into_bytes();
            for _ in 0..(next() % 6 + 1) {
                let i = (next() as usize) % (m.len() + 1);
                let byte = if next() % 2 == 0 {
                    interesting[(next() as usize) % interesting.len()]
                } else {
                    next() as u8
                };
                match next() % 3 {
                    0 if i < m.len() => m[i] = byte,
                    1 if i < m.len() => {
                        m.remove(i);
                    }
                    _ => m.insert(i, byte),
                }
            }
            let out = answer(&m);
            let s = status(&out);
            assert!(
                [200, 400, 401, 403, 404, 405, 408, 411, 413, 415, 431, 505].contains(&s),
                "status {s} for {:?}",
                String::from_utf8_lossy(&m)
            );
            let end = head_end(&out).expect("answer has a head");
            let head = std::str::from_utf8(&out[..end]).expect("ASCII head");
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.trim().parse().ok())
                .expect("Content-Length");
            let head_only = m.starts_with(b"HEAD ") && s == 200;
            assert!(out.len() - end == len || head_only, "{head}");
        }
    }
}
