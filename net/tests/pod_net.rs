//! Pod networking against real network namespaces, the real CNI plugins (/usr/lib/cni) and
//! iptables. Every test re-executes itself under `unshare --net --mount`: its own network
//! namespace (with an "outside host" behind a veth pair) and tmpfs on /run/netns, /run/lock and
//! /var/lib/cni, so no interface, rule, namespace or lease reaches the machine.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rkt_net::{resolve_ports, ImagePort, NetConfig, NetMode, NetRequest, PodNetwork, PortRequest};

const SANDBOX_ENV: &str = "RKT_NET_TEST_SANDBOX";
const HELPER_ENV: &str = "RKT_NET_TEST_HELPER_POD_DIR";
/// The sandbox's own "external" address; the outside host is .2.
const EXTERNAL_IP: &str = "10.99.0.1";

/// Runs `test` inside a fresh sandbox: re-executes this test binary for just this test.
fn sandboxed(name: &str, test: impl FnOnce(&Sandbox)) {
    if std::env::var_os(SANDBOX_ENV).is_some() {
        let sandbox = Sandbox::enter();
        test(&sandbox);
        return;
    }
    assert_eq!(
        nix_uid(),
        0,
        "these tests need root (network namespaces, iptables)"
    );
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
    assert!(
        text.contains("1 passed"),
        "sandboxed test {name} did not run:\n{text}"
    );
}

fn nix_uid() -> u32 {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap_or(1)
}

/// The test's network and mount namespace, set up.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn enter() -> Sandbox {
        for d in ["/run/netns", "/var/lib/cni", "/run/lock"] {
            std::fs::create_dir_all(d).unwrap();
            sh(&format!("mount -t tmpfs rkt-net-test {d}"));
        }
        sh("ip link set lo up");
        sh("ip netns add outside");
        sh("ip link add ext0 type veth peer name ext1 netns outside");
        sh(&format!(
            "ip addr add {EXTERNAL_IP}/24 dev ext0 && ip link set ext0 up"
        ));
        sh("ip -n outside addr add 10.99.0.2/24 dev ext1 && ip -n outside link set ext1 up && ip -n outside link set lo up");
        Sandbox {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn config(&self) -> NetConfig {
        NetConfig::load(
            &self.dir.path().join("local"),
            &self.dir.path().join("system"),
        )
        .unwrap()
    }

    fn write_net(&self, file: &str, body: &str) {
        let d = self.dir.path().join("local/net.d");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(file), body).unwrap();
    }

    fn pod_dir(&self, id: &str) -> PathBuf {
        let d = self.dir.path().join("pods").join(id);
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}

/// Tears the pod's network down when dropped, so a failing assertion leaves nothing behind.
struct PodGuard {
    dir: PathBuf,
}

impl Drop for PodGuard {
    fn drop(&mut self) {
        if let Err(e) = PodNetwork::teardown_from_dir(&self.dir) {
            eprintln!("teardown in guard: {e}");
        }
    }
}

/// A child process killed when dropped.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sh(cmd: &str) -> String {
    let out = Command::new("sh").args(["-c", cmd]).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sh_ok(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", cmd])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

fn pod_id(n: u32) -> String {
    format!("{n:08x}-1111-4222-8333-444455556666")
}

fn net(values: &[&str]) -> NetRequest {
    NetRequest::parse(&values.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
}

fn setup(
    sb: &Sandbox,
    n: u32,
    req: &NetRequest,
    ports: &[rkt_net::PortMapping],
) -> (PodNetwork, PodGuard) {
    let id = pod_id(n);
    let dir = sb.pod_dir(&id);
    let netns = PathBuf::from(format!("/run/netns/pod{n}"));
    let pod = PodNetwork::setup(&sb.config(), &id, &netns, req, ports, &dir).unwrap();
    (pod, PodGuard { dir })
}

fn pod_ip(pod: &PodNetwork) -> String {
    let ip = pod.networks()[0].ip.clone().expect("pod has an address");
    ip.split('/').next().unwrap().to_string()
}

/// `busybox httpd` serving "hello from pod" inside the pod's namespace on port 80.
fn start_httpd(sb: &Sandbox, pod: &PodNetwork) -> ChildGuard {
    let root = sb.dir.path().join("www");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("index.html"), "hello from pod\n").unwrap();
    let netns = pod.netns_path().unwrap();
    let child = Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args(["busybox", "httpd", "-f", "-p", "80", "-h"])
        .arg(&root)
        .spawn()
        .unwrap();
    let mut guard = ChildGuard(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sh_ok(&format!(
        "nsenter --net={} timeout 2 busybox wget -q -O - http://127.0.0.1:80/index.html",
        netns.display()
    )) {
        if Instant::now() > deadline {
            let n = netns.display();
            let diag = sh(&format!("nsenter --net={n} ip addr; nsenter --net={n} busybox netstat -ltn; nsenter --net={n} busybox wget -O - http://127.0.0.1:80/index.html 2>&1 || true"));
            panic!(
                "httpd did not start in the pod: {:?}\n{diag}",
                guard.0.try_wait()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    guard
}

fn fetch(prefix: &str, url: &str) -> Option<String> {
    let out = Command::new("sh")
        .args([
            "-c",
            &format!("{prefix} timeout 5 busybox wget -q -O - {url}"),
        ])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What must be gone after every pod is torn down.
fn assert_nothing_left(pod_dirs: &[&Path]) {
    let links = sh("ip -o link show");
    assert!(!links.contains("veth"), "a veth remains:\n{links}");
    let routes = sh("ip route show");
    assert!(
        !routes.contains("172.16.28") && !routes.contains("172.31.") && !routes.contains("10.77."),
        "a route remains:\n{routes}"
    );
    let nat = sh("iptables-save");
    assert!(
        !nat.contains("RKT-") && !nat.contains("CNI-"),
        "a rule remains:\n{nat}"
    );
    let leases = sh("find /var/lib/cni/networks -type f 2>/dev/null || true");
    let held: Vec<&str> = leases
        .lines()
        .filter(|l| {
            Path::new(l)
                .file_name()
                .and_then(|f| f.to_str())
                .is_some_and(|f| f.parse::<std::net::IpAddr>().is_ok())
        })
        .collect();
    assert!(held.is_empty(), "leases remain: {held:?}");
    let netns = sh("ls /run/netns");
    assert_eq!(netns.trim(), "outside", "a namespace file remains");
    for d in pod_dirs {
        let pod = PodNetwork::load(d).unwrap().expect("record kept");
        assert!(!pod.is_active(), "record of {} still active", d.display());
    }
}

fn http_ports() -> Vec<ImagePort> {
    vec![ImagePort {
        name: "http".into(),
        protocol: "tcp".into(),
        port: 80,
    }]
}

#[test]
fn default_network_reachable_by_address_and_forwarded_ports() {
    sandboxed(
        "default_network_reachable_by_address_and_forwarded_ports",
        |sb| {
            let reqs = [
                PortRequest::parse("http:8080").unwrap(),
                PortRequest::parse("http:127.0.0.1:8081").unwrap(),
            ];
            let ports = resolve_ports(&reqs, &http_ports()).unwrap();
            let (pod, guard) = setup(sb, 1, &net(&["default"]), &ports);
            assert_eq!(pod.mode(), NetMode::Private);
            let nets = pod.networks();
            assert_eq!(nets.len(), 1);
            assert_eq!(
                (nets[0].name.as_str(), nets[0].ifname.as_str()),
                ("default", "eth0")
            );
            let ip = pod_ip(&pod);
            assert!(ip.starts_with("172.16.28."), "{ip}");
            assert_eq!(pod.forward_ip().unwrap().to_string(), ip);
            assert_eq!(pod.list_field(), format!("default:ip4={ip}"));
            let loaded = PodNetwork::load(&guard.dir).unwrap().unwrap();
            assert_eq!(
                (loaded.list_field(), loaded.is_active()),
                (pod.list_field(), true)
            );

            // The pod has its address, a default route and masquerading out.
            let netns = pod.netns_path().unwrap().display().to_string();
            let inside = sh(&format!("nsenter --net={netns} ip -o addr show eth0"));
            assert!(inside.contains(&ip), "{inside}");
            let routes = sh(&format!("nsenter --net={netns} ip route"));
            assert!(routes.contains("default via 172.16.28.1"), "{routes}");
            assert!(
                sh_ok(&format!(
                    "nsenter --net={netns} busybox ping -c 1 -W 2 10.99.0.2"
                )),
                "the pod cannot reach the outside host"
            );
            // The outside host has no route to 172.16.28.0/24: it answers only because the pod's
            // traffic is masqueraded (by rkt's rules; ptp got ipMasq=false and made no CNI- chain).
            let nat = sh("iptables-save -t nat");
            assert!(
                nat.contains(&format!("-A POSTROUTING -s {ip}/32 -j RKT-MASQ-")),
                "{nat}"
            );
            assert!(!nat.contains("CNI-"), "{nat}");

            let _httpd = start_httpd(sb, &pod);
            let hello = Some("hello from pod\n".to_string());
            assert_eq!(
                fetch("", &format!("http://{ip}:80/index.html")),
                hello,
                "by pod address"
            );
            assert_eq!(
                fetch(
                    "ip netns exec outside",
                    &format!("http://{EXTERNAL_IP}:8080/index.html")
                ),
                hello,
                "from outside"
            );
            assert_eq!(
                fetch("", &format!("http://{EXTERNAL_IP}:8080/index.html")),
                hello,
                "host to its external address"
            );
            assert_eq!(
                fetch("", "http://127.0.0.1:8080/index.html"),
                hello,
                "host loopback"
            );
            assert_eq!(
                fetch("", "http://127.0.0.1:8081/index.html"),
                hello,
                "host loopback, HOSTIP given"
            );
            assert_eq!(
                fetch(
                    "ip netns exec outside",
                    &format!("http://{EXTERNAL_IP}:8081/index.html")
                ),
                None,
                "8081 is for 127.0.0.1 only"
            );

            let record = std::fs::read_to_string(guard.dir.join(rkt_net::NET_INFO_FILE)).unwrap();
            assert!(
                record.contains(&ip) && record.contains("\"active\": true"),
                "{record}"
            );

            // A second pod cannot take the same host port; its set-up is undone.
            let clash_dir = sb.pod_dir(&pod_id(5));
            let clash = PodNetwork::setup(
                &sb.config(),
                &pod_id(5),
                Path::new("/run/netns/pod5"),
                &net(&["default"]),
                &ports[..1],
                &clash_dir,
            )
            .unwrap_err()
            .to_string();
            assert!(
                clash.contains("host port 8080/tcp is already forwarded"),
                "{clash}"
            );
            assert_eq!(
                fetch("", "http://127.0.0.1:8080/index.html"),
                hello,
                "first pod still served"
            );

            drop(_httpd);
            PodNetwork::teardown_from_dir(&guard.dir).unwrap();
            PodNetwork::teardown_from_dir(&guard.dir).unwrap();
            assert_nothing_left(&[&guard.dir, &clash_dir]);
            assert_eq!(fetch("", "http://127.0.0.1:8080/index.html"), None);
        },
    );
}

#[test]
fn none_has_only_loopback_and_host_creates_nothing() {
    sandboxed("none_has_only_loopback_and_host_creates_nothing", |sb| {
        let (pod, guard) = setup(sb, 2, &net(&["none"]), &[]);
        assert_eq!(pod.mode(), NetMode::None);
        let netns = pod.netns_path().unwrap().display().to_string();
        let links = sh(&format!("nsenter --net={netns} ip -o link"));
        assert_eq!(links.lines().count(), 1, "{links}");
        assert!(links.contains(": lo:") && links.contains("UP"), "{links}");
        assert_eq!(sh(&format!("nsenter --net={netns} ip route")).trim(), "");
        assert!(!sh_ok(&format!(
            "nsenter --net={netns} busybox ping -c 1 -W 1 {EXTERNAL_IP}"
        )));
        assert!(
            sh_ok(&format!(
                "nsenter --net={netns} busybox ping -c 1 -W 1 127.0.0.1"
            )),
            "lo is up"
        );
        PodNetwork::teardown_from_dir(&guard.dir).unwrap();
        assert_nothing_left(&[&guard.dir]);

        let dir = sb.pod_dir(&pod_id(3));
        let host = PodNetwork::setup(
            &sb.config(),
            &pod_id(3),
            Path::new("/run/netns/pod3"),
            &NetRequest::host(),
            &[],
            &dir,
        )
        .unwrap();
        assert_eq!((host.mode(), host.netns_path()), (NetMode::Host, None));
        assert!(
            !dir.join(rkt_net::NET_INFO_FILE).exists() && !Path::new("/run/netns/pod3").exists()
        );

        let ports =
            resolve_ports(&[PortRequest::parse("http:8080").unwrap()], &http_ports()).unwrap();
        for mode in ["host", "none"] {
            let err = PodNetwork::setup(
                &sb.config(),
                &pod_id(3),
                Path::new("/run/netns/pod3"),
                &net(&[mode]),
                &ports,
                &dir,
            )
            .unwrap_err()
            .to_string();
            assert!(
                err.contains("--port needs a private pod network") && err.contains(mode),
                "{err}"
            );
        }
        assert!(!Path::new("/run/netns/pod3").exists());
    });
}

#[test]
fn concurrent_pods_get_distinct_addresses_and_cni_args_apply() {
    sandboxed(
        "concurrent_pods_get_distinct_addresses_and_cni_args_apply",
        |sb| {
            let pods: Vec<(PodNetwork, PodGuard)> = std::thread::scope(|s| {
                let handles: Vec<_> = (10..14)
                    .map(|n| s.spawn(move || setup(sb, n, &net(&["default"]), &[])))
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let mut ips: Vec<String> = pods.iter().map(|(p, _)| pod_ip(p)).collect();
            ips.sort();
            ips.dedup();
            assert_eq!(ips.len(), 4, "addresses handed out twice: {ips:?}");
            // Pods reach each other through the host.
            let netns = pods[0].0.netns_path().unwrap().display().to_string();
            assert!(sh_ok(&format!(
                "nsenter --net={netns} busybox ping -c 1 -W 2 {}",
                pod_ip(&pods[1].0)
            )));

            // Three pods asking for the same host port at the same instant: exactly one gets it.
            let ports =
                resolve_ports(&[PortRequest::parse("http:9000").unwrap()], &http_ports()).unwrap();
            let results: Vec<(rkt_net::Result<PodNetwork>, PodGuard)> = std::thread::scope(|s| {
                let handles: Vec<_> = (30..33)
                    .map(|n| {
                        let ports = &ports;
                        s.spawn(move || {
                            let id = pod_id(n);
                            let dir = sb.pod_dir(&id);
                            let netns = PathBuf::from(format!("/run/netns/pod{n}"));
                            let r = PodNetwork::setup(
                                &sb.config(),
                                &id,
                                &netns,
                                &net(&["default"]),
                                ports,
                                &dir,
                            );
                            (r, PodGuard { dir })
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let won = results.iter().filter(|(r, _)| r.is_ok()).count();
            assert_eq!(
                won,
                1,
                "{:?}",
                results
                    .iter()
                    .map(|(r, _)| r.as_ref().err().map(|e| e.to_string()))
                    .collect::<Vec<_>>()
            );
            for (r, _) in &results {
                if let Err(e) = r {
                    assert!(e.to_string().contains("already forwarded"), "{e}");
                }
            }
            let port_dirs: Vec<PathBuf> = results.iter().map(|(_, g)| g.dir.clone()).collect();
            drop(results);

            let (pinned, pinned_guard) = setup(sb, 20, &net(&["default:IP=172.16.28.77"]), &[]);
            assert_eq!(pod_ip(&pinned), "172.16.28.77");
            // default-restricted is added when default is not chosen; no default route there.
            let (restricted, restricted_guard) = setup(sb, 21, &net(&["default-restricted"]), &[]);
            assert!(pod_ip(&restricted).starts_with("172.31."));
            let routes = sh(&format!(
                "nsenter --net={} ip route",
                restricted.netns_path().unwrap().display()
            ));
            assert!(!routes.contains("default"), "{routes}");

            let mut dirs: Vec<PathBuf> = pods.iter().map(|(_, g)| g.dir.clone()).collect();
            dirs.extend(port_dirs);
            dirs.push(pinned_guard.dir.clone());
            dirs.push(restricted_guard.dir.clone());
            drop(pods);
            drop(pinned_guard);
            drop(restricted_guard);
            let refs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
            assert_nothing_left(&refs);
        },
    );
}

#[test]
fn failed_setup_half_way_leaves_nothing() {
    sandboxed("failed_setup_half_way_leaves_nothing", |sb| {
        sb.write_net(
            "10-good.conf",
            r#"{"cniVersion":"0.4.0","name":"good","type":"ptp","ipMasq":true,
                "ipam":{"type":"host-local","subnet":"10.77.0.0/24","routes":[{"dst":"0.0.0.0/0"}]}}"#,
        );
        sb.write_net(
            "20-bad.conf",
            r#"{"cniVersion":"0.4.0","name":"bad","type":"ptp","ipam":{"type":"host-local","subnet":"10.77.0.0/24"}}"#,
        );
        let id = pod_id(30);
        let dir = sb.pod_dir(&id);
        let _guard = PodGuard { dir: dir.clone() };
        // "bad" reuses good's subnet: its ADD fails after "good" was added.
        let err = PodNetwork::setup(
            &sb.config(),
            &id,
            Path::new("/run/netns/pod30"),
            &net(&["good,bad"]),
            &[],
            &dir,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("network \"bad\"") && err.contains("ADD failed"),
            "{err}"
        );
        assert_nothing_left(&[&dir]);

        let err = PodNetwork::setup(
            &sb.config(),
            &id,
            Path::new("/run/netns/pod30"),
            &net(&["nosuch"]),
            &[],
            &dir,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("nosuch") && err.contains("good"), "{err}");
        sb.write_net("30-x.conf", r#"{"name":"x","type":"no-such-plugin"}"#);
        let err = PodNetwork::setup(
            &sb.config(),
            &id,
            Path::new("/run/netns/pod30"),
            &net(&["x"]),
            &[],
            &dir,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("no-such-plugin") && err.contains("/usr/lib/cni"),
            "{err}"
        );
        assert!(!Path::new("/run/netns/pod30").exists());
    });
}

#[test]
fn kill_9_then_teardown_from_record() {
    sandboxed("kill_9_then_teardown_from_record", |sb| {
        let dir = sb.pod_dir(&pod_id(40));
        let _guard = PodGuard { dir: dir.clone() };
        let mut helper = ChildGuard(
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "hold_pod_network_helper",
                    "--ignored",
                    "--nocapture",
                ])
                .env(HELPER_ENV, &dir)
                .env(SANDBOX_ENV, "1")
                .spawn()
                .unwrap(),
        );
        let ready = dir.join("ready");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ready.exists() {
            assert!(
                Instant::now() < deadline,
                "helper did not set up the pod network"
            );
            assert!(
                helper.0.try_wait().unwrap().is_none(),
                "helper exited early"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        helper.0.kill().unwrap(); // SIGKILL
        helper.0.wait().unwrap();
        assert!(
            sh("iptables-save -t nat").contains("RKT-PFWD-DNAT-"),
            "forwarding was set up"
        );
        assert!(sh("ip -o link").contains("veth"));

        // The pod directory moves (run -> exited-garbage) before gc collects it.
        let moved = dir.with_file_name("moved");
        std::fs::rename(&dir, &moved).unwrap();
        let _moved_guard = PodGuard { dir: moved.clone() };
        PodNetwork::teardown_from_dir(&moved).unwrap();
        assert_nothing_left(&[&moved]);
    });
}

/// Run by kill_9_then_teardown_from_record: sets up a pod network with a forwarded port, says
/// so, and waits to be killed.
#[test]
#[ignore = "helper process of kill_9_then_teardown_from_record"]
fn hold_pod_network_helper() {
    let Some(dir) = std::env::var_os(HELPER_ENV).map(PathBuf::from) else {
        return;
    };
    let config = NetConfig::load(Path::new("/nonexistent"), Path::new("/nonexistent")).unwrap();
    let ports = resolve_ports(&[PortRequest::parse("http:8080").unwrap()], &http_ports()).unwrap();
    let netns = dir.join("netns");
    PodNetwork::setup(
        &config,
        &pod_id(40),
        &netns,
        &net(&["default"]),
        &ports,
        &dir,
    )
    .unwrap();
    std::fs::write(dir.join("ready"), "").unwrap();
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn several_networks_interfaces_in_order_and_cni_dns_in_resolv_conf() {
    sandboxed(
        "several_networks_interfaces_in_order_and_cni_dns_in_resolv_conf",
        |sb| {
            sb.write_net(
                "10-corp.conf",
                r#"{"cniVersion":"0.4.0","name":"corp","type":"ptp","ipMasq":false,
                "ipam":{"type":"host-local","subnet":"10.77.0.0/24"},
                "dns":{"nameservers":["10.77.0.53"],"search":["corp.example"]}}"#,
            );
            let ports =
                resolve_ports(&[PortRequest::parse("http:8080").unwrap()], &http_ports()).unwrap();
            let (pod, guard) = setup(sb, 50, &net(&["all"]), &ports);
            let nets = pod.networks();
            let names: Vec<(&str, &str)> = nets
                .iter()
                .map(|n| (n.name.as_str(), n.ifname.as_str()))
                .collect();
            assert_eq!(names, [("corp", "eth0"), ("default", "eth1")]);
            let netns = pod.netns_path().unwrap().display().to_string();
            let addrs = sh(&format!("nsenter --net={netns} ip -o -4 addr show"));
            assert!(
                addrs.contains("eth0") && addrs.contains("10.77.0.") && addrs.contains("eth1"),
                "{addrs}"
            );
            // Ports forward to the first network with IP masquerade: default, not corp.
            assert!(pod
                .forward_ip()
                .unwrap()
                .to_string()
                .starts_with("172.16.28."));
            assert!(
                pod.list_field().starts_with("corp:ip4=10.77.0.")
                    && pod.list_field().contains(",default:ip4=172.16.28.")
            );

            // The plugin's DNS result reaches resolv.conf unless --dns says otherwise.
            let auto = rkt_net::DnsFlags::parse(&[], &[], &[], None).unwrap();
            assert_eq!(
                auto.resolv_conf(&pod.dns()),
                rkt_net::FileSource::Generated(
                    "# Generated by rkt run\n\nsearch corp.example\nnameserver 10.77.0.53\n".into()
                )
            );
            let none = rkt_net::DnsFlags::parse(&["none".into()], &[], &[], None).unwrap();
            assert_eq!(none.resolv_conf(&pod.dns()), rkt_net::FileSource::Image);

            // --net=corp alone gets default-restricted added, as rkt did.
            let (only, only_guard) = setup(sb, 51, &net(&["corp"]), &[]);
            let names: Vec<String> = only.networks().iter().map(|n| n.name.clone()).collect();
            assert_eq!(names, ["corp", "default-restricted"]);

            let dirs = [guard.dir.clone(), only_guard.dir.clone()];
            drop(guard);
            drop(only_guard);
            assert_nothing_left(&[&dirs[0], &dirs[1]]);
        },
    );
}
