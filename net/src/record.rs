//! `net-info.json` in the pod directory: everything the pod's networking created, written
//! *before* each step, so teardown works from this file alone (after `kill -9`, in `rkt gc`), and
//! `rkt list`/`rkt status` can show the pod's networks.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::dns::DnsInfo;
use crate::portfwd::PortMapping;
use crate::{NetError, Result};

/// The record's file name in the pod directory.
pub const NET_INFO_FILE: &str = "net-info.json";

/// One network of a pod, as `rkt list` and `rkt status` show it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetInfo {
    /// The network's name.
    pub name: String,
    /// The pod's interface on it (`eth0`, ...).
    pub ifname: String,
    /// The CNI_ARGS given with `--net=name:K=V;...`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub args: String,
    /// The pod's address with prefix length, e.g. `172.16.28.2/24`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// The host side of the link (a veth or a bridge), where the plugin says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_iface: Option<String>,
    #[serde(default, skip_serializing_if = "DnsInfo::is_default")]
    pub dns: DnsInfo,
}

impl NetInfo {
    /// rkt's `rkt list`/`rkt status` form: `default:ip4=172.16.28.2` (`ip6=` for IPv6; the name
    /// alone if the plugin returned no address).
    pub fn list_entry(&self) -> String {
        match self.ip.as_deref().and_then(|ip| ip.split('/').next()) {
            Some(addr) if addr.contains(':') => format!("{}:ip6={addr}", self.name),
            Some(addr) => format!("{}:ip4={addr}", self.name),
            None => self.name.clone(),
        }
    }
}

impl DnsInfo {
    fn is_default(&self) -> bool {
        self == &DnsInfo::default()
    }
}

/// How far a network's set-up got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum NetState {
    /// Not started: nothing to undo.
    Pending,
    /// ADD was started: DEL must run (CNI DEL tolerates what does not exist).
    Adding,
    /// ADD succeeded; `result` holds its result.
    Added,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct NetRecord {
    #[serde(flatten)]
    pub info: NetInfo,
    pub plugin: String,
    pub ip_masq: bool,
    /// rkt masquerades this network's traffic itself (the plugin got `ipMasq: false`).
    #[serde(default)]
    pub masq_by_rkt: bool,
    /// The configuration the plugin gets.
    pub conf: Value,
    pub state: NetState,
    #[serde(default)]
    pub result: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Record {
    pub version: u32,
    pub pod_id: String,
    /// `none` or `private`.
    pub mode: String,
    pub pod_dir: PathBuf,
    pub netns: PathBuf,
    /// False once torn down.
    pub active: bool,
    pub plugin_dirs: Vec<PathBuf>,
    pub networks: Vec<NetRecord>,
    #[serde(default)]
    pub ports: Vec<PortMapping>,
    /// The pod address ports forward to.
    #[serde(default)]
    pub forward_ip: Option<std::net::Ipv4Addr>,
    /// rkt's nat rules (masquerade, port forwarding) may exist.
    #[serde(default)]
    pub nat_rules: bool,
}

impl Record {
    pub fn save(&self) -> Result<()> {
        let path = self.pod_dir.join(NET_INFO_FILE);
        let tmp = self.pod_dir.join(format!(".{NET_INFO_FILE}.tmp"));
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| NetError::BadRecord {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        std::fs::write(&tmp, bytes).map_err(|e| NetError::io("cannot write", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| NetError::io("cannot write", &path, e))
    }

    /// Loads the record of the pod in `pod_dir` (`None` if the pod has none: host networking).
    /// A pod directory that moved (rkt renames it between states) is followed: paths inside the
    /// old directory are taken relative to the new one.
    pub fn load(pod_dir: &Path) -> Result<Option<Record>> {
        let path = pod_dir.join(NET_INFO_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(NetError::io("cannot read", &path, e)),
        };
        let mut rec: Record = serde_json::from_slice(&bytes).map_err(|e| NetError::BadRecord {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if rec.version != 1 {
            return Err(NetError::BadRecord {
                path,
                reason: format!("unknown version {}", rec.version),
            });
        }
        if rec.pod_dir != pod_dir {
            if let Ok(rel) = rec.netns.strip_prefix(&rec.pod_dir) {
                rec.netns = pod_dir.join(rel);
            }
            rec.pod_dir = pod_dir.to_path_buf();
        }
        Ok(Some(rec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_entries_as_rkt_printed_them() {
        let mut n = NetInfo {
            name: "default".into(),
            ip: Some("172.16.28.2/24".into()),
            ..Default::default()
        };
        assert_eq!(n.list_entry(), "default:ip4=172.16.28.2");
        n.ip = Some("fd00::5/64".into());
        assert_eq!(n.list_entry(), "default:ip6=fd00::5");
        n.ip = None;
        assert_eq!(n.list_entry(), "default");
    }
}
