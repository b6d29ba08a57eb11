//! `rkt fetch` of local ACIs: the insecure-options gate, ID output, exact import of every tar
//! flavour and compression (checked by exporting), idempotence and deduplication.

mod common;

use common::*;
use std::fs;
use std::path::Path;
use std::process::Command;
use tempfile::TempDir;

fn busybox_aci(tmp: &Path) -> std::path::PathBuf {
    let layout = tmp.join("layout");
    build_layout(&layout, "example.com/busybox", Some("1.35.0"));
    let aci = tmp.join("busybox.aci");
    actool_build(&layout, &aci, true);
    aci
}

#[test]
fn fetch_without_insecure_options_is_refused() {
    let tmp = TempDir::new().unwrap();
    let store = tmp.path().join("store");
    let aci = busybox_aci(tmp.path());
    let err = rkt_fails(&store, &["fetch", aci.to_str().unwrap()]);
    assert!(
        err.contains("--insecure-options=image") && err.contains("rkt trust"),
        "the refusal should say how to trust (`rkt trust`) or skip (`--insecure-options=image`), got: {err}"
    );
    assert!(
        list_ids(&store).is_empty(),
        "a refused fetch must not import anything"
    );
}

#[test]
fn insecure_flag_spellings_are_accepted() {
    let tmp = TempDir::new().unwrap();
    let store = tmp.path().join("store");
    let aci = busybox_aci(tmp.path());
    let want = image_id(&aci);
    for flag in [
        "--insecure-options=image",
        "--insecure-options=all",
        "--insecure-options=all-fetch",
        "--insecure-options=tls,image",
        "--insecure-skip-verify",
    ] {
        let out = rkt_ok(&store, &[flag, "fetch", "--full", aci.to_str().unwrap()]);
        assert_eq!(out.trim(), want, "fetch with {flag} printed the wrong ID");
    }
    assert_eq!(list_ids(&store), vec![want]);
}

#[test]
fn fetch_prints_ids_short_and_full() {
    let tmp = TempDir::new().unwrap();
    let store = tmp.path().join("store");
    let aci = busybox_aci(tmp.path());
    let small_layout = tmp.path().join("small");
    build_small_layout(&small_layout, "example.com/small", None, b"small data\n");
    let small = tmp.path().join("small.aci");
    actool_build(&small_layout, &small, false);
    let (id1, id2) = (image_id(&aci), image_id(&small));

    let out = rkt_ok(
        &store,
        &["--insecure-options=image", "fetch", aci.to_str().unwrap()],
    );
    let line = out.trim();
    assert!(
        is_id_with_hex_len(line, 32),
        "fetch without --full should print sha512- and 32 hex digits, got {out:?}"
    );
    assert!(
        id1.starts_with(line),
        "fetch printed {line}, but the sha512 of the uncompressed tar is {id1}"
    );

    let out = rkt_ok(
        &store,
        &[
            "--insecure-options=image",
            "fetch",
            "--full",
            aci.to_str().unwrap(),
            small.to_str().unwrap(),
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        vec![id1.as_str(), id2.as_str()],
        "fetch --full A B should print one full ID per image, in order"
    );
}

#[test]
fn fetching_twice_stores_nothing_new() {
    let tmp = TempDir::new().unwrap();
    let store = tmp.path().join("store");
    let aci = busybox_aci(tmp.path());
    let id = fetch(&store, &aci);
    let packs = files_under(&store.join("packs"));
    assert!(
        !packs.is_empty(),
        "after a fetch the store should have pack files under DIR/packs"
    );
    // the same tar, with another compression, is the same image
    let plain = tmp.path().join("plain.aci");
    fs::write(&plain, decompress(&aci)).unwrap();
    for f in [&aci, &plain] {
        assert_eq!(fetch(&store, f), id, "refetch gave another ID");
    }
    assert_eq!(
        files_under(&store.join("packs")),
        packs,
        "refetching an image already stored must not write pack data"
    );
    assert_eq!(list_ids(&store), vec![id], "one image expected in the list");
}

fn check_archives(archives: &[(String, std::path::PathBuf)], tmp: &Path) {
    let store = tmp.join("store");
    let mut failures = Vec::new();
    let mut ids = Vec::new();
    for (label, path) in archives {
        let want = image_id(path);
        let o = rkt(
            &store,
            &[
                "--insecure-options=image",
                "fetch",
                "--full",
                path.to_str().unwrap(),
            ],
        );
        if !o.status.success() {
            failures.push(describe(&format!("fetch {label}"), &o));
            continue;
        }
        let got = String::from_utf8_lossy(&o.stdout).trim().to_string();
        if got != want {
            failures.push(format!(
                "{label}: fetch printed {got}, sha512 of the tar is {want}"
            ));
            continue;
        }
        ids.push(want.clone());
        let original = decompress(path);
        let r = std::panic::catch_unwind(|| {
            assert_exact_export(&store, &want, &original, tmp, label);
        });
        if let Err(e) = r {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "export panicked".into());
            failures.push(msg);
        }
    }
    ids.sort();
    ids.dedup();
    if failures.is_empty() {
        assert_eq!(list_ids(&store), ids, "image list should hold every import");
    }
    assert!(
        failures.is_empty(),
        "{} of {} archives failed:\n{}",
        failures.len(),
        archives.len(),
        failures.join("\n\n")
    );
}

#[test]
fn actool_archives_import_and_export_exactly() {
    let tmp = TempDir::new().unwrap();
    let layout = tmp.path().join("layout");
    build_layout(&layout, "example.com/busybox", Some("1.35.0"));
    let archives = actool_archives(&layout, tmp.path());
    check_archives(&archives, tmp.path());
}

#[test]
fn gnu_tar_archives_import_and_export_exactly() {
    let tmp = TempDir::new().unwrap();
    let layout = tmp.path().join("layout");
    build_layout(&layout, "example.com/busybox", Some("1.35.0"));
    let archives = gnu_tar_archives(&layout, tmp.path());
    check_archives(&archives, tmp.path());
}

#[test]
fn python_tarfile_archives_import_and_export_exactly() {
    let tmp = TempDir::new().unwrap();
    let layout = tmp.path().join("layout");
    build_layout(&layout, "example.com/busybox", Some("1.35.0"));
    let archives = python_archives(&layout, tmp.path());
    check_archives(&archives, tmp.path());
}

#[test]
fn odd_tar_quirks_export_exactly() {
    // tars with trailing garbage-free oddities: extra zero blocks after the end marker, a
    // non-default blocking factor, an empty rootfs, entries in unusual order.
    let tmp = TempDir::new().unwrap();
    let layout = tmp.path().join("layout");
    build_small_layout(&layout, "example.com/odd", Some("1"), &[0u8; 3000]);
    let mut archives = Vec::new();
    let b1 = tmp.path().join("blocking1.aci");
    gnu_tar(&layout, &b1, &["--format=gnu", "--blocking-factor=1"]);
    archives.push(("GNU tar --blocking-factor=1".to_string(), b1));
    let b64 = tmp.path().join("blocking64.aci");
    gnu_tar(&layout, &b64, &["--format=posix", "--blocking-factor=64"]);
    archives.push(("GNU tar --blocking-factor=64".to_string(), b64));
    let padded = tmp.path().join("padded.aci");
    let mut data = fs::read(tmp.path().join("blocking1.aci")).unwrap();
    data.extend_from_slice(&[0u8; 512 * 7]);
    fs::write(&padded, data).unwrap();
    archives.push(("extra zero blocks at the end".to_string(), padded));
    let reversed = tmp.path().join("reversed.aci");
    run(Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-cf")
        .arg(&reversed)
        .args([
            "--no-recursion",
            "rootfs/data",
            "rootfs/etc/hostname",
            "rootfs/etc",
            "rootfs",
            "manifest",
        ]));
    archives.push(("files before their directories".to_string(), reversed));
    check_archives(&archives, tmp.path());
}

#[test]
fn related_images_are_deduplicated() {
    let tmp = TempDir::new().unwrap();
    let store = tmp.path().join("store");
    let base = tmp.path().join("base");
    build_layout(&base, "example.com/busybox", Some("1.35.0"));
    let derived = tmp.path().join("derived");
    run(Command::new("cp").arg("-a").arg(&base).arg(&derived));
    let extra = 512 * 1024;
    write(
        &derived.join("rootfs/opt/extra.bin"),
        &Rng::new(42).bytes(extra),
    );
    write(
        &derived.join("manifest"),
        manifest_json("example.com/derived", Some("1.0"), &[]).as_bytes(),
    );
    set_mtimes(&derived);
    let (a, b) = (tmp.path().join("base.aci"), tmp.path().join("derived.aci"));
    gnu_tar(&base, &a, &["--format=posix"]);
    gnu_tar(&derived, &b, &["--format=posix"]);

    fetch(&store, &a);
    let before = bytes_under(&store.join("packs"));
    let id_b = fetch(&store, &b);
    let growth = bytes_under(&store.join("packs")).saturating_sub(before);
    let tar_b = fs::metadata(&b).unwrap().len();
    assert!(
        growth <= extra as u64 + 256 * 1024,
        "the second image shares all but {extra} bytes with the first, but the packs grew by \
         {growth} bytes (its tar is {tar_b} bytes)"
    );
    assert!(
        growth * 4 < tar_b,
        "packs grew by {growth} bytes for a related image of {tar_b} bytes"
    );
    assert_exact_export(&store, &id_b, &fs::read(&b).unwrap(), tmp.path(), "derived");
}

#[test]
fn identical_files_are_stored_once() {
    let tmp = TempDir::new().unwrap();
    let store = tmp.path().join("store");
    let layout = tmp.path().join("layout");
    build_small_layout(&layout, "example.com/twins", None, b"x");
    let blob = Rng::new(1).bytes(2 << 20);
    for p in ["rootfs/a/blob", "rootfs/b/blob-copy", "rootfs/c/third"] {
        write(&layout.join(p), &blob);
    }
    set_mtimes(&layout);
    let aci = tmp.path().join("twins.aci");
    gnu_tar(&layout, &aci, &["--format=gnu"]);
    let id = fetch(&store, &aci);
    let packs = bytes_under(&store.join("packs"));
    assert!(
        packs < (2 << 20) + (512 << 10),
        "three copies of the same 2 MiB of random data take {packs} bytes of packs; \
         identical content must be stored once"
    );
    assert_exact_export(&store, &id, &fs::read(&aci).unwrap(), tmp.path(), "twins");
}

/// The archives really exercise what the export tests claim to cover.
#[test]
fn fixtures_have_the_intended_tar_features() {
    let tmp = TempDir::new().unwrap();
    let layout = tmp.path().join("layout");
    build_layout(&layout, "example.com/busybox", Some("1.35.0"));
    let mut all = actool_archives(&layout, tmp.path());
    all.extend(gnu_tar_archives(&layout, tmp.path()));
    all.extend(python_archives(&layout, tmp.path()));
    let get = |name: &str| {
        let p = tmp.path().join(name);
        assert!(
            all.iter().any(|(_, q)| *q == p),
            "{name} is one of the archives"
        );
        decompress(&p)
    };
    let has = |data: &[u8], what: &[u8]| data.windows(what.len()).any(|w| w == what);
    // a tar header block of type `t` (data blocks hardly have "ustar" at offset 257)
    let has_type = |data: &[u8], t: u8| {
        data.chunks(512)
            .any(|h| h.len() == 512 && &h[257..262] == b"ustar" && h[156] == t)
    };
    let gnu = get("gnu.tar");
    assert!(
        has(&gnu, b"././@LongLink"),
        "GNU format has long-name entries"
    );
    let sparse = get("gnu-sparse.tar");
    assert!(
        has_type(&sparse, b'S'),
        "GNU tar -S has a sparse (type S) entry"
    );
    assert!(
        sparse.len() < gnu.len(),
        "the sparse archive is smaller than the dense one"
    );
    let posix = get("posix-sparse-xattrs.tar");
    assert!(has(&posix, b"GNU.sparse"), "PAX sparse headers");
    assert!(has(&posix, b"SCHILY.xattr.user.rkt.test"), "PAX xattr");
    assert!(
        has(&get("python-pax.aci"), b"mtime=1600000000.25"),
        "python PAX has a fractional mtime"
    );
    for name in ["gnu.tar", "python-gnu.aci", "actool-plain.aci"] {
        let data = get(name);
        assert!(has_type(&data, b'3'), "{name} has a char device");
        assert!(has_type(&data, b'6'), "{name} has a fifo");
        assert!(has_type(&data, b'1'), "{name} has a hard link");
    }
    assert!(
        has(&get("actool.aci"), "ünïcødé".as_bytes()),
        "non-ASCII names"
    );
}
