//! Render tests: the acirenderer scenarios (merged view and on disk), every entry kind with its
//! metadata, and hostile images.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::CString;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::entry::{Entry, EntryKind, FileId};

use super::merge::upper_whitelist;
use super::*;

const T: i64 = 1_500_000_000;

#[derive(Default)]
struct MapSource(HashMap<FileId, Vec<u8>>);

impl ContentSource for MapSource {
    fn write_content(
        &self,
        file_id: &FileId,
        out: &mut dyn std::io::Write,
    ) -> Result<u64, RenderError> {
        let data = self.0.get(file_id).ok_or_else(|| {
            RenderError::source_msg(format!("no content {}", hex::encode(file_id)))
        })?;
        out.write_all(data)
            .map_err(|e| RenderError::source_msg(format!("write: {e}")))?;
        Ok(data.len() as u64)
    }
}

fn ent(path: &str, kind: EntryKind) -> Entry {
    Entry {
        path: path.to_string(),
        kind,
        mode: if kind == EntryKind::Dir { 0o755 } else { 0o644 },
        uid: 0,
        gid: 0,
        size: 0,
        mtime: T,
        mtime_nsec: 0,
        link: None,
        dev_major: 0,
        dev_minor: 0,
        xattrs: Vec::new(),
        file_id: None,
        sparse: None,
    }
}

fn dir(path: &str) -> Entry {
    ent(path, EntryKind::Dir)
}

fn dir_mode(path: &str, mode: u32) -> Entry {
    Entry { mode, ..dir(path) }
}

fn symlink(path: &str, target: &str) -> Entry {
    Entry {
        link: Some(target.to_string()),
        mode: 0o777,
        ..ent(path, EntryKind::Symlink)
    }
}

fn hardlink(path: &str, target: &str) -> Entry {
    Entry {
        link: Some(target.to_string()),
        ..ent(path, EntryKind::HardLink)
    }
}

impl MapSource {
    fn file(&mut self, path: &str, content: &[u8]) -> Entry {
        let id = *blake3::hash(content).as_bytes();
        self.0.insert(id, content.to_vec());
        Entry {
            size: content.len() as u64,
            file_id: Some(id),
            ..ent(path, EntryKind::File)
        }
    }

    /// A file of `n` bytes, all `b'x'` (acirenderer tests only look at sizes).
    fn sized(&mut self, path: &str, n: usize) -> Entry {
        self.file(path, &vec![b'x'; n])
    }
}

fn layer<'a>(id: &str, entries: &'a [Entry], pwl: &[&str]) -> Layer<'a> {
    Layer {
        image_id: id.to_string(),
        entries,
        path_whitelist: pwl.iter().map(|s| s.to_string()).collect(),
    }
}

/// (kind, size, mode) per path of a merged view.
type View = BTreeMap<String, (EntryKind, u64, u32)>;

fn view(merged: &[(usize, Entry)]) -> View {
    let mut v = View::new();
    for (_, e) in merged {
        assert!(
            v.insert(e.path.clone(), (e.kind, e.size, e.mode)).is_none(),
            "duplicate {}",
            e.path
        );
    }
    v
}

fn expect(items: &[(&str, EntryKind, u64, u32)]) -> View {
    items
        .iter()
        .map(|(p, k, s, m)| (p.to_string(), (*k, *s, *m)))
        .collect()
}

use EntryKind::{Dir as D, File as F, Symlink as L};

/// Merges with explicit levels, checks the chain default agrees, renders to disk and checks
/// the disk agrees with the merged view; returns the merged view.
fn scenario(layers: &[Layer<'_>], levels: &[u16], src: &MapSource) -> View {
    let merged = merge_with_levels(layers, Some(levels), true).expect("merge");
    let chain = merge(layers, true).expect("merge chain");
    assert_eq!(
        merged, chain,
        "chain levels select the same whitelists here"
    );

    let tmp = tempfile::tempdir().expect("tempdir");
    let dest = tmp.path().join("out");
    let opts = RenderOptions {
        rootfs_only: false,
        apply_whitelist: true,
        manifest: Some(b"{}".to_vec()),
    };
    render_with_levels(layers, Some(levels), &dest, &opts, src).expect("render");
    assert_eq!(fs::read(dest.join("manifest")).expect("manifest"), b"{}");
    let v = view(&merged);
    assert_eq!(
        walk(&dest.join("rootfs")),
        v,
        "disk matches the merged view"
    );
    v
}

/// (kind, size, mode) of everything under `root`, `""` being root itself.
fn walk(root: &Path) -> View {
    fn rec(root: &Path, rel: &str, out: &mut View) {
        let p = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(rel)
        };
        let md = fs::symlink_metadata(&p).expect("lstat");
        let ft = md.file_type();
        let kind = if ft.is_dir() {
            D
        } else if ft.is_symlink() {
            L
        } else if ft.is_file() {
            F
        } else if ft.is_char_device() {
            EntryKind::CharDevice
        } else if ft.is_block_device() {
            EntryKind::BlockDevice
        } else {
            EntryKind::Fifo
        };
        let mode = if kind == L { 0o777 } else { md.mode() & 0o7777 };
        let size = if kind == F { md.len() } else { 0 };
        out.insert(rel.to_string(), (kind, size, mode));
        if kind == D {
            for de in fs::read_dir(&p).expect("readdir") {
                let name = de.expect("dirent").file_name().into_string().expect("utf8");
                let child = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                rec(root, &child, out);
            }
        }
    }
    let mut out = View::new();
    rec(root, "", &mut out);
    out
}

// ---------------------------------------------------------------------------------------------
// acirenderer scenarios (appc/spec pkg/acirenderer/acirenderer_test.go)

#[test]
fn render_aci_get_upper_pwlm() {
    let wl = |b: bool| b.then(HashSet::<String>::new);
    // A (pwl)
    assert_eq!(upper_whitelist(&[0], &[wl(true)], 0), None);
    // A (pwl) ---- B (pwl) --- C: the top one wins.
    assert_eq!(
        upper_whitelist(&[0, 1, 2], &[wl(true), wl(true), wl(false)], 2),
        Some(0)
    );
    // A ---- B --- D, A \-- C (pwl); the Go test lists {A, C, B(level 0), D}.
    assert_eq!(
        upper_whitelist(
            &[0, 1, 0, 2],
            &[wl(false), wl(true), wl(false), wl(false)],
            3
        ),
        None
    );
    // acirenderer quirk kept: a sibling's subtree resets the walk, so B after C -> D sees C's.
    assert_eq!(
        upper_whitelist(
            &[0, 1, 2, 1],
            &[wl(false), wl(true), wl(false), wl(false)],
            3
        ),
        Some(1)
    );
}

#[test]
fn render_aci_dir_from_parent() {
    let src = MapSource::default();
    let top: Vec<Entry> = vec![];
    let dep = vec![dir("a")];
    let v = scenario(
        &[layer("top", &top, &[]), layer("dep", &dep, &[])],
        &[0, 1],
        &src,
    );
    assert_eq!(v, expect(&[("", D, 0, 0o755), ("a", D, 0, 0o755)]));
}

#[test]
fn render_aci_new_dir() {
    let src = MapSource::default();
    let top = vec![dir("a")];
    let dep: Vec<Entry> = vec![];
    let v = scenario(
        &[layer("top", &top, &[]), layer("dep", &dep, &[])],
        &[0, 1],
        &src,
    );
    assert_eq!(v, expect(&[("", D, 0, 0o755), ("a", D, 0, 0o755)]));
}

#[test]
fn render_aci_dir_override() {
    let src = MapSource::default();
    let top = vec![dir_mode("a", 0o700)];
    let dep = vec![dir("a")];
    let v = scenario(
        &[layer("top", &top, &[]), layer("dep", &dep, &[])],
        &[0, 1],
        &src,
    );
    assert_eq!(v, expect(&[("", D, 0, 0o755), ("a", D, 0, 0o700)]));
}

#[test]
fn render_aci_file_from_parent() {
    let mut src = MapSource::default();
    let top: Vec<Entry> = vec![];
    let dep = vec![src.sized("a/file01.txt", 5)];
    let v = scenario(
        &[layer("top", &top, &[]), layer("dep", &dep, &[])],
        &[0, 1],
        &src,
    );
    assert_eq!(
        v,
        expect(&[
            ("", D, 0, 0o755),
            ("a", D, 0, 0o755),
            ("a/file01.txt", F, 5, 0o644)
        ])
    );
}

#[test]
fn render_aci_new_file() {
    let mut src = MapSource::default();
    let top = vec![src.sized("a/file01.txt", 10)];
    let dep: Vec<Entry> = vec![];
    let v = scenario(
        &[layer("top", &top, &[]), layer("dep", &dep, &[])],
        &[0, 1],
        &src,
    );
    assert_eq!(
        v,
        expect(&[
            ("", D, 0, 0o755),
            ("a", D, 0, 0o755),
            ("a/file01.txt", F, 10, 0o644)
        ])
    );
}

#[test]
fn render_aci_file_override() {
    let mut src = MapSource::default();
    let top = vec![src.sized("a/file01.txt", 10)];
    let dep = vec![src.sized("a/file01.txt", 5)];
    let v = scenario(
        &[layer("top", &top, &[]), layer("dep", &dep, &[])],
        &[0, 1],
        &src,
    );
    assert_eq!(
        v,
        expect(&[
            ("", D, 0, 0o755),
            ("a", D, 0, 0o755),
            ("a/file01.txt", F, 10, 0o644)
        ])
    );
}

#[test]
fn render_aci_file_override_dir() {
    let mut src = MapSource::default();
    let top = vec![src.sized("a/b", 10)];
    let dep = vec![
        dir_mode("a/b", 0o700),
        dir_mode("a/b/c", 0o700),
        src.sized("a/b/c/file01", 5),
    ];
    let v = scenario(
        &[layer("top", &top, &[]), layer("dep", &dep, &[])],
        &[0, 1],
        &src,
    );
    assert_eq!(
        v,
        expect(&[("", D, 0, 0o755), ("a", D, 0, 0o755), ("a/b", F, 10, 0o644)])
    );
}

/// The dependency image of the two single-whitelist scenarios.
fn pwl_dep(src: &mut MapSource) -> Vec<Entry> {
    vec![
        src.sized("a/file01.txt", 5),
        src.sized("a/file02.txt", 5),
        src.sized("a/file03.txt", 5),
        symlink("b/link01.txt", "file01.txt"),
        dir_mode("c", 0o700),
        Entry {
            mode: 0o700,
            ..src.sized("c/file01.txt", 5)
        },
        dir_mode("d", 0o700),
        Entry {
            mode: 0o700,
            ..src.sized("d/file01.txt", 5)
        },
        Entry {
            mode: 0o700,
            ..src.sized("e/file01.txt", 5)
        },
    ]
}

#[test]
fn render_aci_pwl_only_parent() {
    let mut src = MapSource::default();
    let dep = pwl_dep(&mut src);
    let top = vec![src.sized("b/file01.txt", 10), src.sized("c/file02.txt", 5)];
    let pwl = [
        "/a/file01.txt",
        "/a/file02.txt",
        "/b/link01.txt",
        "/c/",
        "/d/",
    ];
    let v = scenario(
        &[layer("top", &top, &[]), layer("dep", &dep, &pwl)],
        &[0, 1],
        &src,
    );
    assert_eq!(
        v,
        expect(&[
            ("", D, 0, 0o755),
            ("a", D, 0, 0o755),
            ("a/file01.txt", F, 5, 0o644),
            ("a/file02.txt", F, 5, 0o644),
            ("b", D, 0, 0o755),
            ("b/file01.txt", F, 10, 0o644),
            ("b/link01.txt", L, 0, 0o777),
            ("c", D, 0, 0o700),
            ("c/file02.txt", F, 5, 0o644),
            ("d", D, 0, 0o700),
        ])
    );
}

#[test]
fn render_aci_pwl_only_image() {
    let mut src = MapSource::default();
    let dep = pwl_dep(&mut src);
    let top = vec![src.sized("a/file01.txt", 10), src.sized("c/file02.txt", 5)];
    let pwl = [
        "/a/file01.txt",
        "/a/file02.txt",
        "/b/link01.txt",
        "/b/file01.txt",
        "/c/file02.txt",
        "/d/",
    ];
    let v = scenario(
        &[layer("top", &top, &pwl), layer("dep", &dep, &[])],
        &[0, 1],
        &src,
    );
    // The dependency's `c` (0700) is not whitelisted: `c` is synthesised for c/file02.txt.
    assert_eq!(
        v,
        expect(&[
            ("", D, 0, 0o755),
            ("a", D, 0, 0o755),
            ("a/file01.txt", F, 10, 0o644),
            ("a/file02.txt", F, 5, 0o644),
            ("b", D, 0, 0o755),
            ("b/link01.txt", L, 0, 0o777),
            ("c", D, 0, 0o755),
            ("c/file02.txt", F, 5, 0o644),
            ("d", D, 0, 0o700),
        ])
    );
}

const TOP_PWL: [&str; 7] = [
    "/a/file01.txt",
    "/a/file02.txt",
    "/a/file03.txt",
    "/b/link01.txt",
    "/b/file01.txt",
    "/b/file02.txt",
    "/c/file01.txt",
];

fn deps_top(src: &mut MapSource) -> Vec<Entry> {
    vec![
        src.sized("a/file01.txt", 15),
        src.sized("b/file02.txt", 5),
        src.sized("c/file01.txt", 5),
    ]
}

fn deps_b(src: &mut MapSource) -> Vec<Entry> {
    vec![
        src.sized("a/file01.txt", 5),
        src.sized("a/file02.txt", 5),
        src.sized("a/file03.txt", 5),
        src.sized("a/file04.txt", 5),
        symlink("b/link01.txt", "file01.txt"),
    ]
}

fn deps_c(src: &mut MapSource) -> Vec<Entry> {
    vec![
        src.sized("a/file01.txt", 10),
        src.sized("a/file02.txt", 10),
        src.sized("b/file01.txt", 5),
    ]
}

fn deps_expected() -> View {
    expect(&[
        ("", D, 0, 0o755),
        ("a", D, 0, 0o755),
        ("a/file01.txt", F, 15, 0o644),
        ("a/file02.txt", F, 10, 0o644),
        ("a/file03.txt", F, 5, 0o644),
        ("b", D, 0, 0o755),
        ("b/file01.txt", F, 5, 0o644),
        ("b/file02.txt", F, 5, 0o644),
        ("b/link01.txt", L, 0, 0o777),
        ("c", D, 0, 0o755),
        ("c/file01.txt", F, 5, 0o644),
    ])
}

#[test]
fn render_aci_2_deps_1() {
    // A (pwl) ---- B (pwl), A \-- C; listed {A, C, B} as in the Go test.
    let mut src = MapSource::default();
    let a = deps_top(&mut src);
    let b = deps_b(&mut src);
    let c = deps_c(&mut src);
    let b_pwl = [
        "/a/file01.txt",
        "/a/file02.txt",
        "/a/file03.txt",
        "/a/file04.txt",
        "/b/link01.txt",
        "/b/file01.txt",
    ];
    let layers = [
        layer("A", &a, &TOP_PWL),
        layer("C", &c, &[]),
        layer("B", &b, &b_pwl),
    ];
    assert_eq!(scenario(&layers, &[0, 1, 1], &src), deps_expected());
}

#[test]
fn render_aci_2_deps_2() {
    // A (pwl) ---- B, A \-- C (pwl); listed {A, C, B}.
    let mut src = MapSource::default();
    let a = deps_top(&mut src);
    let b = deps_b(&mut src);
    let c = deps_c(&mut src);
    let c_pwl = ["/a/file01.txt", "/a/file02.txt", "/b/file01.txt"];
    let layers = [
        layer("A", &a, &TOP_PWL),
        layer("C", &c, &c_pwl),
        layer("B", &b, &[]),
    ];
    assert_eq!(scenario(&layers, &[0, 1, 1], &src), deps_expected());
}

#[test]
fn render_aci_3_deps() {
    // A (pwl) ---- B, A \-- C -- D; listed {A, C, D, B}.
    let mut src = MapSource::default();
    let a = deps_top(&mut src);
    let b = deps_b(&mut src);
    let c = deps_c(&mut src);
    let d = vec![
        src.sized("a/file02.txt", 5),
        src.sized("b/file01.txt", 5),
        dir_mode("d", 0o700),
        Entry {
            mode: 0o700,
            ..src.sized("d/file01.txt", 5)
        },
    ];
    let layers = [
        layer("A", &a, &TOP_PWL),
        layer("C", &c, &[]),
        layer("D", &d, &[]),
        layer("B", &b, &[]),
    ];
    assert_eq!(scenario(&layers, &[0, 1, 2, 1], &src), deps_expected());
}

#[test]
fn render_aci_empty_rootfs_dir() {
    let src = MapSource::default();
    let img = vec![dir_mode("", 0o700)];
    for pwl in [&[][..], &["foo"][..]] {
        let v = scenario(&[layer("img", &img, pwl)], &[0], &src);
        assert_eq!(v, expect(&[("", D, 0, 0o700)]));
    }
}

#[test]
fn render_whitelist_ignored_when_not_applied() {
    let mut src = MapSource::default();
    let dep = pwl_dep(&mut src);
    let top: Vec<Entry> = vec![];
    let layers = [
        layer("top", &top, &["/nothing"]),
        layer("dep", &dep, &["/a/file01.txt"]),
    ];
    let v = view(&merge(&layers, false).expect("merge"));
    assert!(v.contains_key("e/file01.txt") && v.contains_key("a/file03.txt"));
}

// ---------------------------------------------------------------------------------------------
// One image with every kind of entry and its metadata.

fn lgetxattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let cpath = CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    let cname = CString::new(name).expect("name");
    let mut buf = vec![0u8; 256];
    // SAFETY: both strings are NUL-terminated and `buf` is a live buffer of the given length.
    let n = unsafe {
        libc::lgetxattr(
            cpath.as_ptr(),
            cname.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let n = usize::try_from(n).ok()?;
    buf.truncate(n);
    Some(buf)
}

#[test]
fn render_single_image_all_kinds() {
    let mut src = MapSource::default();
    let sparse_data = b"HEADtail!".to_vec();
    let sparse_id = *blake3::hash(&sparse_data).as_bytes();
    src.0.insert(sparse_id, sparse_data);
    let entries = vec![
        Entry {
            mode: 0o751,
            mtime: T + 1,
            ..dir("")
        },
        Entry {
            mode: 0o750,
            uid: 1000,
            gid: 1001,
            mtime: T + 2,
            mtime_nsec: 123_456_789,
            ..dir("etc")
        },
        Entry {
            mode: 0o640,
            gid: 42,
            mtime: T + 3,
            ..src.file("etc/shadow", b"root:*:")
        },
        Entry {
            xattrs: vec![("user.rkt".into(), b"value".to_vec())],
            ..src.file("etc/hosts", b"127.0.0.1 localhost\n")
        },
        Entry {
            mode: 0o4755,
            ..src.file("bin/su", b"\x7fELF su")
        },
        Entry {
            mode: 0o2755,
            uid: 7,
            gid: 8,
            ..src.file("bin/wall", b"\x7fELF wall")
        },
        hardlink("bin/su2", "bin/su"),
        hardlink("bin/su3", "bin/su2"),
        Entry {
            uid: 12,
            gid: 13,
            mtime: T + 4,
            ..symlink("lib", "usr/lib")
        },
        symlink("abs", "/etc/passwd"),
        Entry {
            mode: 0o1777,
            ..dir("tmp")
        },
        Entry {
            xattrs: vec![("user.dir".into(), b"d".to_vec())],
            ..dir("dev")
        },
        Entry {
            mode: 0o666,
            dev_major: 1,
            dev_minor: 3,
            ..ent("dev/null", EntryKind::CharDevice)
        },
        Entry {
            mode: 0o660,
            gid: 6,
            dev_major: 7,
            dev_minor: 1,
            ..ent("dev/loop1", EntryKind::BlockDevice)
        },
        Entry {
            mode: 0o600,
            mtime: T + 5,
            ..ent("run/fifo", EntryKind::Fifo)
        },
        Entry {
            size: 4 << 20,
            file_id: Some(sparse_id),
            sparse: Some(vec![(0, 4), (2 << 20, 5)]),
            ..ent("var/sparse", EntryKind::File)
        },
        ent("empty", EntryKind::File),
    ];
    let tmp = tempfile::tempdir().expect("tempdir");
    let dest = tmp.path().join("out");
    let opts = RenderOptions {
        rootfs_only: false,
        apply_whitelist: true,
        manifest: Some(b"{\"acKind\":\"ImageManifest\"}".to_vec()),
    };
    let stats = render(&[layer("img", &entries, &[])], &dest, &opts, &src).expect("render");
    let r = dest.join("rootfs");
    let md = |p: &str| fs::symlink_metadata(r.join(p)).expect(p);

    // Directories: "", etc, bin, tmp, dev, run, var.
    assert_eq!(stats.dirs, 7);
    assert_eq!(stats.files, 13);
    assert_eq!(
        stats.bytes,
        (7 + 20 + 7 + 9 + 9) as u64,
        "content bytes, holes excluded"
    );
    assert_eq!(
        fs::metadata(dest.join("manifest"))
            .expect("manifest")
            .mode()
            & 0o7777,
        0o644
    );

    let root = fs::symlink_metadata(&r).expect("rootfs");
    assert_eq!((root.mode() & 0o7777, root.mtime()), (0o751, T + 1));
    let etc = md("etc");
    assert_eq!(
        (etc.mode() & 0o7777, etc.uid(), etc.gid()),
        (0o750, 1000, 1001)
    );
    assert_eq!(
        (etc.mtime(), etc.mtime_nsec()),
        (T + 2, 123_456_789),
        "dir mtime after children"
    );

    let shadow = md("etc/shadow");
    assert_eq!(
        (shadow.mode() & 0o7777, shadow.gid(), shadow.mtime()),
        (0o640, 42, T + 3)
    );
    assert_eq!(fs::read(r.join("etc/shadow")).expect("read"), b"root:*:");

    let su = md("bin/su");
    assert_eq!(su.mode() & 0o7777, 0o4755, "setuid kept");
    assert_eq!(su.nlink(), 3);
    for l in ["bin/su2", "bin/su3"] {
        assert_eq!(md(l).ino(), su.ino(), "{l} is a hard link");
    }
    let wall = md("bin/wall");
    assert_eq!(
        (wall.mode() & 0o7777, wall.uid(), wall.gid()),
        (0o2755, 7, 8),
        "setgid after chown"
    );

    let lib = md("lib");
    assert!(lib.file_type().is_symlink());
    assert_eq!((lib.uid(), lib.gid(), lib.mtime()), (12, 13, T + 4));
    assert_eq!(
        fs::read_link(r.join("lib")).expect("readlink"),
        Path::new("usr/lib")
    );
    assert_eq!(
        fs::read_link(r.join("abs")).expect("readlink"),
        Path::new("/etc/passwd")
    );
    assert_eq!(md("tmp").mode() & 0o7777, 0o1777);

    let null = md("dev/null");
    assert!(null.file_type().is_char_device());
    assert_eq!(
        (null.rdev(), null.mode() & 0o7777),
        (nix::sys::stat::makedev(1, 3), 0o666)
    );
    let loop1 = md("dev/loop1");
    assert!(loop1.file_type().is_block_device());
    assert_eq!(
        (loop1.rdev(), loop1.gid()),
        (nix::sys::stat::makedev(7, 1), 6)
    );
    let fifo = md("run/fifo");
    assert!(fifo.file_type().is_fifo());
    assert_eq!((fifo.mode() & 0o7777, fifo.mtime()), (0o600, T + 5));

    let sparse = md("var/sparse");
    assert_eq!(sparse.len(), 4 << 20);
    assert!(
        sparse.blocks() * 512 < 1 << 20,
        "holes left: {} blocks",
        sparse.blocks()
    );
    let data = fs::read(r.join("var/sparse")).expect("read");
    assert_eq!(&data[..4], b"HEAD");
    assert_eq!(&data[2 << 20..(2 << 20) + 5], b"tail!");
    assert!(data[4..2 << 20].iter().all(|b| *b == 0));
    assert_eq!(md("empty").len(), 0);

    assert_eq!(
        lgetxattr(&r.join("etc/hosts"), "user.rkt").as_deref(),
        Some(&b"value"[..])
    );
    assert_eq!(
        lgetxattr(&r.join("dev"), "user.dir").as_deref(),
        Some(&b"d"[..])
    );
    // Parents synthesised for bin/, run/, var/.
    let bin = md("bin");
    assert_eq!((bin.mode() & 0o7777, bin.uid(), bin.mtime()), (0o755, 0, 0));
}

// ---------------------------------------------------------------------------------------------
// Layering on disk.

#[test]
fn render_dependency_shadowing() {
    let mut src = MapSource::default();
    let top = vec![
        src.file("x", b"upper"),
        symlink("d", "/etc"),
        src.file("t", b"upper t"),
        dir_mode("keep", 0o700),
    ];
    let dep = vec![
        src.file("x", b"lower"),
        src.file("y", b"only lower"),
        dir("d"),
        src.file("d/passwd", b"must not be written"),
        src.file("t", b"lower t"),
        hardlink("h", "t"),
        dir("keep"),
        src.file("keep/inner", b"inner"),
        src.file("keep", b"file under an upper directory"),
    ];
    let tmp = tempfile::tempdir().expect("tempdir");
    let dest = tmp.path().join("out");
    let opts = RenderOptions {
        rootfs_only: true,
        ..Default::default()
    };
    let layers = [layer("top", &top, &[]), layer("dep", &dep, &[])];
    render(&layers, &dest, &opts, &src).expect("render");
    let rd = |p: &str| fs::read(dest.join(p)).expect(p);
    assert_eq!(rd("x"), b"upper");
    assert_eq!(rd("y"), b"only lower");
    assert_eq!(rd("t"), b"upper t");
    assert_eq!(
        rd("h"),
        b"lower t",
        "hard link to a shadowed target gets its content"
    );
    assert_eq!(fs::symlink_metadata(dest.join("h")).expect("h").nlink(), 1);
    assert!(fs::symlink_metadata(dest.join("d"))
        .expect("d")
        .file_type()
        .is_symlink());
    assert_eq!(rd("keep/inner"), b"inner");
    assert_eq!(
        fs::symlink_metadata(dest.join("keep"))
            .expect("keep")
            .mode()
            & 0o7777,
        0o700
    );
    assert!(!dest.join("manifest").exists());
}

#[test]
fn render_hard_link_to_filtered_target_is_copied() {
    let mut src = MapSource::default();
    let img = vec![
        src.file("a/secret", b"data"),
        hardlink("a/link", "a/secret"),
    ];
    let layers = [layer("img", &img, &["/a/link"])];
    let merged = merge(&layers, true).expect("merge");
    let link = merged
        .iter()
        .find(|(_, e)| e.path == "a/link")
        .expect("link");
    assert_eq!((link.1.kind, link.1.size), (EntryKind::File, 4));
    assert!(!merged.iter().any(|(_, e)| e.path == "a/secret"));

    let tmp = tempfile::tempdir().expect("tempdir");
    let dest = tmp.path().join("out");
    let opts = RenderOptions {
        rootfs_only: true,
        apply_whitelist: true,
        manifest: None,
    };
    render(&layers, &dest, &opts, &src).expect("render");
    assert_eq!(fs::read(dest.join("a/link")).expect("read"), b"data");
}

// ---------------------------------------------------------------------------------------------
// Hostile images and bad destinations.

fn is_unsafe(r: Result<RenderStats, RenderError>) -> bool {
    matches!(r, Err(RenderError::Unsafe { .. }))
}

#[test]
fn render_symlink_parent_escape_is_refused() {
    let mut src = MapSource::default();
    let tmp = tempfile::tempdir().expect("tempdir");
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).expect("mkdir");
    let target = outside.to_str().expect("utf8");
    let opts = RenderOptions {
        rootfs_only: true,
        ..Default::default()
    };

    let passwd = src.file("a/passwd", b"pwned");
    let orders = [
        vec![symlink("a", target), passwd.clone()],
        vec![passwd.clone(), symlink("a", target)],
        vec![symlink("a", target), dir("a/sub")],
        vec![src.file("f", b"file"), src.file("f/g", b"under a file")],
    ];
    for (i, img) in orders.iter().enumerate() {
        let layers = [layer("evil", img, &[])];
        assert!(
            matches!(merge(&layers, true), Err(RenderError::Unsafe { .. })),
            "case {i}"
        );
        let dest = tmp.path().join(format!("dest{i}"));
        assert!(is_unsafe(render(&layers, &dest, &opts, &src)), "case {i}");
        assert_eq!(
            fs::read_dir(&outside).expect("readdir").count(),
            0,
            "case {i}"
        );
        assert!(!dest.exists() || fs::read_dir(&dest).expect("readdir").count() == 0);
    }

    // Same thing through a dependency: the upper symlink shadows the lower files.
    let top = vec![symlink("a", target)];
    let dep = vec![dir("a"), passwd];
    let dest = tmp.path().join("dep");
    render(
        &[layer("top", &top, &[]), layer("dep", &dep, &[])],
        &dest,
        &opts,
        &src,
    )
    .expect("render");
    assert_eq!(fs::read_dir(&outside).expect("readdir").count(), 0);
}

#[test]
fn render_unnormalised_paths_are_refused() {
    let mut src = MapSource::default();
    for bad in ["../x", "/etc/x", "a/../../x", "a//b", "./a", "a/."] {
        let img = vec![src.file(bad, b"x")];
        assert!(
            matches!(
                merge(&[layer("evil", &img, &[])], true),
                Err(RenderError::Unsafe { .. })
            ),
            "{bad}"
        );
    }
    let img = vec![src.file("ok", b"x"), hardlink("l", "../../etc/shadow")];
    assert!(matches!(
        merge(&[layer("evil", &img, &[])], true),
        Err(RenderError::Unsafe { .. })
    ));
    let img = vec![hardlink("l", "missing")];
    assert!(matches!(
        merge(&[layer("evil", &img, &[])], true),
        Err(RenderError::Invalid { .. })
    ));
    let img = vec![hardlink("l1", "l2"), hardlink("l2", "l1")];
    assert!(matches!(
        merge(&[layer("evil", &img, &[])], true),
        Err(RenderError::Invalid { .. })
    ));
}

#[test]
fn render_refuses_non_empty_dest() {
    let mut src = MapSource::default();
    let img = vec![src.file("f", b"x")];
    let layers = [layer("img", &img, &[])];
    let opts = RenderOptions::default();
    let tmp = tempfile::tempdir().expect("tempdir");

    let full = tmp.path().join("full");
    fs::create_dir(&full).expect("mkdir");
    fs::write(full.join("x"), b"").expect("write");
    assert!(matches!(
        render(&layers, &full, &opts, &src),
        Err(RenderError::DestNotEmpty(_))
    ));

    let file = tmp.path().join("file");
    fs::write(&file, b"").expect("write");
    assert!(matches!(
        render(&layers, &file, &opts, &src),
        Err(RenderError::DestNotEmpty(_))
    ));

    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).expect("mkdir");
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&empty, &link).expect("symlink");
    assert!(matches!(
        render(&layers, &link, &opts, &src),
        Err(RenderError::DestNotEmpty(_))
    ));
    assert_eq!(fs::read_dir(&empty).expect("readdir").count(), 0);

    // An existing empty directory is fine.
    render(&layers, &empty, &opts, &src).expect("render into empty dir");
    assert_eq!(fs::read(empty.join("rootfs/f")).expect("read"), b"x");
    assert!(!empty.join("manifest").exists(), "no manifest given");
}

#[test]
fn render_rootfs_only() {
    let mut src = MapSource::default();
    let img = vec![
        Entry {
            mode: 0o700,
            mtime: T,
            ..dir("")
        },
        src.file("bin/sh", b"sh"),
    ];
    let tmp = tempfile::tempdir().expect("tempdir");
    let dest = tmp.path().join("out");
    let opts = RenderOptions {
        rootfs_only: true,
        apply_whitelist: false,
        manifest: Some(b"{}".to_vec()),
    };
    let stats = render(&[layer("img", &img, &[])], &dest, &opts, &src).expect("render");
    assert_eq!(
        stats,
        RenderStats {
            files: 1,
            dirs: 2,
            bytes: 2
        }
    );
    assert_eq!(fs::read(dest.join("bin/sh")).expect("read"), b"sh");
    assert!(!dest.join("manifest").exists() && !dest.join("rootfs").exists());
    let md = fs::symlink_metadata(&dest).expect("dest");
    assert_eq!((md.mode() & 0o7777, md.mtime()), (0o700, T));
}

#[test]
fn render_content_errors() {
    let mut src = MapSource::default();
    let tmp = tempfile::tempdir().expect("tempdir");
    let opts = RenderOptions::default();

    let missing = Entry {
        file_id: Some([7; 32]),
        size: 3,
        ..ent("f", EntryKind::File)
    };
    let img = [missing];
    let r = render(
        &[layer("img", &img, &[])],
        &tmp.path().join("a"),
        &opts,
        &src,
    );
    assert!(matches!(r, Err(RenderError::Source(_))), "{r:?}");

    let short = Entry {
        size: 10,
        ..src.file("f", b"abc")
    };
    let img = [short];
    let r = render(
        &[layer("img", &img, &[])],
        &tmp.path().join("b"),
        &opts,
        &src,
    );
    assert!(matches!(r, Err(RenderError::Invalid { .. })), "{r:?}");

    let no_content = Entry {
        size: 10,
        ..ent("f", EntryKind::File)
    };
    let img = [no_content];
    let r = render(
        &[layer("img", &img, &[])],
        &tmp.path().join("c"),
        &opts,
        &src,
    );
    assert!(matches!(r, Err(RenderError::Invalid { .. })), "{r:?}");

    let bad_sparse = Entry {
        sparse: Some(vec![(8, 3)]),
        size: 9,
        ..src.file("f", b"abc")
    };
    let img = [bad_sparse];
    let r = render(
        &[layer("img", &img, &[])],
        &tmp.path().join("d"),
        &opts,
        &src,
    );
    assert!(matches!(r, Err(RenderError::Invalid { .. })), "{r:?}");

    let r = render(&[], &tmp.path().join("e"), &opts, &src);
    assert!(matches!(r, Err(RenderError::Usage(_))), "{r:?}");
}

/// Claims to have written more than it did.
struct LyingSource;

impl ContentSource for LyingSource {
    fn write_content(&self, _: &FileId, out: &mut dyn std::io::Write) -> Result<u64, RenderError> {
        out.write_all(b"ab")
            .map_err(|e| RenderError::source_msg(e.to_string()))?;
        Ok(3)
    }
}

#[test]
fn render_counts_bytes_itself() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let img = [Entry {
        file_id: Some([1; 32]),
        size: 3,
        ..ent("f", EntryKind::File)
    }];
    let r = render(
        &[layer("img", &img, &[])],
        &tmp.path().join("out"),
        &RenderOptions::default(),
        &LyingSource,
    );
    assert!(matches!(r, Err(RenderError::Invalid { .. })), "{r:?}");
}
