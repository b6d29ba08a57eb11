//! Link options for the `rkt` and `docker2aci` binaries.
//!
//! Every `rkt` process (a pod start runs two: `rkt run`, and `rkt gc` later) applies the
//! binary's ~28,000 relative relocations before main. With `-z pack-relative-relocs` (DT_RELR,
//! glibc 2.36+, binutils 2.38+) the linker stores them as a bitmap of a few kilobytes instead
//! of a 690 KB table that the dynamic loader reads page by page; older glibc refuses such a
//! binary, so the option is used only on x86_64 GNU/Linux, where Debian 12 and later have it.
//! docs/benchmarks.md ("Pod start") has the measurements.

fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    if target == "x86_64-unknown-linux-gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
