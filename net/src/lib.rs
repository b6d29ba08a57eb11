//! Pod networking for rkt: the network modes of `rkt run --net`, private pod networks set up by
//! the standard CNI plugins (Debian's `containernetworking-plugins`), `--port` forwarding through
//! iptables DNAT (also from the host's own loopback), and the pod's `/etc/resolv.conf` and
//! `/etc/hosts`.
//!
//! The pod supervisor's calls, in order (see docs/networking.md):
//! 1. [`NetRequest::parse`] the `--net` values, [`PortRequest::parse`] the `--port` values and
//!    [`resolve_ports`] them against the image's ports; [`DnsFlags::parse`], [`HostsFlags::parse`].
//! 2. [`NetConfig::load`] the network configurations.
//! 3. [`PodNetwork::setup`]: a named network namespace with loopback up, one CNI `ADD` per
//!    network, port forwarding; everything is recorded in `<pod_dir>/net-info.json` *before* it
//!    is created, so [`PodNetwork::teardown_from_dir`] can release it after any crash.
//! 4. The pod's init joins [`PodNetwork::netns_path`] (setns) before unsharing its other
//!    namespaces.
//! 5. On exit, stop, or `rkt gc`: [`PodNetwork::teardown_from_dir`] (idempotent).

mod cni;
mod config;
mod dns;
mod error;
mod iptables;
mod netns;
mod pod;
mod portfwd;
mod record;
mod request;

pub use config::{NetConfig, NetDef, SelectedNet, DEFAULT_PLUGIN_DIR};
pub use dns::{hosts_fallback, DnsFlags, DnsInfo, FileSource, HostsFlags};
pub use error::NetError;
pub use netns::listen_in;
pub use pod::PodNetwork;
pub use portfwd::{resolve_ports, ImagePort, PortMapping, PortRequest};
pub use record::{NetInfo, NET_INFO_FILE};
pub use request::{NetMode, NetRequest};

/// Results of this crate.
pub type Result<T, E = NetError> = std::result::Result<T, E>;
