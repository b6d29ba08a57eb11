//! One module per command; each returns the exit status to use on success.

mod fetch;
mod image;
mod trust;

use anyhow::{Context, Result};
use rkt_store::Store;

use crate::cli::{Cli, Command, GlobalArgs};

pub fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Fetch(args) => fetch::run(&cli.global, args),
        Command::Image(cmd) => image::run(&cli.global, cmd),
        Command::Trust(args) => trust::run(&cli.global, args),
        Command::Version => {
            println!("rkt Version: {}", env!("CARGO_PKG_VERSION"));
            println!("appc Version: 0.8.11");
            Ok(0)
        }
    }
}

/// Open the store named by `--dir`.
pub fn open_store(global: &GlobalArgs) -> Result<Store> {
    Store::open(&global.dir)
        .with_context(|| format!("cannot open the image store in {}", global.dir.display()))
}

/// `sha512-` + 32 hex digits, as rkt prints image IDs unless asked for the full hash.
pub fn short_id(id: &str, full: bool) -> &str {
    if full {
        id
    } else {
        &id[..id.len().min(7 + 32)]
    }
}
