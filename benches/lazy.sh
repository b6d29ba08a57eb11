#!/usr/bin/env bash
# Lazy rootfs benchmark: cold start vs image size for the three ways to get a rootfs, read
# throughput through the lazy mount vs the host, page cache shared by several mounts, and the
# memory of the FUSE server. Writes the "Lazy rootfs" section of docs/benchmarks.md.
#
# How to run (as root, from anywhere in the repository):
#
#     bash benches/lazy.sh
#
# Needs: cargo, python3, GNU tar, unshare, chroot, dd; /dev/fuse and Linux 6.9+ for passthrough.
# Environment:
#   BENCH_SIZES="10 100 1000"  image sizes in MB for the cold-start tables
#   BENCH_POD_RUNS=3           repetitions per pod start measurement (the median is reported)
#   BENCH_RUNS=3               repetitions per cold-start measurement (the mean is reported)
#   BENCH_READ_MB=256          size of the file for the throughput table
#   BENCH_READ_REPS=11         samples per warm throughput row (the median is reported)
#   BENCH_ONLY=read            run only the throughput measurement and print it (docs untouched)
#   BENCH_MOUNTS=10            lazy mounts reading the same file for the page-cache table
#   BENCH_SHARED_MB=100        size of that file
#   BENCH_SHARED_FILES=10000   small files in that image besides (the servers' view of it)
#   BENCH_DIR=/var/tmp/…       work directory (default: a new mktemp dir, removed at the end)
#   BENCH_OUT=docs/benchmarks.md
#   BENCH_JSON=DIR-OF-OUT/bench-lazy.json   machine-readable results (benches/plot.py reads them)
#
# Every cold measurement drops the page cache first (echo 3 > drop_caches) and, for lazy, empties
# the object cache, so "cold" means nothing of the image is in memory or materialised.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SIZES=${BENCH_SIZES:-10 100 1000}
RUNS=${BENCH_RUNS:-3}
READ_MB=${BENCH_READ_MB:-256}
MOUNTS=${BENCH_MOUNTS:-10}
SHARED_MB=${BENCH_SHARED_MB:-100}
OUT=${BENCH_OUT:-docs/benchmarks.md}
JSON=${BENCH_JSON:-$(dirname "$OUT")/bench-lazy.json}
KEEP=${BENCH_DIR:+1}
W=${BENCH_DIR:-$(mktemp -d /var/tmp/rkt-lazy-bench.XXXXXX)}
mkdir -p "$W"

die() { echo "benches/lazy.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root"
for t in cargo python3 tar unshare chroot dd fincore; do command -v $t >/dev/null || die "$t not found"; done
[ -x /bin/busybox ] || die "/bin/busybox missing (busybox-static)"

SERVERS=()
PODPIDS=()
cleanup() {
    for p in "${SERVERS[@]}" "${PODPIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -z "${RKT:-}" ] || "$RKT" --dir "$W/pstore" gc --grace-period=0s >/dev/null 2>&1 || true
    for m in $(awk '{print $5}' /proc/self/mountinfo | grep "^$W" | sort -r); do umount -l "$m" || true; done
    [ -n "$KEEP" ] || rm -rf "$W"
}
trap cleanup EXIT

echo "==> cargo build --release"
cargo build --release -p rkt -p rkt-lazyfs
RKT=$ROOT/target/release/rkt
SERVE=$ROOT/target/release/rkt-lazyfs-serve

CAN_DROP=0
if (sync && echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then CAN_DROP=1; fi
drop() { if [ $CAN_DROP = 1 ]; then sync; echo 3 >/proc/sys/vm/drop_caches; fi; }
now() { date +%s%N; }
ms() { python3 -c "print(f'{($2-$1)/1e6:.1f}')" "$@"; }
median() { python3 -c "import statistics,sys; print(f'{statistics.median(map(float, sys.argv[1:])):.0f}')" "$@"; }

# An image of about SIZE MB: busybox plus 1 MiB random files, optionally one big file and
# SMALL more small files (256 B to 4 KiB, a hundred per directory, as in a distro's tree).
make_image() { # name size_mb [big_mb [small]]
    python3 - "$W/layout-$1" "$1" "$2" "${3:-0}" "${4:-0}" <<'PY'
import json, os, random, shutil, sys
out, name, size_mb, big_mb, small = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
r = os.path.join(out, "rootfs")
os.makedirs(os.path.join(r, "bin"), exist_ok=True)
shutil.copy("/bin/busybox", os.path.join(r, "bin/busybox"))
os.chmod(os.path.join(r, "bin/busybox"), 0o755)
for l in ["sh", "true", "cat", "sleep"]:
    os.symlink("busybox", os.path.join(r, "bin", l))
rng = random.Random(size_mb)
os.makedirs(os.path.join(r, "data"), exist_ok=True)
for i in range(max(0, size_mb - big_mb - 1)):
    with open(os.path.join(r, "data", f"f{i:05}"), "wb") as f:
        f.write(rng.randbytes(1 << 20))
for i in range(small):
    d = os.path.join(r, "usr/share/small", f"d{i // 100:03}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"s{i:05}"), "wb") as f:
        f.write(rng.randbytes(rng.randint(256, 4096)))
if big_mb:
    with open(os.path.join(r, "big.bin"), "wb") as f:
        for _ in range(big_mb):
            f.write(rng.randbytes(1 << 20))
with open(os.path.join(out, "manifest"), "w") as f:
    json.dump({"acKind": "ImageManifest", "acVersion": "0.8.11", "name": f"bench/{name}",
               "labels": [{"name": "os", "value": "linux"}, {"name": "arch", "value": "amd64"}],
               "app": {"exec": ["/bin/true"], "user": "0", "group": "0"}}, f)
PY
    tar -C "$W/layout-$1" --mtime=@1500000000 -cf "$W/$1.aci" manifest rootfs
}

import_image() { # store name -> image id
    "$RKT" --dir "$1" --insecure-options=image fetch --full "$W/$2.aci"
}

# Start a lazy server and wait until it has mounted; sets SERVER_PID and PASSTHROUGH.
serve() { # store image mnt
    mkdir -p "$3"
    local out=$W/serve.$RANDOM$RANDOM.out
    "$SERVE" "$1" "$2" "$3" >"$out" 2>>"$W/serve.log" &
    SERVER_PID=$!
    SERVERS+=("$SERVER_PID")
    until grep -q '^mounted' "$out" 2>/dev/null; do
        kill -0 "$SERVER_PID" 2>/dev/null || die "server for $3 died (see $W/serve.log)"
        sleep 0.002
    done
    PASSTHROUGH=$(sed -n 's/^mounted passthrough=//p' "$out")
}
stop() { kill -TERM "$1"; wait "$1" 2>/dev/null || true; }

S=$W/store
mkdir -p "$S"

# ------------------------------------------------------------------------------------------
ONLY=${BENCH_ONLY:-}
[ -z "$ONLY" ] || [ "$ONLY" = read ] || die "BENCH_ONLY=$ONLY: only 'read' is known"
[ "$ONLY" != read ] || SIZES=""
echo "==> cold start vs image size: $SIZES MB"
COLD_ROWS=""
: >"$W/cold.jsonl"
for mb in $SIZES; do
    make_image "s$mb" "$mb"
    ID=$(import_image "$S" "s$mb")
    lazy=0; rendered=0; tarx=0
    for _ in $(seq "$RUNS"); do
        rm -rf "$S/objects" "$S/access" "$W/mnt" "$W/render" "$W/tarx"
        drop
        t0=$(now)
        serve "$S" "$ID" "$W/mnt"
        chroot "$W/mnt" /bin/true
        t1=$(now)
        stop "$SERVER_PID"
        lazy=$(python3 -c "print($lazy + ($t1-$t0)/1e6)")

        drop
        t0=$(now)
        "$RKT" --dir "$S" image render --rootfs-only "$ID" "$W/render" >/dev/null
        chroot "$W/render" /bin/true
        t1=$(now)
        rendered=$(python3 -c "print($rendered + ($t1-$t0)/1e6)")

        drop
        t0=$(now)
        mkdir -p "$W/tarx"
        tar -C "$W/tarx" -xf "$W/s$mb.aci"
        unshare -m chroot "$W/tarx/rootfs" /bin/true
        t1=$(now)
        tarx=$(python3 -c "print($tarx + ($t1-$t0)/1e6)")
    done
    row=$(python3 -c "r=$RUNS; print(f'| {$mb} MB | {$lazy/r:.0f} ms | {$rendered/r:.0f} ms | {$tarx/r:.0f} ms |')")
    python3 -c "import json; r=$RUNS; print(json.dumps({'mb': $mb, 'lazy': $lazy/r, 'rendered': $rendered/r, 'tar': $tarx/r}))" >>"$W/cold.jsonl"
    echo "$row"
    COLD_ROWS+="$row"$'\n'
    rm -rf "$W/render" "$W/tarx" "$W/layout-s$mb" "$W/s$mb.aci"
done

# ------------------------------------------------------------------------------------------
echo "==> read throughput: a $READ_MB MB file, lazy mount vs host"
make_image read $((READ_MB + 2)) "$READ_MB"
RID=$(import_image "$S" read)
HOSTF=$W/layout-read/rootfs/big.bin
rm -rf "$S/objects"
dd_mbps() { dd if="$1" of=/dev/null bs=1M 2>&1 | python3 -c "
import re,sys
t=sys.stdin.read(); m=re.search(r'copied, ([0-9.e+-]+) s', t)
print(f'{$READ_MB*1048576/float(m.group(1))/1e6:.0f}')"; }
# Random aligned reads of BS bytes (n of them: about 400 MB) with pread, or copied out of an
# mmap of the whole file (MODE=mmap; the faults are timed too).
rand_mbps() { python3 - "$1" "${BS:-4096}" "${MODE:-pread}" <<'PY'
import mmap, os, random, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY); size = os.fstat(fd).st_size
bs, mode = int(sys.argv[2]), sys.argv[3]
rng = random.Random(1); n = (400 << 20) // bs
offs = [rng.randrange(0, size - bs) & ~4095 for _ in range(n)]
t = time.perf_counter()
if mode == "mmap":
    m = mmap.mmap(fd, size, prot=mmap.PROT_READ)
    for o in offs:
        m[o:o + bs]
else:
    for o in offs:
        os.pread(fd, bs, o)
print(f"{n * bs / (time.perf_counter() - t) / 1e6:.0f}")
PY
}
rand64k_mbps() { BS=65536 rand_mbps "$1"; }
mmap_mbps() { MODE=mmap rand_mbps "$1"; }
drop
serve "$S" "$RID" "$W/rmnt"
t0=$(now); cat "$W/rmnt/big.bin" >/dev/null; t1=$(now)
LAZY_FIRST=$(python3 -c "print(f'{$READ_MB*1048576/(($t1-$t0)/1e9)/1e6:.0f}')")
drop
mkdir -p "$W/tx"
t0=$(now); tar -C "$W/tx" -xf "$W/read.aci" rootfs/big.bin; cat "$W/tx/rootfs/big.bin" >/dev/null; t1=$(now)
TAR_FIRST=$(python3 -c "print(f'{$READ_MB*1048576/(($t1-$t0)/1e9)/1e6:.0f}')")
rm -rf "$W/tx"
# Warm reads, four ways to the same bytes (the table's columns): the host file; the host file
# under overlayfs, which every overlay rootfs adds (rendered pods, rkt's and podman's); the lazy
# mount (FUSE passthrough to the object); the lazy mount under overlayfs, as a lazy pod reads it
# (`rkt run --rootfs=lazy`: lowerdir the lazy mount, an upper and work dir of its own, volatile).
mkdir -p "$W"/ovh/{u,w,m} "$W"/ovl/{u,w,m}
mount -t overlay overlay -o "lowerdir=$(dirname "$HOSTF"),upperdir=$W/ovh/u,workdir=$W/ovh/w,volatile" "$W/ovh/m"
mount -t overlay overlay -o "lowerdir=$W/rmnt,upperdir=$W/ovl/u,workdir=$W/ovl/w,volatile" "$W/ovl/m"
READ_PATHS=("$HOSTF" "$W/ovh/m/big.bin" "$W/rmnt/big.bin" "$W/ovl/m/big.bin")
RLOBJ=$(find "$S/objects" -type f -size "$((READ_MB * 1024))k" -newer "$W/read.aci" | head -1)
[ -n "$RLOBJ" ] || die "no materialised object of $READ_MB MB in $S/objects"
# Both files' pages come from sequential reads (readahead) after the drop above, never from
# the writes that made them: how a file's pages came into the cache moves small random reads by
# itself (the lazy mount measured 105 % of a host file whose pages its writer had left, and 88 %
# once both were dropped and read again). One dd of a cached 256 MB file lasts about 20 ms: on a shared machine a single sample is
# mostly scheduling noise, and other work dropping the page cache turns a "warm" read into a
# cold one (both seen: single samples put the lazy mount anywhere between 27 % and 150 % of the
# host). So: READ_REPS samples per row, the four paths in rotating order, each sample taken only
# while both files are entirely in the page cache before and after it (fincore), and the median
# reported.
whole_cached() { # every page of the host file and of the lazy file's object is in the page cache
    fincore --bytes --noheadings --output RES "$HOSTF" "$RLOBJ" \
        | awk -v want=$((2 * READ_MB * 1048576)) '{s+=$1} END {exit s != want}'
}
warm_set() { # fn rotation -> one sample of fn per READ_PATHS entry, in that order
    local tries k i n=${#READ_PATHS[@]}
    local -a got
    for tries in 1 2 3 4 5; do
        cat "$HOSTF" "$W/rmnt/big.bin" >/dev/null
        whole_cached || continue
        for ((k = 0; k < n; k++)); do
            i=$(((k + $2) % n))
            got[i]=$($1 "${READ_PATHS[i]}")
        done
        whole_cached && { echo "${got[*]}"; return; }
    done
    die "the page cache kept being dropped during the warm reads"
}
READ_REPS=${BENCH_READ_REPS:-11}
ROWS=(seq rand r64 mmap)
declare -A FN=([seq]=dd_mbps [rand]=rand_mbps [r64]=rand64k_mbps [mmap]=mmap_mbps)
declare -A SAMPLES=()
for rep in $(seq "$READ_REPS"); do
    for row in "${ROWS[@]}"; do
        read -r -a got < <(warm_set "${FN[$row]}" "$rep")
        for k in 0 1 2 3; do SAMPLES[$row,$k]+="${got[k]} "; done
    done
done
for row in "${ROWS[@]}"; do
    echo "warm $row, MB/s per sample: host ${SAMPLES[$row,0]}; overlay over host ${SAMPLES[$row,1]}; lazy ${SAMPLES[$row,2]}; lazy pod ${SAMPLES[$row,3]}"
done
med() { median ${SAMPLES[$1,$2]}; } # row column -> median MB/s
# "MB/s · median ratio to the host file (ratio of the best samples: the least disturbed run of
# each, on a shared machine)"
cell() { # row column
    python3 -c "import statistics, sys
h, x = [list(map(float, a.split())) for a in sys.argv[1:3]]
m = statistics.median(x)
print(f'{m:.0f} MB/s · {100 * m / statistics.median(h):.0f} % ({100 * max(x) / max(h):.0f} %)')" \
        "${SAMPLES[$1,0]}" "${SAMPLES[$1,$2]}"
}
HOST_SEQ=$(med seq 0); LAZY_SEQ=$(med seq 2); POD_SEQ=$(med seq 3); OVH_SEQ=$(med seq 1)
HOST_RAND=$(med rand 0); LAZY_RAND=$(med rand 2); POD_RAND=$(med rand 3); OVH_RAND=$(med rand 1)
READ_ROWS=""
for row in "${ROWS[@]}"; do
    case $row in
        seq) what="sequential, warm (dd bs=1M)" ;;
        rand) what="random 4 KiB preads, warm (python)" ;;
        r64) what="random 64 KiB preads, warm (python)" ;;
        mmap) what="random 4 KiB copies out of an mmap, warm (python, faults included)" ;;
    esac
    READ_ROWS+="| $what | $(med "$row" 0) MB/s | $(cell "$row" 1) | $(cell "$row" 2) | $(cell "$row" 3) |"$'\n'
done
COLD_H=(); COLD_L=()
for _ in 1 2 3; do
    drop; COLD_H+=("$(dd_mbps "$HOSTF")"); drop; COLD_L+=("$(dd_mbps "$W/rmnt/big.bin")")
done
HOST_SEQ_COLD=$(median "${COLD_H[@]}"); LAZY_SEQ_COLD=$(median "${COLD_L[@]}")
RPASS=$PASSTHROUGH
umount "$W/ovl/m" "$W/ovh/m"
stop "$SERVER_PID"
if [ "$ONLY" = read ]; then
    echo "passthrough=$RPASS (MB/s · % of the host file, median (best samples))"
    echo "| | host file | overlayfs over the host file | lazy mount | lazy pod |"
    printf '%s' "$READ_ROWS"
    echo "sequential cold: lazy $LAZY_SEQ_COLD vs host $HOST_SEQ_COLD"
    echo "first read: $LAZY_FIRST vs tar -x $TAR_FIRST"
    exit 0
fi

# ------------------------------------------------------------------------------------------
echo "==> page cache and server memory: $MOUNTS mounts reading the same $SHARED_MB MB"
# Thousands of small files besides: each server holds the image's whole view (an entry per
# path) for as long as its pod runs, so memory per pod is measured on a distro-sized tree.
SHARED_FILES=${BENCH_SHARED_FILES:-10000}
make_image shared $((SHARED_MB + 2)) "$SHARED_MB" "$SHARED_FILES"
SID=$(import_image "$S" shared)
rm -rf "$S/objects"
drop
cached() { awk '/^Cached:/ {print $2}' /proc/meminfo; }
# KiB of the files under a directory that are in the page cache: the store's packs, objects and
# index. Unlike the system-wide Cached, other work on the machine does not move it. -xdev: never
# walk into a lazy mount (opening its files would materialise them).
store_cached() { # dir [find tests]
    local dir=$1; shift
    [ -d "$dir" ] || { echo 0; return; }
    find "$dir" -xdev -type f "$@" -print0 | xargs -0 -r fincore --bytes --noheadings --output RES 2>/dev/null \
        | awk '{s+=$1} END {print int(s/1024)}'
}
sys_before=$(cached)
before=$(store_cached "$S")
PIDS=()
for i in $(seq "$MOUNTS"); do
    serve "$S" "$SID" "$W/pm$i"
    PIDS+=("$SERVER_PID")
done
cat "$W/pm1/big.bin" >/dev/null
first=$(store_cached "$S")
for i in $(seq 2 "$MOUNTS"); do cat "$W/pm$i/big.bin" >/dev/null; done
after=$(store_cached "$S")
SYS_MB=$(python3 -c "print(f'{($(cached)-$sys_before)/1024:.0f}')")
RSS=$(for p in "${PIDS[@]}"; do awk '/^VmRSS:/ {print $2}' "/proc/$p/status"; done | sort -n | tail -1)
PSS=$(for p in "${PIDS[@]}"; do awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup"; done | sort -n | tail -1)
for p in "${PIDS[@]}"; do stop "$p"; done
CACHE_MB=$(python3 -c "print(f'{($after-$before)/1024:.0f}')")
FIRST_MB=$(python3 -c "print(f'{($first-$before)/1024:.0f}')")
REST_MB=$(python3 -c "print(f'{($after-$first)/1024:.0f}')")
RATIO=$(python3 -c "print(f'{($after-$before)/1024/$SHARED_MB:.2f}')")

# ------------------------------------------------------------------------------------------
# Pods through `rkt run`: the same images, started as pods with each rootfs mode.
P=$W/pstore
POD_RUNS=${BENCH_POD_RUNS:-3}
pod_gc() { "$RKT" --dir "$P" gc --grace-period=0s >/dev/null 2>&1 || true; }
# ms from launching `rkt run` to the app's exec (the "first app exec" debug event).
pod_first_ms() { # mode image
    local log=$W/podrun.log t0
    t0=$(now)
    "$RKT" --dir "$P" --debug run --rootfs="$1" "$2" </dev/null >/dev/null 2>"$log" \
        || die "rkt run --rootfs=$1 $2 failed: $(tail -3 "$log")"
    python3 - "$t0" "$log" <<'PY'
import datetime, sys
t0 = int(sys.argv[1]) / 1e9
for line in open(sys.argv[2], errors="replace"):
    if "first app exec" in line:
        ts = datetime.datetime.strptime(line.split()[0], "%Y-%m-%dT%H:%M:%S.%fZ")
        t = ts.replace(tzinfo=datetime.timezone.utc).timestamp()
        print(f"{(t - t0) * 1000:.1f}")
        break
else:
    sys.exit("benches/lazy.sh: no 'first app exec' event in rkt run --debug")
PY
}
pod_cold() { # mode image: nothing materialised, rendered or cached
    local xs=()
    for _ in $(seq "$POD_RUNS"); do
        pod_gc; rm -rf "$P/objects" "$P/trees" "$P/access"; drop
        xs+=("$(pod_first_ms "$1" "$2")")
    done
    median "${xs[@]}"
}
pod_warm() { # mode image: after a previous start (objects, tree, page cache kept)
    local xs=()
    pod_first_ms "$1" "$2" >/dev/null
    for _ in $(seq "$POD_RUNS"); do pod_gc; xs+=("$(pod_first_ms "$1" "$2")"); done
    median "${xs[@]}"
}

echo "==> pods: rkt run to the app's first instruction vs image size: $SIZES MB"
POD_ROWS=""
: >"$W/pods.jsonl"
for mb in $SIZES; do
    make_image "p$mb" "$mb"
    import_image "$P" "p$mb" >/dev/null
    IMG=bench/p$mb
    lc=$(pod_cold lazy "$IMG"); lw=$(pod_warm lazy "$IMG")
    rc=$(pod_cold rendered "$IMG"); rw=$(pod_warm rendered "$IMG")
    # The baseline: extract the whole image, then a chroot in new namespaces.
    xs=()
    for _ in $(seq "$POD_RUNS"); do
        rm -rf "$W/ptar"; mkdir -p "$W/ptar"; drop
        t0=$(now)
        tar -C "$W/ptar" -xf "$W/p$mb.aci"
        unshare --mount --pid --uts --ipc --fork chroot "$W/ptar/rootfs" /bin/true
        t1=$(now)
        xs+=("$(ms "$t0" "$t1")")
    done
    tx=$(median "${xs[@]}")
    row="| $mb MB | $lc ms | $lw ms | $rc ms | $rw ms | $tx ms |"
    echo "{\"mb\": $mb, \"lazy_cold\": $lc, \"lazy_warm\": $lw, \"rendered_cold\": $rc, \"rendered_warm\": $rw, \"tar\": $tx}" >>"$W/pods.jsonl"
    echo "$row"
    POD_ROWS+="$row"$'\n'
    pod_gc
    "$RKT" --dir "$P" image rm "$IMG" >/dev/null 2>&1 || true
    rm -rf "$W/ptar" "$W/layout-p$mb" "$W/p$mb.aci" "$P/objects" "$P/trees"
done

# ------------------------------------------------------------------------------------------
echo "==> pods: $MOUNTS lazy pods reading the same $SHARED_MB MB: page cache and memory"
import_image "$P" shared >/dev/null
pod_gc; rm -rf "$P/objects" "$P/trees" "$P/access"
drop
done_count() { find "$P/pods/run" -path '*/upper/done' 2>/dev/null | wc -l; }
start_pod() {
    "$RKT" --dir "$P" run --rootfs=lazy bench/shared --exec /bin/sh -- -c \
        'cat /big.bin >/dev/null && : >/done && exec sleep 600' --- \
        </dev/null >/dev/null 2>>"$W/pods.log" &
    PODPIDS+=($!)
}
wait_done() { # n
    local end=$((SECONDS + 300))
    until [ "$(done_count)" -ge "$1" ]; do
        [ $SECONDS -lt $end ] || die "pods did not read the file in time (see $W/pods.log)"
        sleep 0.05
    done
}
psys_before=$(cached)
pbefore=$(store_cached "$P")
pbefore_db=$(store_cached "$P" -name 'store.db*')
pbefore_obj=$(store_cached "$P/objects")
start_pod; wait_done 1
pfirst=$(store_cached "$P")
PFIRST_DB_MB=$(python3 -c "print(f'{($(store_cached "$P" -name 'store.db*')-$pbefore_db)/1024:.1f}')")
PFIRST_OBJ_MB=$(python3 -c "print(f'{($(store_cached "$P/objects")-$pbefore_obj)/1024:.1f}')")
for i in $(seq 2 "$MOUNTS"); do start_pod; done
wait_done "$MOUNTS"
pafter=$(store_cached "$P")
PSYS_MB=$(python3 -c "print(f'{($(cached)-$psys_before)/1024:.0f}')")
POD_RSS=$(for p in "${PODPIDS[@]}"; do awk '/^VmRSS:/ {print $2}' "/proc/$p/status"; done | sort -n | tail -1)
POD_PSS=$(for p in "${PODPIDS[@]}"; do awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup"; done | sort -n | tail -1)
POD_PSS_SUM=$(for p in "${PODPIDS[@]}"; do awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup"; done | awk "{s+=\$1} END {print s}")
for p in "${PODPIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for p in "${PODPIDS[@]}"; do wait "$p" 2>/dev/null || true; done
PODPIDS=()
pod_gc
PCACHE_MB=$(python3 -c "print(f'{($pafter-$pbefore)/1024:.0f}')")
PFIRST_MB=$(python3 -c "print(f'{($pfirst-$pbefore)/1024:.0f}')")
PREST_MB=$(python3 -c "print(f'{($pafter-$pfirst)/1024:.0f}')")
PRATIO=$(python3 -c "print(f'{($pafter-$pbefore)/1024/$SHARED_MB:.2f}')")
POD_PSS_MEAN=$(python3 -c "print(f'{$POD_PSS_SUM/$MOUNTS/1024:.1f}')")

# ------------------------------------------------------------------------------------------
KERNEL=$(uname -r)
CPU=$(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/^ //')
{
cat <<EOF
## Lazy rootfs

Written by \`bash benches/lazy.sh\` on $(date -u +%Y-%m-%d), kernel $KERNEL, $CPU, $(nproc) cores
(shared with other work: treat small differences as noise). Page cache dropped before every
cold measurement$( [ $CAN_DROP = 1 ] || echo " — **could not drop caches here: numbers are warm**").
FUSE passthrough: $RPASS.

### Cold start to first instruction vs image size

Time from nothing in memory to \`/bin/true\` exiting in a chroot of the image's rootfs, mean of
$RUNS runs. *lazy*: start \`rkt-lazyfs-serve\` (open the store, load the image's merged view
from SQLite, mount FUSE) + \`chroot MNT /bin/true\` (materialises \`/bin/busybox\` only).
*rendered*: \`rkt image render --rootfs-only\` (every file written) + chroot. *tar*: \`tar -xf\`
of the uncompressed ACI + \`unshare -m chroot\`. Images are busybox plus 1 MiB random files.

| image | lazy | rendered | tar -x + unshare + chroot |
|---|---|---|---|
${COLD_ROWS}
Target: lazy at 1 GB within 1.5× lazy at 10 MB.

### Read throughput of a $READ_MB MB file

Warm rows: median of $READ_REPS samples each, the four ways in rotating order, every sample
taken while both whole files were in the page cache before and after it (\`fincore\`; other work
on the machine drops caches), both files' pages brought in by a sequential read. Each cell:
MB/s · median / the host file's median (in parentheses: best sample / the host's best sample,
the least disturbed runs). Cold row: median of 3, page cache dropped before each.

| | host file | overlayfs over the host file | lazy mount (FUSE passthrough) | lazy pod (overlayfs over the lazy mount) |
|---|---|---|---|---|
${READ_ROWS}| sequential, cold page cache (object already materialised) | $HOST_SEQ_COLD MB/s | | $LAZY_SEQ_COLD MB/s | |
| first read ever (lazy: materialise from packs + read; host: extract from the ACI with tar -x + read) | $TAR_FIRST MB/s (tar -x) | | $LAZY_FIRST MB/s | |

Target: at least 95 % of native once a file is open; the first read at least as fast as
\`tar -x\` delivers the file. No read reaches the FUSE server (passthrough). What is left is the
kernel's cost per read *call* of each stacked filesystem, visible on small reads: FUSE
passthrough (\`fuse_file_read_iter\` → the object) and overlayfs (\`ovl_read_iter\` → the lower
file) each switch credentials and check permissions and fsnotify a second time. overlayfs alone
over the host file — what every overlay rootfs pays: rendered pods, rkt's own, podman's —
costs as much as the lazy mount ($OVH_RAND vs $LAZY_RAND MB/s for 4 KiB preads), and a lazy pod
pays both ($POD_RAND MB/s). No stacked filesystem on this kernel reaches 95 % of the host
file for 4 KiB reads (docs/lazy-rootfs.md, "Read throughput").

### Page cache and memory

$MOUNTS lazy mounts of one image (busybox, a $SHARED_MB MB file and $SHARED_FILES small files), each
served by its own \`rkt-lazyfs-serve\` process, each reading the same $SHARED_MB MB file once after
a cache drop. The store's files (packs, objects,
index; measured with \`fincore\`) grew in the page cache by **$CACHE_MB MB** in all ($RATIO × one
copy; target ≤ 1.1×): **$FIRST_MB MB** for the first mount, which materialises the object (the
pack pages its chunks were read from are dropped again), and **$REST_MB MB** for the other
$((MOUNTS - 1)) mounts together, because their passthrough reads all hit the one object in
\`objects/\`. (The system-wide \`Cached\` grew by $SYS_MB MB meanwhile, which includes the
servers' binary and whatever else the shared machine was doing.) Largest FUSE server:
RSS $RSS KiB, of which PSS $PSS KiB (RSS counts shared library pages; target < 5 MiB per pod).

### Pods: \`rkt run\` to the app's first instruction

The same kind of images (busybox plus 1 MiB random files) started as pods running \`/bin/true\`
(host network), median of $POD_RUNS runs: time from launching \`rkt run --rootfs=MODE\` to the
app supervisor's \`execve\` (the \`first app exec\` event of \`--debug\`). *cold*: page cache
dropped, no object materialised and no rendered tree (the image's first start on this host);
*warm*: the image was started before (objects, rendered tree, access log and page cache kept).
The baseline extracts the whole ACI with \`tar -x\`, then runs \`/bin/true\` with \`unshare
--mount --pid --uts --ipc --fork chroot\` (to exit, so it includes a little more).

| image | lazy, cold | lazy, warm | rendered, cold | rendered, warm | tar -x + unshare + chroot |
|---|---|---|---|---|---|
${POD_ROWS}
Target: lazy at 1 GB within 1.5× lazy at 10 MB.

### Pods: page cache and memory

$MOUNTS pods of that image started with \`rkt run --rootfs=lazy\` (one after the first had read the
file, then the other $((MOUNTS - 1)) together), each reading the same $SHARED_MB MB file once, after
a cache drop. The store's files (\`fincore\`, as above) grew in the page cache by
**$PCACHE_MB MB** ($PRATIO × one copy; target ≤ 1.1×): **$PFIRST_MB MB** while the first pod
started and read it — $PFIRST_OBJ_MB MB of objects (the file and busybox, materialised; the pack
pages they were read from are dropped with \`posix_fadvise(DONTNEED)\`) and $PFIRST_DB_MB MB of the
index (\`store.db\`: the image's entries, read to load the view),
both shared by every later pod — and **$PREST_MB MB** for the other $((MOUNTS - 1)) pods together
(their passthrough reads hit the one object). System-wide \`Cached\` grew by $PSYS_MB MB (the \`rkt\`
binary, the pods' directories, and other work on the shared machine).
Each pod's supervisor is one process (\`rkt run\`: pod lock, signal forwarding, metadata
service and the FUSE server threads, which hold the image's view: $SHARED_FILES files and more): PSS
**$POD_PSS_MEAN MiB** on average (largest PSS $POD_PSS KiB, largest RSS $POD_RSS KiB — RSS counts
the shared pages of the \`rkt\` binary and libraries in every pod); target < 5 MiB per pod.

Load average when done: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores. The casync comparison is
in the store section (\`benches/store.sh\`), \`rkt image gc\` with 1,000 images in the gc section
(\`benches/gc.sh\`); \`benches/suite.sh\` runs all three and plots them.
EOF
} >"$W/section.md"
python3 benches/section.py lazy "$OUT" <"$W/section.md"
python3 - "$W" "$JSON" <<PY
import json, sys
w, path = sys.argv[1], sys.argv[2]
rows = lambda f: [json.loads(l) for l in open(f"{w}/{f}")]
json.dump({"runs": $RUNS, "pod_runs": $POD_RUNS, "cold_start_ms": rows("cold.jsonl"),
           "pod_start_ms": rows("pods.jsonl"), "passthrough": "$RPASS", "can_drop_caches": $CAN_DROP == 1,
           "read_mbps": {"lazy_seq_warm": $LAZY_SEQ, "host_seq_warm": $HOST_SEQ,
                         "lazy_rand_warm": $LAZY_RAND, "host_rand_warm": $HOST_RAND,
                         "pod_seq_warm": $POD_SEQ, "pod_rand_warm": $POD_RAND,
                         "overlay_host_seq_warm": $OVH_SEQ, "overlay_host_rand_warm": $OVH_RAND,
                         "lazy_first": $LAZY_FIRST, "tar_first": $TAR_FIRST},
           "page_cache_mb": {"mounts": $MOUNTS, "shared_mb": $SHARED_MB, "lazy_mounts": $CACHE_MB, "pods": $PCACHE_MB},
           "pod_pss_mean_mib": $POD_PSS_MEAN,
           "cpus": $(nproc), "load_after": "$(cut -d' ' -f1-3 /proc/loadavg)"},
          open(path, "w"), indent=1)
PY
echo "==> wrote the lazy section of $OUT and $JSON"
