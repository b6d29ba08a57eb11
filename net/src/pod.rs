//! A pod's network: set-up in a fixed order with every step recorded first, and teardown that
//! undoes whatever the record says may exist, in reverse.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::cni::{self, CniCommand, Invocation};
use crate::config::{NetConfig, SelectedNet};
use crate::dns::DnsInfo;
use crate::iptables::{Forwarding, Masquerade};
use crate::portfwd::PortMapping;
use crate::record::{NetInfo, NetRecord, NetState, Record};
use crate::request::{NetMode, NetRequest};
use crate::{iptables, netns, NetError, Result};

/// The network of one pod.
#[derive(Debug, Clone)]
pub struct PodNetwork {
    mode: NetMode,
    record: Option<Record>,
}

impl PodNetwork {
    /// Sets up the pod's network. Host networking creates nothing (and refuses `ports`). None
    /// creates the namespace at `netns_path` with loopback only (and refuses `ports`). Private
    /// networking also runs each selected network's CNI plugin with ADD (interfaces `eth0`,
    /// `eth1`, ...) and installs the port forwarding. `netns_path`'s directory must exist; the
    /// file must not. The record `<pod_dir>/net-info.json` is written before each step; on
    /// failure everything done so far is undone before the error returns.
    pub fn setup(
        config: &NetConfig,
        pod_id: &str,
        netns_path: &Path,
        req: &NetRequest,
        ports: &[PortMapping],
        pod_dir: &Path,
    ) -> Result<PodNetwork> {
        let mode = req.mode();
        if !ports.is_empty() && mode != NetMode::Private {
            return Err(NetError::PortsNeedPrivateNet {
                mode: mode.to_string(),
            });
        }
        if mode == NetMode::Host {
            return Ok(PodNetwork { mode, record: None });
        }
        check_pod_id(pod_id)?;
        check_fresh(netns_path, pod_dir)?;
        let nets = config.select(req)?;
        for n in &nets {
            cni::find_plugin(&n.def.name, &n.def.plugin, config.plugin_dirs())?;
        }
        let mut rec = new_record(config, pod_id, mode, netns_path, &nets, pod_dir);
        rec.save()?;
        match bring_up(&mut rec, ports) {
            Ok(()) => Ok(PodNetwork {
                mode,
                record: Some(rec),
            }),
            Err(err) => {
                if let Err(undo) = take_down(&mut rec) {
                    tracing::error!(%undo, "undoing a failed pod network set-up");
                }
                Err(err)
            }
        }
    }

    /// Loads the pod's network from its record (`None`: no record, i.e. host networking).
    pub fn load(pod_dir: &Path) -> Result<Option<PodNetwork>> {
        Ok(Record::load(pod_dir)?.map(|rec| PodNetwork {
            mode: if rec.mode == "none" {
                NetMode::None
            } else {
                NetMode::Private
            },
            record: Some(rec),
        }))
    }

    /// Releases everything `<pod_dir>/net-info.json` records: forwarding rules, CNI networks
    /// (DEL, in reverse order, which frees the IP leases), the namespace. Idempotent: a pod
    /// without a record or already torn down is fine. Needs nothing but the record, so it works
    /// after the supervisor was killed. If something could not be released the record stays
    /// active and the error says what; calling this again retries.
    pub fn teardown_from_dir(pod_dir: &Path) -> Result<()> {
        match Record::load(pod_dir)? {
            Some(mut rec) => take_down(&mut rec),
            None => Ok(()),
        }
    }

    /// Tears this network down (see [`PodNetwork::teardown_from_dir`]).
    pub fn teardown(&mut self) -> Result<()> {
        match &mut self.record {
            Some(rec) => take_down(rec),
            None => Ok(()),
        }
    }

    pub fn mode(&self) -> NetMode {
        self.mode
    }

    /// The namespace the pod's init must join (`None` for host networking).
    pub fn netns_path(&self) -> Option<&Path> {
        self.record.as_ref().map(|r| r.netns.as_path())
    }

    /// Whether the network is set up (not yet torn down).
    pub fn is_active(&self) -> bool {
        self.record.as_ref().is_some_and(|r| r.active)
    }

    /// The pod's networks and addresses, in interface order.
    pub fn networks(&self) -> Vec<NetInfo> {
        self.record
            .iter()
            .flat_map(|r| r.networks.iter().map(|n| n.info.clone()))
            .collect()
    }

    /// The NETWORKS column of `rkt list` (and `networks=` of `rkt status`):
    /// `default:ip4=172.16.28.2,other:ip4=10.1.0.5`; empty for host networking and `none`.
    pub fn list_field(&self) -> String {
        self.networks()
            .iter()
            .map(NetInfo::list_entry)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The DNS settings the networks' plugins returned, merged in network order.
    pub fn dns(&self) -> DnsInfo {
        let mut dns = DnsInfo::default();
        for n in self.networks() {
            dns.merge(&n.dns);
        }
        dns
    }

    /// The forwarded ports.
    pub fn ports(&self) -> &[PortMapping] {
        self.record.as_ref().map_or(&[], |r| r.ports.as_slice())
    }

    /// The pod address forwarded ports lead to.
    pub fn forward_ip(&self) -> Option<Ipv4Addr> {
        self.record.as_ref().and_then(|r| r.forward_ip)
    }
}

fn check_pod_id(pod_id: &str) -> Result<()> {
    let ok = pod_id.len() >= 8
        && pod_id.len() <= 64
        && pod_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(NetError::BadPodId(pod_id.to_string()))
    }
}

/// Refuses to set up over an existing namespace file or an active record: teardown of the failed
/// set-up would otherwise release what they hold.
fn check_fresh(netns_path: &Path, pod_dir: &Path) -> Result<()> {
    if netns_path.symlink_metadata().is_ok() {
        return Err(NetError::io(
            "refusing to set up a pod network over the existing file",
            netns_path,
            std::io::ErrorKind::AlreadyExists.into(),
        ));
    }
    if Record::load(pod_dir)?.is_some_and(|r| r.active) {
        return Err(NetError::io(
            "the pod already has an active network: tear it down first;",
            pod_dir.join(crate::NET_INFO_FILE),
            std::io::ErrorKind::AlreadyExists.into(),
        ));
    }
    Ok(())
}

fn new_record(
    config: &NetConfig,
    pod_id: &str,
    mode: NetMode,
    netns: &Path,
    nets: &[SelectedNet],
    pod_dir: &Path,
) -> Record {
    Record {
        version: 1,
        pod_id: pod_id.to_string(),
        mode: mode.to_string(),
        pod_dir: pod_dir.to_path_buf(),
        netns: netns.to_path_buf(),
        active: true,
        plugin_dirs: config.plugin_dirs().to_vec(),
        networks: nets
            .iter()
            .map(|n| (n, n.def.plugin == "ptp" && n.def.ip_masq))
            .map(|(n, masq_by_rkt)| NetRecord {
                info: NetInfo {
                    name: n.def.name.clone(),
                    ifname: n.ifname.clone(),
                    args: n.args.clone(),
                    ..NetInfo::default()
                },
                plugin: n.def.plugin.clone(),
                ip_masq: n.def.ip_masq,
                masq_by_rkt,
                conf: plugin_conf(&n.def.conf, masq_by_rkt),
                state: NetState::Pending,
                result: Value::Null,
            })
            .collect(),
        ports: Vec::new(),
        forward_ip: None,
        nat_rules: false,
    }
}

/// The configuration the plugin gets: for ptp with `ipMasq`, rkt adds the same masquerade rules
/// itself in the one `iptables-restore` that also adds port forwarding; ptp's own ipMasq costs
/// about ten `iptables` runs per set-up and teardown (measured: half of `default`'s set-up time,
/// see docs/networking.md).
fn plugin_conf(conf: &Value, masq_by_rkt: bool) -> Value {
    let mut conf = conf.clone();
    if let (true, Some(obj)) = (masq_by_rkt, conf.as_object_mut()) {
        obj.insert("ipMasq".into(), Value::Bool(false));
    }
    conf
}

fn bring_up(rec: &mut Record, ports: &[PortMapping]) -> Result<()> {
    netns::create(&rec.netns)?;
    for i in 0..rec.networks.len() {
        rec.networks[i].state = NetState::Adding;
        rec.save()?;
        let result = cni::run(&invocation(rec, &rec.networks[i]), CniCommand::Add, None)?;
        let net = &mut rec.networks[i];
        let summary = cni::summarize(&result, &net.info.ifname);
        net.info.ip = summary.ip;
        net.info.gateway = summary.gateway;
        net.info.host_iface = summary.host_iface;
        net.info.dns = summary.dns;
        net.result = result;
        net.state = NetState::Added;
        tracing::debug!(network = %net.info.name, ip = ?net.info.ip, "network added");
    }
    rec.save()?;
    nat_rules(rec, ports)
}

/// Masquerade (for the networks rkt masquerades) and port forwarding, in one batch.
fn nat_rules(rec: &mut Record, ports: &[PortMapping]) -> Result<()> {
    let masq: Vec<Masquerade> = rec
        .networks
        .iter()
        .filter(|n| n.masq_by_rkt)
        .filter_map(|n| n.info.ip.as_deref().and_then(ipv4_net))
        .map(|(ip, prefix)| Masquerade {
            ip,
            subnet: (network_of(ip, prefix), prefix),
        })
        .collect();
    let forward_ip = if ports.is_empty() {
        None
    } else {
        Some(forward_target(rec)?)
    };
    if masq.is_empty() && forward_ip.is_none() {
        return Ok(());
    }
    if let Some((_, net)) = &forward_ip {
        for iface in host_ifaces(net) {
            enable_route_localnet(&iface)?;
        }
        rec.ports = ports.to_vec();
    }
    rec.forward_ip = forward_ip.as_ref().map(|(ip, _)| *ip);
    rec.nat_rules = true;
    rec.save()?;
    let fwd = forward_ip.map(|(pod_ip, _)| Forwarding { pod_ip, ports });
    iptables::add(&rec.pod_id, &masq, fwd.as_ref())
}

/// rkt's choice of the network ports forward to: the first with IP masquerade, else the last.
fn forward_target(rec: &Record) -> Result<(Ipv4Addr, NetInfo)> {
    let net = rec
        .networks
        .iter()
        .find(|n| n.ip_masq)
        .or(rec.networks.last());
    let Some(net) = net else {
        return Err(NetError::PortsNeedPrivateNet {
            mode: rec.mode.clone(),
        });
    };
    match net.info.ip.as_deref().and_then(ipv4_net) {
        Some((ip, _)) => Ok((ip, net.info.clone())),
        None => Err(NetError::Plugin {
            network: net.info.name.clone(),
            plugin: net.plugin.clone(),
            command: "ADD",
            message: "its result has no IPv4 address to forward ports to".into(),
        }),
    }
}

/// `172.16.28.2/24` -> (172.16.28.2, 24); `None` for IPv6 or garbage.
fn ipv4_net(cidr: &str) -> Option<(Ipv4Addr, u8)> {
    let (ip, prefix) = cidr.split_once('/').unwrap_or((cidr, "32"));
    let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32)?;
    Some((ip.parse().ok()?, prefix))
}

fn network_of(ip: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    };
    Ipv4Addr::from(u32::from(ip) & mask)
}

/// The host side of the link: the interface the plugin named, else every host interface that
/// holds the gateway address.
fn host_ifaces(info: &NetInfo) -> Vec<String> {
    if let Some(name) = &info.host_iface {
        return vec![name.clone()];
    }
    let Some(gw) = info.gateway else {
        return Vec::new();
    };
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut names: Vec<String> = addrs
        .filter(|a| {
            a.address
                .as_ref()
                .and_then(|s| s.as_sockaddr_in())
                .map(|s| std::net::IpAddr::V4(s.ip()))
                == Some(gw)
        })
        .map(|a| a.interface_name)
        .collect();
    names.dedup();
    names
}

/// Lets packets from 127.0.0.1, DNAT-ed to the pod, leave through the pod's host interface
/// (the kernel drops them as martians otherwise): what makes `--port` answer on the host's own
/// loopback. Only this interface changes, not the whole host.
fn enable_route_localnet(iface: &str) -> Result<()> {
    if iface.contains('/') || iface.contains("..") {
        return Ok(());
    }
    let path = PathBuf::from(format!("/proc/sys/net/ipv4/conf/{iface}/route_localnet"));
    std::fs::write(&path, "1").map_err(|e| NetError::io("cannot enable route_localnet in", path, e))
}

fn invocation<'a>(rec: &'a Record, net: &'a NetRecord) -> Invocation<'a> {
    Invocation {
        network: &net.info.name,
        plugin: &net.plugin,
        conf: &net.conf,
        container_id: &rec.pod_id,
        netns: &rec.netns,
        ifname: &net.info.ifname,
        args: &net.info.args,
        plugin_dirs: &rec.plugin_dirs,
    }
}

/// Undoes what the record says may exist, in reverse order, carrying on past failures.
fn take_down(rec: &mut Record) -> Result<()> {
    if !rec.active {
        return Ok(());
    }
    let mut failures: Vec<String> = Vec::new();
    if rec.nat_rules {
        match iptables::remove(&rec.pod_id) {
            Ok(()) => rec.nat_rules = false,
            Err(e) => failures.push(e.to_string()),
        }
    }
    for i in (0..rec.networks.len()).rev() {
        if rec.networks[i].state == NetState::Pending {
            continue;
        }
        let net = &rec.networks[i];
        let prev = (net.state == NetState::Added).then_some(&net.result);
        match cni::run(&invocation(rec, net), CniCommand::Del, prev) {
            Ok(_) => rec.networks[i].state = NetState::Pending,
            Err(e) => failures.push(e.to_string()),
        }
    }
    if failures.is_empty() {
        if let Err(e) = netns::remove(&rec.netns) {
            failures.push(e.to_string());
        }
    }
    rec.active = !failures.is_empty();
    rec.save()?;
    if failures.is_empty() {
        Ok(())
    } else {
        Err(NetError::Teardown(failures.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_networks() {
        assert_eq!(
            ipv4_net("172.16.28.2/24"),
            Some((Ipv4Addr::new(172, 16, 28, 2), 24))
        );
        assert_eq!(ipv4_net("10.0.0.1"), Some((Ipv4Addr::new(10, 0, 0, 1), 32)));
        assert_eq!(ipv4_net("fd00::1/64"), None);
        assert_eq!(ipv4_net("1.2.3.4/33"), None);
        assert_eq!(
            network_of(Ipv4Addr::new(172, 31, 7, 9), 16),
            Ipv4Addr::new(172, 31, 0, 0)
        );
        assert_eq!(
            network_of(Ipv4Addr::new(1, 2, 3, 4), 0),
            Ipv4Addr::UNSPECIFIED
        );
    }

    #[test]
    fn ptp_masquerade_is_taken_over() {
        let conf = serde_json::json!({"type": "ptp", "ipMasq": true});
        assert_eq!(plugin_conf(&conf, true)["ipMasq"], false);
        assert_eq!(plugin_conf(&conf, false)["ipMasq"], true);
    }
}
