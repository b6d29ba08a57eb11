//! A Docker registry token issuer (the `auth: token:` side of docker-registry) for tests: a
//! plain-HTTP server on 127.0.0.1 answering `GET /token?service=S&scope=…` with a JWT signed
//! (RS256, by the `openssl` CLI) with a key whose self-signed certificate the registry trusts
//! (`rootcertbundle`); the certificate travels in the token's `x5c` header. Tokens are given
//! only to `user:password` in HTTP basic auth, for every scope asked; other requests get 401.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;

pub const ISSUER: &str = "rkt-test-token-issuer";

pub struct TokenServer {
    pub port: u16,
    /// The certificate (PEM) to give the registry as `rootcertbundle`.
    pub cert: PathBuf,
    /// Every request's target and whether it got a token.
    pub log: Arc<Mutex<Vec<(String, bool)>>>,
}

struct Config {
    key: PathBuf,
    cert_der_b64: String,
    service: String,
    user: String,
    basic: String,
    log: Arc<Mutex<Vec<(String, bool)>>>,
}

impl TokenServer {
    /// Make a key and certificate in `dir` and serve tokens for `service` to `user`.
    pub fn start(dir: &Path, service: &str, user: &str, password: &str) -> TokenServer {
        std::fs::create_dir_all(dir).unwrap();
        let (key, cert) = (dir.join("token-key.pem"), dir.join("token-cert.pem"));
        let o = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", &format!("/CN={ISSUER}")])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("run openssl");
        assert!(o.status.success(), "openssl req: {:?}", o);
        let pem = std::fs::read_to_string(&cert).unwrap();
        let cert_der_b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let cfg = Arc::new(Config {
            key,
            cert_der_b64,
            service: service.to_string(),
            user: user.to_string(),
            basic: format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            ),
            log: Arc::clone(&log),
        });
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let cfg = Arc::clone(&cfg);
                std::thread::spawn(move || handle(conn, &cfg));
            }
        });
        TokenServer { port, cert, log }
    }

    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    /// Requests answered with a token.
    pub fn tokens_given(&self) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, ok)| *ok)
            .count()
    }
}

fn b64url(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => out.push(v),
                    Err(_) => out.extend_from_slice(&b[i..i + 3]),
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `repository:NAME:ACTIONS` scopes as the registry's `access` claim.
fn access(scopes: &[String]) -> serde_json::Value {
    let mut list = Vec::new();
    for s in scopes {
        for one in s.split(' ') {
            let mut parts = one.splitn(3, ':');
            if let (Some(kind), Some(name), Some(actions)) =
                (parts.next(), parts.next(), parts.next())
            {
                let actions: Vec<&str> = actions.split(',').collect();
                list.push(serde_json::json!({"type": kind, "name": name, "actions": actions}));
            }
        }
    }
    serde_json::Value::Array(list)
}

fn sign(key: &Path, input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run openssl dgst");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "openssl dgst -sign failed");
    o.stdout
}

fn token(cfg: &Config, scopes: &[String]) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [cfg.cert_der_b64]});
    let claims = serde_json::json!({
        "iss": ISSUER,
        "sub": cfg.user,
        "aud": cfg.service,
        "exp": now + 300,
        "nbf": now - 10,
        "iat": now,
        "jti": format!("{now}-{}", std::process::id()),
        "access": access(scopes),
    });
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let sig = sign(&cfg.key, input.as_bytes());
    format!("{input}.{}", b64url(&sig))
}

fn handle(mut conn: TcpStream, cfg: &Config) {
    let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(10)));
    let mut reader = BufReader::new(&conn);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut authorization = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.trim().eq_ignore_ascii_case("authorization") {
                authorization = Some(v.trim().to_string());
            }
        }
    }
    drop(reader);
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut scopes = Vec::new();
    let mut service = None;
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("scope", v)) => scopes.push(unescape(v)),
            Some(("service", v)) => service = Some(unescape(v)),
            _ => {}
        }
    }
    let ok = path == "/token"
        && authorization.as_deref() == Some(cfg.basic.as_str())
        && service.as_deref() == Some(cfg.service.as_str());
    cfg.log.lock().unwrap().push((target.clone(), ok));
    let (status, body) = if ok {
        let t = token(cfg, &scopes);
        (
            "200 OK",
            serde_json::json!({"token": t, "access_token": t, "expires_in": 300}).to_string(),
        )
    } else {
        (
            "401 Unauthorized",
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#.to_string(),
        )
    };
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}
