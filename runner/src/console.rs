//! The terminal of `rkt run --interactive`, as systemd-nspawn (rkt's stage1) gave it: when
//! `rkt run`'s stdin is a terminal, the app gets a pseudo-terminal of its own as stdin, stdout,
//! stderr and controlling terminal (it leads a new session), and the supervisor relays bytes
//! between it and the user's terminal, which it puts in raw mode meanwhile. So the app's shell
//! has job control, ^C interrupts the app's foreground job (not `rkt run`), and window size
//! changes reach the app.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::mpsc;
use std::time::Duration;

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::sys::termios::{self, SetArg, Termios};

use crate::error::{Context, Result};

/// How long the supervisor waits for the app's last output once the pod has exited.
const DRAIN: Duration = Duration::from_secs(2);

/// A pseudo-terminal for the interactive app, made before the pod's init is forked.
#[derive(Debug)]
pub(crate) struct Console {
    master: OwnedFd,
    slave: OwnedFd,
}

impl Console {
    /// A pseudo-terminal with the size and settings of `rkt run`'s stdin, if that is a
    /// terminal (else None: the app simply inherits stdin). Both ends are close-on-exec.
    pub fn open_if_terminal() -> Result<Option<Console>> {
        let stdin = std::io::stdin();
        if !nix::unistd::isatty(stdin.as_raw_fd()).unwrap_or(false) {
            return Ok(None);
        }
        let settings = termios::tcgetattr(stdin.as_fd()).ctx(|| "reading the terminal".into())?;
        let size = window_size(stdin.as_raw_fd());
        let pty = nix::pty::openpty(size.as_ref(), Some(&settings))
            .ctx(|| "opening a pseudo-terminal for the app".into())?;
        for fd in [&pty.master, &pty.slave] {
            fcntl(fd.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
                .ctx(|| "setting close-on-exec on the pseudo-terminal".into())?;
        }
        Ok(Some(Console {
            master: pty.master,
            slave: pty.slave,
        }))
    }

    /// The descriptors as the pod's processes (forked from the supervisor) see them.
    pub fn fds(&self) -> ConsoleFds {
        ConsoleFds {
            master: self.master.as_raw_fd(),
            slave: self.slave.as_raw_fd(),
        }
    }

    /// In the supervisor, once the pod's init exists: close our copy of the app's end, put
    /// the user's terminal in raw mode and relay in both directions.
    pub fn relay(self) -> Result<Relay> {
        let Console { master, slave } = self;
        drop(slave);
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).ctx(|| "reading the terminal".into())?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw)
            .ctx(|| "putting the terminal in raw mode".into())?;
        // From here on the terminal is restored on every path (Relay's Drop).
        let mut relay = Relay {
            saved: Some(saved),
            master: std::sync::Arc::new(master),
            done: None,
        };
        let input = relay.master.clone();
        std::thread::Builder::new()
            .name("rkt-console-in".into())
            .spawn(move || copy(&mut std::io::stdin(), &mut FdFile(&input)))
            .ctx(|| "starting the terminal relay".into())?;
        let output = relay.master.clone();
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("rkt-console-out".into())
            .spawn(move || {
                copy(&mut FdFile(&output), &mut std::io::stdout());
                let _ = tx.send(());
            })
            .ctx(|| "starting the terminal relay".into())?;
        relay.done = Some(rx);
        Ok(relay)
    }
}

/// The raw descriptor numbers of a [`Console`], valid in the supervisor's forked children.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConsoleFds {
    pub master: RawFd,
    pub slave: RawFd,
}

/// The running relay; restores the user's terminal when finished or dropped.
pub(crate) struct Relay {
    saved: Option<Termios>,
    master: std::sync::Arc<OwnedFd>,
    done: Option<mpsc::Receiver<()>>,
}

impl Relay {
    /// Give the app's terminal the user's terminal's size (on SIGWINCH).
    pub fn resize(&self) {
        if let Some(size) = window_size(std::io::stdin().as_raw_fd()) {
            // SAFETY: TIOCSWINSZ reads a valid, owned winsize; the descriptor is the master,
            // open for as long as `self` lives.
            unsafe {
                libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &size);
            }
        }
    }

    /// After the pod exited: wait (briefly) until the app's last output is shown, then restore
    /// the terminal.
    pub fn finish(mut self) {
        if let Some(done) = self.done.take() {
            let _ = done.recv_timeout(DRAIN);
        }
        self.restore();
    }

    fn restore(&mut self) {
        if let Some(saved) = self.saved.take() {
            let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSADRAIN, &saved);
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.restore();
    }
}

/// Copy until end of file or an error (the master reads EIO once every app end is closed).
fn copy(from: &mut impl Read, to: &mut impl Write) {
    let mut buf = [0u8; 4096];
    loop {
        match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if to.write_all(&buf[..n]).and_then(|()| to.flush()).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Read and write on a borrowed descriptor.
struct FdFile<'a>(&'a OwnedFd);

impl Read for FdFile<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        nix::unistd::read(self.0.as_raw_fd(), buf).map_err(std::io::Error::from)
    }
}

impl Write for FdFile<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        nix::unistd::write(self.0, buf).map_err(std::io::Error::from)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn window_size(fd: RawFd) -> Option<libc::winsize> {
    // SAFETY: winsize is plain old data; all-zero is a valid value.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes a winsize into the valid, owned `size`.
    let r = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut size) };
    (r == 0).then_some(size)
}

/// In the app's process, before exec: lead a new session whose controlling terminal is the
/// app's end of the console (owned by the app's user), on stdin, stdout and stderr.
pub(crate) fn attach(fds: ConsoleFds, uid: nix::unistd::Uid, gid: nix::unistd::Gid) -> Result<()> {
    nix::unistd::fchown(fds.slave, Some(uid), Some(gid))
        .ctx(|| "giving the console to the app's user".into())?;
    nix::unistd::setsid().ctx(|| "setsid for the interactive app".into())?;
    // SAFETY: TIOCSCTTY with 0 (never steal) on a descriptor this process owns.
    if unsafe { libc::ioctl(fds.slave, libc::TIOCSCTTY, 0) } < 0 {
        return Err(std::io::Error::last_os_error())
            .ctx(|| "making the console the app's controlling terminal".into());
    }
    for target in 0..=2 {
        nix::unistd::dup2(fds.slave, target).ctx(|| "attaching the console".into())?;
    }
    Ok(())
}
