#!/usr/bin/env bash
# Set up the machine and run every test of ferry:
#   scripts/test.sh            everything (what CI runs)
#   scripts/test.sh --quick    skip the mpi4py suite
# Steps, each reported as one PASS/FAIL line, then "N passed, M failed":
#   setup      scripts/setup.sh: Debian packages, MPICH and mpi4py venvs
#   format     cargo fmt --check
#   generated  the wrappers and the spec snapshot are what the generators give
#   build      library and command against MPICH and Open MPI
#   clippy     cargo clippy -D warnings, against both MPIs
#   unit       cargo test (protocol logic, CLI, generator)
#   c-tests    every C program with and without the library, both MPIs
#   swap       the same with the world swapped underneath at barriers 2 and 5
#   wake       blocking receives, probes and waits notice MIG_WAKE and resume
#   mpi4py     mpi4py's own test suite with and without the library
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
quick=0
[ "${1:-}" = "--quick" ] && quick=1

LOGS="$ROOT/target/test-logs"
mkdir -p "$LOGS"
passed=0
failed=0
failures=()

step() {
  local name="$1"; shift
  local log="$LOGS/$name.log"
  local t0=$SECONDS
  echo "---- $name: $*"
  if "$@" >"$log" 2>&1; then
    passed=$((passed + 1))
    echo "PASS $name ($((SECONDS - t0)) s)"
    tail -n 3 "$log" | sed 's/^/     /'
  else
    failed=$((failed + 1))
    failures+=("$name")
    echo "FAIL $name ($((SECONDS - t0)) s) — last lines of $log:"
    tail -n 40 "$log" | sed 's/^/     /'
  fi
}

each_mpi() {
  local m
  for m in mpich openmpi; do
    ( . "$ROOT/scripts/mpi-env.sh" "$m"; echo "== $m"; "$@" ) || return 1
  done
}

generated_check() {
  cargo run --quiet -p ferry-codegen -- --check
  /opt/ferry/mpich/bin/python codegen/extract_spec.py --check
}

swap_check() {
  FERRY_TEST_ENV="FERRY_LOG=info FERRY_TEST_DUP_WORLD_AT_BARRIER=2,5" bash scripts/c-tests.sh all
  # The switch must really have fired: count the programs whose world moved.
  local n
  n=$(grep -l "world swapped at barrier 2" c-tests/out/*/*.lib.err | wc -l)
  echo "world swapped underneath $n program runs"
  grep -q "world swapped at barrier 5" c-tests/out/mpich/many_barriers.lib.err
  grep -q "world swapped at barrier 5" c-tests/out/openmpi/many_barriers.lib.err
  [ "$n" -ge 10 ]
}

wake_check() {
  # MIG_WAKE raised at calls that block in MPI_Recv, MPI_Probe, MPI_Wait and
  # MPI_Waitall (c-tests/wake.c): each must be noticed, then the call resumes.
  local m k what
  for m in mpich openmpi; do
    for k in 4:Recv 5:Probe 7:Wait 11:Wait; do
      what=${k#*:}
      FERRY_TEST_ENV="FERRY_LOG=info FERRY_TEST_WAKE_AFTER=${k%%:*}" bash scripts/c-tests.sh "$m" wake
      grep -q "woken (#1) while blocked in $what" "c-tests/out/$m/wake.lib.err" \
        || { echo "no wake in $what seen on $m"; return 1; }
      echo "$m: woken in $what after call ${k%%:*}"
    done
  done
}

step setup bash scripts/setup.sh
step format cargo fmt --all --check
step build bash scripts/build.sh all
step generated generated_check
step clippy each_mpi cargo clippy --release --workspace --all-targets --quiet -- -D warnings
step unit each_mpi cargo test --release --workspace --quiet
step c-tests bash scripts/c-tests.sh all
step swap swap_check
step wake wake_check
if [ "$quick" = 0 ]; then
  step mpi4py bash scripts/mpi4py-suite.sh all
fi

echo
[ "${#failures[@]}" -eq 0 ] || echo "failed steps: ${failures[*]} (logs in $LOGS)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
