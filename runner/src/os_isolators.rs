//! The per-process appc isolators: `os/linux/no-new-privileges` (the app and its children
//! can never gain privileges through setuid binaries or file capabilities) and
//! `os/linux/oom-score-adj` (how readily the kernel's OOM killer picks the app).

use rkt_store::schema::App;

use crate::error::{Context, Result, RunnerError};

/// What an app's isolators ask of its process.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ProcessIsolators {
    pub no_new_privileges: bool,
    pub oom_score_adj: Option<i64>,
}

pub(crate) fn for_app(app: &App, name: &str) -> Result<ProcessIsolators> {
    let mut out = ProcessIsolators::default();
    for iso in &app.isolators {
        match iso.name.as_str() {
            "os/linux/no-new-privileges" => {
                out.no_new_privileges = iso.value.as_bool().ok_or_else(|| {
                    RunnerError::Invalid(format!("app {name}: no-new-privileges must be a boolean"))
                })?
            }
            "os/linux/oom-score-adj" => {
                let v = iso.value.as_i64().filter(|v| (-1000..=1000).contains(v));
                out.oom_score_adj = Some(v.ok_or_else(|| {
                    RunnerError::Invalid(format!(
                        "app {name}: oom-score-adj must be an integer from -1000 to 1000"
                    ))
                })?);
            }
            _ => {}
        }
    }
    Ok(out)
}

impl ProcessIsolators {
    /// In the app's process, before it forks anything: set its OOM score adjustment (its
    /// handlers and the app inherit it).
    pub(crate) fn apply_oom_score(&self) -> Result<()> {
        match self.oom_score_adj {
            Some(v) => std::fs::write("/proc/self/oom_score_adj", v.to_string())
                .ctx(|| format!("setting oom_score_adj to {v}")),
            None => Ok(()),
        }
    }

    /// Right before exec: no new privileges, if asked.
    pub(crate) fn apply_no_new_privileges(&self) -> Result<()> {
        if !self.no_new_privileges {
            return Ok(());
        }
        // SAFETY: prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) takes integers only and touches no
        // memory of ours.
        let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
        if rc != 0 {
            return Err(RunnerError::Invalid(format!(
                "cannot set no-new-privileges: {}",
                std::io::Error::last_os_error()
            )));
        }
        Ok(())
    }
}
