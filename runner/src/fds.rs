//! Descriptors an app must not inherit.

use nix::fcntl::{fcntl, FcntlArg, FdFlag};

use crate::error::{Context, Result};

/// Mark every descriptor above stdin, stdout and stderr close-on-exec, just before an app's (or
/// an entered command's) execve: what rkt itself inherited from its caller (a directory of the
/// host, a socket) must not reach into the pod, where a directory descriptor alone is a way out
/// of the app's root. Linux 5.11 and later do it in one call; older kernels get it one
/// descriptor at a time from /proc/self/fd (the pod's /proc, mounted by then).
pub(crate) fn cloexec_above_stdio() -> Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC takes integers only and sets a flag on
    // descriptors of this process; it closes and frees nothing.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .ctx(|| "listing /proc/self/fd".into())?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2)
        .collect();
    for fd in fds {
        // The descriptor of the listing itself is gone by now: EBADF.
        match fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)) {
            Ok(_) | Err(nix::errno::Errno::EBADF) => {}
            Err(e) => return Err(e).ctx(|| format!("marking descriptor {fd} close-on-exec")),
        }
    }
    Ok(())
}
