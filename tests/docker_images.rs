//! Docker and OCI images end to end: a real registry (Debian's docker-registry on 127.0.0.1),
//! multi-layer images built with umoci from busybox-static (whiteouts, opaque directories,
//! hard links across layers, config), pushed with skopeo, pulled by `rkt fetch docker://`,
//! converted by `docker2aci`, and imported from `docker save`-style and OCI archives; sparse
//! files in layers; a registry that requires basic auth.

mod common;
#[path = "support/token.rs"]
mod token;

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const DOCKER2ACI: &str = env!("CARGO_BIN_EXE_docker2aci");

/// A docker-registry on a free loopback port, killed on drop.
struct Registry {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Registry {
    fn start(dir: &Path) -> Registry {
        Registry::start_with(dir, "")
    }

    /// Start with `extra` appended to the configuration (e.g. an `auth:` section).
    fn start_with(dir: &Path, extra: &str) -> Registry {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n{extra}",
            dir.join("data").display()
        );
        std::fs::write(dir.join("config.yml"), config).unwrap();
        let log = std::fs::File::create(dir.join("log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start docker-registry (package docker-registry)");
        let reg = Registry {
            child,
            port,
            dir: dir.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }

    fn url(&self, name: &str) -> String {
        format!("docker://127.0.0.1:{}/{name}", self.port)
    }

    fn push(&self, layout: &Path, tag: &str, name: &str) {
        run(Command::new("skopeo").args([
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            &format!("oci:{}:{tag}", layout.display()),
            &format!("docker://127.0.0.1:{}/{name}", self.port),
        ]));
    }

    /// Blob GETs the registry served for `digest`.
    fn blob_gets(&self, digest: &str) -> usize {
        let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
        log.lines()
            .filter(|l| {
                l.contains("GET /v2/")
                    && l.contains(&format!("/blobs/{digest}"))
                    && l.contains("\" 200 ")
            })
            .count()
    }

    fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Build an OCI layout with tags `base` (busybox rootfs), `app` (base + a layer with a
/// whiteout, an opaque directory and a hard link to a base file, plus a config) and `app2`
/// (base + another layer).
fn build_images(dir: &Path) -> PathBuf {
    let oci = dir.join("oci");
    let script = r#"
OCI="$1"; W="$2"
umoci init --layout "$OCI"
umoci new --image "$OCI:base"
umoci unpack --image "$OCI:base" "$W/bundle" >/dev/null
R="$W/bundle/rootfs"
mkdir -p "$R/bin" "$R/etc" "$R/data/keep" "$R/data/opq/sub" "$R/gone"
cp /bin/busybox "$R/bin/busybox"
ln -s busybox "$R/bin/sh"
echo root:x:0:0:root:/root:/bin/sh > "$R/etc/passwd"
echo a > "$R/data/keep/a"; echo old1 > "$R/data/opq/old1"; echo old2 > "$R/data/opq/sub/old2"
echo gone > "$R/gone/file"; echo orig > "$R/bin/orig"
umoci repack --image "$OCI:base" "$W/bundle" >/dev/null
python3 - "$W" <<'PY'
import io, sys, tarfile
w = sys.argv[1]
def add(t, name, data=None, kind=tarfile.REGTYPE, link=None, mode=0o644):
    ti = tarfile.TarInfo(name); ti.type = kind; ti.mode = mode; ti.mtime = 1500000000
    if link: ti.linkname = link
    if data is not None: ti.size = len(data)
    t.addfile(ti, io.BytesIO(data) if data is not None else None)
with tarfile.open(w + "/l2.tar", "w", format=tarfile.PAX_FORMAT) as t:
    add(t, ".wh.gone", b"")
    add(t, "data/opq", kind=tarfile.DIRTYPE, mode=0o755)
    add(t, "data/opq/.wh..wh..opq", b"")
    add(t, "data/opq/new", b"new\n")
    add(t, "bin/link", kind=tarfile.LNKTYPE, link="bin/orig")
    add(t, "data/keep/b", b"b\n")
with tarfile.open(w + "/l3.tar", "w", format=tarfile.PAX_FORMAT) as t:
    add(t, "etc/.wh.passwd", b"")
    add(t, "srv", kind=tarfile.DIRTYPE, mode=0o755)
    add(t, "srv/index.html", b"hello\n")
PY
umoci raw add-layer --image "$OCI:base" --tag app "$W/l2.tar"
umoci config --image "$OCI:app" --config.entrypoint /bin/sh --config.entrypoint -c \
  --config.cmd 'echo hi' --config.env FOO=bar --config.user 1000:1000 --config.workingdir /data \
  --config.volume /var/cache/nginx --config.exposedports 80/tcp
umoci raw add-layer --image "$OCI:base" --tag app2 "$W/l3.tar"
"#;
    bash_script(script, &[oci.as_os_str(), dir.as_os_str()]);
    oci
}

/// Run a bash script (`set -eu`) with `args` as `$1`, `$2`, …; fails the test if it fails.
fn bash_script(script: &str, args: &[&std::ffi::OsStr]) {
    run(Command::new("bash")
        .arg("-euc")
        .arg(script)
        .arg("build")
        .args(args));
}

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("rkt-docker-")
        .tempdir()
        .unwrap()
}

/// The test images built in `dir` (then `extend`ed with more), and a registry started there
/// holding the `pushed` ones: (layout tag, repository:tag).
fn registry_with(
    dir: &Path,
    extend: impl FnOnce(&Path),
    pushed: &[(&str, &str)],
) -> (PathBuf, Registry) {
    let oci = build_images(dir);
    extend(&oci);
    let reg = Registry::start(&dir.join("registry"));
    for (tag, name) in pushed {
        reg.push(&oci, tag, name);
    }
    (oci, reg)
}

fn fetch_docker(store: &Path, url: &str) -> (String, String) {
    let o = rkt(
        store,
        &["--insecure-options=image,http", "fetch", "--full", url],
    );
    assert!(
        o.status.success(),
        "{}",
        describe(&format!("fetch {url}"), &o)
    );
    let (out, err) = out_text(&o);
    (out.trim().to_string(), err)
}

fn layer_digests(oci: &Path, tag: &str) -> Vec<String> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(oci.join("index.json")).unwrap()).unwrap();
    let m = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap();
    let hex = m["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(oci.join("blobs/sha256").join(hex)).unwrap())
            .unwrap();
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

fn assert_app_tree(rootfs: &Path) {
    for p in [
        "bin/busybox",
        "bin/orig",
        "bin/link",
        "data/keep/a",
        "data/keep/b",
        "data/opq/new",
        "etc/passwd",
    ] {
        assert!(
            rootfs.join(p).exists(),
            "{p} should be in the rendered rootfs"
        );
    }
    for p in [
        "gone",
        "data/opq/old1",
        "data/opq/sub",
        "data/opq/.wh..wh..opq",
        ".wh.gone",
    ] {
        assert!(!rootfs.join(p).exists(), "{p} should have been whited out");
    }
    let (a, b) = (
        std::fs::metadata(rootfs.join("bin/orig")).unwrap(),
        std::fs::metadata(rootfs.join("bin/link")).unwrap(),
    );
    assert_eq!(
        a.ino(),
        b.ino(),
        "a hard link across layers should share its inode"
    );
    assert!(std::fs::symlink_metadata(rootfs.join("bin/sh"))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn registry_pull_converts_applies_whiteouts_and_shares_layers() {
    let t = tmp();
    let (oci, reg) = registry_with(
        t.path(),
        |_| {},
        &[("app", "test/app:v1"), ("app2", "test/app2:latest")],
    );
    let store = t.path().join("store");

    // Docker images are unsigned: refused without --insecure-options=image.
    let err = rkt_fails(
        &store,
        &["--insecure-options=http", "fetch", &reg.url("test/app:v1")],
    );
    assert!(err.contains("--insecure-options=image"), "{err}");
    // A plain-HTTP registry needs --insecure-options=http.
    let err = rkt_fails(
        &store,
        &["--insecure-options=image", "fetch", &reg.url("test/app:v1")],
    );
    assert!(err.contains("--insecure-options=http"), "{err}");
    assert!(list_ids(&store).is_empty());

    let (id, err) = fetch_docker(&store, &reg.url("test/app:v1"));
    assert!(is_full_id(&id), "{id}");
    assert!(err.contains("2 layer(s) downloaded"), "{err}");

    // The manifest, converted as docker2aci does.
    let m: serde_json::Value =
        serde_json::from_str(&rkt_ok(&store, &["image", "cat-manifest", &id])).unwrap();
    let name = format!("127.0.0.1_{}/test/app", reg.port);
    assert_eq!(m["name"], name.as_str());
    assert_eq!(
        m["labels"][0],
        serde_json::json!({"name": "version", "value": "v1"})
    );
    assert_eq!(
        m["app"]["exec"],
        serde_json::json!(["/bin/sh", "-c", "echo hi"])
    );
    assert_eq!(m["app"]["user"], "1000");
    assert_eq!(m["app"]["group"], "1000");
    assert_eq!(m["app"]["workingDirectory"], "/data");
    assert_eq!(
        m["app"]["environment"],
        serde_json::json!([{"name": "FOO", "value": "bar"}])
    );
    assert_eq!(
        m["app"]["mountPoints"],
        serde_json::json!([{"name": "volume-var-cache-nginx", "path": "/var/cache/nginx"}])
    );
    assert_eq!(
        m["app"]["ports"],
        serde_json::json!([{"name": "80-tcp", "protocol": "tcp", "port": 80}])
    );

    // Listed by its Docker name, and exported byte for byte.
    let list = rkt_ok(&store, &["image", "list"]);
    assert!(list.contains(&format!("{name}:v1")), "{list}");
    let aci = export(&store, &id, t.path());
    assert_eq!(sha512_id(&aci), id, "export must hash to the image ID");
    let aci_path = t.path().join("app.aci");
    std::fs::write(&aci_path, &aci).unwrap();
    run(Command::new("actool").arg("validate").arg(&aci_path));

    // Rendered with whiteouts, opaque dirs and cross-layer hard links applied.
    let render = t.path().join("render");
    rkt_ok(&store, &["image", "render", &id, render.to_str().unwrap()]);
    assert_app_tree(&render.join("rootfs"));

    // A second image with the same base downloads and stores nothing for the base.
    let base = layer_digests(&oci, "app2")[0].clone();
    assert_eq!(
        reg.blob_gets(&base),
        1,
        "the base layer was downloaded once"
    );
    let (id2, err) = fetch_docker(&store, &reg.url("test/app2"));
    assert!(
        err.contains("1 layer(s) downloaded") && err.contains("1 already in the store"),
        "{err}"
    );
    assert_eq!(
        reg.blob_gets(&base),
        1,
        "the shared base layer must not be downloaded again"
    );
    let render2 = t.path().join("render2");
    rkt_ok(
        &store,
        &["image", "render", &id2, render2.to_str().unwrap()],
    );
    assert!(render2.join("rootfs/srv/index.html").exists());
    assert!(
        !render2.join("rootfs/etc/passwd").exists(),
        "whited-out file must be gone"
    );
    assert!(
        render2.join("rootfs/gone/file").exists(),
        "app2 does not delete /gone"
    );

    // Pulling again with the default policy uses the store; removing both images and
    // collecting garbage leaves no layers behind.
    let (again, _) = fetch_docker(&store, &reg.url("test/app:v1"));
    assert_eq!(again, id);
    rkt_ok(&store, &["image", "rm", &id, &id2]);
    rkt_ok(&store, &["image", "gc", "--grace-period=0s"]);
    let packs: u64 = std::fs::read_dir(store.join("packs"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert_eq!(packs, 0, "gc should reclaim every layer's content");
}

#[test]
fn docker2aci_writes_the_image_rkt_fetch_stores() {
    let t = tmp();
    let (oci, reg) = registry_with(t.path(), |_| {}, &[("app", "test/app:v1")]);
    let out = t.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let o = Command::new(DOCKER2ACI)
        .args([
            "--insecure-allow-http",
            "--output-dir",
            out.to_str().unwrap(),
            &reg.url("test/app:v1"),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", describe("docker2aci", &o));
    let aci = out.join("test-app-v1.aci");
    assert!(
        aci.exists(),
        "docker2aci should name the file test-app-v1.aci"
    );
    run(Command::new("actool").arg("validate").arg(&aci));
    let store = t.path().join("store");
    let (pulled, _) = fetch_docker(&store, &reg.url("test/app:v1"));
    assert_eq!(
        image_id(&aci),
        pulled,
        "docker2aci's ACI is the image rkt stores"
    );
    let store2 = t.path().join("store2");
    assert_eq!(fetch(&store2, &aci), pulled);

    // --compression=none writes the plain tar.
    let o = Command::new(DOCKER2ACI)
        .args([
            "--compression=none",
            "--output-dir",
            out.to_str().unwrap(),
            oci.to_str().unwrap(),
            "--image",
            "app",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", describe("docker2aci layout", &o));
    let plain = std::fs::read(out.join("oci-app.aci")).unwrap();
    assert_eq!(&plain[257..262], b"ustar");
}

#[test]
fn archives_made_by_skopeo_import() {
    let t = tmp();
    let oci = build_images(t.path());
    let dockerfile = t.path().join("app.docker");
    let ociarchive = t.path().join("app.oci.tar");
    run(Command::new("skopeo").args([
        "copy",
        "--quiet",
        &format!("oci:{}:app", oci.display()),
        &format!("docker-archive:{}:test/app:v1", dockerfile.display()),
    ]));
    run(Command::new("skopeo").args([
        "copy",
        "--quiet",
        &format!("oci:{}:app", oci.display()),
        &format!("oci-archive:{}:v1", ociarchive.display()),
    ]));
    let store = t.path().join("store");
    for archive in [&dockerfile, &ociarchive] {
        let id = fetch(&store, archive);
        let render = t.path().join(format!(
            "render-{}",
            archive.file_name().unwrap().to_string_lossy()
        ));
        rkt_ok(&store, &["image", "render", &id, render.to_str().unwrap()]);
        assert_app_tree(&render.join("rootfs"));
        let m: serde_json::Value =
            serde_json::from_str(&rkt_ok(&store, &["image", "cat-manifest", &id])).unwrap();
        assert_eq!(
            m["app"]["exec"],
            serde_json::json!(["/bin/sh", "-c", "echo hi"])
        );
    }
    let list = rkt_ok(&store, &["image", "list"]);
    assert!(list.contains("test/app:v1"), "{list}");
    // An OCI layout directory by path works too, and reuses every stored layer.
    let o = rkt(
        &store,
        &["--insecure-options=image", "fetch", oci.to_str().unwrap()],
    );
    assert!(
        !o.status.success(),
        "a layout with several images needs a choice"
    );
    assert!(
        out_text(&o).1.contains("several images") || out_text(&o).1.contains("choose"),
        "{}",
        describe("layout", &o)
    );
}

/// docker2aci's fixtures in shared/ (beside the clone in CI, two levels up in a worktree).
fn docker2aci_fixtures() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    ["../shared", "../../shared"]
        .iter()
        .map(|s| root.join(s).join("testdata/appc/docker2aci-fixtures"))
        .find(|p| p.is_dir())
        .expect("shared/testdata/appc/docker2aci-fixtures beside the repository")
}

#[test]
fn hostile_docker_inputs_store_nothing() {
    let t = tmp();
    let store = t.path().join("store");
    let fixtures = docker2aci_fixtures();
    let started = Instant::now();
    let err = rkt_fails(
        &store,
        &[
            "--insecure-options=image",
            "fetch",
            fixtures
                .join("fixture-test-depsloop.docker")
                .to_str()
                .unwrap(),
        ],
    );
    assert!(err.contains("loops"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let err = rkt_fails(
        &store,
        &[
            "--insecure-options=image",
            "fetch",
            fixtures
                .join("fixture-test-invalidlayerid.docker")
                .to_str()
                .unwrap(),
        ],
    );
    assert!(err.contains("invalid"), "{err}");
    for f in [
        "fixture-test-depsloop.docker",
        "fixture-test-invalidlayerid.docker",
    ] {
        let o = Command::new(DOCKER2ACI)
            .current_dir(t.path())
            .arg(fixtures.join(f))
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{}", describe(f, &o));
    }
    assert!(!Path::new("/etc/.wh.x").exists());

    // A registry blob whose bytes do not match its digest: refused, nothing stored.
    let (oci, reg) = registry_with(t.path(), |_| {}, &[("app", "test/app:v1")]);
    let top = layer_digests(&oci, "app")[1].clone();
    let blob = reg.blob_path(&top);
    let mut data = std::fs::read(&blob).unwrap();
    let last = data.len() - 1;
    data[last] ^= 0xff;
    std::fs::write(&blob, &data).unwrap();
    let err = rkt_fails(
        &store,
        &[
            "--insecure-options=image,http",
            "fetch",
            &reg.url("test/app:v1"),
        ],
    );
    assert!(err.contains("digest") || err.contains("corrupt"), "{err}");
    assert!(list_ids(&store).is_empty(), "nothing may be stored");
    rkt_ok(&store, &["image", "gc", "--grace-period=0s"]);
    let packs: u64 = std::fs::read_dir(store.join("packs"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert_eq!(
        packs, 0,
        "the base layer of the failed pull must not stay in the store"
    );
}

#[test]
fn rkt_run_pulls_and_runs_docker_images() {
    let t = tmp();
    let (_, reg) = registry_with(t.path(), |_| {}, &[("app", "test/app:v1")]);
    let store = t.path().join("store");

    // rkt run pulls what it lacks and runs the image's Entrypoint + Cmd as its User.
    let o = rkt(
        &store,
        &[
            "--insecure-options=image,http",
            "run",
            &reg.url("test/app:v1"),
        ],
    );
    assert!(o.status.success(), "{}", describe("run docker://", &o));
    assert_eq!(out_text(&o).0.trim(), "hi");

    // The converted image runs by its ID too, with the image's user and working directory.
    let ids = list_ids(&store);
    assert_eq!(ids.len(), 1, "{ids:?}");
    let short = &ids[0][..7 + 32];
    let o = rkt(
        &store,
        &[
            "run",
            short,
            "--exec",
            "/bin/sh",
            "--",
            "-c",
            "echo $(id -u) $(pwd)",
        ],
    );
    assert!(o.status.success(), "{}", describe("run sha512-", &o));
    assert_eq!(out_text(&o).0.trim(), "1000 /data");
}

/// Add a fourth layer to `app` (tag `app3`): a whited-out directory re-created implicitly by a
/// file below it, a second hard link to a base file (a group across three layers), an opaque
/// directory hiding the previous layer's file, and a directory replaced by a symlink.
fn add_app3(dir: &Path, oci: &Path) {
    let script = r#"
OCI="$1"; W="$2"
python3 - "$W" <<'PY'
import io, sys, tarfile
w = sys.argv[1]
def add(t, name, data=None, kind=tarfile.REGTYPE, link=None, mode=0o644):
    ti = tarfile.TarInfo(name); ti.type = kind; ti.mode = mode; ti.mtime = 1600000000
    if link: ti.linkname = link
    if data is not None: ti.size = len(data)
    t.addfile(ti, io.BytesIO(data) if data is not None else None)
with tarfile.open(w + "/l4.tar", "w", format=tarfile.PAX_FORMAT) as t:
    add(t, "data/.wh.keep", b"")
    add(t, "data/keep/c", b"c\n")
    add(t, "bin/link2", kind=tarfile.LNKTYPE, link="bin/orig")
    add(t, "data/opq/.wh..wh..opq", b"")
    add(t, "data/opq/newer", b"newer\n")
    add(t, ".wh.srvdir", b"")
    add(t, "srvdir", kind=tarfile.SYMTYPE, link="data")
with tarfile.open(w + "/l3b.tar", "w", format=tarfile.PAX_FORMAT) as t:
    add(t, "srvdir", kind=tarfile.DIRTYPE, mode=0o700)
    add(t, "srvdir/x", b"x\n")
PY
umoci raw add-layer --image "$OCI:app" --tag app3 "$W/l3b.tar"
umoci raw add-layer --image "$OCI:app3" "$W/l4.tar"
"#;
    bash_script(script, &[oci.as_os_str(), dir.as_os_str()]);
}

#[test]
fn docker2aci_nosquash_renders_exactly_the_squashed_image() {
    let t = tmp();
    let (oci, reg) = registry_with(
        t.path(),
        |oci| add_app3(t.path(), oci),
        &[("app3", "test/app3:v1")],
    );
    let out = t.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let o = Command::new(DOCKER2ACI)
        .args([
            "--nosquash",
            "--insecure-allow-http",
            "--output-dir",
            out.to_str().unwrap(),
            &reg.url("test/app3:v1"),
        ])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}",
        describe("docker2aci --nosquash", &o)
    );
    // Base first, top (number 0) last; one per layer.
    let printed: Vec<PathBuf> = out_text(&o).0.lines().map(PathBuf::from).collect();
    let names: Vec<String> = (0..4)
        .rev()
        .map(|n| format!("test-app3-v1-linux-amd64-{n}.aci"))
        .collect();
    let expected: Vec<PathBuf> = names.iter().map(|n| out.join(n)).collect();
    assert_eq!(printed, expected);
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    for aci in &expected {
        run(Command::new("actool").arg("validate").arg(aci));
    }

    // The top ACI pins every lower one by name and image ID, base first.
    let store = t.path().join("store");
    let ids: Vec<String> = expected.iter().map(|a| fetch(&store, a)).collect();
    for (aci, id) in expected.iter().zip(&ids) {
        assert_eq!(&image_id(aci), id);
    }
    let m: serde_json::Value =
        serde_json::from_str(&rkt_ok(&store, &["image", "cat-manifest", &ids[3]])).unwrap();
    let deps = m["dependencies"].as_array().expect("dependencies");
    let dep_ids: Vec<&str> = deps
        .iter()
        .map(|d| d["imageID"].as_str().unwrap())
        .collect();
    assert_eq!(
        dep_ids,
        ids[..3].iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(m["pathWhitelist"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("/data/keep/c")));
    assert_eq!(
        m["app"]["exec"],
        serde_json::json!(["/bin/sh", "-c", "echo hi"])
    );
    let lower: serde_json::Value =
        serde_json::from_str(&rkt_ok(&store, &["image", "cat-manifest", &ids[0]])).unwrap();
    let base_digest = layer_digests(&oci, "app3")[0].replace(':', "-");
    assert_eq!(
        lower["name"],
        format!("127.0.0.1_{}/test/app3-{base_digest}", reg.port)
    );
    assert!(lower.get("app").is_none(), "lower layers are not runnable");

    // Rendered through its dependencies it is exactly the squashed image.
    let (squashed, _) = fetch_docker(&store, &reg.url("test/app3:v1"));
    let (a, b) = (t.path().join("squashed"), t.path().join("layered"));
    rkt_ok(&store, &["image", "render", &squashed, a.to_str().unwrap()]);
    rkt_ok(&store, &["image", "render", &ids[3], b.to_str().unwrap()]);
    let (a, b) = (a.join("rootfs"), b.join("rootfs"));
    let diffs = compare_trees(&a, &b, ALL_CHECKS);
    assert!(diffs.is_empty(), "layered render differs: {diffs:#?}");
    let diffs = compare_trees(&b, &a, ALL_CHECKS);
    assert!(diffs.is_empty(), "layered render differs: {diffs:#?}");
    assert!(b.join("data/keep/c").exists());
    assert!(!b.join("data/keep/a").exists(), "whited-out dir's files");
    assert!(!b.join("data/opq/new").exists(), "opaque dir hides layer 2");
    assert!(b.join("data/opq/newer").exists());
    assert!(std::fs::symlink_metadata(b.join("srvdir"))
        .unwrap()
        .file_type()
        .is_symlink());
    let ino = |p: &str| std::fs::metadata(b.join(p)).unwrap().ino();
    assert_eq!(ino("bin/orig"), ino("bin/link2"));
    assert_eq!(ino("bin/orig"), ino("bin/link"));

    // The top ACI runs, with its dependencies' files.
    let o = rkt(
        &store,
        &[
            "run",
            &ids[3],
            "--exec",
            "/bin/sh",
            "--",
            "-c",
            "cat /data/keep/c; ls /data/opq",
        ],
    );
    assert!(o.status.success(), "{}", describe("run layered", &o));
    assert_eq!(out_text(&o).0.trim(), "c\nnewer");
}

/// Tag `multi`: an OCI index of `app` as linux/amd64 and `app2` as linux/arm64.
fn add_multi(oci: &Path) {
    let script = r#"
import hashlib, json, os, sys
oci = sys.argv[1]
idx = json.load(open(oci + "/index.json"))
by_tag = {m["annotations"]["org.opencontainers.image.ref.name"]: m for m in idx["manifests"]}
def plat(tag, arch):
    d = {k: by_tag[tag][k] for k in ("mediaType", "digest", "size")}
    d["platform"] = {"os": "linux", "architecture": arch}
    return d
body = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                   "manifests": [plat("app", "amd64"), plat("app2", "arm64")]}).encode()
h = hashlib.sha256(body).hexdigest()
open(oci + "/blobs/sha256/" + h, "wb").write(body)
idx["manifests"].append({"mediaType": "application/vnd.oci.image.index.v1+json",
    "digest": "sha256:" + h, "size": len(body),
    "annotations": {"org.opencontainers.image.ref.name": "multi"}})
json.dump(idx, open(oci + "/index.json", "w"))
"#;
    run(Command::new("python3").arg("-c").arg(script).arg(oci));
}

#[test]
fn platform_selects_the_image_of_a_manifest_list() {
    let t = tmp();
    let (oci, reg) = registry_with(t.path(), add_multi, &[]);
    run(Command::new("skopeo").args([
        "copy",
        "--quiet",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}:multi", oci.display()),
        &reg.url("test/multi:v1"),
    ]));
    let store = t.path().join("store");
    let url = reg.url("test/multi:v1");
    let render = |id: &str, dir: &str| {
        let d = t.path().join(dir);
        rkt_ok(&store, &["image", "render", id, d.to_str().unwrap()]);
        d.join("rootfs")
    };
    // linux/amd64 by default: `app`.
    let (amd, _) = fetch_docker(&store, &url);
    let r = render(&amd, "amd");
    assert!(r.join("data/opq/new").exists() && !r.join("srv").exists());
    // --platform picks `app2`.
    let o = rkt(
        &store,
        &[
            "--insecure-options=image,http",
            "fetch",
            "--full",
            "--platform=linux/arm64",
            &url,
        ],
    );
    assert!(o.status.success(), "{}", describe("fetch --platform", &o));
    let arm = out_text(&o).0.trim().to_string();
    assert_ne!(arm, amd);
    assert!(render(&arm, "arm").join("srv/index.html").exists());
    // A platform the list lacks, or a malformed one, is refused and stores nothing new.
    let before = list_ids(&store);
    let err = rkt_fails(
        &store,
        &[
            "--insecure-options=image,http",
            "fetch",
            "--platform=linux/s390x",
            &url,
        ],
    );
    assert!(
        err.contains("linux/s390x") || err.contains("s390x"),
        "{err}"
    );
    let err = rkt_fails(
        &store,
        &[
            "--insecure-options=image,http",
            "fetch",
            "--platform=linux",
            &url,
        ],
    );
    assert!(err.contains("OS/ARCH"), "{err}");
    assert_eq!(list_ids(&store), before);

    // docker2aci --platform converts the same image rkt fetched.
    let out = t.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let o = Command::new(DOCKER2ACI)
        .args([
            "--insecure-allow-http",
            "--platform",
            "linux/arm64",
            "--output-dir",
            out.to_str().unwrap(),
            &url,
        ])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}",
        describe("docker2aci --platform", &o)
    );
    assert_eq!(image_id(&out.join("test-multi-v1.aci")), arm);
}

/// Sparse files as GNU tar packs them, each in its own layer on top of `base` (tag `sparse`):
/// `/sparse/gnu.img` (old GNU 'S' entries: 1 GiB, "head" at 0, "data\n" at 512 MiB, a hole up
/// to the end), `/sparse/posix.img` (PAX 1.0: 8 MiB, "tail" in its last bytes) and
/// `/sparse/v01.img` (PAX 0.1: 4 MiB of hole only). The originals stay in `dir/s1..s3`.
fn add_sparse(dir: &Path, oci: &Path) {
    let script = r#"
OCI="$1"; W="$2"
mkdir -p "$W/s1/sparse" "$W/s2/sparse" "$W/s3/sparse"
f="$W/s1/sparse/gnu.img"; truncate -s 1G "$f"
printf head | dd of="$f" conv=notrunc status=none
echo data | dd of="$f" bs=1M seek=512 conv=notrunc status=none
f="$W/s2/sparse/posix.img"; truncate -s 8M "$f"
printf tail | dd of="$f" bs=1 seek=$((8 * 1024 * 1024 - 4)) conv=notrunc status=none
truncate -s 4M "$W/s3/sparse/v01.img"
tar --sparse --format=gnu -C "$W/s1" -cf "$W/ls1.tar" sparse
tar --sparse --format=posix -C "$W/s2" -cf "$W/ls2.tar" sparse/posix.img
tar --sparse --sparse-version=0.1 --format=posix -C "$W/s3" -cf "$W/ls3.tar" sparse/v01.img
umoci raw add-layer --image "$OCI:base" --tag sparse "$W/ls1.tar"
umoci raw add-layer --image "$OCI:sparse" "$W/ls2.tar"
umoci raw add-layer --image "$OCI:sparse" "$W/ls3.tar"
"#;
    bash_script(script, &[oci.as_os_str(), dir.as_os_str()]);
    let ls1 = std::fs::read(dir.join("ls1.tar")).unwrap();
    assert_eq!(
        ls1[512 + 156],
        b'S',
        "GNU tar --sparse wrote a type S entry"
    );
    assert!(ls1.len() < 1 << 20, "the layer holds no hole");
}

const SPARSE_FILES: [(&str, &str, u64); 3] = [
    ("s1", "sparse/gnu.img", 1 << 30),
    ("s2", "sparse/posix.img", 8 << 20),
    ("s3", "sparse/v01.img", 4 << 20),
];

/// The sparse files under `root` are the originals: same size and bytes, and still sparse.
fn assert_sparse_files(dir: &Path, root: &Path, what: &str) {
    for (src, rel, size) in SPARSE_FILES {
        let (orig, got) = (dir.join(src).join(rel), root.join(rel));
        let md = std::fs::metadata(&got).unwrap_or_else(|e| panic!("{what}: /{rel}: {e}"));
        assert_eq!(md.len(), size, "{what}: size of /{rel}");
        assert!(
            md.blocks() * 512 < 1 << 20,
            "{what}: /{rel} should stay sparse, has {} blocks",
            md.blocks()
        );
        run(Command::new("cmp").arg(&orig).arg(&got));
    }
}

#[test]
fn sparse_files_in_layers_pull_run_export_and_convert() {
    let t = tmp();
    let (oci, reg) = registry_with(
        t.path(),
        |oci| add_sparse(t.path(), oci),
        &[("sparse", "test/sparse:v1")],
    );
    let store = t.path().join("store");
    let (id, _) = fetch_docker(&store, &reg.url("test/sparse:v1"));

    // The squashed image keeps the files sparse: its export is small, is its ID, and GNU tar
    // extracts the original bytes from it.
    rkt_ok(&store, &["image", "verify", &id]);
    let exported = export(&store, &id, t.path());
    assert_eq!(sha512_id(&exported), id);
    assert!(
        exported.len() < 16 << 20,
        "the export holds no hole: {} bytes",
        exported.len()
    );
    let x = t.path().join("extracted");
    std::fs::create_dir(&x).unwrap();
    let exported_file = t.path().join("sparse-export.aci");
    std::fs::write(&exported_file, &exported).unwrap();
    run(Command::new("tar")
        .arg("-xf")
        .arg(&exported_file)
        .arg("-C")
        .arg(&x));
    assert_sparse_files(t.path(), &x.join("rootfs"), "GNU tar extracting the export");

    // Rendered and run: right sizes and bytes, holes read as zeros.
    let r = t.path().join("render");
    rkt_ok(&store, &["image", "render", &id, r.to_str().unwrap()]);
    assert_sparse_files(t.path(), &r.join("rootfs"), "rkt image render");
    let md5 = Command::new("md5sum")
        .args([
            "s1/sparse/gnu.img",
            "s2/sparse/posix.img",
            "s3/sparse/v01.img",
        ])
        .current_dir(t.path())
        .output()
        .unwrap();
    let sums: Vec<String> = String::from_utf8_lossy(&md5.stdout)
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    let expected = format!(
        "gnu.img 1073741824\nposix.img 8388608\nv01.img 4194304\n{}  gnu.img\n{}  posix.img\n{}  v01.img",
        sums[0], sums[1], sums[2]
    );
    // Every way of assembling the rootfs: rendered tree, lazy FUSE tree, private copy.
    for mode in ["rendered", "lazy", "copy"] {
        let o = rkt(
            &store,
            &[
                "run",
                &format!("--rootfs={mode}"),
                &id,
                "--exec",
                "/bin/sh",
                "--",
                "-c",
                "cd /sparse && stat -c '%n %s' gnu.img posix.img v01.img && md5sum gnu.img posix.img v01.img",
            ],
        );
        assert!(
            o.status.success(),
            "{}",
            describe(&format!("run --rootfs={mode}"), &o)
        );
        assert_eq!(out_text(&o).0.trim(), expected, "--rootfs={mode}");
    }

    // docker2aci writes the same image, which actool accepts and rkt fetch imports as is.
    let out = t.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let o = Command::new(DOCKER2ACI)
        .args(["--insecure-allow-http", "--output-dir"])
        .arg(&out)
        .arg(reg.url("test/sparse:v1"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", describe("docker2aci", &o));
    let aci = out.join("test-sparse-v1.aci");
    run(Command::new("actool").arg("validate").arg(&aci));
    assert_eq!(image_id(&aci), id);
    let store2 = t.path().join("store2");
    assert_eq!(fetch(&store2, &aci), id);

    // A docker-archive of the image imports too.
    let archive = t.path().join("sparse.docker");
    run(Command::new("skopeo").args([
        "copy",
        "--quiet",
        &format!("oci:{}:sparse", oci.display()),
        &format!("docker-archive:{}:test/sparse:v1", archive.display()),
    ]));
    let from_archive = fetch(&store2, &archive);
    let r2 = t.path().join("render-archive");
    rkt_ok(
        &store2,
        &["image", "render", &from_archive, r2.to_str().unwrap()],
    );
    assert_sparse_files(t.path(), &r2.join("rootfs"), "docker-archive");

    // Per-layer ACIs: valid, and rendered through their dependencies exactly the squash.
    let layered = t.path().join("layered-out");
    std::fs::create_dir(&layered).unwrap();
    let o = Command::new(DOCKER2ACI)
        .args(["--nosquash", "--insecure-allow-http", "--output-dir"])
        .arg(&layered)
        .arg(reg.url("test/sparse:v1"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}",
        describe("docker2aci --nosquash", &o)
    );
    let acis: Vec<PathBuf> = out_text(&o).0.lines().map(PathBuf::from).collect();
    assert_eq!(acis.len(), 4);
    let store3 = t.path().join("store3");
    let mut top = String::new();
    for a in &acis {
        run(Command::new("actool").arg("validate").arg(a));
        assert!(std::fs::metadata(a).unwrap().len() < 16 << 20);
        top = fetch(&store3, a);
    }
    let r3 = t.path().join("render-layered");
    rkt_ok(&store3, &["image", "render", &top, r3.to_str().unwrap()]);
    assert_sparse_files(t.path(), &r3.join("rootfs"), "per-layer ACIs");
    let diffs = compare_trees(&r.join("rootfs"), &r3.join("rootfs"), ALL_CHECKS);
    assert!(diffs.is_empty(), "layered render differs: {diffs:#?}");
}

/// A single-image OCI layout whose only layer is `layer`.
fn layout_with_layer(dir: &Path, layer: &Path) -> PathBuf {
    let oci = dir.join(format!(
        "oci-{}",
        layer.file_stem().unwrap().to_string_lossy()
    ));
    bash_script(
        r#"umoci init --layout "$1"; umoci new --image "$1:x"; umoci raw add-layer --image "$1:x" "$2""#,
        &[oci.as_os_str(), layer.as_os_str()],
    );
    oci
}

#[test]
fn hostile_sparse_maps_in_layers_store_nothing() {
    let t = tmp();
    let w = t.path();
    // A PAX 1.0 sparse file ("tail" in the last 4 bytes of 8 MiB), then its map (text at the
    // start of the data area, so no header checksum changes) made hostile.
    bash_script(
        r#"cd "$1"; mkdir -p s; truncate -s 8M s/f
printf tail | dd of=s/f bs=1 seek=$((8 * 1024 * 1024 - 4)) conv=notrunc status=none
tar --sparse --format=posix -C s -cf good.tar f"#,
        &[w.as_os_str()],
    );
    let good = std::fs::read(w.join("good.tar")).unwrap();
    // The map is the block after the header named `./GNUSparseFile.PID/f`.
    let name_at = good
        .windows(13)
        .position(|x| x == b"GNUSparseFile")
        .expect("a PAX 1.0 sparse entry");
    let at = name_at - name_at % 512 + 512;
    let numbers: Vec<u64> = String::from_utf8_lossy(&good[at..at + 512])
        .trim_end_matches('\0')
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    // Bytes the data segments hold (GNU tar rounds them to the file system's blocks).
    let packed: u64 = numbers[2..].iter().step_by(2).sum();
    let size = 8u64 << 20;
    let (half, quarter) = (packed / 2, packed / 4);
    let cases = [
        (
            "past-size",
            format!("1\n{}\n{packed}\n", size - packed + 1),
            "exceeds",
        ),
        (
            "overlap",
            format!("2\n0\n{half}\n{quarter}\n{}\n", packed - half),
            "overlaps",
        ),
        (
            "unsorted",
            format!("2\n{packed}\n{half}\n0\n{}\n", packed - half),
            "overlaps",
        ),
        (
            "huge-count",
            "99999999999\n".to_string(),
            "segments, more than the",
        ),
    ];
    let store = w.join("store");
    for (name, bad, why) in cases {
        let mut tar = good.clone();
        tar[at..at + 512].fill(0);
        tar[at..at + bad.len()].copy_from_slice(bad.as_bytes());
        let layer = w.join(format!("{name}.tar"));
        std::fs::write(&layer, &tar).unwrap();
        let oci = layout_with_layer(w, &layer);
        let err = rkt_fails(
            &store,
            &["--insecure-options=image", "fetch", oci.to_str().unwrap()],
        );
        assert!(err.contains("sparse") && err.contains(why), "{name}: {err}");
    }
    assert!(list_ids(&store).is_empty(), "nothing may be stored");
    rkt_ok(&store, &["image", "gc", "--grace-period=0s"]);
    let packs: u64 = std::fs::read_dir(store.join("packs"))
        .map(|d| d.map(|e| e.unwrap().metadata().unwrap().len()).sum())
        .unwrap_or(0);
    assert_eq!(packs, 0);
}

/// A registry that requires HTTP basic auth (htpasswd, bcrypt) for user `alice`, password
/// `s3cret`, holding `test/app:v1` pushed with those credentials.
fn basic_auth_registry(t: &Path) -> Registry {
    let dir = t.join("registry");
    std::fs::create_dir_all(&dir).unwrap();
    let o = Command::new("htpasswd")
        .args(["-Bbn", "alice", "s3cret"])
        .output()
        .expect("run htpasswd (package apache2-utils)");
    assert!(o.status.success(), "{}", describe("htpasswd", &o));
    std::fs::write(dir.join("htpasswd"), &o.stdout).unwrap();
    let reg = Registry::start_with(
        &dir,
        &format!(
            "auth:\n  htpasswd:\n    realm: rkt-test\n    path: {}\n",
            dir.join("htpasswd").display()
        ),
    );
    let oci = build_images(t);
    // Pushing without credentials is refused: the registry really requires them.
    let o = Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:app", oci.display()))
        .arg(reg.url("test/app:v1"))
        .output()
        .unwrap();
    assert!(!o.status.success(), "an anonymous push must be refused");
    run(Command::new("skopeo").args([
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        "--dest-creds",
        "alice:s3cret",
        &format!("oci:{}:app", oci.display()),
        &reg.url("test/app:v1"),
    ]));
    reg
}

fn docker_auth_file(config_dir: &Path, registry: &str, password: &str) {
    let d = config_dir.join("auth.d");
    std::fs::create_dir_all(&d).unwrap();
    let v = serde_json::json!({
        "rktKind": "dockerAuth",
        "rktVersion": "v1",
        "registries": [registry],
        "credentials": {"user": "alice", "password": password},
    });
    std::fs::write(d.join("registry.json"), v.to_string()).unwrap();
}

fn assert_store_empty(store: &Path) {
    assert!(list_ids(store).is_empty(), "nothing may be stored");
    let packs: u64 = std::fs::read_dir(store.join("packs"))
        .map(|d| d.map(|e| e.unwrap().metadata().unwrap().len()).sum())
        .unwrap_or(0);
    assert_eq!(packs, 0, "no layer may be stored");
}

#[test]
fn registry_with_basic_auth_needs_configured_credentials() {
    let t = tmp();
    let reg = basic_auth_registry(t.path());
    let host = format!("127.0.0.1:{}", reg.port);
    let url = reg.url("test/app:v1");
    let (system, local) = (t.path().join("system"), t.path().join("local"));
    let store = t.path().join("store");
    let sys = system.to_str().unwrap().to_string();
    let loc = local.to_str().unwrap().to_string();
    let fetch_args = |u: &str| {
        vec![
            "--system-config".to_string(),
            sys.clone(),
            "--local-config".to_string(),
            loc.clone(),
            "--insecure-options=image,http".to_string(),
            "fetch".to_string(),
            "--full".to_string(),
            u.to_string(),
        ]
    };
    let args = fetch_args(&url);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    // No credentials: refused, saying how to configure them, and nothing is stored.
    let err = rkt_fails(&store, &args);
    for want in ["user name and password", "dockerAuth", "auth.d", &host] {
        assert!(err.contains(want), "missing {want:?} in: {err}");
    }
    assert_store_empty(&store);

    // A wrong password: refused, naming the user.
    docker_auth_file(&local, &host, "wrong");
    let err = rkt_fails(&store, &args);
    assert!(
        err.contains("401") && err.contains("\"alice\"") && err.contains("password"),
        "{err}"
    );
    assert_store_empty(&store);

    // The right password in the local configuration: fetched and converted.
    docker_auth_file(&local, &host, "s3cret");
    let o = rkt(&store, &args);
    assert!(
        o.status.success(),
        "{}",
        describe("fetch with credentials", &o)
    );
    let id = out_text(&o).0.trim().to_string();
    let r = t.path().join("render");
    rkt_ok(&store, &["image", "render", &id, r.to_str().unwrap()]);
    assert_app_tree(&r.join("rootfs"));

    // The system configuration directory is read too (the local one overrides it).
    std::fs::remove_dir_all(&local).unwrap();
    docker_auth_file(&system, &host, "s3cret");
    let store2 = t.path().join("store2");
    let o = rkt(&store2, &args);
    assert!(o.status.success(), "{}", describe("system config", &o));
    assert_eq!(out_text(&o).0.trim(), id);
    docker_auth_file(&local, &host, "wrong");
    let store3 = t.path().join("store3");
    rkt_fails(&store3, &args);
    assert_store_empty(&store3);

    // docker2aci: --username/--password, or the Docker client's config.json in $HOME.
    let home = t.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let out = t.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let docker2aci = |extra: &[&str]| {
        Command::new(DOCKER2ACI)
            .env("HOME", &home)
            .args(["--insecure-allow-http", "--output-dir"])
            .arg(&out)
            .args(extra)
            .arg(&url)
            .output()
            .unwrap()
    };
    let o = docker2aci(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", describe("docker2aci", &o));
    let err = out_text(&o).1;
    assert!(
        err.contains("--username") && err.contains(".docker/config.json"),
        "{err}"
    );
    let o = docker2aci(&["--username", "alice", "--password", "nope"]);
    assert_eq!(o.status.code(), Some(1), "{}", describe("docker2aci", &o));
    assert!(out_text(&o).1.contains("\"alice\""), "{}", out_text(&o).1);
    assert!(
        std::fs::read_dir(&out).unwrap().next().is_none(),
        "no file written"
    );

    let aci = out.join("test-app-v1.aci");
    let o = docker2aci(&["--username", "alice", "--password", "s3cret"]);
    assert!(
        o.status.success(),
        "{}",
        describe("docker2aci --username", &o)
    );
    run(Command::new("actool").arg("validate").arg(&aci));
    assert_eq!(image_id(&aci), id);
    std::fs::remove_file(&aci).unwrap();

    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
    std::fs::create_dir(home.join(".docker")).unwrap();
    std::fs::write(
        home.join(".docker/config.json"),
        serde_json::json!({"auths": {host.clone(): {"auth": auth}}}).to_string(),
    )
    .unwrap();
    let o = docker2aci(&[]);
    assert!(
        o.status.success(),
        "{}",
        describe("docker2aci config.json", &o)
    );
    run(Command::new("actool").arg("validate").arg(&aci));
    assert_eq!(image_id(&aci), id);
}

#[test]
fn registry_with_token_auth_gets_tokens_with_configured_credentials() {
    let t = tmp();
    let dir = t.path().join("registry");
    let service = "rkt-test-registry";
    let issuer = token::TokenServer::start(&t.path().join("issuer"), service, "alice", "s3cret");
    let reg = Registry::start_with(
        &dir,
        &format!(
            "auth:\n  token:\n    realm: {}\n    service: {service}\n    issuer: {}\n    rootcertbundle: {}\n",
            issuer.realm(),
            token::ISSUER,
            issuer.cert.display()
        ),
    );
    let oci = build_images(t.path());
    run(Command::new("skopeo").args([
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        "--dest-creds",
        "alice:s3cret",
        &format!("oci:{}:app", oci.display()),
        &reg.url("test/app:v1"),
    ]));
    assert!(issuer.tokens_given() > 0, "skopeo pushed with a token");

    let host = format!("127.0.0.1:{}", reg.port);
    let url = reg.url("test/app:v1");
    let local = t.path().join("local");
    let loc = local.to_str().unwrap();
    let none = t.path().join("none");
    let args = [
        "--system-config",
        none.to_str().unwrap(),
        "--local-config",
        loc,
        "--insecure-options=image,http",
        "fetch",
        "--full",
        &url,
    ];
    let store = t.path().join("store");

    // No credentials: the token service refuses, and rkt says how to configure them.
    let err = rkt_fails(&store, &args);
    for want in ["token", "401", "dockerAuth", "auth.d", &host] {
        assert!(err.contains(want), "missing {want:?} in: {err}");
    }
    assert_store_empty(&store);

    // A wrong password: refused by the token service, naming the user.
    docker_auth_file(&local, &host, "wrong");
    let err = rkt_fails(&store, &args);
    assert!(err.contains("refused user \"alice\""), "{err}");
    assert_store_empty(&store);

    // The right one: a token, then the image.
    docker_auth_file(&local, &host, "s3cret");
    let before = issuer.tokens_given();
    let o = rkt(&store, &args);
    assert!(o.status.success(), "{}", describe("fetch with a token", &o));
    assert!(issuer.tokens_given() > before, "rkt fetched a token");
    let id = out_text(&o).0.trim().to_string();
    let r = t.path().join("render");
    rkt_ok(&store, &["image", "render", &id, r.to_str().unwrap()]);
    assert_app_tree(&r.join("rootfs"));

    // docker2aci with --username/--password writes the same image.
    let out = t.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let o = Command::new(DOCKER2ACI)
        .env("HOME", &none)
        .args([
            "--insecure-allow-http",
            "--username",
            "alice",
            "--password",
            "s3cret",
        ])
        .arg("--output-dir")
        .arg(&out)
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}",
        describe("docker2aci with a token", &o)
    );
    let aci = out.join("test-app-v1.aci");
    run(Command::new("actool").arg("validate").arg(&aci));
    assert_eq!(image_id(&aci), id);
}
