//! Signals and processes shared by the supervisor, the pod's init and the app supervisors:
//! each blocks the signals it handles and waits for them synchronously (no handlers).

use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use crate::error::{Context, Result};

/// The signals the pod's processes handle.
pub fn handled() -> SigSet {
    let mut s = SigSet::empty();
    for sig in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGCHLD,
        Signal::SIGALRM,
    ] {
        s.add(sig);
    }
    s
}

/// Block the handled signals in this process (inherited by its children until exec).
pub fn block() -> Result<()> {
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&handled()), None)
        .ctx(|| "blocking signals".into())
}

/// Unblock every signal, before exec of an app.
pub fn unblock_all() {
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

/// Give the program about to be exec'd the default disposition of every standard signal.
/// rkt ignores SIGPIPE (src/main.rs), and whoever started rkt may ignore others (`nohup`:
/// SIGHUP); an ignored signal stays ignored across `execve`. Without this, `yes | head -1` in
/// a pod prints "Broken pipe" instead of `yes` ending quietly, and shells cannot even trap such
/// signals (POSIX keeps signals ignored on entry ignored).
pub fn default_dispositions() {
    for sig in Signal::iterator() {
        if matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: installs SIG_DFL, no handler code; called in a single-threaded child just
        // before execve, so no other thread observes the change.
        let _ = unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigDfl) };
    }
}

/// Wait for one of the handled signals.
pub fn wait() -> Result<Signal> {
    handled().wait().ctx(|| "waiting for signals".into())
}

/// An exit status as a shell reports it: the code, or 128 + the signal number.
pub fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, c) => Some(c),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

/// `clone(2)` like `fork`, with extra namespace flags. Returns `None` in the child.
pub fn clone_process(flags: CloneFlags) -> Result<Option<Pid>> {
    let bits = flags.bits() as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: with a null stack, clone behaves as fork: the child continues on a copy of this
    // (single-threaded) process's stack; no other thread can hold a lock at this point.
    let ret = unsafe { libc::syscall(libc::SYS_clone, bits, 0usize, 0usize, 0usize, 0usize) };
    match ret {
        -1 => Err(std::io::Error::last_os_error()).ctx(|| "creating the pod's init (clone)".into()),
        0 => Ok(None),
        pid => Ok(Some(Pid::from_raw(pid as i32))),
    }
}

/// Fork. Returns `None` in the child.
pub fn fork() -> Result<Option<Pid>> {
    clone_process(CloneFlags::empty())
}

/// End a forked child at once (no destructors, no buffered output of the parent flushed twice).
pub fn exit_now(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stderr().flush();
    // SAFETY: _exit ends the process immediately; nothing runs after it.
    unsafe { libc::_exit(code) }
}
