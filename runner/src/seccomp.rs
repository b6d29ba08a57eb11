//! Seccomp filters for apps: appc's `os/linux/seccomp-remove-set` (these system calls are
//! refused) and `os/linux/seccomp-retain-set` (only these are allowed), and, for apps with
//! neither, a default remove set of calls a container has no business making (loading kernel
//! modules and new kernels, rebooting, setting the clock, mounting, entering or creating
//! namespaces, keyrings, BPF and perf). `--insecure-options=seccomp` turns filtering off (it is
//! recorded as a retain set of `@appc.io/all`).
//!
//! The filter is installed in the app's process while it still has its capabilities, just
//! before it takes the app's user, so it does not need (or set) no-new-privileges. A retain
//! set therefore always also allows the few calls that the start of the app needs after that
//! point ([`STARTUP`]).

use std::str::FromStr;

use rkt_store::schema::App;
use syscalls::Sysno;

use crate::bpf::Action;
use crate::error::{Result, RunnerError};

/// A seccomp filter program ([`crate::bpf`]).
pub(crate) type BpfProgram = Vec<libc::sock_filter>;

pub const REMOVE_SET: &str = "os/linux/seccomp-remove-set";
pub const RETAIN_SET: &str = "os/linux/seccomp-retain-set";

/// Names usable in a remove set for the default set itself (rkt's spelling, and ours).
const DEFAULT_NAMES: [&str; 2] = ["@rkt/default-blacklist", "@rkt-rs/default-remove-set"];
/// appc's wildcards: nothing (in a remove set), everything (in a retain set).
const EMPTY: &str = "@appc.io/empty";
pub const ALL: &str = "@appc.io/all";

/// The default remove set.
pub const DEFAULT_REMOVE: &[&str] = &[
    "_sysctl",
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "get_kernel_syms",
    "init_module",
    "ioperm",
    "iopl",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mount",
    "move_mount",
    "nfsservctl",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pivot_root",
    "query_module",
    "quotactl",
    "reboot",
    "request_key",
    "setns",
    "settimeofday",
    "swapoff",
    "swapon",
    "sysfs",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
];

/// Calls the app's process makes between installing a retain-set filter and the app's first
/// instruction (dropping to the app's user, its working directory, signal set-up, exec).
const STARTUP: &[&str] = &[
    "setgroups",
    "setgid",
    "setuid",
    "chdir",
    "rt_sigprocmask",
    "rt_sigaction",
    "prctl",
    "execve",
    "write",
    "exit",
    "exit_group",
];

/// What an app's filter does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Policy {
    /// No filter.
    Off,
    /// Refuse these calls (with `errno`, or kill the process if None).
    Remove(Vec<Sysno>, Option<i32>),
    /// Allow only these calls; others get `errno`, or kill the process if None.
    Retain(Vec<Sysno>, Option<i32>),
}

/// The policy of `app`.
pub(crate) fn for_app(app: &App, name: &str) -> Result<Policy> {
    let err = |e: String| RunnerError::Invalid(format!("app {name}: {e}"));
    let found = app
        .isolators
        .iter()
        .find(|i| matches!(i.name.as_str(), REMOVE_SET | RETAIN_SET));
    let Some(iso) = found else {
        return Ok(Policy::Remove(
            known(DEFAULT_REMOVE).collect(),
            Some(libc::EPERM),
        ));
    };
    let kind = iso.name.as_str();
    let names: Vec<&str> = iso
        .value
        .get("set")
        .and_then(|s| s.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let errno = match iso.value.get("errno").and_then(|e| e.as_str()) {
        None | Some("") => None,
        Some(e) => Some(errno(e).map_err(|e| err(format!("{kind}: {e}")))?),
    };
    let calls = expand(&names).map_err(|e| err(format!("{kind}: {e}")))?;
    Ok(match kind {
        RETAIN_SET if names.contains(&ALL) => Policy::Off,
        RETAIN_SET => Policy::Retain(calls, errno),
        _ if names.contains(&EMPTY) => Policy::Off,
        _ => Policy::Remove(calls, errno),
    })
}

/// The calls of one of the lists above that this architecture has (a test checks they all are).
fn known(names: &'static [&str]) -> impl Iterator<Item = Sysno> {
    names.iter().filter_map(|s| Sysno::from_str(s).ok())
}

/// System call names (and the default-set names) as numbers; wildcards are left out.
pub fn expand(names: &[&str]) -> std::result::Result<Vec<Sysno>, String> {
    let mut out = Vec::new();
    for n in names {
        if *n == EMPTY || *n == ALL {
            continue;
        }
        if DEFAULT_NAMES.contains(n) {
            out.extend(known(DEFAULT_REMOVE));
            continue;
        }
        let call = Sysno::from_str(n.trim()).map_err(|()| {
            format!("unknown system call {n:?} (names as in syscalls(2), e.g. mkdir)")
        })?;
        out.push(call);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// An errno name (`EPERM`, `EACCES`, …) as its number.
pub fn errno(name: &str) -> std::result::Result<i32, String> {
    const KNOWN: &[(&str, i32)] = &[
        ("EPERM", libc::EPERM),
        ("ENOENT", libc::ENOENT),
        ("EIO", libc::EIO),
        ("EACCES", libc::EACCES),
        ("EFAULT", libc::EFAULT),
        ("EBUSY", libc::EBUSY),
        ("EEXIST", libc::EEXIST),
        ("EINVAL", libc::EINVAL),
        ("ENOSPC", libc::ENOSPC),
        ("EROFS", libc::EROFS),
        ("ENOSYS", libc::ENOSYS),
        ("ENOTSUP", libc::ENOTSUP),
        ("EOPNOTSUPP", libc::EOPNOTSUPP),
    ];
    KNOWN
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let names: Vec<&str> = KNOWN.iter().map(|(n, _)| *n).collect();
            format!("errno {name:?} is not one of {}", names.join(", "))
        })
}

/// The BPF program `app`'s isolators ask for, if any.
pub(crate) fn filter_for(app: &App, name: &str) -> Result<Option<BpfProgram>> {
    program(&for_app(app, name)?)
}

/// The BPF program for `policy` (None for [`Policy::Off`]).
pub(crate) fn program(policy: &Policy) -> Result<Option<BpfProgram>> {
    let refuse = |errno: Option<i32>| match errno {
        Some(e) => u16::try_from(e)
            .map(Action::errno)
            .map_err(|_| RunnerError::Invalid(format!("seccomp errno {e} is out of range"))),
        None => Ok(Action::KILL_PROCESS),
    };
    let (calls, matched, other) = match policy {
        Policy::Off => return Ok(None),
        Policy::Remove(calls, errno) => (calls.clone(), refuse(*errno)?, Action::ALLOW),
        Policy::Retain(calls, errno) => {
            let mut calls = calls.clone();
            calls.extend(known(STARTUP));
            (calls, Action::ALLOW, refuse(*errno)?)
        }
    };
    let arch = crate::bpf::native_arch().ok_or_else(|| {
        RunnerError::Invalid(format!(
            "seccomp filters are not supported on {}; run with --insecure-options=seccomp",
            std::env::consts::ARCH
        ))
    })?;
    let nrs: Vec<u32> = calls
        .iter()
        .filter_map(|c| u32::try_from(c.id()).ok())
        .collect();
    let refused = if matched == Action::ALLOW {
        other
    } else {
        matched
    };
    Ok(Some(crate::bpf::program(
        arch, &nrs, matched, other, refused,
    )))
}

/// Install `prog` for this process (and what it execs). Needs CAP_SYS_ADMIN, which the app's
/// process still has at this point; no-new-privileges is left to its own isolator.
pub(crate) fn install(prog: &BpfProgram) -> Result<()> {
    let len = libc::c_ushort::try_from(prog.len())
        .map_err(|_| RunnerError::Invalid("seccomp filter too long".into()))?;
    let fprog = libc::sock_fprog {
        len,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: `fprog` points at `prog`'s instructions, which outlive the call; the kernel
    // copies the program during prctl and keeps no pointer into our memory.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER as libc::c_ulong,
            &fprog as *const libc::sock_fprog,
        )
    };
    if rc != 0 {
        return Err(RunnerError::Invalid(format!(
            "cannot install the app's seccomp filter: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_wildcards_and_errnos() {
        assert!(expand(&["mkdir", "@appc.io/empty"]).unwrap().len() == 1);
        assert!(expand(&["@rkt/default-blacklist"]).unwrap().len() >= 30);
        assert!(expand(&["no_such_call"])
            .unwrap_err()
            .contains("no_such_call"));
        assert_eq!(errno("EACCES").unwrap(), libc::EACCES);
        assert!(errno("EPONIES").is_err());
        for name in DEFAULT_REMOVE.iter().chain(STARTUP) {
            assert!(
                Sysno::from_str(name).is_ok(),
                "{name} is not a system call here"
            );
        }
        let prog = program(&Policy::Remove(expand(&["mkdir"]).unwrap(), Some(1))).unwrap();
        assert!(prog.is_some_and(|p| !p.is_empty()));
        assert!(program(&Policy::Off).unwrap().is_none());
    }
}
