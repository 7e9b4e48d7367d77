#!/usr/bin/env bash
# bench-regroup.sh: how long a regroup takes, phase by phase, against the
# number of ranks (2, 4, 8) and of messages in flight per rank (0 to
# 10,000), on one host.
#
# Usage: scripts/bench-regroup.sh [mpich|openmpi|all] [--rounds N] [--quick]
#
# bench/regroup.c keeps MSGS messages in flight from every rank to its
# right neighbour and has rank 0 ask for a regroup (C API) ROUNDS times;
# the library's event log gives each regroup's phases. The table reports
# the median over the rounds of: notify, collective synchronization,
# point-to-point synchronization, drain, group (new world + rebuild),
# total, and "sync" = collective + point-to-point synchronization (the
# issue's target: under 10 ms at 8 ranks, flat as ranks grow; never a
# pass/fail criterion: this machine has 2 cores, so 8 ranks share them).
#
# Outputs: bench/out/regroup-$MPI.md (table), bench/out/regroup-$MPI.svg
# (stacked phases per configuration), bench/out/$MPI/regroup-*.jsonl.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rounds=7
ranks_list=(2 4 8)
msgs_list=(0 100 1000 10000)
mpis=()
while [ $# -gt 0 ]; do
  case "$1" in
    mpich|openmpi) mpis+=("$1") ;;
    all) mpis+=(mpich openmpi) ;;
    --rounds) rounds="$2"; shift ;;
    --quick) rounds=3; ranks_list=(2 4); msgs_list=(0 1000) ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-regroup.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ ${#mpis[@]} -gt 0 ] || mpis=(mpich openmpi)

bench_mpi() (
  . "$ROOT/scripts/mpi-env.sh" "$1"
  local out="$ROOT/bench/out/$FERRY_MPI"
  mkdir -p "$out"
  "$MPICC" -O2 -I"$ROOT/include" -o "$out/regroup" "$ROOT/bench/regroup.c"
  local n m ev
  for n in "${ranks_list[@]}"; do
    for m in "${msgs_list[@]}"; do
      ev="$out/regroup-n$n-m$m.jsonl"
      rm -f "$ev"
      local cmd=("$MPIEXEC")
      # shellcheck disable=SC2206
      [ -n "$FERRY_MPIEXEC_FLAGS" ] && cmd+=($FERRY_MPIEXEC_FLAGS)
      if [ "$FERRY_MPI" = mpich ]; then
        cmd+=(-n "$n" -genv LD_PRELOAD "$FERRY_LIB" -genv FERRY_EVENTS "$ev")
      else
        cmd+=(-n "$n" -x "LD_PRELOAD=$FERRY_LIB" -x "FERRY_EVENTS=$ev")
      fi
      if ! timeout 300 "${cmd[@]}" "$out/regroup" "$m" "$rounds" >"$out/regroup-n$n-m$m.out" 2>&1 \
          || ! grep -q "VERIFY OK" "$out/regroup-n$n-m$m.out"; then
        echo "FAIL $FERRY_MPI n=$n msgs=$m (see $out/regroup-n$n-m$m.out)"
        return 1
      fi
      echo "$FERRY_MPI n=$n msgs=$m: $(wc -l <"$ev") regroups"
    done
  done
  python3 - "$FERRY_MPI" "$out" "$ROOT/bench/out" "$rounds" "$(nproc)" <<'PY'
import json, statistics, sys, glob, os, re
mpi, out, dest, rounds, cores = sys.argv[1:6]
phases = ["notify", "collective_sync", "p2p_sync", "drain", "group", "total"]
rows = []
for path in glob.glob(os.path.join(out, "regroup-n*-m*.jsonl")):
    n, m = map(int, re.findall(r"n(\d+)-m(\d+)", path)[0])
    evs = [json.loads(l) for l in open(path) if l.strip()]
    if not evs:
        continue
    med = {p: statistics.median(e["phases_us"].get(p, 0) for e in evs) / 1000 for p in phases}
    med["sync"] = statistics.median(
        (e["phases_us"].get("collective_sync", 0) + e["phases_us"].get("p2p_sync", 0)) for e in evs) / 1000
    drained = statistics.median(e.get("drained_messages", 0) for e in evs)
    rows.append((n, m, len(evs), drained, med))
rows.sort()
md = [f"# Regroup time on {mpi} (medians over {rounds} regroups, ms; {cores} cores)\n",
      "| ranks | msgs in flight/rank | regroups | drained | notify | collective sync | p2p sync | drain | group | total | sync (coll+p2p) |",
      "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
for n, m, k, d, med in rows:
    md.append(f"| {n} | {m} | {k} | {d:.0f} | " + " | ".join(f"{med[p]:.2f}" for p in phases) + f" | {med['sync']:.2f} |")
open(os.path.join(dest, f"regroup-{mpi}.md"), "w").write("\n".join(md) + "\n")
print("\n".join(md))
# stacked bars, one per configuration
colors = {"notify": "#888", "collective_sync": "#4477aa", "p2p_sync": "#66ccee", "drain": "#228833", "group": "#ccbb44"}
W, bar, gap, left, top = 900, 22, 8, 170, 40
H = top + len(rows) * (bar + gap) + 60
mx = max([sum(med[p] for p in colors) for *_, med in rows] + [1])
scale = (W - left - 40) / mx
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<text x="10" y="22" font-size="15">ferry regroup phases on {mpi} (median ms)</text>']
for i, (n, m, k, d, med) in enumerate(rows):
    y = top + i * (bar + gap)
    svg.append(f'<text x="10" y="{y + 15}">{n} ranks, {m} msgs</text>')
    x = left
    for p, c in colors.items():
        w = med[p] * scale
        if w > 0:
            svg.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar}" fill="{c}"><title>{p}: {med[p]:.2f} ms</title></rect>')
        x += w
    svg.append(f'<text x="{x + 4:.1f}" y="{y + 15}">{sum(med[p] for p in colors):.1f}</text>')
ly = H - 30
for j, (p, c) in enumerate(colors.items()):
    svg.append(f'<rect x="{10 + j * 150}" y="{ly}" width="12" height="12" fill="{c}"/><text x="{26 + j * 150}" y="{ly + 11}">{p}</text>')
svg.append("</svg>")
open(os.path.join(dest, f"regroup-{mpi}.svg"), "w").write("\n".join(svg) + "\n")
PY
)

for m in "${mpis[@]}"; do
  bench_mpi "$m"
done
