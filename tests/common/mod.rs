//! Shared fixtures for the integration tests: image trees and ACIs built at test time (never
//! checked in), a helper to run the real `rkt` binary, and comparisons of trees and stores.
//!
//! Everything here runs as root on Debian bookworm with the packages `tests/run.sh` installs:
//! appc-spec (`actool`), busybox-static, python3, tar, gzip, bzip2, xz-utils, attr.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use sha2::{Digest, Sha512};

/// The path of the `rkt` binary under test.
pub const RKT: &str = env!("CARGO_BIN_EXE_rkt");

/// Fixed mtime for every entry of a generated tree (2017-07-14).
pub const MTIME: i64 = 1_500_000_000;

// ---------------------------------------------------------------------------------------------
// running rkt

/// Run `rkt --dir DIR ARGS...` and return its output.
pub fn rkt(dir: &Path, args: &[&str]) -> Output {
    Command::new(RKT)
        .arg("--dir")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run the rkt binary")
}

/// Lossy stdout and stderr of an output, for messages.
pub fn out_text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Describe an output for an assertion message.
pub fn describe(what: &str, o: &Output) -> String {
    let (stdout, stderr) = out_text(o);
    format!(
        "{what}: exit status {:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        o.status.code()
    )
}

/// Run rkt and assert it exits 0; return stdout.
pub fn rkt_ok(dir: &Path, args: &[&str]) -> String {
    let o = rkt(dir, args);
    assert!(
        o.status.success(),
        "{}",
        describe(&format!("`rkt {}` should succeed", args.join(" ")), &o)
    );
    String::from_utf8(o.stdout).expect("rkt stdout is UTF-8")
}

/// Run rkt and assert it fails with rkt's own exit code 254; return stderr.
pub fn rkt_fails(dir: &Path, args: &[&str]) -> String {
    let o = rkt(dir, args);
    assert_eq!(
        o.status.code(),
        Some(254),
        "{}",
        describe(
            &format!("`rkt {}` should fail with 254", args.join(" ")),
            &o
        )
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `rkt --insecure-options=image fetch --full FILE`: assert success and return the full ID.
pub fn fetch(dir: &Path, file: &Path) -> String {
    let f = file.to_str().expect("utf-8 path");
    let out = rkt_ok(dir, &["--insecure-options=image", "fetch", "--full", f]);
    let id = out.trim().to_string();
    assert!(
        is_full_id(&id),
        "fetch --full of {f} should print sha512-<128 hex>, got {out:?}"
    );
    id
}

pub fn is_hex(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub fn is_id_with_hex_len(s: &str, n: usize) -> bool {
    s.strip_prefix("sha512-")
        .is_some_and(|h| h.len() == n && is_hex(h))
}

pub fn is_full_id(s: &str) -> bool {
    is_id_with_hex_len(s, 128)
}

/// Images of `rkt image list --format=json` (an empty store may print `[]`, `null` or nothing).
pub fn list_json(dir: &Path) -> Vec<serde_json::Value> {
    let out = rkt_ok(dir, &["image", "list", "--format=json"]);
    let t = out.trim();
    if t.is_empty() || t == "null" {
        return Vec::new();
    }
    let v: serde_json::Value = serde_json::from_str(t)
        .unwrap_or_else(|e| panic!("image list --format=json is not JSON ({e}): {out}"));
    v.as_array()
        .unwrap_or_else(|| panic!("image list --format=json should be an array: {out}"))
        .clone()
}

/// Sorted full IDs of the images in the store.
pub fn list_ids(dir: &Path) -> Vec<String> {
    let mut ids: Vec<String> = list_json(dir)
        .iter()
        .map(|o| {
            o["id"]
                .as_str()
                .unwrap_or_else(|| panic!("image list entry without string id: {o}"))
                .to_string()
        })
        .collect();
    ids.sort();
    ids
}

/// Export IMAGE to a file in `tmp` and return the exported bytes.
pub fn export(dir: &Path, image: &str, tmp: &Path) -> Vec<u8> {
    let safe: String = image
        .chars()
        .take(40)
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let out = tmp.join(format!("export-{safe}.aci"));
    let _ = fs::remove_file(&out);
    rkt_ok(
        dir,
        &["image", "export", image, out.to_str().expect("utf-8 path")],
    );
    fs::read(&out).expect("read exported ACI")
}

/// Assert that `rkt image export ID` reproduces `original` (uncompressed tar bytes) exactly.
pub fn assert_exact_export(dir: &Path, id: &str, original: &[u8], tmp: &Path, what: &str) {
    let exported = export(dir, id, tmp);
    let got = sha512_id(&exported);
    if got != id || exported != original {
        let first_diff = exported
            .iter()
            .zip(original)
            .position(|(a, b)| a != b)
            .unwrap_or(exported.len().min(original.len()));
        panic!(
            "{what}: export is not byte-exact: image {id}, export hashes to {got}; \
             export {} bytes, original {} bytes, first difference at byte {first_diff}",
            exported.len(),
            original.len()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// hashing and decompression

/// `sha512-` + 128 hex digits of SHA-512 of `data`.
pub fn sha512_id(data: &[u8]) -> String {
    format!("sha512-{}", hex::encode(Sha512::digest(data)))
}

/// Decompress an archive by its magic bytes (gzip, bzip2, xz or none), with the system tools.
pub fn decompress(path: &Path) -> Vec<u8> {
    let data = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let tool = if data.starts_with(&[0x1f, 0x8b]) {
        "gzip"
    } else if data.starts_with(b"BZh") {
        "bzip2"
    } else if data.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        "xz"
    } else {
        return data;
    };
    let o = Command::new(tool)
        .arg("-dc")
        .arg(path)
        .output()
        .expect("run decompressor");
    assert!(o.status.success(), "{tool} -dc {} failed", path.display());
    o.stdout
}

/// Image ID of an archive file: SHA-512 of its uncompressed tar.
pub fn image_id(path: &Path) -> String {
    sha512_id(&decompress(path))
}

// ---------------------------------------------------------------------------------------------
// commands

/// Run a command, assert success.
pub fn run(cmd: &mut Command) {
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    assert!(o.status.success(), "{}", describe(&format!("{cmd:?}"), &o));
}

pub fn sh(script: &str) {
    run(Command::new("sh").arg("-euc").arg(script));
}

// ---------------------------------------------------------------------------------------------
// trees

/// A deterministic pseudo-random byte generator (xorshift64*), for incompressible data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

pub fn write(path: &Path, data: &[u8]) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).unwrap();
    }
    fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

pub fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// An appc image manifest.
pub fn manifest_json(name: &str, version: Option<&str>, deps: &[&str]) -> String {
    let mut labels = Vec::new();
    if let Some(v) = version {
        labels.push(serde_json::json!({"name": "version", "value": v}));
    }
    labels.push(serde_json::json!({"name": "os", "value": "linux"}));
    labels.push(serde_json::json!({"name": "arch", "value": "amd64"}));
    let mut m = serde_json::json!({
        "acKind": "ImageManifest",
        "acVersion": "0.8.11",
        "name": name,
        "labels": labels,
        "app": {
            "exec": ["/bin/busybox", "sh"],
            "user": "0",
            "group": "0",
            "workingDirectory": "/"
        },
        "annotations": [{"name": "authors", "value": "rkt tests <tests@example.com>"}]
    });
    if !deps.is_empty() {
        m["dependencies"] = deps
            .iter()
            .map(|d| serde_json::json!({"imageName": d}))
            .collect();
    }
    serde_json::to_string_pretty(&m).unwrap()
}

/// Name of the file whose name has spaces and non-ASCII characters.
pub const ODD_NAME: &str = "file with spaces – ünïcødé ☃.txt";
/// A path component longer than 100 bytes (needs GNU/PAX long names).
pub fn long_component() -> String {
    "l".repeat(150)
}
/// A path longer than 255 bytes below rootfs/.
pub fn deep_path() -> String {
    format!(
        "deep/{}/{}/{}.txt",
        "d".repeat(100),
        "e".repeat(100),
        "f".repeat(80)
    )
}

/// Build an image layout at `root`: `root/manifest` and a busybox `root/rootfs` with symlinks,
/// hard links, /etc/passwd, a setuid file, an empty dir, odd names, files of another owner,
/// long names, a 3 MiB sparse file, a user xattr, char and block devices and a fifo; every
/// mtime is set to [`MTIME`] except a few.
pub fn build_layout(root: &Path, name: &str, version: Option<&str>) {
    let r = root.join("rootfs");
    fs::create_dir_all(r.join("bin")).unwrap();
    fs::copy("/bin/busybox", r.join("bin/busybox")).expect("copy /bin/busybox (busybox-static)");
    chmod(&r.join("bin/busybox"), 0o755);
    for l in ["sh", "ls", "echo"] {
        std::os::unix::fs::symlink("busybox", r.join("bin").join(l)).unwrap();
    }
    fs::hard_link(r.join("bin/busybox"), r.join("bin/cat")).unwrap();
    fs::create_dir_all(r.join("usr/bin")).unwrap();
    std::os::unix::fs::symlink("/bin/busybox", r.join("usr/bin/env")).unwrap();
    write(
        &r.join("etc/passwd"),
        b"root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n",
    );
    write(&r.join("etc/group"), b"root:x:0:\nuser:x:1000:\n");
    write(&r.join("etc/hostname"), b"busybox\n");
    std::os::unix::fs::symlink("/usr/share/zoneinfo/UTC", r.join("etc/localtime")).unwrap();
    write(&r.join("usr/bin/suid-helper"), b"#!/bin/sh\necho setuid\n");
    chmod(&r.join("usr/bin/suid-helper"), 0o4755);
    write(&r.join("usr/bin/sgid-helper"), b"#!/bin/sh\necho setgid\n");
    chmod(&r.join("usr/bin/sgid-helper"), 0o2711);
    fs::create_dir_all(r.join("var/empty")).unwrap();
    chmod(&r.join("var/empty"), 0o700);
    fs::create_dir_all(r.join("tmp")).unwrap();
    chmod(&r.join("tmp"), 0o1777);
    let home = r.join("home/user");
    write(&home.join(ODD_NAME), "héllo wörld\n".as_bytes());
    write(&home.join(".profile"), b"export PS1='$ '\n");
    write(&home.join("empty-file"), b"");
    for p in [
        home.clone(),
        home.join(ODD_NAME),
        home.join(".profile"),
        home.join("empty-file"),
    ] {
        std::os::unix::fs::chown(&p, Some(1000), Some(1000)).unwrap();
    }
    chmod(&home.join(".profile"), 0o600);
    // hard links among data files, one of them three-way
    write(
        &r.join("usr/share/doc/README"),
        &b"readme line\n".repeat(100),
    );
    fs::hard_link(
        r.join("usr/share/doc/README"),
        r.join("usr/share/doc/README.link1"),
    )
    .unwrap();
    fs::hard_link(r.join("usr/share/doc/README"), r.join("README.link2")).unwrap();
    // long names
    write(
        &r.join("long").join(long_component()).join("file"),
        b"long name\n",
    );
    write(&r.join(deep_path()), b"deep path\n");
    std::os::unix::fs::symlink(
        format!("/long/{}/file", long_component()),
        r.join("long/link-with-a-long-target"),
    )
    .unwrap();
    // sparse file: 3 MiB with data at the start, at 1 MiB and a hole up to the end
    {
        let p = r.join("var/sparse.img");
        let mut f = fs::File::create(&p).unwrap();
        f.write_all(b"start of sparse file").unwrap();
        use std::io::{Seek, SeekFrom};
        f.seek(SeekFrom::Start(1 << 20)).unwrap();
        f.write_all(&Rng::new(7).bytes(10_000)).unwrap();
        f.set_len(3 << 20).unwrap();
    }
    // xattr
    write(&r.join("etc/xattr-file"), b"has a user xattr\n");
    run(Command::new("setfattr")
        .args(["-n", "user.rkt.test", "-v", "hello xattr"])
        .arg(r.join("etc/xattr-file")));
    // devices and a fifo
    fs::create_dir_all(r.join("dev")).unwrap();
    run(Command::new("mknod")
        .args(["-m", "666"])
        .arg(r.join("dev/null"))
        .args(["c", "1", "3"]));
    run(Command::new("mknod")
        .args(["-m", "660"])
        .arg(r.join("dev/loop9"))
        .args(["b", "7", "9"]));
    run(Command::new("mkfifo")
        .args(["-m", "600"])
        .arg(r.join("var/fifo")));
    write(
        &root.join("manifest"),
        manifest_json(name, version, &[]).as_bytes(),
    );
    set_mtimes(root);
}

/// Set every mtime under `root` to [`MTIME`] (symlinks included), then a few others.
pub fn set_mtimes(root: &Path) {
    run(Command::new("find").arg(root).args([
        "-exec",
        "touch",
        "-h",
        "-d",
        &format!("@{MTIME}"),
        "{}",
        "+",
    ]));
    let passwd = root.join("rootfs/etc/passwd");
    if passwd.exists() {
        run(Command::new("touch")
            .args(["-d", "@1600000000"])
            .arg(passwd));
    }
}

/// A small layout: manifest plus a few files, no busybox.
pub fn build_small_layout(root: &Path, name: &str, version: Option<&str>, extra: &[u8]) {
    write(
        &root.join("manifest"),
        manifest_json(name, version, &[]).as_bytes(),
    );
    write(&root.join("rootfs/etc/hostname"), b"small\n");
    write(&root.join("rootfs/data"), extra);
    set_mtimes(root);
}

/// A layout with `random_mb` MiB of incompressible data (in files of 1 MiB), `text_mb` MiB of
/// compressible text and `nsmall` small files.
pub fn build_big_layout(
    root: &Path,
    name: &str,
    seed: u64,
    random_mb: usize,
    text_mb: usize,
    nsmall: usize,
) {
    write(
        &root.join("manifest"),
        manifest_json(name, Some("1.0.0"), &[]).as_bytes(),
    );
    let r = root.join("rootfs");
    let mut rng = Rng::new(seed);
    for i in 0..random_mb {
        write(&r.join(format!("random/r{i:03}.bin")), &rng.bytes(1 << 20));
    }
    let mut text = Vec::new();
    let mut n = 0u64;
    while text.len() < text_mb << 20 {
        writeln!(text, "line {n} of the compressible text, seed {seed}").unwrap();
        n += 1;
    }
    if text_mb > 0 {
        write(&r.join("text/big.txt"), &text);
    }
    for i in 0..nsmall {
        let len = (rng.next_u64() % 4000) as usize;
        write(
            &r.join(format!("small/{:02}/f{i:05}", i % 37)),
            &rng.bytes(len),
        );
    }
    set_mtimes(root);
}

// ---------------------------------------------------------------------------------------------
// archives

/// `actool build [--no-compression] --overwrite LAYOUT OUT`.
pub fn actool_build(layout: &Path, out: &Path, compress: bool) {
    let mut c = Command::new("actool");
    c.arg("build").arg("--overwrite");
    if !compress {
        c.arg("--no-compression");
    }
    run(c.arg(layout).arg(out));
}

/// `tar -C LAYOUT -cf OUT ARGS... manifest rootfs` (GNU tar).
pub fn gnu_tar(layout: &Path, out: &Path, args: &[&str]) {
    run(Command::new("tar")
        .arg("-C")
        .arg(layout)
        .arg("-cf")
        .arg(out)
        .args(args)
        .args(["manifest", "rootfs"]));
}

/// Compress `input` with `tool` (gzip, bzip2, xz) into `out`.
pub fn compress(tool: &str, input: &Path, out: &Path) {
    let data = Command::new(tool)
        .arg("-c")
        .arg(input)
        .output()
        .expect("run compressor");
    assert!(
        data.status.success(),
        "{tool} -c {} failed",
        input.display()
    );
    fs::write(out, data.stdout).unwrap();
}

const PY_TAR: &str = r#"
import os, sys, tarfile
fmt, src, out = sys.argv[1:4]
f = {"ustar": tarfile.USTAR_FORMAT, "gnu": tarfile.GNU_FORMAT, "pax": tarfile.PAX_FORMAT}[fmt]
def filt(ti):
    if fmt == "ustar" and ti.name.split("/")[1:2] in (["long"], ["deep"]):
        return None
    if fmt == "pax" and ti.name == "rootfs/etc/passwd":
        ti.mtime = 1600000000.25
        ti.pax_headers["comment"] = "made by python tarfile"
    return ti
with tarfile.open(out, "w", format=f) as t:
    t.add(os.path.join(src, "manifest"), "manifest", filter=filt)
    t.add(os.path.join(src, "rootfs"), "rootfs", filter=filt)
"#;

/// Pack LAYOUT with Python's tarfile in format `ustar`, `gnu` or `pax` (pax: fractional mtime).
pub fn python_tar(format: &str, layout: &Path, out: &Path) {
    run(Command::new("python3")
        .args(["-c", PY_TAR, format])
        .arg(layout)
        .arg(out));
}

const PY_HOSTILE: &str = r#"
import io, json, sys, tarfile
case, out, arg = sys.argv[1], sys.argv[2], sys.argv[3]
m = {"acKind": "ImageManifest", "acVersion": "0.8.11", "name": "example.com/hostile",
     "labels": [{"name": "os", "value": "linux"}, {"name": "arch", "value": "amd64"}]}
if case == "bad-name":
    m["name"] = "BAR"
if case == "bad-ackind":
    m["acKind"] = "ImageManifesto"
man = json.dumps(m).encode()
if case == "not-json":
    man = b'{"acKind": "ImageManifest", this is not json'
def entry(t, name, data=b"", typ=tarfile.REGTYPE, link="", mode=0o644):
    ti = tarfile.TarInfo(name)
    ti.type = typ
    ti.mode = mode
    ti.mtime = 1500000000
    ti.linkname = link
    if typ == tarfile.REGTYPE:
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
    else:
        t.addfile(ti)
with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as t:
    if case != "no-manifest":
        entry(t, "manifest", man)
    entry(t, "rootfs", typ=tarfile.DIRTYPE, mode=0o755)
    entry(t, "rootfs/ok.txt", b"fine\n")
    if case == "dotdot":
        entry(t, "../evil", b"evil\n")
    elif case == "abs":
        entry(t, "/abs", b"evil\n")
    elif case == "escape":
        entry(t, "rootfs/../../x", b"evil\n")
    elif case == "notrootfs":
        entry(t, "etc/notrootfs", b"evil\n")
    elif case == "hardlink-out":
        entry(t, "rootfs/shadow", typ=tarfile.LNKTYPE, link="../../../../etc/shadow")
    elif case == "symlink-escape":
        entry(t, "rootfs/a", typ=tarfile.SYMTYPE, link=arg)
        entry(t, "rootfs/a/pwned", b"pwned\n")
    elif case == "duplicate":
        entry(t, "rootfs/ok.txt", b"second copy\n")
"#;

/// Build a hostile ACI (uncompressed) for `case`; `arg` is the symlink target for
/// `symlink-escape`. Cases: dotdot, abs, escape, notrootfs, hardlink-out, symlink-escape,
/// no-manifest, not-json, bad-name, bad-ackind, duplicate.
pub fn hostile_aci(case: &str, out: &Path, arg: &str) {
    run(Command::new("python3")
        .args(["-c", PY_HOSTILE, case])
        .arg(out)
        .arg(arg));
}

/// `actool build` of LAYOUT, gzip and uncompressed: (label, path), built into `dir`.
pub fn actool_archives(layout: &Path, dir: &Path) -> Vec<(String, PathBuf)> {
    let gz = dir.join("actool.aci");
    actool_build(layout, &gz, true);
    let plain = dir.join("actool-plain.aci");
    actool_build(layout, &plain, false);
    vec![
        ("actool build (gzip)".into(), gz),
        ("actool build --no-compression".into(), plain),
    ]
}

/// GNU tar in several formats (gnu, oldgnu, posix; sparse; xattrs), each also compressed with
/// gzip, bzip2 and xz (some named `.aci` whatever their compression).
pub fn gnu_tar_archives(layout: &Path, dir: &Path) -> Vec<(String, PathBuf)> {
    let mut v = Vec::new();
    let tars: [(&str, &[&str]); 5] = [
        ("gnu", &["--format=gnu"]),
        ("gnu-sparse", &["--format=gnu", "-S"]),
        ("oldgnu", &["--format=oldgnu"]),
        ("posix-xattrs", &["--format=posix", "--xattrs"]),
        ("posix-sparse-xattrs", &["--format=posix", "-S", "--xattrs"]),
    ];
    for (n, args) in tars {
        let tar = dir.join(format!("{n}.tar"));
        gnu_tar(layout, &tar, args);
        v.push((format!("GNU tar {}", args.join(" ")), tar.clone()));
        for (tool, ext) in [("gzip", "aci"), ("bzip2", "tar.bz2"), ("xz", "aci")] {
            let out = dir.join(format!("{n}-{tool}.{ext}"));
            compress(tool, &tar, &out);
            v.push((format!("GNU tar {} | {tool}", args.join(" ")), out));
        }
    }
    v
}

/// Python tarfile in USTAR (without the long names), GNU and PAX formats, plain and gzip.
pub fn python_archives(layout: &Path, dir: &Path) -> Vec<(String, PathBuf)> {
    let mut v = Vec::new();
    for f in ["ustar", "gnu", "pax"] {
        let out = dir.join(format!("python-{f}.aci"));
        python_tar(f, layout, &out);
        v.push((format!("python tarfile {f}"), out.clone()));
        let gz = dir.join(format!("python-{f}.gz.aci"));
        compress("gzip", &out, &gz);
        v.push((format!("python tarfile {f} | gzip"), gz));
    }
    v
}

// ---------------------------------------------------------------------------------------------
// store state

/// Files (relative path → size) below `dir`, recursively; empty if `dir` does not exist.
pub fn files_under(dir: &Path) -> BTreeMap<PathBuf, u64> {
    let mut m = BTreeMap::new();
    fn walk(base: &Path, d: &Path, m: &mut BTreeMap<PathBuf, u64>) {
        let Ok(rd) = fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(md) = fs::symlink_metadata(&p) else {
                continue;
            };
            if md.is_dir() {
                walk(base, &p, m);
            } else {
                m.insert(p.strip_prefix(base).unwrap().to_path_buf(), md.len());
            }
        }
    }
    walk(dir, dir, &mut m);
    m
}

/// Total bytes of the files below `dir`.
pub fn bytes_under(dir: &Path) -> u64 {
    files_under(dir).values().sum()
}

/// Blocks actually allocated below `dir` (`du -sB1`), in bytes.
pub fn du(dir: &Path) -> u64 {
    let o = Command::new("du")
        .arg("-sB1")
        .arg(dir)
        .output()
        .expect("run du");
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// What a failed operation must leave unchanged: the images, the pack files, the tmp files.
#[derive(Debug, PartialEq, Eq)]
pub struct StoreState {
    pub ids: Vec<String>,
    pub packs: Vec<PathBuf>,
    pub tmp: Vec<PathBuf>,
}

pub fn store_state(dir: &Path) -> StoreState {
    StoreState {
        ids: list_ids(dir),
        packs: files_under(&dir.join("packs")).into_keys().collect(),
        tmp: files_under(&dir.join("tmp")).into_keys().collect(),
    }
}

/// Corrupt the biggest pack file: invert `n` bytes spread over its middle half.
pub fn corrupt_biggest_pack(dir: &Path, n: usize) -> PathBuf {
    let packs = files_under(&dir.join("packs"));
    let (rel, len) = packs
        .iter()
        .max_by_key(|(_, l)| **l)
        .map(|(p, l)| (p.clone(), *l))
        .expect("the store has pack files under DIR/packs");
    let path = dir.join("packs").join(rel);
    let mut data = fs::read(&path).unwrap();
    for i in 0..n {
        let off = (len as usize / 4) + i * (len as usize / 2) / n.max(1);
        data[off] ^= 0xff;
    }
    fs::write(&path, data).unwrap();
    path
}

// ---------------------------------------------------------------------------------------------
// tree comparison

/// What [`compare_trees`] checks besides type, mode and content.
#[derive(Clone, Copy, Debug)]
pub struct Checks {
    pub owners: bool,
    pub mtimes: bool,
    pub hardlinks: bool,
    pub xattrs: bool,
}

pub const ALL_CHECKS: Checks = Checks {
    owners: true,
    mtimes: true,
    hardlinks: true,
    xattrs: true,
};

fn walk_tree(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) {
    let mut names: Vec<_> = fs::read_dir(root.join(rel))
        .unwrap_or_else(|e| panic!("read dir {}: {e}", root.join(rel).display()))
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    for n in names {
        let r = rel.join(n);
        out.push(r.clone());
        if fs::symlink_metadata(root.join(&r)).unwrap().is_dir() {
            walk_tree(root, &r, out);
        }
    }
}

/// Relative paths below `root`, sorted, excluding `root` itself.
pub fn tree_paths(root: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    walk_tree(root, Path::new(""), &mut v);
    v
}

fn user_xattrs(root: &Path) -> BTreeMap<String, Vec<String>> {
    let o = Command::new("getfattr")
        .args(["-R", "-h", "-d", "-m", "^user\\.", "."])
        .current_dir(root)
        .output()
        .expect("run getfattr (package attr)");
    let mut m = BTreeMap::new();
    for block in String::from_utf8_lossy(&o.stdout).split("\n\n") {
        let mut lines = block.lines().filter(|l| !l.is_empty());
        if let Some(first) = lines.next() {
            let file = first.trim_start_matches("# file: ").to_string();
            let mut rest: Vec<String> = lines.map(str::to_string).collect();
            rest.sort();
            m.insert(file, rest);
        }
    }
    m
}

/// Compare two trees; return a description of every difference (empty when equal).
pub fn compare_trees(src: &Path, dst: &Path, checks: Checks) -> Vec<String> {
    let mut diffs = Vec::new();
    if !dst.is_dir() {
        return vec![format!("{} is not a directory", dst.display())];
    }
    let sp = tree_paths(src);
    let dp = tree_paths(dst);
    for p in &dp {
        if !sp.contains(p) {
            diffs.push(format!("extra entry {}", p.display()));
        }
    }
    let mut links: HashMap<(u64, u64), Vec<PathBuf>> = HashMap::new();
    for p in &sp {
        let (a, b) = (src.join(p), dst.join(p));
        let sm = fs::symlink_metadata(&a).unwrap();
        let Ok(dm) = fs::symlink_metadata(&b) else {
            diffs.push(format!("missing entry {}", p.display()));
            continue;
        };
        let show = p.display();
        if sm.file_type() != dm.file_type() {
            diffs.push(format!(
                "{show}: type {:?} != {:?}",
                sm.file_type(),
                dm.file_type()
            ));
            continue;
        }
        let ft = sm.file_type();
        if !ft.is_symlink() && sm.mode() & 0o7777 != dm.mode() & 0o7777 {
            diffs.push(format!(
                "{show}: mode {:o} != {:o}",
                sm.mode() & 0o7777,
                dm.mode() & 0o7777
            ));
        }
        if checks.owners && (sm.uid(), sm.gid()) != (dm.uid(), dm.gid()) {
            diffs.push(format!(
                "{show}: owner {}:{} != {}:{}",
                sm.uid(),
                sm.gid(),
                dm.uid(),
                dm.gid()
            ));
        }
        if checks.mtimes && !ft.is_symlink() && sm.mtime() != dm.mtime() {
            diffs.push(format!("{show}: mtime {} != {}", sm.mtime(), dm.mtime()));
        }
        if ft.is_symlink() {
            let (x, y) = (fs::read_link(&a).unwrap(), fs::read_link(&b).unwrap());
            if x != y {
                diffs.push(format!(
                    "{show}: symlink target {} != {}",
                    x.display(),
                    y.display()
                ));
            }
        } else if ft.is_file() {
            if sm.len() != dm.len() {
                diffs.push(format!("{show}: size {} != {}", sm.len(), dm.len()));
            } else if fs::read(&a).unwrap() != fs::read(&b).unwrap() {
                diffs.push(format!("{show}: content differs"));
            }
            if sm.nlink() > 1 {
                links
                    .entry((sm.dev(), sm.ino()))
                    .or_default()
                    .push(p.clone());
            }
        } else if !ft.is_dir() && sm.rdev() != dm.rdev() {
            diffs.push(format!(
                "{show}: device number {:#x} != {:#x}",
                sm.rdev(),
                dm.rdev()
            ));
        }
    }
    if checks.hardlinks {
        for group in links.values() {
            let inos: Vec<_> = group
                .iter()
                .filter_map(|p| fs::symlink_metadata(dst.join(p)).ok())
                .map(|m| (m.dev(), m.ino()))
                .collect();
            if inos.windows(2).any(|w| w[0] != w[1]) {
                diffs.push(format!(
                    "hard links {group:?} do not share an inode in {}",
                    dst.display()
                ));
            }
        }
    }
    if checks.xattrs {
        let (x, y) = (user_xattrs(src), user_xattrs(dst));
        if x != y {
            diffs.push(format!("user xattrs differ: {x:?} != {y:?}"));
        }
    }
    diffs
}

// ---------------------------------------------------------------------------------------------
// processes

/// Spawn `rkt --dir DIR ARGS...` without waiting.
pub fn spawn_rkt(dir: &Path, args: &[&str]) -> std::process::Child {
    Command::new(RKT)
        .arg("--dir")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rkt")
}

/// A tmpfs mounted on a directory, unmounted on drop (on every path, panics included).
pub struct TmpfsMount {
    pub path: PathBuf,
}

impl TmpfsMount {
    pub fn new(path: &Path, size: &str) -> Self {
        fs::create_dir_all(path).unwrap();
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path));
        TmpfsMount {
            path: path.to_path_buf(),
        }
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// pods

/// Build `DIR/NAME.aci`: a busybox-static image named `example.com/NAME` whose `app` section
/// is `app_json` (a JSON object, or `null` for no app). The rootfs has /bin/busybox with the
/// usual applets, /etc/passwd (root, user 1000), /etc/group (root, user 1000, staff 50) and
/// whatever `extra` adds to the rootfs.
pub fn busybox_aci(dir: &Path, name: &str, app_json: &str, extra: impl FnOnce(&Path)) -> PathBuf {
    let layout = dir.join(format!("{name}-layout"));
    let _ = fs::remove_dir_all(&layout);
    let r = layout.join("rootfs");
    fs::create_dir_all(r.join("bin")).unwrap();
    fs::copy("/bin/busybox", r.join("bin/busybox")).expect("copy /bin/busybox (busybox-static)");
    chmod(&r.join("bin/busybox"), 0o755);
    for applet in [
        "sh", "echo", "cat", "id", "ls", "true", "false", "sleep", "env", "hostname", "touch",
        "mkdir", "stat", "grep", "kill", "ps", "test", "pwd", "wc",
    ] {
        std::os::unix::fs::symlink("busybox", r.join("bin").join(applet)).unwrap();
    }
    write(
        &r.join("etc/passwd"),
        b"root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n",
    );
    write(
        &r.join("etc/group"),
        b"root:x:0:\nuser:x:1000:\nstaff:x:50:\n",
    );
    fs::create_dir_all(r.join("tmp")).unwrap();
    chmod(&r.join("tmp"), 0o1777);
    extra(&r);
    let manifest = format!(
        r#"{{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/{name}",
            "labels":[{{"name":"os","value":"linux"}},{{"name":"arch","value":"amd64"}}],
            "app":{app_json}}}"#
    );
    write(&layout.join("manifest"), manifest.as_bytes());
    let out = dir.join(format!("{name}.aci"));
    actool_build(&layout, &out, false);
    out
}

/// An app section running `sh -c SCRIPT` as root.
pub fn sh_app(script: &str) -> String {
    serde_json::json!({"exec": ["/bin/sh", "-c", script], "user": "0", "group": "0"}).to_string()
}

/// `rkt --dir DIR --insecure-options=image ARGS...` (output captured).
pub fn rkt_pod(dir: &Path, args: &[&str]) -> Output {
    let mut all = vec!["--insecure-options=image"];
    all.extend_from_slice(args);
    rkt(dir, &all)
}

/// A test's scratch directory, the `--dir` for its pods inside it, and their cleanup. Bind all
/// three (`let (tmp, dir, _cleanup) = pod_scratch();`): the cleanup's gc then runs before the
/// directory is removed.
pub fn pod_scratch() -> (tempfile::TempDir, PathBuf, PodsCleanup) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rkt");
    let cleanup = PodsCleanup(dir.clone());
    (tmp, dir, cleanup)
}

/// Runs `rkt gc` with no grace on drop, so pods of a failed test leave nothing behind.
pub struct PodsCleanup(pub PathBuf);

impl Drop for PodsCleanup {
    fn drop(&mut self) {
        let _ = Command::new(RKT)
            .arg("--dir")
            .arg(&self.0)
            .args(["gc", "--grace-period=0s", "--expire-prepared=0s"])
            .output();
    }
}

/// Kills a still-running `rkt run` on drop (test failure); a PodsCleanup declared before it
/// runs its gc afterwards.
pub struct Supervisor(pub Option<std::process::Child>);

impl Drop for Supervisor {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Mount points below `dir` in this (the host's) mount namespace.
pub fn host_mounts_below(dir: &Path) -> Vec<String> {
    let d = dir.to_str().unwrap();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| m.starts_with(d))
        .collect()
}

/// Wait until `cond` holds, up to `secs` seconds.
pub fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !cond() {
        assert!(
            std::time::Instant::now() < end,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
