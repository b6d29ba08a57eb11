//! Docker/OCI image config to appc image manifest, as docker2aci converts v2.2 and OCI images
//! (docs/docker-images.md lists where this deliberately differs: volume name suffixes are
//! deterministic, Docker labels become userLabels).

use serde_json::{json, Map, Value};

use crate::error::{Result, StoreError};
use crate::schema::{check_os_arch, valid_env_name, AcIdentifier, AcName, ImageManifest};

/// The registry docker2aci names Docker Hub images after.
pub const DOCKER_HUB: &str = "registry-1.docker.io";

/// A platform, as image indexes and configs name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Default for Platform {
    fn default() -> Self {
        Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }
    }
}

impl Platform {
    /// Parses `OS/ARCH[/VARIANT]` as Docker writes platforms (`linux/amd64`, `linux/arm/v7`).
    pub fn parse(s: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok =
            |p: &&str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, variant] if ok(os) && ok(arch) && ok(variant) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(variant.to_string()),
            }),
            _ => Err(format!(
                "invalid platform {s:?}: give OS/ARCH or OS/ARCH/VARIANT, e.g. linux/amd64 or linux/arm/v7"
            )),
        }
    }

    /// The appc `os` and `arch` labels of images of this platform, if appc has names for it.
    pub fn appc_labels(&self) -> Option<(String, String)> {
        appc_os_arch(&self.os, &self.architecture, self.variant.as_deref())
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// What is known about an image being converted.
#[derive(Debug, Clone)]
pub struct DockerImage {
    /// Registry host (`registry-1.docker.io`, `127.0.0.1:5000`), or `""` for an archive.
    pub registry: String,
    /// Repository, e.g. `library/nginx`.
    pub repository: String,
    /// Tag, None when pulled by digest.
    pub tag: Option<String>,
    /// The image argument as given.
    pub original_name: String,
    /// Digest of the image manifest.
    pub manifest_hash: Option<String>,
    /// Digest of the top layer.
    pub top_layer: Option<String>,
    /// The image config (`application/vnd.oci.image.config.v1+json` or Docker's).
    pub config: Value,
}

fn bad(msg: String) -> StoreError {
    StoreError::InvalidImage(msg)
}

/// The appc name of a Docker image: `REGISTRY/REPOSITORY`, sanitized
/// (`registry-1.docker.io/library/nginx`, `127.0.0.1_5000/test/img`).
pub fn aci_name(registry: &str, repository: &str) -> Result<String> {
    let raw = if registry.is_empty() {
        repository.to_string()
    } else {
        format!("{registry}/{repository}")
    };
    Ok(AcIdentifier::sanitize(&raw)?.as_str().to_string())
}

/// appc os/arch for a Docker platform (appc's `ToAppcOSArch`); None if appc has no name for it.
pub fn appc_os_arch(os: &str, arch: &str, variant: Option<&str>) -> Option<(String, String)> {
    let arch = match (arch, variant) {
        ("amd64", _) => "amd64",
        ("386", _) => "i386",
        ("arm64", _) => "aarch64",
        ("arm", Some("v6")) => "armv6l",
        ("arm", _) => "armv7l",
        ("ppc64", _) => "ppc64",
        ("ppc64le", _) => "ppc64le",
        ("s390x", _) => "s390x",
        _ => return None,
    };
    check_os_arch(Some(os), Some(arch)).ok()?;
    Some((os.to_string(), arch.to_string()))
}

/// Docker's `User` as appc user and group (docker2aci's `parseDockerUser`).
pub fn parse_user(user: &str) -> (String, String) {
    if user.is_empty() {
        return ("0".into(), "0".into());
    }
    let mut parts = user.split(':');
    let u = parts.next().unwrap_or_default().to_string();
    match parts.next() {
        Some(g) => (u, g.to_string()),
        None => (u.clone(), u),
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn keys(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_object)
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

fn environment(cfg: Option<&Value>) -> Result<Vec<Value>> {
    let mut vars: Vec<(String, String)> = Vec::new();
    for kv in strings(cfg.and_then(|c| c.get("Env"))) {
        let Some((name, value)) = kv.split_once('=') else {
            continue;
        };
        if !valid_env_name(name) {
            return Err(bad(format!(
                "the image's environment variable name {name:?} is not valid in an appc manifest"
            )));
        }
        match vars.iter_mut().find(|(n, _)| n == name) {
            Some(v) => v.1 = value.to_string(),
            None => vars.push((name.to_string(), value.to_string())),
        }
    }
    Ok(vars
        .into_iter()
        .map(|(n, v)| json!({"name": n, "value": v}))
        .collect())
}

/// Mount points from `Volumes`, named `volume-<path>`; names that collide get `-1`, `-2`, …
/// in path order (docker2aci's suffixes depended on Go's random map order).
pub fn mount_points(paths: &[String]) -> Result<Vec<Value>> {
    let mut paths = paths.to_vec();
    paths.sort();
    let mut used: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for path in paths {
        let base = AcName::sanitize(&format!("volume/{}", path.trim_start_matches('/')))?
            .as_str()
            .to_string();
        let mut name = base.clone();
        let mut n = 0;
        while used.contains(&name) {
            n += 1;
            name = format!("{base}-{n}");
        }
        used.push(name.clone());
        out.push(json!({"name": name, "path": path}));
    }
    out.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok(out)
}

/// Ports from `ExposedPorts`: `80/tcp` → `80-tcp`, a bare `80` → `80` (tcp).
pub fn ports(specs: &[String]) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for spec in specs {
        let (port, proto, name) = match spec.split_once('/') {
            Some((p, proto)) => (p, proto, format!("{p}-{proto}")),
            None => (spec.as_str(), "tcp", spec.clone()),
        };
        let port: u16 = port.parse().ok().filter(|p| *p > 0).ok_or_else(|| {
            bad(format!(
                "the image exposes port {spec:?}, which is not a port number"
            ))
        })?;
        let name = AcName::sanitize(&name)?.as_str().to_string();
        out.push(json!({"name": name, "protocol": proto, "port": port}));
    }
    out.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok(out)
}

fn app(cfg: &Value) -> Result<Value> {
    let mut exec = strings(cfg.get("Entrypoint"));
    exec.extend(strings(cfg.get("Cmd")));
    let user = cfg.get("User").and_then(Value::as_str).unwrap_or_default();
    let (user, group) = parse_user(user);
    let mut app = Map::new();
    if !exec.is_empty() {
        app.insert("exec".into(), json!(exec));
    }
    app.insert("user".into(), json!(user));
    app.insert("group".into(), json!(group));
    if let Some(wd) = cfg.get("WorkingDir").and_then(Value::as_str) {
        if !wd.is_empty() {
            app.insert("workingDirectory".into(), json!(wd));
        }
    }
    let env = environment(Some(cfg))?;
    if !env.is_empty() {
        app.insert("environment".into(), json!(env));
    }
    let mps = mount_points(&keys(cfg.get("Volumes")))?;
    if !mps.is_empty() {
        app.insert("mountPoints".into(), json!(mps));
    }
    let ports = ports(&keys(cfg.get("ExposedPorts")))?;
    if !ports.is_empty() {
        app.insert("ports".into(), json!(ports));
    }
    if let Some(labels) = cfg.get("Labels").and_then(Value::as_object) {
        let labels: Map<String, Value> = labels
            .iter()
            .filter(|(_, v)| v.is_string())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !labels.is_empty() {
            app.insert("userLabels".into(), Value::Object(labels));
        }
    }
    Ok(Value::Object(app))
}

/// The appc image manifest of a Docker/OCI image (JSON bytes, validated).
pub fn appc_manifest(img: &DockerImage) -> Result<Vec<u8>> {
    let config = &img.config;
    if !config.is_object() {
        return Err(bad("the image config is not a JSON object".into()));
    }
    let mut labels = Vec::new();
    if let Some(tag) = &img.tag {
        labels.push(json!({"name": "version", "value": tag}));
    }
    let os = config.get("os").and_then(Value::as_str).unwrap_or("linux");
    let arch = config
        .get("architecture")
        .and_then(Value::as_str)
        .unwrap_or("amd64");
    let variant = config.get("variant").and_then(Value::as_str);
    if let Some((os, arch)) = appc_os_arch(os, arch, variant) {
        labels.push(json!({"name": "os", "value": os}));
        labels.push(json!({"name": "arch", "value": arch}));
    }
    let mut annotations = Vec::new();
    let mut note = |name: &str, value: Option<String>| {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            annotations.push(json!({"name": name, "value": v}));
        }
    };
    let text = |k: &str| config.get(k).and_then(Value::as_str).map(String::from);
    let cfg = config.get("config").filter(|c| c.is_object());
    note("author", text("author"));
    note("created", text("created"));
    note(
        "appc.io/docker/originalname",
        Some(img.original_name.clone()),
    );
    note("appc.io/docker/registryurl", Some(img.registry.clone()));
    note("appc.io/docker/repository", Some(img.repository.clone()));
    note("appc.io/docker/imageid", img.top_layer.clone());
    note("appc.io/docker/manifesthash", img.manifest_hash.clone());
    let json_list = |k: &str| {
        cfg.and_then(|c| c.get(k))
            .filter(|v| v.is_array())
            .map(|v| v.to_string())
    };
    note("appc.io/docker/entrypoint", json_list("Entrypoint"));
    note("appc.io/docker/cmd", json_list("Cmd"));
    let mut m = Map::new();
    m.insert("acKind".into(), json!("ImageManifest"));
    m.insert("acVersion".into(), json!("0.8.11"));
    m.insert(
        "name".into(),
        json!(aci_name(&img.registry, &img.repository)?),
    );
    if !labels.is_empty() {
        m.insert("labels".into(), json!(labels));
    }
    if let Some(cfg) = cfg {
        m.insert("app".into(), app(cfg)?);
    }
    if !annotations.is_empty() {
        m.insert("annotations".into(), json!(annotations));
    }
    let bytes = serde_json::to_vec(&Value::Object(m))
        .map_err(|e| bad(format!("encoding the image manifest: {e}")))?;
    ImageManifest::parse(&bytes)?.validate()?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_like_docker2aci() {
        assert_eq!(parse_user(""), ("0".into(), "0".into()));
        assert_eq!(parse_user("nginx"), ("nginx".into(), "nginx".into()));
        assert_eq!(parse_user("1:2:3"), ("1".into(), "2".into()));
    }

    #[test]
    fn volumes_get_deterministic_names() {
        let v = mount_points(&[
            "/var/cache/nginx".into(),
            "/data".into(),
            "/var/cache-nginx".into(),
        ])
        .unwrap();
        let names: Vec<_> = v
            .iter()
            .map(|m| (m["name"].as_str().unwrap(), m["path"].as_str().unwrap()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("volume-data", "/data"),
                ("volume-var-cache-nginx", "/var/cache-nginx"),
                ("volume-var-cache-nginx-1", "/var/cache/nginx"),
            ]
        );
    }

    #[test]
    fn ports_like_docker2aci() {
        let p = ports(&[
            "80/tcp".into(),
            "443/tcp".into(),
            "53/udp".into(),
            "8080".into(),
        ])
        .unwrap();
        let names: Vec<_> = p.iter().map(|m| m["name"].as_str().unwrap()).collect();
        assert_eq!(names, vec!["443-tcp", "53-udp", "80-tcp", "8080"]);
        assert_eq!(p[3]["protocol"], "tcp");
        assert!(ports(&["http/tcp".into()]).is_err());
    }

    #[test]
    fn manifest_of_a_config() {
        let img = DockerImage {
            registry: DOCKER_HUB.into(),
            repository: "library/nginx".into(),
            tag: Some("latest".into()),
            original_name: "nginx".into(),
            manifest_hash: Some("sha256:ab".into()),
            top_layer: Some("sha256:cd".into()),
            config: json!({"os": "linux", "architecture": "arm64", "created": "2020-01-01T00:00:00Z",
                "config": {"Entrypoint": ["/bin/sh", "-c"], "Cmd": ["echo"], "Env": ["A=1", "B", "A=2"],
                           "WorkingDir": "/w", "User": "daemon", "Volumes": {"/data": {}},
                           "ExposedPorts": {"80/tcp": {}}}}),
        };
        let m: Value = serde_json::from_slice(&appc_manifest(&img).unwrap()).unwrap();
        assert_eq!(m["name"], "registry-1.docker.io/library/nginx");
        assert_eq!(
            m["labels"],
            json!([{"name":"version","value":"latest"},{"name":"os","value":"linux"},{"name":"arch","value":"aarch64"}])
        );
        assert_eq!(m["app"]["exec"], json!(["/bin/sh", "-c", "echo"]));
        assert_eq!(m["app"]["environment"], json!([{"name":"A","value":"2"}]));
        assert_eq!(m["app"]["user"], "daemon");
        assert_eq!(m["app"]["group"], "daemon");
        assert_eq!(
            m["app"]["mountPoints"],
            json!([{"name":"volume-data","path":"/data"}])
        );
        assert_eq!(
            m["app"]["ports"],
            json!([{"name":"80-tcp","protocol":"tcp","port":80}])
        );
        assert_eq!(
            m["annotations"][2],
            json!({"name":"appc.io/docker/registryurl","value":"registry-1.docker.io"})
        );
        assert_eq!(
            aci_name("127.0.0.1:5000", "test/img").unwrap(),
            "127.0.0.1_5000/test/img"
        );
    }
}
