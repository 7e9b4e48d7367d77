#!/usr/bin/env bash
# bench-evacuate.sh: how long `ferry evacuate` takes to empty a host
# against the number of ranks on it (1, 2, 4), phase by phase, and against
# moving the same ranks one by one with `ferry migrate`, on the cluster of
# network namespaces of scripts/cluster.sh (set up if needed and torn down
# after if this script set it up; needs root).
#
# Usage: scripts/bench-evacuate.sh [mpich|openmpi|all] [--ranks "1 2 4"]
#          [--rounds N]
#
# For K ranks on the host: `ferry run --hosts ferry-h2,ferry-h1,ferry-h3:0,
# ferry-h4:0 -n 2K` (round-robin: K ranks on ferry-h2, K on ferry-h1)
# runs examples/heat.c (a step every 2 ms, for longer than the round);
# once every rank has reported, either `ferry evacuate
# --host ferry-h2` or, in another job of the same round, `ferry migrate`
# of each of ferry-h2's ranks in turn to the host the evacuation would
# pick. Both are timed from the command's start to its end (wall clock),
# and the migrate events give each move's phases. Open MPI 4.1.4 cannot
# start more ranks than hosts with spare hosts in the job (docs/hosts.md):
# only K = 1 there. Each round runs both jobs one after the other, so
# that the machine's noise falls on both. A benchmark, never a pass/fail
# test (this machine has 2 cores, shared).
#
# The evacuation moves all of the host's ranks in one synchronization (one
# freeze and drain, one MPI_Comm_spawn_multiple, one new group); the goal
# (issue 18) is 4 ranks in at most 1.5x the time of 1.
#
# Outputs: bench/out/evacuate-$MPI.md (medians over the rounds) and the
# raw events in bench/out/$MPI/evacuate/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ranks_list=(1 2 4)
rounds=3
mpis=()
while [ $# -gt 0 ]; do
  case "$1" in
    mpich|openmpi) mpis+=("$1") ;;
    all) mpis+=(mpich openmpi) ;;
    --ranks) read -r -a ranks_list <<<"$2"; shift ;;
    --rounds) rounds="$2"; shift ;;
    -h|--help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-evacuate.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ ${#mpis[@]} -gt 0 ] || mpis=(mpich)
[ "$(id -u)" = 0 ] || { echo "bench-evacuate.sh: needs root (network namespaces)" >&2; exit 2; }
CLUSTER="$ROOT/scripts/cluster.sh"
# The harness's lock on the cluster (harness/src/hosts.rs), held throughout.
exec 9>/tmp/ferry-cluster.lock
flock -w 1800 9 || { echo "bench-evacuate.sh: the cluster is busy" >&2; exit 1; }
if ! ip netns list | grep -q '^ferry-h4'; then
  trap 'bash "$CLUSTER" down >/dev/null 2>&1' EXIT
  bash "$CLUSTER" up 4 >/dev/null || { echo "bench-evacuate.sh: cluster.sh up failed" >&2; exit 1; }
fi
eval "$(bash "$CLUSTER" env)"
HOSTS=ferry-h2,ferry-h1,ferry-h3:0,ferry-h4:0

# start_job OUT N: starts the job in the background (its pid in JOB_PID,
# its job directory in JOB_DIR once every rank has reported).
start_job() {
  local out="$1" n="$2"
  rm -rf "$out/jobs"
  mkdir -p "$out/jobs"
  chmod 700 "$out/jobs"
  FERRY_JOB_ROOT="$out/jobs" setsid "$FERRY_BIN" run --mpi "$FERRY_MPI" --hosts "$HOSTS" -n "$n" \
      --events "$out/events.jsonl" -- "$BIN" 100000 2000 >"$out/run.out" 2>"$out/run.err" &
  JOB_PID=$!
  local t=0
  JOB_DIR=""
  while [ $t -lt 300 ]; do
    JOB_DIR="$(ls -d "$out"/jobs/*/ 2>/dev/null | head -n 1 || true)"
    if [ -n "$JOB_DIR" ] && [ "$(ls "$JOB_DIR" | grep -c '^rank-[0-9]*\.json$' || true)" -ge "$n" ]; then
      sleep 1
      return 0
    fi
    sleep 0.1
    t=$((t + 1))
  done
  echo "the job did not start (see $out/run.err)" >&2
  return 1
}

stop_job() {
  kill -TERM -- "-$JOB_PID" 2>/dev/null || true
  wait "$JOB_PID" 2>/dev/null || true
}

now_ms() { date +%s%3N; }

bench_mpi() (
  # shellcheck source=scripts/mpi-env.sh
  . "$ROOT/scripts/mpi-env.sh" "$1"
  local out="$ROOT/bench/out/$FERRY_MPI/evacuate"
  mkdir -p "$out"
  BIN="$out/heat"
  "$MPICC" -O2 -o "$BIN" "$ROOT/examples/heat.c"
  local raw="$out/raw.jsonl"
  : >"$raw"
  local k r
  for k in "${ranks_list[@]}"; do
    if [ "$FERRY_MPI" = openmpi ] && [ "$k" -gt 1 ]; then
      echo "  openmpi: $k ranks on a host with spare hosts in the job: not startable (docs/hosts.md), skipped"
      continue
    fi
    for ((r = 1; r <= rounds; r++)); do
      # The evacuation.
      local d="$out/evac-$k-$r"
      mkdir -p "$d"
      rm -f "$d/events.jsonl"
      start_job "$d" $((2 * k))
      local t0 t1
      t0=$(now_ms)
      FERRY_JOB_ROOT="$d/jobs" "$FERRY_BIN" evacuate --job "$JOB_DIR" --host ferry-h2 --json >"$d/report.json" 2>"$d/evacuate.err" \
        || { echo "evacuation failed ($k ranks):"; cat "$d/report.json" "$d/evacuate.err"; stop_job; exit 1; }
      t1=$(now_ms)
      stop_job
      # The same ranks, one `ferry migrate` after the other, to the
      # same hosts.
      local o="$out/one-$k-$r"
      mkdir -p "$o"
      rm -f "$o/events.jsonl"
      start_job "$o" $((2 * k))
      local pairs t2 t3 rank to
      pairs="$("$FERRY_PY" -c 'import json,sys; print(" ".join(str(m["rank"]) + ":" + m["to_host"] for m in json.load(open(sys.argv[1]))["ranks"]))' "$d/report.json")"
      t2=$(now_ms)
      for p in $pairs; do
        rank="${p%%:*}"; to="${p#*:}"
        FERRY_JOB_ROOT="$o/jobs" "$FERRY_BIN" migrate --job "$JOB_DIR" --rank "$rank" --to "$to" >>"$o/migrate.out" 2>&1 \
          || { echo "ferry migrate --rank $rank --to $to failed ($k ranks):"; tail -3 "$o/migrate.out"; stop_job; exit 1; }
      done
      t3=$(now_ms)
      stop_job
      "$FERRY_PY" - "$d/events.jsonl" "$o/events.jsonl" "$k" $((t1 - t0)) $((t3 - t2)) >>"$raw" <<'PY'
import json, sys
evac, one, k, ms_evac, ms_one = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
moves = lambda p: [json.loads(l) for l in open(p) if '"event":"migrate"' in l]
print(json.dumps({"k": k, "evacuate_ms": ms_evac, "one_by_one_ms": ms_one,
                  "evacuate_moves": moves(evac), "one_by_one_moves": moves(one)}))
PY
      echo "  $FERRY_MPI $k rank(s) on ferry-h2, round $r: evacuate $((t1 - t0)) ms, one by one $((t3 - t2)) ms"
    done
  done
  "$FERRY_PY" - "$raw" "$FERRY_MPI" "$ROOT/bench/out" <<'PY'
import json, statistics, sys, collections
raw, mpi, dest = sys.argv[1:4]
rows = collections.defaultdict(list)
for line in open(raw):
    e = json.loads(line)
    rows[e["k"]].append(e)
med = lambda v: statistics.median(v) if v else 0.0
phases = ["sync", "drain", "spawn", "group", "state_transfer", "restore", "total"]
def phase(ev, p):
    ph = ev.get("phases_us", {})
    if p == "sync":
        return (ph.get("notify", 0) + ph.get("collective_sync", 0) + ph.get("p2p_sync", 0)) / 1e3
    return ph.get(p, 0) / 1e3
md = [f"# ferry evacuate on {mpi}: time to empty a host", "",
      "Ranks on ferry-h2 (as many on ferry-h1, ferry-h3 and ferry-h4 spare), examples/heat.c, over TCP between network namespaces.",
      "Wall clock of the command, median over the rounds; the evacuation against the same ranks moved by `ferry migrate` one after the other, in the same rounds.", "",
      "| ranks on the host | rounds | evacuate (ms) | one by one (ms) | ratio | evacuate / 1 rank's evacuate |",
      "|---|---|---|---|---|---|"]
base = None
for k in sorted(rows):
    ev = med([e["evacuate_ms"] for e in rows[k]])
    one = med([e["one_by_one_ms"] for e in rows[k]])
    if base is None:
        base = ev
    md.append(f"| {k} | {len(rows[k])} | {ev:.0f} | {one:.0f} | {ev / one if one else 0:.2f} | {ev / base if base else 0:.2f} |")
md += ["", "Phases of each move of the evacuation (ms, medians over the moves of the rounds):", "",
       "| ranks on the host | moves | " + " | ".join(phases) + " |", "|---|---|" + "---|" * len(phases)]
for k in sorted(rows):
    mv = [m for e in rows[k] for m in e["evacuate_moves"]]
    md.append(f"| {k} | {len(mv)} | " + " | ".join(f"{med([phase(m, p) for m in mv]):.1f}" for p in phases) + " |")
open(f"{dest}/evacuate-{mpi}.md", "w").write("\n".join(md) + "\n")
print("\n".join(md))
PY
)

for m in "${mpis[@]}"; do
  echo "== $m"
  bench_mpi "$m"
done
