#!/usr/bin/env bash
# `rkt image gc` with many images: builds N small distinct ACIs reproducibly, imports them one
# `rkt fetch` each (per-image import time is reported), then times `rkt image gc` that removes
# nothing (all N images are younger than the grace period) and `rkt image gc --grace-period=0s`
# that removes all of them. Writes the "gc" section of docs/benchmarks.md and docs/bench-gc.json.
#
# How to run (as root, from anywhere in the repository):
#
#     bash benches/gc.sh
#
# Needs: cargo, python3, du.
# Environment:
#   BENCH_GC_IMAGES=1000   number of images
#   BENCH_RUNS=3           repetitions of the gc that removes nothing (the full gc runs once:
#                          it is destructive)
#   BENCH_DIR=/var/tmp/…   work directory (default: a new mktemp dir, removed at the end)
#   BENCH_OUT=docs/benchmarks.md
#   BENCH_JSON=DIR-OF-OUT/bench-gc.json   machine-readable results (benches/plot.py reads them)
#
# Each image: a manifest with its own name, ten "base" files shared by every image (100 KiB in
# all, so the store deduplicates them as it would a distro base) and three files of its own
# (4, 8 and 16 KiB of seeded random bytes). Tars are written by Python's tarfile with fixed
# mtimes, owners and order, so the image IDs are the same on every run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

N=${BENCH_GC_IMAGES:-1000}
RUNS=${BENCH_RUNS:-3}
OUT=${BENCH_OUT:-docs/benchmarks.md}
JSON=${BENCH_JSON:-$(dirname "$OUT")/bench-gc.json}
KEEP=${BENCH_DIR:+1}
W=${BENCH_DIR:-$(mktemp -d /var/tmp/rkt-gc-bench.XXXXXX)}
mkdir -p "$W"
cleanup() { [ -n "$KEEP" ] || rm -rf "$W"; }
trap cleanup EXIT

die() { echo "benches/gc.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root"
for t in cargo python3 du; do command -v $t >/dev/null || die "$t not found"; done

echo "==> cargo build --release"
cargo build --release --bin rkt
RKT=$ROOT/target/release/rkt
[ -x "$RKT" ] || die "release binary $RKT missing"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

echo "==> generating $N images in $W/aci"
python3 - "$W/aci" "$N" <<'PY'
import io, json, os, random, sys, tarfile
out, n = sys.argv[1], int(sys.argv[2])
os.makedirs(out, exist_ok=True)
MTIME = 1500000000
base_rng = random.Random(0)
base = [(f"rootfs/usr/lib/base{i}.so", base_rng.randbytes(10 * 1024)) for i in range(10)]

def add(tf, name, data=None, mode=0o644):
    ti = tarfile.TarInfo(name)
    ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = MTIME, 0, 0, "", ""
    if data is None:
        ti.type, ti.mode = tarfile.DIRTYPE, 0o755
        tf.addfile(ti)
    else:
        ti.size, ti.mode = len(data), mode
        tf.addfile(ti, io.BytesIO(data))

for i in range(n):
    rng = random.Random(1000 + i)
    manifest = json.dumps({
        "acKind": "ImageManifest", "acVersion": "0.8.11", "name": f"bench.example.com/gc{i:05}",
        "labels": [{"name": "version", "value": "1.0"},
                   {"name": "os", "value": "linux"}, {"name": "arch", "value": "amd64"}],
        "app": {"exec": ["/bin/app"], "user": "0", "group": "0"},
    }, indent=2).encode()
    with tarfile.open(os.path.join(out, f"gc{i:05}.aci"), "w", format=tarfile.GNU_FORMAT) as tf:
        add(tf, "manifest", manifest)
        for d in ["rootfs", "rootfs/bin", "rootfs/etc", "rootfs/usr", "rootfs/usr/lib", "rootfs/opt"]:
            add(tf, d)
        add(tf, "rootfs/bin/app", b"#!/bin/sh\necho app %d\n" % i, 0o755)
        add(tf, "rootfs/etc/hostname", b"gc%05d\n" % i)
        for name, data in base:
            add(tf, name, data)
        for j, kib in enumerate((4, 8, 16)):
            add(tf, f"rootfs/opt/data{j}.bin", rng.randbytes(kib * 1024))
PY
SUM_ACI=$(du -cb "$W"/aci/*.aci | tail -1 | cut -f1)

S=$W/store
echo "==> importing $N images one rkt fetch each"
: >"$W/import.ns"
for f in "$W"/aci/*.aci; do
    t0=$(date +%s%N)
    "$RKT" --dir "$S" --insecure-options=image fetch "$f" >/dev/null
    t1=$(date +%s%N)
    echo $((t1 - t0)) >>"$W/import.ns"
done
COUNT=$("$RKT" --dir "$S" image list --no-legend | wc -l)
[ "$COUNT" = "$N" ] || die "expected $N images in the store, found $COUNT"
STORE_BYTES=$(du -sb "$S" | cut -f1)

# gc that removes nothing: every image was used (imported) seconds ago, well inside 24 h.
echo "==> rkt image gc with $N images, nothing to remove ($RUNS runs)"
: >"$W/gc-noop.ns"
for _ in $(seq "$RUNS"); do
    t0=$(date +%s%N)
    "$RKT" --dir "$S" image gc --grace-period=24h0m0s 2>"$W/gc-noop.log"
    t1=$(date +%s%N)
    echo $((t1 - t0)) >>"$W/gc-noop.ns"
done
COUNT_AFTER_NOOP=$("$RKT" --dir "$S" image list --no-legend | wc -l)
[ "$COUNT_AFTER_NOOP" = "$N" ] || die "the no-op gc removed images: $COUNT_AFTER_NOOP left"

echo "==> rkt image gc --grace-period=0s removing all $N images"
t0=$(date +%s%N)
"$RKT" --dir "$S" image gc --grace-period=0s 2>"$W/gc-all.log"
t1=$(date +%s%N)
GC_ALL_NS=$((t1 - t0))
REMOVED=$(grep -c 'successfully removed' "$W/gc-all.log" || true)
LEFT=$("$RKT" --dir "$S" image list --no-legend | wc -l)
STORE_AFTER=$(du -sb "$S" | cut -f1)
DB_AFTER=$(stat -c %s "$S/store.db" 2>/dev/null || echo 0)
FREE_PAGES=n/a
if command -v sqlite3 >/dev/null && [ -f "$S/store.db" ]; then
    FREE_PAGES="$(sqlite3 "$S/store.db" 'pragma freelist_count' 2>/dev/null || echo '?') of $(sqlite3 "$S/store.db" 'pragma page_count' 2>/dev/null || echo '?')"
fi
export SUMMARY
SUMMARY=$(grep -h 'image(s) removed\|object cache' "$W/gc-all.log" | sed 's/^rkt: //' | tr '\n' ' ' || true)
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

python3 - "$W" "$JSON" <<PY >"$W/section.md"
import json, os, statistics, sys
w, jpath = sys.argv[1], sys.argv[2]
imp = [int(x) / 1e6 for x in open(f"{w}/import.ns")]
noop = [int(x) / 1e6 for x in open(f"{w}/gc-noop.ns")]
imp_sorted = sorted(imp)
p90 = imp_sorted[int(0.9 * (len(imp_sorted) - 1))]
res = {
    "images": $N, "sum_aci_bytes": $SUM_ACI, "store_bytes": $STORE_BYTES,
    "store_bytes_after_gc": $STORE_AFTER, "store_db_bytes_after_gc": $DB_AFTER,
    "store_db_free_pages_after_gc": "$FREE_PAGES",
    "import_ms": {"total": sum(imp), "mean": statistics.mean(imp), "median": statistics.median(imp),
                  "p90": p90, "max": max(imp), "first": imp[0], "last": imp[-1],
                  "first_100_mean": statistics.mean(imp[:100]), "last_100_mean": statistics.mean(imp[-100:])},
    "gc_noop_ms": noop, "gc_all_ms": $GC_ALL_NS / 1e6,
    "removed": $REMOVED, "left": $LEFT,
    "load_before": "$LOAD_BEFORE", "load_after": "$LOAD_AFTER", "cpus": $(nproc),
}
json.dump(res, open(jpath, "w"), indent=1)
i = res["import_ms"]
print(f"""## \`rkt image gc\` with {res['images']} images

Written by \`bash benches/gc.sh\` on $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs, $(uname -r), rkt release build
at $(git rev-parse --short HEAD 2>/dev/null || echo '?'). Load average {res['load_before']} before, {res['load_after']} after
(the machine is shared with other builds and tests: wall-clock times are noisy).

{res['images']} distinct ACIs (a manifest, ten 10 KiB files shared by all, three files of 4, 8 and
16 KiB of their own), {res['sum_aci_bytes']} bytes of tars in all, imported one
\`rkt --dir D --insecure-options=image fetch\` process each. Store after the imports: {res['store_bytes']}
bytes (\`du -sb\`).

| operation | milliseconds |
|---|---|
| import one image (process start to exit), mean | {i['mean']:.1f} |
| … median / p90 / max | {i['median']:.1f} / {i['p90']:.1f} / {i['max']:.1f} |
| … mean of the first 100 / the last 100 imports | {i['first_100_mean']:.1f} / {i['last_100_mean']:.1f} |
| all {res['images']} imports | {i['total']:.0f} |
| \`rkt image gc\` with {res['images']} images, none removable (grace 24h), mean of {len(noop)} | {statistics.mean(noop):.1f} (runs: {', '.join(f'{x:.1f}' for x in noop)}) |
| \`rkt image gc --grace-period=0s\` removing all {res['images']} | {res['gc_all_ms']:.0f} |

The full gc removed {res['removed']} images, {res['left']} left; store after it: {res['store_bytes_after_gc']} bytes,
of which the SQLite index file \`store.db\` {res['store_db_bytes_after_gc']} bytes (free pages in it, by
\`sqlite3 pragma freelist_count\`: {res['store_db_free_pages_after_gc']}; SQLite keeps freed pages in the
file unless it is vacuumed).
rkt's summary: {os.environ['SUMMARY'].strip()}
""")
PY
python3 benches/section.py gc "$OUT" <"$W/section.md"
echo "==> wrote the gc section of $OUT and $JSON"
cat "$W/section.md"
