//! `--port=NAME:[HOSTIP:]HOSTPORT`: which host port leads to which named port of the image.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::{NetError, Result};

/// A `--port` value as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRequest {
    /// The image's port name (e.g. `http`, or `80-tcp` for docker2aci images).
    pub name: String,
    /// Only this host address forwards (default: every local address).
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
}

/// A port an app's image manifest declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePort {
    pub name: String,
    /// `tcp` or `udp`.
    pub protocol: String,
    pub port: u16,
}

/// A resolved forwarding: host port to pod port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    pub name: String,
    pub protocol: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub pod_port: u16,
}

impl PortRequest {
    /// Parses `NAME:[HOSTIP:]HOSTPORT`.
    pub fn parse(value: &str) -> Result<Self> {
        let bad = |reason: &str| NetError::BadPortFlag {
            value: value.to_string(),
            reason: reason.to_string(),
        };
        let parts: Vec<&str> = value.split(':').collect();
        let (name, host_ip, port) = match parts[..] {
            [name, port] => (name, None, port),
            [name, ip, port] => {
                let ip = ip
                    .parse::<Ipv4Addr>()
                    .map_err(|_| bad("HOSTIP must be an IPv4 address"))?;
                (name, Some(ip), port)
            }
            _ => return Err(bad("wrong number of ':'")),
        };
        if name.is_empty() {
            return Err(bad("empty port name"));
        }
        let host_port = match port.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return Err(bad("HOSTPORT must be a number from 1 to 65535")),
        };
        Ok(PortRequest {
            name: name.to_string(),
            host_ip,
            host_port,
        })
    }
}

/// Resolves the `--port` requests against the pod's image ports (the first app declaring a name
/// wins). Unknown names are refused with the list of names the images declare; a host port
/// mapped twice is refused.
pub fn resolve_ports(
    requests: &[PortRequest],
    image_ports: &[ImagePort],
) -> Result<Vec<PortMapping>> {
    let mut out: Vec<PortMapping> = Vec::new();
    for req in requests {
        let Some(port) = image_ports.iter().find(|p| p.name == req.name) else {
            let mut names: Vec<&str> = image_ports.iter().map(|p| p.name.as_str()).collect();
            names.dedup();
            let available = if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            };
            return Err(NetError::UnknownPort {
                name: req.name.clone(),
                available,
            });
        };
        let protocol = port.protocol.to_ascii_lowercase();
        if protocol != "tcp" && protocol != "udp" {
            return Err(NetError::BadPortFlag {
                value: req.name.clone(),
                reason: format!(
                    "the image's port uses protocol {:?}; only tcp and udp can be forwarded",
                    port.protocol
                ),
            });
        }
        if out
            .iter()
            .any(|m| m.host_port == req.host_port && m.protocol == protocol)
        {
            return Err(NetError::DuplicateHostPort {
                port: req.host_port,
                protocol,
            });
        }
        out.push(PortMapping {
            name: req.name.clone(),
            protocol,
            host_ip: req.host_ip,
            host_port: req.host_port,
            pod_port: port.port,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_forms() {
        assert_eq!(
            PortRequest::parse("http:8080").unwrap(),
            PortRequest {
                name: "http".into(),
                host_ip: None,
                host_port: 8080
            }
        );
        assert_eq!(
            PortRequest::parse("80-tcp:127.0.0.1:80").unwrap().host_ip,
            Some(Ipv4Addr::LOCALHOST)
        );
        for bad in [
            "http",
            "http:0",
            "http:70000",
            ":80",
            "http:::1:80",
            "http:nope:80",
            "http:x",
        ] {
            assert!(PortRequest::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn resolve_against_image() {
        let image = [
            ImagePort {
                name: "http".into(),
                protocol: "tcp".into(),
                port: 80,
            },
            ImagePort {
                name: "dns".into(),
                protocol: "UDP".into(),
                port: 53,
            },
        ];
        let reqs = [
            PortRequest::parse("http:8080").unwrap(),
            PortRequest::parse("dns:5353").unwrap(),
        ];
        let m = resolve_ports(&reqs, &image).unwrap();
        assert_eq!((m[0].pod_port, m[1].protocol.as_str()), (80, "udp"));
        let err = resolve_ports(&[PortRequest::parse("ssh:22").unwrap()], &image)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"ssh\"") && err.contains("its ports: http, dns"),
            "{err}"
        );
        let dup = [
            PortRequest::parse("http:8080").unwrap(),
            PortRequest::parse("http:8080").unwrap(),
        ];
        assert!(matches!(
            resolve_ports(&dup, &image),
            Err(NetError::DuplicateHostPort { .. })
        ));
    }
}
