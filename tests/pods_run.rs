//! `rkt run`: exit statuses, the app's environment, users and groups, the appc execution
//! environment (/proc, /sys, /dev, hostname, pivot_root), `--no-overlay` and multi-app pods.
//! Runs real pods as root with busybox-static images built at test time.

mod common;

use std::path::Path;

use common::*;

fn out(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn run_sh(
    dir: &Path,
    aci: &Path,
    pod_flags: &[&str],
    app_flags: &[&str],
    script: &str,
) -> std::process::Output {
    let mut args = vec!["run"];
    args.extend_from_slice(pod_flags);
    args.push(aci.to_str().unwrap());
    args.extend_from_slice(app_flags);
    args.extend_from_slice(&["--exec", "/bin/sh", "--", "-c", script]);
    rkt_pod(dir, &args)
}

#[test]
fn exit_status_is_the_apps_and_is_recorded() {
    let (tmp, dir, _cleanup) = pod_scratch();
    let aci = busybox_aci(
        tmp.path(),
        "exit",
        &sh_app("echo hello from the image"),
        |_| {},
    );

    let o = rkt_pod(&dir, &["run", aci.to_str().unwrap()]);
    assert!(o.status.success(), "{}", describe("run", &o));
    assert_eq!(out(&o), "hello from the image\n");

    let save = tmp.path().join("uuid");
    let save_flag = format!("--uuid-file-save={}", save.display());
    let o = run_sh(&dir, &aci, &[&save_flag], &[], "exit 7");
    assert_eq!(o.status.code(), Some(7), "{}", describe("exit 7", &o));
    let uuid = std::fs::read_to_string(&save).unwrap();
    let status = rkt_ok(&dir, &["status", &uuid]);
    assert!(status.contains("state=exited\n"), "{status}");
    assert!(status.contains("exited=true\n"), "{status}");
    assert!(status.contains("app-exit=7\n"), "{status}");

    // Killed by a signal: 128 + the signal number, as a shell reports it.
    let o = run_sh(&dir, &aci, &[], &[], "kill -9 $$");
    assert_eq!(o.status.code(), Some(137), "{}", describe("kill -9", &o));
    let o = run_sh(&dir, &aci, &[], &[], "kill -TERM $$");
    assert_eq!(o.status.code(), Some(143), "{}", describe("kill -TERM", &o));

    // A program that does not exist fails the app with rkt's status and says why.
    let o = rkt_pod(
        &dir,
        &["run", aci.to_str().unwrap(), "--exec", "/no/such/program"],
    );
    assert_eq!(o.status.code(), Some(254));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("/no/such/program"),
        "{}",
        describe("missing exec", &o)
    );
}

#[test]
fn environment_precedence() {
    let (tmp, dir, _cleanup) = pod_scratch();
    let app = serde_json::json!({
        "exec": ["/bin/sh", "-c", "env"], "user": "0", "group": "0",
        "environment": [
            {"name": "FROM_IMAGE", "value": "image"},
            {"name": "IMG_VS_FILE", "value": "image"},
            {"name": "FILE_VS_SET", "value": "image"},
            {"name": "SET_VS_APP", "value": "image"},
            {"name": "INHERITED", "value": "image"},
            {"name": "container", "value": "image"}
        ]
    });
    let aci = busybox_aci(tmp.path(), "env", &app.to_string(), |_| {});
    let envfile = tmp.path().join("env.txt");
    std::fs::write(
        &envfile,
        "# comment\nIMG_VS_FILE=file\nFILE_VS_SET=file\nFILE_ONLY=file\n",
    )
    .unwrap();
    let file_flag = format!("--set-env-file={}", envfile.display());
    let o = std::process::Command::new(RKT)
        .args([
            "--dir",
            dir.to_str().unwrap(),
            "--insecure-options=image",
            "run",
            "--inherit-env",
        ])
        .arg(&file_flag)
        .args(["--set-env=FILE_VS_SET=set", "--set-env=SET_VS_APP=set"])
        .arg(&aci)
        .args(["--environment=SET_VS_APP=app", "--environment=APP_ONLY=app"])
        .env("INHERITED", "parent")
        .env("ONLY_PARENT", "parent")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", describe("run", &o));
    let env: std::collections::BTreeMap<String, String> = out(&o)
        .lines()
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    let get = |k: &str| env.get(k).map(String::as_str);
    assert_eq!(
        get("ONLY_PARENT"),
        Some("parent"),
        "--inherit-env passes the caller's environment"
    );
    assert_eq!(
        get("INHERITED"),
        Some("image"),
        "image env beats the inherited one"
    );
    assert_eq!(get("FROM_IMAGE"), Some("image"));
    assert_eq!(
        get("IMG_VS_FILE"),
        Some("file"),
        "--set-env-file beats the image"
    );
    assert_eq!(get("FILE_ONLY"), Some("file"));
    assert_eq!(
        get("FILE_VS_SET"),
        Some("set"),
        "--set-env beats --set-env-file"
    );
    assert_eq!(
        get("SET_VS_APP"),
        Some("app"),
        "--environment beats --set-env"
    );
    assert_eq!(get("APP_ONLY"), Some("app"));
    assert_eq!(get("AC_APP_NAME"), Some("env"));
    assert_eq!(get("container"), Some("rkt"));
    let url = get("AC_METADATA_URL").expect("AC_METADATA_URL is set");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert!(
        get("PATH").is_some(),
        "PATH comes from the caller with --inherit-env"
    );

    // Without --inherit-env, nothing of the caller leaks in and PATH is appc's default.
    let o = std::process::Command::new(RKT)
        .args([
            "--dir",
            dir.to_str().unwrap(),
            "--insecure-options=image",
            "run",
        ])
        .arg(&aci)
        .env("ONLY_PARENT", "parent")
        .output()
        .unwrap();
    let text = out(&o);
    assert!(!text.contains("ONLY_PARENT"), "{text}");
    assert!(
        text.contains("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"),
        "{text}"
    );

    // A duplicate --set-env is an error that starts nothing.
    let o = rkt_pod(
        &dir,
        &[
            "run",
            "--set-env=A=1",
            "--set-env=A=2",
            aci.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(254));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("set twice"),
        "{}",
        describe("dup", &o)
    );
}

#[test]
fn users_and_groups() {
    let (tmp, dir, _cleanup) = pod_scratch();
    let aci = busybox_aci(tmp.path(), "users", &sh_app("id"), |r| {
        write(&r.join("owned"), b"");
        std::os::unix::fs::chown(r.join("owned"), Some(4242), Some(4343)).unwrap();
    });
    let a = aci.to_str().unwrap();
    let id = |flags: &[&str]| {
        let mut args = vec!["run", a];
        args.extend_from_slice(flags);
        let o = rkt_pod(&dir, &args);
        assert!(
            o.status.success(),
            "{}",
            describe(&format!("{flags:?}"), &o)
        );
        out(&o).trim().to_string()
    };
    // No supplementary groups unless asked for (busybox's id then prints no groups=).
    assert_eq!(id(&[]), "uid=0(root) gid=0(root)");
    assert_eq!(
        id(&["--user=1000", "--group=50"]),
        "uid=1000(user) gid=50(staff)"
    );
    assert_eq!(
        id(&["--user=user", "--group=staff"]),
        "uid=1000(user) gid=50(staff)"
    );
    assert_eq!(
        id(&["--user=/owned", "--group=/owned"]),
        "uid=4242 gid=4343"
    );
    assert_eq!(
        id(&["--user=user", "--group=user", "--supplementary-gids=50,777"]),
        "uid=1000(user) gid=1000(user) groups=50(staff),777"
    );
    let o = rkt_pod(&dir, &["run", a, "--user=nobody"]);
    assert_eq!(o.status.code(), Some(254));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("\"nobody\" is not in the image's /etc/passwd"),
        "{err}"
    );
}

#[test]
fn execution_environment() {
    let (tmp, dir, _cleanup) = pod_scratch();
    let aci = busybox_aci(tmp.path(), "ace", &sh_app("true"), |_| {});
    let script = "echo pid=$$; hostname; \
        for d in null zero full random urandom tty console ptmx; do test -e /dev/$d || echo missing /dev/$d; done; \
        test -c /dev/null && echo devnull-is-char; \
        grep -q ' /dev/pts devpts' /proc/self/mounts && echo pts; \
        grep -q ' /dev/shm tmpfs' /proc/self/mounts && echo shm; \
        grep ' /sys ' /proc/self/mounts | grep -q ' ro,' && echo sys-ro; \
        echo x > /dev/null && echo null-writable; \
        test -e /proc/1/stat && test -e /proc/self/root && echo proc; \
        ls /old_root /.oldroot 2>/dev/null; \
        grep -c ' / ' /proc/self/mounts; \
        pwd";
    let o = run_sh(&dir, &aci, &[], &["--working-dir=/tmp"], script);
    assert!(o.status.success(), "{}", describe("run", &o));
    let text = out(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "pid=1".replace('1', &lines[0][4..]), "{text}");
    let pid: u32 = lines[0][4..].parse().unwrap();
    assert!(
        pid <= 4,
        "the app runs in the pod's PID namespace, got pid {pid}: {text}"
    );
    assert!(
        lines[1].starts_with("rkt-") && lines[1].len() == 40,
        "default hostname rkt-UUID: {text}"
    );
    assert!(!text.contains("missing"), "{text}");
    for want in [
        "devnull-is-char",
        "pts",
        "shm",
        "sys-ro",
        "null-writable",
        "proc",
    ] {
        assert!(lines.contains(&want), "{want} missing in:\n{text}");
    }
    assert_eq!(lines.last(), Some(&"/tmp"), "--working-dir: {text}");

    let o = run_sh(&dir, &aci, &["--hostname=web1"], &[], "hostname");
    assert_eq!(out(&o), "web1\n", "{}", describe("--hostname", &o));

    // Writes go to the pod's upper dir, never to the store's shared tree.
    let o = run_sh(
        &dir,
        &aci,
        &[],
        &[],
        "echo changed > /etc/group && echo wrote",
    );
    assert_eq!(out(&o), "wrote\n", "{}", describe("write", &o));
    let o = run_sh(
        &dir,
        &aci,
        &[],
        &[],
        "grep -q staff /etc/group && echo intact",
    );
    assert_eq!(out(&o), "intact\n", "{}", describe("second pod", &o));

    // --readonly-rootfs
    let o = run_sh(
        &dir,
        &aci,
        &[],
        &["--readonly-rootfs"],
        "touch /newfile || echo refused",
    );
    assert!(out(&o).contains("refused"), "{}", describe("readonly", &o));
}

#[test]
fn no_overlay_copies_the_rootfs() {
    let (tmp, dir, _cleanup) = pod_scratch();
    let aci = busybox_aci(tmp.path(), "copy", &sh_app("true"), |r| {
        write(&r.join("etc/hello"), b"hi\n")
    });
    let save = tmp.path().join("uuid");
    let save_flag = format!("--uuid-file-save={}", save.display());
    let o = run_sh(
        &dir,
        &aci,
        &["--no-overlay", &save_flag],
        &[],
        "cat /etc/hello; grep ' / ' /proc/self/mounts; echo new > /etc/new",
    );
    assert!(o.status.success(), "{}", describe("run", &o));
    let text = out(&o);
    assert!(text.starts_with("hi\n"), "{text}");
    assert!(
        !text.contains("overlay"),
        "--no-overlay must not mount overlayfs: {text}"
    );
    let uuid = std::fs::read_to_string(&save).unwrap();
    let rootfs = dir.join("pods/run").join(&uuid).join("apps/copy/rootfs");
    assert!(
        rootfs.join("bin/busybox").is_file(),
        "the copy lives in the pod"
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("etc/new")).unwrap(),
        "new\n"
    );
    assert!(!dir
        .join("pods/run")
        .join(&uuid)
        .join("apps/copy/upper")
        .exists());
}

#[test]
fn several_apps_make_one_pod() {
    let (tmp, dir, _cleanup) = pod_scratch();
    let first = busybox_aci(
        tmp.path(),
        "first",
        &sh_app("sleep 0.5; echo first; exit 3"),
        |_| {},
    );
    let second = busybox_aci(tmp.path(), "second", &sh_app("echo second"), |_| {});
    let save = tmp.path().join("uuid");
    let save_flag = format!("--uuid-file-save={}", save.display());
    let o = rkt_pod(
        &dir,
        &[
            "run",
            &save_flag,
            first.to_str().unwrap(),
            "---",
            second.to_str().unwrap(),
            "--name=two",
            "--exec",
            "/bin/sh",
            "--",
            "-c",
            "echo second $AC_APP_NAME; exit 5",
            "---",
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(3),
        "the first app's status: {}",
        describe("run", &o)
    );
    let text = out(&o);
    assert!(
        text.contains("first\n") && text.contains("second two\n"),
        "{text}"
    );
    let uuid = std::fs::read_to_string(&save).unwrap();
    let status = rkt_ok(&dir, &["status", &uuid]);
    assert!(
        status.contains("app-first=3\n") && status.contains("app-two=5\n"),
        "{status}"
    );
    let list = rkt_ok(&dir, &["list", "--no-legend"]);
    assert!(list.contains("first") && list.contains("two"), "{list}");

    let o = rkt_pod(
        &dir,
        &["run", first.to_str().unwrap(), first.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(254));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--name"),
        "{}",
        describe("dup names", &o)
    );
}

#[test]
fn refuses_bad_command_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rkt");
    let aci = busybox_aci(tmp.path(), "bad", &sh_app("true"), |_| {});
    let a = aci.to_str().unwrap();
    for (args, want) in [
        (vec!["run", "--exec=/bin/true", a], "must follow an image"),
        (
            vec!["run", a, "--volume=x,kind=empty"],
            "before the first image",
        ),
        (
            vec!["run", "--port=http:8080", a],
            "needs a private pod network",
        ),
        (vec!["run", "--net=host,default", a], "--net"),
        (vec!["run", "--volume=x,kind=bogus", a], "volume"),
        (
            vec!["run", "--mount=volume=nope,target=/x", a],
            "no --volume of that name",
        ),
        (vec!["run", "--interactive", a, a], "exactly one image"),
    ] {
        let o = rkt_pod(&dir, &args);
        assert_eq!(
            o.status.code(),
            Some(254),
            "{}",
            describe(&format!("{args:?}"), &o)
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
    // Without --insecure-options=image a file is not imported.
    let o = rkt(&dir, &["run", a]);
    assert_eq!(o.status.code(), Some(254));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--insecure-options=image"));
    // Nothing was left behind by the failures.
    let left: Vec<_> = std::fs::read_dir(dir.join("pods/garbage"))
        .map(|r| r.count())
        .into_iter()
        .collect();
    assert!(left.iter().all(|n| *n == 0), "{left:?}");
}

#[test]
fn apps_start_with_default_signal_dispositions_and_listings_survive_head() {
    let (tmp, dir, _cleanup) = pod_scratch();
    let aci = busybox_aci(tmp.path(), "sigpipe", &sh_app("true"), |_| {});
    // rkt itself ignores SIGPIPE (Rust's runtime does); its apps must not inherit that.
    let o = run_sh(
        &dir,
        &aci,
        &[],
        &[],
        "grep SigIgn /proc/self/status; /bin/busybox yes | /bin/busybox head -1",
    );
    assert!(o.status.success(), "{}", describe("run", &o));
    let text = out(&o);
    let ignored = text
        .strip_prefix("SigIgn:\t")
        .and_then(|t| t.get(..16))
        .and_then(|t| u64::from_str_radix(t, 16).ok())
        .unwrap_or_else(|| panic!("{}", describe("SigIgn", &o)));
    // Standard signals (1-31) start with their default action; glibc's internal real-time
    // signals are whatever the test harness had.
    assert_eq!(
        ignored & 0x7fff_ffff,
        0,
        "{}",
        describe("ignored signals", &o)
    );
    assert!(text.ends_with("\ny\n"), "{}", describe("yes | head", &o));
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("Broken pipe"),
        "{}",
        describe("yes | head", &o)
    );
    // A listing piped into a reader that quits early ends quietly.
    for _ in 0..3 {
        run_sh(&dir, &aci, &[], &[], "true");
    }
    let cmd = format!(
        "{} --dir {} list --full | true; {} --dir {} image list | true",
        RKT,
        dir.display(),
        RKT,
        dir.display()
    );
    let o = std::process::Command::new("sh")
        .args(["-c", &cmd])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe"),
        "{err}"
    );
}

#[test]
fn apps_start_with_umask_0022_whatever_the_callers() {
    let (tmp, dir, _cleanup) = pod_scratch();
    let aci = busybox_aci(tmp.path(), "umask", &sh_app("true"), |_| {});
    for caller in ["077", "000"] {
        let cmd = format!(
            "umask {caller}; exec {RKT} --dir {} --insecure-options=image run {} --exec /bin/sh -- -c 'umask; : > /f; stat -c %a /f'",
            dir.display(),
            aci.display()
        );
        let o = std::process::Command::new("sh")
            .args(["-c", &cmd])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", describe("run", &o));
        assert_eq!(out(&o), "0022\n644\n", "{}", describe(caller, &o));
    }
}
