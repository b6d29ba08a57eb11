//! The pod manifest and its parts.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::Value;

use super::app::required_name;
use super::image::check_kind;
use super::json::{array_of, map_value, parse_bytes, FromJson, Obj, ObjBuilder, ToJson};
use super::{
    AcIdentifier, AcKind, AcName, Annotations, App, ImageId, Isolator, Labels, Port, SchemaError,
    SemVer,
};

/// Default mode of an `empty` volume.
pub const EMPTY_VOLUME_DEFAULT_MODE: &str = "0755";

/// A pod volume: `host` (bind mount of `source`) or `empty` (fresh directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// Volume name.
    pub name: AcName,
    /// `host` or `empty`.
    pub kind: String,
    /// Absolute host path (`host` only).
    pub source: String,
    /// Read-only mount.
    pub read_only: Option<bool>,
    /// Recursive bind mount (`host` only).
    pub recursive: Option<bool>,
    /// Directory mode (`empty` only; defaults to `0755`).
    pub mode: Option<String>,
    /// Directory owner (`empty` only; defaults to 0).
    pub uid: Option<i64>,
    /// Directory group (`empty` only; defaults to 0).
    pub gid: Option<i64>,
}

impl Volume {
    /// Fills in the defaults of an `empty` volume (mode 0755, uid 0, gid 0).
    pub fn set_defaults(&mut self) {
        if self.kind == "empty" {
            self.mode
                .get_or_insert_with(|| EMPTY_VOLUME_DEFAULT_MODE.into());
            self.uid.get_or_insert(0);
            self.gid.get_or_insert(0);
        }
    }

    /// Checks the kind-specific rules.
    pub fn check(&self, path: &str) -> Result<(), SchemaError> {
        let err = |r: &str| Err(SchemaError::rule(path, r));
        match self.kind.as_str() {
            "empty" if !self.source.is_empty() => err("source for empty volume must be empty"),
            "empty" if self.mode.is_none() => err("mode for empty volume must be set"),
            "empty" if self.uid.is_none() => err("uid for empty volume must be set"),
            "empty" if self.gid.is_none() => err("gid for empty volume must be set"),
            "empty" => Ok(()),
            "host" if self.source.is_empty() => err("source for host volume cannot be empty"),
            "host" if self.mode.is_some() => err("mode for host volume cannot be set"),
            "host" if self.uid.is_some() => err("uid for host volume cannot be set"),
            "host" if self.gid.is_some() => err("gid for host volume cannot be set"),
            "host" if !self.source.starts_with('/') => {
                err("source for host volume must be absolute path")
            }
            "host" => Ok(()),
            _ => err("unrecognized volume kind: should be one of \"empty\", \"host\""),
        }
    }

    /// Parses rkt's `--volume` form: `NAME,kind=host,source=/abs,readOnly=true,recursive=true`
    /// or `NAME,kind=empty,mode=0755,uid=0,gid=0`.
    pub fn parse_cli(s: &str) -> Result<Volume, SchemaError> {
        let full = format!("name={s}");
        let mut seen: Vec<&str> = Vec::new();
        let mut vol = Volume {
            name: AcName::parse("x")?,
            kind: String::new(),
            source: String::new(),
            read_only: None,
            recursive: None,
            mode: None,
            uid: None,
            gid: None,
        };
        for part in full.split(',') {
            let Some((key, val)) = part.split_once('=') else {
                let rule = format!("parameter {part:?} has no value");
                return Err(SchemaError::invalid("volume", s, rule));
            };
            if seen.contains(&key) {
                let rule = format!("parameter {key} given more than once");
                return Err(SchemaError::invalid("volume", s, rule));
            }
            seen.push(key);
            vol.set_cli_param(key, val, s)?;
        }
        vol.set_defaults();
        vol.check("volume").map(|()| vol)
    }

    fn set_cli_param(&mut self, key: &str, val: &str, s: &str) -> Result<(), SchemaError> {
        let bad = |rule: &str| SchemaError::invalid(format!("volume {key}"), val, rule);
        match key {
            "name" => self.name = AcName::parse(val).map_err(|e| e.described_as("volume name"))?,
            "kind" => self.kind = val.to_string(),
            "source" => self.source = val.to_string(),
            "readOnly" => {
                self.read_only = Some(parse_go_bool(val).ok_or_else(|| bad("not a boolean"))?)
            }
            "recursive" => {
                self.recursive = Some(parse_go_bool(val).ok_or_else(|| bad("not a boolean"))?)
            }
            "mode" => self.mode = Some(val.to_string()),
            "uid" => self.uid = Some(val.parse().map_err(|_| bad("not an integer"))?),
            "gid" => self.gid = Some(val.parse().map_err(|_| bad("not an integer"))?),
            _ => {
                let rule = format!("unknown volume parameter {key:?}");
                return Err(SchemaError::invalid("volume", s, rule));
            }
        }
        Ok(())
    }
}

/// Parses a boolean like Go's `strconv.ParseBool`.
pub fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

impl std::fmt::Display for Volume {
    /// The `--volume` form, omitting `empty` defaults (as Go's `Volume.String`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{},kind={}", self.name, self.kind)?;
        if !self.source.is_empty() {
            write!(f, ",source={}", self.source)?;
        }
        if let Some(ro) = self.read_only {
            write!(f, ",readOnly={ro}")?;
        }
        if let Some(r) = self.recursive {
            write!(f, ",recursive={r}")?;
        }
        if let Some(m) = self
            .mode
            .as_deref()
            .filter(|m| *m != EMPTY_VOLUME_DEFAULT_MODE)
        {
            write!(f, ",mode={m}")?;
        }
        if let Some(u) = self.uid.filter(|u| *u != 0) {
            write!(f, ",uid={u}")?;
        }
        if let Some(g) = self.gid.filter(|g| *g != 0) {
            write!(f, ",gid={g}")?;
        }
        Ok(())
    }
}

impl FromJson for Volume {
    fn from_json(v: &Value, path: &str) -> Result<Self, SchemaError> {
        let o = Obj::new(v, path)?;
        let mut vol = Volume {
            name: required_name(&o, "name")?,
            kind: o.string("kind")?,
            source: o.string("source")?,
            read_only: o.bool("readOnly")?,
            recursive: o.bool("recursive")?,
            mode: o.str("mode")?.map(str::to_string),
            uid: o.i64("uid")?,
            gid: o.i64("gid")?,
        };
        vol.set_defaults();
        vol.check(path)?;
        Ok(vol)
    }
}

impl ToJson for Volume {
    fn to_json_value(&self) -> Value {
        ObjBuilder::new()
            .put("name", self.name.as_str())
            .put("kind", self.kind.as_str())
            .put_unless(self.source.is_empty(), "source", || {
                self.source.as_str().into()
            })
            .put_unless(self.read_only.is_none(), "readOnly", || {
                self.read_only.into()
            })
            .put_unless(self.recursive.is_none(), "recursive", || {
                self.recursive.into()
            })
            .put_unless(self.mode.is_none(), "mode", || self.mode.clone().into())
            .put_unless(self.uid.is_none(), "uid", || self.uid.into())
            .put_unless(self.gid.is_none(), "gid", || self.gid.into())
            .build()
    }
}

/// Where a pod app mounts a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Volume (or mount point) name.
    pub volume: AcName,
    /// Path inside the app.
    pub path: String,
    /// Inline volume overriding lookup by name.
    pub app_volume: Option<Volume>,
}

impl FromJson for Mount {
    fn from_json(v: &Value, path: &str) -> Result<Self, SchemaError> {
        let o = Obj::new(v, path)?;
        Ok(Mount {
            volume: required_name(&o, "volume")?,
            path: o.string("path")?,
            app_volume: o.opt("appVolume")?,
        })
    }
}

impl ToJson for Mount {
    fn to_json_value(&self) -> Value {
        ObjBuilder::new()
            .put("volume", self.volume.as_str())
            .put("path", self.path.as_str())
            .put_unless(self.app_volume.is_none(), "appVolume", || {
                self.app_volume.as_ref().map(Volume::to_json_value).into()
            })
            .build()
    }
}

/// The image a pod app runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuntimeImage {
    /// Image name.
    pub name: Option<AcIdentifier>,
    /// Image ID; absent in a pod template (not yet reified).
    pub id: Option<ImageId>,
    /// Labels to match.
    pub labels: Labels,
}

impl FromJson for RuntimeImage {
    fn from_json(v: &Value, path: &str) -> Result<Self, SchemaError> {
        let o = Obj::new(v, path)?;
        Ok(RuntimeImage {
            name: o.opt("name")?,
            id: o.opt("id")?,
            labels: o.opt("labels")?.unwrap_or_default(),
        })
    }
}

impl ToJson for RuntimeImage {
    fn to_json_value(&self) -> Value {
        ObjBuilder::new()
            .put_unless(self.name.is_none(), "name", || {
                self.name.as_ref().map(AcIdentifier::to_json_value).into()
            })
            .put_unless(self.id.is_none(), "id", || {
                self.id.as_ref().map(ImageId::to_json_value).into()
            })
            .put_unless(self.labels.is_empty(), "labels", || {
                self.labels.to_json_value()
            })
            .build()
    }
}

/// An app of a pod.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeApp {
    /// App name, unique in the pod.
    pub name: AcName,
    /// Image to run.
    pub image: RuntimeImage,
    /// Replaces the image's app wholesale if set.
    pub app: Option<App>,
    /// Mount the root filesystem read-only.
    pub read_only_root_fs: bool,
    /// Volume mounts.
    pub mounts: Vec<Mount>,
    /// Annotations, merged over the image's.
    pub annotations: Annotations,
}

impl FromJson for RuntimeApp {
    fn from_json(v: &Value, path: &str) -> Result<Self, SchemaError> {
        let o = Obj::new(v, path)?;
        Ok(RuntimeApp {
            name: required_name(&o, "name")?,
            image: o.opt("image")?.unwrap_or_default(),
            app: o.opt("app")?,
            read_only_root_fs: o.bool("readOnlyRootFS")?.unwrap_or(false),
            mounts: o.list("mounts")?,
            annotations: o.opt("annotations")?.unwrap_or_default(),
        })
    }
}

impl ToJson for RuntimeApp {
    fn to_json_value(&self) -> Value {
        ObjBuilder::new()
            .put("name", self.name.as_str())
            .put("image", self.image.to_json_value())
            .put_unless(self.app.is_none(), "app", || {
                self.app.as_ref().map(App::to_json_value).into()
            })
            .put_unless(!self.read_only_root_fs, "readOnlyRootFS", || true.into())
            .put_unless(self.mounts.is_empty(), "mounts", || array_of(&self.mounts))
            .put_unless(self.annotations.is_empty(), "annotations", || {
                self.annotations.to_json_value()
            })
            .build()
    }
}

/// A port of the pod exposed on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExposedPort {
    /// Port name (matches an app port).
    pub name: AcName,
    /// Host port.
    pub host_port: u64,
    /// Host address to bind.
    pub host_ip: Option<IpAddr>,
    /// Explicit pod port, overriding matching by name.
    pub pod_port: Option<Port>,
}

impl FromJson for ExposedPort {
    fn from_json(v: &Value, path: &str) -> Result<Self, SchemaError> {
        let o = Obj::new(v, path)?;
        let host_ip =
            match o.str("hostIP")? {
                None | Some("") => None,
                Some(s) => Some(s.parse().map_err(|_| {
                    SchemaError::invalid(o.path("hostIP"), s, "must be an IP address")
                })?),
            };
        Ok(ExposedPort {
            name: required_name(&o, "name")?,
            host_port: o.u64("hostPort")?.unwrap_or(0),
            host_ip,
            pod_port: o.opt("podPort")?,
        })
    }
}

impl ToJson for ExposedPort {
    fn to_json_value(&self) -> Value {
        ObjBuilder::new()
            .put("name", self.name.as_str())
            .put("hostPort", self.host_port)
            .put_unless(self.host_ip.is_none(), "hostIP", || {
                self.host_ip.map(|ip| ip.to_string()).into()
            })
            .put_unless(self.pod_port.is_none(), "podPort", || {
                self.pod_port.as_ref().map(Port::to_json_value).into()
            })
            .build()
    }
}

/// An appc pod manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct PodManifest {
    /// Spec version (appc's code does not require it on pods).
    pub ac_version: Option<SemVer>,
    /// Apps, with unique names.
    pub apps: Vec<RuntimeApp>,
    /// Volumes, with unique names.
    pub volumes: Vec<Volume>,
    /// Pod-level isolators (not subject to the app set rules).
    pub isolators: Vec<Isolator>,
    /// Pod annotations.
    pub annotations: Annotations,
    /// Exposed ports.
    pub ports: Vec<ExposedPort>,
    /// User annotations.
    pub user_annotations: BTreeMap<String, String>,
    /// User labels.
    pub user_labels: BTreeMap<String, String>,
}

impl PodManifest {
    /// Parses and fully validates a pod manifest.
    pub fn parse(bytes: &[u8]) -> Result<PodManifest, SchemaError> {
        Self::from_json(&parse_bytes(bytes)?, "")
    }

    /// Checks a manifest built in code against every rule `parse` applies (as Go's
    /// `MarshalJSON` does before writing).
    pub fn validate(&self) -> Result<(), SchemaError> {
        Self::from_json(&self.to_json_value(), "").map(|_| ())
    }

    /// Compact JSON, fields in appc order.
    pub fn to_json(&self) -> String {
        self.to_json_value().to_string()
    }

    /// Indented JSON, fields in appc order.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(&self.to_json_value()).unwrap_or_default()
    }

    /// The app called `name`.
    pub fn app(&self, name: &str) -> Option<&RuntimeApp> {
        self.apps.iter().find(|a| a.name.as_str() == name)
    }

    fn check(&self) -> Result<(), SchemaError> {
        for (i, a) in self.apps.iter().enumerate() {
            if self.apps[..i].iter().any(|b| b.name == a.name) {
                let rule = format!("duplicate app name {:?}", a.name.as_str());
                return Err(SchemaError::rule(format!("apps[{i}].name"), rule));
            }
        }
        for (i, v) in self.volumes.iter().enumerate() {
            if self.volumes[..i].iter().any(|w| w.name == v.name) {
                let rule = format!("duplicate volume name {:?}", v.name.as_str());
                return Err(SchemaError::rule(format!("volumes[{i}].name"), rule));
            }
        }
        Ok(())
    }
}

impl FromJson for PodManifest {
    fn from_json(v: &Value, path: &str) -> Result<Self, SchemaError> {
        let o = Obj::new(v, path)?;
        check_kind(&o, AcKind::PodManifest)?;
        let pod = PodManifest {
            ac_version: o.opt("acVersion")?,
            apps: o.list("apps")?,
            volumes: o.list("volumes")?,
            isolators: o.list("isolators")?,
            annotations: o.opt("annotations")?.unwrap_or_default(),
            ports: o.list("ports")?,
            user_annotations: o.str_map("userAnnotations")?,
            user_labels: o.str_map("userLabels")?,
        };
        pod.check()?;
        Ok(pod)
    }
}

impl ToJson for PodManifest {
    fn to_json_value(&self) -> Value {
        ObjBuilder::new()
            .put_unless(self.ac_version.is_none(), "acVersion", || {
                self.ac_version.as_ref().map(|v| v.to_string()).into()
            })
            .put("acKind", AcKind::PodManifest.as_str())
            .put("apps", array_of(&self.apps))
            .put("volumes", array_of(&self.volumes))
            .put("isolators", array_of(&self.isolators))
            .put("annotations", self.annotations.to_json_value())
            .put("ports", array_of(&self.ports))
            .put_unless(self.user_annotations.is_empty(), "userAnnotations", || {
                map_value(&self.user_annotations)
            })
            .put_unless(self.user_labels.is_empty(), "userLabels", || {
                map_value(&self.user_labels)
            })
            .build()
    }
}
