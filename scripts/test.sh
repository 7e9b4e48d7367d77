#!/usr/bin/env bash
# Set up the machine and run every test of ferry:
#   scripts/test.sh            everything (what CI runs)
#   scripts/test.sh --quick    skip the mpi4py suite
# Steps, each reported as one PASS/FAIL line, then "N passed, M failed":
#   setup      scripts/setup.sh: Debian packages, MPICH and mpi4py venvs
#   format     cargo fmt --check
#   generated  the wrappers and the spec snapshot are what the generators give
#   build      library and command against MPICH, Open MPI and Debian's
#              MPICH 4.0.2 (mpich-deb)
#   clippy     cargo clippy -D warnings, against MPICH and Open MPI
#   unit       cargo test (protocol logic, CLI, generator)
#   c-tests    every C program with and without the library, both MPIs
#   c-tests-deb  the same on Debian's MPICH 4.0.2 (mpich-deb), plus a run
#              with 20 regroups at seeded random points (it cannot spawn:
#              no migrations there)
#   fortran    the Fortran programs (c-tests/fortran) with and without the
#              library, and a per-call count (Open MPI and Debian's MPICH
#              4.0.2; the pip MPICH: skipped, it has no Fortran);
#              fortran-regroup: three regroups in each program, by seeded
#              random ranks at seeded random calls (Open MPI, MPICH 4.0.2);
#              fortran-checkpoint: one checkpoint/restart in each;
#              fortran-migrate: three migrations in each (Open MPI; MPICH
#              4.0.2: refused, it cannot spawn, and the job goes on)
#   swap       the same with the world swapped underneath at barriers 2 and 5
#   regroup    every program with 1, 3 and 20 regroups at seeded random points
#   signal     a regroup asked for with SIGUSR2
#   image      checkpoint/restart of one-rank programs (heap, stack, files,
#              signal handler, C++), corrupt/truncated/foreign images
#              refused, a program with a thread refused
#   image-on   every C program with the process image on (FERRY_IMAGE=1)
#   checkpoint every C program checkpointed at seeded random points and
#              restarted (or refused, where expected), both MPIs
#   migration  every C program with a migration of a seeded random rank,
#              both MPIs; migration-5: five of them (both MPIs)
#   migration-cli  ferry run --migrate to=HOST, ferry migrate/status from
#              outside, two ranks at once, refusals (unknown rank or host,
#              image off, threads)
#   hosts      a cluster of 4 hosts made of network namespaces: C programs
#              on 3 of them with a rank moved to the 4th and back, ferry
#              migrate --to with the replacement's addresses checked, and
#              faults: target host down, a second request for a moving
#              rank, the replacement killed, its link cut mid-transfer
#   app-gromacs  Debian's GROMACS (gmx_mpi, Open MPI) on a box of water, 4
#              ranks, one OpenMP thread each, rank 1 moved mid-run: the
#              energies at the last step identical to a run without ferry
#              (scripts/app-gromacs.sh; installs the gromacs package)
#   mpi4py     mpi4py's own test suite with and without the library
#   mpi4py-image  the same with the process image on
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

report_retries() {
  # The runs c-tests.sh passed only on a retry (c-tests/out/flaky.txt):
  # listed, never hidden.
  if [ -s c-tests/out/flaky.txt ]; then
    echo "passed on retry ($(wc -l <c-tests/out/flaky.txt)):"
    sed 's/^/  /' c-tests/out/flaky.txt
  else
    echo "no run needed a retry"
  fi
}

regroup_check() {
  # Every program with 1, 3 and 20 regroups started by pseudo-random ranks
  # at pseudo-random call counts (the seed is printed with each result, so
  # a failure can be replayed), on both MPIs.
  # A run that fails is run up to twice more with the same SPECs; a pass on a
  # later try is reported ("passed on retry") and listed at the end.
  local seed="${FERRY_TEST_SEED:-$(date +%s)}" n
  echo "regroup seed: $seed"
  rm -f c-tests/out/flaky.txt
  for n in 1 3 20; do
    FERRY_TEST_TIMEOUT=90 bash scripts/c-tests.sh --regroups "$n" --seed "$seed" --retries 2 all || return 1
  done
  report_retries
}

deb_check() {
  # Debian's MPICH 4.0.2: plain vs library and 20 regroups per C program.
  local seed="${FERRY_TEST_SEED:-$(date +%s)}"
  echo "c-tests-deb seed: $seed"
  rm -f c-tests/out/flaky.txt
  FERRY_TEST_TIMEOUT=90 bash scripts/c-tests.sh --regroups 20 --seed "$seed" --retries 2 mpich-deb || return 1
  report_retries
}

signal_check() {
  # A regroup asked for with SIGUSR2 (c-tests/signal.c raises it in rank 1).
  local m
  for m in mpich openmpi; do
    FERRY_TEST_ENV="FERRY_LOG=info" bash scripts/c-tests.sh "$m" signal || return 1
    grep -q "regroup 1 done" "c-tests/out/$m/signal.lib.err" \
      || { echo "no regroup after SIGUSR2 on $m"; return 1; }
    echo "$m: SIGUSR2 started a regroup"
  done
}

image_on_check() {
  # The process image on in every rank (arena, fixed stack, interposed
  # allocation, files and mappings): outputs must not change. The log
  # must show that it really was on.
  FERRY_TEST_ENV="FERRY_IMAGE=1 FERRY_LOG=debug" bash scripts/c-tests.sh all
  local n
  n=$(grep -l "process image on" c-tests/out/*/*.lib.err | wc -l)
  echo "process image on in $n program runs"
  [ "$n" -ge 20 ]
}

migration_check() {
  # Every program with a migration of a pseudo-random rank at a
  # pseudo-random call count (seeded, printed) on both MPIs: identical
  # output, and every rank that moved ends in another process than the one
  # that started it (c-tests.sh checks the pids). A failed run is tried
  # twice more and reported if it then passes.
  local seed="${FERRY_TEST_SEED:-$(date +%s)}"
  echo "migration seed: $seed"
  rm -f c-tests/out/flaky.txt
  FERRY_TEST_TIMEOUT=90 bash scripts/c-tests.sh --migrations 1 --seed "$seed" --retries 2 all || return 1
  report_retries
}

migration5_check() {
  # Every program with 5 migrations of pseudo-random ranks at pseudo-random
  # call counts (so replacements move again, rank 0 included), on both
  # MPIs (Open MPI with osc pt2pt, as ferry run and mpi-env.sh set it:
  # docs/migration.md).
  local seed="${FERRY_TEST_SEED:-$(date +%s)}"
  echo "migration-5 seed: $seed"
  rm -f c-tests/out/flaky.txt
  FERRY_TEST_TIMEOUT=90 bash scripts/c-tests.sh --migrations 5 --seed "$seed" --retries 2 all || return 1
  report_retries
}

checkpoint_check() {
  # Every program checkpointed at 2 seeded random points of rank 0 and
  # restarted; outputs concatenated must equal the plain run's. A failed
  # run is tried once more and reported if it then passes.
  local seed="${FERRY_TEST_SEED:-$(date +%s)}"
  echo "checkpoint seed: $seed"
  rm -f c-tests/out/flaky.txt
  FERRY_TEST_TIMEOUT=90 bash scripts/c-tests.sh --checkpoints 2 --seed "$seed" --retries 1 all || return 1
  if [ -s c-tests/out/flaky.txt ]; then
    echo "passed on retry ($(wc -l <c-tests/out/flaky.txt)):"
    sed 's/^/  /' c-tests/out/flaky.txt
  fi
}

step setup bash scripts/setup.sh
step format cargo fmt --all --check
step build bash scripts/build.sh all
step generated generated_check
step clippy each_mpi cargo clippy --release --workspace --all-targets --quiet -- -D warnings
step unit each_mpi cargo test --release --workspace --quiet
step c-tests bash scripts/c-tests.sh all
step c-tests-deb deb_check
step fortran bash scripts/fortran-tests.sh all
step fortran-regroup bash scripts/fortran-tests.sh --regroup --count 3 openmpi mpich-deb
step fortran-migrate bash scripts/fortran-tests.sh --migrate --count 3 openmpi mpich-deb
step fortran-checkpoint bash scripts/fortran-tests.sh --checkpoint openmpi mpich-deb
step swap swap_check
step regroup regroup_check
step signal signal_check
step image bash scripts/image-tests.sh all
step image-on image_on_check
step checkpoint checkpoint_check
step migration migration_check
step migration-5 migration5_check
step migration-cli bash scripts/migration-tests.sh all
step hosts bash scripts/hosts-tests.sh all
step app-gromacs bash scripts/app-gromacs.sh --ferry target/openmpi/release/ferry --moves 1 -- --migrate rank=1,after=5000
if [ "$quick" = 0 ]; then
  step mpi4py bash scripts/mpi4py-suite.sh all
  step mpi4py-image env FERRY_SUITE_ENV="FERRY_IMAGE=1" bash scripts/mpi4py-suite.sh all
fi

echo
[ "${#failures[@]}" -eq 0 ] || echo "failed steps: ${failures[*]} (logs in $LOGS)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
