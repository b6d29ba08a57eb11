//! `rkt`: the command line. Parses rkt's flags, sets up logging, runs one command and maps
//! failures to rkt's exit status 254.
//!
//! The entry point is C's `main`, not Rust's: std's start-up code before Rust's `main` reads
//! and parses /proc/self/maps (to find the main thread's stack for its overflow guard) and sets
//! up an alternate signal stack, about a tenth of a millisecond of every rkt process — two per
//! pod start, counting `rkt gc`. What else it does, rkt does itself ([`std_fds`], SIGPIPE,
//! flushing stdout); a stack overflow is then a plain SIGSEGV instead of a message.
// The test harness brings its own main.
#![cfg_attr(not(test), no_main)]

mod cli;
mod commands;
mod duration;
mod fetch;
mod insecure;
mod output;
mod trust;

use clap::Parser;
use nix::sys::signal::{signal, SigHandler, Signal};

/// rkt's exit status for its own failures.
const EXIT_FAILURE: u8 = 254;

#[cfg(not(test))]
#[no_mangle]
pub extern "C" fn main(
    _argc: std::os::raw::c_int,
    _argv: *const *const std::os::raw::c_char,
) -> std::os::raw::c_int {
    use std::io::Write;
    // std reads the arguments itself (glibc passes them to its .init_array hook).
    std_fds();
    let code = std::panic::catch_unwind(rkt).unwrap_or(EXIT_FAILURE);
    let _ = std::io::stdout().flush();
    code.into()
}

#[cfg_attr(test, allow(dead_code))]
fn rkt() -> u8 {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_FAILURE } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    init_tracing(cli.global.debug);
    // Listings end quietly on a closed pipe; everything else gets EPIPE as an error.
    let sigpipe = match only_prints(&cli.command) {
        true => SigHandler::SigDfl,
        false => SigHandler::SigIgn,
    };
    // SAFETY: installs SIG_DFL or SIG_IGN, no handler code; rkt is still single-threaded here.
    let _ = unsafe { signal(Signal::SIGPIPE, sigpipe) };
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rkt: {e:#}");
            EXIT_FAILURE
        }
    }
}

/// Open /dev/null on any of descriptors 0, 1 and 2 that rkt was started without, as std does
/// before Rust's `main`: otherwise the first files rkt opens would take their numbers, and its
/// output would go into them.
#[cfg_attr(test, allow(dead_code))]
fn std_fds() {
    use std::os::fd::IntoRawFd;
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: `fds` is a valid array of three pollfd for the duration of the call.
    if unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) } < 0 {
        return;
    }
    for p in fds.iter().filter(|p| p.revents & libc::POLLNVAL != 0) {
        // Opened in order, each takes the lowest free number: the closed one.
        if let Ok(f) = std::fs::OpenOptions::new()
            .read(p.fd == 0)
            .write(p.fd != 0)
            .open("/dev/null")
        {
            let _ = f.into_raw_fd();
        }
    }
}

/// Commands whose only output is a listing: piped into `head`, they should end quietly when
/// the reader goes away, as other Unix tools do, instead of failing on the broken pipe.
fn only_prints(c: &cli::Command) -> bool {
    use cli::{Command, ImageCommand};
    matches!(
        c,
        Command::List(_)
            | Command::Status(_)
            | Command::CatManifest(_)
            | Command::Version
            | Command::Image(ImageCommand::List(_) | ImageCommand::CatManifest { .. })
    )
}

fn init_tracing(debug: bool) {
    use tracing_subscriber::EnvFilter;
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    if debug {
        // fuser logs every FUSE request at debug: a lazy pod would drown the start phases.
        logs.with_env_filter(EnvFilter::new("debug,fuser=warn"))
            .init();
    } else if let Ok(filter) = EnvFilter::try_from_env("RKT_LOG") {
        logs.with_env_filter(filter).init();
    } else {
        // A plain level, not a parsed filter: every rkt process starts here, pods included.
        logs.with_max_level(tracing::Level::WARN).init();
    }
}
