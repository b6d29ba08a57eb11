//! Labels and annotations: lists of `{name, value}` with unique names.

use serde_json::Value;

use super::json::{list_of, FromJson, Obj, ObjBuilder, ToJson};
use super::types::{check_date, check_url};
use super::{AcIdentifier, SchemaError};

/// The os/arch pairs appc's code accepts (`ValidOSArch`); linux/arm64 is not one of them.
pub const VALID_OS_ARCH: &[(&str, &[&str])] = &[
    (
        "linux",
        &[
            "amd64",
            "i386",
            "aarch64",
            "aarch64_be",
            "armv6l",
            "armv7l",
            "armv7b",
            "ppc64",
            "ppc64le",
            "s390x",
        ],
    ),
    ("freebsd", &["amd64", "i386", "arm"]),
    ("darwin", &["x86_64", "i386"]),
];

/// One label.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Label {
    /// Label name.
    pub name: AcIdentifier,
    /// Label value.
    pub value: String,
}

/// One annotation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Annotation {
    /// Annotation name.
    pub name: AcIdentifier,
    /// Annotation value.
    pub value: String,
}

fn name_value(v: &Value, path: &str) -> Result<(AcIdentifier, String), SchemaError> {
    let o = Obj::new(v, path)?;
    let name = o
        .opt::<AcIdentifier>("name")?
        .ok_or_else(|| SchemaError::rule(o.path("name"), "name must be set"))?;
    Ok((name, o.string("value")?))
}

fn name_value_json(name: &AcIdentifier, value: &str) -> Value {
    ObjBuilder::new()
        .put("name", name.as_str())
        .put("value", value)
        .build()
}

impl FromJson for Label {
    fn from_json(v: &Value, path: &str) -> Result<Self, SchemaError> {
        let (name, value) = name_value(v, path)?;
        Ok(Label { name, value })
    }
}

impl ToJson for Label {
    fn to_json_value(&self) -> Value {
        name_value_json(&self.name, &self.value)
    }
}

impl FromJson for Annotation {
    fn from_json(v: &Value, path: &str) -> Result<Self, SchemaError> {
        let (name, value) = name_value(v, path)?;
        Ok(Annotation { name, value })
    }
}

impl ToJson for Annotation {
    fn to_json_value(&self) -> Value {
        name_value_json(&self.name, &self.value)
    }
}

fn find_dup<'a>(names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let mut seen = std::collections::HashSet::new();
    names.into_iter().find(|n| !seen.insert(*n))
}

/// Checks the os/arch whitelist; only applies when an `os` label exists.
pub fn check_os_arch(os: Option<&str>, arch: Option<&str>) -> Result<(), String> {
    let Some(os) = os else { return Ok(()) };
    let Some((_, archs)) = VALID_OS_ARCH.iter().find(|(o, _)| *o == os) else {
        let oses: Vec<&str> = VALID_OS_ARCH.iter().map(|(o, _)| *o).collect();
        return Err(format!("bad os {os:?} (must be one of: {oses:?})"));
    };
    match arch {
        Some(a) if !archs.contains(&a) => Err(format!(
            "bad arch {a:?} for {os} (must be one of: {archs:?})"
        )),
        _ => Ok(()),
    }
}

/// A validated list of labels: no `name` label, no duplicates, a valid os/arch pair.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Labels(Vec<Label>);

impl Labels {
    /// Validates a list of labels.
    pub fn new(labels: Vec<Label>) -> Result<Self, SchemaError> {
        Self::checked(labels, "labels")
    }

    fn checked(labels: Vec<Label>, path: &str) -> Result<Self, SchemaError> {
        if labels.iter().any(|l| l.name.as_str() == "name") {
            return Err(SchemaError::rule(path, r#"invalid label name: "name""#));
        }
        if let Some(d) = find_dup(labels.iter().map(|l| l.name.as_str())) {
            return Err(SchemaError::rule(
                path,
                format!("duplicate labels of name {d:?}"),
            ));
        }
        let l = Labels(labels);
        check_os_arch(l.get("os"), l.get("arch")).map_err(|e| SchemaError::rule(path, e))?;
        Ok(l)
    }

    /// Builds labels from `(name, value)` pairs, validating names and the list.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, SchemaError> {
        let labels = pairs
            .into_iter()
            .map(|(n, v)| {
                Ok(Label {
                    name: AcIdentifier::parse(n).map_err(|e| e.described_as("label name"))?,
                    value: v.to_string(),
                })
            })
            .collect::<Result<Vec<_>, SchemaError>>()?;
        Self::new(labels)
    }

    /// The value of the label called `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|l| l.name.as_str() == name)
            .map(|l| l.value.as_str())
    }

    /// The labels, in order.
    pub fn as_slice(&self) -> &[Label] {
        &self.0
    }

    /// The labels, in order.
    pub fn into_vec(self) -> Vec<Label> {
        self.0
    }
}

impl std::ops::Deref for Labels {
    type Target = [Label];
    fn deref(&self) -> &[Label] {
        &self.0
    }
}

impl FromJson for Labels {
    fn from_json(v: &Value, path: &str) -> Result<Self, SchemaError> {
        Self::checked(list_of(v, path)?, path)
    }
}

impl ToJson for Labels {
    fn to_json_value(&self) -> Value {
        super::json::array_of(&self.0)
    }
}

type ValueCheck = fn(&str) -> Result<(), String>;

/// A validated list of annotations: unique names; `created` is RFC 3339,
/// `homepage` and `documentation` are http(s) URLs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Annotations(Vec<Annotation>);

impl Annotations {
    /// Validates a list of annotations.
    pub fn new(annotations: Vec<Annotation>) -> Result<Self, SchemaError> {
        Self::checked(annotations, "annotations")
    }

    fn checked(list: Vec<Annotation>, path: &str) -> Result<Self, SchemaError> {
        if let Some(d) = find_dup(list.iter().map(|a| a.name.as_str())) {
            let rule = format!("duplicate annotations of name {d:?}");
            return Err(SchemaError::rule(path, rule));
        }
        let a = Annotations(list);
        let checks: [(&str, ValueCheck); 3] = [
            ("created", check_date),
            ("homepage", check_url),
            ("documentation", check_url),
        ];
        for (name, check) in checks {
            if let Some(v) = a.get(name) {
                check(v).map_err(|rule| {
                    SchemaError::invalid(format!("{path} \"{name}\" value"), v, rule)
                })?;
            }
        }
        Ok(a)
    }

    /// Builds annotations from `(name, value)` pairs, validating names and the list.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, SchemaError> {
        let list = pairs
            .into_iter()
            .map(|(n, v)| {
                Ok(Annotation {
                    name: AcIdentifier::parse(n).map_err(|e| e.described_as("annotation name"))?,
                    value: v.to_string(),
                })
            })
            .collect::<Result<Vec<_>, SchemaError>>()?;
        Self::new(list)
    }

    /// The value of the annotation called `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|a| a.name.as_str() == name)
            .map(|a| a.value.as_str())
    }

    /// The annotations, in order.
    pub fn as_slice(&self) -> &[Annotation] {
        &self.0
    }

    /// The annotations, in order.
    pub fn into_vec(self) -> Vec<Annotation> {
        self.0
    }
}

impl std::ops::Deref for Annotations {
    type Target = [Annotation];
    fn deref(&self) -> &[Annotation] {
        &self.0
    }
}

impl FromJson for Annotations {
    fn from_json(v: &Value, path: &str) -> Result<Self, SchemaError> {
        Self::checked(list_of(v, path)?, path)
    }
}

impl ToJson for Annotations {
    fn to_json_value(&self) -> Value {
        super::json::array_of(&self.0)
    }
}
