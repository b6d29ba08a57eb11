//! The metadata service over real loopback TCP: every endpoint, the error statuses, the
//! identity endpoint across pods, hostile and slow clients, concurrency.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use rkt_metadata::{AppMetadata, HmacKeyStore, Limits, MetadataServer, PodMetadata};

const UUID_A: &str = "6733c3da-5c8f-4b7d-9b49-9a5f4b6b0c1e";
const UUID_B: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
const IMAGE_ID: &str = "sha512-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const POD_MANIFEST: &str = r#"{"acKind":"PodManifest","acVersion":"0.8.11","apps":[]}"#;
const IMAGE_MANIFEST: &str =
    r#"{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/web"}"#;

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn metadata(uuid: &str) -> PodMetadata {
    PodMetadata {
        uuid: uuid.to_uppercase(),
        pod_manifest: POD_MANIFEST.as_bytes().to_vec(),
        pod_annotations: pairs(&[("ip-address", "10.1.2.3"), ("example.com/owner", "ops")]),
        apps: vec![
            AppMetadata {
                name: "web".into(),
                image_id: IMAGE_ID.into(),
                image_manifest: IMAGE_MANIFEST.as_bytes().to_vec(),
                annotations: pairs(&[("created", "2015-01-01T00:00:00Z"), ("motd", "héllo")]),
            },
            AppMetadata {
                name: "db".into(),
                image_id: "sha512-00".into(),
                image_manifest: b"{}".to_vec(),
                annotations: vec![],
            },
        ],
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    keys: HmacKeyStore,
    server: MetadataServer,
}

fn fixture_with(limits: Limits) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let keys = HmacKeyStore::open(dir.path()).unwrap();
    let server =
        MetadataServer::start_with_limits(metadata(UUID_A), loopback(), &keys, limits).unwrap();
    Fixture {
        _dir: dir,
        keys,
        server,
    }
}

fn fixture() -> Fixture {
    fixture_with(Limits::default())
}

/// The path part of AC_METADATA_URL: `/TOKEN`.
fn base(server: &MetadataServer) -> String {
    let url = server.url();
    let rest = url.strip_prefix("http://").unwrap();
    rest[rest.find('/').unwrap()..].to_string()
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends raw bytes and reads the whole answer (the server closes after one).
fn raw(addr: SocketAddr, bytes: &[u8]) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    parse_reply(&out)
}

fn parse_reply(out: &[u8]) -> Reply {
    let end = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no end of head")
        + 4;
    let head = std::str::from_utf8(&out[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(": ").unwrap();
            (n.to_string(), v.to_string())
        })
        .collect();
    let body = out[end..].to_vec();
    let reply = Reply {
        status,
        headers,
        body,
    };
    let len: usize = reply.header("Content-Length").unwrap().parse().unwrap();
    assert!(
        len == reply.body.len() || reply.body.is_empty(),
        "{reply:?}"
    );
    reply
}

fn request(server: &MetadataServer, method: &str, path: &str, form: Option<&str>) -> Reply {
    let target = format!("{}/acMetadata/v1{path}", base(server));
    let mut req =
        format!("{method} {target} HTTP/1.1\r\nHost: x\r\nMetadata-Flavor: AppContainer\r\n");
    if let Some(f) = form {
        req.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{f}",
            f.len()
        ));
    } else {
        req.push_str("\r\n");
    }
    raw(server.local_addr(), req.as_bytes())
}

fn get(server: &MetadataServer, path: &str) -> Reply {
    request(server, "GET", path, None)
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            b' ' => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn sign(server: &MetadataServer, content: &str) -> String {
    let r = request(
        server,
        "POST",
        "/pod/hmac/sign",
        Some(&format!("content={}", enc(content))),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("Content-Type"),
        Some("text/plain; charset=us-ascii")
    );
    r.text()
}

fn verify(server: &MetadataServer, content: &str, uuid: &str, sig: &str) -> Reply {
    let form = format!(
        "content={}&uuid={}&signature={}",
        enc(content),
        enc(uuid),
        enc(sig)
    );
    request(server, "POST", "/pod/hmac/verify", Some(&form))
}

#[test]
fn url_is_loopback_with_an_unguessable_token() {
    let f = fixture();
    let url = f.server.url();
    let port = f.server.local_addr().port();
    let prefix = format!("http://127.0.0.1:{port}/");
    assert!(url.starts_with(&prefix), "{url}");
    let token = &url[prefix.len()..];
    assert_eq!(token.len(), 64);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    let other = fixture();
    assert_ne!(base(&other.server), base(&f.server));
}

#[test]
fn pod_endpoints() {
    let f = fixture();
    let r = get(&f.server, "/pod/uuid");
    assert_eq!((r.status, r.text().as_str()), (200, UUID_A));
    assert_eq!(
        r.header("Content-Type"),
        Some("text/plain; charset=us-ascii")
    );

    let r = get(&f.server, "/pod/manifest");
    assert_eq!((r.status, r.text().as_str()), (200, POD_MANIFEST));
    assert_eq!(r.header("Content-Type"), Some("application/json"));

    for path in ["/pod/annotations", "/pod/annotations/"] {
        let r = get(&f.server, path);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            v,
            serde_json::json!([{"name": "ip-address", "value": "10.1.2.3"},
                               {"name": "example.com/owner", "value": "ops"}])
        );
    }
    let r = get(&f.server, "/pod/annotations/ip-address");
    assert_eq!((r.status, r.text().as_str()), (200, "10.1.2.3"));
    assert_eq!(
        r.header("Content-Type"),
        Some("text/plain; charset=us-ascii")
    );
    let r = get(&f.server, "/pod/annotations/example.com/owner");
    assert_eq!((r.status, r.text().as_str()), (200, "ops"));
    let r = get(&f.server, "/pod/annotations/example.com%2Fowner");
    assert_eq!((r.status, r.text().as_str()), (200, "ops"));
    assert_eq!(get(&f.server, "/pod/annotations/nope").status, 404);
}

#[test]
fn app_endpoints() {
    let f = fixture();
    let r = get(&f.server, "/apps/web/image/id");
    assert_eq!((r.status, r.text().as_str()), (200, IMAGE_ID));
    assert_eq!(
        r.header("Content-Type"),
        Some("text/plain; charset=us-ascii")
    );

    let r = get(&f.server, "/apps/web/image/manifest");
    assert_eq!((r.status, r.text().as_str()), (200, IMAGE_MANIFEST));
    assert_eq!(r.header("Content-Type"), Some("application/json"));

    let r = get(&f.server, "/apps/web/annotations");
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        v,
        serde_json::json!([{"name": "created", "value": "2015-01-01T00:00:00Z"},
                           {"name": "motd", "value": "héllo"}])
    );
    let r = get(&f.server, "/apps/web/annotations/motd");
    assert_eq!((r.status, r.text().as_str()), (200, "héllo"));
    assert_eq!(r.header("Content-Type"), Some("text/plain; charset=utf-8"));
    let r = get(&f.server, "/apps/db/annotations/");
    assert_eq!((r.status, r.text().as_str()), (200, "[]"));
    assert_eq!(get(&f.server, "/apps/db/image/id").text(), "sha512-00");

    for path in [
        "/apps/nope/image/id",
        "/apps/nope/annotations",
        "/apps/web/annotations/nope",
        "/apps/nope/image/manifest",
    ] {
        let r = get(&f.server, path);
        assert_eq!(r.status, 404, "{path}: {}", r.text());
    }
    assert!(get(&f.server, "/apps/nope/image/id")
        .text()
        .contains("no app named \"nope\""));
}

#[test]
fn head_answers_without_body() {
    let f = fixture();
    let r = request(&f.server, "HEAD", "/pod/uuid", None);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some("36"));
    assert!(r.body.is_empty());
}

#[test]
fn unknown_paths_methods_and_tokens() {
    let f = fixture();
    for path in [
        "/pod",
        "/pod/",
        "/pod/uuid/x",
        "/apps/web",
        "/apps/web/image",
        "/nothing",
    ] {
        assert_eq!(get(&f.server, path).status, 404, "{path}");
    }
    let r = get(&f.server, "/pod/hmac/sign");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some("POST"));
    let r = request(&f.server, "POST", "/pod/uuid", Some(""));
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some("GET, HEAD"));
    assert_eq!(
        request(&f.server, "DELETE", "/apps/web/image/id", None).status,
        405
    );

    let addr = f.server.local_addr();
    for target in [
        "/acMetadata/v1/pod/uuid".to_string(),
        "/".to_string(),
        format!("{}x/acMetadata/v1/pod/uuid", base(&f.server)),
        format!("/{}/acMetadata/v1/pod/uuid", "0".repeat(64)),
    ] {
        let r = raw(addr, format!("GET {target} HTTP/1.1\r\n\r\n").as_bytes());
        assert_eq!(r.status, 401, "{target}");
        assert!(r.text().contains("AC_METADATA_URL"));
    }
    // One pod's token gives nothing of another pod.
    let other = fixture();
    let target = format!("{}/acMetadata/v1/pod/uuid", base(&other.server));
    assert_eq!(
        raw(addr, format!("GET {target} HTTP/1.1\r\n\r\n").as_bytes()).status,
        401
    );
}

#[test]
fn sign_then_verify() {
    let f = fixture();
    let content = "Old MacDonald Had A Farm & 100% = ☃";
    let sig = sign(&f.server, content);
    assert_eq!(sig.len(), 88, "{sig}");

    let ok = verify(&f.server, content, UUID_A, &sig);
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(
        ok.header("Content-Type"),
        Some("text/plain; charset=us-ascii")
    );
    // Any spelling of the UUID appc accepts.
    assert_eq!(
        verify(
            &f.server,
            content,
            &UUID_A.replace('-', "").to_uppercase(),
            &sig
        )
        .status,
        200
    );

    assert_eq!(verify(&f.server, "Old MacDonald", UUID_A, &sig).status, 403);
    assert_eq!(verify(&f.server, content, UUID_B, &sig).status, 403);
    let mut forged = sig.clone().into_bytes();
    forged[10] = if forged[10] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        verify(
            &f.server,
            content,
            UUID_A,
            std::str::from_utf8(&forged).unwrap()
        )
        .status,
        403
    );
    assert_eq!(verify(&f.server, content, UUID_A, "").status, 403);

    assert_eq!(
        verify(&f.server, content, UUID_A, "!!not base64!!").status,
        400
    );
    assert_eq!(verify(&f.server, content, "not-a-uuid", &sig).status, 400);
    let r = request(
        &f.server,
        "POST",
        "/pod/hmac/verify",
        Some(&format!("content=x&uuid={UUID_A}")),
    );
    assert_eq!(r.status, 400);
    assert!(r.text().contains("signature"), "{}", r.text());

    // The signature is the library's: HMAC-SHA512 of the UUID's bytes and the content.
    let id = rkt_metadata::PodUuid::parse(UUID_A).unwrap();
    assert_eq!(f.keys.sign(&id, content.as_bytes()), sig);
    // Empty content is content too.
    let empty = sign(&f.server, "");
    assert_eq!(verify(&f.server, "", UUID_A, &empty).status, 200);
}

#[test]
fn sign_needs_a_urlencoded_form_with_content() {
    let f = fixture();
    let r = request(&f.server, "POST", "/pod/hmac/sign", Some("other=1"));
    assert_eq!(r.status, 400);
    assert!(r.text().contains("content"));
    assert_eq!(
        request(&f.server, "POST", "/pod/hmac/sign", Some("content=%zz")).status,
        400
    );

    let target = format!("{}/acMetadata/v1/pod/hmac/sign", base(&f.server));
    let body = "--b\r\nContent-Disposition: form-data; name=\"content\"\r\n\r\nx\r\n--b--\r\n";
    let req = format!(
        "POST {target} HTTP/1.1\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let r = raw(f.server.local_addr(), req.as_bytes());
    assert_eq!(r.status, 415);
    assert!(r.text().contains("--data-urlencode"), "{}", r.text());

    // The query string counts as form fields too (as with Go's FormValue).
    let req = format!("POST {target}?content=hello HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    let r = raw(f.server.local_addr(), req.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), sign(&f.server, "hello"));
}

#[test]
fn pods_sharing_the_host_key_verify_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let keys_a = HmacKeyStore::open(dir.path()).unwrap();
    let keys_b = HmacKeyStore::open(dir.path()).unwrap();
    let a = MetadataServer::start(metadata(UUID_A), loopback(), &keys_a).unwrap();
    let b = MetadataServer::start(metadata(UUID_B), loopback(), &keys_b).unwrap();

    let sig_a = sign(&a, "I am pod A");
    assert_eq!(verify(&b, "I am pod A", UUID_A, &sig_a).status, 200);
    // Pod B cannot pass A's signature off as its own.
    assert_eq!(verify(&b, "I am pod A", UUID_B, &sig_a).status, 403);
    let sig_b = sign(&b, "I am pod A");
    assert_ne!(sig_a, sig_b);
    assert_eq!(verify(&a, "I am pod A", UUID_B, &sig_b).status, 200);

    // A host with another key (another rkt data directory) trusts neither.
    let other_dir = tempfile::tempdir().unwrap();
    let keys_c = HmacKeyStore::open(other_dir.path()).unwrap();
    let c = MetadataServer::start(metadata(UUID_B), loopback(), &keys_c).unwrap();
    assert_eq!(verify(&c, "I am pod A", UUID_A, &sig_a).status, 403);
}

#[test]
fn malformed_requests_get_clear_statuses() {
    let f = fixture();
    let addr = f.server.local_addr();
    let uuid_target = format!("{}/acMetadata/v1/pod/uuid", base(&f.server));
    assert_eq!(raw(addr, b"hello\r\n\r\n").status, 400);
    assert_eq!(raw(addr, b"\r\n\r\n").status, 400);
    assert_eq!(raw(addr, b"GET http://evil/ HTTP/1.1\r\n\r\n").status, 400);
    assert_eq!(
        raw(addr, format!("GET {uuid_target} HTTP/3\r\n\r\n").as_bytes()).status,
        505
    );
    assert_eq!(
        raw(
            addr,
            format!("GET {uuid_target} HTTP/1.1\r\nbad header\r\n\r\n").as_bytes()
        )
        .status,
        400
    );
    assert_eq!(
        raw(
            addr,
            format!("GET {uuid_target}%zz HTTP/1.1\r\n\r\n").as_bytes()
        )
        .status,
        400
    );
    assert_eq!(
        raw(
            addr,
            format!("GET {uuid_target}%FF HTTP/1.1\r\n\r\n").as_bytes()
        )
        .status,
        400
    );
    let r = raw(
        addr,
        format!("GET {uuid_target} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").as_bytes(),
    );
    assert_eq!(r.status, 411);
    let r = raw(
        addr,
        format!("POST {uuid_target} HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n").as_bytes(),
    );
    assert_eq!(r.status, 413);

    // A head larger than the limit, sent in full: 431 and the server keeps working.
    let mut big = format!("GET {uuid_target} HTTP/1.1\r\n").into_bytes();
    big.extend(format!("X-Pad: {}\r\n", "a".repeat(40_000)).bytes());
    big.extend(b"\r\n");
    assert_eq!(raw(addr, &big).status, 431);

    // HTTP/1.0 and bare \n line ends work.
    let r = raw(addr, format!("GET {uuid_target} HTTP/1.0\n\n").as_bytes());
    assert_eq!((r.status, r.text().as_str()), (200, UUID_A));
    assert_eq!(get(&f.server, "/pod/uuid").status, 200);
}

#[test]
fn body_arriving_late_and_expect_continue() {
    let f = fixture();
    let target = format!("{}/acMetadata/v1/pod/hmac/sign", base(&f.server));
    let body = "content=slow";
    let mut s = TcpStream::connect(f.server.local_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(s, "POST {target} HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n", body.len()).unwrap();
    let mut interim = [0u8; 25];
    s.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    for b in body.bytes() {
        s.write_all(&[b]).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let r = parse_reply(&out);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), sign(&f.server, "slow"));
}

#[test]
fn slow_clients_time_out_without_blocking_others() {
    let f = fixture_with(Limits {
        max_connections: 64,
        request_timeout: Duration::from_millis(700),
    });
    let addr = f.server.local_addr();
    let start = Instant::now();
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(b"GET /x HTTP/1.1\r\nHost:").unwrap();
    // Others are served meanwhile.
    assert_eq!(get(&f.server, "/pod/uuid").status, 200);
    slow.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut out = Vec::new();
    slow.read_to_end(&mut out).unwrap();
    let waited = start.elapsed();
    assert_eq!(parse_reply(&out).status, 408);
    assert!(waited >= Duration::from_millis(650), "{waited:?}");
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    // A silent client is dropped too.
    let mut silent = TcpStream::connect(addr).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut out = Vec::new();
    silent.read_to_end(&mut out).unwrap();
    assert_eq!(parse_reply(&out).status, 408);
}

#[test]
fn connections_beyond_the_limit_are_refused_busy() {
    let f = fixture_with(Limits {
        max_connections: 2,
        request_timeout: Duration::from_secs(3),
    });
    let addr = f.server.local_addr();
    let idle: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let r = raw(addr, b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(r.status, 503);
    drop(idle);
    // Once they are gone, requests are served again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = get(&f.server, "/pod/uuid");
        if r.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "still refused: {}", r.status);
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn concurrent_requests() {
    let f = fixture();
    std::thread::scope(|s| {
        for t in 0..12 {
            let server = &f.server;
            s.spawn(move || {
                for i in 0..15 {
                    let content = format!("thread {t} request {i}");
                    let sig = sign(server, &content);
                    assert_eq!(verify(server, &content, UUID_A, &sig).status, 200);
                    assert_eq!(get(server, "/pod/uuid").text(), UUID_A);
                }
            });
        }
    });
}

#[test]
fn garbage_never_stops_the_server() {
    let f = fixture();
    let addr = f.server.local_addr();
    let valid = format!(
        "POST {}/acMetadata/v1/pod/hmac/verify?uuid={UUID_A} HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 20\r\n\r\ncontent=a&signature=",
        base(&f.server)
    )
    .into_bytes();
    // Deterministic mutations: flip, drop and insert bytes.
    let mut seed = 0x9e3779b97f4a7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..300 {
        let mut m = valid.clone();
        for _ in 0..(next() % 4 + 1) {
            let i = (next() as usize) % m.len();
            match next() % 3 {
                0 => m[i] = next() as u8,
                1 => {
                    m.remove(i);
                }
                _ => m.insert(i, next() as u8),
            }
        }
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let _ = s.write_all(&m);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        if !out.is_empty() {
            let r = parse_reply(&out);
            assert!(
                [200, 400, 401, 403, 404, 405, 408, 411, 413, 415, 431, 505].contains(&r.status),
                "{r:?}"
            );
        }
    }
    assert_eq!(get(&f.server, "/pod/uuid").text(), UUID_A);
}

#[test]
fn stops_listening_when_dropped() {
    let f = fixture();
    let addr = f.server.local_addr();
    assert_eq!(get(&f.server, "/pod/uuid").status, 200);
    let start = Instant::now();
    f.server.shutdown();
    assert!(start.elapsed() < Duration::from_secs(2));
    assert!(
        TcpStream::connect(addr).is_err(),
        "still accepting on {addr}"
    );
}

#[test]
fn start_reports_bad_metadata_and_busy_ports() {
    let dir = tempfile::tempdir().unwrap();
    let keys = HmacKeyStore::open(dir.path()).unwrap();
    let mut bad = metadata(UUID_A);
    bad.uuid = "not-a-uuid".into();
    let e = MetadataServer::start(bad, loopback(), &keys)
        .unwrap_err()
        .to_string();
    assert!(e.contains("invalid pod UUID"), "{e}");

    let first = MetadataServer::start(metadata(UUID_A), loopback(), &keys).unwrap();
    let e = MetadataServer::start(metadata(UUID_A), first.local_addr(), &keys)
        .unwrap_err()
        .to_string();
    assert!(e.contains(&first.local_addr().to_string()), "{e}");
}

/// An independent HTTP client (Python's urllib, as an app would use) does what the appc ACE
/// validator does: manifest, uuid, annotations, sign, verify.
#[test]
fn a_real_http_client_walks_the_service() {
    let f = fixture();
    let script = r#"
import os, sys, urllib.request, urllib.parse, json
base = os.environ["AC_METADATA_URL"] + "/acMetadata/v1"
def get(p):
    req = urllib.request.Request(base + p, headers={"Metadata-Flavor": "AppContainer"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.headers["Content-Type"], r.read().decode()
def post(p, fields):
    data = urllib.parse.urlencode(fields).encode()
    try:
        with urllib.request.urlopen(base + p, data=data, timeout=10) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()
ct, manifest = get("/pod/manifest"); assert ct == "application/json", ct; json.loads(manifest)
ct, uuid = get("/pod/uuid"); assert ct == "text/plain; charset=us-ascii", ct
ct, ann = get("/apps/web/annotations"); assert json.loads(ann)[0]["name"] == "created", ann
st, ct, sig = post("/pod/hmac/sign", {"content": "Old MacDonald Had A Farm"}); assert st == 200 and ct == "text/plain; charset=us-ascii", (st, ct)
st, ct, _ = post("/pod/hmac/verify", {"content": "Old MacDonald Had A Farm", "uuid": uuid, "signature": sig}); assert (st, ct) == (200, "text/plain; charset=us-ascii"), (st, ct)
st, _, _ = post("/pod/hmac/verify", {"content": "Old MacDonald Had A Cow", "uuid": uuid, "signature": sig}); assert st == 403, st
print("validated", uuid)
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .env("AC_METADATA_URL", f.server.url())
        .output()
        .expect("python3 (package python3) must be installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), format!("validated {UUID_A}"));
}

#[test]
fn bind_first_then_serve() {
    let dir = tempfile::tempdir().unwrap();
    let keys = HmacKeyStore::open(dir.path()).unwrap();
    let bound = MetadataServer::bind(metadata(UUID_A), loopback(), &keys).unwrap();
    let url = bound.url();
    let addr = bound.local_addr();
    // A client connecting before serve() waits in the backlog and is answered afterwards.
    let early = std::thread::spawn(move || {
        let target = format!(
            "{}/acMetadata/v1/pod/uuid",
            &url[url.find(&addr.to_string()).unwrap() + addr.to_string().len()..]
        );
        raw(addr, format!("GET {target} HTTP/1.1\r\n\r\n").as_bytes())
    });
    std::thread::sleep(Duration::from_millis(200));
    let server = bound.serve(Limits::default()).unwrap();
    assert_eq!(server.local_addr(), addr);
    let r = early.join().unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, UUID_A));
    // url_for_host keeps port and token.
    let other = server.url_for_host("10.0.0.1".parse().unwrap());
    assert_eq!(other, server.url().replace("127.0.0.1", "10.0.0.1"));
}

#[test]
fn head_sent_a_byte_at_a_time() {
    let f = fixture();
    for end in ["\r\n\r\n", "\n\n"] {
        let req = format!(
            "GET {}/acMetadata/v1/pod/uuid HTTP/1.1\r\nHost: x{end}",
            base(&f.server)
        );
        let mut s = TcpStream::connect(f.server.local_addr()).unwrap();
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        for b in req.bytes() {
            s.write_all(&[b]).unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        let r = parse_reply(&out);
        assert_eq!((r.status, r.text().as_str()), (200, UUID_A));
    }
}

#[test]
fn serves_on_a_socket_the_caller_bound() {
    let dir = tempfile::tempdir().unwrap();
    let keys = HmacKeyStore::open(dir.path()).unwrap();
    let listener = std::net::TcpListener::bind(loopback()).unwrap();
    let addr = listener.local_addr().unwrap();
    let bound = MetadataServer::bind_listener(metadata(UUID_A), listener, &keys).unwrap();
    assert_eq!(bound.local_addr(), addr);
    assert!(
        bound.url().starts_with(&format!("http://{addr}/")),
        "{}",
        bound.url()
    );
    let server = bound.serve(Limits::default()).unwrap();
    let r = get(&server, "/pod/uuid");
    assert_eq!((r.status, r.text().as_str()), (200, UUID_A));
}
