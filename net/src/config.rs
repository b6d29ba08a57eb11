//! Network configurations: the built-in `default` and `default-restricted` networks and the CNI
//! configurations in `<local-config>/net.d/*.conf` (then `<system-config>/net.d/*.conf`), loaded
//! in name order; the first definition of a name wins, so a user `default` overrides the
//! built-in one.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::request::NetRequest;
use crate::{NetError, Result};

/// Where Debian's `containernetworking-plugins` installs the CNI plugins.
pub const DEFAULT_PLUGIN_DIR: &str = "/usr/lib/cni";

/// One network definition: a CNI network configuration.
#[derive(Debug, Clone)]
pub struct NetDef {
    /// The network's name (`name` in the configuration).
    pub name: String,
    /// The CNI plugin (`type`).
    pub plugin: String,
    /// Whether the plugin masquerades the pod's traffic (`ipMasq`).
    pub ip_masq: bool,
    /// The whole configuration, passed to the plugin.
    pub conf: Value,
    /// The file it came from, or `None` for a built-in network.
    pub source: Option<PathBuf>,
}

/// A network chosen for a pod, with the pod's interface name and CNI_ARGS for it.
#[derive(Debug, Clone)]
pub struct SelectedNet {
    pub def: NetDef,
    /// `eth0`, `eth1`, ... in order.
    pub ifname: String,
    /// CNI_ARGS from `--net=name:K=V;...` (may be empty).
    pub args: String,
}

/// Every network a pod can join, and where their plugins are.
#[derive(Debug, Clone)]
pub struct NetConfig {
    user: Vec<NetDef>,
    plugin_dirs: Vec<PathBuf>,
    user_dir: PathBuf,
}

impl NetConfig {
    /// Loads `<local_config>/net.d/*.conf` and `<system_config>/net.d/*.conf`. Plugins are looked
    /// up in [`DEFAULT_PLUGIN_DIR`], then in `<local_config>/net.d`, as rkt did.
    pub fn load(local_config: &Path, system_config: &Path) -> Result<Self> {
        let user_dir = local_config.join("net.d");
        let mut user: Vec<NetDef> = Vec::new();
        for dir in [&user_dir, &system_config.join("net.d")] {
            for def in load_dir(dir)? {
                if user.iter().any(|d| d.name == def.name) {
                    tracing::info!(network = %def.name, file = ?def.source, "network already defined; ignoring this file");
                    continue;
                }
                user.push(def);
            }
        }
        let plugin_dirs = vec![PathBuf::from(DEFAULT_PLUGIN_DIR), user_dir.clone()];
        Ok(NetConfig {
            user,
            plugin_dirs,
            user_dir,
        })
    }

    /// Replaces the directories searched for CNI plugins.
    pub fn set_plugin_dirs(&mut self, dirs: Vec<PathBuf>) {
        self.plugin_dirs = dirs;
    }

    /// The directories searched for CNI plugins, in order.
    pub fn plugin_dirs(&self) -> &[PathBuf] {
        &self.plugin_dirs
    }

    /// The networks from configuration files, in load order.
    pub fn user_networks(&self) -> &[NetDef] {
        &self.user
    }

    /// The networks a pod joins for `req`, in order, as rkt chose them: the configured networks
    /// named (or all with `all`), then the built-in `default` if it was asked for and not
    /// overridden, else the built-in `default-restricted` (so the host can always reach the pod),
    /// unless a configured `default`/`default-restricted` was chosen. Host and none: no networks.
    pub fn select(&self, req: &NetRequest) -> Result<Vec<SelectedNet>> {
        if req.mode() != crate::NetMode::Private {
            return Ok(Vec::new());
        }
        let mut chosen: Vec<NetDef> = self
            .user
            .iter()
            .filter(|d| req.all() || req.specific(&d.name))
            .cloned()
            .collect();
        if !chosen
            .iter()
            .any(|d| d.name == "default" || d.name == "default-restricted")
        {
            let builtin = if req.specific("default") || req.all() {
                builtin_default()
            } else {
                builtin_default_restricted()
            };
            chosen.push(builtin);
        }
        self.check_missing(req, &chosen)?;
        Ok(chosen
            .into_iter()
            .enumerate()
            .map(|(i, def)| SelectedNet {
                ifname: format!("eth{i}"),
                args: req.args(&def.name).to_string(),
                def,
            })
            .collect())
    }

    fn check_missing(&self, req: &NetRequest, chosen: &[NetDef]) -> Result<()> {
        let missing: Vec<&str> = req
            .names()
            .filter(|n| *n != "all" && !chosen.iter().any(|d| d.name == *n))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let mut defined: Vec<&str> = vec!["default", "default-restricted"];
        defined.extend(self.user.iter().map(|d| d.name.as_str()));
        defined.dedup();
        Err(NetError::NetworksNotFound {
            names: missing.join(", "),
            defined: defined.join(", "),
            dir: self.user_dir.clone(),
        })
    }
}

/// rkt's `99-default.conf`: ptp with IP masquerade, host-local on 172.16.28.0/24, default route.
fn builtin_default() -> NetDef {
    builtin(json!({
        "cniVersion": "0.4.0",
        "name": "default",
        "type": "ptp",
        "ipMasq": true,
        "ipam": {
            "type": "host-local",
            "subnet": "172.16.28.0/24",
            "routes": [{ "dst": "0.0.0.0/0" }]
        }
    }))
}

/// rkt's `99-default-restricted.conf`: ptp, no masquerade, 172.31.0.0/16, no default route.
fn builtin_default_restricted() -> NetDef {
    builtin(json!({
        "cniVersion": "0.4.0",
        "name": "default-restricted",
        "type": "ptp",
        "ipMasq": false,
        "ipam": {
            "type": "host-local",
            "subnet": "172.31.0.0/16"
        }
    }))
}

fn builtin(conf: Value) -> NetDef {
    let name = conf["name"].as_str().unwrap_or_default().to_string();
    NetDef {
        name,
        plugin: "ptp".into(),
        ip_masq: conf["ipMasq"] == true,
        conf,
        source: None,
    }
}

fn load_dir(dir: &Path) -> Result<Vec<NetDef>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(NetError::io(
                "cannot list network configurations in",
                dir,
                e,
            ))
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| NetError::io("cannot list", dir, e))?
            .path();
        if path.extension().is_some_and(|x| x == "conf") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    files.iter().map(|p| load_file(p)).collect()
}

fn load_file(path: &Path) -> Result<NetDef> {
    let bad = |reason: String| NetError::BadConfig {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| NetError::io("cannot read", path, e))?;
    let conf: Value =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("invalid JSON: {e}")))?;
    let text = |key: &str| -> Result<String> {
        match conf.get(key).and_then(Value::as_str) {
            Some(s) if !s.is_empty() => Ok(s.to_string()),
            _ => Err(bad(format!("{key:?} must be a non-empty string"))),
        }
    };
    let name = text("name")?;
    let plugin = text("type")?;
    if plugin.contains('/') || name.contains('/') || name.contains(',') || name.contains(':') {
        return Err(bad(
            "\"name\" and \"type\" must not contain '/', ',' or ':'".into(),
        ));
    }
    let ip_masq = conf.get("ipMasq").and_then(Value::as_bool).unwrap_or(false);
    Ok(NetDef {
        name,
        plugin,
        ip_masq,
        conf,
        source: Some(path.to_path_buf()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: &[&str]) -> NetRequest {
        NetRequest::parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn write(dir: &Path, file: &str, body: &str) {
        std::fs::create_dir_all(dir.join("net.d")).unwrap();
        std::fs::write(dir.join("net.d").join(file), body).unwrap();
    }

    #[test]
    fn builtins_and_restricted_added() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = NetConfig::load(tmp.path(), &tmp.path().join("sys")).unwrap();
        let d = cfg.select(&req(&["default"])).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].def.conf["ipam"]["subnet"], "172.16.28.0/24");
        assert!(d[0].def.ip_masq);
        assert_eq!(d[0].ifname, "eth0");
        let r = cfg.select(&req(&["default-restricted"])).unwrap();
        assert_eq!(r[0].def.conf["ipam"]["subnet"], "172.31.0.0/16");
        assert!(!r[0].def.ip_masq && r[0].def.conf["ipam"].get("routes").is_none());
        assert!(cfg.select(&req(&["host"])).unwrap().is_empty());
        assert!(cfg.select(&req(&["none"])).unwrap().is_empty());
    }

    #[test]
    fn user_networks_in_name_order_with_override_and_args() {
        let tmp = tempfile::tempdir().unwrap();
        let local = tmp.path().join("local");
        write(&local, "20-b.conf", r#"{"name":"b","type":"bridge"}"#);
        write(&local, "10-a.conf", r#"{"name":"a","type":"ptp"}"#);
        write(
            &local,
            "30-default.conf",
            r#"{"name":"default","type":"bridge","ipMasq":true}"#,
        );
        write(&local, "40-dup.conf", r#"{"name":"a","type":"macvlan"}"#);
        write(&local, "README", "not json");
        let sys = tmp.path().join("sys");
        write(&sys, "50-c.conf", r#"{"name":"c","type":"ipvlan"}"#);
        let cfg = NetConfig::load(&local, &sys).unwrap();

        let all = cfg.select(&req(&["all"])).unwrap();
        let names: Vec<_> = all.iter().map(|s| s.def.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "default", "c"]);
        assert_eq!(
            all[2].def.plugin, "bridge",
            "the user default overrides the built-in"
        );
        assert_eq!(all[0].def.plugin, "ptp", "first definition wins");

        let two = cfg.select(&req(&["b:IP=10.0.0.9;X=1,c"])).unwrap();
        let names: Vec<_> = two
            .iter()
            .map(|s| (s.def.name.as_str(), s.ifname.as_str()))
            .collect();
        assert_eq!(
            names,
            [("b", "eth0"), ("c", "eth1"), ("default-restricted", "eth2")]
        );
        assert_eq!(two[0].args, "IP=10.0.0.9;X=1");

        let err = cfg.select(&req(&["nope,a"])).unwrap_err().to_string();
        assert!(
            err.contains("nope") && err.contains("defined: default, default-restricted, a"),
            "{err}"
        );
    }

    #[test]
    fn broken_configs_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "x.conf", "{");
        let err = NetConfig::load(tmp.path(), tmp.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("x.conf") && err.contains("invalid JSON"),
            "{err}"
        );
        write(tmp.path(), "x.conf", r#"{"name":"x"}"#);
        let err = NetConfig::load(tmp.path(), tmp.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"type\""), "{err}");
    }
}
