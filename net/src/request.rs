//! `--net` values, in rkt's grammar: `--net=name[:K=V;K2=V2][,name2[:...]]`, repeatable.

use crate::{NetError, Result};

/// How a pod is networked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetMode {
    /// The pod shares the host's network namespace (`--net=host`, the default).
    Host,
    /// A private network namespace with only loopback (`--net=none`).
    None,
    /// A private network namespace joined to CNI networks.
    Private,
}

impl std::fmt::Display for NetMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NetMode::Host => "host",
            NetMode::None => "none",
            NetMode::Private => "private",
        })
    }
}

/// The networks a pod asked for, in the order given, each with its CNI_ARGS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetRequest {
    entries: Vec<(String, String)>,
}

impl Default for NetRequest {
    fn default() -> Self {
        NetRequest::host()
    }
}

impl NetRequest {
    /// `--net=host`, what `rkt run` does without `--net`.
    pub fn host() -> Self {
        NetRequest {
            entries: vec![("host".into(), String::new())],
        }
    }

    /// `--net=default`: what the old `--private-net` flag means.
    pub fn private_net() -> Self {
        NetRequest {
            entries: vec![("default".into(), String::new())],
        }
    }

    /// Parses every `--net` value given. No value means host networking; an empty value (a bare
    /// `--net`) means `default`, as in rkt.
    pub fn parse(values: &[String]) -> Result<Self> {
        if values.is_empty() {
            return Ok(NetRequest::host());
        }
        let mut req = NetRequest {
            entries: Vec::new(),
        };
        for value in values {
            if value.is_empty() {
                req.add(value, "default", None)?;
                continue;
            }
            for item in value.split(',') {
                let mut parts = item.split(':');
                let name = parts.next().unwrap_or_default();
                let args = parts.next();
                if parts.next().is_some() {
                    return Err(bad(
                        value,
                        format!("network {name:?} has more than one ':'"),
                    ));
                }
                req.add(value, name, args)?;
            }
        }
        req.check_exclusive()?;
        Ok(req)
    }

    fn add(&mut self, value: &str, name: &str, args: Option<&str>) -> Result<()> {
        if name.is_empty() {
            return Err(bad(value, "empty network name".into()));
        }
        if self.entries.iter().any(|(n, _)| n == name) {
            return Err(bad(value, format!("network {name:?} given twice")));
        }
        let args = args.unwrap_or_default();
        if !args.is_empty() {
            if matches!(name, "all" | "host" | "none") {
                return Err(bad(value, format!("{name:?} takes no CNI arguments")));
            }
            check_args(value, args)?;
        }
        self.entries.push((name.to_string(), args.to_string()));
        Ok(())
    }

    fn check_exclusive(&self) -> Result<()> {
        for special in ["host", "none"] {
            if self.specific(special) && self.entries.len() > 1 {
                let value = self.names().collect::<Vec<_>>().join(",");
                return Err(bad(
                    &value,
                    format!("{special:?} cannot be combined with other networks"),
                ));
            }
        }
        Ok(())
    }

    /// The pod's network mode.
    pub fn mode(&self) -> NetMode {
        if self.specific("host") {
            NetMode::Host
        } else if self.specific("none") {
            NetMode::None
        } else {
            NetMode::Private
        }
    }

    /// Whether `--net=all` was given: every configured network.
    pub fn all(&self) -> bool {
        self.specific("all")
    }

    /// Whether the network was named.
    pub fn specific(&self, name: &str) -> bool {
        self.entries.iter().any(|(n, _)| n == name)
    }

    /// The CNI_ARGS given for a network (empty if none).
    pub fn args(&self, name: &str) -> &str {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, a)| a.as_str())
    }

    /// The names given, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(n, _)| n.as_str())
    }
}

/// CNI_ARGS are `K=V` pairs separated by `;`.
fn check_args(value: &str, args: &str) -> Result<()> {
    for pair in args.split(';') {
        match pair.split_once('=') {
            Some((k, _)) if !k.is_empty() => {}
            _ => {
                return Err(bad(
                    value,
                    format!("CNI argument {pair:?} is not KEY=VALUE"),
                ))
            }
        }
    }
    Ok(())
}

fn bad(value: &str, reason: String) -> NetError {
    NetError::BadNetFlag {
        value: value.to_string(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &[&str]) -> Result<NetRequest> {
        NetRequest::parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn default_is_host_and_bare_net_is_default() {
        assert_eq!(parse(&[]).unwrap().mode(), NetMode::Host);
        let r = parse(&[""]).unwrap();
        assert_eq!(r.mode(), NetMode::Private);
        assert!(r.specific("default"));
        assert_eq!(NetRequest::private_net(), parse(&["default"]).unwrap());
    }

    #[test]
    fn several_networks_with_args() {
        let r = parse(&["all,net1:k1=v1;k2=v2", "net2:IP=10.1.2.3"]).unwrap();
        assert!(r.all());
        assert_eq!(r.args("net1"), "k1=v1;k2=v2");
        assert_eq!(r.args("net2"), "IP=10.1.2.3");
        assert_eq!(r.args("all"), "");
        assert_eq!(r.names().collect::<Vec<_>>(), ["all", "net1", "net2"]);
        assert_eq!(r.mode(), NetMode::Private);
    }

    #[test]
    fn refusals() {
        for bad in [
            &["host,default"][..],
            &["none", "default"],
            &["default,default"],
            &["a:b:c"],
            &[","],
            &["host:x=1"],
            &["all:x=1"],
            &["default:novalue"],
            &["default:=v"],
        ] {
            let err = parse(bad).unwrap_err();
            assert!(matches!(err, NetError::BadNetFlag { .. }), "{bad:?}: {err}");
        }
        assert_eq!(parse(&["none"]).unwrap().mode(), NetMode::None);
    }
}
