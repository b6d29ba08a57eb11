//! Port forwarding rules, rkt's design (networking/portfwd.go) with the loopback fix: per-pod
//! nat chains `RKT-PFWD-DNAT-<id>` (jumped from PREROUTING and OUTPUT for local destinations) and
//! `RKT-PFWD-SNAT-<id>` (from POSTROUTING for traffic from 127.0.0.1, masqueraded so the pod can
//! answer). Rules go in with one `iptables-restore --noflush` (atomic); removal reads
//! `iptables-save` and deletes exactly the rules that refer to the pod's chains, so it is
//! idempotent.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::portfwd::PortMapping;
use crate::{NetError, Result};

/// The pod's chain names (iptables allows 28 characters): port forwarding DNAT, its loopback
/// SNAT, and IP masquerade.
pub(crate) fn chains(pod_id: &str) -> [String; 3] {
    let short: String = pod_id.chars().filter(|c| *c != '-').take(12).collect();
    [
        format!("RKT-PFWD-DNAT-{short}"),
        format!("RKT-PFWD-SNAT-{short}"),
        format!("RKT-MASQ-{short}"),
    ]
}

/// A pod address to masquerade: traffic from `ip` leaving for outside `subnet`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Masquerade {
    pub ip: Ipv4Addr,
    pub subnet: (Ipv4Addr, u8),
}

/// Port forwarding to `pod_ip`.
pub(crate) struct Forwarding<'a> {
    pub pod_ip: Ipv4Addr,
    pub ports: &'a [PortMapping],
}

/// Installs a pod's nat rules in one atomic `iptables-restore`: masquerade for `masq` (what the
/// ptp plugin's `ipMasq` does, see docs/networking.md) and port forwarding, after checking that
/// no other pod forwards the same host port.
pub(crate) fn add(pod_id: &str, masq: &[Masquerade], fwd: Option<&Forwarding<'_>>) -> Result<()> {
    if masq.is_empty() && fwd.is_none_or(|f| f.ports.is_empty()) {
        return Ok(());
    }
    let [dnat, snat, masq_chain] = chains(pod_id);
    let mut rules = String::from("*nat\n");
    if !masq.is_empty() {
        rules.push_str(&masquerade_rules(&masq_chain, masq));
    }
    // Held until the rules are in, so two pods asking for one host port at once cannot both
    // pass the check.
    let mut _ports_lock = None;
    if let Some(f) = fwd.filter(|f| !f.ports.is_empty()) {
        _ports_lock = Some(lock_ports()?);
        let saved = save_nat()?;
        if let Some(clash) = f
            .ports
            .iter()
            .find_map(|p| forwarded_elsewhere(&saved, &dnat, p))
        {
            return Err(NetError::Iptables {
                what: "cannot forward ports",
                message: clash,
            });
        }
        rules.push_str(&forwarding_rules(&dnat, &snat, f));
    }
    rules.push_str("COMMIT\n");
    restore(&rules, "cannot add the pod's nat rules")
}

fn masquerade_rules(chain: &str, masq: &[Masquerade]) -> String {
    let mut rules = format!(":{chain} - [0:0]\n");
    for m in masq {
        rules.push_str(&format!(
            "-A {chain} -d {}/{} -j ACCEPT\n",
            m.subnet.0, m.subnet.1
        ));
    }
    rules.push_str(&format!("-A {chain} ! -d 224.0.0.0/4 -j MASQUERADE\n"));
    for m in masq {
        rules.push_str(&format!("-A POSTROUTING -s {}/32 -j {chain}\n", m.ip));
    }
    rules
}

fn forwarding_rules(dnat: &str, snat: &str, f: &Forwarding<'_>) -> String {
    let pod_ip = f.pod_ip;
    let mut rules = format!(":{dnat} - [0:0]\n:{snat} - [0:0]\n");
    for p in f.ports {
        let proto = &p.protocol;
        let dst = p
            .host_ip
            .map(|ip| format!("-d {ip}/32 "))
            .unwrap_or_default();
        rules.push_str(&format!(
            "-A {dnat} {dst}-p {proto} -m {proto} --dport {} -j DNAT --to-destination {pod_ip}:{}\n",
            p.host_port, p.pod_port
        ));
        rules.push_str(&format!(
            "-A {snat} -s 127.0.0.1/32 -d {pod_ip}/32 -p {proto} -m {proto} --dport {} -j MASQUERADE\n",
            p.pod_port
        ));
    }
    for hook in ["PREROUTING", "OUTPUT"] {
        rules.push_str(&format!(
            "-A {hook} -m addrtype --dst-type LOCAL -j {dnat}\n"
        ));
    }
    rules.push_str(&format!(
        "-A POSTROUTING -s 127.0.0.1/32 ! -d 127.0.0.1/32 -j {snat}\n"
    ));
    rules
}

/// Removes every rule that jumps to the pod's chains, and the chains. Nothing there is fine.
pub(crate) fn remove(pod_id: &str) -> Result<()> {
    let [dnat, snat, masq] = chains(pod_id);
    let saved = save_nat()?;
    let script = removal_script(&saved, &[&dnat, &snat, &masq]);
    match script {
        Some(s) => restore(&s, "cannot remove the port forwarding rules"),
        None => Ok(()),
    }
}

/// Serialises port forwarding set-ups of every rkt process on the host.
pub(crate) const PORTS_LOCK: &str = "/run/lock/rkt-net-ports.lock";

fn lock_ports() -> Result<nix::fcntl::Flock<std::fs::File>> {
    let path = std::path::Path::new(PORTS_LOCK);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| NetError::io("cannot create", dir, e))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| NetError::io("cannot open", path, e))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| NetError::io("cannot lock", path, e.into()))
}

fn save_nat() -> Result<String> {
    let tool = tool("iptables-save")?;
    run(
        &[tool.as_os_str(), "-t".as_ref(), "nat".as_ref()],
        None,
        "cannot read the nat table",
    )
}

/// Whether another pod's DNAT chain already forwards `port`'s host port (on the same or every
/// address): the first rule would win and this pod would never see the traffic.
fn forwarded_elsewhere(saved: &str, own_chain: &str, port: &PortMapping) -> Option<String> {
    let dport = port.host_port.to_string();
    saved.lines().find_map(|line| {
        let rule = line.strip_prefix("-A RKT-PFWD-DNAT-")?;
        let tokens: Vec<&str> = line.split_whitespace().collect();
        let value = |flag: &str| tokens.windows(2).find(|w| w[0] == flag).map(|w| w[1]);
        let chain = tokens.get(1).copied().unwrap_or_default();
        let same_ip = match (value("-d"), port.host_ip) {
            (Some(d), Some(ip)) => d.trim_end_matches("/32") == ip.to_string(),
            _ => true,
        };
        (chain != own_chain
            && value("-p") == Some(port.protocol.as_str())
            && value("--dport") == Some(&dport)
            && same_ip)
            .then(|| {
                let pod = rule.split_whitespace().next().unwrap_or_default();
                format!(
                    "host port {dport}/{} is already forwarded to pod {pod}...",
                    port.protocol
                )
            })
    })
}

/// The `iptables-restore` input that deletes the jumps to `ours` and the chains themselves, or
/// `None` if none of them exists.
fn removal_script(saved: &str, ours: &[&str]) -> Option<String> {
    let mut script = String::from("*nat\n");
    let mut any = false;
    for line in saved.lines() {
        let Some(rule) = line.strip_prefix("-A ") else {
            continue;
        };
        let mut tokens = rule.split_whitespace();
        let chain = tokens.next().unwrap_or_default();
        let jumps_to_ours = rule
            .split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .any(|w| w[0] == "-j" && ours.contains(&w[1]));
        if jumps_to_ours && !ours.contains(&chain) {
            script.push_str(&format!("-D {rule}\n"));
            any = true;
        }
    }
    for chain in ours {
        if saved.lines().any(|l| {
            l.strip_prefix(':')
                .and_then(|l| l.split_whitespace().next())
                == Some(chain)
        }) {
            script.push_str(&format!("-F {chain}\n-X {chain}\n"));
            any = true;
        }
    }
    script.push_str("COMMIT\n");
    any.then_some(script)
}

fn restore(rules: &str, what: &'static str) -> Result<()> {
    let tool = tool("iptables-restore")?;
    run(
        &[tool.as_os_str(), "--noflush".as_ref(), "--wait".as_ref()],
        Some(rules),
        what,
    )
    .map(drop)
}

/// Finds an iptables tool even if PATH lacks the sbin directories.
fn tool(name: &'static str) -> Result<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"])
        .map(|d| PathBuf::from(d).join(name))
        .find(|p| p.is_file());
    found.ok_or(NetError::Iptables {
        what: "cannot forward ports",
        message: format!("{name} not found: install the iptables package"),
    })
}

fn run(argv: &[&std::ffi::OsStr], input: Option<&str>, what: &'static str) -> Result<String> {
    let fail = |message: String| NetError::Iptables { what, message };
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run {}: {e}", argv[0].to_string_lossy())))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| fail(e.to_string()))?;
    }
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(fail(format!("{} ({})", err.trim(), out.status)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_names_fit_iptables() {
        let [d, s, m] = chains("0123abcd-4567-89ef-0123-456789abcdef");
        assert_eq!(d, "RKT-PFWD-DNAT-0123abcd4567");
        assert_eq!(s, "RKT-PFWD-SNAT-0123abcd4567");
        assert_eq!(m, "RKT-MASQ-0123abcd4567");
        assert!(d.len() <= 28);
        let rules = masquerade_rules(
            &m,
            &[Masquerade {
                ip: Ipv4Addr::new(172, 16, 28, 2),
                subnet: (Ipv4Addr::new(172, 16, 28, 0), 24),
            }],
        );
        assert_eq!(
            rules,
            ":RKT-MASQ-0123abcd4567 - [0:0]\n-A RKT-MASQ-0123abcd4567 -d 172.16.28.0/24 -j ACCEPT\n\
             -A RKT-MASQ-0123abcd4567 ! -d 224.0.0.0/4 -j MASQUERADE\n\
             -A POSTROUTING -s 172.16.28.2/32 -j RKT-MASQ-0123abcd4567\n"
        );
    }

    #[test]
    fn host_port_clashes_are_found() {
        let saved = "-A RKT-PFWD-DNAT-aaaa -p tcp -m tcp --dport 8080 -j DNAT --to-destination 1.2.3.4:80\n\
            -A RKT-PFWD-DNAT-aaaa -d 127.0.0.1/32 -p tcp -m tcp --dport 9090 -j DNAT --to-destination 1.2.3.4:80\n";
        let port = |proto: &str, host_ip: Option<Ipv4Addr>, host_port| PortMapping {
            name: "p".into(),
            protocol: proto.into(),
            host_ip,
            host_port,
            pod_port: 80,
        };
        let clash =
            forwarded_elsewhere(saved, "RKT-PFWD-DNAT-bbbb", &port("tcp", None, 8080)).unwrap();
        assert!(
            clash.contains("8080/tcp") && clash.contains("aaaa"),
            "{clash}"
        );
        assert!(
            forwarded_elsewhere(saved, "RKT-PFWD-DNAT-bbbb", &port("udp", None, 8080)).is_none()
        );
        assert!(
            forwarded_elsewhere(saved, "RKT-PFWD-DNAT-aaaa", &port("tcp", None, 8080)).is_none()
        );
        assert!(
            forwarded_elsewhere(saved, "RKT-PFWD-DNAT-bbbb", &port("tcp", None, 9090)).is_some()
        );
        let other_ip = Some(Ipv4Addr::new(10, 0, 0, 1));
        assert!(
            forwarded_elsewhere(saved, "RKT-PFWD-DNAT-bbbb", &port("tcp", other_ip, 9090))
                .is_none()
        );
    }

    #[test]
    fn removal_touches_only_our_rules() {
        let saved = "*nat\n:PREROUTING ACCEPT [0:0]\n:RKT-PFWD-DNAT-a - [0:0]\n:RKT-PFWD-DNAT-b - [0:0]\n\
            -A PREROUTING -m addrtype --dst-type LOCAL -j RKT-PFWD-DNAT-a\n\
            -A PREROUTING -m addrtype --dst-type LOCAL -j RKT-PFWD-DNAT-b\n\
            -A RKT-PFWD-DNAT-a -p tcp -m tcp --dport 1 -j DNAT --to-destination 1.2.3.4:5\nCOMMIT\n";
        let s = removal_script(saved, &["RKT-PFWD-DNAT-a", "RKT-PFWD-SNAT-a"]).unwrap();
        assert_eq!(
            s,
            "*nat\n-D PREROUTING -m addrtype --dst-type LOCAL -j RKT-PFWD-DNAT-a\n-F RKT-PFWD-DNAT-a\n-X RKT-PFWD-DNAT-a\nCOMMIT\n"
        );
        assert_eq!(removal_script(saved, &["RKT-PFWD-DNAT-c"]), None);
    }
}
