#!/usr/bin/env bash
# Image store benchmark: import (fetch) and export throughput, and bytes on disk for related
# images, compared in the same run with `tar -x` of the same archives (and `casync make` if
# casync is installed).
#
# How to run (as root, from anywhere in the repository; writes docs/benchmarks.md):
#
#     bash benches/store.sh
#
# Needs: cargo, python3, GNU tar, gzip, du; optional: hyperfine (timing), casync (comparison).
# Environment:
#   BENCH_RUNS=5          timed repetitions per measurement
#   BENCH_DIR=/var/tmp/…  work directory (default: a new mktemp dir under /var/tmp, removed at end)
#   BENCH_BIG_MB=200      approximate size of the big image
#   BENCH_OUT=docs/benchmarks.md
#   BENCH_JSON=DIR-OF-OUT/bench-store.json   machine-readable results (benches/plot.py reads them)
#
# Every image is generated from fixed seeds with fixed mtimes, so the tars (and image IDs) are
# identical from run to run. "warm" = the archive is in the page cache (a warm-up run precedes
# the timed runs); "cold" = page cache dropped before each run (echo 3 > drop_caches), when the
# kernel lets us.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

RUNS=${BENCH_RUNS:-5}
BIG_MB=${BENCH_BIG_MB:-200}
OUT=${BENCH_OUT:-docs/benchmarks.md}
JSON=${BENCH_JSON:-$(dirname "$OUT")/bench-store.json}
KEEP=${BENCH_DIR:+1}
W=${BENCH_DIR:-$(mktemp -d /var/tmp/rkt-bench.XXXXXX)}
mkdir -p "$W"
[ -n "$KEEP" ] || trap 'rm -rf "$W"' EXIT

die() { echo "benches/store.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root"
for t in cargo python3 tar gzip du; do command -v $t >/dev/null || die "$t not found"; done

echo "==> cargo build --release"
cargo build --release --bin rkt
RKT=$ROOT/target/release/rkt
[ -x "$RKT" ] || die "release binary $RKT missing"

CAN_DROP=0
if (sync && echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then CAN_DROP=1; fi
HAVE_HYPERFINE=0; command -v hyperfine >/dev/null && HAVE_HYPERFINE=1
HAVE_CASYNC=0; command -v casync >/dev/null && HAVE_CASYNC=1

# ------------------------------------------------------------------------------------------
echo "==> generating images in $W"
python3 - "$W/trees" "$BIG_MB" <<'PY'
import json, os, random, shutil, sys

out, big_mb = sys.argv[1], int(sys.argv[2])
MTIME = 1500000000

def manifest(name, version):
    return json.dumps({
        "acKind": "ImageManifest", "acVersion": "0.8.11", "name": name,
        "labels": [{"name": "version", "value": version},
                   {"name": "os", "value": "linux"}, {"name": "arch", "value": "amd64"}],
        "app": {"exec": ["/bin/busybox", "sh"], "user": "0", "group": "0"},
    }, indent=2)

def put(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)

def text(rng, n):
    words = [b"container", b"image", b"store", b"chunk", b"pack", b"rootfs", b"layer",
             b"manifest", b"index", b"sqlite", b"busybox", b"linux", b"the", b"of", b"and"]
    parts, size = [], 0
    while size < n:
        w = rng.choice(words)
        parts.append(w)
        size += len(w) + 1
    return b" ".join(parts)[:n]

def semi(rng, n):
    # library-like: half random, half text
    return rng.randbytes(n // 2) + text(rng, n - n // 2)

def base(root):
    rng = random.Random(1)
    rf = os.path.join(root, "rootfs")
    os.makedirs(os.path.join(rf, "bin"))
    shutil.copy2("/bin/busybox", os.path.join(rf, "bin/busybox"))
    for l in ["sh", "ls", "cat", "echo", "cp", "mv", "rm", "mkdir", "vi", "wget"]:
        os.symlink("busybox", os.path.join(rf, "bin", l))
    put(os.path.join(rf, "etc/passwd"), b"root:x:0:0:root:/root:/bin/sh\n")
    put(os.path.join(rf, "etc/group"), b"root:x:0:\n")
    for i in range(20):
        put(os.path.join(rf, f"usr/lib/lib{i:02}.so"), semi(rng, 400 * 1024))
    for i in range(50):
        put(os.path.join(rf, f"usr/share/doc/pkg{i:02}/README"), text(rng, 40 * 1024))

def derived(root, i):
    shutil.copytree(os.path.join(out, "base"), root, symlinks=True)
    rng = random.Random(100 + i)
    rf = os.path.join(root, "rootfs")
    for j in range(3):
        put(os.path.join(rf, f"opt/app{i}/data{j}.bin"), rng.randbytes(1024 * 1024))
    put(os.path.join(rf, f"opt/app{i}/config.txt"), text(rng, 64 * 1024))
    # modify an existing library in place: a few bytes in the middle change
    p = os.path.join(rf, f"usr/lib/lib{i:02}.so")
    data = bytearray(open(p, "rb").read())
    data[200000:200016] = rng.randbytes(16)
    put(p, bytes(data))

def big(root):
    rng = random.Random(7)
    rf = os.path.join(root, "rootfs")
    budget = big_mb << 20
    big_files = max(1, budget * 60 // 100 // (30 << 20))
    for i in range(big_files):
        put(os.path.join(rf, f"var/big/blob{i}.bin"), rng.randbytes(30 << 20))
    for i in range(50):
        put(os.path.join(rf, f"usr/lib/medium{i:02}.so"), semi(rng, rng.randint(100 << 10, 1 << 20)))
    for i in range(2000):
        put(os.path.join(rf, f"usr/share/small/{i % 40:02}/f{i:04}"),
            text(rng, rng.randint(1 << 10, 20 << 10)) if i % 2 else rng.randbytes(rng.randint(1 << 10, 20 << 10)))
    used = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(rf) for f in fs)
    if budget > used:
        put(os.path.join(rf, "var/log/huge.log"), text(rng, budget - used))

trees = [("base", "example.com/base", "1.0", base)]
trees += [(f"derived{i}", f"example.com/derived{i}", "1.0", lambda r, i=i: derived(r, i)) for i in range(1, 5)]
trees += [("big", "example.com/big", "1.0", big)]
if os.path.exists(out):
    shutil.rmtree(out)
os.makedirs(out)
for d, name, version, fn in trees:
    root = os.path.join(out, d)
    fn(root)
    put(os.path.join(root, "manifest"), manifest(name, version).encode())
    for dp, dns, fns in os.walk(root):
        for n in dns + fns:
            os.utime(os.path.join(dp, n), (MTIME, MTIME), follow_symlinks=False)
    os.utime(root, (MTIME, MTIME))
PY

RELATED="base derived1 derived2 derived3 derived4"
ALL="$RELATED big"
mkdir -p "$W/aci"
for t in $ALL; do
    tar -C "$W/trees/$t" --sort=name --format=gnu --numeric-owner -cf "$W/aci/$t.aci" manifest rootfs
done
gzip -1 -c "$W/aci/big.aci" >"$W/aci/big.aci.gz"

size() { stat -c %s "$1"; }

# ------------------------------------------------------------------------------------------
# timing: measure LABEL PREPARE COMMAND  → sets MEAN (seconds) and SD
measure() {
    local label=$1 prepare=$2 cmd=$3 cold=${4:-0}
    if [ "$cold" = 1 ]; then prepare="$prepare; sync; echo 3 > /proc/sys/vm/drop_caches"; fi
    echo "--> $label"
    if [ "$HAVE_HYPERFINE" = 1 ]; then
        hyperfine --style basic --warmup 1 --runs "$RUNS" --prepare "$prepare" \
            --export-json "$W/h.json" "$cmd" >&2
        read -r MEAN SD < <(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][0]; print(r["mean"], r["stddev"] or 0)' "$W/h.json")
    else
        local ts=() i s e
        bash -c "$prepare" && bash -c "$cmd" >/dev/null 2>&1 # warm-up
        for ((i = 0; i < RUNS; i++)); do
            bash -c "$prepare"
            s=$(date +%s%N); bash -c "$cmd" >/dev/null; e=$(date +%s%N)
            ts+=("$(( e - s ))")
        done
        read -r MEAN SD < <(python3 -c 'import statistics,sys; v=[int(x)/1e9 for x in sys.argv[1:]]; print(statistics.mean(v), statistics.pstdev(v))' "${ts[@]}")
    fi
}

mbps() { python3 -c "print(f'{$1 / 1048576 / $2:.1f}')"; }
fmt_s() { python3 -c "print(f'{$1:.3f} ± {$2:.3f}')"; }

ROWS=()
row() { ROWS+=("| $1 | $2 | $3 | $4 | $5 |"); }

BIG=$W/aci/big.aci
BIGSZ=$(size "$BIG")
S=$W/store-bench
X=$W/tar-x
for mode in warm cold; do
    cold=0
    if [ $mode = cold ]; then
        [ "$CAN_DROP" = 1 ] || { echo "(cannot drop caches: no cold runs)"; continue; }
        cold=1
    fi
    for a in big.aci big.aci.gz; do
        measure "rkt fetch $a ($mode)" "rm -rf $S" \
            "$RKT --dir $S --insecure-options=image fetch $W/aci/$a" $cold
        row "import: rkt fetch $a" $mode "$(fmt_s "$MEAN" "$SD")" "$(mbps "$BIGSZ" "$MEAN")" "uncompressed tar $BIGSZ B"
        eval "RKT_${mode}_${a//./_}=$MEAN"
        measure "tar -x $a ($mode)" "rm -rf $X && mkdir -p $X" "tar -xf $W/aci/$a -C $X" $cold
        row "tar -x $a into a fresh dir" $mode "$(fmt_s "$MEAN" "$SD")" "$(mbps "$BIGSZ" "$MEAN")" ""
        eval "TAR_${mode}_${a//./_}=$MEAN"
    done
done

# export
rm -rf "$S"
BIGID=$("$RKT" --dir "$S" --insecure-options=image fetch --full "$BIG")
measure "rkt image export (warm)" "rm -f $W/export.aci" "$RKT --dir $S image export $BIGID $W/export.aci"
row "export: rkt image export big" warm "$(fmt_s "$MEAN" "$SD")" "$(mbps "$BIGSZ" "$MEAN")" ""
EXPORT_OK=no
[ "$(sha512sum <"$W/export.aci" | cut -c1-128)" = "${BIGID#sha512-}" ] && EXPORT_OK=yes
measure "cat of the tar (warm; reading baseline)" "true" "cat $BIG > $W/cat.out"
row "baseline: cat big.aci > file" warm "$(fmt_s "$MEAN" "$SD")" "$(mbps "$BIGSZ" "$MEAN")" ""
# The appc image ID is the SHA-512 of the whole tar: one sequential hash no importer can
# split across cores. OpenSSL's is the one rkt links, so this row is rkt's floor.
measure "openssl dgst -sha512 of the tar (warm)" "true" "openssl dgst -sha512 $BIG"
row "floor: SHA-512 of big.aci (openssl dgst)" warm "$(fmt_s "$MEAN" "$SD")" "$(mbps "$BIGSZ" "$MEAN")" "the appc image ID alone"
SHA_FLOOR=$MEAN
measure "tar -x + sync (warm; durable like rkt)" "rm -rf $X && mkdir -p $X && sync" "tar -xf $BIG -C $X && sync -f $X"
row "tar -x big.aci then sync (durable)" warm "$(fmt_s "$MEAN" "$SD")" "$(mbps "$BIGSZ" "$MEAN")" "durable, as rkt's import is"

# ------------------------------------------------------------------------------------------
echo "==> store size of related images"
R=$W/store-related
rm -rf "$R"
SUM_TARS=0
for t in $RELATED; do
    "$RKT" --dir "$R" --insecure-options=image fetch "$W/aci/$t.aci" >/dev/null
    SUM_TARS=$((SUM_TARS + $(size "$W/aci/$t.aci")))
done
STORE_RELATED=$(du -sb "$R" | cut -f1)
PACKS_RELATED=$(du -sb "$R/packs" 2>/dev/null | cut -f1 || echo 0)
read -r SUM_FILES SUM_UNIQUE < <(python3 - "$W/trees" $RELATED <<'PY'
import hashlib, os, sys
base, trees = sys.argv[1], sys.argv[2:]
total, seen = 0, {}
for t in trees:
    for d, _, fs in os.walk(os.path.join(base, t, "rootfs")):
        for f in fs:
            p = os.path.join(d, f)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            data = open(p, "rb").read()
            total += len(data)
            seen[hashlib.sha256(data).digest()] = len(data)
print(total, sum(seen.values()))
PY
)
CASYNC_RELATED=n/a
if [ "$HAVE_CASYNC" = 1 ]; then
    C=$W/casync-store
    rm -rf "$C"
    for t in $RELATED; do
        casync make --store="$C" "$W/$t.caidx" "$W/trees/$t" >/dev/null
    done
    CASYNC_RELATED=$(du -sb "$C" | cut -f1)
fi

ratio() { python3 -c "print(f'{$1 / $2:.3f}')"; }

# ------------------------------------------------------------------------------------------
mkdir -p "$(dirname "$OUT")"
{
    echo "## Image store"
    echo
    echo "Generated by \`bash benches/store.sh\` on $(date -u +%Y-%m-%dT%H:%M:%SZ)."
    echo "Machine: $(nproc) CPUs, $(uname -srm), $(awk '/MemTotal/ {printf "%.1f GiB RAM", $2/1048576}' /proc/meminfo);"
    echo "filesystem of the work dir: $(df -T "$W" | awk 'NR==2 {print $2}'). rkt: release build at $(git rev-parse --short HEAD 2>/dev/null || echo '?')."
    echo "Timing: $([ "$HAVE_HYPERFINE" = 1 ] && echo "hyperfine, 1 warm-up +" || echo "date +%s%N,") $RUNS runs, mean ± standard deviation."
    echo "Throughput is MB/s (MiB/s) of the **uncompressed** tar ($BIGSZ bytes) in every row."
    echo "Load average when done: $(cut -d' ' -f1-3 /proc/loadavg) (on a shared machine: treat small differences as noise)."
    echo
    echo "### Import and export of one big image (~${BIG_MB} MB, many small files and some big ones)"
    echo
    echo "| operation | cache | seconds | MiB/s | note |"
    echo "|---|---|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
    echo
    echo "Import vs \`tar -x\` of the same archive (time ratio, < 1 means rkt is faster):"
    for mode in warm cold; do
        for a in big_aci big_aci_gz; do
            r=RKT_${mode}_$a t=TAR_${mode}_$a
            [ -n "${!r:-}" ] && echo "- $mode, ${a//_/.}: $(ratio "${!r}" "${!t}")"
        done
    done
    echo
    echo "Export byte-exact (sha512 of export == image ID): $EXPORT_OK."
    echo "Note: \`rkt fetch\` also hashes (SHA-512, BLAKE3), chunks, compresses and makes the data"
    echo "durable before committing; \`tar -x\` does none of that and does not fsync."
    echo "The SHA-512 floor row is the time any importer that computes the appc image ID needs on"
    echo "this CPU: where it is close to \`tar -x\`, matching \`tar -x\` would need the other core to"
    echo "do everything else (read, parse, chunk, BLAKE3, zstd, write) in the same time."
    echo "SHA-512 floor / tar -x (warm, big.aci): $(ratio "$SHA_FLOOR" "$TAR_warm_big_aci")."
    echo
    echo "### Bytes on disk: base image plus four derived images"
    echo
    echo "Images: $RELATED (each derived image = base + 3 MiB of its own + a 16-byte change"
    echo "inside one 400 KiB library)."
    echo
    echo "| what | bytes | ratio to sum of tars |"
    echo "|---|---|---|"
    echo "| sum of the five tars | $SUM_TARS | 1.000 |"
    echo "| sum of all regular files in the five trees | $SUM_FILES | $(ratio "$SUM_FILES" "$SUM_TARS") |"
    echo "| sum of the unique files (by content) | $SUM_UNIQUE | $(ratio "$SUM_UNIQUE" "$SUM_TARS") |"
    echo "| rkt store, \`du -sb DIR\` | $STORE_RELATED | $(ratio "$STORE_RELATED" "$SUM_TARS") |"
    echo "| rkt store, packs only | $PACKS_RELATED | $(ratio "$PACKS_RELATED" "$SUM_TARS") |"
    if [ "$HAVE_CASYNC" = 1 ]; then
        echo "| casync make --store (chunk store of the five trees) | $CASYNC_RELATED | $(ratio "$CASYNC_RELATED" "$SUM_TARS") |"
    fi
    echo
    echo "rkt store / unique files: $(ratio "$STORE_RELATED" "$SUM_UNIQUE") (target: < 1)."
} >"$W/section.md"
python3 "$ROOT/benches/section.py" store "$OUT" <"$W/section.md"
python3 - "$JSON" <<PY
import json, sys
num = lambda v: None if v in ("", "n/a") else float(v)
json.dump({
    "bytes": {"tars": $SUM_TARS, "files": $SUM_FILES, "unique_files": $SUM_UNIQUE,
              "rkt_store": $STORE_RELATED, "rkt_packs": $PACKS_RELATED,
              "casync": num("$CASYNC_RELATED")},
    "import_s": {"big_aci_bytes": $BIGSZ,
                 "rkt_warm_aci": num("${RKT_warm_big_aci:-}"), "tar_warm_aci": num("${TAR_warm_big_aci:-}"),
                 "rkt_warm_gz": num("${RKT_warm_big_aci_gz:-}"), "tar_warm_gz": num("${TAR_warm_big_aci_gz:-}"),
                 "rkt_cold_aci": num("${RKT_cold_big_aci:-}"), "tar_cold_aci": num("${TAR_cold_big_aci:-}"),
                 "rkt_cold_gz": num("${RKT_cold_big_aci_gz:-}"), "tar_cold_gz": num("${TAR_cold_big_aci_gz:-}")},
    "runs": $RUNS, "cpus": $(nproc), "load_after": "$(cut -d' ' -f1-3 /proc/loadavg)",
}, open(sys.argv[1], "w"), indent=1)
PY
echo "==> wrote the store section of $OUT and $JSON"
cat "$W/section.md"
