//! Bad input changes nothing and says what is wrong: hostile ACIs, broken archives, full disk.

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// A store that already holds one good image, so "unchanged" means something.
fn seeded_store(tmp: &Path) -> PathBuf {
    let store = tmp.join("store");
    let layout = tmp.join("good.d");
    build_small_layout(
        &layout,
        "example.com/good",
        Some("1"),
        &Rng::new(3).bytes(100_000),
    );
    let aci = tmp.join("good.aci");
    gnu_tar(&layout, &aci, &["--format=gnu"]);
    fetch(&store, &aci);
    store
}

/// Fetch `aci`: exit 254, stderr mentions one of `keywords` (case-insensitive), and the store
/// is unchanged (same images, no new pack files, nothing left in tmp).
fn assert_rejected(store: &Path, aci: &Path, keywords: &[&str]) {
    let before = store_state(store);
    let o = rkt(
        store,
        &["--insecure-options=image", "fetch", aci.to_str().unwrap()],
    );
    let what = format!("fetch of hostile {}", aci.display());
    assert_eq!(o.status.code(), Some(254), "{}", describe(&what, &o));
    let err = String::from_utf8_lossy(&o.stderr).to_lowercase();
    assert!(
        keywords.iter().any(|k| err.contains(&k.to_lowercase())),
        "{what}: stderr should name the problem (one of {keywords:?}), got: {err}"
    );
    let after = store_state(store);
    assert_eq!(
        after, before,
        "{what}: a rejected fetch must leave the store unchanged"
    );
    for id in &after.ids {
        rkt_ok(store, &["image", "verify", id]);
    }
}

fn hostile(case: &str, keywords: &[&str]) {
    let tmp = TempDir::new().unwrap();
    let store = seeded_store(tmp.path());
    let aci = tmp.path().join(format!("{case}.aci"));
    hostile_aci(case, &aci, "/nonexistent");
    assert_rejected(&store, &aci, keywords);
}

#[test]
fn entry_with_dotdot_is_rejected() {
    hostile("dotdot", &["../evil"]);
}

#[test]
fn absolute_entry_is_rejected() {
    hostile("abs", &["/abs"]);
}

#[test]
fn entry_escaping_rootfs_is_rejected() {
    hostile("escape", &["rootfs/../../x"]);
}

#[test]
fn entry_outside_rootfs_is_rejected() {
    hostile("notrootfs", &["etc/notrootfs"]);
}

#[test]
fn hard_link_to_outside_rootfs_is_rejected() {
    hostile("hardlink-out", &["rootfs/shadow", "etc/shadow"]);
}

#[test]
fn missing_manifest_is_rejected() {
    hostile("no-manifest", &["manifest"]);
}

#[test]
fn manifest_that_is_not_json_is_rejected() {
    hostile("not-json", &["manifest"]);
}

#[test]
fn manifest_with_invalid_name_is_rejected() {
    hostile("bad-name", &["BAR"]);
}

#[test]
fn manifest_with_bad_ackind_is_rejected() {
    hostile("bad-ackind", &["acKind", "ImageManifesto"]);
}

#[test]
fn duplicate_entries_are_rejected() {
    hostile("duplicate", &["duplicate"]);
}

#[test]
fn path_through_a_symlink_is_rejected_and_writes_nothing_outside() {
    let tmp = TempDir::new().unwrap();
    let store = seeded_store(tmp.path());
    let target = tmp.path().join("outside");
    fs::create_dir(&target).unwrap();
    let aci = tmp.path().join("symlink.aci");
    hostile_aci("symlink-escape", &aci, target.to_str().unwrap());
    assert_rejected(&store, &aci, &["rootfs/a/pwned", "symlink"]);
    assert!(
        !target.join("pwned").exists(),
        "the entry below a symlink was written outside the store"
    );
}

fn good_tar(tmp: &Path) -> PathBuf {
    let layout = tmp.join("victim.d");
    build_small_layout(
        &layout,
        "example.com/victim",
        Some("1"),
        &Rng::new(11).bytes(300_000),
    );
    let aci = tmp.join("victim.tar");
    gnu_tar(&layout, &aci, &["--format=posix"]);
    aci
}

#[test]
fn truncated_archive_is_rejected() {
    let tmp = TempDir::new().unwrap();
    let store = seeded_store(tmp.path());
    let data = fs::read(good_tar(tmp.path())).unwrap();
    // cut in the middle of the big file's data
    let cut = tmp.path().join("truncated.aci");
    fs::write(&cut, &data[..data.len() / 2 + 100]).unwrap();
    assert_rejected(
        &store,
        &cut,
        &["truncated", "unexpected end", "eof", "short", "incomplete"],
    );
    // and cut compressed: gzip stream ends early
    let gz = tmp.path().join("full.aci.gz");
    compress("gzip", &tmp.path().join("victim.tar"), &gz);
    let gzdata = fs::read(&gz).unwrap();
    let cutgz = tmp.path().join("truncated-gz.aci");
    fs::write(&cutgz, &gzdata[..gzdata.len() * 2 / 3]).unwrap();
    assert_rejected(
        &store,
        &cutgz,
        &["truncated", "unexpected end", "eof", "short", "incomplete"],
    );
}

#[test]
fn corrupt_gzip_stream_is_rejected() {
    let tmp = TempDir::new().unwrap();
    let store = seeded_store(tmp.path());
    let gz = tmp.path().join("ok.aci.gz");
    compress("gzip", &good_tar(tmp.path()), &gz);
    let mut data = fs::read(&gz).unwrap();
    let mid = data.len() / 2;
    for b in &mut data[mid..mid + 16] {
        *b ^= 0xff;
    }
    let bad = tmp.path().join("corrupt.aci");
    fs::write(&bad, data).unwrap();
    assert_rejected(
        &store,
        &bad,
        &[
            "gzip",
            "corrupt",
            "deflate",
            "crc",
            "checksum",
            "decompress",
            "invalid",
        ],
    );
}

#[test]
fn not_an_archive_is_rejected() {
    let tmp = TempDir::new().unwrap();
    let store = seeded_store(tmp.path());
    let junk = tmp.path().join("junk.aci");
    fs::write(&junk, Rng::new(8).bytes(5000)).unwrap();
    let o = rkt(
        &store,
        &["--insecure-options=image", "fetch", junk.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(254), "{}", describe("fetch junk", &o));
    let missing = tmp.path().join("does-not-exist.aci");
    let err = rkt_fails(
        &store,
        &[
            "--insecure-options=image",
            "fetch",
            missing.to_str().unwrap(),
        ],
    );
    assert!(
        err.contains("does-not-exist.aci"),
        "a missing file should be named: {err}"
    );
}

#[test]
fn full_disk_fails_cleanly() {
    let tmp = TempDir::new().unwrap();
    let mnt = tmp.path().join("small-disk");
    let _guard = TmpfsMount::new(&mnt, "4m");
    let store = mnt.join("store");
    let layout = tmp.path().join("big.d");
    build_big_layout(&layout, "example.com/toobig", 17, 8, 0, 10);
    let aci = tmp.path().join("toobig.aci");
    gnu_tar(&layout, &aci, &["--format=gnu"]);
    let o = rkt(
        &store,
        &["--insecure-options=image", "fetch", aci.to_str().unwrap()],
    );
    assert_eq!(
        o.status.code(),
        Some(254),
        "{}",
        describe("fetch of 8 MiB of random data into a 4 MiB tmpfs", &o)
    );
    let err = String::from_utf8_lossy(&o.stderr).to_lowercase();
    assert!(
        err.contains("no space"),
        "a full disk should be reported as such (\"no space left on device\"), got: {err}"
    );
    assert!(
        list_ids(&store).is_empty(),
        "the failed import must not be listed"
    );
    assert!(
        files_under(&store.join("tmp")).is_empty(),
        "the failed import must not leave files in DIR/tmp"
    );
    // the store still works for something that fits, after collecting any leftovers
    rkt_ok(&store, &["image", "gc"]);
    let small = tmp.path().join("small.d");
    build_small_layout(&small, "example.com/fits", None, b"fits\n");
    let small_aci = tmp.path().join("small.aci");
    gnu_tar(&small, &small_aci, &["--format=gnu"]);
    let id = fetch(&store, &small_aci);
    rkt_ok(&store, &["image", "verify", &id]);
}

/// An error message says each thing once: no cause repeated in its own chain
/// (`invalid name "BAR": ...: invalid name "BAR": ...`).
#[test]
fn rejection_messages_do_not_repeat_themselves() {
    let tmp = TempDir::new().unwrap();
    let store = tmp.path().join("store");
    let mut failures = Vec::new();
    for case in ["not-json", "bad-name", "bad-ackind", "dotdot", "duplicate"] {
        let aci = tmp.path().join(format!("{case}.aci"));
        hostile_aci(case, &aci, "/nonexistent");
        let o = rkt(
            &store,
            &["--insecure-options=image", "fetch", aci.to_str().unwrap()],
        );
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        let parts: Vec<&str> = err.trim().split(": ").filter(|p| p.len() >= 12).collect();
        if let Some(p) = parts
            .iter()
            .enumerate()
            .find_map(|(i, p)| parts[i + 1..].contains(p).then_some(p))
        {
            failures.push(format!("{case}: {p:?} is said twice in: {err}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
