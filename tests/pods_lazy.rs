//! Pods on a lazy rootfs (`rkt run --rootfs=lazy`, issue #7): the image is served by the pod's
//! supervisor as a FUSE tree under the app's overlayfs. A file read in the pod is the image's,
//! writes go to the upper dir, a corrupt chunk is an I/O error in the pod (and a log line), two
//! pods share one materialised object, and `rkt gc` after `kill -9` of the supervisor leaves no
//! mount.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;

/// 3 MiB of seeded random bytes: the image's biggest file.
fn blob() -> Vec<u8> {
    Rng::new(7).bytes(3 << 20)
}

/// The image `example.com/lazy` (app `lazy`) running `script`, with /data/blob.
fn lazy_image(tmp: &Path, script: &str) -> PathBuf {
    let app = serde_json::json!({
        "exec": ["/bin/sh", "-c", script], "user": "0", "group": "0",
        "mountPoints": [{"name": "out", "path": "/out"}]
    });
    busybox_aci(tmp, "lazy", &app.to_string(), |r| {
        write(&r.join("data/blob"), &blob());
    })
}

fn run_lazy(dir: &Path, tmp: &Path, aci: &Path, tag: &str) -> (Output, String) {
    let uuid_file = tmp.join(format!("uuid-{tag}"));
    let save = format!("--uuid-file-save={}", uuid_file.display());
    let o = rkt_pod(
        dir,
        &[
            "run",
            "--rootfs=lazy",
            &save,
            "--volume=out,kind=empty",
            aci.to_str().unwrap(),
        ],
    );
    let uuid = std::fs::read_to_string(&uuid_file).unwrap_or_default();
    (o, uuid)
}

fn pod_dir(dir: &Path, uuid: &str) -> PathBuf {
    dir.join("pods/run").join(uuid)
}

/// Regular files under DIR/objects (materialised objects), with their inode numbers.
fn objects(dir: &Path) -> Vec<(PathBuf, u64)> {
    files_under(&dir.join("objects"))
        .into_keys()
        .map(|rel| {
            let p = dir.join("objects").join(rel);
            let ino = std::fs::metadata(&p).unwrap().ino();
            (p, ino)
        })
        .collect()
}

fn objects_with(dir: &Path, content: &[u8]) -> Vec<(PathBuf, u64)> {
    objects(dir)
        .into_iter()
        .filter(|(p, _)| std::fs::read(p).unwrap() == content)
        .collect()
}

#[test]
fn lazy_pod_reads_the_image_and_writes_to_its_upper_dir() {
    let (tmp, dir, _cleanup) = pod_scratch();
    let aci = lazy_image(
        tmp.path(),
        "cat /data/blob > /out/copy && grep -c 'lowerdir=[^,]*/apps/lazy/lazy,' /proc/self/mountinfo > /out/lazy; \
         echo new > /data/written && echo appended >> /etc/passwd && cat /etc/passwd > /out/passwd",
    );
    let (o, uuid) = run_lazy(&dir, tmp.path(), &aci, "a");
    assert!(
        o.status.success(),
        "{}",
        describe("rkt run --rootfs=lazy", &o)
    );
    let pod = pod_dir(&dir, &uuid);
    let options = std::fs::read_to_string(pod.join("options.json")).unwrap();
    assert!(options.contains(r#""rootfs":"lazy""#), "{options}");
    // The app's rootfs was an overlay over the lazy tree, and the tree served its files: the
    // access log the lazy mount writes when it ends names the file the app read.
    let lazy = std::fs::read_to_string(pod.join("volumes/out/lazy")).unwrap();
    assert_eq!(
        lazy.trim(),
        "1",
        "the app's rootfs is not an overlay over apps/lazy/lazy"
    );
    let logs = files_under(&dir.join("access"));
    assert_eq!(logs.len(), 1, "{logs:?}");
    let log =
        std::fs::read_to_string(dir.join("access").join(logs.keys().next().unwrap())).unwrap();
    assert!(log.contains("data/blob"), "access log: {log}");
    // Byte-identical read.
    assert!(
        std::fs::read(pod.join("volumes/out/copy")).unwrap() == blob(),
        "/data/blob read in the pod differs from the image's"
    );
    // Writes (a new file, an appended image file) are in the upper dir only.
    let upper = pod.join("apps/lazy/upper");
    assert_eq!(
        std::fs::read_to_string(upper.join("data/written")).unwrap(),
        "new\n"
    );
    let passwd = std::fs::read_to_string(upper.join("etc/passwd")).unwrap();
    assert!(passwd.ends_with("appended\n"), "{passwd}");
    assert_eq!(
        std::fs::read_to_string(pod.join("volumes/out/passwd")).unwrap(),
        passwd
    );
    // The store's objects are untouched: the blob's object is the image's bytes, and no object
    // has the appended line.
    assert_eq!(objects_with(&dir, &blob()).len(), 1, "{:?}", objects(&dir));
    for (p, _) in objects(&dir) {
        let data = std::fs::read(&p).unwrap();
        assert!(
            !data.windows(8).any(|w| w == b"appended"),
            "{} was written through the pod",
            p.display()
        );
    }
    // No mount is left in the host's namespace once the pod exited.
    assert_eq!(host_mounts_below(tmp.path()), Vec::<String>::new());
    let v = rkt(&dir, &["image", "verify", "example.com/lazy"]);
    assert!(v.status.success(), "{}", describe("image verify", &v));
}

/// Flip a byte of /data/blob where its pack stores it (random data is stored uncompressed),
/// so that only that file is damaged.
fn corrupt_blob_in_its_pack(dir: &Path) {
    let needle = &blob()[1_500_000..1_500_064];
    for rel in files_under(&dir.join("packs")).into_keys() {
        let path = dir.join("packs").join(rel);
        let mut bytes = std::fs::read(&path).unwrap();
        if let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) {
            bytes[at + 10] ^= 0x55;
            std::fs::write(&path, bytes).unwrap();
            return;
        }
    }
    panic!("no pack holds /data/blob's bytes as they are");
}

#[test]
fn a_corrupt_chunk_is_an_io_error_in_the_pod_and_a_log_line() {
    let (tmp, dir, _cleanup) = pod_scratch();
    let aci = lazy_image(
        tmp.path(),
        "cat /data/blob > /dev/null 2> /out/err; echo $? > /out/rc; cat /etc/passwd > /out/passwd",
    );
    fetch(&dir, &aci);
    corrupt_blob_in_its_pack(&dir);
    let (o, uuid) = run_lazy(&dir, tmp.path(), &aci, "a");
    let pod = pod_dir(&dir, &uuid);
    let rc = std::fs::read_to_string(pod.join("volumes/out/rc")).unwrap_or_else(|e| {
        panic!(
            "no exit status from the app ({e}): {}",
            describe("rkt run", &o)
        )
    });
    assert_ne!(rc.trim(), "0", "reading a corrupt file succeeded");
    let err = std::fs::read_to_string(pod.join("volumes/out/err")).unwrap();
    assert!(
        err.contains("I/O error") || err.contains("Input/output error"),
        "the app saw: {err:?}"
    );
    // Other files still work.
    assert!(std::fs::read_to_string(pod.join("volumes/out/passwd"))
        .unwrap()
        .starts_with("root:"));
    let (_, stderr) = out_text(&o);
    assert!(
        stderr.contains("data/blob")
            && stderr.contains("ERROR")
            && stderr.contains("does not match its hash"),
        "no log line names the file: {stderr}"
    );
    assert!(
        objects_with(&dir, &blob()).is_empty(),
        "a corrupt object was kept"
    );
}

#[test]
fn two_pods_of_one_image_share_the_materialised_object() {
    let (tmp, dir, _cleanup) = pod_scratch();
    let aci = lazy_image(tmp.path(), "cat /data/blob > /out/copy");
    let (o1, uuid1) = run_lazy(&dir, tmp.path(), &aci, "a");
    assert!(o1.status.success(), "{}", describe("first pod", &o1));
    let first = objects_with(&dir, &blob());
    assert_eq!(first.len(), 1, "{:?}", objects(&dir));
    let (o2, uuid2) = run_lazy(&dir, tmp.path(), &aci, "b");
    assert!(o2.status.success(), "{}", describe("second pod", &o2));
    assert_ne!(uuid1, uuid2);
    for uuid in [&uuid1, &uuid2] {
        assert!(std::fs::read(pod_dir(&dir, uuid).join("volumes/out/copy")).unwrap() == blob());
    }
    // The second pod was served from the same object: same path, same inode, no copy.
    assert_eq!(objects_with(&dir, &blob()), first);
}

#[test]
fn gc_after_kill_9_of_the_supervisor_leaves_no_mount() {
    let (tmp, dir, _cleanup) = pod_scratch();
    let aci = lazy_image(
        tmp.path(),
        "cat /data/blob > /dev/null; touch /out/main; while true; do sleep 0.05; done",
    );
    let uuid_file = tmp.path().join("uuid");
    let save = format!("--uuid-file-save={}", uuid_file.display());
    let child = spawn_rkt(
        &dir,
        &[
            "--insecure-options=image",
            "run",
            "--rootfs=lazy",
            &save,
            "--volume=out,kind=empty",
            aci.to_str().unwrap(),
        ],
    );
    let mut sup = Supervisor(Some(child));
    wait_for(30, "the pod UUID", || uuid_file.exists());
    let uuid = std::fs::read_to_string(&uuid_file).unwrap();
    let pod = pod_dir(&dir, &uuid);
    wait_for(30, "the app to start", || {
        pod.join("volumes/out/main").exists()
    });
    // The lazy tree is mounted in the host's namespace, by the supervisor.
    let lazy_at = pod.join("apps/lazy/lazy");
    assert!(
        host_mounts_below(tmp.path()).contains(&lazy_at.to_str().unwrap().to_string()),
        "{:?}",
        host_mounts_below(tmp.path())
    );
    let init_pid = std::fs::read_to_string(pod.join("pid")).unwrap();
    sup.0.as_mut().unwrap().kill().unwrap(); // SIGKILL: no cleanup code runs
    let _ = sup.0.take().unwrap().wait();
    wait_for(10, "the pod's init to die", || {
        !Path::new(&format!("/proc/{}", init_pid.trim())).exists()
    });
    // The stale mount is still there until gc.
    assert!(!host_mounts_below(tmp.path()).is_empty());
    let gc = rkt(&dir, &["gc", "--grace-period=0s"]);
    assert!(gc.status.success(), "{}", describe("gc", &gc));
    assert_eq!(
        host_mounts_below(tmp.path()),
        Vec::<String>::new(),
        "mounts left behind"
    );
    for d in ["run", "exited-garbage", "garbage"] {
        assert!(
            !dir.join("pods").join(d).join(&uuid).exists(),
            "pod left in {d}"
        );
    }
}

#[test]
fn rendered_pods_still_run() {
    let (tmp, dir, _cleanup) = pod_scratch();
    let aci = lazy_image(tmp.path(), "cat /data/blob > /out/copy");
    let o = rkt_pod(
        &dir,
        &[
            "run",
            "--rootfs=rendered",
            "--volume=out,kind=empty",
            aci.to_str().unwrap(),
        ],
    );
    assert!(
        o.status.success(),
        "{}",
        describe("rkt run --rootfs=rendered", &o)
    );
    let pods = files_under(&dir.join("pods/run"));
    let copy = pods
        .keys()
        .find(|p| p.ends_with("volumes/out/copy"))
        .expect("the pod's output");
    assert!(std::fs::read(dir.join("pods/run").join(copy)).unwrap() == blob());
    assert!(
        !dir.join("access").exists(),
        "a rendered pod went through a lazy mount"
    );
}

#[test]
fn rootfs_flag_is_checked() {
    let (tmp, dir, _cleanup) = pod_scratch();
    let aci = lazy_image(tmp.path(), "true");
    let a = aci.to_str().unwrap();
    let e = rkt_fails(
        &dir,
        &["--insecure-options=image", "run", "--rootfs=fast", a],
    );
    assert!(e.contains("expected lazy, rendered or copy"), "{e}");
    let e = rkt_fails(
        &dir,
        &[
            "--insecure-options=image",
            "run",
            "--no-overlay",
            "--rootfs=lazy",
            a,
        ],
    );
    assert!(e.contains("--no-overlay means --rootfs=copy"), "{e}");
    // `rkt prepare` with `flags`: the pod's UUID and its recorded options.json.
    let prepare = |flags: &[&str]| {
        let mut args = vec!["--insecure-options=image", "prepare"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["--volume=out,kind=empty", a]);
        let uuid = rkt_ok(&dir, &args).trim().to_string();
        let options =
            std::fs::read_to_string(dir.join("pods/prepared").join(&uuid).join("options.json"))
                .unwrap();
        (uuid, options)
    };
    // Without --rootfs, a pod of an image with no rendered tree is lazy (docs/lazy-rootfs.md).
    let (_, options) = prepare(&[]);
    assert!(options.contains(r#""rootfs":"lazy""#), "{options}");
    assert!(
        !dir.join("trees").exists(),
        "a lazy prepare rendered the image"
    );
    // A pod prepared rendered renders the shared tree, and can still run lazy.
    let (uuid, options) = prepare(&["--rootfs=rendered"]);
    assert!(options.contains(r#""rootfs":"rendered""#), "{options}");
    assert!(
        dir.join("trees").read_dir().unwrap().next().is_some(),
        "no rendered tree"
    );
    let o = rkt(&dir, &["run-prepared", "--rootfs=lazy", &uuid]);
    assert!(
        o.status.success(),
        "{}",
        describe("run-prepared --rootfs=lazy", &o)
    );
    let options = std::fs::read_to_string(pod_dir(&dir, &uuid).join("options.json")).unwrap();
    assert!(options.contains(r#""rootfs":"lazy""#), "{options}");
    // Once the image's tree is rendered, the default takes it: the faster warm start.
    let (_, options) = prepare(&[]);
    assert!(options.contains(r#""rootfs":"rendered""#), "{options}");
}

/// The supervisor serves the lazy trees from threads, and the pod's init is forked from it
/// without exec: the trees must only be mounted once init exists, or init's children hang in
/// glibc's setgroups/setuid (which wait for the parent's other threads). An app with its own
/// user and supplementary groups exercises exactly that path; the test fails on a hang.
#[test]
fn a_lazy_pod_app_with_its_own_user_starts_without_hanging() {
    let (tmp, dir, _cleanup) = pod_scratch();
    let app = serde_json::json!({
        "exec": ["/bin/sh", "-c", "test \"$(id -u):$(id -g)\" = 1000:1000 && cat /data/blob > /dev/null"],
        "user": "1000", "group": "1000", "supplementaryGIDs": [2000, 2001]
    });
    let aci = busybox_aci(tmp.path(), "lazyuser", &app.to_string(), |r| {
        write(&r.join("data/blob"), &blob());
    });
    let mut sup = Supervisor(Some(spawn_rkt(
        &dir,
        &[
            "--insecure-options=image",
            "run",
            "--rootfs=lazy",
            aci.to_str().unwrap(),
        ],
    )));
    let mut status = None;
    wait_for(60, "the lazy pod to exit (a hang?)", || {
        status = sup.0.as_mut().unwrap().try_wait().unwrap();
        status.is_some()
    });
    let o = sup.0.take().unwrap().wait_with_output().unwrap();
    assert!(
        status.unwrap().success(),
        "{}",
        describe("rkt run --rootfs=lazy as user 1000", &o)
    );
}

#[test]
fn debug_shows_how_long_each_start_phase_took() {
    let (tmp, dir, _cleanup) = pod_scratch();
    let aci = lazy_image(tmp.path(), "cat /data/blob > /dev/null");
    let o = rkt_pod(
        &dir,
        &[
            "--debug",
            "run",
            "--rootfs=lazy",
            "--volume=out,kind=empty",
            aci.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", describe("rkt --debug run", &o));
    let (_, stderr) = out_text(&o);
    for phase in [
        "pod.resolve_images",
        "pod.prepare",
        "pod.mount_rootfs",
        "lazyfs.mount",
        "pod init started",
        "lazy root filesystems ready",
        "first app exec",
    ] {
        assert!(
            stderr.contains(phase),
            "no {phase:?} in --debug output: {stderr}"
        );
    }
    assert!(stderr.contains("elapsed_ms="), "{stderr}");
    // fuser's per-request debug lines would drown the phases.
    assert!(!stderr.contains("FUSE("), "{stderr}");
}
