//! Trust and remote fetch against real servers on 127.0.0.1: keys and signatures made by
//! gpg, HTTPS with an openssl-made CA, appc discovery in a private network namespace where
//! the server listens on port 443 and the names resolve through a bind-mounted /etc/hosts.

mod common;
#[path = "support/gpg.rs"]
mod gpg;
#[path = "support/httpd.rs"]
mod httpd;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use gpg::{Gpg, Key};
use httpd::{Route, State};

struct Env {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    gpg: Gpg,
    key: Key,
    ca: PathBuf,
    tls: std::sync::Arc<rustls::ServerConfig>,
}

impl Env {
    fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        for d in ["store", "local", "system", "certs", "aci"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let gpg = Gpg::new(&root);
        let key = gpg.key("Example Signer <signer@example.com>", "never", None);
        let certs = httpd::make_certs(
            &root.join("certs"),
            &["example.com", "storage.example.com", "localhost"],
        );
        Env {
            _tmp: tmp,
            root,
            gpg,
            key,
            ca: certs.ca_pem,
            tls: certs.config,
        }
    }

    fn store(&self) -> PathBuf {
        self.root.join("store")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(common::RKT);
        c.arg("--dir")
            .arg(self.store())
            .arg("--local-config")
            .arg(self.root.join("local"))
            .arg("--system-config")
            .arg(self.root.join("system"))
            .args(args)
            .env("SSL_CERT_FILE", &self.ca)
            .stdin(Stdio::null());
        c
    }

    fn rkt(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.rkt(args);
        assert!(
            o.status.success(),
            "{}",
            common::describe(&format!("{args:?}"), &o)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    fn fails(&self, args: &[&str]) -> String {
        let o = self.rkt(args);
        assert_eq!(
            o.status.code(),
            Some(254),
            "{}",
            common::describe(&format!("{args:?}"), &o)
        );
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    /// An ACI called `name` with `version`, and its signature by `key`.
    fn aci(&self, file: &str, name: &str, version: &str, key: &Key) -> PathBuf {
        let layout = self.root.join("layouts").join(file);
        common::build_small_layout(&layout, name, Some(version), file.as_bytes());
        // busybox, so that the walk-through can run the image
        std::fs::create_dir_all(layout.join("rootfs/bin")).unwrap();
        std::fs::copy("/bin/busybox", layout.join("rootfs/bin/busybox")).unwrap();
        let out = self.root.join("aci").join(file);
        common::actool_build(&layout, &out, true);
        self.gpg.sign(
            key,
            &out,
            &PathBuf::from(format!("{}.asc", out.display())),
            false,
            None,
        );
        out
    }

    fn trust_file(&self, prefix: &str, key: &Key) {
        let p = self.root.join(format!("{}.pub.asc", key.fpr));
        std::fs::write(&p, &key.public).unwrap();
        self.ok(&[
            "trust",
            "--prefix",
            prefix,
            "--skip-fingerprint-review",
            p.to_str().unwrap(),
        ]);
    }

    fn image_count(&self) -> usize {
        common::list_json(&self.store()).len()
    }

    fn tmp_is_empty(&self) -> bool {
        std::fs::read_dir(self.store().join("tmp"))
            .unwrap()
            .next()
            .is_none()
    }

    /// An HTTPS server on 127.0.0.1 (random port); returns its state and base URL.
    fn https(&self) -> (State, String) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let state = State::default();
        httpd::serve(l, Some(self.tls.clone()), state.clone());
        (state, format!("https://127.0.0.1:{port}"))
    }

    fn http(&self) -> (State, String) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let state = State::default();
        httpd::serve(l, None, state.clone());
        (state, format!("http://127.0.0.1:{port}"))
    }
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

fn asc(p: &Path) -> PathBuf {
    PathBuf::from(format!("{}.asc", p.display()))
}

#[test]
fn trust_refuses_unbounded_trust_and_needs_a_terminal_to_ask() {
    let env = Env::new();
    let key = env.root.join("k.asc");
    std::fs::write(&key, &env.key.public).unwrap();
    let k = key.to_str().unwrap();
    let e = env.fails(&["trust", k]);
    assert!(e.contains("implicit unbounded trust"), "{e}");
    let e = env.fails(&["trust", "--prefix", "example.com/app", k]);
    assert!(
        e.contains("not a terminal") && e.contains("--skip-fingerprint-review"),
        "{e}"
    );
    assert!(e.contains(&env.key.fpr), "the fingerprint is shown: {e}");
    let e = env.fails(&[
        "trust",
        "--prefix",
        "../etc",
        "--skip-fingerprint-review",
        k,
    ]);
    assert!(e.contains("invalid prefix"), "{e}");
    assert!(!env.root.join("local/trustedkeys").exists());

    env.ok(&[
        "trust",
        "--prefix",
        "example.com/app",
        "--skip-fingerprint-review",
        k,
    ]);
    let stored = env
        .root
        .join("local/trustedkeys/prefix.d/example.com/app")
        .join(&env.key.fpr);
    assert!(String::from_utf8(read(&stored))
        .unwrap()
        .contains("BEGIN PGP PUBLIC KEY BLOCK"));
    env.ok(&["trust", "--root", "--skip-fingerprint-review", k]);
    assert!(env
        .root
        .join("local/trustedkeys/root.d")
        .join(&env.key.fpr)
        .is_file());
}

#[test]
fn local_files_are_verified_before_anything_is_stored() {
    let env = Env::new();
    let aci = env.aci("app.aci", "example.com/app", "1.0.0", &env.key);
    let a = aci.to_str().unwrap();

    // no trusted key yet
    let e = env.fails(&["fetch", a]);
    assert!(e.contains("rkt trust --prefix example.com/app"), "{e}");
    assert_eq!(env.image_count(), 0);

    // a key for another prefix does not help; a prefix that is not a path prefix neither
    env.trust_file("example.com/ap", &env.key);
    let e = env.fails(&["fetch", a]);
    assert!(e.contains("rkt trust --prefix example.com/app"), "{e}");

    env.trust_file("example.com", &env.key);
    let id = env.ok(&["fetch", a]);
    assert!(id.trim().starts_with("sha512-"), "{id}");
    assert_eq!(env.image_count(), 1);

    // --signature FILE, armored and binary
    let other = env.aci("other.aci", "example.com/app/other", "2.0.0", &env.key);
    let moved = env.root.join("sig-elsewhere.asc");
    std::fs::rename(asc(&other), &moved).unwrap();
    let e = env.fails(&["fetch", other.to_str().unwrap()]);
    assert!(e.contains("not signed") && e.contains("--signature"), "{e}");
    env.ok(&[
        "fetch",
        "--signature",
        moved.to_str().unwrap(),
        other.to_str().unwrap(),
    ]);
    let bin = env.aci("bin.aci", "example.com/app/bin", "1.0.0", &env.key);
    env.gpg.sign(&env.key, &bin, &asc(&bin), true, None);
    env.ok(&["fetch", bin.to_str().unwrap()]);
    assert_eq!(env.image_count(), 3);
}

#[test]
fn every_bad_signature_is_refused_with_its_reason() {
    let env = Env::new();
    env.trust_file("example.com", &env.key);
    let stranger = env.gpg.key("Stranger <s@example.org>", "never", None);

    // unknown key
    let aci = env.aci("unknown.aci", "example.com/unknown", "1.0.0", &stranger);
    let e = env.fails(&["fetch", aci.to_str().unwrap()]);
    assert!(
        e.contains("not trusted") && e.contains("rkt trust --prefix example.com/unknown"),
        "{e}"
    );

    // a signature over other bytes
    let a = env.aci("a.aci", "example.com/a", "1.0.0", &env.key);
    let b = env.aci("b.aci", "example.com/a", "1.0.1", &env.key);
    let e = env.fails(&[
        "fetch",
        "--signature",
        asc(&b).to_str().unwrap(),
        a.to_str().unwrap(),
    ]);
    assert!(e.contains("does not match the image data"), "{e}");

    // garbage instead of a signature
    std::fs::write(env.root.join("junk.asc"), b"not a signature").unwrap();
    let e = env.fails(&[
        "fetch",
        "--signature",
        env.root.join("junk.asc").to_str().unwrap(),
        a.to_str().unwrap(),
    ]);
    assert!(e.contains("cannot read the signature"), "{e}");

    // expired key: made and used in 2020, valid for a day
    let old = env
        .gpg
        .key("Old <old@example.com>", "1d", Some("20200101T000000!"));
    env.trust_file("example.com/old", &old);
    let layout = env.root.join("layouts/old");
    common::build_small_layout(&layout, "example.com/old", Some("1.0.0"), b"old");
    let aci = env.root.join("aci/old.aci");
    common::actool_build(&layout, &aci, true);
    env.gpg
        .sign(&old, &aci, &asc(&aci), false, Some("20200101T120000!"));
    let e = env.fails(&["fetch", aci.to_str().unwrap()]);
    assert!(e.contains("expired"), "{e}");

    // revoked key
    let gone = env.gpg.key("Gone <gone@example.com>", "never", None);
    let aci = env.aci("gone.aci", "example.com/gone", "1.0.0", &gone);
    let revoked = Key {
        fpr: gone.fpr.clone(),
        public: env.gpg.revoke(&gone),
    };
    env.trust_file("example.com/gone", &revoked);
    let e = env.fails(&["fetch", aci.to_str().unwrap()]);
    assert!(e.contains("revoked"), "{e}");

    assert_eq!(env.image_count(), 0);
    // but --insecure-options=image skips the checks (old flag too)
    env.ok(&["--insecure-options=image", "fetch", aci.to_str().unwrap()]);
    env.ok(&["--insecure-skip-verify", "fetch", a.to_str().unwrap()]);
    assert_eq!(env.image_count(), 2);
}

#[test]
fn an_empty_local_key_file_masks_a_system_key() {
    let env = Env::new();
    let aci = env.aci("m.aci", "example.com/m", "1.0.0", &env.key);
    let sys = env.root.join("system/trustedkeys/prefix.d/example.com/m");
    std::fs::create_dir_all(&sys).unwrap();
    std::fs::write(sys.join(&env.key.fpr), &env.key.public).unwrap();
    env.ok(&["fetch", aci.to_str().unwrap()]);
    let local = env.root.join("local/trustedkeys/prefix.d/example.com/m");
    std::fs::create_dir_all(&local).unwrap();
    std::fs::write(local.join(&env.key.fpr), b"").unwrap();
    let e = env.fails(&["fetch", "--pull-policy=update", aci.to_str().unwrap()]);
    assert!(e.contains("no keys are trusted"), "{e}");
}

#[test]
fn https_urls_tls_and_plain_http_policy() {
    let env = Env::new();
    env.trust_file("example.com", &env.key);
    let aci = env.aci("u.aci", "example.com/u", "1.0.0", &env.key);
    let (https, base) = env.https();
    https.route("/u.aci", Route::ok(read(&aci)));
    https.route("/u.aci.asc", Route::ok(read(&asc(&aci))));
    let url = format!("{base}/u.aci");

    // without the CA the certificate is refused, with a hint
    let o = env
        .cmd(&["fetch", &url])
        .env_remove("SSL_CERT_FILE")
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("--insecure-options=tls"),
        "{e}"
    );
    let o = env
        .cmd(&["--insecure-options=tls", "fetch", &url])
        .env_remove("SSL_CERT_FILE")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::describe("tls", &o));
    assert_eq!(env.image_count(), 1);

    // plain http needs --insecure-options=http; unsigned needs image
    let (http, hbase) = env.http();
    let unsigned = env.aci("h.aci", "example.com/h", "1.0.0", &env.key);
    http.route("/h.aci", Route::ok(read(&unsigned)));
    let hurl = format!("{hbase}/h.aci");
    let e = env.fails(&["fetch", &hurl]);
    assert!(e.contains("--insecure-options=http"), "{e}");
    let e = env.fails(&["--insecure-options=http", "fetch", &hurl]);
    assert!(e.contains("not signed"), "{e}");
    http.route("/h.aci.asc", Route::ok(read(&asc(&unsigned))));
    env.ok(&["--insecure-options=http", "fetch", &hurl]);
    // an https redirect to plain http is refused
    https.route("/r.aci", Route::redirect(&hurl));
    https.route("/r.aci.asc", Route::ok(read(&asc(&unsigned))));
    let e = env.fails(&["fetch", "--pull-policy=update", &format!("{base}/r.aci")]);
    assert!(e.contains("http"), "{e}");
    // redirects within https are followed
    https.route("/moved.aci", Route::redirect(&url));
    https.route("/moved.aci.asc", Route::ok(read(&asc(&aci))));
    env.ok(&["fetch", &format!("{base}/moved.aci")]);
    assert!(env.tmp_is_empty());
}

#[test]
fn pull_policies_use_the_remembered_remote() {
    let env = Env::new();
    env.trust_file("example.com", &env.key);
    let aci = env.aci("p.aci", "example.com/p", "1.0.0", &env.key);
    let (srv, base) = env.https();
    let mut route = Route::ok(read(&aci));
    route.etag = Some("\"v1\"".into());
    srv.route("/p.aci", route);
    srv.route("/p.aci.asc", Route::ok(read(&asc(&aci))));
    let url = format!("{base}/p.aci");

    let e = env.fails(&["fetch", "--pull-policy=never", &url]);
    assert!(e.contains("--pull-policy=never"), "{e}");
    let o = env.rkt(&["fetch", &url]);
    assert!(o.status.success(), "{}", common::describe("fetch", &o));
    let id = String::from_utf8(o.stdout).unwrap();
    // not on a terminal: one line when the download starts and one when it ends
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("Downloading {url}")) && err.contains(&format!("Downloaded {url}: ")),
        "{err}"
    );
    assert_eq!(srv.requests("/p.aci").len(), 1);
    // new: the stored image, no request
    assert_eq!(env.ok(&["fetch", "--pull-policy=new", &url]), id);
    assert_eq!(env.ok(&["fetch", "--pull-policy=never", &url]), id);
    assert_eq!(srv.requests("/p.aci").len(), 1);
    // update: revalidated with the ETag; 304 keeps the image
    assert_eq!(env.ok(&["fetch", "--pull-policy=update", &url]), id);
    let reqs = srv.requests("/p.aci");
    assert_eq!(reqs.len(), 2);
    assert_eq!(
        reqs[1].headers.get("if-none-match").map(String::as_str),
        Some("\"v1\"")
    );

    // a new version behind the same URL is fetched by update
    let v2 = env.aci("p2.aci", "example.com/p", "2.0.0", &env.key);
    let mut route = Route::ok(read(&v2)).header("Cache-Control", "max-age=3600");
    route.etag = Some("\"v2\"".into());
    srv.route("/p.aci", route);
    srv.route("/p.aci.asc", Route::ok(read(&asc(&v2))));
    let id2 = env.ok(&["fetch", "--pull-policy=update", &url]);
    assert_ne!(id2, id);
    // within max-age, update does not even ask
    assert_eq!(env.ok(&["fetch", "--pull-policy=update", &url]), id2);
    assert_eq!(srv.requests("/p.aci").len(), 3);
}

#[test]
fn broken_downloads_resume_or_store_nothing() {
    let env = Env::new();
    env.trust_file("example.com", &env.key);
    let aci = env.aci("t.aci", "example.com/t", "1.0.0", &env.key);
    let body = read(&aci);
    let (srv, base) = env.https();
    srv.route("/t.aci.asc", Route::ok(read(&asc(&aci))));

    // always cut short: nothing stored, no temp file left
    let mut r = Route::ok(body.clone());
    r.truncate_at = Some(body.len() / 2);
    srv.route("/t.aci", r);
    let e = env.fails(&["fetch", &format!("{base}/t.aci")]);
    assert!(e.contains("nothing was stored"), "{e}");
    assert_eq!(env.image_count(), 0);
    assert!(env.tmp_is_empty());

    // cut short once, then resumed with a Range request
    let mut r = Route::ok(body.clone());
    r.truncate_at = Some(body.len() / 3);
    r.truncate_times = 1;
    r.ranges = true;
    r.etag = Some("\"t\"".into());
    srv.route("/t2.aci", r);
    srv.route("/t2.aci.asc", Route::ok(read(&asc(&aci))));
    srv.clear_log();
    env.ok(&["fetch", &format!("{base}/t2.aci")]);
    let reqs = srv.requests("/t2.aci");
    assert_eq!(reqs.len(), 2);
    assert_eq!(
        reqs[1].headers.get("range").map(String::as_str),
        Some(format!("bytes={}-", body.len() / 3).as_str())
    );
    assert_eq!(env.image_count(), 1);
    assert!(env.tmp_is_empty());
}

#[test]
fn auth_d_credentials_are_sent() {
    let env = Env::new();
    env.trust_file("example.com", &env.key);
    let aci = env.aci("s.aci", "example.com/s", "1.0.0", &env.key);
    let (srv, base) = env.https();
    let mut r = Route::ok(read(&aci));
    r.require_auth = Some("Basic dXNlcjpzZWNyZXQ=".into());
    srv.route("/s.aci", r);
    srv.route("/s.aci.asc", Route::ok(read(&asc(&aci))));
    let e = env.fails(&["fetch", &format!("{base}/s.aci")]);
    assert!(e.contains("401") && e.contains("auth.d"), "{e}");
    let dir = env.root.join("local/auth.d");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("test.json"),
        r#"{"rktKind":"auth","rktVersion":"v1","domains":["127.0.0.1"],"type":"basic","credentials":{"user":"user","password":"secret"}}"#,
    )
    .unwrap();
    env.ok(&["fetch", &format!("{base}/s.aci")]);
}

// ---------------------------------------------------------------------------------------
// appc discovery on port 443 in a private network namespace

/// Runs `f` on a thread in a new network namespace with loopback up; threads and processes
/// it starts stay in that namespace, which disappears with them.
fn in_private_net(f: impl FnOnce() + Send + 'static) {
    let t = std::thread::spawn(move || {
        // SAFETY: unshare(2) with CLONE_NEWNET only changes this thread's namespace.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "unshare(CLONE_NEWNET): {}",
            std::io::Error::last_os_error()
        );
        let st = Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status()
            .unwrap();
        assert!(st.success());
        f();
    });
    if let Err(e) = t.join() {
        std::panic::resume_unwind(e);
    }
}

/// `rkt ARGS` in a private mount namespace whose /etc/hosts is `hosts`.
fn rkt_with_hosts(env: &Env, hosts: &Path, args: &[&str]) -> Output {
    let inner = env.cmd(args);
    let mut c = Command::new("unshare");
    c.args([
        "--mount",
        "sh",
        "-c",
        "mount --bind \"$0\" /etc/hosts && exec \"$@\"",
    ])
    .arg(hosts)
    .arg(inner.get_program())
    .args(inner.get_args())
    .env("SSL_CERT_FILE", &env.ca)
    .stdin(Stdio::null());
    c.output().unwrap()
}

fn discovery_env(env: &Env) -> (State, PathBuf) {
    let hosts = env.root.join("hosts");
    std::fs::write(
        &hosts,
        "127.0.0.1 localhost example.com storage.example.com\n",
    )
    .unwrap();
    let l = TcpListener::bind("127.0.0.1:443").unwrap();
    let state = State::default();
    httpd::serve(l, Some(env.tls.clone()), state.clone());
    let page = r#"<html><head>
        <meta name="ac-discovery" content="example.com/nginx https://storage.example.com/aci/{name}-{version}-{os}-{arch}.{ext}">
        <meta name="ac-discovery-pubkeys" content="example.com https://example.com/pubkeys.gpg">
        </head></html>"#;
    state.route("/nginx?ac-discovery=1", Route::ok(page));
    // keys are published one level up: discovery walks up for them
    state.route(
        "/?ac-discovery=1",
        Route::ok(r#"<meta name="ac-discovery-pubkeys" content="example.com https://example.com/pubkeys.gpg">"#),
    );
    state.route("/pubkeys.gpg", Route::ok(env.key.public.clone()));
    (state, hosts)
}

fn serve_aci(env: &Env, state: &State, path_version: &str, name: &str, version: &str) {
    let file = format!("{}-{version}.aci", name.replace('/', "_"));
    let aci = env.aci(&file, name, version, &env.key);
    let p = format!("/aci/example.com/nginx-{path_version}-linux-amd64.aci");
    state.route(&p, Route::ok(read(&aci)));
    state.route(&format!("{p}.asc"), Route::ok(read(&asc(&aci))));
}

#[test]
fn walkthrough_trust_and_fetch_by_name_with_discovery() {
    let env = Env::new();
    in_private_net(move || {
        let (state, hosts) = discovery_env(&env);
        serve_aci(&env, &state, "latest", "example.com/nginx", "v1.9.0");
        serve_aci(&env, &state, "v1.8.0", "example.com/nginx", "v1.8.0");
        let run = |args: &[&str]| rkt_with_hosts(&env, &hosts, args);
        let ok = |args: &[&str]| {
            let o = run(args);
            assert!(
                o.status.success(),
                "{}",
                common::describe(&format!("{args:?}"), &o)
            );
            String::from_utf8(o.stdout).unwrap()
        };
        let fails = |args: &[&str]| {
            let o = run(args);
            assert_eq!(
                o.status.code(),
                Some(254),
                "{}",
                common::describe(&format!("{args:?}"), &o)
            );
            String::from_utf8_lossy(&o.stderr).into_owned()
        };

        // without a trusted key, fetching by name explains how to trust one
        let e = fails(&["fetch", "example.com/nginx:latest"]);
        assert!(e.contains("rkt trust --prefix example.com/nginx"), "{e}");
        // trust by discovery (no terminal here, so the review is skipped explicitly)
        let e = fails(&["trust", "--prefix", "example.com/nginx"]);
        assert!(e.contains("not a terminal"), "{e}");
        ok(&[
            "trust",
            "--prefix",
            "example.com/nginx",
            "--skip-fingerprint-review",
        ]);
        assert!(env
            .root
            .join("local/trustedkeys/prefix.d/example.com/nginx")
            .join(&env.key.fpr)
            .is_file());

        let latest = ok(&["fetch", "example.com/nginx:latest"]);
        // rkt run discovers, downloads and verifies an image it lacks, then runs it
        let out = ok(&[
            "run",
            "example.com/nginx:v1.8.0",
            "--exec",
            "/bin/busybox",
            "--",
            "cat",
            "/data",
        ]);
        assert_eq!(
            out, "example.com_nginx-v1.8.0.aci",
            "the pod ran the v1.8.0 image"
        );
        state.clear_log();
        let v18 = ok(&["fetch", "example.com/nginx:v1.8.0"]);
        assert!(
            state.log.lock().unwrap().is_empty(),
            "rkt run stored v1.8.0, so fetch needs no download"
        );
        assert_ne!(latest, v18);
        let list = ok(&["image", "list"]);
        assert!(list.contains("example.com/nginx"), "{list}");
        // new: stored images are used without asking the server
        state.clear_log();
        assert_eq!(ok(&["fetch", "example.com/nginx:v1.8.0"]), v18);
        assert!(state.log.lock().unwrap().is_empty());
        // never: only the store
        let e = fails(&["fetch", "--pull-policy=never", "example.com/nginx:v2"]);
        assert!(e.contains("--pull-policy=never"), "{e}");

        // the server hands out an image with another name or version: refused, nothing stored
        serve_aci(&env, &state, "v2.0.0", "example.com/evil", "v2.0.0");
        let e = fails(&["fetch", "example.com/nginx:v2.0.0"]);
        assert!(e.contains("\"example.com/evil\""), "{e}");
        serve_aci(&env, &state, "v3.0.0", "example.com/nginx", "v2.9.0");
        let e = fails(&["fetch", "example.com/nginx:v3.0.0"]);
        assert!(e.contains("version") && e.contains("v2.9.0"), "{e}");
        assert_eq!(env.image_count(), 2);
        // no discovery page: says where it looked
        let e = fails(&["fetch", "example.com/apache:1"]);
        assert!(
            e.contains("cannot discover") && e.contains("example.com/apache"),
            "{e}"
        );
    });
}

#[test]
fn trust_keys_from_https_during_a_name_fetch() {
    let env = Env::new();
    in_private_net(move || {
        let (state, hosts) = discovery_env(&env);
        serve_aci(&env, &state, "v1.8.0", "example.com/nginx", "v1.8.0");
        let o = rkt_with_hosts(
            &env,
            &hosts,
            &[
                "--trust-keys-from-https",
                "fetch",
                "example.com/nginx:v1.8.0",
            ],
        );
        assert!(o.status.success(), "{}", common::describe("fetch", &o));
        assert!(env
            .root
            .join("local/trustedkeys/prefix.d/example.com/nginx")
            .join(&env.key.fpr)
            .is_file());
    });
}

/// `script` gives rkt a terminal; the answers come from our pipe.
fn on_terminal(env: &Env, args: &[&str], answers: &str) -> Output {
    use std::io::Write;
    let inner = env.cmd(args);
    let mut line = String::from("exec");
    for a in std::iter::once(inner.get_program()).chain(inner.get_args()) {
        line.push_str(&format!(" '{}'", a.to_str().unwrap()));
    }
    let mut child = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(answers.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn trust_asks_on_a_terminal() {
    let env = Env::new();
    let key = env.root.join("k.asc");
    std::fs::write(&key, &env.key.public).unwrap();
    let k = key.to_str().unwrap();
    let stored = env.root.join("local/trustedkeys/root.d").join(&env.key.fpr);

    let o = on_terminal(&env, &["trust", "--root", k], "no\n");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("Are you sure you want to trust this key (yes/no)?"),
        "{out}"
    );
    assert!(
        out.contains(&env.key.fpr) && out.contains("Not trusting key"),
        "{out}"
    );
    assert!(!stored.exists());

    let o = on_terminal(&env, &["trust", "--root", k], "perhaps\nyes\n");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("Please enter yes or no"), "{out}");
    assert!(stored.is_file(), "{out}");
}
