//! Named network namespaces: a new namespace kept alive by a bind mount on a file (as
//! `ip netns add` does), with loopback up.

use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use crate::{NetError, Result};

/// Creates a network namespace bind-mounted on `path` (the file is created; its directory must
/// exist), with `lo` up. On failure nothing is left behind.
pub(crate) fn create(path: &Path) -> Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| NetError::io("cannot create the network namespace file", path, e))?;
    let target = path.to_path_buf();
    // A short-lived thread enters the new namespace, so the caller's threads never change
    // namespace; the bind mount keeps the namespace alive after the thread exits.
    let made = std::thread::spawn(move || -> Result<()> {
        unshare(CloneFlags::CLONE_NEWNET).map_err(|e| {
            NetError::io("cannot create a network namespace for", &target, e.into())
        })?;
        loopback_up().map_err(|e| NetError::io("cannot bring up lo in", &target, e))?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| {
            NetError::io(
                "cannot bind-mount the network namespace on",
                &target,
                e.into(),
            )
        })
    })
    .join()
    .unwrap_or_else(|_| {
        Err(NetError::io(
            "network namespace thread panicked for",
            path,
            std::io::ErrorKind::Other.into(),
        ))
    });
    if made.is_err() {
        let _ = std::fs::remove_file(path);
    }
    made
}

/// A TCP socket listening on `addr` inside the network namespace at `netns` (e.g. the pod's
/// own 127.0.0.1, which only the pod's processes can reach). The socket stays in that namespace
/// whichever thread accepts on it; a short-lived thread enters the namespace, so the caller's
/// threads never change namespace.
pub fn listen_in(netns: &Path, addr: SocketAddr) -> Result<TcpListener> {
    let ns = std::fs::File::open(netns)
        .map_err(|e| NetError::io("cannot open the network namespace", netns, e))?;
    let path = netns.to_path_buf();
    std::thread::spawn(move || -> Result<TcpListener> {
        setns(&ns, CloneFlags::CLONE_NEWNET)
            .map_err(|e| NetError::io("cannot enter the network namespace", &path, e.into()))?;
        TcpListener::bind(addr).map_err(|e| {
            NetError::io(
                "cannot listen in the network namespace",
                format!("{} on {addr}", path.display()),
                e,
            )
        })
    })
    .join()
    .unwrap_or_else(|_| {
        Err(NetError::io(
            "network namespace thread panicked for",
            netns,
            std::io::ErrorKind::Other.into(),
        ))
    })
}

/// Unmounts and removes a namespace made by [`create`]; a missing or unmounted file is fine.
pub(crate) fn remove(path: &Path) -> Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => {
            return Err(NetError::io(
                "cannot unmount the network namespace",
                path,
                e.into(),
            ))
        }
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(NetError::io(
            "cannot remove the network namespace file",
            path,
            e,
        )),
        _ => Ok(()),
    }
}

/// Sets IFF_UP on `lo` of the calling thread's network namespace.
fn loopback_up() -> std::io::Result<()> {
    // SAFETY: socket(2) with constant arguments; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a freshly created socket that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the name and writes ifru_flags of a valid, owned ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: ifru_flags was just written by the kernel.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads a valid, owned ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpStream;

    /// Connects to `addr` from inside the namespace at `ns`.
    fn connect_in(ns: &Path, addr: SocketAddr) -> std::io::Result<TcpStream> {
        let ns = std::fs::File::open(ns)?;
        std::thread::spawn(move || {
            setns(&ns, CloneFlags::CLONE_NEWNET)?;
            TcpStream::connect(addr)
        })
        .join()
        .expect("connect thread")
    }

    /// Removes the namespace on every path, panics included.
    struct Ns(std::path::PathBuf);

    impl Drop for Ns {
        fn drop(&mut self) {
            let _ = remove(&self.0);
        }
    }

    #[test]
    fn a_socket_made_in_a_namespace_is_reachable_there_only() {
        let tmp = tempfile::tempdir().unwrap();
        create(&tmp.path().join("ns")).unwrap();
        let ns = Ns(tmp.path().join("ns"));
        let listener = listen_in(&ns.0, SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(
            connect_in(&ns.0, addr).is_ok(),
            "not reachable inside the namespace"
        );
        assert!(
            TcpStream::connect(addr).is_err(),
            "reachable from the caller's namespace"
        );
    }

    #[test]
    fn listening_in_something_that_is_not_a_namespace_fails_clearly() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("plain");
        std::fs::write(&file, "").unwrap();
        let err = listen_in(&file, SocketAddr::from(([127, 0, 0, 1], 0))).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("cannot enter the network namespace") && text.contains("plain"),
            "{text}"
        );
        let err = listen_in(
            &tmp.path().join("missing"),
            SocketAddr::from(([127, 0, 0, 1], 0)),
        )
        .unwrap_err();
        assert!(err.to_string().contains("cannot open"), "{err}");
    }
}
