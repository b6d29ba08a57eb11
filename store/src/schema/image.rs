//! The image manifest.

use serde_json::Value;

use super::json::{array_of, parse_bytes, FromJson, Obj, ObjBuilder, ToJson};
use super::{AcIdentifier, AcKind, Annotations, App, ImageId, Labels, SchemaError, SemVer};

/// A dependency of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// Name of the image depended on.
    pub image_name: AcIdentifier,
    /// Exact image ID, if pinned.
    pub image_id: Option<ImageId>,
    /// Labels to match.
    pub labels: Labels,
    /// Expected size in bytes (0 = unknown).
    pub size: u64,
}

impl FromJson for Dependency {
    fn from_json(v: &Value, path: &str) -> Result<Self, SchemaError> {
        let o = Obj::new(v, path)?;
        Ok(Dependency {
            image_name: o
                .opt("imageName")?
                .ok_or_else(|| SchemaError::rule(o.path("imageName"), "imageName must be set"))?,
            image_id: o.opt("imageID")?,
            labels: o.opt("labels")?.unwrap_or_default(),
            size: o.u64("size")?.unwrap_or(0),
        })
    }
}

impl ToJson for Dependency {
    fn to_json_value(&self) -> Value {
        ObjBuilder::new()
            .put("imageName", self.image_name.as_str())
            .put_unless(self.image_id.is_none(), "imageID", || {
                self.image_id.as_ref().map(ImageId::to_json_value).into()
            })
            .put_unless(self.labels.is_empty(), "labels", || {
                self.labels.to_json_value()
            })
            .put_unless(self.size == 0, "size", || self.size.into())
            .build()
    }
}

/// An appc image manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageManifest {
    /// Spec version the manifest follows.
    pub ac_version: SemVer,
    /// Image name.
    pub name: AcIdentifier,
    /// Labels (version, os, arch, ...).
    pub labels: Labels,
    /// The app, if the image is runnable.
    pub app: Option<App>,
    /// Annotations.
    pub annotations: Annotations,
    /// Dependencies, in layering order.
    pub dependencies: Vec<Dependency>,
    /// Paths to keep from the rendered dependencies; empty means all.
    pub path_whitelist: Vec<String>,
}

impl ImageManifest {
    /// Parses and fully validates a manifest.
    pub fn parse(bytes: &[u8]) -> Result<ImageManifest, SchemaError> {
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

    /// The `version` label.
    pub fn version(&self) -> Option<&str> {
        self.labels.get("version")
    }

    /// The `os` label.
    pub fn os(&self) -> Option<&str> {
        self.labels.get("os")
    }

    /// The `arch` label.
    pub fn arch(&self) -> Option<&str> {
        self.labels.get("arch")
    }
}

pub(crate) fn check_kind(o: &Obj<'_>, want: AcKind) -> Result<(), SchemaError> {
    let kind = o.string("acKind")?;
    if kind != want.as_str() {
        let rule = format!(
            "missing or bad acKind {kind:?} (must be {:?})",
            want.as_str()
        );
        return Err(SchemaError::rule("acKind", rule));
    }
    Ok(())
}

impl FromJson for ImageManifest {
    fn from_json(v: &Value, path: &str) -> Result<Self, SchemaError> {
        let o = Obj::new(v, path)?;
        check_kind(&o, AcKind::ImageManifest)?;
        let ac_version = o
            .opt("acVersion")?
            .ok_or_else(|| SchemaError::rule("acVersion", "acVersion must be set"))?;
        let name = o
            .opt::<AcIdentifier>("name")
            .map_err(|e| e.described_as("image name"))?
            .ok_or_else(|| SchemaError::rule("name", "name must be set"))?;
        Ok(ImageManifest {
            ac_version,
            name,
            labels: o.opt("labels")?.unwrap_or_default(),
            app: o.opt("app")?,
            annotations: o.opt("annotations")?.unwrap_or_default(),
            dependencies: o.list("dependencies")?,
            path_whitelist: o.strings("pathWhitelist")?,
        })
    }
}

impl ToJson for ImageManifest {
    fn to_json_value(&self) -> Value {
        ObjBuilder::new()
            .put("acKind", AcKind::ImageManifest.as_str())
            .put("acVersion", self.ac_version.to_string())
            .put("name", self.name.as_str())
            .put_unless(self.labels.is_empty(), "labels", || {
                self.labels.to_json_value()
            })
            .put_unless(self.app.is_none(), "app", || {
                self.app.as_ref().map(App::to_json_value).into()
            })
            .put_unless(self.annotations.is_empty(), "annotations", || {
                self.annotations.to_json_value()
            })
            .put_unless(self.dependencies.is_empty(), "dependencies", || {
                array_of(&self.dependencies)
            })
            .put_unless(self.path_whitelist.is_empty(), "pathWhitelist", || {
                self.path_whitelist.clone().into()
            })
            .build()
    }
}
