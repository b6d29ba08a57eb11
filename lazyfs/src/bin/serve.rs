//! `rkt-lazyfs-serve [--debug] DIR IMAGE MOUNTPOINT`: serve an image's lazy tree until SIGTERM
//! or SIGINT, then unmount. For benchmarks, tests and debugging; pods use the library from
//! their supervisor.

use std::path::Path;
use std::process::ExitCode;

use nix::sys::signal::{SigSet, Signal};

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let debug = args.first().is_some_and(|a| a == "--debug");
    if debug {
        args.remove(0);
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(if debug { "debug" } else { "warn" })
        .init();
    let [dir, image, mountpoint] = args.as_slice() else {
        eprintln!("usage: rkt-lazyfs-serve [--debug] DIR IMAGE MOUNTPOINT");
        return ExitCode::from(2);
    };
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    if let Err(e) = signals.thread_block() {
        eprintln!("rkt-lazyfs-serve: blocking signals: {e}");
        return ExitCode::from(254);
    }
    let session = match rkt_lazyfs::LazyFs::mount(Path::new(dir), image, Path::new(mountpoint)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rkt-lazyfs-serve: {e}");
            return ExitCode::from(254);
        }
    };
    println!("mounted passthrough={}", session.passthrough());
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let _ = signals.wait();
    let stats = session.stats();
    eprintln!("rkt-lazyfs-serve: {stats:?}");
    match session.unmount() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rkt-lazyfs-serve: {e}");
            ExitCode::from(254)
        }
    }
}
