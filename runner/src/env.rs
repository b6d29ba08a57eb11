//! App environments with rkt's precedence: the inherited environment (`--inherit-env`) <
//! the image's < `--set-env-file` < `--set-env` < the app's `--environment`; then the
//! executor's own variables (`PATH` if unset, `AC_APP_NAME`, `AC_METADATA_URL`, `container`).

use crate::error::{Result, RunnerError};

/// appc's default `PATH`.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub type Vars = Vec<(String, String)>;

/// Merge layers of variables, later layers winning; a variable keeps the position where it
/// first appeared.
pub fn merge(layers: &[&Vars]) -> Vars {
    let mut out: Vars = Vec::new();
    for layer in layers {
        for (k, v) in layer.iter() {
            match out.iter_mut().find(|(ok, _)| ok == k) {
                Some(slot) => slot.1 = v.clone(),
                None => out.push((k.clone(), v.clone())),
            }
        }
    }
    out
}

/// Parse `NAME=VALUE`.
pub fn parse_assignment(s: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if rkt_store::schema::valid_env_name(k) => Ok((k.into(), v.into())),
        _ => Err(RunnerError::Invalid(format!(
            "environment variable {s:?} must be NAME=VALUE with NAME made of letters, digits, '_', '.' and '-'"
        ))),
    }
}

/// Parse an env file (`--set-env-file`): `NAME=VALUE` lines; blank lines and lines starting
/// with `#` or `;` are ignored.
pub fn parse_env_file(text: &str, path: &str) -> Result<Vars> {
    let mut out = Vars::new();
    for (n, line) in text.lines().enumerate() {
        let l = line.trim_start();
        if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
            continue;
        }
        let kv = parse_assignment(l.trim_end_matches('\r'))
            .map_err(|e| RunnerError::Invalid(format!("{path}:{}: {e}", n + 1)))?;
        out.push(kv);
    }
    Ok(out)
}

/// The final environment of an app process (and its event handlers), as `NAME=VALUE`.
pub fn runtime_env(manifest_env: &Vars, app_name: &str, metadata_url: Option<&str>) -> Vec<String> {
    let mut executor: Vars = vec![
        ("AC_APP_NAME".into(), app_name.into()),
        ("container".into(), "rkt".into()),
    ];
    if let Some(url) = metadata_url {
        executor.push(("AC_METADATA_URL".into(), url.into()));
    }
    let path_default: Vars = vec![("PATH".into(), DEFAULT_PATH.into())];
    merge(&[&path_default, manifest_env, &executor])
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(pairs: &[(&str, &str)]) -> Vars {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn precedence() {
        let inherited = v(&[("A", "inherit"), ("B", "inherit"), ("HOME", "/root")]);
        let image = v(&[("A", "image"), ("B", "image"), ("C", "image")]);
        let file = v(&[("B", "file"), ("C", "file")]);
        let set = v(&[("C", "set")]);
        let app = v(&[("D", "app")]);
        let m = merge(&[&inherited, &image, &file, &set, &app]);
        assert_eq!(
            m,
            v(&[
                ("A", "image"),
                ("B", "file"),
                ("HOME", "/root"),
                ("C", "set"),
                ("D", "app")
            ])
        );
        let rt = runtime_env(&v(&[("PATH", "/x"), ("container", "no")]), "web", None);
        assert_eq!(rt, vec!["PATH=/x", "container=rkt", "AC_APP_NAME=web"]);
        let rt = runtime_env(&Vars::new(), "web", Some("http://m/x"));
        assert!(rt.contains(&format!("PATH={DEFAULT_PATH}")));
        assert!(rt.contains(&"AC_METADATA_URL=http://m/x".to_string()));
    }

    #[test]
    fn env_files() {
        let f = parse_env_file("# c\n; c\n\nA=1\nB=x=y\n", "f").unwrap();
        assert_eq!(f, v(&[("A", "1"), ("B", "x=y")]));
        let e = parse_env_file("A=1\nnot an assignment\n", "f")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("f:2:"), "{e}");
    }
}
