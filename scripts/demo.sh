#!/usr/bin/env bash
# The main job: set the machine up, build ferry, and run a small MPI program
# under `ferry run` while ferry moves it underneath, then show that its
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
echo "== the same under ferry: the job is moved onto a new world communicator"
echo "   (every derived communicator rebuilt) at its 100th and 250th MPI_Barrier"
FERRY_LOG=info FERRY_TEST_DUP_WORLD_AT_BARRIER=100,250 \
  "$FERRY_BIN" run --mpi "$MPI" -n 4 -- "$OUT/heat" | tee "$OUT/ferry.txt"

echo
if cmp -s "$OUT/plain.txt" "$OUT/ferry.txt"; then
  echo "identical output with and without ferry"
else
  echo "OUTPUT DIFFERS:"; diff "$OUT/plain.txt" "$OUT/ferry.txt"; exit 1
fi
