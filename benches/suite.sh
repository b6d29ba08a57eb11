#!/usr/bin/env bash
# The store benchmark suite (issue 7): one command that builds the reproducible image sets and
# runs every store and lazy-rootfs measurement with shared settings, then draws the plots.
#
#   benches/store.sh  related images (a base and four derived trees sharing most files) and one
#                     big image of many small and a few big files: import/export vs tar -x,
#                     bytes on disk vs tars, unique files and casync
#   benches/lazy.sh   images of 10 MB .. 1 GB: cold start (lazy, rendered, tar -x + unshare +
#                     chroot), read throughput vs the host, page cache of 10 mounts/pods, memory
#   benches/gc.sh     1,000 small distinct images: import time per image, `rkt image gc` time
#   benches/plot.py   SVG plots (plain SVG, no plotting library) from the JSON those write
#
# How to run (as root, from anywhere in the repository; writes docs/benchmarks.md and
# docs/bench-*.json, docs/bench-*.svg):
#
#     bash benches/suite.sh
#     BENCH_SIZES="10 100" BENCH_RUNS=2 BENCH_BIG_MB=100 bash benches/suite.sh   # quicker
#
# Environment (passed on to the scripts; see each script's header for the rest):
#   BENCH_SIZES="10 100 1000"  image sizes (MB) for the cold-start tables and plots
#   BENCH_RUNS=3               timed repetitions
#   BENCH_BIG_MB=200           size of store.sh's big image
#   BENCH_GC_IMAGES=1000       images for the gc measurement
#   BENCH_ONLY="store lazy gc" run only some of the parts (the plots use whatever JSON exists);
#                              BENCH_ONLY=none only redraws the plots and the summary
#   BENCH_OUT=docs/benchmarks.md
#
# Needs free disk for the largest image about four times over (1 GB: ~5 GB); each script removes
# its scratch directory under /var/tmp when it ends, however it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

export BENCH_SIZES=${BENCH_SIZES:-10 100 1000}
export BENCH_RUNS=${BENCH_RUNS:-3}
export BENCH_BIG_MB=${BENCH_BIG_MB:-200}
export BENCH_GC_IMAGES=${BENCH_GC_IMAGES:-1000}
export BENCH_OUT=${BENCH_OUT:-docs/benchmarks.md}
ONLY=${BENCH_ONLY:-store lazy gc}
DOCS=$(dirname "$BENCH_OUT")
unset BENCH_DIR BENCH_JSON # each script makes (and removes) its own scratch dir; JSON goes to $DOCS

die() { echo "benches/suite.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root"
for t in cargo python3 tar; do command -v $t >/dev/null || die "$t not found"; done

TMP=$(mktemp -d /tmp/rkt-suite.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

MAX_MB=$(printf '%s\n' $BENCH_SIZES | sort -n | tail -1)
NEED_KB=$(((MAX_MB * 5 + 2048) * 1024))
FREE_KB=$(df -k --output=avail /var/tmp | tail -1)
[ "$FREE_KB" -ge "$NEED_KB" ] || die "about $((NEED_KB / 1048576)) GiB free needed under /var/tmp, $((FREE_KB / 1048576)) GiB there"

echo "==> cargo build --release (rkt, rkt-lazyfs)"
cargo build --release -p rkt -p rkt-lazyfs

STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
: >"$TMP/steps"
[ "$ONLY" != none ] || ONLY=
for part in $ONLY; do
    case $part in store | lazy | gc) ;; *) die "unknown part $part (store, lazy, gc)" ;; esac
    l0=$(cut -d' ' -f1-3 /proc/loadavg)
    t0=$(date +%s)
    echo "==> benches/$part.sh"
    env -u BENCH_ONLY bash "benches/$part.sh"   # BENCH_ONLY means something else to lazy.sh
    t1=$(date +%s)
    echo "| \`benches/$part.sh\` | $((t1 - t0)) | $l0 | $(cut -d' ' -f1-3 /proc/loadavg) |" >>"$TMP/steps"
done

echo "==> plots"
python3 benches/plot.py "$DOCS" >"$TMP/plots"
cat "$TMP/plots"

python3 - "$DOCS" "$TMP/plots" "$TMP/steps" >"$TMP/section.md" <<PY
import json, os, sys
docs, plots, steps = sys.argv[1], open(sys.argv[2]).read().split(), open(sys.argv[3]).read()
load = lambda n: json.load(open(os.path.join(docs, n))) if os.path.exists(os.path.join(docs, n)) else None
lazy, store, gc = load("bench-lazy.json"), load("bench-store.json"), load("bench-gc.json")
print("""## Store benchmark suite: summary and plots

Written by \`bash benches/suite.sh\` (started $STARTED, settings: BENCH_SIZES="$BENCH_SIZES",
BENCH_RUNS=$BENCH_RUNS, BENCH_BIG_MB=$BENCH_BIG_MB, BENCH_GC_IMAGES=$BENCH_GC_IMAGES) on $(nproc) CPUs,
$(uname -r), rkt at $(git rev-parse --short HEAD 2>/dev/null || echo '?'). The machine is shared with other builds
and test runs; the load average (1, 5, 15 min) before and after each part is below, and on
$(nproc) CPUs a load above about 2 inflates every wall-clock time here. The sections below
hold the tables; the numbers in the plots and this summary come from docs/bench-*.json, which
the same scripts wrote in the same run.

| part | seconds | load before | load after |
|---|---|---|---|
""" + (steps.rstrip() or "| (none: plots and summary redrawn from the JSON of an earlier run) | | | |"))
rows = []
def target(what, measured, goal, ok):
    rows.append(f"| {what} | {measured} | {goal} | {'—' if ok is None else 'yes' if ok else '**no**'} |")
if lazy and lazy.get("cold_start_ms"):
    c = sorted(lazy["cold_start_ms"], key=lambda r: r["mb"])
    lo, hi = c[0], c[-1]
    if hi["mb"] > lo["mb"]:
        r = hi["lazy"] / lo["lazy"]
        target(f"lazy cold start, {hi['mb']} MB / {lo['mb']} MB", f"{r:.2f}× ({hi['lazy']:.0f} / {lo['lazy']:.0f} ms)",
               "≤ 1.5× (at 1 GB vs 10 MB)", r <= 1.5)
    rd = lazy["read_mbps"]
    for k, what in (("seq", "sequential"), ("rand", "random 4 KiB")):
        r = rd[f"lazy_{k}_warm"] / rd[f"host_{k}_warm"]
        target(f"{what} read, warm, lazy mount / host", f"{r * 100:.0f} %", "≥ 95 %", r >= 0.95)
        if f"pod_{k}_warm" in rd:
            r = rd[f"pod_{k}_warm"] / rd[f"host_{k}_warm"]
            target(f"{what} read, warm, lazy pod (overlayfs over the lazy mount) / host", f"{r * 100:.0f} %", "≥ 95 %", r >= 0.95)
            r = rd[f"overlay_host_{k}_warm"] / rd[f"host_{k}_warm"]
            target(f"{what} read, warm, overlayfs alone over the host file / host", f"{r * 100:.0f} %", "(reference: what any overlay rootfs costs)", None)
    r = rd["lazy_first"] / rd["tar_first"]
    target("first read of a file, lazy / tar -x", f"{r * 100:.0f} % ({rd['lazy_first']} vs {rd['tar_first']} MB/s)", "≥ 100 %", r >= 1)
    pc = lazy["page_cache_mb"]
    for k, what in (("lazy_mounts", "lazy mounts"), ("pods", "lazy pods")):
        r = pc[k] / pc["shared_mb"]
        target(f"page cache of {pc['mounts']} {what} reading the same {pc['shared_mb']} MB", f"{r:.2f}× one copy", "≤ 1.1×", r <= 1.1)
    target("memory per running pod (supervisor + FUSE server, PSS)", f"{lazy['pod_pss_mean_mib']} MiB", "< 5 MiB", lazy["pod_pss_mean_mib"] < 5)
if store:
    b = store["bytes"]
    r = b["rkt_store"] / b["unique_files"]
    target("rkt store / unique files of 5 related images", f"{r:.3f}", "< 1", r < 1)
    if b.get("casync"):
        r = b["rkt_store"] / b["casync"]
        target("rkt store / casync store of the same trees", f"{r:.3f}", "(not a stated target)", None)
    i = store["import_s"]
    if i.get("rkt_warm_aci") and i.get("tar_warm_aci"):
        r = i["rkt_warm_aci"] / i["tar_warm_aci"]
        target("import time of the big .aci, rkt fetch / tar -x (warm)", f"{r:.2f}×", "(not a stated target)", None)
if gc:
    noop = sum(gc["gc_noop_ms"]) / len(gc["gc_noop_ms"])
    target(f"\`rkt image gc\` with {gc['images']} images, nothing removable", f"{noop:.0f} ms", "(no target stated)", None)
    target(f"\`rkt image gc\` removing all {gc['images']} images", f"{gc['gc_all_ms']:.0f} ms ({gc['removed']} removed)",
           "(no target stated)", None)
if rows:
    print("\n### Targets of issue 7\n\n| measurement | measured | target | met |\n|---|---|---|---|")
    print("\n".join(rows))
print("\n### Plots\n")
titles = {"bench-cold-start.svg": "Cold start to first instruction vs image size (rootfs only; lazy, rendered, tar -x + unshare + chroot)",
          "bench-pod-start.svg": "\`rkt run\` to the app's first instruction vs image size",
          "bench-bytes.svg": "Bytes on disk of five related images: tars, unique files, rkt store, casync",
          "bench-gc.svg": "Import and \`rkt image gc\` with many images"}
for p in plots:
    n = os.path.basename(p)
    print(f"{titles.get(n, n)}:\n\n![{titles.get(n, n)}]({n})\n")
PY
python3 benches/section.py suite "$BENCH_OUT" <"$TMP/section.md"
echo "==> wrote the suite section of $BENCH_OUT"
cat "$TMP/section.md"
