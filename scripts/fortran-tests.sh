#!/usr/bin/env bash
# Run ferry's Fortran test programs (c-tests/fortran/*.f90) with and without
# libferry.so.
#
#   scripts/fortran-tests.sh [--regroup|--migrate|--checkpoint]
#                            [--count N] [--seed S]
#                            [openmpi|mpich|mpich-deb|all] [NAME...]
#
# For each chosen MPI (default: openmpi) and each program (default: every
# c-tests/fortran/*.f90), build it into c-tests/out/$MPI/fortran/NAME with
# the MPI's Fortran compiler (NAME.c, if there is one, is compiled with the
# MPI's C compiler and linked in) and run it at the rank count of its
# "! ranks: N" header:
#   - plain: without the library;
#   - lib:   with LD_PRELOAD=$FERRY_LIB (FERRY_LOG=debug).
# PASS when both runs exit 0, end with the line "OK", and print exactly the
# same stdout, and the lib run's "finalize: N calls" (every rank) is there
# with 0 internal errors. Programs that print "fortran-calls: rank R
# checked N calls, M miscounted" on stderr (calls.f90, calls_f08.f90: the
# per-call counter test) must have checked N > 0 calls on every rank, with
# M = 0, in the lib run.
# With --regroup, --migrate or --checkpoint a third run follows, under
# `ferry run` (FERRY_LOG=info): rank 1 (rank 0 of a 1-rank program) asks for
# a regroup / its migration after K calls, K a third of the calls it made in
# the lib run (a checkpoint: after a third of rank 0's calls); the stdout (for --checkpoint: of the run and
# of `ferry restart` together) must equal the plain run's and the event log
# must hold the event (a migration with another pid). The per-call tests
# must still count every call once. With --count N (--regroup, --migrate)
# the run asks for N of them instead, each by a rank and after a call
# count drawn from seed S (default: the time; printed for a replay), K in
# the first third of that rank's calls in the lib run: the output must
# still be the plain run's and the event log hold one event per SPEC that
# fired, at least one. Outputs: NAME.{regroup,migrate,
# checkpoint}.{out,err}, checkpoint images in NAME.ckpt/ (deleted on a pass).
# A migration or checkpoint refused because the program made an attribute
# keyval (forwarded.f90: attributes cannot travel in an image yet) or freed
# a communicator on some ranks only passes when the output is unchanged.
#
# MPI:
#   - openmpi: Debian's Open MPI 4.1.4 (mpif90.openmpi), whose Fortran
#     library calls PMPI_* directly: the library's own Fortran entry points
#     are what is tested.
#   - mpich: the pip wheel's MPICH 5.0.2 has no Fortran bindings (no
#     mpif90): every program is reported SKIP with the reason.
#   - mpich-deb: Debian's MPICH 4.0.2 (mpif90.mpich), whose mpif.h layer
#     calls the C MPI_* functions (the library's C wrappers count them) and
#     whose use mpi_f08 layer calls PMPI_* (the library's MPICH entry
#     points). Its MPI_Comm_spawn fails: with --migrate every migration
#     must be refused with that reason (stderr and event log), the job
#     going on to the plain run's output.
# Each run is limited by `timeout 60` (FERRY_TEST_TIMEOUT). Outputs go to
# c-tests/out/$MPI/fortran/NAME.{plain,lib}.{out,err,cmd}. Prints one
# PASS/FAIL/SKIP line per program and MPI, then "N passed, M failed";
# exits non-zero if anything failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TESTS="$ROOT/c-tests/fortran"
OUT="$ROOT/c-tests/out"
TIMEOUT="${FERRY_TEST_TIMEOUT:-60}"
# mpif.h programs pass buffers of different types to one routine.
FFLAGS=(-O1 -g -Wall -fallow-argument-mismatch)
CFLAGS=(-O1 -g -Wall -Wextra -I"$ROOT/include")

mpis=()
names=()
op=""
count=1
seed=""
want=""
for arg in "$@"; do
    if [ -n "$want" ]; then
        case "$arg" in
            ''|*[!0-9]*) echo "fortran-tests.sh: --$want needs a number" >&2; exit 2 ;;
        esac
        printf -v "$want" '%s' "$arg"
        want=""
        continue
    fi
    case "$arg" in
        --regroup|--migrate|--checkpoint) op="${arg#--}" ;;
        --count) want=count ;;
        --seed) want=seed ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; exit 0 ;;
        mpich|openmpi|mpich-deb) mpis+=("$arg") ;;
        all) mpis+=(openmpi mpich mpich-deb) ;;
        -*) echo "fortran-tests.sh: unknown option '$arg'" >&2; exit 2 ;;
        *) names+=("$(basename "${arg%.f90}")") ;;
    esac
done
[ -z "$want" ] || { echo "fortran-tests.sh: --$want needs a value" >&2; exit 2; }
if [ "$count" -gt 1 ] && [ "$op" != regroup ] && [ "$op" != migrate ]; then
    echo "fortran-tests.sh: --count goes with --regroup or --migrate" >&2
    exit 2
fi
[ -n "$seed" ] || seed="$(date +%s)"
ops_word="${op}s"
[ "$op" = migrate ] && ops_word=migrations
[ ${#mpis[@]} -gt 0 ] || mpis=(openmpi)
if [ ${#names[@]} -eq 0 ]; then
    for src in "$TESTS"/*.f90; do names+=("$(basename "${src%.f90}")"); done
fi
for name in "${names[@]}"; do
    [ -f "$TESTS/$name.f90" ] || { echo "fortran-tests.sh: no such program: c-tests/fortran/$name.f90" >&2; exit 2; }
done

mkdir -p "$OUT"
RESULTS="$OUT/fortran-results.$$"
: >"$RESULTS"
trap 'rm -f "$RESULTS"' EXIT

RESULT_PREFIX="fortran/"
# shellcheck source=scripts/lib-tests.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib-tests.sh"

# run_one MODE NAME RANKS: sets run_status ("" on success)
run_one() {
    local mode="$1" name="$2" ranks="$3"
    local cmd=("$MPIEXEC")
    # shellcheck disable=SC2206  # the flags are a word list on purpose
    [ -n "$FERRY_MPIEXEC_FLAGS" ] && cmd+=($FERRY_MPIEXEC_FLAGS)
    cmd+=(-n "$ranks")
    if [ "$mode" = lib ]; then
        if [ "$FERRY_MPI" != openmpi ]; then
            cmd+=(-genv LD_PRELOAD "$FERRY_LIB" -genv FERRY_LOG debug)
        else
            cmd+=(-x "LD_PRELOAD=$FERRY_LIB" -x FERRY_LOG=debug)
        fi
    fi
    cmd+=("$dir/$name")
    local out="$dir/$name.$mode.out" err="$dir/$name.$mode.err" rc=0
    printf '%q ' "${cmd[@]}" >"$dir/$name.$mode.cmd"
    echo >>"$dir/$name.$mode.cmd"
    # in the output directory: programs may write files of their own
    (cd "$dir" && timeout -k 5 "$TIMEOUT" "${cmd[@]}" </dev/null >"$out" 2>"$err") || rc=$?
    run_status=""
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        run_status="$mode run timed out after ${TIMEOUT}s"
    elif [ "$rc" -ne 0 ]; then
        run_status="$mode run exited with status $rc"
    elif [ "$(tail -n 1 "$out")" != "OK" ]; then
        run_status="$mode run did not end with OK"
    fi
}

# check_counts NAME RANKS: the lib run's call counts; sets count_status
check_counts() {
    local name="$1" ranks="$2" err="$dir/$1.lib.err" n
    count_status=""
    n="$(grep -ac 'debug: finalize: [0-9]* calls, .* 0 internal errors$' "$err" || true)"
    if [ "$n" -ne "$ranks" ]; then
        count_status="$n of $ranks ranks reported 'finalize: N calls ... 0 internal errors'"
        return
    fi
    if grep -q 'fortran-calls:' "$TESTS/$name.f90"; then
        n="$(grep -aEc '^fortran-calls: rank [0-9]+ checked [1-9][0-9]* calls, 0 miscounted$' "$err" || true)"
        if [ "$n" -ne "$ranks" ]; then
            count_status="per-call counts: $n of $ranks ranks checked calls with none miscounted"
            return
        fi
        calls_note="$(grep -aE '^fortran-calls: rank 0 ' "$err" | sed 's/^fortran-calls: rank 0 //')"
    fi
}

# op_run NAME RANKS: the --regroup/--migrate/--checkpoint run; sets
# op_status ("" on success) and op_note
op_run() {
    local name="$1" ranks="$2" rank=1 calls k ev="$dir/$1.$op.events" rc=0
    op_status=""
    op_note=""
    # a checkpoint's K counts world rank 0's calls
    [ "$ranks" -gt 1 ] && [ "$op" != checkpoint ] || rank=0
    calls="$(sed -n "s/^ferry\[rank $rank pid [0-9]*\] debug: finalize: \([0-9]*\) calls.*/\1/p" "$dir/$name.lib.err" | head -n 1)"
    if [ -z "$calls" ]; then
        op_status="no call count of rank $rank in the lib run"
        return
    fi
    k=$((calls / 3 + 1))
    # --count N: N SPECs, ranks and call counts drawn from the seed (per
    # program, so that one program's do not depend on the others').
    local specs=() i r c
    if [ "$count" -gt 1 ]; then
        RANDOM=$(( (seed + $(cksum <<<"$name$op" | cut -d' ' -f1)) % 32768 ))
        for ((i = 0; i < count; i++)); do
            r=$((RANDOM % ranks))
            c="$(sed -n "s/^ferry\[rank $r pid [0-9]*\] debug: finalize: \([0-9]*\) calls.*/\1/p" "$dir/$name.lib.err" | head -n 1)"
            [ -n "$c" ] || { op_status="no call count of rank $r in the lib run"; return; }
            specs+=("rank=$r,after=$(( (RANDOM * 32768 + RANDOM) % (c > 3 ? c / 3 : 1) + 1 ))")
        done
    fi
    local out="$dir/$name.$op.out" err="$dir/$name.$op.err" tried=()
    # A program that polls (Test/Iprobe loops) makes fewer calls in some
    # runs than in the lib run: a SPEC that did not fire is tried again at
    # K/4+1, at most six times in all.
    while :; do
        tried+=("$k")
        rm -f "$ev"
        rm -rf "$dir/$name.ckpt"
        local args=(--mpi "$FERRY_MPI" -n "$ranks" --events "$ev")
        if [ "${#specs[@]}" -gt 0 ]; then
            for i in "${!specs[@]}"; do args+=("--$op" "${specs[i]}"); done
        else
            case "$op" in
                regroup) args+=(--regroup "rank=$rank,after=$k") ;;
                migrate) args+=(--migrate "rank=$rank,after=$k") ;;
                checkpoint) args+=(--checkpoint "after=$k,dir=$dir/$name.ckpt") ;;
            esac
        fi
        rc=0
        (cd "$dir" && FERRY_LOG=info timeout -k 5 "$TIMEOUT" "$FERRY_BIN" run "${args[@]}" -- "$dir/$name" \
            </dev/null >"$out" 2>"$err") || rc=$?
        if [ "$rc" -ne 0 ] || grep -aqE "(regroup|migration|checkpoint) asked for after call" "$err" \
            || [ "${#tried[@]}" -ge 6 ] || [ "$k" -le 1 ]; then
            break
        fi
        k=$((k / 4 + 1))
        for i in "${!specs[@]}"; do
            r="${specs[i]#rank=}"; r="${r%%,*}"
            c="${specs[i]##*after=}"
            specs[i]="rank=$r,after=$(( c / 4 + 1 ))"
        done
    done
    # what a failure is replayed with
    local what="rank $rank after $k calls"
    if [ "${#specs[@]}" -gt 0 ]; then
        what="$count $ops_word, seed $seed: $(IFS=';'; echo "${specs[*]}")"
    fi
    if [ "$rc" -ne 0 ]; then
        op_status="$op run ($what) exited with status $rc"
        return
    fi
    if ! grep -aqE "(regroup|migration|checkpoint) asked for after call" "$err"; then
        op_status="the $op SPEC never fired ($what; tried K = ${tried[*]})"
        return
    fi
    # A communicator some ranks freed while others still use it (f08.f90's
    # sub-communicator, when rank 1 is behind) cannot be made again in a new
    # process: a migration or checkpoint asked for then is refused, saying
    # so, and the job goes on. Accepted when the output is still the plain
    # run's.
    local refused="" why="a communicator freed by some ranks only"
    if [ "$op" != regroup ] && grep -aq "refused: .*cannot be made again in a new process" "$err"; then
        refused=1
    fi
    # Attributes cannot travel in an image yet (C or Fortran keyvals alike):
    # a migration or checkpoint after the program made a keyval is refused,
    # saying so, and the job goes on (forwarded.f90).
    if [ "$op" != regroup ] && grep -aq "refused: .*attribute keyval(s): attributes cannot be carried yet" "$err"; then
        refused=1 why="the program made an attribute keyval"
    fi
    # MPICH 4.0.2 (mpich-deb) cannot spawn: every migration must be refused
    # with that reason, recorded in the event log, and the job go on.
    local nospawn=""
    if [ "$op" = migrate ] && [ "$FERRY_MPI" = mpich-deb ]; then
        nospawn=1
        if ! grep -aqE "migration of rank [0-9]+ refused: this MPI \(MPICH 4\.0[.0-9]*\) cannot spawn" "$err" \
            || grep -aq '"event":"migrate"' "$ev" 2>/dev/null; then
            op_status="the migration was not refused for want of spawn (MPICH 4.0)"
            return
        fi
        if ! grep -qE '"event":"regroup".*"migration_refused":[0-9]+' "$ev" 2>/dev/null; then
            op_status="no refused migration in the event log"
            return
        fi
    fi
    if [ "$op" = checkpoint ] && [ -z "$refused" ]; then
        if ! grep -aq "checkpoint written" "$err"; then
            op_status="no checkpoint written (after $k calls)"
            return
        fi
        (cd "$dir" && timeout -k 5 "$TIMEOUT" "$FERRY_BIN" restart "$dir/$name.ckpt" \
            </dev/null >"$out.restart" 2>"$err.restart") || rc=$?
        if [ "$rc" -ne 0 ]; then
            op_status="restart exited with status $rc"
            return
        fi
        cat "$out.restart" >>"$out"
    fi
    if ! diff -q "$dir/$name.plain.out" "$out" >/dev/null; then
        op_status="stdout of the $op run differs from the plain run's ($what)"
        return
    fi
    if [ -n "$refused" ]; then
        op_note="; $op ($what) refused ($why), output unchanged"
        return
    fi
    if [ -n "$nospawn" ]; then
        op_note="; migration ($what) refused (MPICH 4.0 cannot spawn), the job went on, output unchanged"
        return
    fi
    case "$op" in
        regroup) grep -q '"event":"regroup"' "$ev" 2>/dev/null || op_status="no regroup event" ;;
        migrate)
            if ! grep -q '"event":"migrate".*"new_pid"' "$ev" 2>/dev/null; then
                op_status="no migration event with a new pid"
            fi ;;
        checkpoint) grep -q '"event":"restart"' "$ev" 2>/dev/null || op_status="no restart event" ;;
    esac
    if [ -z "$op_status" ] && grep -q 'fortran-calls:' "$TESTS/$name.f90"; then
        local n
        n="$(cat "$err" "$err.restart" 2>/dev/null | grep -aEc '^fortran-calls: rank [0-9]+ checked [1-9][0-9]* calls, 0 miscounted$' || true)"
        [ "$n" -ge "$ranks" ] || op_status="per-call counts after the $op: $n of $ranks ranks clean"
    fi
    if [ -z "$op_status" ] && [ "${#specs[@]}" -gt 0 ]; then
        # every SPEC that fired made its event (a refused one: its regroup)
        local fired events
        fired="$(grep -acE "(regroup|migration) asked for after call" "$err" || true)"
        events="$(grep -cE '"event":"(regroup|migrate)"' "$ev" 2>/dev/null || true)"
        if [ "$events" -lt "$fired" ]; then
            op_status="$fired SPECs fired but the event log has $events events ($what)"
        else
            op_note="; $fired of $count fired, $events events ($what)"
            rm -rf "$dir/$name.ckpt"
        fi
    fi
    [ -n "$op_status" ] || [ -n "$op_note" ] || { op_note="; $op by $what"; rm -rf "$dir/$name.ckpt"; }
}

test_mpi() (
    # shellcheck source=scripts/mpi-env.sh
    . "$ROOT/scripts/mpi-env.sh" "$1"
    dir="$OUT/$FERRY_MPI/fortran"
    mkdir -p "$dir"
    local fc="$MPIF90" cc="$MPICC"
    if [ -z "$fc" ]; then
        for name in "${names[@]}"; do
            result "$FERRY_MPI" "$name" SKIP "the $FERRY_MPI ferry builds against has no Fortran bindings (Fortran on MPICH: mpich-deb)"
        done
        return 0
    fi
    if [ ! -x "$fc" ]; then
        for name in "${names[@]}"; do
            result "$FERRY_MPI" "$name" FAIL "no Fortran compiler $fc (scripts/setup.sh installs it)"
        done
        return 0
    fi
    if [ ! -f "$FERRY_LIB" ]; then
        for name in "${names[@]}"; do result "$FERRY_MPI" "$name" FAIL "no library $FERRY_LIB: build it first"; done
        return 0
    fi
    for name in "${names[@]}"; do
        local ranks objs=()
        ranks="$(grep -m1 -oE '^! ranks: [0-9]+' "$TESTS/$name.f90" | grep -oE '[0-9]+' || true)"
        if [ -z "$ranks" ]; then
            result "$FERRY_MPI" "$name" FAIL "no '! ranks: N' header"
            continue
        fi
        : >"$dir/$name.build.log"
        if [ -f "$TESTS/$name.c" ]; then
            objs=("$dir/$name.c.o")
            if ! "$cc" "${CFLAGS[@]}" -c -o "$dir/$name.c.o" "$TESTS/$name.c" >>"$dir/$name.build.log" 2>&1; then
                result "$FERRY_MPI" "$name" FAIL "build of $name.c failed"
                show_file "build log" "$dir/$name.build.log"
                continue
            fi
        fi
        # modules go to the output directory
        if ! (cd "$dir" && "$fc" "${FFLAGS[@]}" -o "$dir/$name" "$TESTS/$name.f90" "${objs[@]}") \
                >>"$dir/$name.build.log" 2>&1; then
            result "$FERRY_MPI" "$name" FAIL "build failed"
            show_file "build log" "$dir/$name.build.log"
            continue
        fi
        run_one plain "$name" "$ranks"
        if [ -n "$run_status" ]; then
            result "$FERRY_MPI" "$name" FAIL "$run_status"
            show_file stdout "$dir/$name.plain.out"
            show_file stderr "$dir/$name.plain.err"
            continue
        fi
        run_one lib "$name" "$ranks"
        against_plain "lib" || continue
        calls_note=""
        check_counts "$name" "$ranks"
        if [ -n "$count_status" ]; then
            result "$FERRY_MPI" "$name" FAIL "$count_status"
            show_file "lib stderr" "$dir/$name.lib.err"
            continue
        fi
        op_note=""
        if [ -n "$op" ]; then
            op_run "$name" "$ranks"
            if [ -n "$op_status" ]; then
                result "$FERRY_MPI" "$name" FAIL "$op_status"
                show_file "$op stderr" "$dir/$name.$op.err"
                continue
            fi
        fi
        result "$FERRY_MPI" "$name" PASS "$ranks ranks, plain vs lib${calls_note:+; rank 0 $calls_note}$op_note"
    done
)

for mpi in "${mpis[@]}"; do
    test_mpi "$mpi"
done
passed="$(grep -c '^PASS' "$RESULTS" || true)"
failed="$(grep -c '^FAIL' "$RESULTS" || true)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
