//! Keeping a lazy rootfs server small. It lives as long as its pod, one per pod on a dense
//! host: memory it has freed should go back to the system, and memory it never uses should
//! never be touched.

/// fuser reads requests into a 16 MiB `vec![0; …]`, one per session. glibc serves that from
/// fresh mmap pages, which stay untouched (no memory), only while its mmap threshold is below
/// the size; but the threshold rises to the size of every large mmapped block the process
/// frees (up to 32 MiB), and fuser frees a handshake buffer of that very size just before (seen
/// with strace: one 16 MiB mmap and munmap, then no mmap for the event loop's buffer). The
/// buffer then comes from a heap, and in about half the starts calloc cleared all of it: 16 MiB
/// of RSS for the pod's whole life. A threshold set once does not move.
pub(crate) fn fix_mmap_threshold() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes a tunable of glibc's allocator, under its own lock; any
    // thread may call it at any time.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
    }
}

/// Return the free pages inside glibc's heaps to the system: what loading an image's view or
/// materialising a big file allocated and freed stays resident otherwise (2.6 MiB of a
/// server's 6.7 MiB after loading a view of 8,920 entries).
pub(crate) fn release_freed() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory of glibc's heaps, under their locks; any
    // thread may call it at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
