//! Fixtures for the lazy filesystem tests (run as root): a busybox-static image built with
//! `actool` and imported into a store, and guards that always unmount.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use rkt_store::Store;

pub const MTIME: i64 = 1_500_000_000;

pub fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn write(path: &Path, data: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
}

pub fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed * 2 + 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn manifest(name: &str) -> String {
    serde_json::json!({
        "acKind": "ImageManifest", "acVersion": "0.8.11", "name": name,
        "labels": [{"name": "os", "value": "linux"}, {"name": "arch", "value": "amd64"}],
        "app": {"exec": ["/bin/busybox", "sh"], "user": "0", "group": "0"}
    })
    .to_string()
}

/// A busybox rootfs with symlinks, hard links, owners, setuid, an xattr, devices, a fifo, a
/// sparse file and a 2 MB random file.
pub fn build_layout(root: &Path, name: &str) {
    let r = root.join("rootfs");
    fs::create_dir_all(r.join("bin")).unwrap();
    fs::copy("/bin/busybox", r.join("bin/busybox")).expect("copy /bin/busybox (busybox-static)");
    chmod(&r.join("bin/busybox"), 0o755);
    for l in ["sh", "ls", "echo", "true"] {
        std::os::unix::fs::symlink("busybox", r.join("bin").join(l)).unwrap();
    }
    fs::hard_link(r.join("bin/busybox"), r.join("bin/cat")).unwrap();
    write(&r.join("etc/hostname"), b"lazy\n");
    write(&r.join("etc/passwd"), b"root:x:0:0:root:/root:/bin/sh\n");
    write(&r.join("usr/bin/suid-helper"), b"#!/bin/sh\necho setuid\n");
    chmod(&r.join("usr/bin/suid-helper"), 0o4755);
    let home = r.join("home/user");
    write(&home.join("notes.txt"), b"owned by 1000\n");
    for p in [home.clone(), home.join("notes.txt")] {
        std::os::unix::fs::chown(&p, Some(1000), Some(1001)).unwrap();
    }
    chmod(&home.join("notes.txt"), 0o600);
    fs::create_dir_all(r.join("tmp")).unwrap();
    chmod(&r.join("tmp"), 0o1777);
    write(
        &r.join("usr/share/doc/README"),
        &b"readme line\n".repeat(100),
    );
    fs::hard_link(r.join("usr/share/doc/README"), r.join("README.link")).unwrap();
    write(&r.join("data/random.bin"), &noise(2_000_000, 42));
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = fs::File::create(r.join("data/sparse.img")).unwrap();
        f.write_all(b"start of sparse file").unwrap();
        f.seek(SeekFrom::Start(1 << 20)).unwrap();
        f.write_all(&noise(10_000, 7)).unwrap();
        f.set_len(3 << 20).unwrap();
    }
    write(&r.join("etc/xattr-file"), b"has a user xattr\n");
    run(Command::new("setfattr")
        .args(["-n", "user.rkt.test", "-v", "hello xattr"])
        .arg(r.join("etc/xattr-file")));
    fs::create_dir_all(r.join("dev")).unwrap();
    run(Command::new("mknod")
        .args(["-m", "666"])
        .arg(r.join("dev/null"))
        .args(["c", "1", "3"]));
    run(Command::new("mknod")
        .args(["-m", "660"])
        .arg(r.join("dev/loop9"))
        .args(["b", "7", "9"]));
    run(Command::new("mkfifo").args(["-m", "600"]).arg(
        r.join("var/fifo")
            .parent()
            .map(|p| {
                fs::create_dir_all(p).unwrap();
                r.join("var/fifo")
            })
            .unwrap(),
    ));
    fs::write(root.join("manifest"), manifest(name)).unwrap();
    run(Command::new("find").arg(root).args([
        "-exec",
        "touch",
        "-h",
        "-d",
        &format!("@{MTIME}"),
        "{}",
        "+",
    ]));
}

/// A store at `tmp/store` with the busybox image imported (built with `actool build`).
pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub store_dir: PathBuf,
    pub layout: PathBuf,
    pub image: String,
}

impl Fixture {
    /// The image built with `actool build`.
    pub fn new() -> Fixture {
        Fixture::build(false)
    }

    /// The image built with GNU tar in PAX format, with xattrs (which actool drops).
    pub fn with_tar() -> Fixture {
        Fixture::build(true)
    }

    fn build(tar: bool) -> Fixture {
        let tmp = tempfile::Builder::new()
            .prefix("lazyfs-test")
            .tempdir()
            .unwrap();
        let layout = tmp.path().join("layout");
        build_layout(&layout, "example.com/busybox");
        let aci = tmp.path().join("busybox.aci");
        if tar {
            run(Command::new("tar")
                .arg("-C")
                .arg(&layout)
                .args([
                    "--format=posix",
                    "--sparse",
                    "--xattrs",
                    "--xattrs-include=*",
                    "-cf",
                ])
                .arg(&aci)
                .args(["manifest", "rootfs"]));
        } else {
            run(Command::new("actool")
                .args(["build", "--overwrite"])
                .arg(&layout)
                .arg(&aci));
        }
        let store_dir = tmp.path().join("store");
        let mut store = Store::open(&store_dir).unwrap();
        let image = store
            .import(fs::File::open(&aci).unwrap(), "busybox.aci")
            .unwrap()
            .id;
        Fixture {
            tmp,
            store_dir,
            layout,
            image,
        }
    }

    pub fn rootfs(&self) -> PathBuf {
        self.layout.join("rootfs")
    }

    pub fn dir(&self, name: &str) -> PathBuf {
        let d = self.tmp.path().join(name);
        fs::create_dir_all(&d).unwrap();
        d
    }
}

/// Unmounts (lazily) on drop, whatever happened.
pub struct MountGuard(pub PathBuf);

impl Drop for MountGuard {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// overlayfs with `lower` read-only and writes into `upper`, mounted at `merged`.
pub fn overlay(lower: &Path, upper: &Path, work: &Path, merged: &Path) -> MountGuard {
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    nix::mount::mount(
        Some("overlay"),
        merged,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(opts.as_str()),
    )
    .unwrap_or_else(|e| panic!("mounting overlay at {}: {e}", merged.display()));
    MountGuard(merged.to_path_buf())
}

/// Whether anything is mounted at `path`.
pub fn is_mountpoint(path: &Path) -> bool {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let p = path.to_string_lossy().replace(' ', "\\040");
    text.lines()
        .any(|l| l.split(' ').nth(4) == Some(p.as_str()))
}
