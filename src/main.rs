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
    match commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("rkt: {e:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn init_tracing(debug: bool) {
    let filter = if debug {
        // fuser logs every FUSE request at debug: a lazy pod would drown the start phases.
        tracing_subscriber::EnvFilter::new("debug,fuser=warn")
    } else {
        tracing_subscriber::EnvFilter::try_from_env("RKT_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"))
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}
