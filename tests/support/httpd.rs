//! A small HTTP/1.1 (and HTTPS with rustls) test server on a given listener: fixed routes by
//! request target, ETag/If-None-Match, Range requests, Basic auth checks, and deliberately
//! truncated bodies. One request per connection (`Connection: close`).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub struct Route {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Send only this many body bytes (with the full Content-Length), then close...
    pub truncate_at: Option<usize>,
    /// ...on this many requests (0 = always).
    pub truncate_times: usize,
    /// Required `Authorization` header value; 401 without it.
    pub require_auth: Option<String>,
    pub etag: Option<String>,
    /// Answer `Range: bytes=N-` with 206.
    pub ranges: bool,
}

impl Route {
    pub fn ok(body: impl Into<Vec<u8>>) -> Route {
        Route {
            status: 200,
            body: body.into(),
            ..Route::default()
        }
    }
    pub fn redirect(to: &str) -> Route {
        Route {
            status: 302,
            headers: vec![("Location".into(), to.into())],
            ..Route::default()
        }
    }
    pub fn header(mut self, k: &str, v: &str) -> Route {
        self.headers.push((k.into(), v.into()));
        self
    }
}

#[derive(Debug, Clone)]
pub struct Request {
    pub target: String,
    pub headers: HashMap<String, String>,
}

#[derive(Clone, Default)]
pub struct State {
    routes: Arc<Mutex<HashMap<String, Route>>>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    pub log: Arc<Mutex<Vec<Request>>>,
}

impl State {
    pub fn route(&self, target: &str, r: Route) {
        self.routes.lock().unwrap().insert(target.into(), r);
    }
    pub fn requests(&self, target: &str) -> Vec<Request> {
        let log = self.log.lock().unwrap();
        log.iter().filter(|r| r.target == target).cloned().collect()
    }
    pub fn clear_log(&self) {
        self.log.lock().unwrap().clear();
    }
}

/// Serves `state` on `listener` (TLS when `tls` is given) on a background thread.
pub fn serve(listener: TcpListener, tls: Option<Arc<rustls::ServerConfig>>, state: State) {
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let (state, tls) = (state.clone(), tls.clone());
            std::thread::spawn(move || {
                let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(10)));
                match tls {
                    Some(cfg) => {
                        let Ok(sc) = rustls::ServerConnection::new(cfg) else {
                            return;
                        };
                        let mut s = rustls::StreamOwned::new(sc, conn);
                        handle(&mut s, &state);
                        s.conn.send_close_notify();
                        let _ = s.flush();
                    }
                    None => {
                        let mut c: TcpStream = conn;
                        handle(&mut c, &state);
                    }
                }
            });
        }
    });
}

fn handle<S: Read + Write>(s: &mut S, state: &State) {
    let mut reader = BufReader::new(&mut *s);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    drop(reader);
    state.log.lock().unwrap().push(Request {
        target: target.clone(),
        headers: headers.clone(),
    });
    let route = state.routes.lock().unwrap().get(&target).cloned();
    let hit = {
        let mut hits = state.hits.lock().unwrap();
        let n = hits.entry(target.clone()).or_default();
        *n += 1;
        *n
    };
    let Some(route) = route else {
        let _ = respond(s, 404, &[], b"not found\n", None);
        return;
    };
    if let Some(want) = &route.require_auth {
        if headers.get("authorization") != Some(want) {
            let _ = respond(s, 401, &[], b"unauthorized\n", None);
            return;
        }
    }
    let mut hdrs = route.headers.clone();
    if let Some(etag) = &route.etag {
        hdrs.push(("ETag".into(), etag.clone()));
        if headers.get("if-none-match") == Some(etag) {
            let _ = respond(s, 304, &hdrs, b"", None);
            return;
        }
    }
    let mut status = route.status;
    let mut body: &[u8] = &route.body;
    let range_start = headers
        .get("range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok());
    if let (true, Some(start)) = (route.ranges, range_start) {
        if start < body.len() {
            hdrs.push((
                "Content-Range".into(),
                format!("bytes {start}-{}/{}", body.len() - 1, body.len()),
            ));
            status = 206;
            body = &route.body[start..];
        }
    }
    let truncate = route
        .truncate_at
        .filter(|_| route.truncate_times == 0 || hit <= route.truncate_times);
    let _ = respond(s, status, &hdrs, body, truncate);
}

fn respond<S: Write>(
    s: &mut S,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    truncate: Option<usize>,
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    let n = truncate.unwrap_or(body.len()).min(body.len());
    s.write_all(&body[..n])?;
    s.flush()
}

/// A CA and a server certificate for `names` (DNS names and 127.0.0.1), made with openssl.
pub struct Certs {
    pub ca_pem: std::path::PathBuf,
    pub config: Arc<rustls::ServerConfig>,
}

pub fn make_certs(dir: &std::path::Path, names: &[&str]) -> Certs {
    use rustls::pki_types::pem::PemObject;
    let sh = |script: &str| {
        let st = std::process::Command::new("sh")
            .arg("-ec")
            .arg(script)
            .current_dir(dir)
            .status()
            .unwrap();
        assert!(st.success(), "{script}");
    };
    let mut san: Vec<String> = names.iter().map(|n| format!("DNS:{n}")).collect();
    san.push("IP:127.0.0.1".into());
    sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=rkt-test-ca 2>/dev/null");
    sh(&format!(
        "openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN={} 2>/dev/null && \
         printf 'subjectAltName={}\\nbasicConstraints=CA:FALSE\\n' > ext && \
         openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 -extfile ext 2>/dev/null",
        names[0],
        san.join(",")
    ));
    let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(dir.join("srv.pem"))
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(dir.join("srv.key")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    Certs {
        ca_pem: dir.join("ca.pem"),
        config: Arc::new(config),
    }
}
