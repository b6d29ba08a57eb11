//! Several `rkt` processes on one store: concurrent fetches of the same image, and gc running
//! in a loop while fetches and removals go on. Nothing fails, nothing is "database is locked",
//! everything verifies at the end.

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use tempfile::TempDir;

fn fetch_output(store: &Path, aci: &Path) -> std::process::Output {
    rkt(
        store,
        &[
            "--insecure-options=image",
            "fetch",
            "--full",
            aci.to_str().unwrap(),
        ],
    )
}

/// `n` `rkt fetch` processes of `aci` into `store`, started together; their outputs.
fn concurrent_fetches(store: &Path, aci: &Path, n: usize) -> Vec<std::process::Output> {
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let (s, a) = (store.to_path_buf(), aci.to_path_buf());
            thread::spawn(move || fetch_output(&s, &a))
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

fn check_no_lock_errors(o: &std::process::Output, what: &str) -> Result<(), String> {
    let err = String::from_utf8_lossy(&o.stderr).to_lowercase();
    if !o.status.success() || err.contains("locked") {
        return Err(describe(what, o));
    }
    Ok(())
}

/// Several processes creating the same new store at once: the switch of a new database to
/// WAL mode must wait for the others, not fail with "database is locked".
#[test]
fn processes_creating_one_new_store_at_once() {
    let tmp = TempDir::new().unwrap();
    let layout = tmp.path().join("img.d");
    build_small_layout(&layout, "example.com/fresh", None, b"x");
    let aci = tmp.path().join("fresh.aci");
    gnu_tar(&layout, &aci, &["--format=gnu"]);
    let mut failures = Vec::new();
    for round in 0..30 {
        let store = tmp.path().join(format!("store{round}"));
        let outs = concurrent_fetches(&store, &aci, 10);
        for (i, o) in outs.iter().enumerate() {
            if let Err(e) = check_no_lock_errors(o, &format!("round {round}, fetch {i}")) {
                failures.push(e);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn four_simultaneous_fetches_of_one_image() {
    let tmp = TempDir::new().unwrap();
    let store = tmp.path().join("store");
    let layout = tmp.path().join("img.d");
    build_big_layout(&layout, "example.com/same", 4, 8, 2, 400);
    let aci = tmp.path().join("same.aci");
    gnu_tar(&layout, &aci, &["--format=gnu"]);
    let want = image_id(&aci);
    for round in 0..2 {
        let outs = concurrent_fetches(&store, &aci, 4);
        let mut failures = Vec::new();
        for (i, o) in outs.iter().enumerate() {
            let what = format!("round {round}, concurrent fetch {i}");
            if let Err(e) = check_no_lock_errors(o, &what) {
                failures.push(e);
            } else if String::from_utf8_lossy(&o.stdout).trim() != want {
                failures.push(format!("{what} printed another ID: {:?}", o.stdout));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n\n"));
        assert_eq!(
            list_ids(&store),
            vec![want.clone()],
            "one image, listed once"
        );
        rkt_ok(&store, &["image", "verify", &want]);
        assert_exact_export(
            &store,
            &want,
            &fs::read(&aci).unwrap(),
            tmp.path(),
            "after concurrent fetches",
        );
        if round == 0 {
            rkt_ok(&store, &["image", "rm", &want]);
            rkt_ok(&store, &["image", "gc", "--grace-period=0s"]);
        }
    }
}

#[test]
fn gc_in_a_loop_during_fetches_and_removals() {
    let tmp = TempDir::new().unwrap();
    let store = tmp.path().join("store");
    // four related images: a shared 4 MiB random base plus 1 MiB of their own
    let acis: Vec<PathBuf> = (0..4)
        .map(|i| {
            let layout = tmp.path().join(format!("img{i}.d"));
            build_big_layout(&layout, &format!("example.com/rel{i}"), 9, 4, 1, 100);
            write(
                &layout.join("rootfs/own.bin"),
                &Rng::new(100 + i).bytes(1 << 20),
            );
            set_mtimes(&layout);
            let aci = tmp.path().join(format!("img{i}.aci"));
            gnu_tar(&layout, &aci, &["--format=gnu"]);
            aci
        })
        .collect();
    rkt_ok(&store, &["image", "list"]);

    let stop = Arc::new(AtomicBool::new(false));
    let gc = {
        let (store, stop) = (store.clone(), stop.clone());
        thread::spawn(move || {
            let mut failures = Vec::new();
            let mut runs = 0;
            while !stop.load(Ordering::SeqCst) {
                let o = rkt(&store, &["image", "gc", "--grace-period=24h"]);
                if let Err(e) = check_no_lock_errors(&o, &format!("gc run {runs}")) {
                    failures.push(e);
                }
                runs += 1;
            }
            (runs, failures)
        })
    };
    let workers: Vec<_> = acis
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, aci)| {
            let store = store.clone();
            thread::spawn(move || {
                let mut failures = Vec::new();
                for step in 0..3 {
                    let what = format!("worker {i} step {step}: fetch");
                    let o = fetch_output(&store, &aci);
                    if let Err(e) = check_no_lock_errors(&o, &what) {
                        failures.push(e);
                        continue;
                    }
                    if step < 2 {
                        let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
                        let o = rkt(&store, &["image", "rm", &id]);
                        if let Err(e) =
                            check_no_lock_errors(&o, &format!("worker {i} step {step}: rm"))
                        {
                            failures.push(e);
                        }
                    }
                }
                failures
            })
        })
        .collect();
    let mut failures: Vec<String> = workers
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    stop.store(true, Ordering::SeqCst);
    let (runs, gc_failures) = gc.join().unwrap();
    failures.extend(gc_failures);
    assert!(
        failures.is_empty(),
        "{} failures with gc running ({runs} gc runs):\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert!(runs > 0, "gc never ran");

    let mut want: Vec<String> = acis.iter().map(|a| image_id(a)).collect();
    want.sort();
    assert_eq!(list_ids(&store), want, "the four images end up stored");
    let mut args = vec!["image", "verify"];
    args.extend(want.iter().map(String::as_str));
    rkt_ok(&store, &args);
    for aci in &acis {
        assert_exact_export(
            &store,
            &image_id(aci),
            &fs::read(aci).unwrap(),
            tmp.path(),
            &format!("{} after concurrent gc", aci.display()),
        );
    }
    rkt_ok(&store, &["image", "gc", "--grace-period=0s"]);
    assert!(list_ids(&store).is_empty());
}
