//! `rkt image export`, `extract` and `render`: exact tars out, faithful trees out.

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// The full layout packed by GNU tar as PAX with sparse files and xattrs: every feature the
/// tree comparison checks survives this archive.
fn full_image(tmp: &Path) -> (PathBuf, PathBuf) {
    let layout = tmp.join("layout");
    build_layout(&layout, "example.com/busybox", Some("1.35.0"));
    let aci = tmp.join("busybox-posix.aci");
    gnu_tar(&layout, &aci, &["--format=posix", "-S", "--xattrs"]);
    (layout, aci)
}

fn assert_same_tree(src: &Path, dst: &Path, checks: Checks, what: &str) {
    let diffs = compare_trees(src, dst, checks);
    assert!(
        diffs.is_empty(),
        "{what}: {} differs from the source tree {}:\n  {}",
        dst.display(),
        src.display(),
        diffs.join("\n  ")
    );
}

fn assert_same_manifest(layout: &Path, out: &Path, what: &str) {
    let want: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("manifest")).unwrap()).unwrap();
    let got = fs::read(out.join("manifest"))
        .unwrap_or_else(|e| panic!("{what}: no manifest in {}: {e}", out.display()));
    let got: serde_json::Value = serde_json::from_slice(&got)
        .unwrap_or_else(|e| panic!("{what}: manifest is not JSON: {e}"));
    assert_eq!(got, want, "{what}: manifest differs");
}

#[test]
fn export_refuses_to_overwrite_without_flag() {
    let tmp = TempDir::new().unwrap();
    let store = tmp.path().join("store");
    let (_, aci) = full_image(tmp.path());
    let id = fetch(&store, &aci);
    let out = tmp.path().join("out.aci");
    fs::write(&out, b"precious").unwrap();
    let err = rkt_fails(&store, &["image", "export", &id, out.to_str().unwrap()]);
    assert!(!err.trim().is_empty(), "the refusal should say why");
    assert_eq!(
        fs::read(&out).unwrap(),
        b"precious",
        "export without --overwrite must leave an existing file alone"
    );
    rkt_ok(
        &store,
        &["image", "export", "--overwrite", &id, out.to_str().unwrap()],
    );
    let data = fs::read(&out).unwrap();
    assert_eq!(
        sha512_id(&data),
        id,
        "export --overwrite must write the exact image"
    );
    assert_eq!(
        data,
        fs::read(&aci).unwrap(),
        "export must write the uncompressed tar byte for byte"
    );
}

#[test]
fn export_of_gzip_image_is_uncompressed_and_exact() {
    let tmp = TempDir::new().unwrap();
    let store = tmp.path().join("store");
    let (layout, _) = full_image(tmp.path());
    let gz = tmp.path().join("actool.aci");
    actool_build(&layout, &gz, true);
    let id = fetch(&store, &gz);
    // by short ID prefix, by name and by name:version
    for image in [
        id[..7 + 32].to_string(),
        "example.com/busybox".to_string(),
        "example.com/busybox:1.35.0".to_string(),
    ] {
        let data = export(&store, &image, tmp.path());
        assert!(
            data.len() > 512 && &data[257..262] == b"ustar",
            "export of {image} should be an uncompressed tar"
        );
        assert_eq!(
            sha512_id(&data),
            id,
            "sha512 of `rkt image export {image}` must equal the image ID"
        );
    }
}

#[test]
fn extract_reproduces_the_source_tree() {
    let tmp = TempDir::new().unwrap();
    let store = tmp.path().join("store");
    let (layout, aci) = full_image(tmp.path());
    let id = fetch(&store, &aci);
    let out = tmp.path().join("extracted");
    rkt_ok(&store, &["image", "extract", &id, out.to_str().unwrap()]);
    assert_same_manifest(&layout, &out, "extract");
    assert_same_tree(
        &layout.join("rootfs"),
        &out.join("rootfs"),
        ALL_CHECKS,
        "extract",
    );
    let top: Vec<_> = tree_paths(&out)
        .into_iter()
        .filter(|p| p.components().count() == 1)
        .collect();
    assert_eq!(
        top,
        vec![PathBuf::from("manifest"), PathBuf::from("rootfs")],
        "extract DIR should hold exactly manifest and rootfs"
    );
}

#[test]
fn extract_rootfs_only_and_overwrite() {
    let tmp = TempDir::new().unwrap();
    let store = tmp.path().join("store");
    let (layout, aci) = full_image(tmp.path());
    let id = fetch(&store, &aci);
    let out = tmp.path().join("rootfs-only");
    rkt_ok(
        &store,
        &[
            "image",
            "extract",
            "--rootfs-only",
            "example.com/busybox",
            out.to_str().unwrap(),
        ],
    );
    assert_same_tree(
        &layout.join("rootfs"),
        &out,
        ALL_CHECKS,
        "extract --rootfs-only",
    );
    // the directory now exists: a second extract needs --overwrite
    rkt_fails(&store, &["image", "extract", &id, out.to_str().unwrap()]);
    assert!(
        out.join("bin/busybox").exists(),
        "a refused extract must leave the directory alone"
    );
    rkt_ok(
        &store,
        &[
            "image",
            "extract",
            "--overwrite",
            &id,
            out.to_str().unwrap(),
        ],
    );
    assert_same_manifest(&layout, &out, "extract --overwrite");
    assert_same_tree(
        &layout.join("rootfs"),
        &out.join("rootfs"),
        ALL_CHECKS,
        "extract --overwrite",
    );
}

#[test]
fn extract_of_actool_image_matches() {
    let tmp = TempDir::new().unwrap();
    let store = tmp.path().join("store");
    let layout = tmp.path().join("layout");
    build_layout(&layout, "example.com/busybox", Some("1.35.0"));
    let aci = tmp.path().join("actool.aci");
    actool_build(&layout, &aci, true);
    let id = fetch(&store, &aci);
    let out = tmp.path().join("extracted");
    rkt_ok(&store, &["image", "extract", &id, out.to_str().unwrap()]);
    // actool (Go archive/tar) keeps no xattrs; everything else must survive
    let checks = Checks {
        xattrs: false,
        ..ALL_CHECKS
    };
    assert_same_tree(
        &layout.join("rootfs"),
        &out.join("rootfs"),
        checks,
        "extract of actool image",
    );
}

#[test]
fn render_without_dependencies_equals_extract() {
    let tmp = TempDir::new().unwrap();
    let store = tmp.path().join("store");
    let (layout, aci) = full_image(tmp.path());
    let id = fetch(&store, &aci);
    let out = tmp.path().join("rendered");
    rkt_ok(&store, &["image", "render", &id, out.to_str().unwrap()]);
    assert_same_manifest(&layout, &out, "render");
    assert_same_tree(
        &layout.join("rootfs"),
        &out.join("rootfs"),
        ALL_CHECKS,
        "render",
    );
    let only = tmp.path().join("rendered-rootfs");
    rkt_ok(
        &store,
        &[
            "image",
            "render",
            "--rootfs-only",
            &id,
            only.to_str().unwrap(),
        ],
    );
    assert_same_tree(
        &layout.join("rootfs"),
        &only,
        ALL_CHECKS,
        "render --rootfs-only",
    );
}

#[test]
fn render_resolves_dependencies() {
    let tmp = TempDir::new().unwrap();
    let store = tmp.path().join("store");
    let (layout, base_aci) = full_image(tmp.path());
    fetch(&store, &base_aci);

    // an app image on top of busybox: adds /app/hello and replaces /etc/hostname
    let app = tmp.path().join("app");
    write(
        &app.join("manifest"),
        manifest_json("example.com/hello", Some("0.1"), &["example.com/busybox"]).as_bytes(),
    );
    write(
        &app.join("rootfs/app/hello"),
        b"#!/bin/sh\necho hello world\n",
    );
    chmod(&app.join("rootfs/app/hello"), 0o755);
    write(&app.join("rootfs/etc/hostname"), b"hello\n");
    set_mtimes(&app);
    let app_aci = tmp.path().join("hello.aci");
    actool_build(&app, &app_aci, true);
    let id = fetch(&store, &app_aci);

    let out = tmp.path().join("rendered");
    rkt_ok(
        &store,
        &[
            "image",
            "render",
            "--rootfs-only",
            &id,
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(
        fs::read(out.join("app/hello")).ok().as_deref(),
        Some(&b"#!/bin/sh\necho hello world\n"[..]),
        "render must contain the app image's own files"
    );
    assert_eq!(
        fs::read(out.join("etc/hostname")).ok().as_deref(),
        Some(&b"hello\n"[..]),
        "the app image's files win over its dependency's"
    );
    assert_eq!(
        fs::read(out.join("bin/busybox")).ok(),
        fs::read("/bin/busybox").ok(),
        "render must contain the dependency's files"
    );
    assert_eq!(
        fs::read_link(out.join("bin/sh")).ok(),
        Some(PathBuf::from("busybox")),
        "render must keep the dependency's symlinks"
    );
    assert!(
        fs::symlink_metadata(layout.join("rootfs/var/empty")).is_ok()
            && out.join("var/empty").is_dir(),
        "render must keep the dependency's empty directories"
    );
    // extract is the raw image, without the dependency
    let raw = tmp.path().join("raw");
    rkt_ok(
        &store,
        &[
            "image",
            "extract",
            "--rootfs-only",
            &id,
            raw.to_str().unwrap(),
        ],
    );
    assert!(
        raw.join("app/hello").exists() && !raw.join("bin/busybox").exists(),
        "extract must give the image alone, without its dependencies"
    );
}
