//! App isolators: the capability bounding set (rkt's default set, appc's retain and remove
//! sets from the image, `--caps-retain`/`--caps-remove`, `--insecure-options=capabilities`).
//! Runs real pods as root with busybox-static images built at test time.

mod common;

use std::path::Path;

use common::*;

/// Capability numbers (capabilities(7)) of rkt's default set.
const DEFAULT_CAPS: [u32; 14] = [29, 0, 1, 4, 3, 5, 27, 13, 10, 7, 6, 8, 31, 18];

fn mask(caps: &[u32]) -> u64 {
    caps.iter().fold(0, |m, c| m | (1u64 << c))
}

/// The CapBnd, CapEff and CapPrm masks `/proc/self/status` reports inside the pod.
fn pod_caps(dir: &Path, aci: &Path, pod_flags: &[&str], app_flags: &[&str]) -> (u64, u64, u64) {
    let mut args = vec!["run"];
    args.extend_from_slice(pod_flags);
    args.push(aci.to_str().unwrap());
    args.extend_from_slice(app_flags);
    args.extend_from_slice(&["--exec", "/bin/cat", "--", "/proc/self/status"]);
    let o = rkt_pod(dir, &args);
    assert!(o.status.success(), "{}", describe("run cat status", &o));
    status_caps(&String::from_utf8_lossy(&o.stdout))
}

fn status_caps(status: &str) -> (u64, u64, u64) {
    let field = |name: &str| {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in {status}"));
        u64::from_str_radix(line[name.len()..].trim(), 16).unwrap()
    };
    (field("CapBnd:"), field("CapEff:"), field("CapPrm:"))
}

#[test]
fn apps_run_with_rkts_default_capabilities() {
    let (tmp, dir, _cleanup) = pod_scratch();
    let aci = busybox_aci(tmp.path(), "caps", &sh_app("true"), |_| {});
    let want = mask(&DEFAULT_CAPS);
    let (bnd, eff, prm) = pod_caps(&dir, &aci, &[], &[]);
    assert_eq!(
        (bnd, eff, prm),
        (want, want, want),
        "root app: {bnd:x} {eff:x} {prm:x}"
    );
    // Without CAP_SYS_ADMIN a root app cannot mount (here: over its own /tmp).
    let o = rkt_pod(
        &dir,
        &[
            "run",
            aci.to_str().unwrap(),
            "--exec",
            "/bin/busybox",
            "--",
            "mount",
            "-t",
            "tmpfs",
            "none",
            "/tmp",
        ],
    );
    assert!(!o.status.success(), "{}", describe("mount in a pod", &o));
    // A non-root app has no capabilities at all, and the same bounding set.
    let (bnd, eff, prm) = pod_caps(&dir, &aci, &[], &["--user=1000", "--group=1000"]);
    assert_eq!(
        (bnd, eff, prm),
        (want, 0, 0),
        "user 1000: {bnd:x} {eff:x} {prm:x}"
    );
}

#[test]
fn retain_and_remove_sets_from_the_command_line() {
    let (tmp, dir, _cleanup) = pod_scratch();
    let aci = busybox_aci(tmp.path(), "capsflags", &sh_app("true"), |_| {});
    // CAP_NET_ADMIN is 12, CAP_CHOWN 0.
    let (bnd, eff, _) = pod_caps(&dir, &aci, &[], &["--caps-retain=CAP_NET_ADMIN,chown"]);
    assert_eq!((bnd, eff), (mask(&[12, 0]), mask(&[12, 0])));
    let (bnd, _, _) = pod_caps(&dir, &aci, &[], &["--caps-remove=CAP_CHOWN,CAP_NET_RAW"]);
    assert_eq!(bnd, mask(&DEFAULT_CAPS) & !mask(&[0, 13]));
    // rkt's old spelling
    let (bnd, _, _) = pod_caps(&dir, &aci, &[], &["--cap-retain=CAP_KILL"]);
    assert_eq!(bnd, mask(&[5]));
    // --insecure-options=capabilities keeps everything rkt's own bounding set has (the flag
    // is rkt's global one: given after `run`, it replaces the `image` rkt_pod passes).
    let host = status_caps(&std::fs::read_to_string("/proc/self/status").unwrap()).0;
    let (bnd, _, _) = pod_caps(&dir, &aci, &["--insecure-options=image,capabilities"], &[]);
    assert_eq!(
        bnd, host,
        "all capabilities: {bnd:x} vs the host's {host:x}"
    );

    // Unknown names and conflicting flags are refused before any pod exists.
    for bad in [
        vec!["--caps-retain=CAP_PONIES"],
        vec!["--caps-retain=CAP_KILL", "--caps-remove=CAP_CHOWN"],
        vec!["--caps-retain="],
    ] {
        let mut args = vec!["run", aci.to_str().unwrap()];
        args.extend_from_slice(&bad);
        let o = rkt_pod(&dir, &args);
        assert_eq!(o.status.code(), Some(254), "{}", describe("bad caps", &o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("caps"), "{bad:?}: {err}");
    }
    let listed = rkt_ok(&dir, &["list", "--no-legend"]);
    assert_eq!(
        listed.lines().count(),
        4,
        "only the four good pods exist:\n{listed}"
    );
}

#[test]
fn image_isolators_apply_and_the_command_line_replaces_them() {
    let (tmp, dir, _cleanup) = pod_scratch();
    let app = serde_json::json!({
        "exec": ["/bin/true"], "user": "0", "group": "0",
        "isolators": [{"name": "os/linux/capabilities-retain-set",
                       "value": {"set": ["CAP_NET_BIND_SERVICE", "CAP_SYS_TIME"]}}],
    });
    let aci = busybox_aci(tmp.path(), "capsimage", &app.to_string(), |_| {});
    // CAP_NET_BIND_SERVICE is 10, CAP_SYS_TIME 25.
    let (bnd, _, _) = pod_caps(&dir, &aci, &[], &[]);
    assert_eq!(bnd, mask(&[10, 25]));
    let (bnd, _, _) = pod_caps(&dir, &aci, &[], &["--caps-remove=CAP_KILL"]);
    assert_eq!(
        bnd,
        mask(&DEFAULT_CAPS) & !mask(&[5]),
        "the CLI's set replaces the image's"
    );
    // The pod manifest says what the app ran with.
    let save = tmp.path().join("uuid");
    let flag = format!("--uuid-file-save={}", save.display());
    let o = rkt_pod(
        &dir,
        &[
            "run",
            &flag,
            aci.to_str().unwrap(),
            "--caps-retain=CAP_CHOWN",
        ],
    );
    assert!(o.status.success(), "{}", describe("run", &o));
    let uuid = std::fs::read_to_string(&save).unwrap();
    let manifest = rkt_ok(&dir, &["cat-manifest", &uuid]);
    assert!(
        manifest.contains("CAP_CHOWN") && !manifest.contains("CAP_SYS_TIME"),
        "{manifest}"
    );
}

/// This process's directory in the cgroup v1 hierarchy of `controller` (rkt nests its pods'
/// cgroups under the cgroup it runs in, which is this test's).
fn own_cgroup(controller: &str) -> std::path::PathBuf {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let rel = own
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.splitn(3, ':').collect();
            f[1].split(',')
                .any(|c| c == controller)
                .then(|| f[2].to_string())
        })
        .unwrap_or_else(|| panic!("no v1 {controller} controller for this process"));
    Path::new("/sys/fs/cgroup")
        .join(controller)
        .join(rel.trim_start_matches('/'))
}

/// Start a pod whose app sleeps, with `flags` after the image; returns its supervisor and UUID.
fn sleeping_pod(dir: &Path, aci: &Path, uuid_file: &Path, flags: &[&str]) -> (Supervisor, String) {
    let save = format!("--uuid-file-save={}", uuid_file.display());
    let mut args = vec![
        "--insecure-options=image",
        "run",
        &save,
        aci.to_str().unwrap(),
    ];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["--exec", "/bin/sleep", "--", "30"]);
    let sup = Supervisor(Some(spawn_rkt(dir, &args)));
    wait_for(20, "the pod UUID", || uuid_file.exists());
    let uuid = std::fs::read_to_string(uuid_file).unwrap();
    (sup, uuid)
}

#[test]
fn memory_and_cpu_limits_are_cgroups_that_go_with_the_pod() {
    let (tmp, dir, _cleanup) = pod_scratch();
    let aci = busybox_aci(tmp.path(), "limits", &sh_app("true"), |_| {});
    let (mut sup, uuid) = sleeping_pod(
        &dir,
        &aci,
        &tmp.path().join("uuid"),
        &["--memory=64Mi", "--cpu=500m"],
    );
    let mem = own_cgroup("memory").join(format!("rkt-{uuid}/limits"));
    let cpu = own_cgroup("cpu").join(format!("rkt-{uuid}/limits"));
    wait_for(20, "the app in its memory cgroup", || {
        std::fs::read_to_string(mem.join("cgroup.procs")).is_ok_and(|p| !p.trim().is_empty())
    });
    let read = |p: std::path::PathBuf| std::fs::read_to_string(p).unwrap().trim().to_string();
    assert_eq!(read(mem.join("memory.limit_in_bytes")), "67108864");
    assert_eq!(read(cpu.join("cpu.cfs_quota_us")), "50000");
    assert_eq!(read(cpu.join("cpu.cfs_period_us")), "100000");
    assert!(!read(cpu.join("cgroup.procs")).is_empty());
    // `rkt enter` runs its command with the app's capabilities, in the app's cgroups.
    let entered = rkt_ok(&dir, &["enter", &uuid, "/bin/cat", "/proc/self/status"]);
    assert_eq!(status_caps(&entered).0, mask(&DEFAULT_CAPS), "{entered}");
    assert!(
        entered.contains("Seccomp:\t2"),
        "entered command without the filter: {entered}"
    );
    let entered = rkt_ok(&dir, &["enter", &uuid, "/bin/cat", "/proc/self/cgroup"]);
    assert!(
        entered.contains(&format!("rkt-{uuid}/limits")),
        "entered command outside the app's cgroups: {entered}"
    );
    // Stopped, the pod takes its cgroups with it.
    rkt_ok(&dir, &["stop", &uuid]);
    let _ = sup.0.take().unwrap().wait();
    for d in [&mem, &cpu] {
        assert!(!d.parent().unwrap().exists(), "{} left behind", d.display());
    }

    // kill -9 of the supervisor: rkt gc removes them.
    let (mut sup, uuid) = sleeping_pod(&dir, &aci, &tmp.path().join("uuid2"), &["--memory=32M"]);
    let mem = own_cgroup("memory").join(format!("rkt-{uuid}"));
    wait_for(20, "the memory cgroup", || {
        mem.join("limits/cgroup.procs").exists()
    });
    let init_pid = std::fs::read_to_string(dir.join("pods/run").join(&uuid).join("pid")).unwrap();
    let mut child = sup.0.take().unwrap();
    child.kill().unwrap();
    let _ = child.wait();
    wait_for(10, "the pod's init to die", || {
        !Path::new(&format!("/proc/{}", init_pid.trim())).exists()
    });
    assert!(
        mem.exists(),
        "without its supervisor the cgroup stays until gc"
    );
    rkt_ok(&dir, &["gc", "--grace-period=0s"]);
    assert!(!mem.exists(), "gc leaves {}", mem.display());

    // The limit holds: sorting 64 MB in 16 MiB gets the sorter OOM-killed.
    let o = rkt_pod(
        &dir,
        &[
            "run",
            aci.to_str().unwrap(),
            "--memory=16Mi",
            "--exec",
            "/bin/sh",
            "--",
            "-c",
            "/bin/busybox head -c 64000000 /dev/zero | /bin/busybox sort >/dev/null; echo sort=$?",
        ],
    );
    assert!(o.status.success(), "{}", describe("sort under a limit", &o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "sort=137\n",
        "{}",
        describe("oom", &o)
    );

    // Bad limits are refused before any pod exists.
    for bad in ["--memory=lots", "--memory=1k", "--cpu=1m", "--cpu=-2"] {
        let o = rkt_pod(&dir, &["run", aci.to_str().unwrap(), bad]);
        assert_eq!(o.status.code(), Some(254), "{}", describe(bad, &o));
        let flag = bad.split('=').next().unwrap();
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(flag),
            "{}",
            describe(bad, &o)
        );
    }
}

#[test]
fn cpu_shares_oom_score_and_no_new_privileges() {
    let (tmp, dir, _cleanup) = pod_scratch();
    let app = serde_json::json!({
        "exec": ["/bin/true"], "user": "0", "group": "0",
        "isolators": [{"name": "os/linux/no-new-privileges", "value": true}],
    });
    let aci = busybox_aci(tmp.path(), "procs", &app.to_string(), |_| {});
    let script = "grep NoNewPrivs /proc/self/status; cat /proc/self/oom_score_adj";
    let run = |flags: &[&str]| {
        let mut args = vec!["run", aci.to_str().unwrap()];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["--exec", "/bin/sh", "--", "-c", script]);
        let o = rkt_pod(&dir, &args);
        assert!(o.status.success(), "{}", describe("run", &o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let text = run(&["--oom-score-adj=500"]);
    assert_eq!(
        text, "NoNewPrivs:\t1\n500\n",
        "the image's no-new-privileges, --oom-score-adj"
    );

    // cpu-shares is the cpu cgroup's weight, while the pod runs.
    let (mut sup, uuid) = sleeping_pod(&dir, &aci, &tmp.path().join("uuid"), &["--cpu-shares=256"]);
    let cpu = own_cgroup("cpu").join(format!("rkt-{uuid}/procs"));
    wait_for(20, "the cpu cgroup", || cpu.join("cgroup.procs").exists());
    let shares = std::fs::read_to_string(cpu.join("cpu.shares")).unwrap();
    assert_eq!(shares.trim(), "256");
    rkt_ok(&dir, &["stop", &uuid]);
    let _ = sup.0.take().unwrap().wait();
    assert!(!cpu.exists(), "{} left behind", cpu.display());

    for bad in [
        "--oom-score-adj=2000",
        "--oom-score-adj=x",
        "--cpu-shares=1",
    ] {
        let o = rkt_pod(&dir, &["run", aci.to_str().unwrap(), bad]);
        assert_eq!(o.status.code(), Some(254), "{}", describe(bad, &o));
    }
}

#[test]
fn seccomp_default_remove_and_retain_sets() {
    let (tmp, dir, _cleanup) = pod_scratch();
    // busybox echo needs these (strace), plus what rkt adds to every retain set.
    let echo_calls = [
        "arch_prctl",
        "brk",
        "execve",
        "exit_group",
        "getrandom",
        "getuid",
        "mprotect",
        "prlimit64",
        "readlink",
        "readlinkat",
        "rseq",
        "set_robust_list",
        "set_tid_address",
        "write",
        "mmap",
        "munmap",
        "getpid",
        "ioctl",
        "poll",
    ];
    let app = serde_json::json!({
        "exec": ["/bin/busybox", "echo", "retained"], "user": "0", "group": "0",
        "isolators": [{"name": "os/linux/seccomp-retain-set",
                       "value": {"set": echo_calls, "errno": "ENOSYS"}}],
    });
    let retained = busybox_aci(tmp.path(), "retain", &app.to_string(), |_| {});
    let plain = busybox_aci(tmp.path(), "plain", &sh_app("true"), |_| {});
    let sh = |pod: &[&str], aci: &Path, app: &[&str], script: &str| {
        let mut args = vec!["run"];
        args.extend_from_slice(pod);
        args.push(aci.to_str().unwrap());
        args.extend_from_slice(app);
        args.extend_from_slice(&["--exec", "/bin/sh", "--", "-c", script]);
        rkt_pod(&dir, &args)
    };
    let text = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).into_owned();
    // The default filter refuses, e.g., new user namespaces (allowed without capabilities).
    let probe = "grep Seccomp: /proc/self/status; /bin/busybox unshare -U true && echo unshared";
    let o = sh(&[], &plain, &[], probe);
    assert_eq!(
        text(&o),
        "Seccomp:\t2\n",
        "{}",
        describe("default filter", &o)
    );
    let o = sh(&["--insecure-options=image,seccomp"], &plain, &[], probe);
    assert_eq!(
        text(&o),
        "Seccomp:\t0\nunshared\n",
        "{}",
        describe("no filter", &o)
    );
    // A remove set: refused with the errno given, or the process is killed (SIGSYS).
    let mk = "/bin/busybox mkdir /made; echo mkdir=$?";
    let o = sh(
        &[],
        &plain,
        &["--seccomp", "mode=remove,errno=EACCES,mkdir"],
        mk,
    );
    assert_eq!(
        text(&o),
        "mkdir=1\n",
        "{}",
        describe("remove with errno", &o)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("Permission denied"));
    let o = sh(&[], &plain, &["--seccomp", "mode=remove,mkdir"], mk);
    assert_eq!(text(&o), "mkdir=159\n", "{}", describe("remove, kill", &o));
    // The image's retain set lets exactly its calls through; the command line replaces it.
    let o = rkt_pod(&dir, &["run", retained.to_str().unwrap()]);
    assert_eq!(
        text(&o),
        "retained\n",
        "{}",
        describe("image retain set", &o)
    );
    let o = rkt_pod(
        &dir,
        &[
            "run",
            retained.to_str().unwrap(),
            "--seccomp",
            "mode=retain,execve,brk",
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(159),
        "{}",
        describe("tiny retain set", &o)
    );
    // Bad specifications are refused before a pod exists.
    for bad in [
        "mode=sideways,mkdir",
        "mode=remove",
        "mode=remove,no_such_call",
        "mode=remove,errno=EPONIES,mkdir",
    ] {
        let o = rkt_pod(&dir, &["run", plain.to_str().unwrap(), "--seccomp", bad]);
        assert_eq!(o.status.code(), Some(254), "{}", describe(bad, &o));
    }
}

/// `rkt run POD_FLAGS ACI --exec /bin/sh -- -c SCRIPT`: its stdout, and the whole output.
fn script_output(
    dir: &Path,
    aci: &Path,
    pod: &[&str],
    script: &str,
) -> (String, std::process::Output) {
    let mut args = vec!["run"];
    args.extend_from_slice(pod);
    args.extend_from_slice(&[
        aci.to_str().unwrap(),
        "--exec",
        "/bin/sh",
        "--",
        "-c",
        script,
    ]);
    let o = rkt_pod(dir, &args);
    (String::from_utf8_lossy(&o.stdout).into_owned(), o)
}

#[test]
fn proc_is_protected_unless_paths_are_insecure() {
    let (tmp, dir, _cleanup) = pod_scratch();
    let aci = busybox_aci(tmp.path(), "procpaths", &sh_app("true"), |_| {});
    // Writes a sysctl's own value back (a no-op where it succeeds).
    let script = "v=$(cat /proc/sys/kernel/printk_ratelimit); \
                  (echo $v > /proc/sys/kernel/printk_ratelimit) 2>/dev/null \
                  && echo sys-writable || echo sys-ro; \
                  grep -c ' /proc/keys ' /proc/self/mounts";
    let run = |pod: &[&str]| script_output(&dir, &aci, pod, script).0;
    assert_eq!(
        run(&[]),
        "sys-ro\n1\n",
        "the host's sysctls are read-only, /proc/keys masked"
    );
    assert_eq!(
        run(&["--insecure-options=image,paths"]),
        "sys-writable\n0\n",
        "--insecure-options=paths leaves /proc as the kernel mounts it"
    );
}

#[test]
fn init_gives_the_app_no_way_back_to_the_host() {
    let (tmp, dir, _cleanup) = pod_scratch();
    let aci = busybox_aci(tmp.path(), "noescape", &sh_app("true"), |_| {});
    // A single-app pod: the app sets its root up in init's mount namespace, and init keeps a
    // descriptor of the pod's apps/ directory on the host. A root app with rkt's default
    // capabilities must reach neither that nor init's root or working directory.
    let script = "for p in /proc/1/root/ /proc/1/cwd/ /proc/1/fd/*/; do \
                  ls $p >/dev/null 2>&1 && echo \"open: $p\"; done; \
                  [ -d /proc/1 ] && echo checked";
    let run = |pod: &[&str]| {
        let (out, o) = script_output(&dir, &aci, pod, script);
        assert!(o.status.success(), "{}", describe("run", &o));
        out
    };
    assert_eq!(run(&[]), "checked\n");
    // The probe does see them where the barrier (capabilities) is lifted.
    let all = run(&["--insecure-options=image,capabilities"]);
    assert!(all.contains("open: /proc/1/root/"), "{all}");
}

#[test]
fn descriptors_rkt_inherits_do_not_reach_the_app() {
    use std::os::fd::AsRawFd;
    let (tmp, dir, _cleanup) = pod_scratch();
    let aci = busybox_aci(tmp.path(), "fds", &sh_app("true"), |_| {});
    // An inheritable descriptor of a host directory in rkt's caller (above any the shell uses):
    // in the pod it would be a way out of the app's root.
    let host = std::fs::File::open(tmp.path()).unwrap();
    // SAFETY: F_DUPFD only duplicates a descriptor this test owns.
    let fd = unsafe { libc::fcntl(host.as_raw_fd(), libc::F_DUPFD, 200) };
    assert!(fd >= 200, "F_DUPFD: {}", std::io::Error::last_os_error());
    let script = format!("[ -e /proc/self/fd/{fd} ] && echo leaked || echo closed");
    for pod in [
        &[][..],
        &["--insecure-options=image,seccomp,capabilities"][..],
    ] {
        let (out, o) = script_output(&dir, &aci, pod, &script);
        assert!(o.status.success(), "{}", describe("run", &o));
        assert_eq!(out, "closed\n", "{pod:?}");
    }
    // Nor does it reach a command run with `rkt enter`.
    let (mut sup, uuid) = sleeping_pod(&dir, &aci, &tmp.path().join("uuid"), &[]);
    let entered = rkt_ok(&dir, &["enter", uuid.trim(), "/bin/sh", "-c", &script]);
    assert_eq!(entered, "closed\n");
    let _ = rkt(&dir, &["stop", "--force", uuid.trim()]);
    let _ = sup.0.take().map(|mut c| c.wait());
    // SAFETY: closes the duplicate made above, which nothing else uses.
    unsafe { libc::close(fd) };
}
