//! Import then export must give back the archive byte for byte.

use std::process::Command;

use rkt_store::Store;

fn tar_of(dir: &std::path::Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("tar")
        .args(args)
        .arg("-C")
        .arg(dir)
        .arg("-cf")
        .arg("-")
        .args(["manifest", "rootfs"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tar failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn layout() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::write(root.join("bin/a"), vec![7u8; 300_000]).unwrap();
    std::fs::write(root.join("bin/b"), b"small").unwrap();
    std::fs::hard_link(root.join("bin/a"), root.join("bin/a2")).unwrap();
    std::os::unix::fs::symlink("a", root.join("bin/link")).unwrap();
    let long = "x".repeat(150);
    std::fs::write(root.join(&long), b"long name").unwrap();
    std::fs::write(
        d.path().join("manifest"),
        br#"{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/rt"}"#,
    )
    .unwrap();
    d
}

#[test]
fn export_is_exact_for_gnu_and_posix_tars() {
    let src = layout();
    for fmt in ["--format=gnu", "--format=posix", "--format=ustar"] {
        let tar = if fmt == "--format=ustar" {
            std::fs::remove_file(src.path().join(format!("rootfs/{}", "x".repeat(150)))).ok();
            tar_of(src.path(), &[fmt])
        } else {
            tar_of(src.path(), &[fmt])
        };
        let store_dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(store_dir.path()).unwrap();
        let outcome = store.import(&tar[..], "test").unwrap();
        let mut out = Vec::new();
        let exported = store.export(&outcome.id, &mut out);
        if out != tar {
            let first = out.iter().zip(&tar).position(|(a, b)| a != b);
            panic!(
                "{fmt}: export differs at {first:?} (len {} vs {}), {exported:?}",
                out.len(),
                tar.len()
            );
        }
        exported.unwrap();
    }
}
