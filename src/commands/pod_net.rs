//! The pod's network flags (`--net`, `--private-net`, `--port`, `--dns*`, `--hosts-entry`),
//! checked before anything is created, and the network (crate `rkt-net`) that `rkt run` sets up
//! before the pod's init and tears down when the pod exits. See docs/networking.md.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rkt_net::{
    DnsFlags, FileSource, HostsFlags, ImagePort, NetConfig, NetMode, NetRequest, PodNetwork,
    PortRequest,
};
use rkt_runner::{EtcFile, Pod, RunOptions};
use rkt_store::schema::PodManifest;
use serde::{Deserialize, Serialize};

use crate::cli::GlobalArgs;

/// `prepare` keeps the flags here so `run-prepared` sets up the same network.
pub const NET_FLAGS_FILE: &str = "net-flags.json";
/// The namespace file, inside the pod directory (rkt's place); it follows the directory.
const NETNS: &str = "netns";

/// The raw flag values, as given.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetFlags {
    pub net: Vec<String>,
    pub private_net: bool,
    pub port: Vec<String>,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_opt: Vec<String>,
    pub dns_domain: Option<String>,
    pub hosts_entry: Vec<String>,
}

/// The checked flags and the network configurations.
pub struct NetPlan {
    config: NetConfig,
    req: NetRequest,
    ports: Vec<PortRequest>,
    dns: DnsFlags,
    hosts: HostsFlags,
}

impl NetFlags {
    /// Parse and check every value; nothing is created.
    pub fn check(&self, global: &GlobalArgs) -> Result<NetPlan> {
        let mut values = self.net.clone();
        if self.private_net {
            if !values.is_empty() {
                bail!("--private-net is the old spelling of --net=default: give only --net");
            }
            values.push("default".into());
        }
        let req = NetRequest::parse(&values)?;
        let ports = self
            .port
            .iter()
            .map(|p| PortRequest::parse(p))
            .collect::<Result<Vec<_>, _>>()?;
        if !ports.is_empty() && req.mode() != NetMode::Private {
            bail!(
                "--port needs a private pod network (e.g. --net=default); the pod would use {} networking",
                req.mode()
            );
        }
        let dns = DnsFlags::parse(
            &self.dns,
            &self.dns_search,
            &self.dns_opt,
            self.dns_domain.as_deref(),
        )?;
        let hosts = HostsFlags::parse(&self.hosts_entry)?;
        let config = NetConfig::load(&global.local_config, &global.system_config)?;
        if req.mode() == NetMode::Private {
            config.select(&req)?;
        }
        Ok(NetPlan {
            config,
            req,
            ports,
            dns,
            hosts,
        })
    }

    /// Keep the flags in the (prepared) pod's directory.
    pub fn save(&self, pod: &Pod) -> Result<()> {
        pod.write_text(NET_FLAGS_FILE, &serde_json::to_string(self)?)?;
        Ok(())
    }

    /// The flags `prepare` kept; none for pods prepared without network flags.
    pub fn load(pod: &Pod) -> Result<NetFlags> {
        match pod.read_text(NET_FLAGS_FILE) {
            None => Ok(NetFlags::default()),
            Some(text) => serde_json::from_str(&text)
                .with_context(|| format!("pod {}: corrupt {NET_FLAGS_FILE}", pod.uuid)),
        }
    }

    /// `run-prepared`'s flags: each kind given replaces the one `prepare` kept.
    pub fn override_with(mut self, cli: NetFlags) -> NetFlags {
        if !cli.net.is_empty() || cli.private_net {
            self.net = cli.net;
            self.private_net = cli.private_net;
        }
        if !cli.dns.is_empty() || !cli.dns_search.is_empty() || !cli.dns_opt.is_empty() {
            self.dns = cli.dns;
            self.dns_search = cli.dns_search;
            self.dns_opt = cli.dns_opt;
        }
        if cli.dns_domain.is_some() {
            self.dns_domain = cli.dns_domain;
        }
        if !cli.hosts_entry.is_empty() {
            self.hosts_entry = cli.hosts_entry;
        }
        self
    }
}

impl NetPlan {
    /// Set up the pod's network (the pod is locked, its directory final up to a rename) and
    /// tell the runner to join it and bind the pod's resolv.conf/hosts. On error nothing of
    /// the network is left.
    pub fn setup(&self, pod: &Pod, opts: &mut RunOptions) -> Result<()> {
        let manifest = pod.manifest()?;
        let mappings = rkt_net::resolve_ports(&self.ports, &image_ports(&manifest))?;
        let dir = pod.dir();
        let net = PodNetwork::setup(
            &self.config,
            &pod.uuid,
            &dir.join(NETNS),
            &self.req,
            &mappings,
            &dir,
        )
        .with_context(|| format!("cannot set up the network of pod {}", pod.uuid))?;
        if net.netns_path().is_some() {
            opts.netns = Some(PathBuf::from(NETNS));
        }
        let hostname = opts
            .hostname
            .clone()
            .unwrap_or_else(|| format!("rkt-{}", pod.uuid));
        let files = [
            (
                "/etc/resolv.conf",
                "resolv.conf",
                self.dns.resolv_conf(&net.dns()),
                true,
            ),
            (
                "/etc/hosts",
                "hosts",
                self.hosts.hosts_file(&hostname),
                false,
            ),
        ];
        for (path, name, source, from_cni) in files {
            // Only resolv.conf from the CNI results yields to a volume; CLI flags win.
            let yields = from_cni && self.dns == DnsFlags::default();
            let source = match source {
                FileSource::Image => continue,
                FileSource::HostFile(p) => p,
                FileSource::Generated(text) => {
                    pod.write_text(name, &text)?;
                    PathBuf::from(name)
                }
            };
            opts.etc_files.push(EtcFile {
                path: path.into(),
                source,
                yields_to_volume: yields,
            });
        }
        Ok(())
    }
}

/// Every port the pod's apps declare.
fn image_ports(manifest: &PodManifest) -> Vec<ImagePort> {
    manifest
        .apps
        .iter()
        .filter_map(|a| a.app.as_ref())
        .flat_map(|a| a.ports.iter())
        .filter_map(|p| {
            Some(ImagePort {
                name: p.name.as_str().to_string(),
                protocol: p.protocol.clone(),
                port: u16::try_from(p.port).ok()?,
            })
        })
        .collect()
}

/// Release the pod's network (idempotent; nothing for host networking).
pub fn teardown(dir: &Path) {
    if let Err(e) = PodNetwork::teardown_from_dir(dir) {
        eprintln!("rkt: cannot release the pod's network (rkt gc retries): {e}");
    }
}

/// `rkt list`'s NETWORKS field and `rkt status`'s `networks=`: `default:ip4=172.16.28.2,...`.
pub fn list_field(pod: &Pod) -> String {
    match PodNetwork::load(&pod.dir()) {
        Ok(Some(net)) if net.is_active() => net.list_field(),
        _ => String::new(),
    }
}

/// rkt's JSON `networks`: `[{netName, ifName, ip, args}]`.
pub fn json_field(pod: &Pod) -> serde_json::Value {
    match PodNetwork::load(&pod.dir()) {
        Ok(Some(net)) if net.is_active() => net
            .networks()
            .iter()
            .map(|n| {
                serde_json::json!({
                    "netName": n.name,
                    "ifName": n.ifname,
                    "ip": n.ip.as_deref().and_then(|ip| ip.split('/').next()),
                    "args": n.args,
                })
            })
            .collect(),
        _ => serde_json::Value::Array(Vec::new()),
    }
}
