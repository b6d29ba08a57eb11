//! The lazy tree as a pod sees it, as root: byte-identical files and metadata, passthrough,
//! overlayfs on top, EIO on corruption, shared objects, prefetch, and a killed server.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{is_mountpoint, overlay, Fixture, MountGuard};
use rkt_lazyfs::LazyFs;
use rkt_store::Store;

const SERVE: &str = env!("CARGO_BIN_EXE_rkt-lazyfs-serve");

/// Every path under `src`, relative, sorted.
fn walk(src: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p.clone());
            }
            out.push(p.strip_prefix(src).unwrap().to_path_buf());
        }
    }
    out.sort();
    out
}

fn compare_trees(src: &Path, mnt: &Path) {
    let want = walk(src);
    assert_eq!(walk(mnt), want, "same paths");
    for rel in &want {
        let (a, b) = (src.join(rel), mnt.join(rel));
        let (ma, mb) = (a.symlink_metadata().unwrap(), b.symlink_metadata().unwrap());
        let what = rel.display();
        assert_eq!(ma.mode(), mb.mode(), "{what}: mode and type");
        assert_eq!((ma.uid(), ma.gid()), (mb.uid(), mb.gid()), "{what}: owner");
        assert_eq!(ma.mtime(), mb.mtime(), "{what}: mtime");
        assert_eq!(ma.nlink(), mb.nlink(), "{what}: link count");
        let ft = ma.file_type();
        if ft.is_file() {
            assert_eq!(ma.len(), mb.len(), "{what}: size");
            assert!(
                std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
                "{what}: bytes"
            );
        } else if ft.is_symlink() {
            assert_eq!(
                std::fs::read_link(&a).unwrap(),
                std::fs::read_link(&b).unwrap()
            );
        } else if ft.is_char_device() || ft.is_block_device() {
            assert_eq!(ma.rdev(), mb.rdev(), "{what}: device number");
        }
    }
}

#[test]
fn serves_the_image_byte_identical_with_its_metadata() {
    // GNU tar (PAX) keeps the xattr, which actool drops.
    let fx = Fixture::with_tar();
    let mnt = fx.dir("mnt");
    let session = LazyFs::mount(&fx.store_dir, &fx.image, &mnt).unwrap();
    assert!(
        session.passthrough(),
        "kernel 6.9+ as root: passthrough expected"
    );
    compare_trees(&fx.rootfs(), &mnt);

    let ino = |p: &str| std::fs::metadata(mnt.join(p)).unwrap().ino();
    assert_eq!(
        ino("bin/busybox"),
        ino("bin/cat"),
        "hard links share an inode"
    );
    assert_eq!(ino("usr/share/doc/README"), ino("README.link"));
    assert_ne!(ino("bin/busybox"), ino("README.link"));
    let x = Command::new("getfattr")
        .args(["--only-values", "-n", "user.rkt.test"])
        .arg(mnt.join("etc/xattr-file"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&x.stdout), "hello xattr");
    assert!(std::fs::metadata(mnt.join("var/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());

    let s = session.stats();
    // Every regular file was read once; only the sparse one goes through FUSE reads.
    assert_eq!(s.fallback_opens, 1, "{s:?}");
    assert_eq!(s.passthrough_opens + 1, s.opens, "{s:?}");
    assert_eq!(s.open_errors, 0);
    session.unmount().unwrap();
    assert!(!is_mountpoint(&mnt));
}

#[test]
fn passthrough_reads_never_reach_the_server() {
    let fx = Fixture::new();
    let mnt = fx.dir("mnt");
    let session = LazyFs::mount(&fx.store_dir, &fx.image, &mnt).unwrap();
    let mut f = std::fs::File::open(mnt.join("data/random.bin")).unwrap();
    let mut got = Vec::new();
    f.read_to_end(&mut got).unwrap();
    assert!(got == common::noise(2_000_000, 42));
    drop(f);
    // Reopened once its object exists (the path the throughput benchmark measures): positioned
    // reads at random offsets and an mmap stay in the kernel too.
    let f = std::fs::File::open(mnt.join("data/random.bin")).unwrap();
    let mut buf = [0u8; 4096];
    for off in [0u64, 1_234_567, 4096 * 300, 2_000_000 - 4096] {
        f.read_exact_at(&mut buf, off).unwrap();
        assert!(
            buf[..] == got[off as usize..off as usize + 4096],
            "offset {off}"
        );
    }
    let len = got.len();
    // SAFETY: a fresh read-only shared mapping of an open file, unmapped below.
    let map = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        )
    };
    assert_ne!(map, libc::MAP_FAILED);
    // SAFETY: the mapping is `len` readable bytes until the munmap.
    let mapped = unsafe { std::slice::from_raw_parts(map.cast::<u8>(), len) };
    assert!(mapped == &got[..]);
    // SAFETY: unmapping what was mapped above; `mapped` is not used after.
    assert_eq!(unsafe { libc::munmap(map, len) }, 0);
    let s = session.stats();
    assert_eq!(
        (s.opens, s.passthrough_opens, s.fallback_reads),
        (2, 2, 0),
        "{s:?}"
    );
}

#[test]
fn metadata_never_reads_packs() {
    let fx = Fixture::new();
    let mnt = fx.dir("mnt");
    let session = LazyFs::mount(&fx.store_dir, &fx.image, &mnt).unwrap();
    let packs = fx.store_dir.join("packs");
    let hidden = fx.store_dir.join("packs.hidden");
    std::fs::rename(&packs, &hidden).unwrap();
    std::fs::create_dir(&packs).unwrap();
    let n = walk(&mnt).len();
    assert!(
        n > 20,
        "listing, stat and readlink work without packs ({n} paths)"
    );
    assert_eq!(
        std::fs::read_link(mnt.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    let err = std::fs::read(mnt.join("etc/hostname")).unwrap_err();
    assert_eq!(
        err.raw_os_error(),
        Some(libc::EIO),
        "content needs the packs: {err}"
    );
    drop(session);
    std::fs::remove_dir(&packs).unwrap();
    std::fs::rename(&hidden, &packs).unwrap();
}

#[test]
fn chroot_runs_busybox_and_writes_go_to_the_upper_dir() {
    let fx = Fixture::new();
    let lower = fx.dir("lower");
    let (upper, work, merged) = (fx.dir("upper"), fx.dir("work"), fx.dir("merged"));
    let session = LazyFs::mount(&fx.store_dir, &fx.image, &lower).unwrap();
    let _overlay = overlay(&lower, &upper, &work, &merged);
    let out = Command::new("chroot")
        .arg(&merged)
        .args([
            "/bin/busybox",
            "sh",
            "-c",
            "cat /etc/hostname; echo written > /tmp/new; echo changed > /etc/hostname; \
             /bin/cat /etc/hostname; ls /bin | /bin/busybox wc -l",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().map(str::trim).collect();
    assert_eq!(lines, ["lazy", "changed", "6"], "{stdout}");
    assert_eq!(std::fs::read(upper.join("tmp/new")).unwrap(), b"written\n");
    assert_eq!(
        std::fs::read(upper.join("etc/hostname")).unwrap(),
        b"changed\n"
    );
    assert_eq!(
        std::fs::read(lower.join("etc/hostname")).unwrap(),
        b"lazy\n",
        "lower untouched"
    );
    assert!(
        session.stats().passthrough_opens >= 2,
        "{:?}",
        session.stats()
    );
}

#[test]
fn two_mounts_share_one_materialised_object() {
    let fx = Fixture::new();
    let (m1, m2) = (fx.dir("m1"), fx.dir("m2"));
    let s1 = LazyFs::mount(&fx.store_dir, &fx.image, &m1).unwrap();
    let s2 = LazyFs::mount(&fx.store_dir, &fx.image, &m2).unwrap();
    let f1 = std::fs::File::open(m1.join("data/random.bin")).unwrap();
    let f2 = std::fs::File::open(m2.join("data/random.bin")).unwrap();
    let store = Store::open(&fx.store_dir).unwrap();
    let id = store
        .entry(&fx.image, "data/random.bin")
        .unwrap()
        .unwrap()
        .file_id
        .unwrap();
    let object = store.object_path(&id);
    // The first open hands the object out before it is durable and publishes it in the
    // background (the second open found it under its pending name): wait until it is in place.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !object.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // Both servers (in this process) hold the object open as their backing file.
    let mut backing = Vec::new();
    for fd in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        if std::fs::read_link(fd.path()).is_ok_and(|t| t == object) {
            let m = std::fs::metadata(fd.path()).unwrap();
            backing.push((m.dev(), m.ino()));
        }
    }
    assert_eq!(backing.len(), 2, "one backing fd per mount");
    assert_eq!(backing[0], backing[1], "the same inode");
    let m = std::fs::metadata(&object).unwrap();
    assert_eq!(backing[0], (m.dev(), m.ino()));
    drop((f1, f2));
    assert_eq!(
        (s1.stats().passthrough_opens, s2.stats().passthrough_opens),
        (1, 1)
    );
}

#[test]
fn the_next_mount_prefetches_what_the_last_one_opened() {
    let fx = Fixture::new();
    let mnt = fx.dir("mnt");
    let session = LazyFs::mount(&fx.store_dir, &fx.image, &mnt).unwrap();
    std::fs::read(mnt.join("etc/hostname")).unwrap();
    std::fs::read(mnt.join("bin/busybox")).unwrap();
    drop(session);
    let log = rkt_lazyfs::access_log_path(&fx.store_dir, &fx.image);
    let paths: Vec<String> = serde_json::from_slice(&std::fs::read(&log).unwrap()).unwrap();
    assert_eq!(paths, ["etc/hostname", "bin/busybox"]);

    std::fs::remove_dir_all(fx.store_dir.join("objects")).unwrap();
    let mut session = LazyFs::mount(&fx.store_dir, &fx.image, &mnt).unwrap();
    session.wait_prefetch();
    assert_eq!(session.stats().prefetched, 2);
    assert_eq!(
        session.stats().opens,
        0,
        "prefetch does not go through the mount"
    );
    let store = Store::open(&fx.store_dir).unwrap();
    for p in ["etc/hostname", "bin/busybox"] {
        let id = store.entry(&fx.image, p).unwrap().unwrap().file_id.unwrap();
        assert!(store.object_path(&id).exists(), "{p} prefetched");
    }
}

/// Run `rkt-lazyfs-serve` and wait until it has mounted.
fn serve(fx: &Fixture, mnt: &Path) -> std::process::Child {
    let mut child = Command::new(SERVE)
        .arg(&fx.store_dir)
        .arg(&fx.image)
        .arg(mnt)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("mounted"), "server said {line:?}");
    child
}

/// Run `f` in a thread; panic if it takes longer than 20 s (a hang).
fn within_20s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("the operation hung")
}

#[test]
fn a_corrupt_chunk_gives_eio_and_a_log_line_never_wrong_bytes() {
    let fx = Fixture::new();
    let pack = std::fs::read_dir(fx.store_dir.join("packs"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let data = common::noise(2_000_000, 42);
    let mut bytes = std::fs::read(&pack).unwrap();
    let at = bytes
        .windows(64)
        .position(|w| w == &data[500_000..500_064])
        .expect("raw chunk in pack");
    bytes[at + 10] ^= 0x55;
    std::fs::write(&pack, bytes).unwrap();

    let mnt = fx.dir("mnt");
    let _guard = MountGuard(mnt.clone());
    let mut server = serve(&fx, &mnt);
    let target = mnt.join("data/random.bin");
    let err = within_20s(move || std::fs::read(target)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert_eq!(
        std::fs::read(mnt.join("etc/hostname")).unwrap(),
        b"lazy\n",
        "other files fine"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let mut stderr = String::new();
    server
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(server.wait().unwrap().success(), "{stderr}");
    assert!(
        stderr.contains("data/random.bin") && stderr.contains("does not match its hash"),
        "log names the path and the chunk: {stderr}"
    );
    assert!(stderr.contains("ERROR"), "{stderr}");
    assert!(!is_mountpoint(&mnt), "SIGTERM unmounts");
}

#[test]
fn a_killed_server_fails_reads_fast_and_cleanup_leaves_no_mount() {
    let fx = Fixture::new();
    let pod = fx.dir("pod");
    let mnt = pod.join("lower");
    std::fs::create_dir(&mnt).unwrap();
    let _guard = MountGuard(mnt.clone());
    let mut server = serve(&fx, &mnt);
    assert_eq!(std::fs::read(mnt.join("etc/hostname")).unwrap(), b"lazy\n");
    server.kill().unwrap(); // SIGKILL
    server.wait().unwrap();
    assert!(is_mountpoint(&mnt), "a killed server leaves its mount");
    let probe = mnt.join("etc/passwd");
    let err = within_20s(move || std::fs::read(probe)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOTCONN), "{err}");

    let removed = within_20s({
        let pod = pod.clone();
        move || rkt_lazyfs::unmount_under(&pod).unwrap()
    });
    assert_eq!(removed, std::slice::from_ref(&mnt));
    assert!(!is_mountpoint(&mnt));
    assert!(
        std::fs::read_dir(&mnt).unwrap().next().is_none(),
        "an empty directory again"
    );
}
