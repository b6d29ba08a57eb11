//! `rkt image list`, `cat-manifest`, `rm`, `verify`, `gc` and the IMAGE argument forms.

mod common;

use common::*;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// A small image `name` (optional version) whose content is `data`, packed by GNU tar.
fn small_aci(tmp: &Path, file: &str, name: &str, version: Option<&str>, data: &[u8]) -> PathBuf {
    let layout = tmp.join(format!("{file}.d"));
    build_small_layout(&layout, name, version, data);
    let aci = tmp.join(file);
    gnu_tar(&layout, &aci, &["--format=gnu"]);
    aci
}

fn busybox_aci(tmp: &Path) -> PathBuf {
    let layout = tmp.join("busybox.d");
    build_layout(&layout, "example.com/busybox", Some("1.35.0"));
    let aci = tmp.join("busybox.aci");
    actool_build(&layout, &aci, true);
    aci
}

fn manifest_of(store: &Path, image: &str) -> serde_json::Value {
    let out = rkt_ok(store, &["image", "cat-manifest", image]);
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("cat-manifest {image} is not JSON ({e}): {out}"))
}

fn version_of(m: &serde_json::Value) -> Option<String> {
    m["labels"].as_array()?.iter().find_map(|l| {
        (l["name"] == "version").then(|| l["value"].as_str().unwrap_or_default().to_string())
    })
}

#[test]
fn list_on_empty_store() {
    let tmp = TempDir::new().unwrap();
    let store = tmp.path().join("store");
    let out = rkt_ok(&store, &["image", "list", "--no-legend"]);
    assert!(
        out.trim().is_empty(),
        "an empty store lists nothing, got {out:?}"
    );
    assert!(list_ids(&store).is_empty());
}

#[test]
fn list_table_and_flags() {
    let tmp = TempDir::new().unwrap();
    let store = tmp.path().join("store");
    let id_bb = fetch(&store, &busybox_aci(tmp.path()));
    let id_small = fetch(
        &store,
        &small_aci(
            tmp.path(),
            "small.aci",
            "example.com/small",
            None,
            b"small\n",
        ),
    );

    let out = rkt_ok(&store, &["image", "list"]);
    let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 3, "header and two images expected:\n{out}");
    let header: Vec<&str> = lines[0].split("  ").filter(|c| !c.is_empty()).collect();
    let header: Vec<&str> = header.iter().map(|c| c.trim()).collect();
    assert_eq!(
        header,
        vec!["ID", "NAME", "SIZE", "IMPORT TIME", "LAST USED"],
        "table header, columns separated by runs of spaces:\n{out}"
    );
    for (id, name) in [
        (&id_bb, "example.com/busybox:1.35.0"),
        (&id_small, "example.com/small"),
    ] {
        let short = &id[..7 + 12];
        let row = lines[1..]
            .iter()
            .find(|l| l.split_whitespace().next() == Some(short))
            .unwrap_or_else(|| panic!("no row whose ID column is {short}:\n{out}"));
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols.get(1), Some(&name), "NAME column of {short}: {row}");
    }

    let out = rkt_ok(&store, &["image", "list", "--no-legend"]);
    assert_eq!(
        out.lines().filter(|l| !l.trim().is_empty()).count(),
        2,
        "--no-legend prints only the rows:\n{out}"
    );
    assert!(!out.contains("IMPORT TIME"), "--no-legend has no header");

    let out = rkt_ok(&store, &["image", "list", "--full", "--no-legend"]);
    let mut ids: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    ids.sort();
    let mut want = vec![id_bb.as_str(), id_small.as_str()];
    want.sort();
    assert_eq!(ids, want, "--full prints full IDs:\n{out}");

    for format in ["--format=json", "--format=json-pretty"] {
        let out = rkt_ok(&store, &["image", "list", format]);
        let v: serde_json::Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("{format} output is not JSON ({e}):\n{out}"));
        let arr = v.as_array().expect("a JSON array");
        assert_eq!(arr.len(), 2, "{format}: two images:\n{out}");
        if format == "--format=json-pretty" {
            assert!(out.trim().lines().count() > 2, "json-pretty is indented");
        }
        for o in arr {
            let id = o["id"].as_str().expect("id is a string");
            assert!(is_full_id(id), "{format}: id is sha512-<128 hex>: {o}");
            assert!(o["size"].as_u64().is_some_and(|s| s > 0), "size: {o}");
            for k in ["importtime", "lastused"] {
                let t = o[k].as_str().unwrap_or_else(|| panic!("{k} string: {o}"));
                assert!(
                    t.len() >= 20 && t.as_bytes()[4] == b'-' && t.contains('T'),
                    "{k} is RFC3339: {o}"
                );
            }
            assert!(o["latest"].is_boolean(), "latest is a bool: {o}");
            if id == id_bb {
                assert_eq!(o["name"], "example.com/busybox", "{o}");
                assert_eq!(o["version"], "1.35.0", "{o}");
            } else {
                assert_eq!(o["name"], "example.com/small", "{o}");
                assert!(
                    o["version"].is_null() || o["version"] == "",
                    "no version label: {o}"
                );
            }
        }
    }
}

#[test]
fn cat_manifest_prints_the_manifest() {
    let tmp = TempDir::new().unwrap();
    let store = tmp.path().join("store");
    let aci = busybox_aci(tmp.path());
    let id = fetch(&store, &aci);
    let want: serde_json::Value =
        serde_json::from_slice(&fs::read(tmp.path().join("busybox.d/manifest")).unwrap()).unwrap();
    for image in [
        id.clone(),
        id[..7 + 16].to_string(),
        "example.com/busybox".into(),
        "example.com/busybox:1.35.0".into(),
        "example.com/busybox,version=1.35.0".into(),
        "example.com/busybox,os=linux".into(),
    ] {
        assert_eq!(
            manifest_of(&store, &image),
            want,
            "cat-manifest {image} should print the image manifest"
        );
    }
    let out = rkt_ok(&store, &["image", "cat-manifest", &id]);
    assert!(
        out.trim().lines().count() > 3,
        "cat-manifest pretty-prints by default:\n{out}"
    );
    for missing in [
        "example.com/nothere",
        "example.com/busybox:9.9.9",
        "example.com/busybox,arch=arm64",
        "sha512-0000000000000000",
    ] {
        let err = rkt_fails(&store, &["image", "cat-manifest", missing]);
        assert!(!err.trim().is_empty(), "{missing}: say what is missing");
    }
}

#[test]
fn name_without_version_resolves_to_newest_import() {
    let tmp = TempDir::new().unwrap();
    let store = tmp.path().join("store");
    let v1 = small_aci(
        tmp.path(),
        "v1.aci",
        "example.com/multi",
        Some("1.0.0"),
        b"one",
    );
    let v2 = small_aci(
        tmp.path(),
        "v2.aci",
        "example.com/multi",
        Some("2.0.0"),
        b"two",
    );
    let id1 = fetch(&store, &v1);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let id2 = fetch(&store, &v2);
    let cases = [
        ("example.com/multi", "2.0.0"),
        ("example.com/multi:1.0.0", "1.0.0"),
        ("example.com/multi:2.0.0", "2.0.0"),
        ("example.com/multi,version=1.0.0", "1.0.0"),
    ];
    for (image, version) in cases {
        assert_eq!(
            version_of(&manifest_of(&store, image)).as_deref(),
            Some(version),
            "{image} should resolve to version {version}"
        );
    }
    assert_eq!(
        sha512_id(&export(&store, "example.com/multi", tmp.path())),
        id2
    );
    assert_eq!(
        sha512_id(&export(&store, "example.com/multi:1.0.0", tmp.path())),
        id1
    );
}

#[test]
fn id_prefixes_resolve_and_ambiguous_ones_list_candidates() {
    let tmp = TempDir::new().unwrap();
    let store = tmp.path().join("store");
    // make images until two of them share the first two hex digits of their ID
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    let mut pair = None;
    for i in 0..400 {
        let aci = small_aci(
            tmp.path(),
            &format!("p{i}.aci"),
            "example.com/prefix",
            Some(&format!("{i}")),
            format!("content {i}").as_bytes(),
        );
        let id = image_id(&aci);
        if let Some(other) = seen.get(&id[..9]) {
            pair = Some((other.clone(), aci));
            break;
        }
        seen.insert(id[..9].to_string(), aci);
    }
    let (a, b) = pair.expect("two images with a common 2-digit prefix");
    let (ida, idb) = (fetch(&store, &a), fetch(&store, &b));
    let common = ida
        .bytes()
        .zip(idb.bytes())
        .take_while(|(x, y)| x == y)
        .count();
    let err = rkt_fails(&store, &["image", "cat-manifest", &ida[..common]]);
    for id in [&ida, &idb] {
        assert!(
            err.contains(&id[..7 + 12]),
            "an ambiguous prefix {} should list the candidates ({} missing): {err}",
            &ida[..common],
            &id[..7 + 12]
        );
    }
    // one more digit is unique; so is the full ID
    for image in [&ida[..common + 1], &ida[..7 + 32], ida.as_str()] {
        let data = export(&store, image, tmp.path());
        assert_eq!(
            sha512_id(&data),
            ida,
            "prefix {image} should resolve to {ida}"
        );
    }
    // fewer than two hex digits is not an image ID prefix
    let err = rkt_fails(&store, &["image", "cat-manifest", &ida[..8]]);
    assert!(!err.trim().is_empty());
}

#[test]
fn rm_removes_images_and_reports_failures() {
    let tmp = TempDir::new().unwrap();
    let store = tmp.path().join("store");
    let ids: Vec<String> = (0..3)
        .map(|i| {
            let aci = small_aci(
                tmp.path(),
                &format!("r{i}.aci"),
                &format!("example.com/rm{i}"),
                Some("1"),
                format!("rm {i}").as_bytes(),
            );
            fetch(&store, &aci)
        })
        .collect();
    rkt_ok(&store, &["image", "rm", &ids[0], "example.com/rm1"]);
    assert_eq!(list_ids(&store), vec![ids[2].clone()], "two images removed");
    let err = rkt_fails(&store, &["image", "rm", "example.com/nothere", &ids[2]]);
    assert!(
        err.contains("example.com/nothere"),
        "rm should name the image it could not remove: {err}"
    );
    assert!(
        list_ids(&store).is_empty(),
        "rm removes the images it can, even when another argument fails"
    );
    rkt_fails(&store, &["image", "rm", &ids[0]]);
}

#[test]
fn verify_passes_when_intact_and_names_corrupted_paths() {
    let tmp = TempDir::new().unwrap();
    let store = tmp.path().join("store");
    let layout = tmp.path().join("big.d");
    build_small_layout(&layout, "example.com/verify", Some("1"), b"x");
    write(
        &layout.join("rootfs/blob/big.bin"),
        &Rng::new(99).bytes(4 << 20),
    );
    set_mtimes(&layout);
    let aci = tmp.path().join("big.aci");
    gnu_tar(&layout, &aci, &["--format=posix"]);
    let id = fetch(&store, &aci);
    let bb = fetch(&store, &busybox_aci(tmp.path()));
    rkt_ok(&store, &["image", "verify", &id, &bb]);
    rkt_ok(&store, &["image", "verify", "example.com/verify"]);

    let pack = corrupt_biggest_pack(&store, 8);
    let err = rkt_fails(&store, &["image", "verify", &id]);
    assert!(
        err.contains("blob/big.bin"),
        "verify after corrupting {} should name the damaged path blob/big.bin: {err}",
        pack.display()
    );
    let out = tmp.path().join("after-corruption.aci");
    let o = rkt(&store, &["image", "export", &id, out.to_str().unwrap()]);
    if o.status.success() {
        assert_eq!(
            sha512_id(&fs::read(&out).unwrap()),
            id,
            "export of a corrupted image must fail, not write wrong data"
        );
    }
}

#[test]
fn gc_keeps_recent_images_and_reclaims_space() {
    let tmp = TempDir::new().unwrap();
    let store = tmp.path().join("store");
    let bb_aci = busybox_aci(tmp.path());
    let bb = fetch(&store, &bb_aci);
    // a related image: the same busybox tree plus 1 MiB of its own
    let derived = tmp.path().join("derived.d");
    std::process::Command::new("cp")
        .arg("-a")
        .arg(tmp.path().join("busybox.d"))
        .arg(&derived)
        .status()
        .unwrap();
    write(
        &derived.join("manifest"),
        manifest_json("example.com/derived", Some("1"), &[]).as_bytes(),
    );
    write(
        &derived.join("rootfs/opt/own.bin"),
        &Rng::new(5).bytes(1 << 20),
    );
    set_mtimes(&derived);
    let derived_aci = tmp.path().join("derived.aci");
    gnu_tar(&derived, &derived_aci, &["--format=gnu"]);
    let d = fetch(&store, &derived_aci);

    rkt_ok(&store, &["image", "gc"]);
    assert_eq!(
        list_ids(&store).len(),
        2,
        "gc with the default grace period (24h) keeps just-imported images"
    );
    rkt_fails(&store, &["image", "gc", "--grace-period=banana"]);

    // remove busybox: its content shared with derived must survive gc
    rkt_ok(&store, &["image", "rm", &bb]);
    rkt_ok(&store, &["image", "gc", "--grace-period=24h"]);
    assert_eq!(list_ids(&store), vec![d.clone()]);
    rkt_ok(&store, &["image", "verify", &d]);
    assert_exact_export(
        &store,
        &d,
        &decompress(&derived_aci),
        tmp.path(),
        "derived after gc of its base",
    );

    let before = du(&store.join("packs"));
    assert!(before > 1 << 20, "packs hold the image: {before} bytes");
    rkt_ok(&store, &["image", "gc", "--grace-period=0s"]);
    assert!(
        list_ids(&store).is_empty(),
        "gc --grace-period=0s removes every image"
    );
    let after = du(&store.join("packs"));
    assert!(
        after <= before / 10,
        "gc must reclaim the space of removed images: packs {before} -> {after} bytes"
    );
    // and the store still works
    let again = fetch(&store, &bb_aci);
    assert_eq!(again, bb);
    assert_exact_export(&store, &bb, &decompress(&bb_aci), tmp.path(), "refetch");
}
