//! `rkt image …`: list, inspect, remove, export, extract, render, verify and collect images.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rkt_store::{ImageInfo, Store};

use super::open_store;
use crate::cli::{Format, GlobalArgs, ImageCommand, ImageListArgs, TreeArgs};
use crate::output;

pub fn run(global: &GlobalArgs, cmd: ImageCommand) -> Result<u8> {
    let mut store = open_store(global)?;
    match cmd {
        ImageCommand::List(args) => list(&store, &args),
        ImageCommand::CatManifest {
            pretty_print,
            image,
        } => cat_manifest(&store, &image, pretty_print),
        ImageCommand::Rm { images } => rm(&mut store, &images),
        ImageCommand::Export {
            overwrite,
            image,
            output,
        } => export(&mut store, &image, &output, overwrite),
        ImageCommand::Extract(args) => tree(&mut store, &args, false),
        ImageCommand::Render(args) => tree(&mut store, &args, true),
        ImageCommand::Verify { images } => verify(&store, &images),
        ImageCommand::Gc { grace_period } => gc(global, &mut store, grace_period),
    }
}

fn display_name(i: &ImageInfo) -> String {
    match &i.version {
        Some(v) => format!("{}:{v}", i.name),
        None => i.name.clone(),
    }
}

fn list(store: &Store, args: &ImageListArgs) -> Result<u8> {
    let images = store.list_images()?;
    if let Some(format) = args.format {
        let rows: Vec<serde_json::Value> = images
            .iter()
            .map(|i| {
                serde_json::json!({
                    "id": i.id,
                    "name": i.name,
                    "version": i.version,
                    "size": i.size,
                    "importtime": output::rfc3339(i.import_time),
                    "lastused": output::rfc3339(i.last_used),
                    "latest": i.latest,
                })
            })
            .collect();
        let text = match format {
            Format::Json => serde_json::to_string(&rows)?,
            Format::JsonPretty => serde_json::to_string_pretty(&rows)?,
        };
        println!("{text}");
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = images
        .iter()
        .map(|i| {
            let (id, imported, used) = if args.full {
                (
                    i.id.clone(),
                    output::rfc3339(i.import_time),
                    output::rfc3339(i.last_used),
                )
            } else {
                (
                    i.id[..i.id.len().min(19)].to_string(),
                    output::ago(i.import_time),
                    output::ago(i.last_used),
                )
            };
            let size = if args.full {
                i.size.to_string()
            } else {
                output::size(i.size)
            };
            vec![id, display_name(i), size, imported, used]
        })
        .collect();
    let header: &[&str] = &["ID", "NAME", "SIZE", "IMPORT TIME", "LAST USED"];
    print!(
        "{}",
        output::table((!args.no_legend).then_some(header), &rows)
    );
    Ok(0)
}

fn cat_manifest(store: &Store, image: &str, pretty: bool) -> Result<u8> {
    let info = store.resolve(image)?;
    let bytes = store.manifest_bytes(&info.id)?;
    if pretty {
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("manifest of {} is not JSON", info.id))?;
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        std::io::stdout().write_all(&bytes)?;
        println!();
    }
    Ok(0)
}

fn rm(store: &mut Store, images: &[String]) -> Result<u8> {
    let mut removed = 0;
    let mut failed = 0;
    for image in images {
        let result = store
            .resolve(image)
            .and_then(|info| store.remove_image(&info.id).map(|_| info.id));
        match result {
            Ok(id) => {
                eprintln!("rkt: successfully removed aci for image ID: {id:?}");
                removed += 1;
            }
            Err(e) => {
                eprintln!("rkt: cannot remove image {image:?}: {e}");
                failed += 1;
            }
        }
    }
    if removed > 0 {
        eprintln!("rkt: {removed} image(s) successfully removed");
    }
    Ok(if failed > 0 { 254 } else { 0 })
}

/// A temporary path beside `target`, so a rename can publish the result atomically.
fn staging_path(target: &Path) -> Result<PathBuf> {
    let name = target
        .file_name()
        .with_context(|| format!("{} does not name a file or directory", target.display()))?;
    let mut staged = name.to_os_string();
    staged.push(format!(".rkt-tmp-{}", std::process::id()));
    Ok(target.with_file_name(staged))
}

fn export(store: &mut Store, image: &str, out: &Path, overwrite: bool) -> Result<u8> {
    if out.exists() && !overwrite {
        bail!(
            "{} already exists; use --overwrite to replace it",
            out.display()
        );
    }
    let info = store.resolve(image)?;
    let staged = staging_path(out)?;
    let result = (|| -> Result<()> {
        let file = std::fs::File::create(&staged)
            .with_context(|| format!("cannot create {}", staged.display()))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        store.export(&info.id, &mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&staged, out).with_context(|| format!("cannot write {}", out.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&staged);
    }
    result.with_context(|| format!("cannot export {} to {}", info.id, out.display()))?;
    Ok(0)
}

fn tree(store: &mut Store, args: &TreeArgs, render: bool) -> Result<u8> {
    let dest = &args.dest;
    if dest.exists() && !args.overwrite {
        bail!(
            "{} already exists; use --overwrite to replace it",
            dest.display()
        );
    }
    let info = store.resolve(&args.image)?;
    let staged = staging_path(dest)?;
    let _ = std::fs::remove_dir_all(&staged);
    let result = if render {
        store.render_image(&info.id, &staged, args.rootfs_only)
    } else {
        store.extract_image(&info.id, &staged, args.rootfs_only)
    };
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&staged);
        return Err(e).with_context(|| format!("cannot write {} to {}", info.id, dest.display()));
    }
    if dest.exists() {
        std::fs::remove_dir_all(dest)
            .with_context(|| format!("cannot remove {}", dest.display()))?;
    }
    std::fs::rename(&staged, dest)
        .with_context(|| format!("cannot move the tree to {}", dest.display()))?;
    Ok(0)
}

fn verify(store: &Store, images: &[String]) -> Result<u8> {
    let mut bad = 0;
    for image in images {
        let info = match store.resolve(image) {
            Ok(i) => i,
            Err(e) => {
                eprintln!("rkt: {e}");
                bad += 1;
                continue;
            }
        };
        let report = store.verify(&info.id)?;
        if report.problems.is_empty() {
            println!(
                "{}: ok ({} files, {})",
                info.id,
                report.files,
                output::size(report.bytes)
            );
        } else {
            bad += 1;
            for p in &report.problems {
                eprintln!("rkt: {}: {}: {}", info.id, p.path, p.detail);
            }
            eprintln!(
                "rkt: image {} is corrupt; remove it with `rkt image rm` and fetch it again",
                info.id
            );
        }
    }
    Ok(if bad > 0 { 254 } else { 0 })
}

fn gc(global: &GlobalArgs, store: &mut Store, grace: std::time::Duration) -> Result<u8> {
    // Images of pods that may still run or be inspected are kept; the exclusive prepare lock
    // keeps new pods from picking an image while the set is computed and used.
    let pods = super::pods(global);
    let _prepare_lock = pods.prepare_lock(true)?;
    let keep = pods.image_ids_in_use()?;
    let report = store.gc(grace, &keep)?;
    for id in &report.removed_images {
        eprintln!("rkt: successfully removed aci for image ID: {id:?}");
    }
    eprintln!(
        "rkt: {} image(s) removed, {} freed ({} chunks dropped, {} packs deleted, {} compacted)",
        report.removed_images.len(),
        output::size(report.bytes_freed),
        report.chunks_dropped,
        report.packs_deleted,
        report.packs_compacted
    );
    if report.objects.removed > 0 || report.objects.held > 0 {
        eprintln!(
            "rkt: object cache: {} object(s) removed, {} held by running pods, {} in use",
            report.objects.removed,
            report.objects.held,
            output::size(report.objects.bytes_after)
        );
    }
    Ok(0)
}
