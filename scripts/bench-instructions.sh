#!/usr/bin/env bash
# The library's per-call cost in instructions (callgrind), with and without
# libferry.so, for a few kinds of call: repeatable on a shared machine, where
# nanosecond timings are not. Each figure is
#   (instructions for N2 iterations - for N1 iterations) / (N2 - N1)
# so start-up and finalization cancel out.
#   scripts/bench-instructions.sh [mpich|openmpi|all]
# Writes bench/out/instructions-$MPI.md as well.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
which="${1:-all}"
case "$which" in all) mpis=(mpich openmpi) ;; mpich|openmpi) mpis=("$which") ;;
  *) echo "bench-instructions.sh: unknown MPI '$which'" >&2; exit 2 ;; esac
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 2; }
N1=1000
N2=11000
KINDS=(rank test iprobe selfmsg allreduce barrier)

count() { # BINARY KIND N [LIB]
  local out; out=$(mktemp)
  if [ -n "${4:-}" ]; then
    LD_PRELOAD="$4" valgrind --tool=callgrind --callgrind-out-file="$out" "$1" "$2" "$3" >/dev/null 2>&1
  else
    valgrind --tool=callgrind --callgrind-out-file="$out" "$1" "$2" "$3" >/dev/null 2>&1
  fi
  awk '/^totals:/ {print $2}' "$out"
  rm -f "$out"
}

per_iter() { # BINARY KIND [LIB]
  local a b
  a=$(count "$1" "$2" "$N1" "${3:-}")
  b=$(count "$1" "$2" "$N2" "${3:-}")
  echo $(( (b - a) / (N2 - N1) ))
}

for m in "${mpis[@]}"; do
  (
    . "$ROOT/scripts/mpi-env.sh" "$m"
    [ -f "$FERRY_LIB" ] || { echo "no library for $m: run scripts/build.sh $m" >&2; exit 2; }
    mkdir -p "$ROOT/bench/out/$m"
    bin="$ROOT/bench/out/$m/percall"
    "$MPICC" -O2 -o "$bin" "$ROOT/bench/percall.c"
    md="$ROOT/bench/out/instructions-$m.md"
    {
      echo "# instructions per iteration, $m (callgrind, singleton process)"
      echo
      echo "| kind | calls per iteration | plain | ferry | added by ferry |"
      echo "|---|---:|---:|---:|---:|"
    } >"$md"
    printf '%-10s %8s %8s %8s\n' "$m" plain ferry added
    for k in "${KINDS[@]}"; do
      calls=1; [ "$k" = selfmsg ] && calls=3
      p=$(per_iter "$bin" "$k")
      f=$(per_iter "$bin" "$k" "$FERRY_LIB")
      printf '%-10s %8d %8d %8d\n' "$k" "$p" "$f" $((f - p))
      echo "| $k | $calls | $p | $f | $((f - p)) |" >>"$md"
    done
    echo "(written to $md)"
  )
done
