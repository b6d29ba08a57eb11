//! Round-trip and metadata tests for the raw tar parser, on archives made by GNU tar, Python's
//! tarfile, and by hand.

/// Named so that `cargo test -p rkt-store tarstream` selects these tests.
mod tarstream {

    use std::fs;
    use std::io::Read;
    use std::path::Path;
    use std::process::Command;

    use rkt_store::tarstream::{parse, TarEntry, TarError, TarKind, TarSink, TarSummary};

    /// Records everything and checks the call protocol.
    #[derive(Default)]
    struct Recorder {
        all: Vec<u8>,
        entries: Vec<TarEntry>,
        contents: Vec<Vec<u8>>,
        in_entry: bool,
    }

    impl TarSink for Recorder {
        fn skeleton(&mut self, bytes: &[u8]) -> Result<(), TarError> {
            self.all.extend_from_slice(bytes);
            Ok(())
        }
        fn entry(&mut self, entry: &TarEntry) -> Result<(), TarError> {
            assert!(!self.in_entry, "entry() inside an entry");
            self.in_entry = true;
            self.entries.push(entry.clone());
            self.contents.push(Vec::new());
            Ok(())
        }
        fn content(&mut self, bytes: &[u8]) -> Result<(), TarError> {
            assert!(self.in_entry, "content() outside an entry");
            self.all.extend_from_slice(bytes);
            self.contents.last_mut().unwrap().extend_from_slice(bytes);
            Ok(())
        }
        fn end_entry(&mut self) -> Result<(), TarError> {
            assert!(self.in_entry, "end_entry() outside an entry");
            self.in_entry = false;
            let entry = self.entries.last().unwrap();
            assert_eq!(
                self.contents.last().unwrap().len() as u64,
                entry.content_len
            );
            Ok(())
        }
    }

    impl Recorder {
        fn find(&self, path: &str) -> (&TarEntry, &[u8]) {
            let i = self
                .entries
                .iter()
                .position(|e| e.path == path.as_bytes())
                .unwrap_or_else(|| panic!("no entry {path:?} in {:?}", self.paths()));
            (&self.entries[i], &self.contents[i])
        }
        fn paths(&self) -> Vec<String> {
            self.entries
                .iter()
                .map(|e| String::from_utf8_lossy(&e.path).into_owned())
                .collect()
        }
    }

    /// Hands out the input a few bytes at a time, to exercise buffer boundaries.
    struct Dribble<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Dribble<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// Parses `bytes` (whole and dribbled) and checks the exact round trip.
    fn roundtrip(bytes: &[u8]) -> Recorder {
        let mut rec = Recorder::default();
        let summary = parse(bytes, &mut rec).unwrap_or_else(|e| panic!("parse failed: {e}"));
        assert!(
            rec.all == bytes,
            "round trip differs ({} vs {} bytes)",
            rec.all.len(),
            bytes.len()
        );
        assert!(!rec.in_entry);
        assert_eq!(
            summary,
            TarSummary {
                entries: rec.entries.len() as u64,
                total_bytes: bytes.len() as u64
            }
        );
        for step in [1, 511, 4099] {
            let mut slow = Recorder::default();
            parse(Dribble { data: bytes, step }, &mut slow).unwrap();
            assert!(slow.all == bytes);
            assert_eq!(slow.entries, rec.entries);
        }
        rec
    }

    fn parse_err(bytes: &[u8]) -> TarError {
        let mut rec = Recorder::default();
        match parse(bytes, &mut rec) {
            Ok(s) => panic!("expected an error, parsed {s:?}"),
            Err(e) => e,
        }
    }

    fn run(cmd: &mut Command) -> Vec<u8> {
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
        assert!(
            out.status.success(),
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn gnu_tar(dir: &Path, args: &[&str]) -> Vec<u8> {
        run(Command::new("tar")
            .arg("-C")
            .arg(dir)
            .args(args)
            .args(["-cf", "-", "."]))
    }

    fn python(script: &str) -> Vec<u8> {
        run(Command::new("python3").arg("-c").arg(script))
    }

    fn write(dir: &Path, rel: &str, data: &[u8]) {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, data).unwrap();
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    // ---------------------------------------------------------------------------------------
    // GNU tar

    fn populate(dir: &Path, long: bool, prefix: bool) -> Vec<(String, Vec<u8>)> {
        let mut files = vec![
            ("./hello.txt".to_string(), b"hello, world\n".to_vec()),
            ("./empty".to_string(), Vec::new()),
            ("./dir/exact512".to_string(), pattern(512, 1)),
            ("./dir/big".to_string(), pattern(700_001, 7)),
        ];
        if long {
            let name = format!("./{}/{}", "d".repeat(120), "f".repeat(150));
            files.push((name, b"long name content".to_vec()));
        } else if prefix {
            let name = format!("./{}/{}", "p".repeat(60), "n".repeat(40));
            files.push((name, b"prefix content".to_vec()));
        } else {
            let name = format!("./{}/{}", "p".repeat(40), "n".repeat(40));
            files.push((name, b"prefix content".to_vec()));
        }
        for (rel, data) in &files {
            write(dir, rel, data);
        }
        std::os::unix::fs::symlink("hello.txt", dir.join("link")).unwrap();
        fs::hard_link(dir.join("hello.txt"), dir.join("zhard")).unwrap();
        if long {
            let target = format!("/{}", "t".repeat(180));
            std::os::unix::fs::symlink(target, dir.join("longlink")).unwrap();
        }
        files
    }

    fn check_tree(rec: &Recorder, files: &[(String, Vec<u8>)], format: &str) {
        for (rel, data) in files {
            let (entry, content) = rec.find(rel);
            assert_eq!(entry.kind, TarKind::Regular, "{format} {rel}");
            assert_eq!(entry.size, data.len() as u64, "{format} {rel}");
            assert!(content == data, "{format}: content of {rel}");
            assert_eq!(entry.mode & 0o777, 0o644 & entry.mode, "{format} {rel}");
        }
        let (link, _) = rec.find("./link");
        assert_eq!(link.kind, TarKind::Symlink);
        assert_eq!(link.link_target.as_deref(), Some(&b"hello.txt"[..]));
        let (dir, _) = rec.find("./dir/");
        assert_eq!(dir.kind, TarKind::Directory);
        let hard = rec
            .entries
            .iter()
            .find(|e| e.kind == TarKind::HardLink)
            .expect("a hard link");
        assert_eq!(hard.path, b"./zhard");
        assert_eq!(hard.link_target.as_deref(), Some(&b"./hello.txt"[..]));
        assert_eq!(hard.content_len, 0);
    }

    #[test]
    fn gnu_tar_formats() {
        for (format, long, prefix) in [
            ("gnu", true, false),
            ("oldgnu", true, false),
            ("posix", true, false),
            ("ustar", false, true),
            ("v7", false, false),
        ] {
            let tmp = tempfile::tempdir().unwrap();
            let files = populate(tmp.path(), long, prefix);
            let archive = gnu_tar(tmp.path(), &[&format!("--format={format}"), "--sort=name"]);
            let rec = roundtrip(&archive);
            check_tree(&rec, &files, format);
            if long {
                let (entry, _) = rec.find("./longlink");
                assert_eq!(
                    entry.link_target.as_ref().map(Vec::len),
                    Some(181),
                    "{format}"
                );
            }
            let (hello, _) = rec.find("./hello.txt");
            let meta = fs::metadata(tmp.path().join("hello.txt")).unwrap();
            use std::os::unix::fs::MetadataExt;
            assert_eq!(hello.mtime, meta.mtime(), "{format}");
            assert_eq!(hello.uid, u64::from(meta.uid()));
            if format != "v7" {
                assert_eq!(hello.uname, b"root", "{format}");
            }
        }
    }

    /// A 10 MiB file with 30 data segments (more than the 4 + 21 of one old GNU extension block).
    fn make_sparse(path: &Path) -> Vec<u8> {
        let size = 10 << 20;
        let mut data = vec![0u8; size];
        run(Command::new("truncate")
            .arg("-s")
            .arg(size.to_string())
            .arg(path));
        let file = fs::OpenOptions::new().write(true).open(path).unwrap();
        use std::os::unix::fs::FileExt;
        for i in 0..30u8 {
            let offset = usize::from(i) * 300_000 + 12_345;
            let chunk = pattern(1000 + usize::from(i) * 10, i + 1);
            file.write_all_at(&chunk, offset as u64).unwrap();
            data[offset..offset + chunk.len()].copy_from_slice(&chunk);
        }
        let tail = pattern(100, 99);
        file.write_all_at(&tail, (size - 100) as u64).unwrap();
        data[size - 100..].copy_from_slice(&tail);
        data
    }

    fn expand_sparse(entry: &TarEntry, content: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; entry.size as usize];
        let mut pos = 0;
        for &(offset, len) in entry.sparse.as_ref().expect("a sparse map") {
            let (offset, len) = (offset as usize, len as usize);
            out[offset..offset + len].copy_from_slice(&content[pos..pos + len]);
            pos += len;
        }
        assert_eq!(pos, content.len());
        out
    }

    #[test]
    fn gnu_tar_sparse_files() {
        let variants: &[&[&str]] = &[
            &["--format=gnu"],
            &["--format=oldgnu"],
            &["--format=posix", "--sparse-version=0.0"],
            &["--format=posix", "--sparse-version=0.1"],
            &["--format=posix", "--sparse-version=1.0"],
        ];
        for args in variants {
            let tmp = tempfile::tempdir().unwrap();
            let expected = make_sparse(&tmp.path().join("sparse.img"));
            write(tmp.path(), "after", b"a file after the sparse one");
            let mut all = vec!["-S", "--sort=name"];
            all.extend_from_slice(args);
            let archive = gnu_tar(tmp.path(), &all);
            let rec = roundtrip(&archive);
            let (entry, content) = rec.find("./sparse.img");
            assert_eq!(entry.kind, TarKind::Regular, "{args:?}");
            assert_eq!(entry.size, expected.len() as u64, "{args:?}");
            assert!(
                entry.sparse.as_ref().unwrap().len() >= 30,
                "{args:?}: {:?}",
                entry.sparse
            );
            assert!(content.len() < expected.len() / 4, "{args:?}");
            assert!(
                expand_sparse(entry, content) == expected,
                "{args:?}: expanded content"
            );
            let (after, content) = rec.find("./after");
            assert_eq!(content, b"a file after the sparse one");
            assert!(after.sparse.is_none());
        }
    }

    #[test]
    fn gnu_tar_xattrs() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "x", b"xattr file");
        let file = tmp.path().join("x");
        let set = Command::new("setfattr")
            .args(["-n", "user.greeting", "-v", "hi there"])
            .arg(&file)
            .status();
        if !matches!(set, Ok(s) if s.success()) {
            eprintln!("skipping: setfattr unavailable or unsupported here");
            return;
        }
        run(Command::new("setfattr")
            .args(["-n", "user.bin", "-v", "0x00ff10"])
            .arg(&file));
        let archive = gnu_tar(
            tmp.path(),
            &["--format=posix", "--xattrs", "--xattrs-include=user.*"],
        );
        let rec = roundtrip(&archive);
        let (entry, content) = rec.find("./x");
        assert_eq!(content, b"xattr file");
        let mut xattrs = entry.xattrs.clone();
        xattrs.sort();
        assert_eq!(
            xattrs,
            vec![
                (b"user.bin".to_vec(), vec![0, 0xff, 0x10]),
                (b"user.greeting".to_vec(), b"hi there".to_vec())
            ]
        );
    }

    #[test]
    fn gnu_tar_devices_and_fifos() {
        let tmp = tempfile::tempdir().unwrap();
        let dev = tmp.path().join("null");
        let made = Command::new("mknod")
            .arg(&dev)
            .args(["c", "1", "3"])
            .status();
        if !matches!(made, Ok(s) if s.success()) {
            eprintln!("skipping: mknod needs root");
            return;
        }
        run(Command::new("mknod")
            .arg(tmp.path().join("blk"))
            .args(["b", "7", "200"]));
        run(Command::new("mkfifo").arg(tmp.path().join("fifo")));
        for format in ["gnu", "posix", "ustar"] {
            let rec = roundtrip(&gnu_tar(tmp.path(), &[&format!("--format={format}")]));
            let (null, _) = rec.find("./null");
            assert_eq!(
                (null.kind, null.dev_major, null.dev_minor),
                (TarKind::CharDevice, 1, 3)
            );
            let (blk, _) = rec.find("./blk");
            assert_eq!(
                (blk.kind, blk.dev_major, blk.dev_minor),
                (TarKind::BlockDevice, 7, 200)
            );
            assert_eq!(rec.find("./fifo").0.kind, TarKind::Fifo);
        }
    }

    // ---------------------------------------------------------------------------------------
    // Python tarfile

    const PY_PRELUDE: &str = r#"
import io, sys, tarfile
def add(t, name, data=b"", **kw):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 1500000000
    info.uid, info.gid, info.uname, info.gname = 1000, 1001, "user", "group"
    for k, v in kw.items(): setattr(info, k, v)
    t.addfile(info, io.BytesIO(data))
"#;

    #[test]
    fn python_formats() {
        for format in ["USTAR_FORMAT", "GNU_FORMAT", "PAX_FORMAT"] {
            let script = format!(
            "{PY_PRELUDE}\nbuf = io.BytesIO()\nt = tarfile.open(fileobj=buf, mode='w', format=tarfile.{format})\n\
             add(t, 'plain.txt', b'plain')\n\
             add(t, 'a'*30 + '/' + 'b'*90, b'x'*1024)\n\
             add(t, 'dir/', type=tarfile.DIRTYPE, mode=0o755)\n\
             add(t, 'sym', type=tarfile.SYMTYPE, linkname='plain.txt')\n\
             t.close()\nsys.stdout.buffer.write(buf.getvalue())\n"
        );
            let rec = roundtrip(&python(&script));
            let (plain, content) = rec.find("plain.txt");
            assert_eq!(content, b"plain");
            assert_eq!(
                (plain.uid, plain.gid, plain.mtime),
                (1000, 1001, 1500000000),
                "{format}"
            );
            assert_eq!(
                (&plain.uname[..], &plain.gname[..]),
                (&b"user"[..], &b"group"[..])
            );
            let long = format!("{}/{}", "a".repeat(30), "b".repeat(90));
            assert_eq!(rec.find(&long).1, vec![b'x'; 1024].as_slice(), "{format}");
            let (dir, _) = rec.find("dir/");
            assert_eq!((dir.kind, dir.mode), (TarKind::Directory, 0o755));
            assert_eq!(
                rec.find("sym").0.link_target.as_deref(),
                Some(&b"plain.txt"[..])
            );
        }
    }

    #[test]
    fn python_pax_unicode_and_fractional_mtime() {
        let script = format!(
        "{PY_PRELUDE}\nbuf = io.BytesIO()\nt = tarfile.open(fileobj=buf, mode='w', format=tarfile.PAX_FORMAT)\n\
         add(t, 'héllo/wörld-ü.txt', b'unicode')\n\
         add(t, 'frac', b'f', pax_headers={{'mtime': '1600000000.123456789', 'SCHILY.xattr.user.k': 'v'}})\n\
         add(t, 'neg', b'', pax_headers={{'mtime': '-1.25'}})\n\
         add(t, 'big', b'b', uid=3_000_000_000, size=1)\n\
         t.close()\nsys.stdout.buffer.write(buf.getvalue())\n"
    );
        let rec = roundtrip(&python(&script));
        assert_eq!(rec.find("héllo/wörld-ü.txt").1, b"unicode");
        let (frac, _) = rec.find("frac");
        assert_eq!((frac.mtime, frac.mtime_nsec), (1600000000, 123456789));
        assert_eq!(frac.xattrs, vec![(b"user.k".to_vec(), b"v".to_vec())]);
        let (neg, _) = rec.find("neg");
        assert_eq!((neg.mtime, neg.mtime_nsec), (-2, 750_000_000));
        assert_eq!(rec.find("big").0.uid, 3_000_000_000);
    }

    #[test]
    fn python_gnu_base256_and_long_names() {
        let script = format!(
        "{PY_PRELUDE}\nbuf = io.BytesIO()\nt = tarfile.open(fileobj=buf, mode='w', format=tarfile.GNU_FORMAT)\n\
         add(t, 'uid', b'u', uid=0o77777777 + 5, gid=2**40)\n\
         add(t, 'old', b'o', mtime=-100)\n\
         add(t, 'n'*300, b'long')\n\
         add(t, 'hl', type=tarfile.LNKTYPE, linkname='l'*200)\n\
         t.close()\nsys.stdout.buffer.write(buf.getvalue())\n"
    );
        let rec = roundtrip(&python(&script));
        let (uid, _) = rec.find("uid");
        assert_eq!((uid.uid, uid.gid), (0o77777777 + 5, 1 << 40));
        assert_eq!(rec.find("old").0.mtime, -100);
        assert_eq!(rec.find(&"n".repeat(300)).1, b"long");
        let (hl, _) = rec.find("hl");
        assert_eq!(hl.kind, TarKind::HardLink);
        assert_eq!(hl.link_target.as_deref(), Some("l".repeat(200).as_bytes()));
    }

    // ---------------------------------------------------------------------------------------
    // Hand-crafted archives

    fn set_checksum(block: &mut [u8]) {
        block[148..156].fill(b' ');
        let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
        block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    }

    fn has_valid_checksum(block: &[u8]) -> bool {
        let mut copy = block.to_vec();
        set_checksum(&mut copy);
        copy == block
    }

    fn header(name: &str, typeflag: u8, size: usize) -> Vec<u8> {
        let mut b = vec![0u8; 512];
        b[..name.len()].copy_from_slice(name.as_bytes());
        b[100..108].copy_from_slice(b"0000644\0");
        b[108..116].copy_from_slice(b"0000000\0");
        b[116..124].copy_from_slice(b"0000000\0");
        b[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
        b[136..148].copy_from_slice(b"14000000000\0");
        b[156] = typeflag;
        b[257..263].copy_from_slice(b"ustar\0");
        b[263..265].copy_from_slice(b"00");
        set_checksum(&mut b);
        b
    }

    fn member(name: &str, typeflag: u8, data: &[u8], pad_byte: u8) -> Vec<u8> {
        let mut out = header(name, typeflag, data.len());
        out.extend_from_slice(data);
        out.resize(out.len() + (512 - data.len() % 512) % 512, pad_byte);
        out
    }

    fn pax_member(records: &[(&str, &str)], global: bool) -> Vec<u8> {
        let mut data = Vec::new();
        for (k, v) in records {
            let body = format!(" {k}={v}\n");
            let mut len = body.len() + 1;
            while format!("{len}{body}").len() != len {
                len += 1;
            }
            data.extend_from_slice(format!("{len}{body}").as_bytes());
        }
        member("PaxHeader", if global { b'g' } else { b'x' }, &data, 0)
    }

    const TRAILER: [u8; 1024] = [0u8; 1024];

    #[test]
    fn odd_but_valid_archives() {
        let a = member("a", b'0', b"abc", 0xAA);
        let b = member("b", b'0', &pattern(1024, 3), 0);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("non-zero padding", [&a[..], &b, &TRAILER].concat()),
            (
                "extra zero blocks",
                [&a[..], &b, &TRAILER, &TRAILER, &TRAILER].concat(),
            ),
            (
                "garbage after end",
                [&a[..], &b, &TRAILER, b"garbage \x01\x02 not a header"].concat(),
            ),
            ("no trailer", [&a[..], &b].concat()),
            ("single zero block", [&a[..], &b, &TRAILER[..512]].concat()),
            (
                "lone zero block then more",
                [&a[..], &TRAILER[..512], &b].concat(),
            ),
            ("empty input", Vec::new()),
            ("only trailer", TRAILER.to_vec()),
        ];
        for (name, archive) in cases {
            let rec = roundtrip(&archive);
            if archive.len() > 1024 {
                assert_eq!(rec.find("a").1, b"abc", "{name}");
            }
            if name == "lone zero block then more" {
                assert_eq!(
                    rec.entries.len(),
                    1,
                    "parsing stops at the first zero block"
                );
            }
        }
    }

    /// Sparse maps with more segments than `MAX_SPARSE_SEGMENTS` are refused: a PAX 1.0 map
    /// whose count says so (before its numbers are read), and an old GNU map of that many
    /// (empty, so otherwise valid) segments in extension blocks.
    #[test]
    fn sparse_maps_with_too_many_segments_are_refused() {
        use rkt_store::tarstream::MAX_SPARSE_SEGMENTS;
        let too_many = MAX_SPARSE_SEGMENTS + 1;
        let v1 = [
            pax_member(
                &[
                    ("GNU.sparse.major", "1"),
                    ("GNU.sparse.minor", "0"),
                    ("GNU.sparse.name", "f"),
                    ("GNU.sparse.realsize", "10"),
                ],
                false,
            ),
            member(
                "GNUSparseFile.0/f",
                b'0',
                &{
                    // The map's block and one more: room enough, so only the count is wrong.
                    let mut area = format!("{too_many}\n0\n0\n").into_bytes();
                    area.resize(1024, 0);
                    area
                },
                0,
            ),
            TRAILER.to_vec(),
        ]
        .concat();

        let mut h = header("f", b'S', 0);
        h[257..265].copy_from_slice(b"ustar  \0");
        let slot = b"00000000000\x0000000000000\x00";
        for i in 0..4 {
            h[386 + 24 * i..386 + 24 * (i + 1)].copy_from_slice(slot);
        }
        h[482] = 1;
        h[483..495].copy_from_slice(b"00000000012\0");
        set_checksum(&mut h);
        let mut gnu = h;
        let mut left = too_many - 4;
        while left > 0 {
            let mut block = [0u8; 512];
            for i in 0..left.min(21) {
                block[24 * i..24 * (i + 1)].copy_from_slice(slot);
            }
            left -= left.min(21);
            block[504] = u8::from(left > 0);
            gnu.extend_from_slice(&block);
        }
        gnu.extend_from_slice(&TRAILER);

        for (what, archive) in [("PAX 1.0", v1), ("old GNU", gnu)] {
            let err = parse(&archive[..], &mut Recorder::default()).unwrap_err();
            assert!(
                err.to_string().contains(&format!("{MAX_SPARSE_SEGMENTS}")),
                "{what}: {err}"
            );
        }
    }

    #[test]
    fn signed_checksum_is_accepted() {
        let mut h = header("\u{e9}t\u{e9}", b'0', 1);
        h[148..156].fill(b' ');
        let signed: i64 = h.iter().map(|&b| i64::from(b as i8)).sum();
        h[148..156].copy_from_slice(format!("{signed:06o}\0 ").as_bytes());
        let archive = [&h[..], b"x", &[0u8; 511], &TRAILER].concat();
        assert_eq!(roundtrip(&archive).find("\u{e9}t\u{e9}").1, b"x");
    }

    #[test]
    fn pax_global_and_local_headers() {
        let archive = [
            pax_member(&[("uname", "globaluser"), ("mtime", "12.5")], true),
            member("first", b'0', b"1", 0),
            pax_member(
                &[("uname", ""), ("path", "renamed/second"), ("size", "3")],
                false,
            ),
            member("second", b'0', b"222", 0),
            pax_member(
                &[
                    ("LIBARCHIVE.xattr.user.a%3Db", "AAEC"),
                    ("SCHILY.xattr.user.c", "d"),
                ],
                false,
            ),
            member("third", b'0', b"", 0),
            TRAILER.to_vec(),
        ]
        .concat();
        let rec = roundtrip(&archive);
        let (first, _) = rec.find("first");
        assert_eq!(
            (&first.uname[..], first.mtime, first.mtime_nsec),
            (&b"globaluser"[..], 12, 500_000_000)
        );
        let (second, content) = rec.find("renamed/second");
        assert_eq!((content, &second.uname[..]), (&b"222"[..], &b""[..]));
        let (third, _) = rec.find("third");
        assert_eq!(third.uname, b"globaluser");
        assert_eq!(
            third.xattrs,
            vec![
                (b"user.a=b".to_vec(), vec![0, 1, 2]),
                (b"user.c".to_vec(), b"d".to_vec())
            ]
        );
    }

    #[test]
    fn pax_size_overrides_header() {
        let mut h = header("f", b'0', 0);
        h.truncate(512);
        let archive = [
            pax_member(&[("size", "600")], false),
            h,
            pattern(600, 9),
            vec![0; 424],
            TRAILER.to_vec(),
        ]
        .concat();
        let rec = roundtrip(&archive);
        assert_eq!(rec.find("f").1, pattern(600, 9).as_slice());
    }

    #[test]
    fn truncated_archives() {
        let a = member("a", b'0', &pattern(700, 1), 0);
        let pax = pax_member(&[("path", "some/long/path")], false);
        let cases = [
            ("in header", a[..300].to_vec(), 300),
            ("in content", a[..512 + 100].to_vec(), 612),
            ("in padding", a[..512 + 800].to_vec(), 1312),
            ("in pax data", pax[..520].to_vec(), 520),
            ("after pax header", pax.clone(), pax.len() as u64),
            (
                "second header",
                [&a[..], &a[..10]].concat(),
                a.len() as u64 + 10,
            ),
        ];
        for (name, bytes, at) in cases {
            match parse_err(&bytes) {
                TarError::Truncated { offset, .. } => assert_eq!(offset, at, "{name}"),
                other => panic!("{name}: unexpected {other}"),
            }
        }
    }

    #[test]
    fn bad_checksum_is_an_error() {
        let mut a = member("a", b'0', b"abc", 0);
        a[0] = b'b';
        match parse_err(&[&a[..], &TRAILER].concat()) {
            TarError::BadChecksum { offset: 0, .. } => {}
            other => panic!("unexpected {other}"),
        }
        // A corrupt second header is reported at its offset.
        let good = member("a", b'0', b"abc", 0);
        let mut bad = member("b", b'0', b"abc", 0);
        bad[200] = 1;
        match parse_err(&[&good[..], &bad, &TRAILER].concat()) {
            TarError::BadChecksum { offset: 1024, .. } => {}
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn bad_size_fields() {
        let negative = {
            let mut h = header("neg", b'0', 0);
            h[124..136].copy_from_slice(&[0xff; 12]);
            set_checksum(&mut h);
            h
        };
        let overflow = {
            let mut h = header("big", b'0', 0);
            h[124..136].copy_from_slice(&[0x80, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            set_checksum(&mut h);
            h
        };
        let not_octal = {
            let mut h = header("txt", b'0', 0);
            h[124..136].copy_from_slice(b"00000009000\0");
            set_checksum(&mut h);
            h
        };
        let pax_negative = [pax_member(&[("size", "-5")], false), header("p", b'0', 0)].concat();
        for (name, bytes) in [
            ("negative", negative),
            ("overflow", overflow),
            ("not octal", not_octal),
            ("pax", pax_negative),
        ] {
            match parse_err(&[&bytes[..], &TRAILER].concat()) {
                TarError::BadField { field, .. } => assert_eq!(field, "size", "{name}"),
                other => panic!("{name}: unexpected {other}"),
            }
        }
    }

    #[test]
    fn base256_size_is_honoured() {
        let mut h = header("b256", b'0', 0);
        let mut field = [0u8; 12];
        field[0] = 0x80;
        field[10..].copy_from_slice(&600u16.to_be_bytes());
        h[124..136].copy_from_slice(&field);
        set_checksum(&mut h);
        let archive = [h, pattern(600, 2), vec![0; 424], TRAILER.to_vec()].concat();
        assert_eq!(
            roundtrip(&archive).find("b256").1,
            pattern(600, 2).as_slice()
        );
    }

    #[test]
    fn sink_errors_propagate() {
        struct Failing;
        impl TarSink for Failing {
            fn skeleton(&mut self, _: &[u8]) -> Result<(), TarError> {
                Ok(())
            }
            fn entry(&mut self, _: &TarEntry) -> Result<(), TarError> {
                Ok(())
            }
            fn content(&mut self, _: &[u8]) -> Result<(), TarError> {
                Err(TarError::sink("disk full"))
            }
            fn end_entry(&mut self) -> Result<(), TarError> {
                Ok(())
            }
        }
        let archive = [member("a", b'0', b"abc", 0), TRAILER.to_vec()].concat();
        assert!(
            matches!(parse(&archive[..], &mut Failing), Err(TarError::Sink(m)) if m == "disk full")
        );
    }

    /// `cargo test --release -p rkt-store --test tarstream throughput -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn throughput() {
        struct Count(u64);
        impl TarSink for Count {
            fn skeleton(&mut self, b: &[u8]) -> Result<(), TarError> {
                self.0 += b.len() as u64;
                Ok(())
            }
            fn entry(&mut self, _: &TarEntry) -> Result<(), TarError> {
                Ok(())
            }
            fn content(&mut self, b: &[u8]) -> Result<(), TarError> {
                self.0 += b.len() as u64;
                Ok(())
            }
            fn end_entry(&mut self) -> Result<(), TarError> {
                Ok(())
            }
        }
        let mut archive = Vec::new();
        for i in 0..2000 {
            archive.extend(member(
                &format!("f{i}"),
                b'0',
                &pattern(1 << 20, i as u8),
                0,
            ));
        }
        for i in 0..20000 {
            archive.extend(member(&format!("s{i}"), b'0', &pattern(100, i as u8), 0));
        }
        archive.extend_from_slice(&TRAILER);
        let start = std::time::Instant::now();
        let mut count = Count(0);
        parse(&archive[..], &mut count).unwrap();
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(count.0, archive.len() as u64);
        eprintln!("{:.0} MB/s", archive.len() as f64 / secs / 1e6);
    }

    /// A cheap stand-in for the cargo-fuzz target: random mutations of real archives must never
    /// panic, and whatever is accepted must round-trip exactly.
    #[test]
    fn mutated_archives_never_break_the_round_trip() {
        use rand::{Rng, SeedableRng};
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("t");
        fs::create_dir(&dir).unwrap();
        make_sparse(&dir.join("s"));
        write(&dir, &format!("{}/f", "l".repeat(150)), b"long");
        let mut seeds = vec![
            gnu_tar(&dir, &["--format=gnu", "-S"]),
            gnu_tar(&dir, &["--format=posix", "-S", "--sparse-version=1.0"]),
            gnu_tar(&dir, &["--format=posix", "-S", "--sparse-version=0.1"]),
        ];
        seeds.push(
            [
                pax_member(&[("mtime", "1.5"), ("LIBARCHIVE.xattr.a", "YQ==")], true),
                member("a", b'0', b"abc", 0),
                TRAILER.to_vec(),
            ]
            .concat(),
        );
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x7a7);
        let mut outcomes = std::collections::BTreeMap::new();
        for round in 0..20000 {
            let mut data = seeds[round % seeds.len()].clone();
            for _ in 0..rng.gen_range(1..4) {
                let at = if rng.gen() {
                    rng.gen_range(0..data.len().min(4096))
                } else {
                    rng.gen_range(0..data.len())
                };
                let block = at / 512 * 512..(at / 512 * 512 + 512).min(data.len());
                let was_header = block.len() == 512 && has_valid_checksum(&data[block.clone()]);
                match rng.gen_range(0..5) {
                    0 | 4 => data[at] = rng.gen(),
                    1 => data[at] ^= 1 << rng.gen_range(0..8),
                    2 => data.truncate(at),
                    _ => data.insert(at, rng.gen()),
                }
                if was_header && data.len() >= block.end && !(148..156).contains(&(at % 512)) {
                    set_checksum(&mut data[block]);
                }
                if data.is_empty() {
                    break;
                }
            }
            let mut rec = Recorder::default();
            let result = parse(&data[..], &mut rec);
            *outcomes
                .entry(result.as_ref().map_err(error_kind).err())
                .or_insert(0u32) += 1;
            if let Ok(summary) = result {
                assert!(
                    rec.all == data,
                    "round {round}: accepted input does not round-trip"
                );
                assert_eq!(summary.total_bytes, data.len() as u64);
            }
        }
        eprintln!("outcomes (None = accepted): {outcomes:?}");
    }

    fn error_kind(err: &TarError) -> &'static str {
        match err {
            TarError::Io { .. } => "io",
            TarError::Truncated { .. } => "truncated",
            TarError::BadChecksum { .. } => "checksum",
            TarError::BadField { .. } => "field",
            TarError::Sink(_) => "sink",
        }
    }
}
