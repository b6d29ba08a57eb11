//! The index answers per-path questions without packs, dependencies render in appc order,
//! and related images share storage.

use std::path::Path;
use std::process::Command;

use rkt_store::{EntryKind, Store, StoreError};

fn write_layout(dir: &Path, manifest: &str, files: &[(&str, &[u8])]) {
    std::fs::create_dir_all(dir.join("rootfs")).unwrap();
    std::fs::write(dir.join("manifest"), manifest).unwrap();
    for (path, data) in files {
        let p = dir.join("rootfs").join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
}

fn tar(dir: &Path) -> Vec<u8> {
    let out = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .args(["--format=posix", "-cf", "-", "manifest", "rootfs"])
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// An empty store in a directory of its own.
fn new_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

fn packs_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir.join("packs"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

#[test]
fn index_answers_per_path_without_packs() {
    let src = tempfile::tempdir().unwrap();
    let big = noise(700_000, 3);
    write_layout(
        src.path(),
        r#"{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/idx"}"#,
        &[("bin/tool", &big), ("etc/conf", b"x=1\n")],
    );
    std::os::unix::fs::symlink("tool", src.path().join("rootfs/bin/alias")).unwrap();
    let (store_dir, mut store) = new_store();
    let id = store.import(&tar(src.path())[..], "idx").unwrap().id;
    // Hide every pack: metadata must still be answered.
    std::fs::rename(
        store_dir.path().join("packs"),
        store_dir.path().join("packs.away"),
    )
    .unwrap();
    let tool = store
        .entry(&id, "/bin/tool")
        .unwrap()
        .expect("bin/tool is indexed");
    assert_eq!(tool.kind, EntryKind::File);
    assert_eq!(tool.size, big.len() as u64);
    let chunks = store.chunk_list(&tool.file_id.unwrap()).unwrap();
    assert!(
        chunks.len() >= 3,
        "700 KB should be several chunks, got {}",
        chunks.len()
    );
    assert_eq!(chunks.iter().map(|c| c.len).sum::<u64>(), big.len() as u64);
    let alias = store.entry(&id, "bin/alias").unwrap().unwrap();
    assert_eq!(
        (alias.kind, alias.link.as_deref()),
        (EntryKind::Symlink, Some("tool"))
    );
    assert!(store
        .entry(&id, "bin")
        .unwrap()
        .is_some_and(|e| e.kind == EntryKind::Dir));
    assert!(store.entry(&id, "nope").unwrap().is_none());
    // Reading content does need the packs, and says so.
    assert!(store.export(&id, &mut Vec::new()).is_err());
}

#[test]
fn related_images_share_chunks_and_dependencies_render() {
    let base_src = tempfile::tempdir().unwrap();
    let shared = noise(2_000_000, 11);
    write_layout(
        base_src.path(),
        r#"{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/base",
            "labels":[{"name":"version","value":"1"}]}"#,
        &[
            ("lib/libbig.so", &shared),
            ("etc/os-release", b"base\n"),
            ("etc/motd", b"from base\n"),
        ],
    );
    let app_src = tempfile::tempdir().unwrap();
    write_layout(
        app_src.path(),
        r#"{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/app",
            "dependencies":[{"imageName":"example.com/base","labels":[{"name":"version","value":"1"}]}],
            "app":{"exec":["/bin/app"],"user":"0","group":"0"}}"#,
        &[
            ("bin/app", b"#!/bin/sh\n"),
            ("etc/motd", b"from app\n"),
            ("lib/copy.so", &shared),
        ],
    );
    let (store_dir, mut store) = new_store();
    let app_tar = tar(app_src.path());
    let app = store.import(&app_tar[..], "app").unwrap();
    let before = packs_size(store_dir.path());
    let base = store.import(&tar(base_src.path())[..], "base").unwrap();
    let added = packs_size(store_dir.path()) - before;
    assert!(
        added < 100_000,
        "base shares its 2 MB library with app, yet added {added} bytes"
    );

    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("tree");
    store.render_image(&app.id, &dest, false).unwrap();
    let read = |p: &str| std::fs::read(dest.join("rootfs").join(p)).unwrap();
    assert_eq!(
        read("etc/motd"),
        b"from app\n",
        "the image shadows its dependency"
    );
    assert_eq!(
        read("etc/os-release"),
        b"base\n",
        "dependency files are rendered"
    );
    assert_eq!(read("lib/libbig.so"), shared);
    assert_eq!(
        store.dependency_list(&app.id).unwrap(),
        vec![app.id.clone(), base.id.clone()]
    );

    // Without its dependency the image cannot be rendered, and the error says which.
    store.remove_image(&base.id).unwrap();
    let err = store
        .render_image(&app.id, &out.path().join("again"), false)
        .unwrap_err();
    assert!(matches!(err, StoreError::MissingDependency { .. }), "{err}");
    assert!(err.to_string().contains("example.com/base"), "{err}");
    // The shared library is still intact for the app.
    let mut exported = Vec::new();
    store.export(&app.id, &mut exported).unwrap();
    assert_eq!(exported, app_tar);
}

#[test]
fn gc_reclaims_and_compacts_without_touching_live_images() {
    let a_src = tempfile::tempdir().unwrap();
    let b_src = tempfile::tempdir().unwrap();
    let shared = noise(1_000_000, 5);
    let only_a = noise(3_000_000, 6);
    let m = |n: &str| {
        format!(r#"{{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/{n}"}}"#)
    };
    write_layout(
        a_src.path(),
        &m("a"),
        &[("shared", &shared), ("only-a", &only_a)],
    );
    write_layout(
        b_src.path(),
        &m("b"),
        &[("shared", &shared), ("only-b", b"b")],
    );
    let (store_dir, mut store) = new_store();
    let a = store.import(&tar(a_src.path())[..], "a").unwrap();
    let b_tar = tar(b_src.path());
    let b = store.import(&b_tar[..], "b").unwrap();
    let full = packs_size(store_dir.path());

    store.remove_image(&a.id).unwrap();
    let report = store
        .gc(std::time::Duration::from_secs(3600), &Default::default())
        .unwrap();
    assert!(report.removed_images.is_empty(), "b was used just now");
    assert!(
        report.packs_compacted >= 1,
        "a's pack is mostly dead: {report:?}"
    );
    let after = packs_size(store_dir.path());
    assert!(
        after < full / 2,
        "gc should free a's 3 MB: {full} -> {after}"
    );

    let mut exported = Vec::new();
    store.export(&b.id, &mut exported).unwrap();
    assert_eq!(exported, b_tar, "b survives compaction byte for byte");
    assert!(store.verify(&b.id).unwrap().problems.is_empty());

    // A leftover pack from a killed import is collected.
    std::fs::write(store_dir.path().join("packs/killed.pack"), b"RKTPACK1junk").unwrap();
    store
        .gc(std::time::Duration::ZERO, &Default::default())
        .unwrap();
    assert!(store.list_images().unwrap().is_empty());
    assert_eq!(
        std::fs::read_dir(store_dir.path().join("packs"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn rendered_trees_are_shared_and_collected() {
    let src = tempfile::tempdir().unwrap();
    write_layout(
        src.path(),
        r#"{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/tree"}"#,
        &[("etc/hello", b"hello\n")],
    );
    let (_store_dir, mut store) = new_store();
    let id = store.import(&tar(src.path())[..], "tree").unwrap().id;
    let first = store.rendered_tree(&id).unwrap();
    assert_eq!(
        std::fs::read(first.join("rootfs/etc/hello")).unwrap(),
        b"hello\n"
    );
    assert!(first.join("manifest").is_file());
    let ino = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let before = ino(&first.join("rootfs/etc/hello"));
    let second = store.rendered_tree(&id).unwrap();
    assert_eq!(first, second);
    assert_eq!(
        ino(&second.join("rootfs/etc/hello")),
        before,
        "the tree is rendered once"
    );

    // A half-written tree (no marker) is redone, not used.
    std::fs::remove_file(first.join(".rkt-rendered")).unwrap();
    std::fs::write(first.join("rootfs/etc/hello"), b"tampered").unwrap();
    let third = store.rendered_tree(&id).unwrap();
    assert_eq!(
        std::fs::read(third.join("rootfs/etc/hello")).unwrap(),
        b"hello\n"
    );

    // An image in use survives gc; once removed, its tree goes too.
    let keep = std::iter::once(id.clone()).collect();
    store.gc(std::time::Duration::ZERO, &keep).unwrap();
    assert!(third.exists());
    let report = store
        .gc(std::time::Duration::ZERO, &Default::default())
        .unwrap();
    assert_eq!(report.removed_images, vec![id]);
    assert!(!third.exists(), "tree of a removed image is collected");
}

#[test]
fn hard_links_take_their_targets_content() {
    let src = tempfile::tempdir().unwrap();
    let data = noise(50_000, 9);
    write_layout(
        src.path(),
        r#"{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/links"}"#,
        &[("bin/tool", &data), ("etc/other", b"other\n")],
    );
    let rootfs = src.path().join("rootfs");
    for name in ["bin/alias1", "bin/alias2", "etc/alias3"] {
        std::fs::hard_link(rootfs.join("bin/tool"), rootfs.join(name)).unwrap();
    }
    let (_store_dir, mut store) = new_store();
    let archive = tar(src.path());
    let id = store.import(&archive[..], "links").unwrap().id;
    let tool = store.entry(&id, "bin/tool").unwrap().unwrap();
    let links: Vec<_> = store
        .entries(&id)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == EntryKind::HardLink)
        .collect();
    assert_eq!(
        links.len(),
        3,
        "GNU tar writes the other three names as links"
    );
    for l in &links {
        assert_eq!(l.file_id, tool.file_id, "{}", l.path);
        assert_eq!(l.size, data.len() as u64, "{}", l.path);
    }
    let other = store.entry(&id, "etc/other").unwrap().unwrap();
    assert_ne!(other.file_id, tool.file_id);
    let mut out = Vec::new();
    store.export(&id, &mut out).unwrap();
    assert!(out == archive, "the export is the archive, byte for byte");
}
