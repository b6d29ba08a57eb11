//! rkt's `run`/`prepare` argument grammar, which clap cannot express: flags before the first
//! image apply to the pod, per-app flags follow their image, `--` starts the app's arguments
//! and `---` ends them; several images make one pod:
//!
//! `rkt run --volume data,kind=empty img1 --exec /bin/x -- -a -b --- img2 --name two -- -c`

use std::path::PathBuf;

use anyhow::{bail, Result};

/// Pod-wide flags.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PodFlags {
    pub volumes: Vec<String>,
    pub mounts: Vec<String>,
    pub set_env: Vec<String>,
    pub set_env_file: Vec<String>,
    pub inherit_env: bool,
    pub no_overlay: bool,
    pub rootfs: Option<String>,
    pub interactive: bool,
    pub quiet: bool,
    pub hostname: Option<String>,
    pub uuid_file_save: Option<PathBuf>,
    pub net: super::pod_net::NetFlags,
    pub stop_timeout: Option<String>,
    pub insecure_options: Option<String>,
    pub pull_policy: Option<String>,
}

/// One image and its flags.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AppArgs {
    pub image: String,
    pub exec: Option<String>,
    pub args: Option<Vec<String>>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub supplementary_gids: Option<String>,
    pub name: Option<String>,
    pub environment: Vec<String>,
    pub mounts: Vec<String>,
    pub readonly_rootfs: Option<bool>,
    pub signature: Option<String>,
    pub caps_retain: Option<String>,
    pub caps_remove: Option<String>,
    pub memory: Option<String>,
    pub cpu: Option<String>,
    pub cpu_shares: Option<String>,
    pub oom_score_adj: Option<String>,
    pub seccomp: Option<String>,
}

/// The parsed command line of `run` or `prepare`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RunArgs {
    pub pod: PodFlags,
    pub apps: Vec<AppArgs>,
}

/// Global flags clap does not see once the trailing arguments started.
const GLOBAL: &[&str] = &[
    "dir",
    "debug",
    "local-config",
    "system-config",
    "user-config",
    "trust-keys-from-https",
    "insecure-skip-verify",
];
const POD_BOOL: &[&str] = &[
    "inherit-env",
    "no-overlay",
    "interactive",
    "quiet",
    "private-net",
];
const APP_BOOL: &[&str] = &["readonly-rootfs"];

/// Parse the arguments after `run`/`prepare`; `allowed_pod` lists the pod flags this command
/// takes (prepare takes fewer than run).
pub fn parse(raw: &[String], allowed_pod: &[&str]) -> Result<RunArgs> {
    let mut out = RunArgs::default();
    let mut i = 0;
    while i < raw.len() {
        let tok = &raw[i];
        i += 1;
        if tok == "--" {
            let Some(app) = out.apps.last_mut() else {
                bail!("'--' must follow an image: its arguments go after it");
            };
            if app.args.is_some() {
                bail!("image {} was given '--' twice", app.image);
            }
            let mut args = Vec::new();
            while i < raw.len() && raw[i] != "---" {
                args.push(raw[i].clone());
                i += 1;
            }
            i += 1; // skip `---`
            app.args = Some(args);
            continue;
        }
        if tok == "---" {
            continue;
        }
        let Some(flag) = tok.strip_prefix("--") else {
            out.apps.push(AppArgs {
                image: tok.clone(),
                ..AppArgs::default()
            });
            continue;
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (flag, None),
        };
        if GLOBAL.contains(&name) {
            bail!("--{name} is a global flag: give it before the command (rkt --{name}=… run …)");
        }
        let is_bool = POD_BOOL.contains(&name) || APP_BOOL.contains(&name);
        let value = match (inline, is_bool) {
            (Some(v), _) => v,
            (None, true) => "true".to_string(),
            // A bare `--net` means the default network (rkt's NoOptDefVal): values need `=`.
            (None, false) if name == "net" => String::new(),
            (None, false) => {
                let v = raw
                    .get(i)
                    .ok_or_else(|| anyhow::anyhow!("--{name} needs a value"))?
                    .clone();
                i += 1;
                v
            }
        };
        if let Some(app) = out.apps.last_mut() {
            if !set_app(app, name, &value)? {
                if is_pod_flag(name) {
                    bail!("--{name} applies to the whole pod: give it before the first image");
                }
                bail!("unknown flag --{name}");
            }
        } else {
            if !allowed_pod.contains(&name) {
                if is_app_flag(name) {
                    bail!("--{name} must follow an image");
                }
                bail!("unknown flag --{name}");
            }
            set_pod(&mut out.pod, name, &value)?;
        }
    }
    if out.apps.is_empty() {
        bail!("no image given: name at least one image (a file, an image ID or a name)");
    }
    Ok(out)
}

fn bool_value(name: &str, v: &str) -> Result<bool> {
    rkt_store::schema::parse_go_bool(v)
        .ok_or_else(|| anyhow::anyhow!("--{name}={v}: not a boolean"))
}

fn is_pod_flag(name: &str) -> bool {
    ALL_POD.contains(&name)
}

fn is_app_flag(name: &str) -> bool {
    let mut probe = AppArgs::default();
    set_app(&mut probe, name, "0").unwrap_or(true)
}

/// Every pod flag (run's set).
pub const ALL_POD: &[&str] = &[
    "volume",
    "mount",
    "set-env",
    "set-env-file",
    "inherit-env",
    "no-overlay",
    "rootfs",
    "interactive",
    "hostname",
    "uuid-file-save",
    "net",
    "private-net",
    "port",
    "dns",
    "dns-search",
    "dns-opt",
    "dns-domain",
    "hosts-entry",
    "stop-timeout",
    "insecure-options",
    "pull-policy",
];

/// Pod flags of `prepare`.
pub const PREPARE_POD: &[&str] = &[
    "volume",
    "mount",
    "set-env",
    "set-env-file",
    "inherit-env",
    "no-overlay",
    "rootfs",
    "quiet",
    "uuid-file-save",
    "net",
    "private-net",
    "port",
    "dns",
    "dns-search",
    "dns-opt",
    "dns-domain",
    "hosts-entry",
    "insecure-options",
    "pull-policy",
];

fn set_pod(p: &mut PodFlags, name: &str, v: &str) -> Result<()> {
    match name {
        "volume" => p.volumes.push(v.into()),
        "mount" => p.mounts.push(v.into()),
        "set-env" => p.set_env.push(v.into()),
        "set-env-file" => p.set_env_file.push(v.into()),
        "inherit-env" => p.inherit_env = bool_value(name, v)?,
        "no-overlay" => p.no_overlay = bool_value(name, v)?,
        "rootfs" => p.rootfs = Some(v.into()),
        "interactive" => p.interactive = bool_value(name, v)?,
        "quiet" => p.quiet = bool_value(name, v)?,
        "hostname" => p.hostname = Some(v.into()),
        "uuid-file-save" => p.uuid_file_save = Some(v.into()),
        "net" => p.net.net.push(v.into()),
        "private-net" => p.net.private_net = bool_value(name, v)?,
        "port" => p.net.port.push(v.into()),
        "dns" => p.net.dns.push(v.into()),
        "dns-search" => p.net.dns_search.push(v.into()),
        "dns-opt" => p.net.dns_opt.push(v.into()),
        "dns-domain" => p.net.dns_domain = Some(v.into()),
        "hosts-entry" => p.net.hosts_entry.push(v.into()),
        "stop-timeout" => p.stop_timeout = Some(v.into()),
        "insecure-options" => p.insecure_options = Some(v.into()),
        "pull-policy" => p.pull_policy = Some(v.into()),
        _ => bail!("unknown flag --{name}"),
    }
    Ok(())
}

/// Set a per-app flag; false if `name` is not one.
fn set_app(a: &mut AppArgs, name: &str, v: &str) -> Result<bool> {
    let image = a.image.clone();
    // Flags an image takes at most once.
    let once = |slot: &mut Option<String>| -> Result<()> {
        if slot.is_some() {
            bail!("--{name} given twice for image {image}");
        }
        *slot = Some(v.into());
        Ok(())
    };
    match name {
        "exec" => once(&mut a.exec)?,
        "working-dir" => once(&mut a.working_dir)?,
        "user" => once(&mut a.user)?,
        "group" => once(&mut a.group)?,
        "supplementary-gids" => a.supplementary_gids = Some(v.into()),
        "name" => once(&mut a.name)?,
        "environment" => a.environment.push(v.into()),
        "mount" => a.mounts.push(v.into()),
        "readonly-rootfs" => a.readonly_rootfs = Some(bool_value(name, v)?),
        "signature" => a.signature = Some(v.into()),
        "caps-retain" | "cap-retain" => once(&mut a.caps_retain)?,
        "caps-remove" | "cap-remove" => once(&mut a.caps_remove)?,
        "memory" => once(&mut a.memory)?,
        "cpu" => once(&mut a.cpu)?,
        "cpu-shares" => once(&mut a.cpu_shares)?,
        "seccomp" => once(&mut a.seccomp)?,
        "oom-score-adj" => once(&mut a.oom_score_adj)?,
        _ => return Ok(false),
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<RunArgs> {
        let raw: Vec<String> = s.split(' ').map(str::to_string).collect();
        parse(&raw, ALL_POD)
    }

    #[test]
    fn single_valued_app_flags_are_taken_once() {
        let r = p("img --exec /a --memory 5M --cap-retain CAP_KILL").unwrap();
        assert_eq!(r.apps[0].exec.as_deref(), Some("/a"));
        assert_eq!(r.apps[0].memory.as_deref(), Some("5M"));
        assert_eq!(r.apps[0].caps_retain.as_deref(), Some("CAP_KILL"));
        for twice in [
            "img --exec /a --exec /b",
            "img --memory 5M --memory 6M",
            "img --caps-retain CAP_KILL --cap-retain CAP_CHOWN",
        ] {
            let e = p(twice).unwrap_err().to_string();
            assert!(e.contains("given twice for image img"), "{twice}: {e}");
        }
    }

    #[test]
    fn rkt_grammar() {
        let r = p("--volume data,kind=empty --inherit-env img1 --exec /bin/x -- -a --b --- img2 --name two -- -c")
            .unwrap();
        assert_eq!(r.pod.volumes, vec!["data,kind=empty"]);
        assert!(r.pod.inherit_env);
        assert_eq!(r.apps.len(), 2);
        assert_eq!(r.apps[0].image, "img1");
        assert_eq!(r.apps[0].exec.as_deref(), Some("/bin/x"));
        assert_eq!(r.apps[0].args, Some(vec!["-a".to_string(), "--b".into()]));
        assert_eq!(r.apps[1].name.as_deref(), Some("two"));
        assert_eq!(r.apps[1].args, Some(vec!["-c".to_string()]));
    }

    #[test]
    fn flag_positions() {
        let r = p("--mount volume=a,target=/a img --mount=volume=b,target=/b --readonly-rootfs")
            .unwrap();
        assert_eq!(r.pod.mounts, vec!["volume=a,target=/a"]);
        assert_eq!(r.apps[0].mounts, vec!["volume=b,target=/b"]);
        assert_eq!(r.apps[0].readonly_rootfs, Some(true));
        let e = p("--exec /bin/sh img").unwrap_err().to_string();
        assert!(e.contains("--exec must follow an image"), "{e}");
        let e = p("img --volume x,kind=empty").unwrap_err().to_string();
        assert!(e.contains("before the first image"), "{e}");
        assert!(p("--bogus img").is_err());
        let e = p("--volume=x,kind=empty --dir /x img")
            .unwrap_err()
            .to_string();
        assert!(e.contains("global flag"), "{e}");
        assert!(p("--inherit-env").is_err(), "no image");
        assert!(p("-- a").is_err());
        let e = p("img --exec /a --exec /b").unwrap_err().to_string();
        assert!(e.contains("twice"), "{e}");
        let r = p("--net --net=default-restricted,n2:IP=1.2.3.4 --port=http:8080 --dns=8.8.8.8 --private-net img").unwrap();
        assert_eq!(r.pod.net.net, vec!["", "default-restricted,n2:IP=1.2.3.4"]);
        assert_eq!(r.pod.net.port, vec!["http:8080"]);
        assert_eq!(r.pod.net.dns, vec!["8.8.8.8"]);
        assert!(r.pod.net.private_net);
        assert_eq!(r.apps[0].image, "img", "a bare --net takes no value");
        let e = parse(&["--interactive".into(), "img".into()], PREPARE_POD).unwrap_err();
        assert!(e.to_string().contains("unknown flag --interactive"), "{e}");
    }
}
