//! A small deterministic tar writer for the squashed ACI of a layered image: USTAR headers,
//! with a PAX extended header only where a value does not fit (long paths and link targets,
//! large ids or sizes, times before 1970, xattrs). Sparse files are written as GNU tar's PAX
//! sparse format 1.0 (what `tar --sparse --format=posix` writes): the holes are not in the tar.

use crate::entry::EntryKind;

const BLOCK: usize = 512;

/// One header to write.
pub(crate) struct Header<'a> {
    pub path: &'a str,
    pub kind: EntryKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: i64,
    pub link: Option<&'a str>,
    pub dev_major: u32,
    pub dev_minor: u32,
    pub xattrs: &'a [(String, Vec<u8>)],
    /// A sparse regular file's data segments `(offset, length)`: sorted, not overlapping and
    /// inside `size` (the caller checks, see [`crate::entry::check_sparse_map`]). The content
    /// the caller writes after the header is their concatenation.
    pub sparse: Option<&'a [(u64, u64)]>,
}

impl<'a> Header<'a> {
    /// A plain regular file: mode 0644, owned by root, mtime 0, no xattrs; override fields
    /// with struct update syntax.
    pub(crate) fn file(path: &'a str, size: u64) -> Header<'a> {
        Header {
            path,
            kind: EntryKind::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size,
            mtime: 0,
            link: None,
            dev_major: 0,
            dev_minor: 0,
            xattrs: &[],
            sparse: None,
        }
    }
}

fn typeflag(kind: EntryKind) -> u8 {
    match kind {
        EntryKind::File => b'0',
        EntryKind::HardLink => b'1',
        EntryKind::Symlink => b'2',
        EntryKind::CharDevice => b'3',
        EntryKind::BlockDevice => b'4',
        EntryKind::Dir => b'5',
        EntryKind::Fifo => b'6',
    }
}

fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    out.extend_from_slice(format!("{len} {key}=").as_bytes());
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(&text.as_bytes()[text.len() - digits..]);
    field[digits] = 0;
}

fn fits(value: u64, digits: u32) -> bool {
    value < 8u64.pow(digits)
}

/// The text of a PAX 1.0 sparse map (`count`, then `offset` and `length` of each segment, one
/// decimal number a line), zero-padded to whole blocks; it starts the entry's data area.
fn sparse_map_text(segs: &[(u64, u64)]) -> Vec<u8> {
    let mut text = format!("{}\n", segs.len());
    for (off, len) in segs {
        text.push_str(&format!("{off}\n{len}\n"));
    }
    let mut text = text.into_bytes();
    let len = text.len() as u64;
    pad(&mut text, len);
    text
}

/// GNU tar's header name for a PAX 1.0 sparse file, `DIR/GNUSparseFile.0/BASE`: readers that do
/// not know the format extract the data area under that name (still inside `rootfs/`).
fn sparse_header_name(path: &str) -> String {
    match path.rfind('/') {
        Some(i) => format!("{}/GNUSparseFile.0/{}", &path[..i], &path[i + 1..]),
        None => format!("GNUSparseFile.0/{path}"),
    }
}

/// Write one entry's header(s) to `out` (content and its padding are the caller's; for a sparse
/// file the content is the data segments, and its padding is that of their total length).
pub(crate) fn header(out: &mut Vec<u8>, h: &Header<'_>) {
    let mut pax = Vec::new();
    let mut map = Vec::new();
    let mut data_size = h.size;
    let mut header_name = std::borrow::Cow::Borrowed(h.path);
    if let Some(segs) = h.sparse {
        map = sparse_map_text(segs);
        let packed = segs.iter().fold(0u64, |sum, s| sum.saturating_add(s.1));
        data_size = packed.saturating_add(map.len() as u64);
        pax_record(&mut pax, "GNU.sparse.major", b"1");
        pax_record(&mut pax, "GNU.sparse.minor", b"0");
        pax_record(&mut pax, "GNU.sparse.name", h.path.as_bytes());
        pax_record(
            &mut pax,
            "GNU.sparse.realsize",
            h.size.to_string().as_bytes(),
        );
        header_name = std::borrow::Cow::Owned(sparse_header_name(h.path));
    }
    let name = header_name.as_bytes();
    if name.len() > 100 {
        pax_record(&mut pax, "path", name);
    }
    let link = h.link.unwrap_or("").as_bytes();
    if link.len() > 100 {
        pax_record(&mut pax, "linkpath", link);
    }
    if !fits(h.uid.into(), 7) {
        pax_record(&mut pax, "uid", h.uid.to_string().as_bytes());
    }
    if !fits(h.gid.into(), 7) {
        pax_record(&mut pax, "gid", h.gid.to_string().as_bytes());
    }
    if !fits(data_size, 11) {
        pax_record(&mut pax, "size", data_size.to_string().as_bytes());
    }
    let mtime = u64::try_from(h.mtime).ok().filter(|m| fits(*m, 11));
    if mtime.is_none() {
        pax_record(&mut pax, "mtime", h.mtime.to_string().as_bytes());
    }
    for (k, v) in h.xattrs {
        pax_record(&mut pax, &format!("SCHILY.xattr.{k}"), v);
    }
    if !pax.is_empty() {
        let pax_header = Header::file("PaxHeader", pax.len() as u64);
        ustar(out, &pax_header, b'x');
        out.extend_from_slice(&pax);
        pad(out, pax.len() as u64);
    }
    let clipped = Header {
        path: &header_name,
        uid: if fits(h.uid.into(), 7) { h.uid } else { 0 },
        gid: if fits(h.gid.into(), 7) { h.gid } else { 0 },
        size: if fits(data_size, 11) { data_size } else { 0 },
        mtime: mtime.map(|m| m as i64).unwrap_or(0),
        ..*h
    };
    ustar(out, &clipped, typeflag(h.kind));
    out.extend_from_slice(&map);
}

/// Zero padding after `len` content bytes, up to the next block.
pub(crate) fn pad(out: &mut Vec<u8>, len: u64) {
    let rem = (len % BLOCK as u64) as usize;
    if rem != 0 {
        out.extend(std::iter::repeat_n(0u8, BLOCK - rem));
    }
}

/// An ACI's `manifest` entry (mode 0644, owned by root, mtime 0) with its content and padding.
pub(crate) fn manifest_entry(out: &mut Vec<u8>, manifest: &[u8]) {
    header(out, &Header::file("manifest", manifest.len() as u64));
    out.extend_from_slice(manifest);
    pad(out, manifest.len() as u64);
}

/// The end-of-archive marker.
pub(crate) fn end(out: &mut Vec<u8>) {
    out.extend(std::iter::repeat_n(0u8, 2 * BLOCK));
}

/// For tests: an ACI named `name` whose rootfs holds the regular files `files` (path under
/// rootfs/, content).
#[cfg(test)]
pub(crate) fn test_aci(name: &str, files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let manifest = format!(r#"{{"acKind":"ImageManifest","acVersion":"0.8.11","name":"{name}"}}"#);
    manifest_entry(&mut out, manifest.as_bytes());
    let rootfs = Header {
        kind: EntryKind::Dir,
        mode: 0o755,
        ..Header::file("rootfs", 0)
    };
    header(&mut out, &rootfs);
    for (path, body) in files {
        let path = format!("rootfs/{path}");
        header(&mut out, &Header::file(&path, body.len() as u64));
        out.extend_from_slice(body);
        pad(&mut out, body.len() as u64);
    }
    end(&mut out);
    out
}

fn truncated(bytes: &[u8], max: usize) -> &[u8] {
    &bytes[..bytes.len().min(max)]
}

fn ustar(out: &mut Vec<u8>, h: &Header<'_>, flag: u8) {
    let mut b = [0u8; BLOCK];
    let name = truncated(h.path.as_bytes(), 100);
    b[..name.len()].copy_from_slice(name);
    octal(&mut b[100..108], u64::from(h.mode & 0o7777));
    octal(&mut b[108..116], h.uid.into());
    octal(&mut b[116..124], h.gid.into());
    octal(&mut b[124..136], h.size);
    octal(&mut b[136..148], h.mtime.max(0) as u64);
    b[156] = flag;
    let link = truncated(h.link.unwrap_or("").as_bytes(), 100);
    b[157..157 + link.len()].copy_from_slice(link);
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    octal(&mut b[329..337], h.dev_major.into());
    octal(&mut b[337..345], h.dev_minor.into());
    b[148..156].copy_from_slice(b"        ");
    let sum: u64 = b.iter().map(|&x| u64::from(x)).sum();
    let text = format!("{sum:06o}\0 ");
    b[148..156].copy_from_slice(text.as_bytes());
    out.extend_from_slice(&b);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tarstream::{TarEntry, TarError, TarSink};

    /// The entries and the concatenated contents the store's tar parser reads from `tar`.
    fn parse_back(tar: &[u8]) -> (Vec<TarEntry>, Vec<u8>) {
        struct Sink(Vec<TarEntry>, Vec<u8>);
        impl TarSink for Sink {
            fn skeleton(&mut self, _: &[u8]) -> Result<(), TarError> {
                Ok(())
            }
            fn entry(&mut self, e: &TarEntry) -> Result<(), TarError> {
                self.0.push(e.clone());
                Ok(())
            }
            fn content(&mut self, b: &[u8]) -> Result<(), TarError> {
                self.1.extend_from_slice(b);
                Ok(())
            }
            fn end_entry(&mut self) -> Result<(), TarError> {
                Ok(())
            }
        }
        let mut sink = Sink(Vec::new(), Vec::new());
        crate::tarstream::parse(tar, &mut sink).unwrap();
        (sink.0, sink.1)
    }

    #[test]
    fn pax_record_lengths_count_themselves() {
        let mut out = Vec::new();
        pax_record(&mut out, "path", &[b'a'; 95]);
        let text = String::from_utf8(out.clone()).unwrap();
        let (len, _) = text.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), out.len());
    }

    #[test]
    fn sparse_headers_parse_back_as_pax_1_0() {
        let long = "d/".repeat(60) + "sparse.img";
        let segs = [(0u64, 3u64), (1 << 40, 2), ((1 << 41) - 1, 0)];
        let size = (1u64 << 41) - 1;
        let mut out = Vec::new();
        let h = Header {
            mtime: 1,
            sparse: Some(&segs),
            ..Header::file(&long, size)
        };
        header(&mut out, &h);
        out.extend_from_slice(b"abcde");
        pad(&mut out, 5);
        end(&mut out);
        let (entries, content) = parse_back(&out);
        assert_eq!(entries.len(), 1);
        let e = &entries[0];
        assert_eq!(e.path, long.as_bytes());
        assert_eq!(e.size, size);
        assert_eq!(e.sparse.as_deref(), Some(&segs[..]));
        assert_eq!(content, b"abcde");
        // Readers that ignore the sparse records see the GNU tar style name, still below the
        // entry's directory.
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("/GNUSparseFile.0/sparse.img"), "{text}");
    }

    #[test]
    fn headers_parse_back() {
        let long = "d/".repeat(80) + "file";
        let xattrs = vec![("user.x".to_string(), b"v".to_vec())];
        let mut out = Vec::new();
        let h = Header {
            mode: 0o4755,
            uid: 5_000_000,
            gid: 7,
            mtime: -5,
            xattrs: &xattrs,
            ..Header::file(&long, 3)
        };
        header(&mut out, &h);
        out.extend_from_slice(b"abc");
        pad(&mut out, 3);
        end(&mut out);
        let (entries, _) = parse_back(&out);
        let e = &entries[0];
        assert_eq!(e.path, long.as_bytes());
        assert_eq!(
            (e.uid, e.gid, e.size, e.mtime, e.mode & 0o7777),
            (5_000_000, 7, 3, -5, 0o4755)
        );
        assert_eq!(e.xattrs, vec![(b"user.x".to_vec(), b"v".to_vec())]);
    }
}
