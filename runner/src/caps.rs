//! The capabilities an app keeps (appc's `os/linux/capabilities-retain-set` and
//! `-remove-set` isolators; rkt's default set when the app has neither), and dropping the
//! rest from the app's bounding set before it starts.
//!
//! A root app's permitted and effective sets after `execve` are its bounding set, so the
//! bounding set is what confines it; a non-root app loses its capabilities at `setuid` and
//! cannot regain any outside the bounding set either.

use std::str::FromStr;

use caps::{CapSet, Capability, CapsHashSet};
use rkt_store::schema::App;

use crate::error::{Result, RunnerError};

/// appc's isolator that names the capabilities to keep.
pub const RETAIN_SET: &str = "os/linux/capabilities-retain-set";
/// appc's isolator that names capabilities to remove from the default set.
pub const REMOVE_SET: &str = "os/linux/capabilities-remove-set";

/// rkt's default bounding set (stage1 `DefaultCaps`), as Docker's.
pub const DEFAULT: [&str; 14] = [
    "CAP_AUDIT_WRITE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_KILL",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_NET_BIND_SERVICE",
    "CAP_SETUID",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETFCAP",
    "CAP_SYS_CHROOT",
];

/// A capability by any of its usual spellings (`CAP_NET_ADMIN`, `net_admin`), in canonical
/// form; unknown names are refused.
pub fn canonical(name: &str) -> Result<String> {
    capability(name).map(|c| c.to_string())
}

/// The capability `name` (any of its usual spellings) names.
fn capability(name: &str) -> Result<Capability> {
    Capability::from_str(&caps::to_canonical(name.trim())).map_err(|_| {
        RunnerError::Invalid(format!(
            "unknown capability {name:?} (names look like CAP_NET_ADMIN; see capabilities(7))"
        ))
    })
}

/// Every capability this build knows, canonical names sorted (`--insecure-options=capabilities`).
pub fn all_names() -> Vec<String> {
    let mut all: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
    all.sort();
    all
}

/// The bounding set `app` runs with.
pub(crate) fn for_app(app: &App, name: &str) -> Result<CapsHashSet> {
    let set_of = |iso: &str| -> Result<Option<CapsHashSet>> {
        let Some(i) = app.isolators.iter().find(|i| i.name.as_str() == iso) else {
            return Ok(None);
        };
        let names = i
            .value
            .get("set")
            .and_then(|s| s.as_array())
            .ok_or_else(|| {
                RunnerError::Invalid(format!("app {name}: isolator {iso} has no \"set\" list"))
            })?;
        names
            .iter()
            .map(|n| {
                let text = n.as_str().unwrap_or_default();
                capability(text)
                    .map_err(|e| RunnerError::Invalid(format!("app {name}: {iso}: {e}")))
            })
            .collect::<Result<CapsHashSet>>()
            .map(Some)
    };
    if let Some(retain) = set_of(RETAIN_SET)? {
        return Ok(retain);
    }
    let mut keep: CapsHashSet = DEFAULT
        .iter()
        .map(|c| capability(c))
        .collect::<Result<_>>()?;
    if let Some(remove) = set_of(REMOVE_SET)? {
        keep.retain(|c| !remove.contains(c));
    }
    Ok(keep)
}

/// In the app's process, before it changes its user: drop every capability outside `keep`
/// from the bounding set, clear the ambient set and make `keep` the inheritable set.
pub(crate) fn confine(keep: &CapsHashSet) -> Result<()> {
    let err = |what: &str, e: caps::errors::CapsError| {
        RunnerError::Invalid(format!(
            "cannot restrict the app's capabilities: {what}: {e}"
        ))
    };
    // What rkt itself may hold: a capability outside its own bounding set cannot be given.
    let bounding =
        caps::read(None, CapSet::Bounding).map_err(|e| err("reading the bounding set", e))?;
    for cap in bounding.iter().filter(|c| !keep.contains(c)) {
        caps::drop(None, CapSet::Bounding, *cap).map_err(|e| err(&format!("dropping {cap}"), e))?;
    }
    drop_unnamed()?;
    if caps::runtime::ambient_set_supported().is_ok() {
        caps::clear(None, CapSet::Ambient).map_err(|e| err("clearing the ambient set", e))?;
    }
    let inheritable: CapsHashSet = keep.intersection(&bounding).copied().collect();
    caps::set(None, CapSet::Inheritable, &inheritable)
        .map_err(|e| err("setting the inheritable set", e))
}

/// Capabilities of a kernel newer than the caps crate (numbers it has no name for) are never
/// kept: drop every number above the last one it knows that the kernel still answers for
/// (PR_CAPBSET_READ fails with EINVAL past the kernel's last capability).
fn drop_unnamed() -> Result<()> {
    let known = caps::all().iter().map(|c| c.index()).max().unwrap_or(0);
    let mut n = libc::c_ulong::from(known) + 1;
    loop {
        // SAFETY: prctl(PR_CAPBSET_READ, n) takes integers only and touches no memory of ours.
        if unsafe { libc::prctl(libc::PR_CAPBSET_READ, n, 0, 0, 0) } < 0 {
            return Ok(());
        }
        // SAFETY: prctl(PR_CAPBSET_DROP, n) takes integers only and touches no memory of ours.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, n, 0, 0, 0) } != 0 {
            return Err(RunnerError::Invalid(format!(
                "cannot restrict the app's capabilities: dropping capability {n}: {}",
                std::io::Error::last_os_error()
            )));
        }
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(isolators: serde_json::Value) -> App {
        let isolators = isolators
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                let name = rkt_store::schema::AcIdentifier::parse(i["name"].as_str().unwrap());
                rkt_store::schema::Isolator::new(name.unwrap(), i["value"].clone()).unwrap()
            })
            .collect();
        App {
            isolators,
            ..App::default()
        }
    }

    fn names(set: &CapsHashSet) -> Vec<String> {
        let mut v: Vec<String> = set.iter().map(|c| c.to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn default_retain_and_remove_sets() {
        let mut want: Vec<String> = DEFAULT.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(
            names(&for_app(&app(serde_json::json!([])), "a").unwrap()),
            want
        );
        let retain = app(serde_json::json!([{"name": RETAIN_SET,
            "value": {"set": ["CAP_NET_ADMIN", "sys_time"]}}]));
        assert_eq!(
            names(&for_app(&retain, "a").unwrap()),
            vec!["CAP_NET_ADMIN", "CAP_SYS_TIME"]
        );
        let remove = app(serde_json::json!([{"name": REMOVE_SET,
            "value": {"set": ["CAP_CHOWN", "CAP_NET_RAW"]}}]));
        let kept = names(&for_app(&remove, "a").unwrap());
        assert_eq!(kept.len(), DEFAULT.len() - 2);
        assert!(!kept.contains(&"CAP_CHOWN".to_string()));
        let bad = app(serde_json::json!([{"name": RETAIN_SET, "value": {"set": ["CAP_PONIES"]}}]));
        let err = for_app(&bad, "a").unwrap_err().to_string();
        assert!(err.contains("CAP_PONIES"), "{err}");
    }

    #[test]
    fn names_are_canonical() {
        assert_eq!(canonical("net_admin").unwrap(), "CAP_NET_ADMIN");
        assert_eq!(canonical("CAP_CHOWN").unwrap(), "CAP_CHOWN");
        assert!(canonical("ponies").is_err());
        assert!(all_names().contains(&"CAP_SYS_ADMIN".to_string()));
    }
}
