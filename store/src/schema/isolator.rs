//! Isolators: a name plus a raw JSON value, validated per the isolator kinds appc's code
//! registers. Unknown names parse; an app refuses them (as Go's `Isolators.assertValid`
//! does), pod-level isolators do not.

use serde_json::Value;

use super::json::{type_err, FromJson, Obj, ObjBuilder, ToJson};
use super::{AcIdentifier, SchemaError};

/// Names of the isolators appc knows.
pub const KNOWN_ISOLATORS: &[&str] = &[
    "resource/cpu",
    "resource/memory",
    "resource/block-bandwidth",
    "resource/block-iops",
    "resource/network-bandwidth",
    "os/linux/capabilities-retain-set",
    "os/linux/capabilities-remove-set",
    "os/linux/no-new-privileges",
    "os/linux/seccomp-remove-set",
    "os/linux/seccomp-retain-set",
    "os/linux/oom-score-adj",
    "os/linux/cpu-shares",
    "os/linux/selinux-context",
    "os/linux/apparmor-profile",
    "os/unix/sysctl",
];

/// One isolator.
#[derive(Debug, Clone, PartialEq)]
pub struct Isolator {
    /// Isolator name, e.g. `resource/memory`.
    pub name: AcIdentifier,
    /// The raw value (`null` if absent).
    pub value: Value,
}

impl Isolator {
    /// Builds an isolator and validates its value if its kind is known.
    pub fn new(name: AcIdentifier, value: Value) -> Result<Self, SchemaError> {
        validate_value(name.as_str(), &value, "isolator value")?;
        Ok(Isolator { name, value })
    }

    /// Whether appc knows this isolator's name.
    pub fn is_known(&self) -> bool {
        KNOWN_ISOLATORS.contains(&self.name.as_str())
    }

    /// Whether several isolators of this kind may appear in one app.
    pub fn multiple_allowed(&self) -> bool {
        !matches!(
            self.name.as_str(),
            "os/linux/seccomp-remove-set"
                | "os/linux/seccomp-retain-set"
                | "os/linux/oom-score-adj"
                | "os/linux/cpu-shares"
                | "os/linux/selinux-context"
                | "os/linux/apparmor-profile"
                | "os/unix/sysctl"
        )
    }

    /// Isolator names this one may not be combined with.
    pub fn conflicts(&self) -> &'static [&'static str] {
        match self.name.as_str() {
            "os/linux/seccomp-remove-set" => &["os/linux/seccomp-retain-set"],
            "os/linux/seccomp-retain-set" => &["os/linux/seccomp-remove-set"],
            _ => &[],
        }
    }
}

impl FromJson for Isolator {
    fn from_json(v: &Value, path: &str) -> Result<Self, SchemaError> {
        let o = Obj::new(v, path)?;
        let name = o
            .opt::<AcIdentifier>("name")?
            .ok_or_else(|| SchemaError::rule(o.path("name"), "name must be set"))?;
        let value = o.get("value").cloned().unwrap_or(Value::Null);
        validate_value(name.as_str(), &value, &o.path("value"))?;
        Ok(Isolator { name, value })
    }
}

impl ToJson for Isolator {
    fn to_json_value(&self) -> Value {
        ObjBuilder::new()
            .put("name", self.name.as_str())
            .put("value", self.value.clone())
            .build()
    }
}

/// Validates the value of a known isolator; unknown names are accepted here.
pub fn validate_value(name: &str, v: &Value, path: &str) -> Result<(), SchemaError> {
    if !KNOWN_ISOLATORS.contains(&name) {
        return Ok(());
    }
    if v.is_null() {
        return Err(SchemaError::rule(path, format!("{name} requires a value")));
    }
    match name {
        "resource/cpu" | "resource/memory" => check_resource(v, path, false),
        "resource/block-bandwidth" | "resource/block-iops" | "resource/network-bandwidth" => {
            check_resource(v, path, true)
        }
        "os/linux/capabilities-retain-set" | "os/linux/capabilities-remove-set" => {
            check_set(&Obj::new(v, path)?).map(|_| ())
        }
        "os/linux/seccomp-remove-set" | "os/linux/seccomp-retain-set" => check_seccomp(v, path),
        "os/linux/no-new-privileges" => v
            .as_bool()
            .map(|_| ())
            .ok_or_else(|| type_err(path.to_string(), "a boolean")),
        "os/linux/oom-score-adj" => check_int(v, path, name, -1000, 1000),
        "os/linux/cpu-shares" => check_int(v, path, name, 2, 262_144),
        "os/linux/selinux-context" => check_selinux(v, path),
        "os/linux/apparmor-profile" => check_apparmor(v, path),
        _ => super::json::string_map(v, path).map(|_| ()),
    }
}

fn check_int(v: &Value, path: &str, name: &str, min: i64, max: i64) -> Result<(), SchemaError> {
    let n = v
        .as_i64()
        .ok_or_else(|| type_err(path.to_string(), "an integer"))?;
    if n < min || n > max {
        let rule = format!("{name} must be between {min} and {max}, got {n}");
        return Err(SchemaError::rule(path, rule));
    }
    Ok(())
}

fn check_resource(v: &Value, path: &str, default_required: bool) -> Result<(), SchemaError> {
    let o = Obj::new(v, path)?;
    let default = o.bool("default")?.unwrap_or(false);
    let request = o.get("request");
    for (key, q) in [("request", request), ("limit", o.get("limit"))] {
        if let Some(q) = q {
            check_quantity_value(q, &o.path(key))?;
        }
    }
    if default_required && !default {
        return Err(SchemaError::rule(o.path("default"), "default must be true"));
    }
    if !default_required && default {
        return Err(SchemaError::rule(
            o.path("default"),
            "default must be false",
        ));
    }
    if default_required && request.is_some() {
        let rule = "request not supported by this resource, must be empty";
        return Err(SchemaError::rule(o.path("request"), rule));
    }
    Ok(())
}

fn check_quantity_value(q: &Value, path: &str) -> Result<(), SchemaError> {
    let s = match q {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return Err(type_err(path.to_string(), "a quantity string")),
    };
    check_quantity(&s).map_err(|rule| SchemaError::invalid(path, &s, rule))
}

const QUANTITY_SUFFIXES: &[&str] = &[
    "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E",
];

/// Checks a resource quantity (Kubernetes syntax: a decimal number and an optional
/// SI, binary or exponent suffix), e.g. `20m`, `1G`, `2Gi`, `1e3`.
pub fn check_quantity(s: &str) -> Result<(), &'static str> {
    const RULE: &str = "quantity must be a number with an optional suffix \
         (Ki..Ei, n, u, m, k, M, G, T, P, E or an exponent)";
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let num_len = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (num, suffix) = body.split_at(num_len);
    let valid_num =
        num.chars().filter(|&c| c == '.').count() <= 1 && num.chars().any(|c| c.is_ascii_digit());
    if valid_num && (QUANTITY_SUFFIXES.contains(&suffix) || is_exponent(suffix)) {
        Ok(())
    } else {
        Err(RULE)
    }
}

fn is_exponent(s: &str) -> bool {
    let Some(rest) = s.strip_prefix(['e', 'E']) else {
        return false;
    };
    let digits = rest.strip_prefix(['+', '-']).unwrap_or(rest);
    !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())
}

/// Checks `{"set": [strings...]}` with a non-empty set; returns the set's length.
fn check_set(o: &Obj<'_>) -> Result<usize, SchemaError> {
    let set = o.strings("set")?;
    if set.is_empty() {
        return Err(SchemaError::rule(o.path("set"), "set must be non-empty"));
    }
    Ok(set.len())
}

fn check_seccomp(v: &Value, path: &str) -> Result<(), SchemaError> {
    let o = Obj::new(v, path)?;
    check_set(&o)?;
    let errno = o.string("errno")?;
    let mut chars = errno.chars();
    if let Some(first) = chars.next() {
        if first != 'E' {
            let rule = "errno must start with an 'E' character";
            return Err(SchemaError::invalid(o.path("errno"), &errno, rule));
        }
        if !chars.all(|c| c.is_uppercase() || c.is_numeric()) {
            let rule = "errno can only contain upper case or numeric characters";
            return Err(SchemaError::invalid(o.path("errno"), &errno, rule));
        }
    }
    Ok(())
}

fn check_selinux(v: &Value, path: &str) -> Result<(), SchemaError> {
    let o = Obj::new(v, path)?;
    for key in ["user", "role", "type", "level"] {
        let s = o.string(key)?;
        if s.is_empty() || (key != "level" && s.contains(':')) {
            let rule = "must be non-empty (and, except for level, contain no ':')";
            return Err(SchemaError::invalid(o.path(key), &s, rule));
        }
    }
    Ok(())
}

fn check_apparmor(v: &Value, path: &str) -> Result<(), SchemaError> {
    let o = Obj::new(v, path)?;
    let p = o.string("profile")?;
    if p.is_empty() {
        return Err(SchemaError::rule(o.path("profile"), "profile must be set"));
    }
    Ok(())
}

/// Checks a list of app isolators the way Go's `Isolators.assertValid` does: every name must
/// be known, kinds that allow one instance appear once, and conflicting kinds are not mixed.
pub(crate) fn check_app_isolators(list: &[Isolator], path: &str) -> Result<(), SchemaError> {
    let mut seen: Vec<&str> = Vec::new();
    for (i, iso) in list.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let name = iso.name.as_str();
        if !iso.is_known() {
            return Err(SchemaError::invalid(at, name, "unrecognized isolator name"));
        }
        if seen.contains(&name) && !iso.multiple_allowed() {
            let rule = format!("isolators set contains too many instances of type {name}");
            return Err(SchemaError::rule(at, rule));
        }
        if let Some(c) = iso.conflicts().iter().find(|c| seen.contains(c)) {
            let rule = format!("isolator {name} conflicts with {c}");
            return Err(SchemaError::rule(at, rule));
        }
        seen.push(name);
    }
    Ok(())
}

/// A resource quantity such as `20m`, `1G` or `2Gi` (Kubernetes syntax).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Quantity(String);

impl Quantity {
    /// Validates the syntax of a quantity.
    pub fn parse(s: &str) -> Result<Self, SchemaError> {
        let t = s.trim();
        check_quantity(t).map_err(|rule| SchemaError::invalid("quantity", s, rule))?;
        Ok(Quantity(t.to_string()))
    }

    /// The quantity as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value in thousandths of the unit (millicores for CPU), rounded up;
    /// `None` if it does not fit.
    pub fn milli_value(&self) -> Option<i128> {
        scaled(&self.0, 3)
    }

    /// The value in whole units (bytes for memory), rounded up; `None` if it does not fit.
    pub fn value(&self) -> Option<i128> {
        scaled(&self.0, 0)
    }
}

/// Splits a suffix into (power of ten, power of two).
fn suffix_scale(suffix: &str) -> Option<(i32, u32)> {
    let dec = ["n", "u", "m", "", "k", "M", "G", "T", "P", "E"];
    if let Some(i) = dec.iter().position(|d| *d == suffix) {
        return Some((3 * i as i32 - 9, 0));
    }
    let bin = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    if let Some(i) = bin.iter().position(|b| *b == suffix) {
        return Some((0, 10 * (i as u32 + 1)));
    }
    suffix.get(1..)?.parse::<i32>().ok().map(|e| (e, 0))
}

/// `s * 10^extra`, rounded up (towards positive infinity).
fn scaled(s: &str, extra: i32) -> Option<i128> {
    check_quantity(s).ok()?;
    let neg = s.starts_with('-');
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let split = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (num, suffix) = body.split_at(split);
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    let (ten, two) = suffix_scale(suffix)?;
    let mut n: i128 = format!("{int}{frac}").parse().ok()?;
    n = n.checked_mul(2i128.checked_pow(two)?)?;
    let exp = ten
        .checked_add(extra)?
        .checked_sub(i32::try_from(frac.len()).ok()?)?;
    let pow = 10i128.checked_pow(exp.unsigned_abs())?;
    let v = if exp >= 0 {
        n.checked_mul(pow)?
    } else {
        n / pow + i128::from(n % pow != 0 && !neg)
    };
    Some(if neg { -v } else { v })
}

impl Isolator {
    fn obj(&self) -> Option<Obj<'_>> {
        Obj::new(&self.value, "value").ok()
    }

    /// For `resource/*` isolators: the `limit` quantity.
    pub fn resource_limit(&self) -> Option<Quantity> {
        self.quantity("limit")
    }

    /// For `resource/*` isolators: the `request` quantity (the spec says it defaults to
    /// the limit; that is left to the caller).
    pub fn resource_request(&self) -> Option<Quantity> {
        self.quantity("request")
    }

    fn quantity(&self, key: &str) -> Option<Quantity> {
        if !self.name.as_str().starts_with("resource/") {
            return None;
        }
        match self.obj()?.get(key)? {
            Value::String(s) => Quantity::parse(s).ok(),
            Value::Number(n) => Quantity::parse(&n.to_string()).ok(),
            _ => None,
        }
    }

    /// For capability and seccomp isolators: the `set` list.
    pub fn set(&self) -> Option<Vec<String>> {
        self.obj()?.strings("set").ok()
    }

    /// For seccomp isolators: the `errno`, if given.
    pub fn errno(&self) -> Option<String> {
        self.obj()?.string("errno").ok().filter(|e| !e.is_empty())
    }

    /// For boolean isolators (`os/linux/no-new-privileges`).
    pub fn bool_value(&self) -> Option<bool> {
        self.value.as_bool()
    }

    /// For integer isolators (`os/linux/oom-score-adj`, `os/linux/cpu-shares`).
    pub fn int_value(&self) -> Option<i64> {
        self.value.as_i64()
    }

    /// For `os/unix/sysctl` and other string maps.
    pub fn string_map(&self) -> Option<std::collections::BTreeMap<String, String>> {
        super::json::string_map(&self.value, "value").ok()
    }
}
