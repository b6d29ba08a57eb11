//! rkt's lazy rootfs: a read-only FUSE tree of an image (merged with its dependencies), served
//! by the pod's own supervisor from the store's SQLite index.
//!
//! Metadata operations never read a pack. Opening a file materialises that one file into the
//! store's object cache (verified against its chunks' and its own BLAKE3 hashes) and hands the
//! kernel the object as the open file's backing file (FUSE passthrough, Linux 6.9+), so reads
//! and mmap run in the kernel and every mount of the image shares one copy in the page cache.
//! Without passthrough, reads are served from the object through FUSE. See docs/lazy-rootfs.md.
//!
//! ```no_run
//! # fn main() -> Result<(), rkt_lazyfs::Error> {
//! let session = rkt_lazyfs::LazyFs::mount(
//!     "/var/lib/rkt".as_ref(), "sha512-…", "/var/lib/rkt/pods/run/UUID/lower".as_ref())?;
//! // … overlayfs with lowerdir = the mountpoint, run the pod …
//! drop(session); // unmounts
//! # Ok(()) }
//! ```

mod access;
pub mod cleanup;
mod error;
mod fs;
mod inodes;
mod memory;
mod session;

pub use access::log_path as access_log_path;
pub use cleanup::{unmount_under, SUBTYPE};
pub use error::{Error, Result};
pub use session::{LazyFs, Session, Stats};
