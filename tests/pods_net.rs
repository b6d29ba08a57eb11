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

/// After `kill -9` of `rkt run`: wait until each running pod's init, and so every process of
/// the pod, is gone. They hold the pod's lock, so until then `rkt gc` rightly sees a running pod.
fn wait_for_pod_processes_to_die(dir: &Path) {
    let pods = std::fs::read_dir(dir.join("pods/run")).unwrap();
    // Each pid file holds one number, without a newline.
    let pids = pods.filter_map(|p| std::fs::read_to_string(p.ok()?.path().join("pid")).ok());
    for pid in pids {
        let pid = pid.trim();
        wait_for(30, "the pod's init to die", || {
            !Path::new(&format!("/proc/{pid}")).exists()
        });
    }
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
        // An address of this (sandboxed) host besides 127.0.0.1.
        sh("ip addr add 10.99.0.3/32 dev lo");
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
            // Also on another address of the host, and at the pod's own address.
            let pod_ip = status
                .split("networks=default:ip4=")
                .nth(1)
                .and_then(|rest| rest.split([',', '\n']).next())
                .unwrap()
                .to_string();
            for url in [
                "http://10.99.0.3:18080/index.html".to_string(),
                format!("http://{pod_ip}:8080/index.html"),
            ] {
                let page = capture(&format!(
                    "env -u http_proxy -u HTTP_PROXY timeout 3 busybox wget -q -O - {url}"
                ));
                assert!(page.contains("hello from the pod"), "{url}: {page:?}");
            }
            if kill9 {
                let _ = child.kill();
                let _ = child.wait();
                assert!(capture("ip -o link").contains("veth"), "still set up");
                wait_for_pod_processes_to_die(&dir);
                rkt_ok(&dir, &["gc"]);
            } else {
                rkt_ok(&dir, &["stop", &uuid]);
                let _ = child.wait();
            }
            assert_nothing_left();
        }
    });
}

/// A busybox image with `wget` and `sed`, and an image annotation `test.example/k=image-value`.
fn mds_image(tmp: &Path, app: serde_json::Value) -> PathBuf {
    // busybox_aci puts its argument as the manifest's `app` value: append the annotations
    // after it at the manifest's top level.
    let app =
        format!(r#"{app}, "annotations": [{{"name": "test.example/k", "value": "image-value"}}]"#);
    busybox_aci(tmp, "mds", &app, |r| {
        for a in ["wget", "sed", "ip"] {
            std::os::unix::fs::symlink("busybox", r.join("bin").join(a)).unwrap();
        }
    })
}

/// What the pod script below prints between `NAME-begin` and `NAME-end` lines.
fn section<'a>(out: &'a str, name: &str) -> &'a str {
    let begin = format!("{name}-begin\n");
    let start = out.find(&begin).map(|i| i + begin.len());
    let end = out.find(&format!("\n{name}-end"));
    match (start, end) {
        (Some(s), Some(e)) if s <= e => &out[s..e],
        _ => panic!("no {name} section in:\n{out}"),
    }
}

const MDS_SCRIPT: &str = r#"
u="$AC_METADATA_URL/acMetadata/v1"
echo "url=$AC_METADATA_URL"
uuid=$(wget -q -O - "$u/pod/uuid")
echo "uuid=$uuid"
echo manifest-begin; wget -q -O - "$u/pod/manifest"; echo; echo manifest-end
echo "annotation=$(wget -q -O - "$u/apps/$AC_APP_NAME/annotations/test.example/k")"
sig=$(wget -q -O - --post-data "content=hello" "$u/pod/hmac/sign")
esig=$(echo "$sig" | sed 's/+/%2B/g; s/\//%2F/g; s/=/%3D/g')
wget -q -O - --post-data "content=hello&uuid=$uuid&signature=$esig" "$u/pod/hmac/verify" && echo verify-ok
wget -q -O - --post-data "content=other&uuid=$uuid&signature=$esig" "$u/pod/hmac/verify" 2>/dev/null || echo verify-refused
wget -q -O - "${AC_METADATA_URL%/*}/not-the-token/acMetadata/v1/pod/uuid" 2>/dev/null || echo bad-token-refused
true
"#;

#[test]
fn private_network_pods_reach_their_metadata_service() {
    sandboxed("private_network_pods_reach_their_metadata_service", || {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("rkt");
        let _cleanup = PodsCleanup(dir.clone());
        let aci = mds_image(
            tmp.path(),
            serde_json::json!({"exec": ["/bin/sh", "-c", MDS_SCRIPT], "user": "0", "group": "0"}),
        );
        // The last round prepares the pod, then runs it with run-prepared.
        let rounds = [
            ("run", "--net=default"),
            ("run", "--net=none"),
            ("run", "--net=default-restricted"),
            ("prepare", "--net=default"),
        ];
        for (command, net) in rounds {
            let uuid_file = tmp.path().join("uuid");
            let save = format!("--uuid-file-save={}", uuid_file.display());
            let args = [
                "--insecure-options=image",
                command,
                &save,
                net,
                aci.to_str().unwrap(),
            ];
            let mut out = rkt_ok(&dir, &args);
            let uuid = std::fs::read_to_string(&uuid_file).unwrap();
            if command == "prepare" {
                out = rkt_ok(&dir, &["run-prepared", uuid.trim()]);
            }
            // rkt's port, on the pod's own loopback.
            assert!(out.contains("url=http://127.0.0.1:18112/"), "{net}: {out}");
            assert!(
                out.contains(&format!("uuid={}\n", uuid.trim())),
                "{net}: {out}"
            );
            let manifest = rkt_ok(&dir, &["cat-manifest", uuid.trim()]);
            let served: serde_json::Value =
                serde_json::from_str(section(&out, "manifest")).unwrap();
            let shown: serde_json::Value = serde_json::from_str(&manifest).unwrap();
            assert_eq!(served, shown, "{net}: served manifest");
            assert!(out.contains("annotation=image-value\n"), "{net}: {out}");
            assert!(out.contains("verify-ok\n"), "{net}: {out}");
            assert!(out.contains("verify-refused\n"), "{net}: {out}");
            assert!(out.contains("bad-token-refused\n"), "{net}: {out}");
            assert_nothing_left();
        }
    });
}

#[test]
fn the_metadata_service_of_a_private_pod_is_not_reachable_from_outside_it() {
    sandboxed(
        "the_metadata_service_of_a_private_pod_is_not_reachable_from_outside_it",
        || {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("rkt");
            let _cleanup = PodsCleanup(dir.clone());
            let url_file = tmp.path().join("url");
            let vol = format!("--volume=out,kind=host,source={}", tmp.path().display());
            let aci = mds_image(
                tmp.path(),
                serde_json::json!({"exec": ["/bin/sh", "-c",
                        "echo \"$AC_METADATA_URL\" > /out/url.tmp && mv /out/url.tmp /out/url && sleep 60"],
                    "user": "0", "group": "0",
                    "mountPoints": [{"name": "out", "path": "/out"}]}),
            );
            let uuid_file = tmp.path().join("uuid");
            let save = format!("--uuid-file-save={}", uuid_file.display());
            let mut child = spawn_rkt(
                &dir,
                &[
                    "--insecure-options=image",
                    "run",
                    &save,
                    &vol,
                    "--net=default",
                    aci.to_str().unwrap(),
                ],
            );
            wait_for(60, "the pod's AC_METADATA_URL", || url_file.exists());
            let url = std::fs::read_to_string(&url_file).unwrap();
            let url = url.trim();
            let port = url
                .trim_start_matches("http://127.0.0.1:")
                .split('/')
                .next()
                .unwrap()
                .to_string();
            // From inside the pod's namespace it answers; from the host's 127.0.0.1 and the
            // pod network's gateway it does not exist.
            let netns = capture(&format!("ls -d {}/pods/run/*/netns", dir.display()));
            let inside = capture(&format!(
                "nsenter --net={} busybox wget -q -O - {url}/acMetadata/v1/pod/uuid",
                netns.trim()
            ));
            let uuid = std::fs::read_to_string(&uuid_file).unwrap();
            assert_eq!(inside.trim(), uuid.trim());
            for host in ["127.0.0.1", "172.16.28.1"] {
                let o = Command::new("busybox")
                    .args(["nc", "-w", "2", host, &port])
                    .stdin(std::process::Stdio::null())
                    .output()
                    .unwrap();
                assert!(
                    !o.status.success(),
                    "the metadata port {port} answers on the host's {host}"
                );
            }
            rkt_ok(&dir, &["stop", uuid.trim()]);
            let _ = child.wait();
            assert_nothing_left();
        },
    );
}

/// Writes `<config>/net.d/NAME` for `rkt --local-config=<config>`.
fn write_net(config: &Path, file: &str, json: &str) {
    let d = config.join("net.d");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join(file), json).unwrap();
}

/// An image whose app writes its IPv4 addresses to the volume `out` (`/out/addrs`), then
/// sleeps until stopped.
fn addrs_image(tmp: &Path) -> PathBuf {
    net_image(
        tmp,
        "addrs",
        serde_json::json!({"exec": ["/bin/sh", "-c",
                "ip -4 -o addr > /out/addrs.tmp; mv /out/addrs.tmp /out/addrs; exec sleep 600"],
            "user": "0", "group": "0",
            "mountPoints": [{"name": "out", "path": "/out"}]}),
    )
}

#[test]
fn several_named_networks_with_cni_args() {
    sandboxed("several_named_networks_with_cni_args", || {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("rkt");
        let _cleanup = PodsCleanup(dir.clone());
        let config = tmp.path().join("etc-rkt");
        let out = tmp.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        write_net(
            &config,
            "10-alpha.conf",
            r#"{"cniVersion":"0.4.0","name":"alpha","type":"ptp","ipMasq":false,
                "ipam":{"type":"host-local","subnet":"10.77.1.0/24"}}"#,
        );
        write_net(
            &config,
            "20-beta.conf",
            r#"{"cniVersion":"0.4.0","name":"beta","type":"bridge","bridge":"rkttestbr0",
                "isGateway":true,"ipam":{"type":"host-local","subnet":"10.77.2.0/24"}}"#,
        );
        let aci = addrs_image(tmp.path());
        let local = format!("--local-config={}", config.display());
        let vol = format!("--volume=out,kind=host,source={}", out.display());
        for kill9 in [false, true] {
            let _ = std::fs::remove_file(out.join("addrs"));
            let uuid_file = tmp.path().join(format!("uuid-{kill9}"));
            let save = format!("--uuid-file-save={}", uuid_file.display());
            let mut child = spawn_rkt(
                &dir,
                &[
                    &local,
                    "--insecure-options=image",
                    "run",
                    &save,
                    &vol,
                    "--net=alpha:IP=10.77.1.77,beta",
                    aci.to_str().unwrap(),
                ],
            );
            wait_for(60, "the pod's addresses", || out.join("addrs").exists());
            let addrs = std::fs::read_to_string(out.join("addrs")).unwrap();
            assert!(addrs.contains("eth0    inet 10.77.1.77/24"), "{addrs}");
            assert!(addrs.contains("eth1    inet 10.77.2."), "{addrs}");
            // As in rkt, default-restricted joins when neither default network was chosen.
            assert!(addrs.contains("eth2    inet 172.31."), "{addrs}");
            let uuid = std::fs::read_to_string(&uuid_file).unwrap();
            let list = rkt_ok(&dir, &[&local, "list", "--no-legend"]);
            for want in [
                "alpha:ip4=10.77.1.77",
                "beta:ip4=10.77.2.",
                "default-restricted:ip4=172.31.",
            ] {
                assert!(list.contains(want), "{want} not in {list}");
            }
            let status = rkt_ok(&dir, &[&local, "status", uuid.trim()]);
            assert!(
                status.contains("networks=alpha:ip4=10.77.1.77,beta:ip4=10.77.2."),
                "{status}"
            );
            if kill9 {
                let _ = child.kill();
                let _ = child.wait();
                wait_for_pod_processes_to_die(&dir);
                rkt_ok(&dir, &[&local, "gc"]);
            } else {
                rkt_ok(&dir, &[&local, "stop", uuid.trim()]);
                let _ = child.wait();
            }
            assert_nothing_left();
        }
    });
}

#[test]
fn a_user_default_network_overrides_the_built_in() {
    sandboxed("a_user_default_network_overrides_the_built_in", || {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("rkt");
        let _cleanup = PodsCleanup(dir.clone());
        let config = tmp.path().join("etc-rkt");
        write_net(
            &config,
            "50-default.conf",
            r#"{"cniVersion":"0.4.0","name":"default","type":"ptp","ipMasq":true,
                "ipam":{"type":"host-local","subnet":"10.77.9.0/24","routes":[{"dst":"0.0.0.0/0"}]}}"#,
        );
        let aci = net_image(
            tmp.path(),
            "ipshow",
            serde_json::json!({"exec": ["/bin/sh", "-c", "ip -4 -o addr; ip route"],
                "user": "0", "group": "0"}),
        );
        let local = format!("--local-config={}", config.display());
        for net in ["--net=default", "--private-net"] {
            let out = rkt_ok(
                &dir,
                &[
                    &local,
                    "--insecure-options=image",
                    "run",
                    net,
                    aci.to_str().unwrap(),
                ],
            );
            assert!(out.contains("eth0    inet 10.77.9."), "{net}: {out}");
            assert!(out.contains("default via 10.77.9.1"), "{net}: {out}");
            assert!(
                !out.contains("172.16.28.") && !out.contains("172.31."),
                "{net}: {out}"
            );
            assert_nothing_left();
        }
        // Without the user's file, the built-in one again.
        let out = rkt_ok(
            &dir,
            &[
                "--insecure-options=image",
                "run",
                "--net=default",
                aci.to_str().unwrap(),
            ],
        );
        assert!(out.contains("eth0    inet 172.16.28."), "{out}");
        assert_nothing_left();
    });
}

#[test]
fn a_port_forwarded_on_one_host_address_answers_there_only() {
    sandboxed(
        "a_port_forwarded_on_one_host_address_answers_there_only",
        || {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("rkt");
            let _cleanup = PodsCleanup(dir.clone());
            // Two addresses of this (sandboxed) host besides 127.0.0.1.
            sh("ip addr add 10.99.0.1/32 dev lo && ip addr add 10.99.0.2/32 dev lo");
            let aci = net_image(
                tmp.path(),
                "web",
                serde_json::json!({"exec": ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"],
                "user": "0", "group": "0",
                "ports": [{"name": "http", "protocol": "tcp", "port": 8080}]}),
            );
            let uuid_file = tmp.path().join("uuid");
            let save = format!("--uuid-file-save={}", uuid_file.display());
            let mut child = spawn_rkt(
                &dir,
                &[
                    "--insecure-options=image",
                    "run",
                    &save,
                    "--net=default",
                    "--port=http:10.99.0.1:18081",
                    aci.to_str().unwrap(),
                ],
            );
            let get = |host: &str| {
                capture(&format!(
                "env -u http_proxy -u HTTP_PROXY timeout 3 busybox wget -q -O - http://{host}:18081/index.html"
            ))
            };
            let mut tries = 0;
            while !get("10.99.0.1").contains("hello from the pod") {
                tries += 1;
                if tries > 200 {
                    let _ = child.kill();
                    let o = child.wait_with_output().unwrap();
                    panic!("no answer on 10.99.0.1:18081: {}", describe("rkt run", &o));
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            for other in ["10.99.0.2", "127.0.0.1"] {
                assert_eq!(get(other), "", "the port answers on {other} too");
            }
            let nat = capture("iptables-save -t nat");
            assert!(nat.contains("-d 10.99.0.1/32"), "{nat}");
            let uuid = std::fs::read_to_string(&uuid_file).unwrap();
            rkt_ok(&dir, &["stop", uuid.trim()]);
            let _ = child.wait();
            assert_nothing_left();
        },
    );
}

#[test]
fn apps_without_etc_hosts_get_a_stub() {
    sandboxed("apps_without_etc_hosts_get_a_stub", || {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("rkt");
        let _cleanup = PodsCleanup(dir.clone());
        // One echo, one write: the two apps of a pod print at the same time.
        let show = |name: &str| {
            serde_json::json!({"exec": ["/bin/sh", "-c",
                    format!("h=$(cat /etc/hosts); echo \"{name}-begin\n$h\n{name}-end\"")],
                "user": "0", "group": "0"})
        };
        let bare = net_image(tmp.path(), "bare", show("bare"));
        let own = busybox_aci(tmp.path(), "own", &show("own").to_string(), |r| {
            std::fs::write(r.join("etc/hosts"), "10.1.1.1 the-image-file\n").unwrap();
        });
        for net in ["--net=host", "--net=default", "--net=none"] {
            let uuid_file = tmp.path().join("uuid");
            let save = format!("--uuid-file-save={}", uuid_file.display());
            let out = rkt_ok(
                &dir,
                &[
                    "--insecure-options=image",
                    "run",
                    &save,
                    net,
                    bare.to_str().unwrap(),
                    own.to_str().unwrap(),
                ],
            );
            let uuid = std::fs::read_to_string(&uuid_file).unwrap();
            let stub = section(&out, "bare");
            assert!(stub.contains("127.0.0.1 localhost"), "{net}: {stub}");
            assert!(stub.contains("::1 localhost"), "{net}: {stub}");
            assert!(
                stub.lines()
                    .any(|l| l == format!("127.0.1.1 rkt-{}", uuid.trim())),
                "{net}: {stub}"
            );
            assert_eq!(
                section(&out, "own"),
                "10.1.1.1 the-image-file",
                "{net}: the image's own file is kept"
            );
            assert_nothing_left();
        }
        // --hostname names the pod in the stub; --hosts-entry replaces both files.
        let out = rkt_ok(
            &dir,
            &[
                "--insecure-options=image",
                "run",
                "--hostname=web1",
                bare.to_str().unwrap(),
            ],
        );
        assert!(
            section(&out, "bare").lines().any(|l| l == "127.0.1.1 web1"),
            "{out}"
        );
        let out = rkt_ok(
            &dir,
            &[
                "--insecure-options=image",
                "run",
                "--hosts-entry=10.2.2.2=db",
                bare.to_str().unwrap(),
                own.to_str().unwrap(),
            ],
        );
        for app in ["bare", "own"] {
            let text = section(&out, app);
            assert!(text.lines().any(|l| l == "10.2.2.2 db"), "{app}: {text}");
            assert!(!text.contains("the-image-file"), "{app}: {text}");
        }
    });
}

#[test]
fn refused_network_flags_leave_nothing() {
    sandboxed("refused_network_flags_leave_nothing", || {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("rkt");
        let _cleanup = PodsCleanup(dir.clone());
        let aci = net_image(
            tmp.path(),
            "web",
            serde_json::json!({"exec": ["/bin/true"], "user": "0", "group": "0",
                "ports": [{"name": "http", "protocol": "tcp", "port": 8080},
                          {"name": "admin", "protocol": "tcp", "port": 9090}]}),
        );
        let a = aci.to_str().unwrap();
        for (args, wants) in [
            (
                vec!["--net=default", "--port=nosuch:18080"],
                vec!["nosuch", "http", "admin"],
            ),
            (vec!["--net=none", "--port=http:18080"], vec!["--port"]),
            (vec!["--net=nosuch"], vec!["nosuch"]),
            (vec!["--net=default", "--dns=not-an-ip"], vec!["--dns"]),
            (
                vec!["--net=default", "--hosts-entry=1.2.3.4"],
                vec!["--hosts-entry"],
            ),
        ] {
            let mut all = vec!["--insecure-options=image", "run"];
            all.extend(&args);
            all.push(a);
            let o = rkt(&dir, &all);
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(254), "{}", describe("run", &o));
            for want in wants {
                assert!(err.contains(want), "{args:?}: {want} not in {err}");
            }
            assert_nothing_left();
            let pods = capture(&format!(
                "find {}/pods -mindepth 2 -maxdepth 2 2>/dev/null",
                dir.display()
            ));
            assert!(pods.trim().is_empty(), "{args:?} left pods: {pods}");
        }
    });
}
