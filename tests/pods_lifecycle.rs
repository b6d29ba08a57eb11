//! The pod lifecycle: SIGTERM to `rkt run`, `prepare`/`run-prepared`, `list`, `status`,
//! `stop`, `enter`, `cat-manifest`, `rm`, `gc` (also after `kill -9` of the supervisor), and
//! `image gc` keeping the images of pods.

mod common;

use std::path::{Path, PathBuf};
use std::process::Child;

use common::*;

/// A long-running pod whose app records SIGTERM and whose post-stop handler leaves a mark in
/// the empty volume `out` (visible on the host in the pod directory).
fn handlers_image(tmp: &Path) -> PathBuf {
    let app = serde_json::json!({
        "exec": ["/bin/sh", "-c",
            "trap 'echo got-term >> /out/main; exit 3' TERM; echo started > /out/main; while true; do sleep 0.05; done"],
        "user": "0", "group": "0",
        "eventHandlers": [
            {"name": "pre-start", "exec": ["/bin/sh", "-c", "echo pre > /out/pre"]},
            {"name": "post-stop", "exec": ["/bin/sh", "-c", "echo post > /out/post"]}
        ],
        "mountPoints": [{"name": "out", "path": "/out"}]
    });
    busybox_aci(tmp, "handlers", &app.to_string(), |_| {})
}

fn start_pod(dir: &Path, aci: &Path, uuid_file: &Path, extra: &[&str]) -> (Child, String) {
    let save = format!("--uuid-file-save={}", uuid_file.display());
    let mut args = vec![
        "--insecure-options=image",
        "run",
        &save,
        "--volume=out,kind=empty",
    ];
    args.extend_from_slice(extra);
    args.push(aci.to_str().unwrap());
    let child = spawn_rkt(dir, &args);
    wait_for(20, "the pod UUID", || uuid_file.exists());
    let uuid = std::fs::read_to_string(uuid_file).unwrap();
    let main = dir.join("pods/run").join(&uuid).join("volumes/out/main");
    wait_for(20, "the app to start", || main.exists());
    (child, uuid)
}

#[test]
fn sigterm_stops_the_pod_and_runs_post_stop() {
    let (tmp, dir, _cleanup) = pod_scratch();
    let aci = handlers_image(tmp.path());
    let (child, uuid) = start_pod(&dir, &aci, &tmp.path().join("uuid"), &[]);
    let mut sup = Supervisor(Some(child));
    let status = rkt_ok(&dir, &["status", &uuid]);
    assert!(
        status.contains("state=running\n") && status.contains("exited=false\n"),
        "{status}"
    );
    let pid = sup.0.as_ref().unwrap().id() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = sup.0.take().unwrap().wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "rkt run returns the app's status: {}",
        describe("run", &out)
    );
    let vol = dir.join("pods/run").join(&uuid).join("volumes/out");
    assert_eq!(std::fs::read_to_string(vol.join("pre")).unwrap(), "pre\n");
    assert_eq!(
        std::fs::read_to_string(vol.join("main")).unwrap(),
        "started\ngot-term\n"
    );
    assert_eq!(
        std::fs::read_to_string(vol.join("post")).unwrap(),
        "post\n",
        "post-stop ran"
    );
    let status = rkt_ok(&dir, &["status", &uuid]);
    assert!(
        status.contains("state=exited\n") && status.contains("app-handlers=3\n"),
        "{status}"
    );
}

#[test]
fn an_app_ignoring_sigterm_is_killed_after_the_grace_period() {
    let (tmp, dir, _cleanup) = pod_scratch();
    let app = serde_json::json!({
        "exec": ["/bin/sh", "-c", "trap '' TERM; echo x > /out/main; while true; do sleep 0.05; done"],
        "user": "0", "group": "0",
        "mountPoints": [{"name": "out", "path": "/out"}]
    });
    let aci = busybox_aci(tmp.path(), "stubborn", &app.to_string(), |_| {});
    let (child, uuid) = start_pod(&dir, &aci, &tmp.path().join("uuid"), &["--stop-timeout=1s"]);
    let mut sup = Supervisor(Some(child));
    let t = std::time::Instant::now();
    rkt_ok(&dir, &["stop", &uuid]);
    let out = sup.0.take().unwrap().wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(137), "{}", describe("run", &out));
    assert!(
        t.elapsed().as_secs() < 8,
        "killed after the 1s grace, took {:?}",
        t.elapsed()
    );
    assert!(rkt_ok(&dir, &["status", &uuid]).contains("app-stubborn=137\n"));
}

#[test]
fn stop_enter_list_cat_manifest_rm() {
    let (tmp, dir, _cleanup) = pod_scratch();
    let aci = handlers_image(tmp.path());
    let (child, uuid) = start_pod(&dir, &aci, &tmp.path().join("uuid"), &["--hostname=inside"]);
    let mut sup = Supervisor(Some(child));

    // enter: the pod's namespaces and the app's rootfs, by UUID prefix.
    let o = rkt(
        &dir,
        &[
            "enter",
            &uuid[..8],
            "/bin/sh",
            "-c",
            "hostname; cat /out/main; echo $$; exit 4",
        ],
    );
    assert_eq!(o.status.code(), Some(4), "{}", describe("enter", &o));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(&lines[..2], &["inside", "started"], "{text}");
    assert!(
        lines[2].parse::<u32>().unwrap() < 100,
        "a PID of the pod's namespace: {text}"
    );
    assert_eq!(
        rkt_ok(&dir, &["enter", &uuid, "hostname"]),
        "inside\n",
        "names are looked up in PATH"
    );
    let o = rkt(&dir, &["enter", &uuid]);
    assert_eq!(
        o.status.code(),
        Some(254),
        "busybox images have no /bin/bash (rkt's default)"
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("cannot run /bin/bash"),
        "{}",
        describe("enter", &o)
    );
    let e = rkt_fails(&dir, &["enter", "--app=nope", &uuid, "/bin/true"]);
    assert!(e.contains("no app \"nope\""), "{e}");

    let list = rkt_ok(&dir, &["list"]);
    assert!(list.starts_with("UUID"), "{list}");
    assert!(
        list.contains(&uuid[..8])
            && list.contains("running")
            && list.contains("example.com/handlers"),
        "{list}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&rkt_ok(&dir, &["list", "--format=json"])).unwrap();
    assert_eq!(json[0]["name"], uuid.as_str());
    assert_eq!(json[0]["state"], "running");
    assert_eq!(json[0]["app_names"][0], "handlers");
    assert!(rkt_ok(&dir, &["list", "--full", "--no-legend"]).contains(&uuid));

    let m: serde_json::Value =
        serde_json::from_str(&rkt_ok(&dir, &["cat-manifest", &uuid])).unwrap();
    assert_eq!(m["acKind"], "PodManifest");
    assert_eq!(m["apps"][0]["name"], "handlers");
    assert!(m["apps"][0]["image"]["id"]
        .as_str()
        .unwrap()
        .starts_with("sha512-"));
    assert_eq!(m["volumes"][0]["name"], "out");

    let e = rkt_fails(&dir, &["rm", &uuid]);
    assert!(e.contains("running"), "{e}");
    assert_eq!(rkt_ok(&dir, &["stop", &uuid]).trim(), uuid);
    let out = sup.0.take().unwrap().wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", describe("run", &out));
    let waited = rkt_ok(&dir, &["status", "--wait", &uuid]);
    assert!(waited.contains("state=exited"), "{waited}");
    let e = rkt_fails(&dir, &["stop", &uuid]);
    assert!(e.contains("not running"), "{e}");

    let uuid_file = tmp.path().join("uuid");
    let removed = rkt_ok(&dir, &["rm", "--uuid-file", uuid_file.to_str().unwrap()]);
    assert!(removed.contains(&uuid), "{removed}");
    assert!(!dir.join("pods/run").join(&uuid).exists());
    assert!(!dir.join("pods/exited-garbage").join(&uuid).exists());
    let e = rkt_fails(&dir, &["status", &uuid]);
    assert!(e.contains("no pod matches"), "{e}");
}

#[test]
fn prepare_then_run_prepared() {
    let (tmp, dir, _cleanup) = pod_scratch();
    let aci = busybox_aci(
        tmp.path(),
        "prep",
        &sh_app("echo prepared run $AC_APP_NAME; exit 9"),
        |_| {},
    );
    let o = rkt_pod(&dir, &["prepare", "--quiet", aci.to_str().unwrap()]);
    assert!(o.status.success(), "{}", describe("prepare", &o));
    let uuid = String::from_utf8(o.stdout).unwrap().trim().to_string();
    assert_eq!(uuid.len(), 36, "{uuid}");
    let status = rkt_ok(&dir, &["status", &uuid]);
    assert!(status.contains("state=prepared\n"), "{status}");
    assert!(status.contains("created=20"), "{status}");
    assert!(!status.contains("started="), "not started yet: {status}");
    assert!(dir.join("pods/prepared").join(&uuid).join("pod").is_file());
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let o = rkt(&dir, &["run-prepared", &uuid]);
    assert_eq!(o.status.code(), Some(9), "{}", describe("run-prepared", &o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "prepared run prep\n");
    let status = rkt_ok(&dir, &["status", &uuid]);
    assert!(status.contains("started=20"), "{status}");
    let json: serde_json::Value =
        serde_json::from_str(&rkt_ok(&dir, &["list", "--format=json"])).unwrap();
    let (created, started) = (&json[0]["created_at"], &json[0]["started_at"]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        created.as_i64().unwrap() < started.as_i64().unwrap()
            && started.as_i64().unwrap() <= now
            && now - created.as_i64().unwrap() < 600,
        "prepared, then run a second later: {json}"
    );
    let e = rkt_fails(&dir, &["run-prepared", &uuid]);
    assert!(e.contains("only prepared pods"), "{e}");
    // prepare refuses run-only flags.
    let o = rkt_pod(&dir, &["prepare", "--interactive", aci.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(254));
}

#[test]
fn gc_after_kill_9_leaves_no_mount_and_no_pod() {
    let (tmp, dir, _cleanup) = pod_scratch();
    let aci = handlers_image(tmp.path());
    let (child, uuid) = start_pod(&dir, &aci, &tmp.path().join("uuid"), &[]);
    let mut sup = Supervisor(Some(child));
    let init_pid = std::fs::read_to_string(dir.join("pods/run").join(&uuid).join("pid")).unwrap();
    sup.0.as_mut().unwrap().kill().unwrap(); // SIGKILL: no cleanup code runs
    let _ = sup.0.take().unwrap().wait();
    // The pod's processes die with their supervisor.
    wait_for(10, "the pod's init to die", || {
        !Path::new(&format!("/proc/{}", init_pid.trim())).exists()
    });
    let status = rkt_ok(&dir, &["status", &uuid]);
    assert!(status.contains("state=exited\n"), "{status}");
    let gc = rkt(&dir, &["gc", "--grace-period=0s"]);
    assert!(gc.status.success(), "{}", describe("gc", &gc));
    for d in [
        "run",
        "exited-garbage",
        "garbage",
        "prepare",
        "prepared",
        "embryo",
    ] {
        assert!(
            !dir.join("pods").join(d).join(&uuid).exists(),
            "pod left in {d}"
        );
    }
    assert_eq!(
        host_mounts_below(tmp.path()),
        Vec::<String>::new(),
        "mounts left behind"
    );
}

#[test]
fn gc_marks_then_sweeps_after_the_grace_period() {
    let (tmp, dir, _cleanup) = pod_scratch();
    let aci = busybox_aci(tmp.path(), "short", &sh_app("true"), |_| {});
    let save = tmp.path().join("uuid");
    let o = rkt_pod(
        &dir,
        &[
            "run",
            &format!("--uuid-file-save={}", save.display()),
            aci.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", describe("run", &o));
    let uuid = std::fs::read_to_string(&save).unwrap();
    rkt_ok(&dir, &["gc", "--mark-only"]);
    assert!(dir.join("pods/exited-garbage").join(&uuid).is_dir());
    assert!(rkt_ok(&dir, &["status", &uuid]).contains("state=exited garbage"));
    rkt_ok(&dir, &["gc"]); // default grace 30m: kept
    assert!(dir.join("pods/exited-garbage").join(&uuid).is_dir());
    rkt_ok(&dir, &["gc", "--grace-period=0s"]);
    assert!(!dir.join("pods/exited-garbage").join(&uuid).exists());

    // Prepared pods expire.
    let o = rkt_pod(&dir, &["prepare", aci.to_str().unwrap()]);
    let prepared = String::from_utf8(o.stdout).unwrap().trim().to_string();
    rkt_ok(&dir, &["gc"]);
    assert!(
        dir.join("pods/prepared").join(&prepared).is_dir(),
        "fresh prepared pods stay"
    );
    rkt_ok(&dir, &["gc", "--expire-prepared=0s"]);
    assert!(!dir.join("pods/prepared").join(&prepared).exists());
    assert!(!dir.join("pods/garbage").join(&prepared).exists());
}

#[test]
fn image_gc_keeps_images_of_pods() {
    let (tmp, dir, _cleanup) = pod_scratch();
    let used = busybox_aci(tmp.path(), "used", &sh_app("echo still runs"), |_| {});
    let unused = busybox_aci(tmp.path(), "unused", &sh_app("true"), |r| {
        write(&r.join("x"), b"x")
    });
    let used_id = fetch(&dir, &used);
    let unused_id = fetch(&dir, &unused);
    let o = rkt_pod(&dir, &["prepare", "--quiet", "example.com/used"]);
    assert!(o.status.success(), "{}", describe("prepare by name", &o));
    let uuid = String::from_utf8(o.stdout).unwrap().trim().to_string();
    rkt_ok(&dir, &["image", "gc", "--grace-period=0s"]);
    let ids = list_ids(&dir);
    assert!(
        ids.iter()
            .any(|i| used_id.starts_with(i.as_str()) || i == &used_id),
        "kept: {ids:?}"
    );
    assert!(
        !ids.iter()
            .any(|i| unused_id.starts_with(i.as_str()) || i == &unused_id),
        "removed: {ids:?}"
    );
    let o = rkt(&dir, &["run-prepared", &uuid]);
    assert!(
        o.status.success(),
        "{}",
        describe("run-prepared after image gc", &o)
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "still runs\n");
    // Once the pod is gone, its image can go too.
    rkt_ok(&dir, &["rm", &uuid]);
    rkt_ok(&dir, &["image", "gc", "--grace-period=0s"]);
    assert!(list_ids(&dir).is_empty(), "{:?}", list_ids(&dir));
}

/// systemd's default stop (KillMode=control-group, no ExecStop): SIGTERM to every process of
/// the unit at once — the supervisor, the pod's init, the app supervisor and the app.
#[test]
fn sigterm_to_every_process_at_once_like_systemd() {
    use std::os::unix::process::CommandExt;
    let (tmp, dir, _cleanup) = pod_scratch();
    let aci = handlers_image(tmp.path());
    let uuid_file = tmp.path().join("uuid");
    let child = std::process::Command::new(RKT)
        .arg("--dir")
        .arg(&dir)
        .args(["--insecure-options=image", "run"])
        .arg(format!("--uuid-file-save={}", uuid_file.display()))
        .arg("--volume=out,kind=empty")
        .arg(&aci)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut sup = Supervisor(Some(child));
    wait_for(20, "the pod UUID", || uuid_file.exists());
    let uuid = std::fs::read_to_string(&uuid_file).unwrap();
    let vol = dir.join("pods/run").join(&uuid).join("volumes/out");
    wait_for(20, "the app to start", || vol.join("main").exists());
    let pgid = nix::unistd::Pid::from_raw(sup.0.as_ref().unwrap().id() as i32);
    nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let out = sup.0.take().unwrap().wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", describe("run", &out));
    assert_eq!(
        std::fs::read_to_string(vol.join("post")).ok().as_deref(),
        Some("post\n"),
        "the post-stop handler did not run: {}",
        describe("run", &out)
    );
    assert!(rkt_ok(&dir, &["status", &uuid]).contains("app-handlers=3\n"));
}
