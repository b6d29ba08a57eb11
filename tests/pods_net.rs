//! Pod networking through `rkt run`: every test re-executes itself under
//! `unshare --net --mount` with tmpfs on /run/netns, /var/lib/cni and /run/lock, so no
//! interface, rule, namespace or lease reaches the machine.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const SANDBOX_ENV: &str = "RKT_PODS_NET_SANDBOX";

fn sandboxed(name: &str, test: impl FnOnce()) {
    if std::env::var_os(SANDBOX_ENV).is_some() {
        for d in ["/run/netns", "/var/lib/cni", "/run/lock"] {
            std::fs::create_dir_all(d).unwrap();
            sh(&format!("mount -t tmpfs rkt-pods-net-test {d}"));
        }
        sh("ip link set lo up");
        test();
        return;
    }
    let out = Command::new("unshare")
        .args(["--net", "--mount", "--propagation", "private", "--"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(SANDBOX_ENV, "1")
        .output()
        .expect("run unshare");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "sandboxed test {name} failed:\n{text}"
    );
    assert!(text.contains("1 passed"), "{name} did not run:\n{text}");
}

fn net_image(tmp: &Path, name: &str, app: serde_json::Value) -> PathBuf {
    busybox_aci(tmp, name, &app.to_string(), |r| {
        for a in ["ip", "httpd"] {
            std::os::unix::fs::symlink("busybox", r.join("bin").join(a)).unwrap();
        }
        std::fs::create_dir_all(r.join("www")).unwrap();
        std::fs::write(r.join("www/index.html"), "hello from the pod\n").unwrap();
    })
}

fn capture(cmd: &str) -> String {
    let o = Command::new("sh").args(["-c", cmd]).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Nothing of any pod's network is left: veths, rkt/CNI nat rules, leases, namespaces.
fn assert_nothing_left() {
    let links = capture("ip -o link show");
    assert!(!links.contains("veth"), "veth left:\n{links}");
    let nat = capture("iptables-save -t nat");
    assert!(
        !nat.contains("RKT-") && !nat.contains("CNI-"),
        "nat rules left:\n{nat}"
    );
    let leases = capture(
        "find /var/lib/cni/networks -type f ! -name lock ! -name 'last_reserved_ip*' 2>/dev/null",
    );
    assert!(leases.trim().is_empty(), "leases left:\n{leases}");
}

#[test]
fn default_network_gives_an_address_and_a_route() {
    sandboxed("default_network_gives_an_address_and_a_route", || {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("rkt");
        let _cleanup = PodsCleanup(dir.clone());
        let aci = net_image(
            tmp.path(),
            "ipshow",
            serde_json::json!({"exec": ["/bin/sh", "-c", "ip -4 addr; ip route; cat /etc/resolv.conf 2>/dev/null; true"],
                "user": "0", "group": "0"}),
        );
        let out = rkt_ok(
            &dir,
            &[
                "--insecure-options=image",
                "run",
                "--net=default",
                "--dns=10.1.2.3",
                aci.to_str().unwrap(),
            ],
        );
        assert!(out.contains("inet 172.16.28."), "{out}");
        assert!(out.contains("default via 172.16.28."), "{out}");
        assert!(out.contains("nameserver 10.1.2.3"), "{out}");
        assert_nothing_left();

        let out = rkt_ok(
            &dir,
            &[
                "--insecure-options=image",
                "run",
                "--net=none",
                aci.to_str().unwrap(),
            ],
        );
        assert!(out.contains("127.0.0.1"), "{out}");
        assert!(!out.contains("eth0") && !out.contains("default"), "{out}");
        assert_nothing_left();

        // prepare keeps the network flags for run-prepared.
        let uuid = rkt_ok(
            &dir,
            &[
                "--insecure-options=image",
                "prepare",
                "--net=default",
                aci.to_str().unwrap(),
            ],
        );
        let out = rkt_ok(&dir, &["run-prepared", uuid.trim()]);
        assert!(out.contains("inet 172.16.28."), "{out}");
        assert_nothing_left();
    });
}

#[test]
fn port_forwarding_list_status_stop_and_gc() {
    sandboxed("port_forwarding_list_status_stop_and_gc", || {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("rkt");
        let _cleanup = PodsCleanup(dir.clone());
        let aci = net_image(
            tmp.path(),
            "web",
            serde_json::json!({"exec": ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"],
                "user": "0", "group": "0",
                "ports": [{"name": "http", "protocol": "tcp", "port": 8080}]}),
        );
        for kill9 in [false, true] {
            let uuid_file = tmp.path().join(format!("uuid-{kill9}"));
            let save = format!("--uuid-file-save={}", uuid_file.display());
            let mut child = spawn_rkt(
                &dir,
                &[
                    "--insecure-options=image",
                    "run",
                    &save,
                    "--net=default",
                    "--port=http:18080",
                    aci.to_str().unwrap(),
                ],
            );
            let mut page = String::new();
            let mut tries = 0;
            while !page.contains("hello from the pod") && tries < 200 {
                std::thread::sleep(std::time::Duration::from_millis(100));
                page = capture("env -u http_proxy -u HTTP_PROXY timeout 3 busybox wget -q -O - http://127.0.0.1:18080/index.html");
                tries += 1;
            }
            if !page.contains("hello from the pod") {
                let diag = capture(&format!(
                    "for n in {}/pods/run/*/netns; do nsenter --net=$n busybox netstat -ltn; nsenter --net=$n ip -4 addr; done; iptables-save -t nat 2>&1; timeout 3 busybox wget -O - http://127.0.0.1:18080/index.html 2>&1",
                    dir.display()
                ));
                eprintln!("{diag}");
                let _ = child.kill();
                let o = child.wait_with_output().unwrap();
                panic!("no answer through --port: {}", describe("rkt run", &o));
            }
            let uuid = std::fs::read_to_string(&uuid_file).unwrap();
            let list = rkt_ok(&dir, &["list", "--no-legend"]);
            assert!(list.contains("default:ip4=172.16.28."), "{list}");
            let status = rkt_ok(&dir, &["status", &uuid]);
            assert!(
                status.contains("networks=default:ip4=172.16.28."),
                "{status}"
            );
            if kill9 {
                let _ = child.kill();
                let _ = child.wait();
                assert!(capture("ip -o link").contains("veth"), "still set up");
                rkt_ok(&dir, &["gc"]);
            } else {
                rkt_ok(&dir, &["stop", &uuid]);
                let _ = child.wait();
            }
            assert_nothing_left();
        }
    });
}
