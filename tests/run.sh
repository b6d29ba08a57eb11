#!/usr/bin/env bash
# Run every test of rkt-in-Rust on a fresh Debian bookworm machine, as root:
#
#     bash tests/run.sh
#
# Installs what the tests need with apt-get, then runs rustfmt, clippy and the whole test suite
# (unit tests and the integration tests under tests/, which drive the real `rkt` binary).
# Set RKT_TESTS_NO_APT=1 to skip the apt-get step on a machine that already has the packages.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "tests/run.sh: $*" >&2; exit 1; }
step() { printf '\n==> %s\n' "$*"; }

[ "$(id -u)" = 0 ] || die "run as root: the tests mount tmpfs, create devices and chown files"

PACKAGES=(
    appc-spec      # actool build: reference ACIs
    busybox-static # the rootfs of the test images; httpd, wget and ping in the networking tests
    containernetworking-plugins # the CNI plugins in /usr/lib/cni (ptp, host-local) for pod networks
    iptables       # port forwarding rules, and the plugins' IP masquerade
    iproute2       # ip: the networking tests' namespaces and veth pairs
    python3        # tarfile: USTAR/GNU/PAX and hostile archives
    tar gzip bzip2 xz-utils
    attr           # setfattr/getfattr: xattrs in images
    coreutils findutils util-linux # du, find, mount/umount
    golang-go golang-github-appc-spec-dev # the appc ACE validator, built at test time (pods_ace)
    build-essential pkg-config libssl-dev # C compilers for bundled SQLite, zstd, lzma; libcrypto (SHA-512)
    docker-registry skopeo umoci # Docker/OCI images: a local registry, pushes, image builds
    apache2-utils  # htpasswd -B: bcrypt users for the registry that requires basic auth
    gnupg          # gpg: real keys and signatures for the trust/fetch tests
    openssl        # a test CA and server certificates for the HTTPS tests
    iproute2       # ip: loopback up in the discovery tests' network namespace
    bsdutils       # script: a pseudo-terminal for the trust prompt and rkt run --interactive tests
)
if [ -z "${RKT_TESTS_NO_APT:-}" ]; then
    step "apt-get install ${PACKAGES[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q || die "apt-get update failed"
    apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" \
        || die "apt-get install failed"
fi

for tool in cargo actool busybox python3 tar gzip bzip2 xz setfattr getfattr mknod mount chroot docker-registry skopeo umoci htpasswd \
    gpg openssl go ip iptables iptables-save iptables-restore nsenter unshare timeout script; do
    command -v "$tool" >/dev/null || die "$tool not found (cargo: install Rust with rustup)"
done
[ -x /usr/lib/cni/ptp ] && [ -x /usr/lib/cni/host-local ] \
    || die "CNI plugins missing from /usr/lib/cni (package containernetworking-plugins)"
[ -x /bin/busybox ] || die "/bin/busybox missing (package busybox-static)"
[ -c /dev/fuse ] || die "/dev/fuse missing: the lazy rootfs tests need FUSE (modprobe fuse)"
file_out=$(head -c 4 /bin/busybox | od -An -c | tr -d ' ')
[ "$file_out" = "177ELF" ] || die "/bin/busybox is not an ELF binary"

step "cargo fmt --all -- --check"
cargo fmt --all -- --check || die "formatting differs: run cargo fmt --all"

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings || die "clippy found problems"

step "cargo test --workspace"
# Integration tests run real rkt processes, some large (crash and concurrency tests):
# two test threads per binary keep the 2-core CI machine busy without starving timers.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --no-fail-fast -- --test-threads=2 2>&1 | tee "$log" || status=$?
# One closing line for the whole run (cargo prints one per test binary, the last of which is
# usually the empty doc-test run).
summary=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;/) p += $i; if ($(i+1) ~ /^failed;/) f += $i } }
               END { printf "%d passed, %d failed", p, f }' "$log")
[ "$status" = 0 ] || { echo "$summary"; die "tests failed (see above)"; }
step "all tests passed"
echo "$summary"
