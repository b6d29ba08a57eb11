//! Crash safety: `kill -9` of `rkt fetch` and `rkt image gc` at several moments leaves a store
//! that opens, verifies clean and collects its leftovers.

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tempfile::TempDir;

const DELAYS_MS: [u64; 5] = [5, 20, 50, 100, 200];

/// About 14 MiB of tar: incompressible files, compressible text and many small files.
fn big_aci(tmp: &Path, name: &str, seed: u64, random_mb: usize) -> PathBuf {
    let layout = tmp.join(format!("{seed}.d"));
    build_big_layout(&layout, name, seed, random_mb, 4, 600);
    let aci = tmp.join(format!("{seed}.aci"));
    gnu_tar(&layout, &aci, &["--format=posix"]);
    aci
}

/// Start `rkt ARGS`, SIGKILL it after `delay`; say whether it had already finished.
fn kill_after(store: &Path, args: &[&str], delay: Duration) -> String {
    let mut child = spawn_rkt(store, args);
    let start = Instant::now();
    std::thread::sleep(delay);
    let finished = child.try_wait().unwrap().is_some();
    let _ = child.kill(); // SIGKILL
    let status = child.wait().unwrap();
    format!(
        "`rkt {}` killed after {:?} ({}; {status})",
        args.join(" "),
        start.elapsed(),
        if finished {
            "it had already exited"
        } else {
            "mid-run"
        }
    )
}

/// After a crash: the store opens and lists, every listed image verifies.
fn assert_store_sane(store: &Path, what: &str) -> Vec<String> {
    let o = rkt(store, &["image", "list", "--format=json"]);
    assert!(
        o.status.success(),
        "{}",
        describe(&format!("image list after {what}"), &o)
    );
    let ids = list_ids(store);
    for id in &ids {
        let o = rkt(store, &["image", "verify", id]);
        assert!(
            o.status.success(),
            "{}",
            describe(&format!("verify {id} after {what}"), &o)
        );
    }
    ids
}

/// gc --grace-period=0s must succeed, empty the store and reclaim the leftovers.
fn assert_collects_everything(store: &Path, what: &str) {
    let o = rkt(store, &["image", "gc", "--grace-period=0s"]);
    assert!(
        o.status.success(),
        "{}",
        describe(&format!("image gc after {what}"), &o)
    );
    assert!(
        list_ids(store).is_empty(),
        "{what}: gc --grace-period=0s should remove every image"
    );
    let packs = bytes_under(&store.join("packs"));
    assert!(
        packs < 1 << 20,
        "{what}: after gc of every image, {packs} bytes of packs remain (leftovers not collected)"
    );
    let tmp = files_under(&store.join("tmp"));
    assert!(
        tmp.is_empty(),
        "{what}: gc should clear leftovers in DIR/tmp: {tmp:?}"
    );
}

#[test]
fn kill_9_during_fetch() {
    let tmp = TempDir::new().unwrap();
    let store = tmp.path().join("store");
    let aci = big_aci(tmp.path(), "example.com/big", 1, 8);
    let original = fs::read(&aci).unwrap();
    let want = sha512_id(&original);
    let args = ["--insecure-options=image", "fetch", aci.to_str().unwrap()];
    // the store must exist before the first crash for the sanity checks to be meaningful
    rkt_ok(&store, &["image", "list"]);
    for ms in DELAYS_MS {
        let what = kill_after(&store, &args, Duration::from_millis(ms));
        let ids = assert_store_sane(&store, &what);
        assert!(
            ids.iter().all(|i| *i == want),
            "{what}: only the fetched image may appear: {ids:?}"
        );
        assert_collects_everything(&store, &what);
        let id = fetch(&store, &aci);
        assert_eq!(id, want, "{what}: refetch gives the tar's ID");
        assert_exact_export(&store, &id, &original, tmp.path(), &what);
        rkt_ok(&store, &["image", "verify", &id]);
        rkt_ok(&store, &["image", "rm", &id]);
        assert_collects_everything(&store, &format!("rm after {what}"));
    }
}

#[test]
fn kill_9_during_gc() {
    let tmp = TempDir::new().unwrap();
    let store = tmp.path().join("store");
    // the survivor shares half its random files with the victim (same seed, fewer files)
    let victim = big_aci(tmp.path(), "example.com/victim", 2, 8);
    let survivor_layout = tmp.path().join("survivor.d");
    build_big_layout(&survivor_layout, "example.com/survivor", 2, 4, 1, 50);
    let survivor = tmp.path().join("survivor.aci");
    gnu_tar(&survivor_layout, &survivor, &["--format=gnu"]);
    let survivor_tar = fs::read(&survivor).unwrap();
    let victim_tar = fs::read(&victim).unwrap();
    let sid = fetch(&store, &survivor);
    for ms in DELAYS_MS {
        let vid = fetch(&store, &victim);
        rkt_ok(&store, &["image", "rm", &vid]);
        let what = kill_after(
            &store,
            &["image", "gc", "--grace-period=24h"],
            Duration::from_millis(ms),
        );
        let ids = assert_store_sane(&store, &what);
        assert_eq!(ids, vec![sid.clone()], "{what}: the survivor stays listed");
        assert_exact_export(&store, &sid, &survivor_tar, tmp.path(), &what);
        rkt_ok(&store, &["image", "gc", "--grace-period=24h"]);
        rkt_ok(&store, &["image", "verify", &sid]);
        // the victim can come back, whole
        let again = fetch(&store, &victim);
        assert_exact_export(&store, &again, &victim_tar, tmp.path(), &what);
        rkt_ok(&store, &["image", "rm", &again]);
        rkt_ok(&store, &["image", "gc", "--grace-period=24h"]);
    }
    // finally gc with everything due, killed, then collected
    for ms in [10, 100] {
        fetch(&store, &victim);
        let what = kill_after(
            &store,
            &["image", "gc", "--grace-period=0s"],
            Duration::from_millis(ms),
        );
        assert_store_sane(&store, &what);
        assert_collects_everything(&store, &what);
        let sid = fetch(&store, &survivor);
        assert_exact_export(&store, &sid, &survivor_tar, tmp.path(), &what);
    }
}
