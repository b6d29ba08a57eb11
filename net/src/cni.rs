//! Running a CNI plugin (the CNI specification's plugin protocol): the network configuration on
//! stdin, the parameters in `CNI_*` environment variables, a result or an error as JSON on stdout.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::dns::DnsInfo;
use crate::{NetError, Result};

/// What a plugin is run for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CniCommand {
    Add,
    Del,
}

impl CniCommand {
    fn as_str(self) -> &'static str {
        match self {
            CniCommand::Add => "ADD",
            CniCommand::Del => "DEL",
        }
    }
}

/// One invocation of a network's plugin.
pub(crate) struct Invocation<'a> {
    pub network: &'a str,
    pub plugin: &'a str,
    pub conf: &'a Value,
    pub container_id: &'a str,
    pub netns: &'a Path,
    pub ifname: &'a str,
    pub args: &'a str,
    pub plugin_dirs: &'a [PathBuf],
}

/// Finds the plugin binary in the plugin directories.
pub(crate) fn find_plugin(network: &str, plugin: &str, dirs: &[PathBuf]) -> Result<PathBuf> {
    dirs.iter()
        .map(|d| d.join(plugin))
        .find(|p| p.is_file())
        .ok_or_else(|| NetError::PluginNotFound {
            network: network.to_string(),
            plugin: plugin.to_string(),
            dirs: dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(":"),
        })
}

/// Runs the plugin. `ADD` returns the plugin's result; `DEL` gets the `ADD` result as
/// `prevResult` (CNI 0.4.0 and later) and returns nothing.
pub(crate) fn run(inv: &Invocation<'_>, cmd: CniCommand, prev: Option<&Value>) -> Result<Value> {
    let fail = |message: String| NetError::Plugin {
        network: inv.network.to_string(),
        plugin: inv.plugin.to_string(),
        command: cmd.as_str(),
        message,
    };
    let binary = find_plugin(inv.network, inv.plugin, inv.plugin_dirs)?;
    let stdin = stdin_conf(inv.conf, cmd, prev);
    let cni_path = std::env::join_paths(inv.plugin_dirs).map_err(|e| fail(e.to_string()))?;
    let mut command = Command::new(&binary);
    command
        .env("CNI_COMMAND", cmd.as_str())
        .env("CNI_CONTAINERID", inv.container_id)
        .env("CNI_NETNS", inv.netns)
        .env("CNI_IFNAME", inv.ifname)
        .env("CNI_PATH", cni_path)
        .env("PATH", search_path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if inv.args.is_empty() {
        command.env_remove("CNI_ARGS");
    } else {
        command.env("CNI_ARGS", inv.args);
    }
    let mut child = command
        .spawn()
        .map_err(|e| fail(format!("cannot start {}: {e}", binary.display())))?;
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(&stdin)
            .map_err(|e| fail(format!("cannot write its configuration: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| fail(format!("cannot wait for it: {e}")))?;
    if !out.status.success() {
        return Err(fail(plugin_error(&out.stdout, &out.stderr, out.status)));
    }
    if cmd == CniCommand::Del || out.stdout.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&out.stdout).map_err(|e| fail(format!("its result is not JSON: {e}")))
}

/// The plugins run `iptables`, `ip` and the IPAM plugin: give them the system directories even if
/// our caller's PATH lacks sbin.
fn search_path() -> String {
    let mut path = std::env::var("PATH").unwrap_or_default();
    for dir in ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
        if !path.split(':').any(|p| p == dir) {
            if !path.is_empty() {
                path.push(':');
            }
            path.push_str(dir);
        }
    }
    path
}

fn stdin_conf(conf: &Value, cmd: CniCommand, prev: Option<&Value>) -> Vec<u8> {
    let mut conf = conf.clone();
    if let (CniCommand::Del, Some(prev), Some(obj)) = (cmd, prev, conf.as_object_mut()) {
        let version = obj
            .get("cniVersion")
            .and_then(Value::as_str)
            .unwrap_or("0.1.0");
        if !prev.is_null() && version_at_least(version, (0, 4)) {
            obj.insert("prevResult".into(), prev.clone());
        }
    }
    serde_json::to_vec(&conf).unwrap_or_default()
}

fn version_at_least(version: &str, min: (u32, u32)) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    (major, minor) >= min
}

/// The spec's error result `{"code":N,"msg":"...","details":"..."}`, else whatever was printed.
fn plugin_error(stdout: &[u8], stderr: &[u8], status: std::process::ExitStatus) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(stdout) {
        if let Some(msg) = v.get("msg").and_then(Value::as_str) {
            let code = v.get("code").and_then(Value::as_u64).unwrap_or(0);
            return match v.get("details").and_then(Value::as_str) {
                Some(d) if !d.is_empty() => format!("{msg}: {d} (CNI error {code})"),
                _ => format!("{msg} (CNI error {code})"),
            };
        }
    }
    let text = String::from_utf8_lossy(if stderr.is_empty() { stdout } else { stderr });
    let text = text.trim();
    if text.is_empty() {
        format!("it exited with {status}")
    } else {
        format!("{text} ({status})")
    }
}

/// What rkt keeps of a plugin result: the pod's address, the gateway, the host-side interface
/// (0.3.0+ results name it), and the DNS settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Summary {
    pub ip: Option<String>,
    pub gateway: Option<IpAddr>,
    pub host_iface: Option<String>,
    pub dns: DnsInfo,
}

/// Reads both result formats: 0.1.0/0.2.0 (`ip4`, `ip6`) and 0.3.0 and later (`interfaces`,
/// `ips`).
pub(crate) fn summarize(result: &Value, ifname: &str) -> Summary {
    let mut s = Summary {
        dns: dns_of(result),
        ..Summary::default()
    };
    if let Some(ips) = result.get("ips").and_then(Value::as_array) {
        let ifaces = result
            .get("interfaces")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let in_pod = |idx: Option<u64>| -> bool {
            let Some(iface) = idx.and_then(|i| ifaces.get(i as usize)) else {
                return true;
            };
            iface.get("name").and_then(Value::as_str) == Some(ifname)
                || iface
                    .get("sandbox")
                    .is_some_and(|s| s.as_str().is_some_and(|s| !s.is_empty()))
        };
        let ip = ips
            .iter()
            .filter(|ip| in_pod(ip.get("interface").and_then(Value::as_u64)))
            .find(|ip| {
                ip.get("address")
                    .and_then(Value::as_str)
                    .is_some_and(|a| !a.contains(':'))
            })
            .or_else(|| ips.first());
        if let Some(ip) = ip {
            s.ip = ip
                .get("address")
                .and_then(Value::as_str)
                .map(str::to_string);
            s.gateway = ip
                .get("gateway")
                .and_then(Value::as_str)
                .and_then(|g| g.parse().ok());
        }
        s.host_iface = ifaces
            .iter()
            .find(|i| {
                i.get("sandbox")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
            })
            .and_then(|i| i.get("name").and_then(Value::as_str))
            .map(str::to_string);
    } else if let Some(ip4) = result.get("ip4").or_else(|| result.get("ip6")) {
        s.ip = ip4.get("ip").and_then(Value::as_str).map(str::to_string);
        s.gateway = ip4
            .get("gateway")
            .and_then(Value::as_str)
            .and_then(|g| g.parse().ok());
    }
    s
}

fn dns_of(result: &Value) -> DnsInfo {
    let Some(dns) = result.get("dns") else {
        return DnsInfo::default();
    };
    let list = |key: &str| -> Vec<String> {
        dns.get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    DnsInfo {
        nameservers: list("nameservers"),
        domain: dns
            .get("domain")
            .and_then(Value::as_str)
            .filter(|d| !d.is_empty())
            .map(str::to_string),
        search: list("search"),
        options: list("options"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn summarizes_new_and_old_results() {
        let new = json!({
            "cniVersion": "0.4.0",
            "interfaces": [
                {"name": "veth1234", "mac": "aa:bb"},
                {"name": "eth0", "mac": "cc:dd", "sandbox": "/run/netns/x"}
            ],
            "ips": [{"version": "4", "interface": 1, "address": "172.16.28.5/24", "gateway": "172.16.28.1"}],
            "dns": {"nameservers": ["10.0.0.53"], "search": ["corp"]}
        });
        let s = summarize(&new, "eth0");
        assert_eq!(s.ip.as_deref(), Some("172.16.28.5/24"));
        assert_eq!(s.gateway, Some("172.16.28.1".parse().unwrap()));
        assert_eq!(s.host_iface.as_deref(), Some("veth1234"));
        assert_eq!(s.dns.nameservers, ["10.0.0.53"]);
        assert_eq!(s.dns.search, ["corp"]);

        let old = json!({"ip4": {"ip": "10.1.0.7/16", "gateway": "10.1.0.1"}});
        let s = summarize(&old, "eth0");
        assert_eq!(s.ip.as_deref(), Some("10.1.0.7/16"));
        assert_eq!(s.host_iface, None);
    }

    #[test]
    fn prev_result_only_for_del_from_0_4_0() {
        let prev = json!({"ips": []});
        let conf = json!({"cniVersion": "0.4.0", "name": "n", "type": "ptp"});
        let del: Value =
            serde_json::from_slice(&stdin_conf(&conf, CniCommand::Del, Some(&prev))).unwrap();
        assert_eq!(del["prevResult"], prev);
        let add: Value =
            serde_json::from_slice(&stdin_conf(&conf, CniCommand::Add, Some(&prev))).unwrap();
        assert!(add.get("prevResult").is_none());
        let old = json!({"name": "n", "type": "ptp"});
        let del: Value =
            serde_json::from_slice(&stdin_conf(&old, CniCommand::Del, Some(&prev))).unwrap();
        assert!(del.get("prevResult").is_none());
    }

    #[test]
    fn plugin_errors_are_readable() {
        let status = std::process::Command::new("false").status().unwrap();
        let m = plugin_error(
            br#"{"code":7,"msg":"no IP addresses available","details":"in range 1"}"#,
            b"",
            status,
        );
        assert_eq!(m, "no IP addresses available: in range 1 (CNI error 7)");
        let m = plugin_error(b"", b"boom\n", status);
        assert!(m.starts_with("boom ("), "{m}");
    }
}
