//! appc schema types and validation (image and pod manifests), following the rules that
//! appc/spec's Go code enforces (see docs/reference/appc-and-docker2aci.md, sections 2-4).
//!
//! JSON is read like Go's `encoding/json`: keys match case-insensitively, unknown keys are
//! ignored and `null` means absent. Output follows appc's field order and omits what Go
//! omits.
//!
//! Deliberate differences from the Go code: a missing AC Name where Go would accept a zero
//! value (pod app `name`, `mounts[].volume`, port names) is refused, a known isolator without
//! a value is refused (Go panics), and a pod template's missing `image.id` is simply omitted
//! on output (Go fails to marshal it).

mod app;
mod appref;
mod error;
mod image;
mod isolator;
mod json;
mod labels;
mod pod;
mod types;

#[cfg(test)]
mod tests;

pub use app::{
    valid_env_name, App, Environment, EnvironmentVariable, EventHandler, Exec, MountPoint, Port,
};
pub use appref::AppRef;
pub use error::SchemaError;
pub use image::{Dependency, ImageManifest};
pub use isolator::{
    check_quantity, validate_value as validate_isolator_value, Isolator, Quantity, KNOWN_ISOLATORS,
};
pub use labels::{check_os_arch, Annotation, Annotations, Label, Labels, VALID_OS_ARCH};
pub use pod::{
    parse_go_bool, ExposedPort, Mount, PodManifest, RuntimeApp, RuntimeImage, Volume,
    EMPTY_VOLUME_DEFAULT_MODE,
};
pub use types::{AcIdentifier, AcKind, AcName, ImageId, SemVer};

json::serde_via_json!(
    ImageManifest,
    PodManifest,
    App,
    Labels,
    Annotations,
    Isolator,
    Volume,
    Port
);
