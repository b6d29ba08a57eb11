//! `rkt`: the command line. Parses rkt's flags, sets up logging, runs one command and maps
//! failures to rkt's exit status 254.

mod cli;
mod commands;
mod duration;
mod fetch;
mod insecure;
mod output;
mod trust;

use std::process::ExitCode;

use clap::Parser;

/// rkt's exit status for its own failures.
const EXIT_FAILURE: u8 = 254;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_FAILURE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_tracing(cli.global.debug);
    if only_prints(&cli.command) {
        default_sigpipe();
    }
    match commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("rkt: {e:#}");
            ExitCode::from(EXIT_FAILURE)
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

fn default_sigpipe() {
    // SAFETY: installs SIG_DFL, no handler code; rkt is still single-threaded here.
    let _ = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        )
    };
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
