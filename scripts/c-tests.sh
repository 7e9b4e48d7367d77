#!/usr/bin/env bash
# Run ferry's C test programs (c-tests/*.c) with and without libferry.so.
#
#   scripts/c-tests.sh [--no-lib] [--regroups N [--seed S]] [mpich|openmpi|all] [NAME...]
#
# For each chosen MPI (default: all) and each program (default: every
# c-tests/*.c), build it into c-tests/out/$MPI/NAME and run it at the rank
# count of its "/* ranks: N */" header:
#   - plain:  without the library;
#   - lib:    with LD_PRELOAD=$FERRY_LIB plus the extra rank environment in
#             FERRY_TEST_ENV (space-separated VAR=VAL pairs).
# PASS when both runs exit 0, end with the line "OK", and print exactly the
# same stdout. With --no-lib the program runs plain twice instead and the two
# outputs must match (a determinism check). With --regroups N a third run
# follows: N regroups started by pseudo-random ranks at pseudo-random call
# counts (FERRY_REGROUP, drawn from seed S, default: the time; the SPECs are
# printed so that a failure can be replayed), whose stdout must equal the
# plain run's and whose event log must hold exactly N regroups. With
# --retries R a regroup run that fails is run again (same SPECs) up to R
# times; a pass after a failure is reported as such ("passed on retry") and
# listed in c-tests/out/flaky.txt, never hidden. Each run is limited by
# `timeout 60`. Outputs go to c-tests/out/$MPI/NAME.{plain,plain2,lib}.{out,err}.
# Prints one PASS/FAIL line per program and MPI, then "N passed, M failed";
# exits non-zero if anything failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TESTS="$ROOT/c-tests"
OUT="$TESTS/out"
TIMEOUT="${FERRY_TEST_TIMEOUT:-60}"
CFLAGS=(-O1 -g -Wall -Wextra -I"$ROOT/include")

usage() {
    sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 2
}

no_lib=0
regroups=0
retries=0
seed="$(date +%s)"
mpis=()
names=()
want=""
for arg in "$@"; do
    if [ -n "$want" ]; then
        printf -v "$want" '%s' "$arg"
        want=""
        continue
    fi
    case "$arg" in
        --no-lib) no_lib=1 ;;
        --regroups) want=regroups ;;
        --seed) want=seed ;;
        --retries) want=retries ;;
        -h|--help) usage ;;
        mpich|openmpi) mpis+=("$arg") ;;
        all) mpis+=(mpich openmpi) ;;
        -*) echo "c-tests.sh: unknown option '$arg'" >&2; usage ;;
        *) names+=("$(basename "${arg%.c}")") ;;
    esac
done
[ ${#mpis[@]} -gt 0 ] || mpis=(mpich openmpi)

if [ ${#names[@]} -eq 0 ]; then
    for src in "$TESTS"/*.c; do
        names+=("$(basename "${src%.c}")")
    done
fi
for name in "${names[@]}"; do
    if [ ! -f "$TESTS/$name.c" ]; then
        echo "c-tests.sh: no such test program: c-tests/$name.c" >&2
        exit 2
    fi
done

# Extra environment for the ranks of the with-library run.
test_env=()
if [ -n "${FERRY_TEST_ENV:-}" ]; then
    read -r -a test_env <<<"$FERRY_TEST_ENV"
    for kv in "${test_env[@]}"; do
        if [[ "$kv" != *=* ]]; then
            echo "c-tests.sh: FERRY_TEST_ENV entry '$kv' is not VAR=VAL" >&2
            exit 2
        fi
    done
fi

mkdir -p "$OUT"
RESULTS="$OUT/results.$$"
: >"$RESULTS"
trap 'rm -f "$RESULTS"' EXIT

# ranks_of NAME: the N of the "/* ranks: N */" header comment
ranks_of() {
    local n
    n="$(grep -m1 -oE '/\* ranks: [0-9]+ \*/' "$TESTS/$1.c" | grep -oE '[0-9]+' || true)"
    if [ -z "$n" ]; then
        echo "c-tests.sh: c-tests/$1.c has no '/* ranks: N */' header" >&2
        return 1
    fi
    echo "$n"
}

# result MPI NAME PASS|FAIL [REASON]
result() {
    local line
    if [ -n "${4:-}" ]; then line="$3 $2 [$1]: $4"; else line="$3 $2 [$1]"; fi
    echo "$line"
    echo "$line" >>"$RESULTS"
}

# show_file LABEL FILE: print the tail of a file, indented, if non-empty
show_file() {
    if [ -s "$2" ]; then
        echo "    --- $1 ($2, last 20 lines):"
        tail -n 20 "$2" | awk '{ print "    | " $0 }'
    fi
}

# run_one MODE NAME RANKS [VAR=VAL...]: run the program, output in
# $dir/NAME.MODE.{out,err}. Sets run_status to "" on success or to the reason
# it failed.
run_one() {
    local mode="$1" name="$2" ranks="$3"
    shift 3
    local cmd=("$MPIEXEC")
    # shellcheck disable=SC2206  # the flags are a word list on purpose
    [ -n "$FERRY_MPIEXEC_FLAGS" ] && cmd+=($FERRY_MPIEXEC_FLAGS)
    cmd+=(-n "$ranks")
    if [ "$mode" != plain ] && [ "$mode" != plain2 ]; then
        if [ "$FERRY_MPI" = mpich ]; then
            cmd+=(-genv LD_PRELOAD "$FERRY_LIB")
            for kv in "${test_env[@]}" "$@"; do cmd+=(-genv "${kv%%=*}" "${kv#*=}"); done
        else
            cmd+=(-x "LD_PRELOAD=$FERRY_LIB")
            for kv in "${test_env[@]}" "$@"; do cmd+=(-x "$kv"); done
        fi
    fi
    cmd+=("$dir/$name")
    local out="$dir/$name.$mode.out" err="$dir/$name.$mode.err" rc=0
    printf '%q ' "${cmd[@]}" >"$dir/$name.$mode.cmd"
    echo >>"$dir/$name.$mode.cmd"
    timeout -k 5 "$TIMEOUT" "${cmd[@]}" </dev/null >"$out" 2>"$err" || rc=$?
    run_status=""
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        run_status="$mode run timed out after ${TIMEOUT}s"
    elif [ "$rc" -ne 0 ]; then
        run_status="$mode run exited with status $rc"
    elif [ "$(tail -n 1 "$out")" != "OK" ]; then
        run_status="$mode run did not end with OK"
    fi
}

# test_mpi MPI: build and run every chosen program for one MPI (in a subshell,
# so that mpi-env.sh's exports do not leak into the next MPI).
test_mpi() (
    # shellcheck source=scripts/mpi-env.sh
    . "$ROOT/scripts/mpi-env.sh" "$1"
    # Debian's Open MPI 4.1.4 uses the ofi BTL for one-sided atomics here and
    # aborts (fi_fetch_atomic: Function not implemented): exclude it when the
    # BTL list is an exclusion list without it. (Belongs in mpi-env.sh.)
    if [ "$FERRY_MPI" = openmpi ] && [[ "${OMPI_MCA_btl:-}" == ^* ]] \
            && [[ "$OMPI_MCA_btl" != *ofi* ]]; then
        export OMPI_MCA_btl="$OMPI_MCA_btl,ofi"
    fi
    dir="$OUT/$FERRY_MPI"
    mkdir -p "$dir"
    if [ ! -x "$MPICC" ] || [ ! -x "$MPIEXEC" ]; then
        for name in "${names[@]}"; do result "$FERRY_MPI" "$name" FAIL "MPI not installed ($MPICC)"; done
        return 0
    fi
    local second=plain2
    if [ "$no_lib" -eq 0 ]; then
        second=lib
        if [ ! -f "$FERRY_LIB" ]; then
            echo "c-tests.sh: $FERRY_LIB does not exist: build it first (or use --no-lib)" >&2
            for name in "${names[@]}"; do result "$FERRY_MPI" "$name" FAIL "no library $FERRY_LIB"; done
            return 0
        fi
    fi
    for name in "${names[@]}"; do
        local ranks
        if ! ranks="$(ranks_of "$name")"; then
            result "$FERRY_MPI" "$name" FAIL "no ranks header"
            continue
        fi
        if ! "$MPICC" "${CFLAGS[@]}" -I"$TESTS" -o "$dir/$name" "$TESTS/$name.c" \
                >"$dir/$name.build.log" 2>&1; then
            result "$FERRY_MPI" "$name" FAIL "build failed"
            show_file "build log" "$dir/$name.build.log"
            continue
        fi
        if [ -s "$dir/$name.build.log" ]; then
            echo "note: $name [$FERRY_MPI] built with warnings, see $dir/$name.build.log"
        fi
        run_one plain "$name" "$ranks"
        if [ -n "$run_status" ]; then
            result "$FERRY_MPI" "$name" FAIL "$run_status"
            show_file stdout "$dir/$name.plain.out"
            show_file stderr "$dir/$name.plain.err"
            continue
        fi
        local lib_env=()
        [ "$regroups" -gt 0 ] && lib_env=(FERRY_LOG=debug)
        run_one "$second" "$name" "$ranks" "${lib_env[@]}"
        if [ -n "$run_status" ]; then
            result "$FERRY_MPI" "$name" FAIL "$run_status"
            echo "    command: $(cat "$dir/$name.$second.cmd")"
            show_file stdout "$dir/$name.$second.out"
            show_file stderr "$dir/$name.$second.err"
            continue
        fi
        if ! diff -u "$dir/$name.plain.out" "$dir/$name.$second.out" >"$dir/$name.diff" 2>&1; then
            result "$FERRY_MPI" "$name" FAIL "stdout differs between plain and $second run"
            show_file "diff plain vs $second" "$dir/$name.diff"
            show_file "$second stderr" "$dir/$name.$second.err"
            continue
        fi
        rm -f "$dir/$name.diff"
        if [ "$regroups" -gt 0 ] && [ "$no_lib" -eq 0 ]; then
            regroup_one "$name" "$ranks"
            continue
        fi
        result "$FERRY_MPI" "$name" PASS "$ranks ranks, plain vs $second"
    done
)

# regroup_one NAME RANKS: the run with $regroups regroups (see the header),
# tried again up to $retries times if it fails.
regroup_one() {
    local name="$1" ranks="$2" try first=""
    for ((try = 0; try <= retries; try++)); do
        regroup_try "$name" "$ranks"
        if [ -z "$try_failure" ]; then
            if [ -n "$first" ]; then
                result "$FERRY_MPI" "$name" PASS "$try_pass; passed on retry $try, first run: $first"
                echo "$FERRY_MPI $name: $first" >>"$OUT/flaky.txt"
            else
                result "$FERRY_MPI" "$name" PASS "$try_pass"
            fi
            return 0
        fi
        [ -n "$first" ] || first="$try_failure"
        echo "    (regroup run of $name [$FERRY_MPI] failed: $try_failure)"
    done
    result "$FERRY_MPI" "$name" FAIL "$try_failure"
}

# regroup_try NAME RANKS: one attempt; sets try_failure ("" on success)
# and try_pass (the success line).
regroup_try() {
    try_failure=""
    try_pass=""
    local name="$1" ranks="$2" r calls=()
    for ((r = 0; r < ranks; r++)); do
        calls[r]="$(sed -n "s/^ferry\[rank $r pid [0-9]*\] debug: finalize: \([0-9]*\) calls.*/\1/p" \
            "$dir/$name.lib.err" | head -n 1)"
        if [ -z "${calls[r]}" ]; then
            try_failure="no call count for rank $r in $dir/$name.lib.err"
            return 0
        fi
    done
    # Seeded per program, so one program's specs do not depend on the others.
    RANDOM=$(( (seed + $(cksum <<<"$name" | cut -d' ' -f1)) % 32768 ))
    local specs=() i rank after
    for ((i = 0; i < regroups; i++)); do
        rank=$((RANDOM % ranks))
        # Within the first third of the rank's calls: programs that poll
        # (MPI_Test loops) make fewer calls in some runs than in others.
        after=$(( (RANDOM * 32768 + RANDOM) % (calls[rank] > 3 ? calls[rank] / 3 : 1) + 1 ))
        specs+=("rank=$rank,after=$after")
    done
    local spec_list events="$dir/$name.regroup.events" attempt
    # A program that polls may make fewer calls in this run than in the one
    # counted: if no SPEC fired, the call counts are quartered and it runs
    # again (at most twice).
    for attempt in 1 2 3; do
        spec_list="$(IFS=';'; echo "${specs[*]}")"
        rm -f "$events"
        run_one regroup "$name" "$ranks" "FERRY_REGROUP=$spec_list" "FERRY_EVENTS=$events" "FERRY_LOG=${FERRY_LOG:-info}"
        [ -n "$run_status" ] && break
        grep -q 'regroup asked for' "$dir/$name.regroup.err" && break
        for i in "${!specs[@]}"; do
            rank="${specs[i]#rank=}"; rank="${rank%%,*}"
            after="${specs[i]##*after=}"
            specs[i]="rank=$rank,after=$(( after / 4 + 1 ))"
        done
    done
    local replay="replay: --regroups $regroups --seed $seed $FERRY_MPI $name (FERRY_REGROUP=\"$spec_list\")"
    if [ -n "$run_status" ]; then
        try_failure="$run_status; $replay"
        show_file stdout "$dir/$name.regroup.out"
        show_file stderr "$dir/$name.regroup.err"
        return 0
    fi
    if ! diff -u "$dir/$name.plain.out" "$dir/$name.regroup.out" >"$dir/$name.diff" 2>&1; then
        try_failure="stdout differs with regroups; $replay"
        show_file "diff plain vs regroup" "$dir/$name.diff"
        show_file "regroup stderr" "$dir/$name.regroup.err"
        return 0
    fi
    rm -f "$dir/$name.diff"
    # Programs that poll make a different number of calls from run to run:
    # a SPEC beyond this run's count never fires. Every one that fired must
    # have run (queued ones included), and at least one must have.
    local done_n fired
    done_n="$(grep -c '"event":"regroup"' "$events" 2>/dev/null || true)"
    # (programs may ask for more themselves: the C API, a signal)
    fired="$(grep -c 'regroup asked for' "$dir/$name.regroup.err" || true)"
    if [ "${fired:-0}" -eq 0 ] || [ "${done_n:-0}" -ne "$fired" ]; then
        try_failure="${done_n:-0} regroups in the event log, ${fired:-0} asked for ($regroups SPECs); $replay"
        show_file "regroup stderr" "$dir/$name.regroup.err"
        return 0
    fi
    try_pass="$ranks ranks, plain vs $done_n regroups of $regroups SPECs (seed $seed)"
}

if [ "$no_lib" -eq 1 ]; then
    echo "c-tests: ${#names[@]} program(s) on ${mpis[*]}, plain runs only (determinism check)"
elif [ "$regroups" -gt 0 ]; then
    echo "c-tests: ${#names[@]} program(s) on ${mpis[*]}, plain vs libferry.so with $regroups regroups (seed $seed)"
else
    echo "c-tests: ${#names[@]} program(s) on ${mpis[*]}, plain vs LD_PRELOAD=libferry.so${FERRY_TEST_ENV:+ with $FERRY_TEST_ENV}"
fi
for mpi in "${mpis[@]}"; do
    test_mpi "$mpi"
done

passed="$(grep -c '^PASS ' "$RESULTS" || true)"
failed="$(grep -c '^FAIL ' "$RESULTS" || true)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
