#!/usr/bin/env bash
# The main job: set the machine up, build ferry, and run a small MPI program
# of 4 ranks under `ferry run` while ranks move to new processes mid-run:
# rank 1 moves (and its replacement moves again later), then rank 0. The
# other ranks keep computing and communicating. Then show where each rank
# ended (`ferry status`), the phases of each migration as a table and a
# timeline (SVG), and that the output is the same as without ferry.
#   scripts/demo.sh [mpich|openmpi]        (default: mpich)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MPI="${1:-mpich}"
bash "$ROOT/scripts/setup.sh" >/dev/null
bash "$ROOT/scripts/build.sh" "$MPI" >/dev/null
# shellcheck source=mpi-env.sh
. "$ROOT/scripts/mpi-env.sh" "$MPI"
OUT="$ROOT/target/demo"
mkdir -p "$OUT"
"$MPICC" -O1 -o "$OUT/heat" "$ROOT/examples/heat.c"

echo "== plain run of examples/heat.c on 4 ranks ($MPI)"
# shellcheck disable=SC2086  # the flags are a word list on purpose
"$MPIEXEC" $FERRY_MPIEXEC_FLAGS -n 4 "$OUT/heat" | tee "$OUT/plain.txt"

echo
echo "== the same under ferry: rank 1 moves to a new process after its 300th"
echo "   MPI call, its replacement moves again after call 900, rank 0 moves"
echo "   after call 600. Each time the group synchronizes (collectives, then"
echo "   point-to-point), drains every channel, spawns the replacement, which"
echo "   takes the rank in a new world and gets the process's memory, files"
echo "   and messages; the old process sleeps until the job ends."
EVENTS="$OUT/events.jsonl"
rm -f "$EVENTS"
FERRY_LOG=info "$FERRY_BIN" run --mpi "$MPI" -n 4 --events "$EVENTS" \
  --migrate rank=1,after=300 --migrate rank=0,after=600 --migrate rank=1,after=900 \
  -- "$OUT/heat" > "$OUT/ferry.txt" 2> "$OUT/ferry.err"
cat "$OUT/ferry.txt"
grep -E "left its rank|resumed in process|done in" "$OUT/ferry.err" | sed 's/^/  /' || true
JOB="$(sed -n 's/^ferry: job \([^ ]*\) .*/\1/p' "$OUT/ferry.err" | head -n 1)"
echo
echo "== ferry status --job $JOB"
"$FERRY_BIN" status --job "$JOB"
echo
echo "== the event log ($EVENTS)"
"$FERRY_BIN" report "$EVENTS" --svg "$OUT/migrations.svg"
echo "(timeline: $OUT/migrations.svg)"
echo
moved="$(grep -c '"event":"migrate"' "$EVENTS" || true)"
if [ "$moved" -ne 3 ]; then
  echo "expected 3 migrations, the event log has $moved"; exit 1
fi
if cmp -s "$OUT/plain.txt" "$OUT/ferry.txt"; then
  echo "identical output with and without ferry, after 3 migrations"
else
  echo "OUTPUT DIFFERS:"; diff "$OUT/plain.txt" "$OUT/ferry.txt"; exit 1
fi
