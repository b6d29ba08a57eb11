//! docker2aci: convert a Docker/OCI image (from a registry or a local archive) into a
//! squashed ACI file named like docker2aci names them (`library-nginx-latest.aci`).
//!
//! The image is pulled into a private temporary store and exported: the ACI is exactly the
//! image `rkt fetch docker://…` would store, so its `sha512` is that image's ID.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use rkt_docker::archive::ArchiveSource;
use rkt_docker::pull::ImageSource;
use rkt_docker::registry::{Options, RegistrySource};
use rkt_store::Store;

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
}

/// Convert a Docker or OCI image to an ACI.
#[derive(Parser, Debug)]
#[command(name = "docker2aci", version)]
struct Args {
    /// docker://[REGISTRY[:PORT]/]NAME[:TAG|@DIGEST], or a docker save / OCI archive or layout
    image: String,
    /// Which image of a multi-image archive (NAME[:TAG])
    #[arg(long = "image")]
    image_name: Option<String>,
    /// Write one ACI per layer (not supported: layered ACIs lose whiteouts; use the default)
    #[arg(long)]
    nosquash: bool,
    /// Compression of the written ACI
    #[arg(long, value_enum, default_value_t = Compression::Gzip)]
    compression: Compression,
    /// Allow plain-HTTP registries
    #[arg(long)]
    insecure_allow_http: bool,
    /// Directory to write the ACI into
    #[arg(long, default_value = ".")]
    output_dir: PathBuf,
    /// Print debug logs
    #[arg(long)]
    debug: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = if args.debug { "debug" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match run(&args) {
        Ok(path) => {
            println!("{}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("docker2aci: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// `library-nginx-latest.aci`, as docker2aci's `getSquashedFilename`.
fn output_name(repository: &str, tag: Option<&str>) -> String {
    let base = repository.replace('/', "-");
    match tag {
        Some(t) => format!("{base}-{t}.aci"),
        None => format!("{base}.aci"),
    }
}

fn run(args: &Args) -> Result<PathBuf> {
    if args.nosquash {
        bail!("--nosquash is not supported: per-layer ACIs cannot express whiteouts; convert squashed (the default)");
    }
    let mut source: Box<dyn ImageSource> = if args.image.starts_with("docker:") {
        let opts = Options {
            allow_http: args.insecure_allow_http,
            credentials: None,
            platform: Default::default(),
        };
        Box::new(RegistrySource::new(&args.image, opts)?)
    } else {
        let path = Path::new(&args.image);
        if !path.exists() {
            bail!(
                "{}: no such file; give docker://IMAGE or an archive path",
                path.display()
            );
        }
        Box::new(ArchiveSource::open(
            path,
            args.image_name.clone(),
            Default::default(),
        )?)
    };
    let resolved_name = {
        let r = source.resolve()?;
        output_name(&r.image.repository, r.image.tag.as_deref())
    };
    let tmp = tempfile::Builder::new()
        .prefix("docker2aci-")
        .tempdir()
        .context("cannot create a temporary store")?;
    let mut store = Store::open(tmp.path())?;
    let outcome = rkt_docker::pull(&mut store, source.as_mut())
        .with_context(|| format!("cannot convert {}", args.image))?;
    let dest = args.output_dir.join(&resolved_name);
    let staging = args.output_dir.join(format!(".{resolved_name}.partial"));
    let file = std::fs::File::create(&staging)
        .with_context(|| format!("cannot create {}", staging.display()))?;
    let result = (|| -> Result<()> {
        let mut w = std::io::BufWriter::new(file);
        match args.compression {
            Compression::None => {
                store.export(&outcome.id, &mut w)?;
            }
            Compression::Gzip => {
                let mut gz = flate2::write::GzEncoder::new(&mut w, flate2::Compression::default());
                store.export(&outcome.id, &mut gz)?;
                gz.finish()?;
            }
        }
        w.flush()?;
        w.get_ref().sync_all()?;
        std::fs::rename(&staging, &dest)?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&staging);
        return Err(e.context(format!("cannot write {}", dest.display())));
    }
    Ok(dest)
}
