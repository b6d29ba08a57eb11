//! TEMPORARY contract of the raw tar parser (replaced by the real parser from branch `tar`).
#[derive(Debug, thiserror::Error)]
pub enum TarError {
    #[error("sink: {0}")]
    Sink(String),
}
pub trait TarSink {
    fn skeleton(&mut self, bytes: &[u8]) -> Result<(), TarError>;
    fn entry(&mut self, entry: &TarEntry) -> Result<(), TarError>;
    fn content(&mut self, bytes: &[u8]) -> Result<(), TarError>;
    fn end_entry(&mut self) -> Result<(), TarError>;
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TarKind { Regular, HardLink, Symlink, CharDevice, BlockDevice, Directory, Fifo }
pub struct TarEntry {
    pub path: Vec<u8>, pub kind: TarKind, pub mode: u32, pub uid: u64, pub gid: u64,
    pub uname: Vec<u8>, pub gname: Vec<u8>, pub size: u64, pub content_len: u64,
    pub mtime: i64, pub mtime_nsec: u32, pub link_target: Option<Vec<u8>>,
    pub dev_major: u32, pub dev_minor: u32, pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    pub sparse: Option<Vec<(u64, u64)>>,
}
pub struct TarSummary { pub entries: u64, pub total_bytes: u64 }
pub fn parse<R: std::io::Read>(_reader: R, _sink: &mut impl TarSink) -> Result<TarSummary, TarError> {
    Err(TarError::Sink("not yet".into()))
}
