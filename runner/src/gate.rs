//! A one-shot gate between the supervisor and the pod's init: init waits at it until the
//! supervisor says the pod's lazy root filesystems are mounted (or that they could not be).
//!
//! It exists because the supervisor must stay single-threaded until init is cloned (init is
//! forked without exec, and glibc calls such as `setgroups` in the child of a multi-threaded
//! parent can wait forever on locks held by threads that do not exist in the child). The FUSE
//! servers are threads, so they start after the clone, and init waits here before it mounts
//! the overlays over them.

use std::io::{Read, Write};

use crate::error::{Context, Result, RunnerError};

const READY: u8 = b'1';
const FAILED: u8 = b'0';

/// The supervisor's end.
pub struct GateOpener(std::fs::File);

/// Init's end.
pub struct GateWaiter(std::fs::File);

/// A new gate (a pipe; both ends close on exec, so apps never inherit them).
pub fn gate() -> Result<(GateOpener, GateWaiter)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .ctx(|| "creating the pod start pipe".into())?;
    Ok((GateOpener(w.into()), GateWaiter(r.into())))
}

impl GateOpener {
    /// Let init go on.
    pub fn open(mut self) -> Result<()> {
        self.0
            .write_all(&[READY])
            .ctx(|| "telling the pod's init its root filesystems are ready".into())
    }

    /// Tell init to give up (the supervisor reports why).
    pub fn fail(mut self) {
        let _ = self.0.write_all(&[FAILED]);
    }
}

impl GateWaiter {
    /// Wait until the supervisor opens the gate. Failure, or the supervisor gone without a
    /// word (the pipe closed), is an error.
    pub fn wait(mut self) -> Result<()> {
        let mut b = [0u8; 1];
        loop {
            match self.0.read(&mut b) {
                Ok(1) if b[0] == READY => return Ok(()),
                Ok(_) => {
                    return Err(RunnerError::Invalid(
                        "the supervisor could not mount the pod's lazy root filesystems \
                         (its log says why)"
                            .into(),
                    ))
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).ctx(|| "waiting for the pod's root filesystems".into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_fails_and_notices_a_vanished_opener() {
        let (o, w) = gate().unwrap();
        o.open().unwrap();
        w.wait().unwrap();
        let (o, w) = gate().unwrap();
        o.fail();
        assert!(w.wait().is_err());
        let (o, w) = gate().unwrap();
        drop(o);
        assert!(w.wait().is_err());
    }
}
