//! The errors of pod networking: each names the input or the file that failed and what to do.

use std::path::PathBuf;

/// Every failure of this crate.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A `--net` value that does not follow `name[:K=V;K2=V2][,name2...]`.
    #[error("invalid --net value {value:?}: {reason}")]
    BadNetFlag { value: String, reason: String },
    /// A `--port` value that does not follow `NAME:[HOSTIP:]HOSTPORT`.
    #[error("invalid --port value {value:?}: {reason} (expected NAME:[HOSTIP:]HOSTPORT, e.g. http:8080)")]
    BadPortFlag { value: String, reason: String },
    /// A `--port` name that no app image declares.
    #[error("--port {name:?}: the image declares no port of that name (its ports: {available})")]
    UnknownPort { name: String, available: String },
    /// Two `--port` values that claim the same host port.
    #[error("--port: host port {port}/{protocol} is mapped twice")]
    DuplicateHostPort { port: u16, protocol: String },
    /// Port forwarding asked for a pod that has no private network.
    #[error("--port needs a private pod network, but the pod uses --net={mode}; use --net=default (or a named network)")]
    PortsNeedPrivateNet { mode: String },
    /// A `--dns`, `--dns-*` or `--hosts-entry` value that makes no sense.
    #[error("invalid {flag} value {value:?}: {reason}")]
    BadDnsFlag {
        flag: &'static str,
        value: String,
        reason: String,
    },
    /// A network configuration file that cannot be used.
    #[error("network configuration {path}: {reason}")]
    BadConfig { path: PathBuf, reason: String },
    /// Networks asked for by `--net` that no configuration defines.
    #[error("network(s) not found: {names} (defined: {defined}; add a <name>.conf to {dir})")]
    NetworksNotFound {
        names: String,
        defined: String,
        dir: PathBuf,
    },
    /// A CNI plugin binary that is not installed.
    #[error("network {network:?}: CNI plugin {plugin:?} not found in {dirs} (install containernetworking-plugins)")]
    PluginNotFound {
        network: String,
        plugin: String,
        dirs: String,
    },
    /// A CNI plugin that failed.
    #[error("network {network:?}: CNI plugin {plugin} {command} failed: {message}")]
    Plugin {
        network: String,
        plugin: String,
        command: &'static str,
        message: String,
    },
    /// A pod ID that cannot name iptables chains and CNI containers.
    #[error("invalid pod ID {0:?}: expected letters, digits and dashes, at least 8 characters")]
    BadPodId(String),
    /// A file or system call failed.
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// An iptables command failed.
    #[error("iptables: {what}: {message}")]
    Iptables { what: &'static str, message: String },
    /// `net-info.json` of a pod cannot be read.
    #[error("pod network record {path}: {reason}")]
    BadRecord { path: PathBuf, reason: String },
    /// Teardown did not release everything; running it again retries.
    #[error("pod network teardown incomplete: {0}")]
    Teardown(String),
}

impl NetError {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        NetError::Io {
            what,
            path: path.into(),
            source,
        }
    }
}
