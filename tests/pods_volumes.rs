//! Volumes: host (read-write, read-only), empty (mode, owner, shared by apps), the Docker
//! shorthand, mount points without volumes, and symlinks in images that try to point a mount
//! at the host.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::*;

fn out(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn run(dir: &Path, args: &[&str]) -> String {
    let o = rkt_pod(dir, args);
    assert!(
        o.status.success(),
        "{}",
        describe(&format!("rkt {args:?}"), &o)
    );
    out(&o)
}

#[test]
fn host_volumes_read_write_and_read_only() {
    let (tmp, dir, _cleanup) = pod_scratch();
    let host = tmp.path().join("host");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("from-host"), "host data\n").unwrap();
    let app = serde_json::json!({
        "exec": ["/bin/sh", "-c", "cat /data/from-host; echo written > /data/from-pod && echo rw-ok"],
        "user": "0", "group": "0",
        "mountPoints": [{"name": "data", "path": "/data"}]
    });
    let aci = busybox_aci(tmp.path(), "vols", &app.to_string(), |_| {});
    let a = aci.to_str().unwrap();
    let vol = format!("--volume=data,kind=host,source={}", host.display());
    assert_eq!(run(&dir, &["run", &vol, a]), "host data\nrw-ok\n");
    assert_eq!(
        std::fs::read_to_string(host.join("from-pod")).unwrap(),
        "written\n"
    );

    let ro = format!("{vol},readOnly=true");
    let text = run(
        &dir,
        &[
            "run",
            &ro,
            a,
            "--exec=/bin/sh",
            "--",
            "-c",
            "cat /data/from-host; touch /data/x 2>/dev/null || echo refused",
        ],
    );
    assert_eq!(text, "host data\nrefused\n");
    assert!(!host.join("x").exists());

    // A read-only mount point in the image makes the volume read-only unless it says otherwise.
    let app_ro = serde_json::json!({
        "exec": ["/bin/sh", "-c", "touch /data/y 2>/dev/null || echo refused"], "user": "0", "group": "0",
        "mountPoints": [{"name": "data", "path": "/data", "readOnly": true}]
    });
    let aci_ro = busybox_aci(tmp.path(), "vols-ro", &app_ro.to_string(), |_| {});
    assert_eq!(
        run(&dir, &["run", &vol, aci_ro.to_str().unwrap()]),
        "refused\n"
    );

    // --mount puts a volume where no mount point is; the Docker shorthand too.
    let o = run(
        &dir,
        &[
            "run", &vol, "--volume", &format!("{}:/docker:ro", host.display()), a,
            "--mount=volume=data,target=/elsewhere/deep", "--exec=/bin/sh", "--", "-c",
            "cat /elsewhere/deep/from-host /docker/from-host; touch /docker/z 2>/dev/null || echo docker-ro",
        ],
    );
    assert_eq!(o, "host data\nhost data\ndocker-ro\n");
    // The shorthand with a relative host path says what it needs.
    let o = rkt_pod(&dir, &["run", "--volume", "./here:/docker", a]);
    assert_eq!(o.status.code(), Some(254));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("both paths must be absolute"),
        "{}",
        describe("relative shorthand", &o)
    );
    // A missing host source is an error and no host path is created.
    let missing = tmp.path().join("missing");
    let o = rkt_pod(
        &dir,
        &[
            "run",
            &format!("--volume=data,kind=host,source={}", missing.display()),
            a,
        ],
    );
    assert_ne!(o.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("missing"),
        "{}",
        describe("missing source", &o)
    );
    assert!(!missing.exists());
}

#[test]
fn empty_volumes_and_mount_points_without_volumes() {
    let (tmp, dir, _cleanup) = pod_scratch();
    let app = serde_json::json!({
        "exec": ["/bin/sh", "-c", "stat -c '%a %u %g' /scratch; ls -A /scratch | wc -l"],
        "user": "0", "group": "0",
        "mountPoints": [{"name": "scratch", "path": "/scratch"}]
    });
    let aci = busybox_aci(tmp.path(), "empty", &app.to_string(), |r| {
        write(&r.join("scratch/image-file"), b"hidden by the volume\n");
    });
    let a = aci.to_str().unwrap();
    assert_eq!(
        run(
            &dir,
            &[
                "run",
                "--volume=scratch,kind=empty,mode=0750,uid=1000,gid=50",
                a
            ]
        ),
        "750 1000 50\n0\n"
    );
    // No volume named like the mount point: an empty one is made for it.
    assert_eq!(run(&dir, &["run", a]), "755 0 0\n0\n");
}

#[test]
fn apps_of_a_pod_share_empty_volumes() {
    let (tmp, dir, _cleanup) = pod_scratch();
    let writer = serde_json::json!({
        "exec": ["/bin/sh", "-c", "echo from-writer > /shared/msg"], "user": "0", "group": "0",
        "mountPoints": [{"name": "shared", "path": "/shared"}]
    });
    let reader = serde_json::json!({
        "exec": ["/bin/sh", "-c", "i=0; while [ ! -s /in/msg ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done; cat /in/msg"],
        "user": "0", "group": "0",
        "mountPoints": [{"name": "shared", "path": "/in"}]
    });
    let w = busybox_aci(tmp.path(), "writer", &writer.to_string(), |_| {});
    let r = busybox_aci(tmp.path(), "reader", &reader.to_string(), |_| {});
    let o = run(
        &dir,
        &[
            "run",
            "--volume=shared,kind=empty",
            r.to_str().unwrap(),
            w.to_str().unwrap(),
        ],
    );
    assert_eq!(o, "from-writer\n");
}

#[test]
fn symlinks_in_the_image_cannot_redirect_mounts_to_the_host() {
    let (tmp, dir, _cleanup) = pod_scratch();
    let victim = tmp.path().join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("precious"), "host file\n").unwrap();
    let source = tmp.path().join("source");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join("payload"), "volume content\n").unwrap();
    let victim_abs = victim.to_str().unwrap().to_string();
    let app = serde_json::json!({
        "exec": ["/bin/sh", "-c", "ls /abs/ /rel/ /vicdir/"], "user": "0", "group": "0",
        "mountPoints": [
            {"name": "abs", "path": "/abs"},
            {"name": "rel", "path": "/rel/sub"},
            {"name": "vic", "path": "/vicdir"}
        ]
    });
    let aci = busybox_aci(tmp.path(), "evil", &app.to_string(), |r| {
        // An absolute link to the host directory, a relative one climbing out, and one to the
        // victim's full path (which exists on the host but not in the image).
        std::os::unix::fs::symlink(&victim_abs, r.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../../../../../../..", r.join("rel")).unwrap();
        std::os::unix::fs::symlink(format!("{victim_abs}/precious"), r.join("vicdir")).unwrap();
    });
    let before = host_mounts_below(tmp.path());
    for (vol, target) in [("abs", "abs"), ("rel", "rel"), ("vic", "vic")] {
        let flag = format!("--volume={vol},kind=host,source={}", source.display());
        let o = rkt_pod(
            &dir,
            &[
                "run",
                &flag,
                aci.to_str().unwrap(),
                "--exec=/bin/sh",
                "--",
                "-c",
                "echo ran",
            ],
        );
        // Whether the mount lands inside the rootfs or the app is refused, the host is untouched.
        assert!(
            o.status.success() || o.status.code() == Some(254),
            "{}",
            describe(target, &o)
        );
    }
    let o = rkt_pod(
        &dir,
        &[
            "run",
            &format!("--volume=abs,kind=host,source={}", source.display()),
            &format!("--volume=rel,kind=host,source={}", source.display()),
            &format!("--volume=vic,kind=host,source={}", source.display()),
            aci.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", describe("all three", &o));
    assert!(
        out(&o).contains("payload"),
        "the mounts land inside the rootfs: {}",
        out(&o)
    );
    let entries: Vec<_> = std::fs::read_dir(&victim)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        entries,
        vec![std::ffi::OsString::from("precious")],
        "nothing created on the host"
    );
    assert_eq!(
        std::fs::read_to_string(victim.join("precious")).unwrap(),
        "host file\n"
    );
    assert!(std::fs::metadata(victim.join("precious"))
        .unwrap()
        .is_file());
    assert_eq!(std::fs::metadata(&victim).unwrap().uid(), 0);
    assert_eq!(
        host_mounts_below(tmp.path()),
        before,
        "no mount on the host"
    );
    // (A later target may resolve through an earlier volume — here /vicdir's link runs through
    // the /abs volume — and create its mount point there: that is inside a volume the user
    // gave, not an escape.)
    assert_eq!(
        std::fs::read_to_string(source.join("payload")).unwrap(),
        "volume content\n"
    );
}
