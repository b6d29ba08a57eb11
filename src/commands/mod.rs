//! One module per command; each returns the exit status to use on success.

mod fetch;
mod image;
mod metadata;
mod pod_list;
mod pod_net;
pub use pod_net::NetFlags;
mod pod_ops;
mod run;
mod run_args;
mod trust;

use anyhow::{Context, Result};
use rkt_store::Store;

use crate::cli::{Cli, Command, GlobalArgs};

pub fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Fetch(args) => fetch::run(&cli.global, args),
        Command::Image(cmd) => image::run(&cli.global, cmd),
        Command::Trust(args) => trust::run(&cli.global, args),
        Command::Run(args) => run::run(&cli.global, &args.args, false),
        Command::Prepare(args) => run::run(&cli.global, &args.args, true),
        Command::RunPrepared(args) => run::run_prepared(&cli.global, &args),
        Command::List(args) => pod_list::list(&cli.global, &args),
        Command::Status(args) => pod_list::status(&cli.global, &args),
        Command::CatManifest(args) => pod_list::cat_manifest(&cli.global, &args),
        Command::Stop(args) => pod_ops::stop(&cli.global, &args),
        Command::Enter(args) => pod_ops::enter(&cli.global, &args),
        Command::Rm(args) => pod_ops::rm(&cli.global, &args),
        Command::Gc(args) => pod_ops::gc(&cli.global, &args),
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

/// rkt's pods under `--dir`.
pub fn pods(global: &GlobalArgs) -> rkt_runner::Pods {
    rkt_runner::Pods::new(&global.dir)
}

/// Refuse commands that need root, saying so.
pub fn require_root(command: &str) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        anyhow::bail!(
            "`rkt {command}` needs root: it creates namespaces and mounts; run it with sudo"
        );
    }
    Ok(())
}

/// The pod UUIDs a command names: its arguments, or the content of `--uuid-file`.
pub fn pod_uuids(args: &[String], file: Option<&std::path::Path>) -> Result<Vec<String>> {
    match (args.is_empty(), file) {
        (false, None) => Ok(args.to_vec()),
        (true, Some(f)) => {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("cannot read the pod UUID from {}", f.display()))?;
            Ok(vec![text.trim().to_string()])
        }
        (false, Some(_)) => anyhow::bail!("give either pod UUIDs or --uuid-file, not both"),
        (true, None) => {
            anyhow::bail!("no pod given: name a pod UUID (or prefix) or use --uuid-file")
        }
    }
}
