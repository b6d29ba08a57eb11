//! docker2aci: convert a Docker/OCI image (from a registry or a local archive) into a
//! squashed ACI file named like docker2aci names them (`library-nginx-latest.aci`), or with
//! `--nosquash` into one ACI per layer (`library-nginx-latest-linux-amd64-0.aci` is the top,
//! runnable one; the base layer has the highest number).
//!
//! The image is pulled into a private temporary store and exported: the squashed ACI is
//! exactly the image `rkt fetch docker://…` would store, so its `sha512` is that image's ID.
//! Per-layer ACIs render, through their dependencies, to exactly that image's rootfs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use rkt_docker::archive::ArchiveSource;
use rkt_docker::auth::Credentials;
use rkt_docker::pull::ImageSource;
use rkt_docker::registry::{Options, RegistrySource};
use rkt_store::docker::Platform;
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
    /// Write one ACI per layer; the top one depends on the others and is the runnable image
    #[arg(long)]
    nosquash: bool,
    /// Compression of the written ACI
    #[arg(long, value_enum, default_value_t = Compression::Gzip)]
    compression: Compression,
    /// Allow plain-HTTP registries
    #[arg(long)]
    insecure_allow_http: bool,
    /// For manifest lists and OCI indexes: the platform to convert (OS/ARCH[/VARIANT])
    #[arg(long, default_value = "linux/amd64", value_parser = Platform::parse)]
    platform: Platform,
    /// Registry user name (default: from ~/.docker/config.json or ~/.dockercfg)
    #[arg(long, requires = "password")]
    username: Option<String>,
    /// Registry password (with --username)
    #[arg(long, requires = "username")]
    password: Option<String>,
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
        Ok(paths) => {
            for path in paths {
                println!("{}", path.display());
            }
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

fn run(args: &Args) -> Result<Vec<PathBuf>> {
    let mut source: Box<dyn ImageSource> = if args.image.starts_with("docker:") {
        let registry = rkt_docker::DockerRef::parse(&args.image)?.registry;
        let opts = Options {
            allow_http: args.insecure_allow_http,
            credentials: credentials(args)?,
            platform: args.platform.clone(),
            credentials_hint: format!(
                "pass --username and --password, or log in with `docker login {registry}` \
                 (docker2aci reads $HOME/.docker/config.json)"
            ),
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
            args.platform.clone(),
        )?)
    };
    let (repository, tag) = {
        let r = source.resolve()?;
        (r.image.repository.clone(), r.image.tag.clone())
    };
    let tmp = tempfile::Builder::new()
        .prefix("docker2aci-")
        .tempdir()
        .context("cannot create a temporary store")?;
    let mut store = Store::open(tmp.path())?;
    let outcome = rkt_docker::pull(&mut store, source.as_mut())
        .with_context(|| format!("cannot convert {}", args.image))?;
    if args.nosquash {
        return write_layers(args, &mut store, &outcome.id, &repository, tag.as_deref());
    }
    let dest = args
        .output_dir
        .join(output_name(&repository, tag.as_deref()));
    write_aci_file(&dest, args.compression, |w| {
        store.export(&outcome.id, w)?;
        Ok(())
    })?;
    Ok(vec![dest])
}

/// `--username`/`--password`, else the Docker client's configuration in `$HOME`.
fn credentials(args: &Args) -> Result<Option<Credentials>> {
    if let (Some(user), Some(password)) = (&args.username, &args.password) {
        return Ok(Some(Credentials {
            user: user.clone(),
            password: password.clone(),
        }));
    }
    let Some(home) = std::env::var_os("HOME") else {
        return Ok(None);
    };
    let registry = rkt_docker::DockerRef::parse(&args.image)?.registry;
    Ok(rkt_docker::auth::from_docker_config(
        Path::new(&home),
        &registry,
    )?)
}

/// `--nosquash`: the lower layers' ACIs base first, then the top one, which depends on them
/// by name and image ID. Files already written are removed if a later one fails.
fn write_layers(
    args: &Args,
    store: &mut Store,
    id: &str,
    repository: &str,
    tag: Option<&str>,
) -> Result<Vec<PathBuf>> {
    let manifest = store.manifest_bytes(id)?;
    let layers = store.image_layers(id)?;
    let mut acis = store
        .plan_layer_acis(&manifest, &layers)
        .with_context(|| format!("cannot split {} into per-layer ACIs", args.image))?;
    let mut written: Vec<PathBuf> = Vec::new();
    let result = (|| -> Result<()> {
        let count = acis.len();
        for k in 0..count {
            let number = count - 1 - k;
            let aci = acis[k].clone();
            let dest =
                args.output_dir
                    .join(layer_output_name(repository, tag, &aci.manifest, number));
            let mut image_id = String::new();
            write_aci_file(&dest, args.compression, |w| {
                image_id = store.write_layer_aci(&aci, w)?;
                Ok(())
            })?;
            written.push(dest);
            if let Some(top) = acis.last_mut().filter(|_| k + 1 < count) {
                top.pin_dependency(&aci.manifest.name, &image_id)?;
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        for path in &written {
            let _ = std::fs::remove_file(path);
        }
        return Err(e);
    }
    Ok(written)
}

/// docker2aci's per-layer file name: `library-nginx-latest-linux-amd64-0.aci` (0 is the top).
fn layer_output_name(
    repository: &str,
    tag: Option<&str>,
    manifest: &rkt_store::schema::ImageManifest,
    number: usize,
) -> String {
    let mut parts = vec![repository.replace('/', "-")];
    parts.extend(tag.map(String::from));
    parts.extend(manifest.os().map(String::from));
    parts.extend(manifest.arch().map(String::from));
    parts.push(number.to_string());
    format!("{}.aci", parts.join("-"))
}

/// Write an ACI to `dest` through a staging file, compressed as asked; nothing is left behind
/// on failure.
fn write_aci_file(
    dest: &Path,
    compression: Compression,
    write: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<()> {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let staging = dest.with_file_name(format!(".{name}.partial"));
    let file = std::fs::File::create(&staging)
        .with_context(|| format!("cannot create {}", staging.display()))?;
    let result = (|| -> Result<()> {
        let mut w = std::io::BufWriter::new(file);
        match compression {
            Compression::None => write(&mut w)?,
            Compression::Gzip => {
                let mut gz = flate2::write::GzEncoder::new(&mut w, flate2::Compression::default());
                write(&mut gz)?;
                gz.finish()?;
            }
        }
        w.flush()?;
        w.get_ref().sync_all()?;
        std::fs::rename(&staging, dest)?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&staging);
        return Err(e.context(format!("cannot write {}", dest.display())));
    }
    Ok(())
}
