#!/usr/bin/env bash
# bench-image.sh: how fast a process image is captured and restored,
# against its size (1 MiB to 1 GiB of heap), through a whole checkpoint
# and restart of a one-rank job.
#
# Usage: scripts/bench-image.sh [mpich|openmpi|all] [--sizes "1 16 64 256 1024"] [--rounds N]
#
# bench/image.c fills SIZE MiB of heap with a pattern and makes barriers;
# `ferry run --checkpoint after=10` images it, `ferry restart` resumes it
# and the program checks the pattern. The event log gives the capture time
# (phase state_transfer of the checkpoint: write and fsync of the image)
# and the restore time (phase restore of the restart: mapping, checksums,
# layout checks and the copy into place; MPI_Init is not counted). The
# target of the issue is 1 GB/s each way on this machine; this is a
# benchmark, never a pass/fail test (the disk and the page cache are
# shared with whatever else runs here).
#
# Outputs: bench/out/image-$MPI.md (table, medians over the rounds) and
# bench/out/image-$MPI.svg (throughput against size).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
sizes=(1 16 64 256 1024)
rounds=3
mpis=()
while [ $# -gt 0 ]; do
  case "$1" in
    mpich|openmpi) mpis+=("$1") ;;
    all) mpis+=(mpich openmpi) ;;
    --sizes) read -r -a sizes <<<"$2"; shift ;;
    --rounds) rounds="$2"; shift ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-image.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ ${#mpis[@]} -gt 0 ] || mpis=(mpich openmpi)

bench_mpi() (
  # shellcheck source=scripts/mpi-env.sh
  . "$ROOT/scripts/mpi-env.sh" "$1"
  local out="$ROOT/bench/out/$FERRY_MPI/image"
  mkdir -p "$out"
  "$MPICC" -O2 -o "$out/image" "$ROOT/bench/image.c"
  local raw="$out/raw.tsv"
  : >"$raw"
  local size r dir ev
  for size in "${sizes[@]}"; do
    for ((r = 1; r <= rounds; r++)); do
      dir="$out/ckpt-$size-$r"
      ev="$out/events-$size-$r.jsonl"
      rm -rf "$dir" "$ev"
      ( cd "$out" && timeout 600 "$FERRY_BIN" run --mpi "$FERRY_MPI" -n 1 --events "$ev" \
          --checkpoint "after=10,dir=$dir" -- ./image "$size" >"$out/run.out" 2>"$out/run.err" ) \
        || { echo "checkpoint run failed ($size MiB):"; tail -5 "$out/run.err"; exit 1; }
      timeout 600 "$FERRY_BIN" restart "$dir" >"$out/restart.out" 2>"$out/restart.err" \
        || { echo "restart failed ($size MiB):"; tail -5 "$out/restart.err"; exit 1; }
      grep -q "verified $size MiB" "$out/restart.out" \
        || { echo "restarted program did not verify its $size MiB"; exit 1; }
      "$FERRY_PY" - "$ev" "$size" >>"$raw" <<'EOF'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ck = next(e for e in ev if e["event"] == "checkpoint")
rs = next(e for e in ev if e["event"] == "restart")
print(sys.argv[2], ck["image_bytes"], ck["phases_us"]["state_transfer"],
      rs["phases_us"]["restore"], sep="\t")
EOF
      rm -rf "$dir"
      echo "  $FERRY_MPI $size MiB round $r: $(tail -n 1 "$raw")"
    done
  done
  "$FERRY_PY" - "$raw" "$FERRY_MPI" "$ROOT/bench/out" <<'EOF'
import statistics, sys, os, collections
raw, mpi, dest = sys.argv[1:4]
rows = collections.defaultdict(list)
for line in open(raw):
    size, nbytes, cap, res = line.split()
    rows[int(size)].append((int(nbytes), int(cap), int(res)))
md = [f"# Process image throughput — {mpi}", "",
      "One rank; medians; capture = write + fsync of the image, restore = checks + copy (MPI_Init excluded).", "",
      "| heap MiB | image MiB | capture ms | capture GB/s | restore ms | restore GB/s |",
      "|---:|---:|---:|---:|---:|---:|"]
pts = []
for size in sorted(rows):
    r = rows[size]
    nbytes = statistics.median(x[0] for x in r)
    cap = statistics.median(x[1] for x in r)
    res = statistics.median(x[2] for x in r)
    cg = nbytes / cap / 1e3 if cap else 0
    rg = nbytes / res / 1e3 if res else 0
    pts.append((size, cg, rg))
    md.append(f"| {size} | {nbytes / 2**20:.1f} | {cap / 1e3:.1f} | {cg:.2f} | {res / 1e3:.1f} | {rg:.2f} |")
open(os.path.join(dest, f"image-{mpi}.md"), "w").write("\n".join(md) + "\n")
print("\n".join(md))
# Throughput against size (log scale of size), both directions.
W, H, L, B = 560, 300, 60, 40
top = max([max(p[1], p[2]) for p in pts] + [1.2])
import math
xs = [math.log2(p[0]) for p in pts]
x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
X = lambda s: L + (math.log2(s) - x0) / (x1 - x0) * (W - L - 20)
Y = lambda g: H - B - g / top * (H - B - 20)
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<text x="{L}" y="14">process image throughput, {mpi} (GB/s against heap size)</text>',
       f'<line x1="{L}" y1="{H - B}" x2="{W - 10}" y2="{H - B}" stroke="black"/>',
       f'<line x1="{L}" y1="{H - B}" x2="{L}" y2="20" stroke="black"/>',
       f'<line x1="{L}" y1="{Y(1):.1f}" x2="{W - 10}" y2="{Y(1):.1f}" stroke="#aaa" stroke-dasharray="4"/>',
       f'<text x="{W - 80}" y="{Y(1) - 4:.1f}" fill="#777">target 1 GB/s</text>']
for s, _, _ in pts:
    svg.append(f'<text x="{X(s):.1f}" y="{H - B + 16}" text-anchor="middle">{s} MiB</text>')
for g in range(0, int(top) + 1):
    svg.append(f'<text x="{L - 6}" y="{Y(g) + 4:.1f}" text-anchor="end">{g}</text>')
for idx, (name, color) in enumerate([("capture", "#1f77b4"), ("restore", "#d62728")]):
    line = " ".join(f"{X(p[0]):.1f},{Y(p[1 + idx]):.1f}" for p in pts)
    svg.append(f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="2"/>')
    for p in pts:
        svg.append(f'<circle cx="{X(p[0]):.1f}" cy="{Y(p[1 + idx]):.1f}" r="3" fill="{color}"><title>{name} {p[0]} MiB: {p[1 + idx]:.2f} GB/s</title></circle>')
    svg.append(f'<rect x="{L + 10 + idx * 90}" y="{H - 14}" width="12" height="12" fill="{color}"/><text x="{L + 26 + idx * 90}" y="{H - 4}">{name}</text>')
svg.append("</svg>")
open(os.path.join(dest, f"image-{mpi}.svg"), "w").write("\n".join(svg) + "\n")
EOF
)

for m in "${mpis[@]}"; do
  echo "== $m"
  bench_mpi "$m"
done
