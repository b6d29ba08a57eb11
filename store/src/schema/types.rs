//! Identifier and scalar types of the appc schema: AC Identifier, AC Name, AC Kind,
//! SemVer, image ID, plus the date and URL checks used by annotations.

use std::fmt;

use serde_json::Value;

use super::json::{as_str, FromJson, ToJson};
use super::SchemaError;

const AC_IDENTIFIER_RULE: &str = "AC Identifier must match ^[a-z0-9]+([-._~/][a-z0-9]+)*$ \
     (lowercase letters, digits and -._~/ separators)";
const ID_SEPS: [char; 5] = ['-', '.', '_', '~', '/'];
const AC_NAME_RULE: &str =
    "AC Name must match ^[a-z0-9]+([-][a-z0-9]+)*$ (lowercase letters, digits and - separators)";

/// Checks a string the (loose) way appc's Go code does: non-empty, only allowed characters,
/// and no separator at either edge.
fn check_ident(s: &str, what: &str, rule: &str, seps: &[char]) -> Result<(), SchemaError> {
    if s.is_empty() {
        return Err(SchemaError::invalid(what, s, format!("{what} must be set")));
    }
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || seps.contains(&c);
    let edge = |c: Option<char>| c.is_some_and(|c| seps.contains(&c));
    if !s.chars().all(ok_char) || edge(s.chars().next()) || edge(s.chars().last()) {
        return Err(SchemaError::invalid(what, s, rule));
    }
    Ok(())
}

/// Lower-cases `s`, replaces characters outside `[a-z0-9]` and `seps` by `repl` and strips
/// separators from both edges (appc's `Sanitize*` helpers).
fn sanitize(s: &str, seps: &[char], repl: char) -> Result<String, SchemaError> {
    let mapped: String = s
        .to_lowercase()
        .chars()
        .map(|c| {
            let ok = c.is_ascii_lowercase() || c.is_ascii_digit() || seps.contains(&c);
            if ok {
                c
            } else {
                repl
            }
        })
        .collect();
    let trimmed = mapped.trim_matches(|c| seps.contains(&c));
    if trimmed.is_empty() {
        let rule = "must contain at least one valid character";
        return Err(SchemaError::invalid("name to sanitize", s, rule));
    }
    Ok(trimmed.to_string())
}

macro_rules! string_newtype {
    ($t:ident) => {
        impl $t {
            /// The identifier as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl std::str::FromStr for $t {
            type Err = SchemaError;
            fn from_str(s: &str) -> Result<Self, SchemaError> {
                Self::parse(s)
            }
        }
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <String as serde::Deserialize>::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
        impl FromJson for $t {
            fn from_json(v: &Value, path: &str) -> Result<Self, SchemaError> {
                Self::parse(as_str(v, path)?).map_err(|e| e.described_as(path))
            }
        }
        impl ToJson for $t {
            fn to_json_value(&self) -> Value {
                Value::String(self.0.clone())
            }
        }
    };
}

/// An AC Identifier (image names, label and annotation names, isolator names).
///
/// Validated like appc's Go code: the spec's regex is `^[a-z0-9]+([-._~/][a-z0-9]+)*$`, but the
/// code only rejects empty strings, characters outside `[a-z0-9-._~/]` and separators at the
/// edges, so `a--b` is accepted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AcIdentifier(String);

impl AcIdentifier {
    /// Validates `s` as an AC Identifier.
    pub fn parse(s: &str) -> Result<Self, SchemaError> {
        check_ident(s, "AC Identifier", AC_IDENTIFIER_RULE, &ID_SEPS)?;
        Ok(AcIdentifier(s.to_string()))
    }

    /// Makes a valid AC Identifier out of `s`: lower-cases it, replaces invalid characters
    /// with `_` and strips separators at the edges (appc's `SanitizeACIdentifier`).
    pub fn sanitize(s: &str) -> Result<Self, SchemaError> {
        Self::parse(&sanitize(s, &ID_SEPS, '_')?)
    }
}
string_newtype!(AcIdentifier);

/// An AC Name (pod app names, volume, mount point and port names).
///
/// Validated like appc's Go code: only `[a-z0-9-]`, non-empty, no `-` at the edges.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AcName(String);

impl AcName {
    /// Validates `s` as an AC Name.
    pub fn parse(s: &str) -> Result<Self, SchemaError> {
        check_ident(s, "AC Name", AC_NAME_RULE, &['-'])?;
        Ok(AcName(s.to_string()))
    }

    /// Makes a valid AC Name out of `s`: lower-cases it, replaces invalid characters with `-`
    /// and strips `-` at the edges (appc's `SanitizeACName`), e.g. for app names derived
    /// from image names.
    pub fn sanitize(s: &str) -> Result<Self, SchemaError> {
        Self::parse(&sanitize(s, &['-'], '-')?)
    }
}
string_newtype!(AcName);

/// The kind of a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AcKind {
    /// `ImageManifest`
    ImageManifest,
    /// `PodManifest`
    PodManifest,
}

impl AcKind {
    /// Parses `ImageManifest` or `PodManifest`.
    pub fn parse(s: &str) -> Result<Self, SchemaError> {
        match s {
            "ImageManifest" => Ok(AcKind::ImageManifest),
            "PodManifest" => Ok(AcKind::PodManifest),
            "" => Err(SchemaError::rule("acKind", "ACKind must be set")),
            _ => Err(SchemaError::invalid(
                "acKind",
                s,
                "must be \"ImageManifest\" or \"PodManifest\"",
            )),
        }
    }

    /// The JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AcKind::ImageManifest => "ImageManifest",
            AcKind::PodManifest => "PodManifest",
        }
    }
}

impl fmt::Display for AcKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A semantic version, strict `X.Y.Z[-pre][+meta]` as coreos/go-semver parses it; `0.0.0` is
/// refused as appc does.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SemVer {
    /// Major version.
    pub major: u64,
    /// Minor version.
    pub minor: u64,
    /// Patch version.
    pub patch: u64,
    /// Pre-release part, without the `-`.
    pub pre_release: String,
    /// Build metadata, without the `+`.
    pub metadata: String,
}

const SEMVER_RULE: &str = "SemVer must be X.Y.Z[-prerelease][+metadata]";

fn semver_ident_ok(s: &str) -> bool {
    s.is_empty()
        || s.split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
}

fn semver_number(s: &str, full: &str) -> Result<u64, SchemaError> {
    if s.is_empty() || !s.chars().all(|c| c.is_ascii_digit()) {
        return Err(SchemaError::invalid("SemVer", full, SEMVER_RULE));
    }
    s.parse::<i64>()
        .ok()
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| SchemaError::invalid("SemVer", full, "version number out of range"))
}

impl SemVer {
    /// Parses and validates a version.
    pub fn parse(s: &str) -> Result<Self, SchemaError> {
        let (rest, metadata) = s.split_once('+').unwrap_or((s, ""));
        let (core, pre) = rest.split_once('-').unwrap_or((rest, ""));
        if !semver_ident_ok(pre) || !semver_ident_ok(metadata) {
            return Err(SchemaError::invalid("SemVer", s, SEMVER_RULE));
        }
        let parts: Vec<&str> = core.splitn(3, '.').collect();
        let [ma, mi, pa] = parts.as_slice() else {
            return Err(SchemaError::invalid("SemVer", s, SEMVER_RULE));
        };
        let v = SemVer {
            major: semver_number(ma, s)?,
            minor: semver_number(mi, s)?,
            patch: semver_number(pa, s)?,
            pre_release: pre.to_string(),
            metadata: metadata.to_string(),
        };
        if v.major == 0 && v.minor == 0 && v.patch == 0 {
            return Err(SchemaError::invalid("SemVer", s, "SemVer cannot be zero"));
        }
        Ok(v)
    }

    /// Whether `self` has a smaller major version than `other` (appc's compatibility rule).
    pub fn less_than_major(&self, other: &SemVer) -> bool {
        self.major < other.major
    }
}

impl fmt::Display for SemVer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if !self.pre_release.is_empty() {
            write!(f, "-{}", self.pre_release)?;
        }
        if !self.metadata.is_empty() {
            write!(f, "+{}", self.metadata)?;
        }
        Ok(())
    }
}

impl std::str::FromStr for SemVer {
    type Err = SchemaError;
    fn from_str(s: &str) -> Result<Self, SchemaError> {
        Self::parse(s)
    }
}

impl FromJson for SemVer {
    fn from_json(v: &Value, path: &str) -> Result<Self, SchemaError> {
        Self::parse(as_str(v, path)?).map_err(|e| e.described_as(path))
    }
}

impl ToJson for SemVer {
    fn to_json_value(&self) -> Value {
        Value::String(self.to_string())
    }
}

/// An image ID, `sha512-<hex>`.
///
/// Like appc's Go code, any non-empty value without `-` is accepted after `sha512-` (the
/// spec's example uses `sha512-...`); [`ImageId::is_full`] tells whether it is a real,
/// complete SHA-512 digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageId(String);

impl ImageId {
    /// Validates `s` as an image ID.
    pub fn parse(s: &str) -> Result<Self, SchemaError> {
        let parts: Vec<&str> = s.split('-').collect();
        let [typ, val] = parts.as_slice() else {
            return Err(SchemaError::invalid(
                "image ID",
                s,
                "badly formatted hash string (must be sha512-<hex>)",
            ));
        };
        if *typ != "sha512" {
            let rule = format!("unrecognized hash type {typ:?} (must be sha512)");
            return Err(SchemaError::invalid("image ID", s, rule));
        }
        if val.is_empty() {
            return Err(SchemaError::invalid("image ID", s, "empty hash value"));
        }
        Ok(ImageId(s.to_string()))
    }

    /// Builds the ID of a SHA-512 digest.
    pub fn from_sha512(digest: &[u8; 64]) -> Self {
        ImageId(format!("sha512-{}", hex::encode(digest)))
    }

    /// The part after `sha512-`.
    pub fn value(&self) -> &str {
        self.0.get("sha512-".len()..).unwrap_or_default()
    }

    /// Whether the value is a complete lowercase hex SHA-512 digest (128 digits).
    pub fn is_full(&self) -> bool {
        let v = self.value();
        v.len() == 128 && v.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'))
    }
}
string_newtype!(ImageId);

/// Checks an RFC 3339 date as Go's `time.Parse(time.RFC3339, ...)` does.
pub(crate) fn check_date(s: &str) -> Result<(), String> {
    use time::format_description::well_known::Rfc3339;
    // Go's layout wants an upper-case `T` and `Z`; the time crate also takes ` ` and `z`.
    if s.as_bytes().get(10) != Some(&b'T') || s.ends_with('z') {
        return Err("must be an RFC3339 date (YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm))".into());
    }
    time::OffsetDateTime::parse(s, &Rfc3339)
        .map(|_| ())
        .map_err(|e| format!("must be an RFC3339 date ({e})"))
}

/// Checks an http(s) URL roughly as Go's `url.Parse` plus appc's scheme check do.
pub(crate) fn check_url(s: &str) -> Result<(), String> {
    if s.chars().any(|c| c.is_ascii_control()) {
        return Err("bad URL: contains control characters".into());
    }
    if !percent_escapes_ok(s) {
        return Err("bad URL: invalid %-escape".into());
    }
    let scheme = s.split_once(':').map(|(sc, _)| sc.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("http") | Some("https") => Ok(()),
        _ => Err("bad URL scheme, must be http or https".into()),
    }
}

fn percent_escapes_ok(s: &str) -> bool {
    let b = s.as_bytes();
    b.iter().enumerate().all(|(i, &c)| {
        c != b'%'
            || (b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    })
}
