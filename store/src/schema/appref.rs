//! rkt's image reference with labels, as given on the command line:
//! `example.com/nginx:1.8,os=linux,arch=amd64`.

use std::fmt;

use super::{AcIdentifier, SchemaError};

/// An image name with an optional `:version` and `name=value` labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRef {
    /// Image name.
    pub name: AcIdentifier,
    /// Version given as `name:version`.
    pub version: Option<String>,
    /// Labels given as `,key=value`, in order (without the version).
    pub labels: Vec<(String, String)>,
}

impl AppRef {
    /// Parses `NAME[:VERSION][,LABEL=VALUE...]`.
    pub fn parse(s: &str) -> Result<AppRef, SchemaError> {
        let mut parts = s.split(',');
        let head = parts.next().unwrap_or_default();
        let (name, version) = split_version(head, s)?;
        let name = AcIdentifier::parse(name).map_err(|e| e.described_as("image name"))?;
        let mut labels: Vec<(String, String)> = Vec::new();
        for part in parts {
            let (k, v) = parse_label(part, s)?;
            let clash =
                labels.iter().any(|(l, _)| *l == k) || (k == "version" && version.is_some());
            if clash {
                let rule = format!("label {k:?} given more than once");
                return Err(SchemaError::invalid("image reference", s, rule));
            }
            labels.push((k, v));
        }
        Ok(AppRef {
            name,
            version,
            labels,
        })
    }

    /// The labels plus `version` (from `:version`), as used for image matching.
    pub fn labels_with_version(&self) -> Vec<(String, String)> {
        let mut l = self.labels.clone();
        if let Some(v) = &self.version {
            l.push(("version".to_string(), v.clone()));
        }
        l
    }

    /// The value of the label `name`, considering `:version`.
    pub fn label(&self, name: &str) -> Option<&str> {
        if name == "version" && self.version.is_some() {
            return self.version.as_deref();
        }
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn split_version<'a>(head: &'a str, s: &str) -> Result<(&'a str, Option<String>), SchemaError> {
    if s.matches(':').count() > head.matches(':').count() || head.matches(':').count() > 1 {
        let rule = "':' may appear at most once, right after the image name";
        return Err(SchemaError::invalid("image reference", s, rule));
    }
    let Some((name, version)) = head.split_once(':') else {
        return Ok((head, None));
    };
    if version.is_empty() {
        return Err(SchemaError::invalid(
            "image reference",
            s,
            "empty version after ':'",
        ));
    }
    Ok((name, Some(version.to_string())))
}

fn parse_label(part: &str, s: &str) -> Result<(String, String), SchemaError> {
    let Some((k, v)) = part.split_once('=') else {
        let rule = format!("label {part:?} must be NAME=VALUE");
        return Err(SchemaError::invalid("image reference", s, rule));
    };
    AcIdentifier::parse(k).map_err(|e| e.described_as("label name"))?;
    if k == "name" {
        let rule = "\"name\" is not a valid label name";
        return Err(SchemaError::invalid("image reference", s, rule));
    }
    Ok((k.to_string(), v.to_string()))
}

impl fmt::Display for AppRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name.as_str())?;
        if let Some(v) = &self.version {
            write!(f, ":{v}")?;
        }
        for (k, v) in &self.labels {
            write!(f, ",{k}={v}")?;
        }
        Ok(())
    }
}
