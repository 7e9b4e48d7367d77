#!/usr/bin/env bash
# bench-migration.sh: how long a live migration takes, phase by phase,
# against the number of ranks (2 to 8, 64 MiB per rank) and against the
# size of the moving process's memory (1 to 256 MiB, 4 ranks), on one host.
#
# Usage: scripts/bench-migration.sh [mpich|openmpi|all] [--ranks "2 4 8"]
#          [--sizes "1 16 64 256"] [--rounds N] [--hosts]
#
# bench/migrate.c (every rank fills MIB MiB of heap, then ring exchanges
# and allreduces) runs under `ferry run --migrate rank=1,after=K`; the
# migrate event gives the phases: synchronization (notify + collective +
# point-to-point sync), drain, spawn, group (merge, split, rebuild),
# state transfer (the image sent to the replacement), restore, total. The
# program checks its memory and output after the move (and the output must
# equal a run without ferry). MPI-Mitten (the patent's system) reports a
# synchronization of ~2.2 s and spawning as most of the cost; the issue's
# target on MPICH is a total under 250 ms and a synchronization under
# 10 ms at 8 ranks with a 64 MiB image. A benchmark, never a pass/fail test
# (this machine has 2 cores, shared).
#
# --hosts: also across hosts, on the cluster of network namespaces of
# scripts/cluster.sh (set up if needed, torn down after if this script set
# it up; needs root): the ranks on ferry-h1..h3, rank 1 moved from
# ferry-h2 to ferry-h4, over TCP as between real machines, for every
# configuration of at most 4 ranks (3 on Open MPI, whose mapper needs a
# host per rank then, docs/hosts.md). Each round runs the one-host and the
# across-hosts job one after the other, so that the machine's noise falls
# on both; the table gives each phase in both places and the ratio of the
# totals.
#
# Outputs: bench/out/migration-$MPI.md (medians over the rounds) and
# bench/out/migration-$MPI.svg (one bar of phases per configuration).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ranks_list=(2 4 8)
sizes=(1 16 64 256)
rounds=3
hosts=0
mpis=()
while [ $# -gt 0 ]; do
  case "$1" in
    mpich|openmpi) mpis+=("$1") ;;
    all) mpis+=(mpich openmpi) ;;
    --ranks) read -r -a ranks_list <<<"$2"; shift ;;
    --sizes) read -r -a sizes <<<"$2"; shift ;;
    --rounds) rounds="$2"; shift ;;
    --hosts) hosts=1 ;;
    -h|--help) sed -n '2,34p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-migration.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ ${#mpis[@]} -gt 0 ] || mpis=(mpich)
CLUSTER="$ROOT/scripts/cluster.sh"
if [ "$hosts" = 1 ]; then
  [ "$(id -u)" = 0 ] || { echo "bench-migration.sh: --hosts needs root (network namespaces)" >&2; exit 2; }
  if ! ip netns list | grep -q '^ferry-h4'; then
    trap 'bash "$CLUSTER" down >/dev/null 2>&1' EXIT
    bash "$CLUSTER" up 4 >/dev/null || { echo "bench-migration.sh: cluster.sh up failed" >&2; exit 1; }
  fi
  eval "$(bash "$CLUSTER" env)"
fi
# MPICH's UCX warns on stdout when a spawned process finalizes over TCP
# (docs/hosts.md): not the program's output.
UCX_MPOOL='UCX  WARN .*was not returned to mpool ucp_requests'

bench_mpi() (
  # shellcheck source=scripts/mpi-env.sh
  . "$ROOT/scripts/mpi-env.sh" "$1"
  local out="$ROOT/bench/out/$FERRY_MPI/migration"
  mkdir -p "$out"
  "$MPICC" -O2 -o "$out/migrate" "$ROOT/bench/migrate.c"
  local raw="$out/raw.jsonl" all="$out/events.jsonl"
  : >"$raw"
  : >"$all"
  local configs=() n size r ev
  for n in "${ranks_list[@]}"; do configs+=("$n:64"); done
  for size in "${sizes[@]}"; do
    [ "$size" = 64 ] && [[ " ${ranks_list[*]} " == *" 4 "* ]] && continue
    configs+=("4:$size")
  done
  local most=4
  [ "$FERRY_MPI" = openmpi ] && most=3
  for c in "${configs[@]}"; do
    n="${c%%:*}"; size="${c##*:}"
    # shellcheck disable=SC2086  # the flags are a word list on purpose
    "$MPIEXEC" $FERRY_MPIEXEC_FLAGS -n "$n" "$out/migrate" "$size" 200 >"$out/plain.out" 2>"$out/plain.err"
    local places=(one)
    [ "$hosts" = 1 ] && [ "$n" -le "$most" ] && places+=(hosts)
    for ((r = 1; r <= rounds; r++)); do
      local place
      for place in "${places[@]}"; do
        ev="$out/events-$n-$size-$place-$r.jsonl"
        rm -f "$ev"
        local where=() to=""
        if [ "$place" = hosts ]; then
          where=(--hosts ferry-h1,ferry-h2,ferry-h3,ferry-h4:0)
          to=",to=ferry-h4"
        fi
        timeout 600 "$FERRY_BIN" run --mpi "$FERRY_MPI" "${where[@]}" -n "$n" --events "$ev" \
            --migrate "rank=1,after=150$to" -- "$out/migrate" "$size" 200 >"$out/run.out" 2>"$out/run.err" \
          || { echo "run failed ($n ranks, $size MiB, $place):"; tail -5 "$out/run.err"; exit 1; }
        cmp -s "$out/plain.out" <(grep -v -- "$UCX_MPOOL" "$out/run.out") \
          || { echo "output differs ($n ranks, $size MiB, $place)"; diff "$out/plain.out" "$out/run.out"; exit 1; }
        grep -q '"event":"migrate"' "$ev" \
          || { echo "no migration happened ($n ranks, $size MiB, $place)"; tail -5 "$out/run.err"; exit 1; }
        "$FERRY_PY" - "$ev" "$n" "$size" "$place" >>"$raw" <<'PY'
import json, sys
ev = next(json.loads(l) for l in open(sys.argv[1]) if '"migrate"' in l)
ev["bench"] = {"ranks": int(sys.argv[2]), "mib": int(sys.argv[3]), "place": sys.argv[4]}
print(json.dumps(ev))
PY
        grep '"event":"migrate"' "$ev" >>"$all"
        echo "  $FERRY_MPI $n ranks, $size MiB, $([ "$place" = one ] && echo "one host" || echo "across hosts"), round $r: total $("$FERRY_PY" -c 'import json,sys; print(round(json.loads(sys.argv[1])["phases_us"]["total"]/1e3,1))' "$(tail -n 1 "$raw")") ms ($(sed -n 's/.*"from_host":"\([^"]*\)","to_host":"\([^"]*\)".*/\1 -> \2/p' "$ev" | head -n 1))"
      done
    done
  done
  "$FERRY_PY" - "$raw" "$FERRY_MPI" "$ROOT/bench/out" <<'PY'
import json, statistics, sys, os, collections
raw, mpi, dest = sys.argv[1:4]
rows = collections.defaultdict(list)
for line in open(raw):
    e = json.loads(line)
    rows[(e["bench"]["ranks"], e["bench"]["mib"], e["bench"].get("place", "one"))].append(e)
places = {"one": "one host", "hosts": "across hosts"}
phases = ["sync", "drain", "spawn", "group", "state_transfer", "restore"]
colors = {"sync": "#4e79a7", "drain": "#f28e2b", "spawn": "#59a14f", "group": "#e15759",
          "state_transfer": "#b07aa1", "restore": "#ff9da7", "other": "#bab0ac"}
def ph(e, k):
    p = e["phases_us"]
    if k == "sync":
        return p.get("notify", 0) + p.get("collective_sync", 0) + p.get("p2p_sync", 0)
    return p.get(k, 0)
md = [f"# Live migration time — {mpi}", "",
      "Rank 1 moves after its 150th call; medians over the rounds, in ms. sync = notify + collective + point-to-point synchronization. "
      "Across hosts: ranks on ferry-h1..h3 (network namespaces, TCP), rank 1 from ferry-h2 to ferry-h4.", "",
      "| ranks | MiB/rank | where | image MiB | sync | drain | spawn | group | transfer | restore | total |",
      "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
bars = []
for key in sorted(rows, key=lambda k: (k[0], k[1], k[2] != "one")):
    es = rows[key]
    med = {k: statistics.median(ph(e, k) for e in es) for k in phases}
    total = statistics.median(e["phases_us"]["total"] for e in es)
    img = statistics.median(e.get("image_bytes", 0) for e in es)
    md.append(f"| {key[0]} | {key[1]} | {places[key[2]]} | {img / 2**20:.1f} | " + " | ".join(f"{med[k] / 1e3:.1f}" for k in phases) + f" | {total / 1e3:.1f} |")
    bars.append((key, med, total))
pairs = [(k, k[:2] + ("hosts",)) for k in sorted(rows) if k[2] == "one" and k[:2] + ("hosts",) in rows]
if pairs:
    md += ["", "Across hosts against one host (ratios of the medians, measured in the same rounds):", "",
           "| ranks | MiB/rank | " + " | ".join(phases) + " | total |", "|---:|---:|" + "---:|" * (len(phases) + 1)]
    for one, far in pairs:
        def med_of(key, k):
            return statistics.median(ph(e, k) for e in rows[key])
        def ratio(a, b):
            return f"{b / a:.2f}" if a > 0 else "–"
        tot = lambda key: statistics.median(e["phases_us"]["total"] for e in rows[key])
        md.append(f"| {one[0]} | {one[1]} | " + " | ".join(ratio(med_of(one, k), med_of(far, k)) for k in phases) + f" | {ratio(tot(one), tot(far))} |")
md += ["", "MPI-Mitten (US 8,335,813): synchronization ~2.2 s from 2 to 32 ranks; spawning and starting the new process 69–82 % of the group management cost.",
       "Target (issue 5): total < 250 ms and sync < 10 ms at 8 ranks, 64 MiB, MPICH."]
open(os.path.join(dest, f"migration-{mpi}.md"), "w").write("\n".join(md) + "\n")
print("\n".join(md))
W, L, R, BH = 780, 175, 20, 22
H = 60 + len(bars) * (BH + 8) + 40
top = max([b[2] for b in bars] + [1])
X = lambda us: L + us / top * (W - L - R)
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<text x="10" y="18">live migration of rank 1, {mpi}: phases (median ms)</text>']
y = 40
for key, med, total in bars:
    svg.append(f'<text x="{L - 8}" y="{y + 15}" text-anchor="end">{key[0]} ranks, {key[1]} MiB{", hosts" if key[2] == "hosts" else ""}</text>')
    x = L
    for k in phases:
        w = X(med[k]) - L
        svg.append(f'<rect x="{x:.1f}" y="{y}" width="{max(w, 0):.1f}" height="{BH}" fill="{colors[k]}"><title>{k}: {med[k] / 1e3:.1f} ms</title></rect>')
        x += w
    rest = X(total) - x
    if rest > 0:
        svg.append(f'<rect x="{x:.1f}" y="{y}" width="{rest:.1f}" height="{BH}" fill="{colors["other"]}"><title>other: {(total - sum(med.values())) / 1e3:.1f} ms</title></rect>')
    svg.append(f'<text x="{X(total) + 4:.1f}" y="{y + 15}">{total / 1e3:.0f} ms</text>')
    y += BH + 8
lx = 10
for k in phases + ["other"]:
    svg.append(f'<rect x="{lx}" y="{H - 22}" width="12" height="12" fill="{colors[k]}"/><text x="{lx + 16}" y="{H - 12}">{k}</text>')
    lx += 16 + 8 * len(k) + 14
svg.append("</svg>")
open(os.path.join(dest, f"migration-{mpi}.svg"), "w").write("\n".join(svg) + "\n")
PY
)

for m in "${mpis[@]}"; do
  echo "== $m"
  bench_mpi "$m"
done
