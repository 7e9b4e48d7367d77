#!/usr/bin/env bash
# The main job: set the machine up, build ferry, and run a small MPI program
# under `ferry run` while ferry regroups it underneath three times, then
# show the phases of each regroup and that its
# output is the same as without ferry.
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
"$MPIEXEC" $FERRY_MPIEXEC_FLAGS -n 4 "$OUT/heat" | tee "$OUT/plain.txt"

echo
echo "== the same under ferry, with three regroups started by ranks 1, 3 and 0"
echo "   while the job runs: the whole group synchronizes (collectives, then"
echo "   point-to-point), drains every channel and moves to new communicators"
EVENTS="$OUT/events.jsonl"
rm -f "$EVENTS"
FERRY_LOG=info "$FERRY_BIN" run --mpi "$MPI" -n 4 --events "$EVENTS" \
  --regroup rank=1,after=300 --regroup rank=3,after=700 --regroup rank=0,after=1100 \
  -- "$OUT/heat" | tee "$OUT/ferry.txt"
echo
echo "== the event log ($EVENTS)"
"$FERRY_BIN" report "$EVENTS" --svg "$OUT/regroups.svg"
echo "(timeline: $OUT/regroups.svg)"
echo
if cmp -s "$OUT/plain.txt" "$OUT/ferry.txt"; then
  echo "identical output with and without ferry"
else
  echo "OUTPUT DIFFERS:"; diff "$OUT/plain.txt" "$OUT/ferry.txt"; exit 1
fi
