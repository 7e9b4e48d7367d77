#!/usr/bin/env bash
# Build ferry (library, command, generator) against one or both MPIs:
#   scripts/build.sh [mpich|openmpi|mpich-deb|all]     (default: all)
# Each MPI gets its own target directory, target/<mpi>/release/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
which="${1:-all}"
case "$which" in
  all) mpis=(mpich openmpi mpich-deb) ;;
  mpich|openmpi|mpich-deb) mpis=("$which") ;;
  *) echo "build.sh: unknown MPI '$which' (mpich, openmpi, mpich-deb or all)" >&2; exit 2 ;;
esac
for m in "${mpis[@]}"; do
  (
    # shellcheck source=mpi-env.sh
    . "$ROOT/scripts/mpi-env.sh" "$m"
    echo "== building ferry against $m ($MPICC)"
    cd "$ROOT"
    cargo build --release --workspace --quiet
    echo "   $FERRY_LIB"
  )
done
