//! Raw tar stream parser that splits an archive into skeleton bytes and file content.
//!
//! The image store keeps an imported ACI as two streams: the *skeleton* (every byte that is
//! not the data of a regular file: headers, PAX and GNU extension records, sparse maps,
//! padding, the end-of-archive marker and anything after it) and the *content* of regular
//! files, which is chunked and deduplicated.  [`parse`] hands both to a [`TarSink`] in stream
//! order, so concatenating every slice passed to [`TarSink::skeleton`] and
//! [`TarSink::content`], in call order, reproduces the input byte for byte.
//!
//! Call order for every entry: `skeleton` (its headers: PAX/GNU records, the header block,
//! old GNU sparse extension blocks, a PAX 1.0 sparse map), `entry`, then either `content`
//! (regular files) or `skeleton` (the data area of any other entry), `skeleton` (padding to
//! the next 512-byte boundary, verbatim) and finally `end_entry`.

use std::io::{self, Read};
use std::ops::Range;

const BLOCK: usize = 512;
const BLOCK_U64: u64 = BLOCK as u64;
/// Size of the read buffer; content reaches the sink in slices of up to this size.
const BUF_SIZE: usize = 256 * 1024;
/// Largest PAX or GNU long-name record accepted (they are held in memory).
const MAX_SPECIAL: u64 = 8 << 20;
/// Most data segments a sparse file may have. GNU tar writes one per data extent of the file,
/// so real maps are far shorter; the bound keeps a hostile map (millions of empty segments, or
/// a 1.0 map whose count promises more) from costing more memory than the archive's own size.
pub const MAX_SPARSE_SEGMENTS: usize = 1 << 20;

/// Receives the pieces of a tar stream, in stream order.
pub trait TarSink {
    /// Bytes that are not regular-file content, in stream order.
    fn skeleton(&mut self, bytes: &[u8]) -> Result<(), TarError>;
    /// A new entry starts (its headers have already been passed to `skeleton`).
    fn entry(&mut self, entry: &TarEntry) -> Result<(), TarError>;
    /// Content bytes of the current regular file, in order (may be called many times).
    fn content(&mut self, bytes: &[u8]) -> Result<(), TarError>;
    /// The current entry's content is complete (called for every entry, also those without content).
    fn end_entry(&mut self) -> Result<(), TarError>;
}

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TarKind {
    /// '0', '\0', '7' (contiguous), GNU sparse 'S' and PAX sparse files.
    Regular,
    HardLink,
    Symlink,
    CharDevice,
    BlockDevice,
    /// '5', GNU dumpdir 'D', and old-style '\0' entries whose name ends in '/'.
    Directory,
    Fifo,
    /// Any other type flag (GNU volume labels 'V', multi-volume 'M', vendor types).
    /// Its data area, if any, goes to the skeleton.
    Other(u8),
}

/// Metadata of one archive member, after PAX/GNU extension records were applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarEntry {
    /// Raw path bytes, after PAX `path` / GNU 'L' / ustar prefix resolution.
    pub path: Vec<u8>,
    pub kind: TarKind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub uname: Vec<u8>,
    pub gname: Vec<u8>,
    /// Logical file size (PAX `size`, or the real size of a sparse file).
    pub size: u64,
    /// Exact number of bytes that will be passed to `content`.
    pub content_len: u64,
    pub mtime: i64,
    pub mtime_nsec: u32,
    /// PAX `linkpath` / GNU 'K' / header linkname; `None` when empty.
    pub link_target: Option<Vec<u8>>,
    pub dev_major: u32,
    pub dev_minor: u32,
    /// PAX `SCHILY.xattr.*` (and base64-decoded `LIBARCHIVE.xattr.*`), in archive order.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// (offset, length) data segments of a sparse file; content is their concatenation.
    pub sparse: Option<Vec<(u64, u64)>>,
    /// Byte offset of this entry's header block in the stream.
    pub header_offset: u64,
}

/// Totals for a successfully parsed stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TarSummary {
    /// Number of entries reported to `TarSink::entry`.
    pub entries: u64,
    /// Number of bytes read (all of them went to the sink).
    pub total_bytes: u64,
}

/// Why a stream could not be parsed.
#[derive(Debug, thiserror::Error)]
pub enum TarError {
    #[error("reading tar stream at byte {offset}: {source}")]
    Io {
        offset: u64,
        #[source]
        source: io::Error,
    },
    #[error("tar stream truncated: input ends at byte {offset}, inside {what}")]
    Truncated { offset: u64, what: String },
    #[error("bad tar header checksum at byte {offset}: stored {stored:?}, computed {computed}")]
    BadChecksum {
        offset: u64,
        stored: Option<u64>,
        computed: u64,
    },
    #[error("bad tar field `{field}` in header at byte {offset}: {reason}")]
    BadField {
        field: String,
        offset: u64,
        reason: String,
    },
    #[error("tar sink failed: {0}")]
    Sink(String),
}

impl TarError {
    /// Wraps any error raised by a sink.
    pub fn sink(err: impl std::fmt::Display) -> Self {
        TarError::Sink(err.to_string())
    }
}

fn bad_field(field: &str, offset: u64, reason: impl Into<String>) -> TarError {
    TarError::BadField {
        field: field.to_owned(),
        offset,
        reason: reason.into(),
    }
}

/// Parses a tar stream, handing every byte of it to `sink` (see the module docs).
pub fn parse<R: Read>(reader: R, sink: &mut impl TarSink) -> Result<TarSummary, TarError> {
    let mut parser = Parser {
        input: Input::new(reader),
        global: Vec::new(),
        entries: 0,
    };
    parser.run(sink)?;
    Ok(TarSummary {
        entries: parser.entries,
        total_bytes: parser.input.offset,
    })
}

// ---------------------------------------------------------------------------------------
// Buffered input

/// Where forwarded bytes go.
#[derive(Clone, Copy)]
enum Dest {
    Skeleton,
    Content,
}

struct Input<R> {
    reader: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Stream offset of `buf[start]`.
    offset: u64,
}

impl<R: Read> Input<R> {
    fn new(reader: R) -> Self {
        Input {
            reader,
            buf: vec![0; BUF_SIZE],
            start: 0,
            end: 0,
            offset: 0,
        }
    }

    fn available(&self) -> usize {
        self.end - self.start
    }

    /// Reads more input into the buffer; `false` at end of input.
    fn fill(&mut self) -> Result<bool, TarError> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.buf.len() - self.end < BLOCK {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        loop {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    let offset = self.offset + self.available() as u64;
                    return Err(TarError::Io { offset, source });
                }
            }
        }
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        self.offset += n as u64;
    }

    fn truncated(&self, what: impl Into<String>) -> TarError {
        TarError::Truncated {
            offset: self.offset + self.available() as u64,
            what: what.into(),
        }
    }

    /// The next 512-byte block, or `None` at a clean end of input.
    fn next_block(&mut self, what: &str) -> Result<Option<[u8; BLOCK]>, TarError> {
        while self.available() < BLOCK {
            if !self.fill()? {
                if self.available() == 0 {
                    return Ok(None);
                }
                return Err(self.truncated(what));
            }
        }
        let mut block = [0u8; BLOCK];
        block.copy_from_slice(&self.buf[self.start..self.start + BLOCK]);
        self.consume(BLOCK);
        Ok(Some(block))
    }

    /// The next block, which must exist; it is also passed to the skeleton.
    fn skeleton_block(
        &mut self,
        what: &str,
        sink: &mut impl TarSink,
    ) -> Result<[u8; BLOCK], TarError> {
        let block = self.next_block(what)?.ok_or_else(|| self.truncated(what))?;
        sink.skeleton(&block)?;
        Ok(block)
    }

    /// Passes the next `len` bytes to the sink, in slices as large as the buffer allows.
    fn forward(
        &mut self,
        mut len: u64,
        dest: Dest,
        sink: &mut impl TarSink,
        what: &dyn Fn() -> String,
    ) -> Result<(), TarError> {
        while len > 0 {
            if self.available() == 0 && !self.fill()? {
                return Err(self.truncated(what()));
            }
            let take = len.min(self.available() as u64) as usize;
            let bytes = &self.buf[self.start..self.start + take];
            match dest {
                Dest::Skeleton => sink.skeleton(bytes)?,
                Dest::Content => sink.content(bytes)?,
            }
            self.consume(take);
            len -= take as u64;
        }
        Ok(())
    }

    /// Passes everything up to the end of input to the skeleton.
    fn forward_rest(&mut self, sink: &mut impl TarSink) -> Result<(), TarError> {
        loop {
            if self.available() > 0 {
                sink.skeleton(&self.buf[self.start..self.end])?;
                self.consume(self.available());
            }
            if !self.fill()? {
                return Ok(());
            }
        }
    }

    /// Reads `len` bytes (which also go to the skeleton) into memory.
    fn read_data(
        &mut self,
        len: u64,
        sink: &mut impl TarSink,
        what: &str,
    ) -> Result<Vec<u8>, TarError> {
        let mut data = Vec::with_capacity(len.min(MAX_SPECIAL) as usize);
        let mut left = len;
        while left > 0 {
            if self.available() == 0 && !self.fill()? {
                return Err(self.truncated(what));
            }
            let take = left.min(self.available() as u64) as usize;
            let bytes = &self.buf[self.start..self.start + take];
            sink.skeleton(bytes)?;
            data.extend_from_slice(bytes);
            self.consume(take);
            left -= take as u64;
        }
        Ok(data)
    }
}

fn padding(len: u64) -> u64 {
    (BLOCK_U64 - len % BLOCK_U64) % BLOCK_U64
}

// ---------------------------------------------------------------------------------------
// Header blocks

const NAME: Range<usize> = 0..100;
const MODE: Range<usize> = 100..108;
const UID: Range<usize> = 108..116;
const GID: Range<usize> = 116..124;
const SIZE: Range<usize> = 124..136;
const MTIME: Range<usize> = 136..148;
const CHKSUM: Range<usize> = 148..156;
const TYPEFLAG: usize = 156;
const LINKNAME: Range<usize> = 157..257;
const MAGIC: Range<usize> = 257..263;
const UNAME: Range<usize> = 265..297;
const GNAME: Range<usize> = 297..329;
const DEVMAJOR: Range<usize> = 329..337;
const DEVMINOR: Range<usize> = 337..345;
const PREFIX: Range<usize> = 345..500;
const GNU_SPARSE: usize = 386;
const GNU_ISEXTENDED: usize = 482;
const GNU_REALSIZE: Range<usize> = 483..495;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    V7,
    Ustar,
    Gnu,
}

struct Header<'a> {
    block: &'a [u8; BLOCK],
    offset: u64,
}

impl Header<'_> {
    fn format(&self) -> Format {
        match &self.block[MAGIC] {
            b"ustar\0" => Format::Ustar,
            b"ustar " => Format::Gnu,
            _ => Format::V7,
        }
    }

    fn typeflag(&self) -> u8 {
        self.block[TYPEFLAG]
    }

    fn string(&self, range: Range<usize>) -> Vec<u8> {
        cstr(&self.block[range]).to_vec()
    }

    fn signed(&self, field: &str, range: Range<usize>) -> Result<i128, TarError> {
        parse_numeric(&self.block[range], field, self.offset)
    }

    fn unsigned(&self, field: &str, range: Range<usize>) -> Result<u64, TarError> {
        let value = self.signed(field, range)?;
        u64::try_from(value)
            .map_err(|_| bad_field(field, self.offset, format!("{value} is negative")))
    }

    fn small(&self, field: &str, range: Range<usize>) -> Result<u32, TarError> {
        let value = self.unsigned(field, range)?;
        u32::try_from(value)
            .map_err(|_| bad_field(field, self.offset, format!("{value} is too large")))
    }

    /// Path from the name field, with the ustar prefix when there is one.
    fn path(&self) -> Vec<u8> {
        let name = cstr(&self.block[NAME]);
        let prefix = cstr(&self.block[PREFIX]);
        if self.format() != Format::Ustar || prefix.is_empty() {
            return name.to_vec();
        }
        let mut path = Vec::with_capacity(prefix.len() + 1 + name.len());
        path.extend_from_slice(prefix);
        path.push(b'/');
        path.extend_from_slice(name);
        path
    }
}

/// The bytes of a field up to its first NUL.
fn cstr(field: &[u8]) -> &[u8] {
    match field.iter().position(|&b| b == 0) {
        Some(end) => &field[..end],
        None => field,
    }
}

/// Parses an octal (NUL/space terminated or full width) or GNU base-256 numeric field.
fn parse_numeric(field: &[u8], name: &str, offset: u64) -> Result<i128, TarError> {
    match field.first() {
        Some(&first) if first & 0x80 != 0 => parse_base256(field, name, offset),
        _ => parse_octal(field, name, offset).map(i128::from),
    }
}

fn parse_base256(field: &[u8], name: &str, offset: u64) -> Result<i128, TarError> {
    let invert = if field[0] & 0x40 != 0 { 0xff } else { 0 };
    let mut value: u64 = 0;
    for (i, &byte) in field.iter().enumerate() {
        let byte = if i == 0 {
            (byte ^ invert) & 0x7f
        } else {
            byte ^ invert
        };
        if value >> 56 != 0 {
            return Err(bad_field(name, offset, "base-256 value overflows 64 bits"));
        }
        value = value << 8 | u64::from(byte);
    }
    if invert == 0 {
        Ok(i128::from(value))
    } else {
        Ok(-i128::from(value) - 1)
    }
}

fn parse_octal(field: &[u8], name: &str, offset: u64) -> Result<u64, TarError> {
    let start = field
        .iter()
        .position(|&b| b != b' ' && b != 0)
        .unwrap_or(field.len());
    let digits_end = field[start..]
        .iter()
        .position(|&b| !(b'0'..=b'7').contains(&b))
        .map_or(field.len(), |n| start + n);
    if field[digits_end..].iter().any(|&b| b != b' ' && b != 0) {
        let shown = String::from_utf8_lossy(field);
        return Err(bad_field(
            name,
            offset,
            format!("{shown:?} is not an octal number"),
        ));
    }
    field[start..digits_end].iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(8)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .ok_or_else(|| bad_field(name, offset, "octal value overflows 64 bits"))
    })
}

fn is_zero_block(block: &[u8; BLOCK]) -> bool {
    block.iter().all(|&b| b == 0)
}

/// Accepts the unsigned and the (historic) signed header sum, as GNU tar does.
fn verify_checksum(block: &[u8; BLOCK], offset: u64) -> Result<(), TarError> {
    let spaces = 8 * u64::from(b' ');
    let outside = |(i, _): &(usize, &u8)| !CHKSUM.contains(i);
    let unsigned: u64 = block
        .iter()
        .enumerate()
        .filter(outside)
        .map(|(_, &b)| u64::from(b))
        .sum::<u64>()
        + spaces;
    let signed: i64 = block
        .iter()
        .enumerate()
        .filter(outside)
        .map(|(_, &b)| i64::from(b as i8))
        .sum::<i64>()
        + 256;
    let stored = parse_octal(&block[CHKSUM], "chksum", offset).ok();
    match stored {
        Some(s) if s == unsigned || i64::try_from(s) == Ok(signed) => Ok(()),
        _ => Err(TarError::BadChecksum {
            offset,
            stored,
            computed: unsigned,
        }),
    }
}

// ---------------------------------------------------------------------------------------
// PAX extended header records

type Record = (Vec<u8>, Vec<u8>);

/// Splits PAX extended header data into its `"%d %s=%s\n"` records.
fn parse_pax_records(data: &[u8], offset: u64) -> Result<Vec<Record>, TarError> {
    let mut records = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        if rest.iter().all(|&b| b == 0) {
            break; // some writers pad the record area with NULs
        }
        let (record, tail) = split_pax_record(rest, offset)?;
        records.push(record);
        rest = tail;
    }
    Ok(records)
}

fn split_pax_record(data: &[u8], offset: u64) -> Result<(Record, &[u8]), TarError> {
    let bad = |reason: &str| bad_field("pax record", offset, reason);
    let space = data
        .iter()
        .position(|&b| b == b' ')
        .ok_or_else(|| bad("missing length"))?;
    let len = parse_decimal(&data[..space]).ok_or_else(|| bad("bad length"))?;
    let len = usize::try_from(len).map_err(|_| bad("length too large"))?;
    if len <= space + 1 || len > data.len() || data[len - 1] != b'\n' {
        return Err(bad("length does not match a newline-terminated record"));
    }
    let body = &data[space + 1..len - 1];
    let eq = body
        .iter()
        .position(|&b| b == b'=')
        .ok_or_else(|| bad("record without '='"))?;
    let record = (body[..eq].to_vec(), body[eq + 1..].to_vec());
    Ok((record, &data[len..]))
}

fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        if !d.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Parses a PAX time: `[-]seconds[.fraction]`, normalised to a non-negative nanosecond part.
fn parse_pax_time(value: &[u8]) -> Option<(i64, u32)> {
    let (negative, value) = match value.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, value),
    };
    let (int, frac) = match value.iter().position(|&b| b == b'.') {
        Some(dot) => (&value[..dot], &value[dot + 1..]),
        None => (value, &b""[..]),
    };
    let secs = i64::try_from(parse_decimal(int)?).ok()?;
    if !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let nsec = (0..9).fold(0u32, |acc, i| {
        acc * 10 + frac.get(i).map_or(0, |d| u32::from(d - b'0'))
    });
    match (negative, nsec) {
        (false, _) => Some((secs, nsec)),
        (true, 0) => Some((-secs, 0)),
        (true, _) => Some((-secs - 1, 1_000_000_000 - nsec)),
    }
}

/// Replaces (or with an empty value removes) global records.
fn merge_global(global: &mut Vec<Record>, records: Vec<Record>) {
    for (key, value) in records {
        global.retain(|(k, _)| *k != key);
        if !value.is_empty() {
            global.push((key, value));
        }
    }
}

/// PAX sparse attributes (GNU formats 0.0, 0.1 and 1.0).
#[derive(Default)]
struct SparseAttrs {
    major: Option<u64>,
    minor: Option<u64>,
    name: Option<Vec<u8>>,
    realsize: Option<u64>,
    map: Option<Vec<u64>>,
    offsets: Vec<u64>,
    numbytes: Vec<u64>,
}

impl SparseAttrs {
    fn is_v1(&self) -> bool {
        self.major == Some(1)
    }

    fn is_v0(&self) -> bool {
        !self.is_v1() && (self.map.is_some() || !self.offsets.is_empty())
    }

    /// The map of a 0.0 or 0.1 sparse file.
    fn v0_map(&self, offset: u64) -> Result<Vec<(u64, u64)>, TarError> {
        if let Some(map) = &self.map {
            if map.len() % 2 != 0 {
                return Err(bad_field("GNU.sparse.map", offset, "odd number of values"));
            }
            return Ok(map.chunks_exact(2).map(|p| (p[0], p[1])).collect());
        }
        if self.offsets.len() != self.numbytes.len() {
            return Err(bad_field(
                "GNU.sparse.offset",
                offset,
                "offset and numbytes records do not pair up",
            ));
        }
        Ok(self
            .offsets
            .iter()
            .copied()
            .zip(self.numbytes.iter().copied())
            .collect())
    }
}

/// PAX attributes in effect for one entry (global records, then the entry's own).
#[derive(Default)]
struct Attrs {
    path: Option<Vec<u8>>,
    linkpath: Option<Vec<u8>>,
    size: Option<u64>,
    uid: Option<u64>,
    gid: Option<u64>,
    uname: Option<Vec<u8>>,
    gname: Option<Vec<u8>>,
    mtime: Option<(i64, u32)>,
    devmajor: Option<u32>,
    devminor: Option<u32>,
    xattrs: Vec<Record>,
    sparse: SparseAttrs,
}

fn opt_bytes(value: &[u8]) -> Option<Vec<u8>> {
    (!value.is_empty()).then(|| value.to_vec())
}

fn pax_number(key: &[u8], value: &[u8], offset: u64) -> Result<Option<u64>, TarError> {
    if value.is_empty() {
        return Ok(None);
    }
    parse_decimal(value).map(Some).ok_or_else(|| {
        let key = String::from_utf8_lossy(key);
        let shown = String::from_utf8_lossy(value);
        bad_field(&key, offset, format!("{shown:?} is not a decimal number"))
    })
}

fn pax_small(key: &[u8], value: &[u8], offset: u64) -> Result<Option<u32>, TarError> {
    pax_number(key, value, offset)?
        .map(|v| {
            u32::try_from(v)
                .map_err(|_| bad_field(&String::from_utf8_lossy(key), offset, "too large"))
        })
        .transpose()
}

fn pax_numbers(key: &[u8], value: &[u8], offset: u64) -> Result<Vec<u64>, TarError> {
    if value.is_empty() {
        return Ok(Vec::new());
    }
    value
        .split(|&b| b == b',')
        .map(|v| {
            pax_number(key, v, offset)?
                .ok_or_else(|| bad_field("GNU.sparse.map", offset, "empty value"))
        })
        .collect()
}

impl Attrs {
    fn from_records<'a>(
        records: impl Iterator<Item = &'a Record>,
        offset: u64,
    ) -> Result<Self, TarError> {
        let mut attrs = Attrs::default();
        for (key, value) in records {
            attrs.apply(key, value, offset)?;
        }
        Ok(attrs)
    }

    fn apply(&mut self, key: &[u8], value: &[u8], offset: u64) -> Result<(), TarError> {
        match key {
            b"path" => self.path = opt_bytes(value),
            b"linkpath" => self.linkpath = opt_bytes(value),
            b"uname" => self.uname = opt_bytes(value),
            b"gname" => self.gname = opt_bytes(value),
            b"size" => self.size = pax_number(key, value, offset)?,
            b"uid" => self.uid = pax_number(key, value, offset)?,
            b"gid" => self.gid = pax_number(key, value, offset)?,
            b"SCHILY.devmajor" => self.devmajor = pax_small(key, value, offset)?,
            b"SCHILY.devminor" => self.devminor = pax_small(key, value, offset)?,
            b"mtime" => self.mtime = self.time(value, offset)?,
            _ => self.apply_other(key, value, offset)?,
        }
        Ok(())
    }

    fn time(&self, value: &[u8], offset: u64) -> Result<Option<(i64, u32)>, TarError> {
        if value.is_empty() {
            return Ok(None);
        }
        parse_pax_time(value).map(Some).ok_or_else(|| {
            let shown = String::from_utf8_lossy(value);
            bad_field("mtime", offset, format!("{shown:?} is not a PAX time"))
        })
    }

    fn apply_other(&mut self, key: &[u8], value: &[u8], offset: u64) -> Result<(), TarError> {
        let sparse = &mut self.sparse;
        match key {
            b"GNU.sparse.major" => sparse.major = pax_number(key, value, offset)?,
            b"GNU.sparse.minor" => sparse.minor = pax_number(key, value, offset)?,
            b"GNU.sparse.name" => sparse.name = opt_bytes(value),
            b"GNU.sparse.realsize" | b"GNU.sparse.size" => {
                sparse.realsize = pax_number(key, value, offset)?;
            }
            b"GNU.sparse.map" => sparse.map = Some(pax_numbers(key, value, offset)?),
            b"GNU.sparse.offset" => sparse.offsets.extend(pax_number(key, value, offset)?),
            b"GNU.sparse.numbytes" => sparse.numbytes.extend(pax_number(key, value, offset)?),
            _ => self.apply_xattr(key, value, offset)?,
        }
        Ok(())
    }

    fn apply_xattr(&mut self, key: &[u8], value: &[u8], offset: u64) -> Result<(), TarError> {
        if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
            self.xattrs.retain(|(n, _)| n != name);
            self.xattrs.push((name.to_vec(), value.to_vec()));
        } else if let Some(encoded) = key.strip_prefix(b"LIBARCHIVE.xattr.") {
            let field = || String::from_utf8_lossy(key).into_owned();
            let name = percent_decode(encoded)
                .ok_or_else(|| bad_field(&field(), offset, "bad %-encoding in name"))?;
            let value = base64_decode(value)
                .ok_or_else(|| bad_field(&field(), offset, "value is not base64"))?;
            // libarchive writes SCHILY.xattr too; the raw SCHILY value wins.
            if !self.xattrs.iter().any(|(n, _)| *n == name) {
                self.xattrs.push((name, value));
            }
        }
        Ok(())
    }
}

fn percent_decode(text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    Some(out)
}

fn base64_value(c: u8) -> Option<u32> {
    let v = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

/// Standard-alphabet base64, padding optional.
fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    let text = text
        .strip_suffix(b"==")
        .or_else(|| text.strip_suffix(b"="))
        .unwrap_or(text);
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.chunks(4) {
        let mut acc = 0u32;
        for &c in chunk {
            acc = acc << 6 | base64_value(c)?;
        }
        acc <<= 6 * (4 - chunk.len() as u32);
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------
// Entries

/// Extension headers seen before the entry header they apply to.
#[derive(Default)]
struct Pending {
    pax: Vec<Record>,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    seen: bool,
}

fn kind_of(typeflag: u8, path: &[u8]) -> TarKind {
    match typeflag {
        b'\0' if path.ends_with(b"/") => TarKind::Directory,
        b'0' | b'\0' | b'7' | b'S' => TarKind::Regular,
        b'1' => TarKind::HardLink,
        b'2' => TarKind::Symlink,
        b'3' => TarKind::CharDevice,
        b'4' => TarKind::BlockDevice,
        b'5' | b'D' => TarKind::Directory,
        b'6' => TarKind::Fifo,
        other => TarKind::Other(other),
    }
}

/// Types whose size field is ignored because they never have a data area (as Go's reader).
fn header_only(typeflag: u8, kind: TarKind) -> bool {
    matches!(typeflag, b'1'..=b'6') || (typeflag == b'\0' && kind == TarKind::Directory)
}

/// Checks that segments are ordered, inside the file, and add up to the packed data.
fn check_sparse(
    map: &[(u64, u64)],
    realsize: u64,
    packed: u64,
    offset: u64,
) -> Result<(), TarError> {
    let bad = |reason: String| bad_field("sparse map", offset, reason);
    if map.len() > MAX_SPARSE_SEGMENTS {
        return Err(bad(format!(
            "{} segments, more than the {MAX_SPARSE_SEGMENTS} accepted",
            map.len()
        )));
    }
    let total = crate::entry::check_sparse_map(map, realsize).map_err(bad)?;
    if total != packed {
        return Err(bad(format!(
            "segments hold {total} bytes but the data area has {packed}"
        )));
    }
    Ok(())
}

/// Reads the decimal numbers of a PAX 1.0 sparse map at the start of the data area.
struct MapReader {
    text: Vec<u8>,
    cursor: usize,
    numbers: Vec<u64>,
}

impl MapReader {
    /// Parses the complete lines buffered so far; `Err` on a malformed line.
    fn parse_lines(&mut self, offset: u64) -> Result<(), TarError> {
        while let Some(nl) = self.text[self.cursor..].iter().position(|&b| b == b'\n') {
            let line = &self.text[self.cursor..self.cursor + nl];
            let n = parse_decimal(line).ok_or_else(|| {
                bad_field(
                    "GNU sparse 1.0 map",
                    offset,
                    format!("bad number {:?}", String::from_utf8_lossy(line)),
                )
            })?;
            if self.numbers.is_empty() && n > MAX_SPARSE_SEGMENTS as u64 {
                return Err(bad_field(
                    "GNU sparse 1.0 map",
                    offset,
                    format!("{n} segments, more than the {MAX_SPARSE_SEGMENTS} accepted"),
                ));
            }
            self.numbers.push(n);
            self.cursor += nl + 1;
        }
        Ok(())
    }

    fn complete(&self) -> bool {
        match self.numbers.first() {
            Some(&count) => (self.numbers.len() as u64 - 1) / 2 >= count,
            None => false,
        }
    }
}

struct Parser<R> {
    input: Input<R>,
    global: Vec<Record>,
    entries: u64,
}

impl<R: Read> Parser<R> {
    fn run(&mut self, sink: &mut impl TarSink) -> Result<(), TarError> {
        let mut pending = Pending::default();
        loop {
            let offset = self.input.offset;
            let Some(block) = self.input.next_block("a header block")? else {
                if pending.seen {
                    return Err(self
                        .input
                        .truncated("an entry (extension header without its entry)"));
                }
                return Ok(());
            };
            if is_zero_block(&block) {
                sink.skeleton(&block)?;
                return self.input.forward_rest(sink);
            }
            verify_checksum(&block, offset)?;
            sink.skeleton(&block)?;
            self.header(&block, offset, &mut pending, sink)?;
        }
    }

    fn header(
        &mut self,
        block: &[u8; BLOCK],
        offset: u64,
        pending: &mut Pending,
        sink: &mut impl TarSink,
    ) -> Result<(), TarError> {
        let hdr = Header { block, offset };
        let typeflag = hdr.typeflag();
        if !matches!(typeflag, b'x' | b'X' | b'g' | b'L' | b'K') {
            return self.entry(&hdr, std::mem::take(pending), sink);
        }
        pending.seen = true;
        let data = self.special_data(&hdr, sink)?;
        match typeflag {
            b'g' => merge_global(&mut self.global, parse_pax_records(&data, offset)?),
            b'L' => pending.long_name = Some(cstr(&data).to_vec()),
            b'K' => pending.long_link = Some(cstr(&data).to_vec()),
            _ => pending.pax.extend(parse_pax_records(&data, offset)?),
        }
        Ok(())
    }

    /// Reads the data of a PAX or GNU long-name header (plus its padding) into memory.
    fn special_data(
        &mut self,
        hdr: &Header<'_>,
        sink: &mut impl TarSink,
    ) -> Result<Vec<u8>, TarError> {
        let size = hdr.unsigned("size", SIZE)?;
        if size > MAX_SPECIAL {
            return Err(bad_field(
                "size",
                hdr.offset,
                format!("extension header of {size} bytes is too large"),
            ));
        }
        let what = format!(
            "extension header data (type '{}') at byte {}",
            hdr.typeflag() as char,
            hdr.offset
        );
        let data = self.input.read_data(size, sink, &what)?;
        self.input
            .forward(padding(size), Dest::Skeleton, sink, &|| what.clone())?;
        Ok(data)
    }

    fn entry(
        &mut self,
        hdr: &Header<'_>,
        pending: Pending,
        sink: &mut impl TarSink,
    ) -> Result<(), TarError> {
        let attrs = Attrs::from_records(self.global.iter().chain(pending.pax.iter()), hdr.offset)?;
        let mut entry = base_entry(hdr, &pending, &attrs)?;
        let typeflag = hdr.typeflag();
        let area = if header_only(typeflag, entry.kind) {
            0
        } else {
            attrs.size.map_or_else(|| hdr.unsigned("size", SIZE), Ok)?
        };
        let map_len = self.sparse(hdr, &attrs, area, &mut entry, sink)?;
        let data_len = area - map_len;
        if entry.kind == TarKind::Regular {
            entry.content_len = data_len;
            if entry.sparse.is_none() {
                entry.size = data_len;
            }
        } else {
            entry.size = data_len;
        }
        self.entries += 1;
        sink.entry(&entry)?;
        self.data_area(&entry, data_len, map_len, sink)?;
        sink.end_entry()
    }

    fn data_area(
        &mut self,
        entry: &TarEntry,
        data_len: u64,
        map_len: u64,
        sink: &mut impl TarSink,
    ) -> Result<(), TarError> {
        let what = || {
            format!(
                "the data of entry {:?} (header at byte {})",
                String::from_utf8_lossy(&entry.path),
                entry.header_offset
            )
        };
        let dest = match entry.kind {
            TarKind::Regular => Dest::Content,
            _ => Dest::Skeleton,
        };
        self.input.forward(data_len, dest, sink, &what)?;
        let pad = padding(data_len + map_len);
        self.input.forward(pad, Dest::Skeleton, sink, &what)
    }

    /// Sets `entry.sparse`/`entry.size` for sparse files; returns the bytes of the data area
    /// taken by a PAX 1.0 map (already passed to the skeleton).
    fn sparse(
        &mut self,
        hdr: &Header<'_>,
        attrs: &Attrs,
        area: u64,
        entry: &mut TarEntry,
        sink: &mut impl TarSink,
    ) -> Result<u64, TarError> {
        let (map, map_len) = if hdr.typeflag() == b'S' {
            entry.size = hdr.unsigned("realsize", GNU_REALSIZE)?;
            (self.old_gnu_sparse(hdr, sink)?, 0)
        } else if attrs.sparse.is_v1() {
            self.sparse_v1_map(hdr.offset, area, sink)?
        } else if attrs.sparse.is_v0() {
            (attrs.sparse.v0_map(hdr.offset)?, 0)
        } else {
            return Ok(0);
        };
        if hdr.typeflag() != b'S' {
            let end = map.last().map_or(0, |&(o, l)| o.saturating_add(l));
            entry.size = attrs.sparse.realsize.unwrap_or(end);
        }
        if entry.kind != TarKind::Regular {
            return Err(bad_field(
                "typeflag",
                hdr.offset,
                "sparse map on a non-regular entry",
            ));
        }
        check_sparse(&map, entry.size, area - map_len, hdr.offset)?;
        entry.sparse = Some(map);
        Ok(map_len)
    }

    /// Old GNU sparse ('S'): 4 entries in the header, 21 per extension block.
    fn old_gnu_sparse(
        &mut self,
        hdr: &Header<'_>,
        sink: &mut impl TarSink,
    ) -> Result<Vec<(u64, u64)>, TarError> {
        let mut map = Vec::new();
        let mut more = read_sparse_entries(&hdr.block[GNU_SPARSE..], 4, hdr.offset, &mut map)?;
        more &= hdr.block[GNU_ISEXTENDED] != 0;
        while more {
            let offset = self.input.offset;
            let block = self
                .input
                .skeleton_block("a GNU sparse extension header", sink)?;
            more = read_sparse_entries(&block, 21, offset, &mut map)? && block[504] != 0;
            if map.len() > MAX_SPARSE_SEGMENTS {
                return Err(bad_field(
                    "sparse map",
                    hdr.offset,
                    format!("more than the {MAX_SPARSE_SEGMENTS} segments accepted"),
                ));
            }
        }
        Ok(map)
    }

    /// PAX 1.0 sparse: the map is text at the start of the data area, padded to a block.
    fn sparse_v1_map(
        &mut self,
        offset: u64,
        area: u64,
        sink: &mut impl TarSink,
    ) -> Result<(Vec<(u64, u64)>, u64), TarError> {
        let mut reader = MapReader {
            text: Vec::new(),
            cursor: 0,
            numbers: Vec::new(),
        };
        let mut used = 0u64;
        while !reader.complete() {
            if used + BLOCK_U64 > area {
                return Err(bad_field(
                    "GNU sparse 1.0 map",
                    offset,
                    "map does not fit in the data area",
                ));
            }
            let block = self.input.skeleton_block("a GNU sparse 1.0 map", sink)?;
            used += BLOCK_U64;
            reader.text.extend_from_slice(&block);
            reader.parse_lines(offset)?;
        }
        // `complete()` guarantees 1 + 2 * count numbers were read.
        let count = reader.numbers.len().saturating_sub(1) / 2;
        let count = reader
            .numbers
            .first()
            .map_or(0, |&c| usize::try_from(c).unwrap_or(count).min(count));
        let pairs = reader.numbers[1..1 + 2 * count].chunks_exact(2);
        Ok((pairs.map(|p| (p[0], p[1])).collect(), used))
    }
}

/// Appends up to `max` (offset, numbytes) pairs; `false` if an empty slot ended the list.
fn read_sparse_entries(
    area: &[u8],
    max: usize,
    offset: u64,
    map: &mut Vec<(u64, u64)>,
) -> Result<bool, TarError> {
    for slot in area.chunks_exact(24).take(max) {
        if slot[0] == 0 {
            return Ok(false);
        }
        let start = parse_numeric(&slot[..12], "sparse offset", offset)?;
        let len = parse_numeric(&slot[12..], "sparse numbytes", offset)?;
        let convert = |v: i128| {
            u64::try_from(v).map_err(|_| bad_field("sparse map", offset, "negative value"))
        };
        map.push((convert(start)?, convert(len)?));
    }
    Ok(true)
}

fn base_entry(hdr: &Header<'_>, pending: &Pending, attrs: &Attrs) -> Result<TarEntry, TarError> {
    let path = attrs
        .sparse
        .name
        .clone()
        .or_else(|| attrs.path.clone())
        .or_else(|| pending.long_name.clone())
        .unwrap_or_else(|| hdr.path());
    let link = attrs
        .linkpath
        .clone()
        .or_else(|| pending.long_link.clone())
        .unwrap_or_else(|| hdr.string(LINKNAME));
    let kind = kind_of(hdr.typeflag(), &path);
    let (mtime, mtime_nsec) = match attrs.mtime {
        Some(t) => t,
        None => (header_mtime(hdr)?, 0),
    };
    let v7 = hdr.format() == Format::V7;
    let string = |pax: &Option<Vec<u8>>, range| {
        pax.clone()
            .unwrap_or_else(|| if v7 { Vec::new() } else { hdr.string(range) })
    };
    let device = |pax: Option<u32>, name, range| match pax {
        Some(v) => Ok(v),
        None if v7 => Ok(0),
        None => hdr.small(name, range),
    };
    Ok(TarEntry {
        kind,
        mode: hdr.small("mode", MODE)?,
        uid: attrs.uid.map_or_else(|| hdr.unsigned("uid", UID), Ok)?,
        gid: attrs.gid.map_or_else(|| hdr.unsigned("gid", GID), Ok)?,
        uname: string(&attrs.uname, UNAME),
        gname: string(&attrs.gname, GNAME),
        size: 0,
        content_len: 0,
        mtime,
        mtime_nsec,
        link_target: (!link.is_empty()).then_some(link),
        dev_major: device(attrs.devmajor, "devmajor", DEVMAJOR)?,
        dev_minor: device(attrs.devminor, "devminor", DEVMINOR)?,
        xattrs: attrs.xattrs.clone(),
        sparse: None,
        header_offset: hdr.offset,
        path,
    })
}

fn header_mtime(hdr: &Header<'_>) -> Result<i64, TarError> {
    let value = hdr.signed("mtime", MTIME)?;
    i64::try_from(value)
        .map_err(|_| bad_field("mtime", hdr.offset, format!("{value} is out of range")))
}
