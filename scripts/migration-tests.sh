#!/usr/bin/env bash
# migration-tests.sh: the ways to ask for a migration and the ways one must
# be refused, end to end with the `ferry` command, on one host.
#
#   scripts/migration-tests.sh [mpich|openmpi|all]     (default: all)
#
# Cases (each PASS or FAIL; the job's output must always equal a plain run):
#   spec-to-host     --migrate rank=1,after=K,to=$(hostname): one migrate
#                    event, to_host is this host, new pid differs
#   two-at-once      two SPECs firing at the same call count on ranks 0 and
#                    2: both move (queued, not lost)
#   external         `ferry migrate --job JOB --rank 2` on a running job:
#                    it waits and reports the move; `ferry status` shows
#                    rank 2 with 1 migration and a new pid
#   unknown-rank     `ferry migrate --rank 9` on a 4-rank job: usage error
#                    (exit 2), the job goes on
#   unknown-host     `--migrate rank=1,after=K,to=no-such-host.invalid`:
#                    refused with "unknown", job completes unchanged;
#                    `ferry migrate --to no-such-host.invalid`: exit 1
#   image-off        FERRY_IMAGE=0: refused ("process image is off")
#   threads          c-tests/image_thread.c: refused ("thread")
# Outputs under target/migration-tests/$MPI/.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mpis=()
for a in "$@"; do
  case "$a" in
    mpich|openmpi) mpis+=("$a") ;;
    all) mpis+=(mpich openmpi) ;;
    -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "migration-tests.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done
[ ${#mpis[@]} -gt 0 ] || mpis=(mpich openmpi)
RESULTS="$(mktemp)"
trap 'rm -f "$RESULTS"' EXIT

result() { echo "$1 $2 [$3]${4:+: $4}"; echo "$1" >>"$RESULTS"; }

test_mpi() (
  # shellcheck source=scripts/mpi-env.sh
  . "$ROOT/scripts/mpi-env.sh" "$1"
  local out="$ROOT/target/migration-tests/$FERRY_MPI"
  rm -rf "$out"; mkdir -p "$out"
  "$MPICC" -O1 -o "$out/heat" "$ROOT/examples/heat.c" || { result FAIL build "$FERRY_MPI"; return; }
  "$MPICC" -O1 -I"$ROOT/include" -o "$out/image_thread" "$ROOT/c-tests/image_thread.c" -lpthread \
    || { result FAIL build "$FERRY_MPI"; return; }
  # shellcheck disable=SC2086  # the flags are a word list on purpose
  "$MPIEXEC" $FERRY_MPIEXEC_FLAGS -n 4 "$out/heat" >"$out/heat.plain"
  # shellcheck disable=SC2086
  "$MPIEXEC" $FERRY_MPIEXEC_FLAGS -n 4 "$out/heat" 4000 >"$out/heat-long.plain"
  # shellcheck disable=SC2086
  "$MPIEXEC" $FERRY_MPIEXEC_FLAGS -n 2 "$out/image_thread" >"$out/thread.plain" 2>/dev/null
  local host; host="$(hostname)"

  # run NAME NRANKS [ferry run args...] -- PROGRAM...: ferry run, events in
  # $out/NAME.events, output in $out/NAME.{out,err}; sets rc
  run() {
    local name="$1"; shift
    rm -f "$out/$name.events"
    rc=0
    FERRY_LOG="${FERRY_LOG:-info}" timeout 120 "$FERRY_BIN" run --mpi "$FERRY_MPI" \
      --events "$out/$name.events" "$@" >"$out/$name.out" 2>"$out/$name.err" || rc=$?
  }
  moves() { grep -c '"event":"migrate"' "$out/$1.events" 2>/dev/null || true; }

  run spec-to-host -n 4 --migrate "rank=1,after=200,to=$host" -- "$out/heat"
  if [ "$rc" -eq 0 ] && cmp -s "$out/heat.plain" "$out/spec-to-host.out" && [ "$(moves spec-to-host)" -eq 1 ] \
      && grep -q "\"to_host\":\"$host\"" "$out/spec-to-host.events"; then
    result PASS spec-to-host "$FERRY_MPI" "$(sed -n 's/.*"old_pid":\([0-9]*\),"new_pid":\([0-9]*\).*/pid \1 -> \2/p' "$out/spec-to-host.events")"
  else
    result FAIL spec-to-host "$FERRY_MPI" "rc=$rc, $(moves spec-to-host) moves"; tail -5 "$out/spec-to-host.err"
  fi

  run two-at-once -n 4 --migrate rank=0,after=250 --migrate rank=2,after=250 -- "$out/heat"
  if [ "$rc" -eq 0 ] && cmp -s "$out/heat.plain" "$out/two-at-once.out" && [ "$(moves two-at-once)" -eq 2 ] \
      && grep -q '"event":"migrate","rank":0' "$out/two-at-once.events" \
      && grep -q '"event":"migrate","rank":2' "$out/two-at-once.events"; then
    result PASS two-at-once "$FERRY_MPI" "ranks 0 and 2 moved, one after the other"
  else
    result FAIL two-at-once "$FERRY_MPI" "rc=$rc, $(moves two-at-once) moves"; tail -5 "$out/two-at-once.err"
  fi

  # From outside: a run paced to last at least 4 s of wall time (1 ms asleep
  # per step; the output does not depend on it), asked while it runs.
  rm -f "$out/external.events"
  FERRY_LOG=info timeout 180 "$FERRY_BIN" run --mpi "$FERRY_MPI" -n 4 --events "$out/external.events" \
    -- "$out/heat" 4000 1000 >"$out/external.out" 2>"$out/external.err" &
  local job_pid=$! job="" i
  for ((i = 0; i < 100; i++)); do
    job="$(sed -n 's/^ferry: job \([^ ]*\) .*/\1/p' "$out/external.err" | head -n 1)"
    [ -n "$job" ] && [ "$(ls "${FERRY_JOB_ROOT:-/tmp/ferry-$(id -u)}/$job"/rank-*.json 2>/dev/null | wc -l)" -eq 4 ] && break
    sleep 0.1
  done
  local mrc=0 urc=0 hrc=0
  "$FERRY_BIN" migrate --job "$job" --rank 9 >"$out/unknown-rank.out" 2>&1 || urc=$?
  "$FERRY_BIN" migrate --job "$job" --rank 1 --to no-such-host.invalid >"$out/unknown-host-cli.out" 2>&1 || hrc=$?
  "$FERRY_BIN" migrate --job "$job" --rank 2 --timeout 60 >"$out/migrate.out" 2>&1 || mrc=$?
  "$FERRY_BIN" status --job "$job" >"$out/status.out" 2>&1
  wait "$job_pid"; rc=$?
  if [ "$mrc" -eq 0 ] && grep -q "rank 2 moved" "$out/migrate.out" && [ "$rc" -eq 0 ] \
      && cmp -s "$out/heat-long.plain" "$out/external.out" && [ "$(moves external)" -eq 1 ] \
      && awk '$1 == 2 && $4 == 1 { ok = 1 } END { exit !ok }' "$out/status.out"; then
    result PASS external "$FERRY_MPI" "$(grep 'rank 2 moved' "$out/migrate.out")"
  else
    result FAIL external "$FERRY_MPI" "migrate rc=$mrc, job rc=$rc, $(moves external) moves"
    cat "$out/migrate.out" "$out/status.out"; tail -5 "$out/external.err"
  fi
  if [ "$urc" -eq 2 ] && grep -q "there is no rank 9" "$out/unknown-rank.out"; then
    result PASS unknown-rank "$FERRY_MPI" "$(head -n 1 "$out/unknown-rank.out")"
  else
    result FAIL unknown-rank "$FERRY_MPI" "exit $urc"; cat "$out/unknown-rank.out"
  fi

  run unknown-host -n 4 --migrate rank=1,after=200,to=no-such-host.invalid -- "$out/heat"
  if [ "$rc" -eq 0 ] && cmp -s "$out/heat.plain" "$out/unknown-host.out" && [ "$(moves unknown-host)" -eq 0 ] \
      && grep -q 'refused: the host "no-such-host.invalid" is unknown' "$out/unknown-host.err" \
      && [ "$hrc" -eq 2 ] && grep -q "unknown host" "$out/unknown-host-cli.out"; then
    result PASS unknown-host "$FERRY_MPI" "refused by the library and by ferry migrate"
  else
    result FAIL unknown-host "$FERRY_MPI" "rc=$rc, cli exit $hrc"; tail -5 "$out/unknown-host.err"; cat "$out/unknown-host-cli.out"
  fi

  rc=0
  FERRY_IMAGE=0 run image-off -n 4 --migrate rank=3,after=200 -- "$out/heat"
  if [ "$rc" -eq 0 ] && cmp -s "$out/heat.plain" "$out/image-off.out" && [ "$(moves image-off)" -eq 0 ] \
      && grep -q "refused: its process image is off" "$out/image-off.err"; then
    result PASS image-off "$FERRY_MPI" "refused, the job went on"
  else
    result FAIL image-off "$FERRY_MPI" "rc=$rc"; tail -5 "$out/image-off.err"
  fi

  run threads -n 2 --migrate rank=1,after=20 -- "$out/image_thread"
  if [ "$rc" -eq 0 ] && cmp -s "$out/thread.plain" "$out/threads.out" && [ "$(moves threads)" -eq 0 ] \
      && grep -q "migration of rank 1 refused: .*thread" "$out/threads.err"; then
    result PASS threads "$FERRY_MPI" "$(grep -m1 -o 'refused: .*' "$out/threads.err")"
  else
    result FAIL threads "$FERRY_MPI" "rc=$rc"; tail -5 "$out/threads.err"
  fi
)

for m in "${mpis[@]}"; do
  test_mpi "$m"
done
passed="$(grep -c '^PASS' "$RESULTS" || true)"
failed="$(grep -c '^FAIL' "$RESULTS" || true)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
