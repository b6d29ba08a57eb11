//! The object cache: verified materialisation, holds against eviction, the size bound, gc, and
//! rendered trees hard-linked into it.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rkt_store::{FileId, Store};

fn manifest(name: &str) -> String {
    format!(
        r#"{{"acKind":"ImageManifest","acVersion":"0.8.11","name":"{name}","labels":[{{"name":"os","value":"linux"}}]}}"#
    )
}

fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed * 2 + 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Import an image of `files` (path, content, mode).
fn import(store: &mut Store, dir: &Path, name: &str, files: &[(&str, Vec<u8>, u32)]) -> String {
    let layout = dir.join(name);
    std::fs::create_dir_all(layout.join("rootfs")).unwrap();
    std::fs::write(layout.join("manifest"), manifest(name)).unwrap();
    for (path, data, mode) in files {
        let p = layout.join("rootfs").join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(*mode)).unwrap();
    }
    let out = Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .args([
            "--format=posix",
            "--mtime=@1500000000",
            "-cf",
            "-",
            "manifest",
            "rootfs",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    store.import(&out.stdout[..], name).unwrap().id
}

fn file_id(store: &Store, image: &str, path: &str) -> FileId {
    store.entry(image, path).unwrap().unwrap().file_id.unwrap()
}

#[test]
fn materialised_objects_are_verified_read_only_and_reused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open(&tmp.path().join("store")).unwrap();
    let data = noise(700_000, 1);
    let id = import(
        &mut store,
        tmp.path(),
        "example.com/a",
        &[("big", data.clone(), 0o755)],
    );
    let f = file_id(&store, &id, "big");
    let path = store.materialize(&f).unwrap();
    assert_eq!(path, store.object_path(&f));
    assert_eq!(std::fs::read(&path).unwrap(), data);
    let m = std::fs::metadata(&path).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o444, "objects are read-only");
    assert_eq!(
        std::fs::metadata(store.objects_dir()).unwrap().mode() & 0o777,
        0o700
    );
    let again = store.materialize(&f).unwrap();
    assert_eq!(
        std::fs::metadata(&again).unwrap().ino(),
        m.ino(),
        "reused, not rewritten"
    );
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(
        leftovers.is_empty(),
        "no temporary files left: {leftovers:?}"
    );
}

#[test]
fn big_objects_come_out_whole() {
    // Files of 8 MiB and more are read on two threads (content.rs, `pipelined`).
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open(&tmp.path().join("store")).unwrap();
    let data = noise(9 << 20, 3);
    let id = import(
        &mut store,
        tmp.path(),
        "example.com/big",
        &[("big", data.clone(), 0o644)],
    );
    let path = store.materialize(&file_id(&store, &id, "big")).unwrap();
    assert!(std::fs::read(&path).unwrap() == data, "the object differs");
}

#[test]
fn opened_objects_are_handed_out_at_once_and_published_after() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open(&tmp.path().join("store")).unwrap();
    let data = noise(3 << 20, 4);
    let id = import(
        &mut store,
        tmp.path(),
        "example.com/o",
        &[("f", data.clone(), 0o644)],
    );
    let f = file_id(&store, &id, "f");
    let first = store.open_object(&f).unwrap();
    let second = store.open_object(&f).unwrap();
    let ino = |h: &rkt_store::objects::ObjectHandle| h.file().metadata().unwrap().ino();
    assert_eq!(ino(&first), ino(&second), "one object, not two copies");
    let mut read = Vec::new();
    std::io::Read::read_to_end(&mut first.file(), &mut read).unwrap();
    assert!(read == data, "the handed-out object differs");
    store.wait_for_publications();
    let path = store.object_path(&f);
    let m = std::fs::metadata(&path).unwrap();
    assert_eq!(m.ino(), ino(&first), "the same inode, put in place");
    assert_eq!(m.mode() & 0o7777, 0o444);
    let leftovers = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .count();
    assert_eq!(leftovers, 0, "no temporary files left");
}

#[test]
fn servers_share_pending_objects_and_never_take_one_of_another_boot() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let mut store = Store::open(&dir).unwrap();
    let (a, b) = (noise(3 << 20, 5), noise(3 << 20, 6));
    let id = import(
        &mut store,
        tmp.path(),
        "example.com/p",
        &[("a", a.clone(), 0o644), ("b", b.clone(), 0o644)],
    );
    let (fa, fb) = (file_id(&store, &id, "a"), file_id(&store, &id, "b"));
    // What a crash of the machine could leave: a pending object of another boot, half written.
    let path = store.object_path(&fa);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let stale = path.with_file_name(format!(
        ".{name}.pending-00000000-0000-0000-0000-000000000000"
    ));
    std::fs::write(&stale, vec![0u8; a.len()]).unwrap();
    let mut read = Vec::new();
    let h = store.open_object(&fa).unwrap();
    std::io::Read::read_to_end(&mut h.file(), &mut read).unwrap();
    assert!(read == a, "an earlier boot's pending object was served");
    // Two servers of one store (two pods of an image): one copy.
    let other = Store::open(&dir).unwrap();
    let (h1, h2) = (
        store.open_object(&fb).unwrap(),
        other.open_object(&fb).unwrap(),
    );
    let ino = |h: &rkt_store::objects::ObjectHandle| h.file().metadata().unwrap().ino();
    assert_eq!(ino(&h1), ino(&h2), "each server wrote its own copy");
    drop((h, h1, h2, other));
    store.wait_for_publications();
    assert_eq!(std::fs::read(store.object_path(&fb)).unwrap(), b);
    // gc (which waits for publications) removes the stale one.
    store
        .gc(Duration::from_secs(3600), &HashSet::new())
        .unwrap();
    assert!(
        !stale.exists(),
        "gc leaves temporary objects of earlier boots"
    );
}

#[test]
fn a_corrupt_chunk_is_never_materialised() {
    // A small file, and one read on two threads with the bad chunk near its end.
    for (size, bad) in [(200_000, 1000), (9 << 20, (9 << 20) - 5000)] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("store");
        let mut store = Store::open(&dir).unwrap();
        let data = noise(size, 2);
        let id = import(
            &mut store,
            tmp.path(),
            "example.com/c",
            &[("f", data.clone(), 0o644)],
        );
        // Random data is stored raw: find the bytes in the pack and flip one.
        let pack = std::fs::read_dir(dir.join("packs"))
            .unwrap()
            .flatten()
            .next()
            .unwrap()
            .path();
        let mut bytes = std::fs::read(&pack).unwrap();
        let at = bytes
            .windows(64)
            .position(|w| w == &data[bad..bad + 64])
            .unwrap();
        bytes[at] ^= 0xff;
        std::fs::write(&pack, bytes).unwrap();
        let f = file_id(&store, &id, "f");
        let err = store.materialize(&f).unwrap_err().to_string();
        assert!(err.contains("does not match its hash"), "{size}: {err}");
        let err = store.open_object(&f).unwrap_err().to_string();
        assert!(err.contains("does not match its hash"), "{size}: {err}");
        store.wait_for_publications();
        let temps = std::fs::read_dir(store.object_path(&f).parent().unwrap())
            .unwrap()
            .count();
        assert_eq!(temps, 0, "{size}: no temporary object left");
        assert!(
            !store.object_path(&f).exists(),
            "{size}: no object from corrupt chunks"
        );
    }
}

#[test]
fn eviction_respects_the_bound_and_holds() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let mut store = Store::open(&dir).unwrap();
    let files: Vec<(&str, Vec<u8>, u32)> = vec![
        ("a", noise(300_000, 3), 0o644),
        ("b", noise(300_000, 4), 0o644),
        ("c", noise(300_000, 5), 0o644),
    ];
    let id = import(&mut store, tmp.path(), "example.com/e", &files);
    let ids: Vec<FileId> = ["a", "b", "c"]
        .iter()
        .map(|p| file_id(&store, &id, p))
        .collect();
    let held = store.open_object(&ids[0]).unwrap();
    assert_eq!(held.len(), 300_000);
    for f in &ids[1..] {
        store.materialize(f).unwrap();
    }
    // Unbounded enough: nothing evicted.
    assert_eq!(store.trim_objects().unwrap().removed, 0);
    std::fs::write(dir.join("config.json"), r#"{"objectCacheMaxBytes": 0}"#).unwrap();
    let r = store.trim_objects().unwrap();
    assert_eq!((r.removed, r.held), (2, 1), "{r:?}");
    assert!(store.object_path(&ids[0]).exists(), "a held object stays");
    assert!(!store.object_path(&ids[1]).exists());
    // The holder still reads it; once released, it goes.
    let mut buf = vec![0u8; 10];
    std::os::unix::fs::FileExt::read_exact_at(held.file(), &mut buf, 0).unwrap();
    assert_eq!(buf, files[0].1[..10]);
    drop(held);
    assert_eq!(store.trim_objects().unwrap().removed, 1);
}

#[test]
fn gc_removes_objects_of_removed_images_only() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open(&tmp.path().join("store")).unwrap();
    let shared = noise(50_000, 6);
    let a = import(
        &mut store,
        tmp.path(),
        "example.com/ga",
        &[
            ("s", shared.clone(), 0o644),
            ("own", noise(50_000, 7), 0o644),
        ],
    );
    let b = import(
        &mut store,
        tmp.path(),
        "example.com/gb",
        &[("s", shared, 0o644)],
    );
    let s = file_id(&store, &a, "s");
    let own = file_id(&store, &a, "own");
    store.materialize(&s).unwrap();
    store.materialize(&own).unwrap();
    store.remove_image(&a).unwrap();
    let mut keep = HashSet::new();
    keep.insert(b.clone());
    let report = store.gc(Duration::from_secs(3600), &keep).unwrap();
    assert_eq!(report.objects.removed, 1, "{report:?}");
    assert!(
        store.object_path(&s).exists(),
        "content still used by image b"
    );
    assert!(!store.object_path(&own).exists());
}

#[test]
fn rendered_trees_share_inodes_through_the_object_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open(&tmp.path().join("store")).unwrap();
    let lib = noise(100_000, 8);
    let a = import(
        &mut store,
        tmp.path(),
        "example.com/ra",
        &[
            ("lib/libx.so", lib.clone(), 0o755),
            ("only-a", noise(1000, 9), 0o644),
            ("empty", vec![], 0o644),
        ],
    );
    let b = import(
        &mut store,
        tmp.path(),
        "example.com/rb",
        &[
            ("lib/libx.so", lib.clone(), 0o755),
            ("lib/ro", lib.clone(), 0o444),
        ],
    );
    let ta = store.rendered_tree(&a).unwrap();
    let tb = store.rendered_tree(&b).unwrap();
    let ma = std::fs::metadata(ta.join("rootfs/lib/libx.so")).unwrap();
    let mb = std::fs::metadata(tb.join("rootfs/lib/libx.so")).unwrap();
    assert_eq!(ma.ino(), mb.ino(), "same content and metadata: one inode");
    assert_eq!(ma.nlink(), 3, "two trees and the object");
    assert_eq!(ma.mode() & 0o7777, 0o755, "the image's mode is kept");
    let ro = std::fs::metadata(tb.join("rootfs/lib/ro")).unwrap();
    assert_ne!(ro.ino(), mb.ino(), "other metadata: another variant");
    assert_eq!(ro.mode() & 0o7777, 0o444);
    assert_eq!(std::fs::read(tb.join("rootfs/lib/ro")).unwrap(), lib);
    assert_eq!(
        std::fs::metadata(ta.join("rootfs/empty")).unwrap().nlink(),
        1,
        "empty files stay copies"
    );
    assert_eq!(
        std::fs::metadata(ta.parent().unwrap()).unwrap().mode() & 0o777,
        0o700
    );
    // Removing image a and collecting drops its tree; b's tree keeps the shared inode alive.
    store.remove_image(&a).unwrap();
    let mut keep = HashSet::new();
    keep.insert(b.clone());
    store.gc(Duration::from_secs(3600), &keep).unwrap();
    assert!(!ta.exists());
    assert_eq!(
        std::fs::metadata(tb.join("rootfs/lib/libx.so"))
            .unwrap()
            .nlink(),
        2
    );
    assert_eq!(std::fs::read(tb.join("rootfs/lib/libx.so")).unwrap(), lib);
}

/// Bytes of `path` resident in the page cache (mincore over a read-only mapping).
fn resident_bytes(path: &Path) -> usize {
    let f = std::fs::File::open(path).unwrap();
    let len = f.metadata().unwrap().len() as usize;
    if len == 0 {
        return 0;
    }
    use std::os::fd::AsRawFd;
    // SAFETY: a private read-only mapping of a file we keep open for the call; it is only
    // passed to mincore and unmapped before returning, never dereferenced.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            f.as_raw_fd(),
            0,
        )
    };
    assert_ne!(addr, libc::MAP_FAILED);
    let page = 4096;
    let mut vec = vec![0u8; len.div_ceil(page)];
    // SAFETY: `addr` is the mapping of `len` bytes made above, `vec` has one byte per page.
    let rc = unsafe { libc::mincore(addr, len, vec.as_mut_ptr()) };
    // SAFETY: unmapping exactly the mapping made above.
    unsafe { libc::munmap(addr, len) };
    assert_eq!(rc, 0);
    vec.iter().filter(|b| **b & 1 == 1).count() * page
}

#[test]
fn materialising_drops_the_pack_pages_it_read() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open(&tmp.path().join("store")).unwrap();
    let data = noise(24 << 20, 9);
    let id = import(
        &mut store,
        tmp.path(),
        "example.com/big",
        &[("big", data, 0o644)],
    );
    let packs: Vec<_> = std::fs::read_dir(tmp.path().join("store/packs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    // Everything the import wrote is cached (written pages, then read back).
    let before: usize = packs
        .iter()
        .map(|p| {
            std::fs::read(p).unwrap();
            resident_bytes(p)
        })
        .sum();
    assert!(before >= 20 << 20, "pack pages cached before: {before}");
    let object = store.materialize(&file_id(&store, &id, "big")).unwrap();
    let after: usize = packs.iter().map(|p| resident_bytes(p)).sum();
    // Only partly covered large folios at the ends of the span may stay.
    assert!(
        after <= 4 << 20,
        "{after} bytes of the pack stayed cached after materialising (of {before})"
    );
    assert!(
        resident_bytes(&object) >= 20 << 20,
        "the object's pages are the cache"
    );
}
