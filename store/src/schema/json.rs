//! Small helpers to read a `serde_json::Value` the way Go's `encoding/json` does:
//! keys match case-insensitively (the last matching key wins), unknown keys are ignored,
//! and `null` means "absent".

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::SchemaError;

/// Reads a value from JSON, reporting errors at `path`.
pub(crate) trait FromJson: Sized {
    fn from_json(v: &Value, path: &str) -> Result<Self, SchemaError>;
}

/// Writes a value as JSON in appc field order.
pub(crate) trait ToJson {
    fn to_json_value(&self) -> Value;
}

/// Joins a field name onto a JSON path.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Parses bytes into a JSON value, with line and column on error.
pub(crate) fn parse_bytes(bytes: &[u8]) -> Result<Value, SchemaError> {
    serde_json::from_slice(bytes).map_err(|e| SchemaError::from_json(&e))
}

pub(crate) fn type_err(field: String, expected: &'static str) -> SchemaError {
    SchemaError::Type { field, expected }
}

pub(crate) fn as_str<'a>(v: &'a Value, path: &str) -> Result<&'a str, SchemaError> {
    v.as_str()
        .ok_or_else(|| type_err(path.to_string(), "a string"))
}

/// A JSON object being read, with its path for error messages.
pub(crate) struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: &'a str,
}

impl<'a> Obj<'a> {
    pub(crate) fn new(v: &'a Value, path: &'a str) -> Result<Self, SchemaError> {
        let map = v.as_object().ok_or_else(|| {
            let at = if path.is_empty() { "manifest" } else { path };
            type_err(at.to_string(), "a JSON object")
        })?;
        Ok(Obj { map, path })
    }

    pub(crate) fn path(&self, key: &str) -> String {
        join(self.path, key)
    }

    /// The value of `key`, matched case-insensitively; `null` counts as absent.
    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        self.map
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
            .next_back()
            .filter(|v| !v.is_null())
    }

    pub(crate) fn str(&self, key: &str) -> Result<Option<&'a str>, SchemaError> {
        self.get(key)
            .map(|v| as_str(v, &self.path(key)))
            .transpose()
    }

    /// A string field that Go leaves empty when absent.
    pub(crate) fn string(&self, key: &str) -> Result<String, SchemaError> {
        Ok(self.str(key)?.unwrap_or_default().to_string())
    }

    pub(crate) fn bool(&self, key: &str) -> Result<Option<bool>, SchemaError> {
        self.get(key)
            .map(|v| {
                v.as_bool()
                    .ok_or_else(|| type_err(self.path(key), "a boolean"))
            })
            .transpose()
    }

    pub(crate) fn u64(&self, key: &str) -> Result<Option<u64>, SchemaError> {
        self.get(key)
            .map(|v| {
                v.as_u64()
                    .ok_or_else(|| type_err(self.path(key), "a non-negative integer"))
            })
            .transpose()
    }

    pub(crate) fn i64(&self, key: &str) -> Result<Option<i64>, SchemaError> {
        self.get(key)
            .map(|v| {
                v.as_i64()
                    .ok_or_else(|| type_err(self.path(key), "an integer"))
            })
            .transpose()
    }

    /// An optional sub-value parsed with [`FromJson`].
    pub(crate) fn opt<T: FromJson>(&self, key: &str) -> Result<Option<T>, SchemaError> {
        self.get(key)
            .map(|v| T::from_json(v, &self.path(key)))
            .transpose()
    }

    /// A list of values parsed with [`FromJson`]; absent means empty.
    pub(crate) fn list<T: FromJson>(&self, key: &str) -> Result<Vec<T>, SchemaError> {
        let path = self.path(key);
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(v) => list_of(v, &path),
        }
    }

    /// A list of strings; absent means empty.
    pub(crate) fn strings(&self, key: &str) -> Result<Vec<String>, SchemaError> {
        let path = self.path(key);
        let Some(v) = self.get(key) else {
            return Ok(Vec::new());
        };
        let items = v
            .as_array()
            .ok_or_else(|| type_err(path.clone(), "an array of strings"))?;
        items
            .iter()
            .enumerate()
            .map(|(i, s)| as_str(s, &format!("{path}[{i}]")).map(str::to_string))
            .collect()
    }

    /// A `map[string]string`; absent means empty.
    pub(crate) fn str_map(&self, key: &str) -> Result<BTreeMap<String, String>, SchemaError> {
        match self.get(key) {
            None => Ok(BTreeMap::new()),
            Some(v) => string_map(v, &self.path(key)),
        }
    }
}

/// Parses a JSON array of `T`.
pub(crate) fn list_of<T: FromJson>(v: &Value, path: &str) -> Result<Vec<T>, SchemaError> {
    let items = v
        .as_array()
        .ok_or_else(|| type_err(path.to_string(), "an array"))?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| T::from_json(item, &format!("{path}[{i}]")))
        .collect()
}

/// Parses a JSON object whose values are all strings.
pub(crate) fn string_map(v: &Value, path: &str) -> Result<BTreeMap<String, String>, SchemaError> {
    let map = v
        .as_object()
        .ok_or_else(|| type_err(path.to_string(), "an object of strings"))?;
    map.iter()
        .map(|(k, val)| Ok((k.clone(), as_str(val, &join(path, k))?.to_string())))
        .collect()
}

/// Builds a JSON object in insertion order.
#[derive(Default)]
pub(crate) struct ObjBuilder(Map<String, Value>);

impl ObjBuilder {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn put(mut self, key: &str, v: impl Into<Value>) -> Self {
        self.0.insert(key.to_string(), v.into());
        self
    }

    /// Adds `key` unless `skip` is true (Go's `omitempty`).
    pub(crate) fn put_unless(self, skip: bool, key: &str, v: impl FnOnce() -> Value) -> Self {
        if skip {
            self
        } else {
            self.put(key, v())
        }
    }

    pub(crate) fn build(self) -> Value {
        Value::Object(self.0)
    }
}

/// Serializes a slice of [`ToJson`] values as an array.
pub(crate) fn array_of<T: ToJson>(items: &[T]) -> Value {
    Value::Array(items.iter().map(ToJson::to_json_value).collect())
}

pub(crate) fn map_value(m: &BTreeMap<String, String>) -> Value {
    Value::Object(
        m.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// Implements serde's traits through [`FromJson`] and [`ToJson`].
macro_rules! serde_via_json {
    ($($t:ty),* $(,)?) => {$(
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                serde::Serialize::serialize(&$crate::schema::json::ToJson::to_json_value(self), s)
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let v = <serde_json::Value as serde::Deserialize>::deserialize(d)?;
                <$t as $crate::schema::json::FromJson>::from_json(&v, "")
                    .map_err(serde::de::Error::custom)
            }
        }
    )*};
}
pub(crate) use serde_via_json;
