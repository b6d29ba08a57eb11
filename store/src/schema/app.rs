//! The `app` object of an image manifest (also used as a pod app override).

use std::collections::BTreeMap;

use serde_json::Value;

use super::isolator::check_app_isolators;
use super::json::{array_of, map_value, FromJson, Obj, ObjBuilder, ToJson};
use super::{AcName, Isolator, SchemaError};

/// The command line of an app or event handler (no validation, as in appc).
pub type Exec = Vec<String>;

/// An event handler: `pre-start` or `post-stop`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventHandler {
    /// `pre-start` or `post-stop`.
    pub name: String,
    /// What to run.
    pub exec: Exec,
}

impl FromJson for EventHandler {
    fn from_json(v: &Value, path: &str) -> Result<Self, SchemaError> {
        let o = Obj::new(v, path)?;
        let name = o.string("name")?;
        match name.as_str() {
            "pre-start" | "post-stop" => {}
            "" => {
                return Err(SchemaError::rule(
                    o.path("name"),
                    "eventHandler name must be set",
                ))
            }
            _ => {
                let rule = "eventHandler name must be \"pre-start\" or \"post-stop\"";
                return Err(SchemaError::invalid(o.path("name"), &name, rule));
            }
        }
        Ok(EventHandler {
            name,
            exec: o.strings("exec")?,
        })
    }
}

impl ToJson for EventHandler {
    fn to_json_value(&self) -> Value {
        ObjBuilder::new()
            .put("name", self.name.as_str())
            .put("exec", self.exec.clone())
            .build()
    }
}

/// One environment variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentVariable {
    /// Variable name, `^[A-Za-z_][A-Za-z_0-9.-]*$`.
    pub name: String,
    /// Variable value.
    pub value: String,
}

/// Checks an environment variable name: `^[A-Za-z_][A-Za-z_0-9.-]*$`.
pub fn valid_env_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || matches!(x, '_' | '.' | '-'))
}

impl FromJson for EnvironmentVariable {
    fn from_json(v: &Value, path: &str) -> Result<Self, SchemaError> {
        let o = Obj::new(v, path)?;
        let name = o.string("name")?;
        if !valid_env_name(&name) {
            let rule = "environment variable name must match ^[A-Za-z_][A-Za-z_0-9.-]*$";
            return Err(SchemaError::invalid(o.path("name"), &name, rule));
        }
        Ok(EnvironmentVariable {
            name,
            value: o.string("value")?,
        })
    }
}

impl ToJson for EnvironmentVariable {
    fn to_json_value(&self) -> Value {
        ObjBuilder::new()
            .put("name", self.name.as_str())
            .put("value", self.value.as_str())
            .build()
    }
}

/// An app's environment: valid, unique variable names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment(Vec<EnvironmentVariable>);

impl Environment {
    /// Validates a list of variables.
    pub fn new(vars: Vec<EnvironmentVariable>) -> Result<Self, SchemaError> {
        Self::checked(vars, "environment")
    }

    fn checked(vars: Vec<EnvironmentVariable>, path: &str) -> Result<Self, SchemaError> {
        if let Some((i, v)) = vars
            .iter()
            .enumerate()
            .find(|(i, v)| !valid_env_name(&v.name) || vars[..*i].iter().any(|w| w.name == v.name))
        {
            let rule = if valid_env_name(&v.name) {
                format!("duplicate environment variable of name {:?}", v.name)
            } else {
                format!("environment variable name {:?} is not valid", v.name)
            };
            return Err(SchemaError::rule(format!("{path}[{i}]"), rule));
        }
        Ok(Environment(vars))
    }

    /// The value of variable `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|v| v.name == name)
            .map(|v| v.value.as_str())
    }

    /// The variables, in order.
    pub fn as_slice(&self) -> &[EnvironmentVariable] {
        &self.0
    }
}

impl std::ops::Deref for Environment {
    type Target = [EnvironmentVariable];
    fn deref(&self) -> &[EnvironmentVariable] {
        &self.0
    }
}

impl FromJson for Environment {
    fn from_json(v: &Value, path: &str) -> Result<Self, SchemaError> {
        Self::checked(super::json::list_of(v, path)?, path)
    }
}

/// A mount point declared by an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPoint {
    /// Name, matched against pod volumes/mounts.
    pub name: AcName,
    /// Path inside the app (not checked for absoluteness, as in appc).
    pub path: String,
    /// Whether the mount is read-only.
    pub read_only: bool,
}

pub(crate) fn required_name(o: &Obj<'_>, key: &str) -> Result<AcName, SchemaError> {
    o.opt::<AcName>(key)?
        .ok_or_else(|| SchemaError::rule(o.path(key), format!("{key} must be set")))
}

impl FromJson for MountPoint {
    fn from_json(v: &Value, path: &str) -> Result<Self, SchemaError> {
        let o = Obj::new(v, path)?;
        let name = required_name(&o, "name")?;
        let p = o.string("path")?;
        if p.is_empty() {
            return Err(SchemaError::rule(o.path("path"), "path must be set"));
        }
        Ok(MountPoint {
            name,
            path: p,
            read_only: o.bool("readOnly")?.unwrap_or(false),
        })
    }
}

impl ToJson for MountPoint {
    fn to_json_value(&self) -> Value {
        ObjBuilder::new()
            .put("name", self.name.as_str())
            .put("path", self.path.as_str())
            .put_unless(!self.read_only, "readOnly", || Value::Bool(true))
            .build()
    }
}

/// A port an app listens on: `port..port+count-1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// Port name.
    pub name: AcName,
    /// Protocol (free form, e.g. `tcp`).
    pub protocol: String,
    /// First port number, 1..=65535.
    pub port: u64,
    /// Number of ports; a 0 in JSON becomes 1.
    pub count: u64,
    /// Whether the app is socket-activated.
    pub socket_activated: bool,
}

impl Port {
    /// Checks the range rules (`1 <= port <= 65535`, `port + count <= 65536`).
    pub fn check(&self, path: &str) -> Result<(), SchemaError> {
        if !(1..=65535).contains(&self.port) {
            let rule = format!("port must be in 1-65535 range, got {}", self.port);
            return Err(SchemaError::rule(path, rule));
        }
        if self.port.saturating_add(self.count) > 65536 {
            return Err(SchemaError::rule(
                path,
                "end of port range must be in 1-65535 range",
            ));
        }
        Ok(())
    }
}

impl FromJson for Port {
    fn from_json(v: &Value, path: &str) -> Result<Self, SchemaError> {
        let o = Obj::new(v, path)?;
        let mut p = Port {
            name: required_name(&o, "name")?,
            protocol: o.string("protocol")?,
            port: o.u64("port")?.unwrap_or(0),
            count: o.u64("count")?.unwrap_or(0),
            socket_activated: o.bool("socketActivated")?.unwrap_or(false),
        };
        p.check(path)?;
        p.count = p.count.max(1);
        Ok(p)
    }
}

impl ToJson for Port {
    fn to_json_value(&self) -> Value {
        ObjBuilder::new()
            .put("name", self.name.as_str())
            .put("protocol", self.protocol.as_str())
            .put("port", self.port)
            .put("count", self.count)
            .put("socketActivated", self.socket_activated)
            .build()
    }
}

/// The `app` section: what to run and how.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct App {
    /// Command line.
    pub exec: Exec,
    /// Event handlers, at most one per name.
    pub event_handlers: Vec<EventHandler>,
    /// User (name, number or path), kept as a string.
    pub user: String,
    /// Group (name, number or path), kept as a string.
    pub group: String,
    /// Supplementary group IDs.
    pub supplementary_gids: Vec<i64>,
    /// Absolute working directory, empty for `/`.
    pub working_directory: String,
    /// Environment.
    pub environment: Environment,
    /// Mount points.
    pub mount_points: Vec<MountPoint>,
    /// Ports.
    pub ports: Vec<Port>,
    /// Isolators.
    pub isolators: Vec<Isolator>,
    /// User annotations (free-form map).
    pub user_annotations: BTreeMap<String, String>,
    /// User labels (free-form map).
    pub user_labels: BTreeMap<String, String>,
}

impl App {
    fn read(o: &Obj<'_>) -> Result<Self, SchemaError> {
        Ok(App {
            exec: o.strings("exec")?,
            event_handlers: o.list("eventHandlers")?,
            user: o.string("user")?,
            group: o.string("group")?,
            supplementary_gids: gids(o)?,
            working_directory: o.string("workingDirectory")?,
            environment: o.opt("environment")?.unwrap_or_default(),
            mount_points: o.list("mountPoints")?,
            ports: o.list("ports")?,
            isolators: o.list("isolators")?,
            user_annotations: o.str_map("userAnnotations")?,
            user_labels: o.str_map("userLabels")?,
        })
    }

    /// Checks the app-level rules (user/group set, absolute working directory, unique event
    /// handlers, isolator set rules).
    pub fn check(&self, path: &str) -> Result<(), SchemaError> {
        let at = |k: &str| super::json::join(path, k);
        if self.user.is_empty() {
            return Err(SchemaError::rule(at("user"), "user is required"));
        }
        if self.group.is_empty() {
            return Err(SchemaError::rule(at("group"), "group is required"));
        }
        let wd = &self.working_directory;
        if !wd.is_empty() && !wd.starts_with('/') {
            let rule = "workingDirectory must be an absolute path";
            return Err(SchemaError::invalid(at("workingDirectory"), wd, rule));
        }
        for (i, e) in self.event_handlers.iter().enumerate() {
            if self.event_handlers[..i].iter().any(|f| f.name == e.name) {
                let rule = format!("only one eventHandler of name {:?} allowed", e.name);
                return Err(SchemaError::rule(at("eventHandlers"), rule));
            }
        }
        check_app_isolators(&self.isolators, &at("isolators"))
    }
}

fn gids(o: &Obj<'_>) -> Result<Vec<i64>, SchemaError> {
    let path = o.path("supplementaryGIDs");
    let Some(v) = o.get("supplementaryGIDs") else {
        return Ok(Vec::new());
    };
    let items = v
        .as_array()
        .ok_or_else(|| super::json::type_err(path.clone(), "an array of integers"))?;
    items
        .iter()
        .enumerate()
        .map(|(i, g)| {
            g.as_i64()
                .ok_or_else(|| super::json::type_err(format!("{path}[{i}]"), "an integer"))
        })
        .collect()
}

impl FromJson for App {
    fn from_json(v: &Value, path: &str) -> Result<Self, SchemaError> {
        let app = App::read(&Obj::new(v, path)?)?;
        app.check(path)?;
        Ok(app)
    }
}

impl ToJson for App {
    fn to_json_value(&self) -> Value {
        let env: Vec<Value> = self.environment.iter().map(ToJson::to_json_value).collect();
        ObjBuilder::new()
            .put("exec", self.exec.clone())
            .put_unless(self.event_handlers.is_empty(), "eventHandlers", || {
                array_of(&self.event_handlers)
            })
            .put("user", self.user.as_str())
            .put("group", self.group.as_str())
            .put_unless(
                self.supplementary_gids.is_empty(),
                "supplementaryGIDs",
                || self.supplementary_gids.clone().into(),
            )
            .put_unless(
                self.working_directory.is_empty(),
                "workingDirectory",
                || self.working_directory.as_str().into(),
            )
            .put_unless(env.is_empty(), "environment", || Value::Array(env.clone()))
            .put_unless(self.mount_points.is_empty(), "mountPoints", || {
                array_of(&self.mount_points)
            })
            .put_unless(self.ports.is_empty(), "ports", || array_of(&self.ports))
            .put_unless(self.isolators.is_empty(), "isolators", || {
                array_of(&self.isolators)
            })
            .put_unless(self.user_annotations.is_empty(), "userAnnotations", || {
                map_value(&self.user_annotations)
            })
            .put_unless(self.user_labels.is_empty(), "userLabels", || {
                map_value(&self.user_labels)
            })
            .build()
    }
}
