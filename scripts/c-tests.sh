#!/usr/bin/env bash
# Run ferry's C test programs (c-tests/*.c) with and without libferry.so.
#
#   scripts/c-tests.sh [--no-lib] [--regroups N] [--migrations N]
#                      [--checkpoints N] [--seed S] [--retries R]
#                      [mpich|openmpi|mpich-deb|all] [NAME...]
#
# For each chosen MPI (default and all: mpich and openmpi) and each program (default: every
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
# plain run's and whose event log must hold exactly N regroups.
# --migrations N is the same with N migrations (FERRY_MIGRATE, the process
# image on): stdout equal to the plain run's; one "migrate" event per SPEC
# that fired (or, for a program of CKPT_REFUSALS below, a refusal for the
# reason listed there); and the "ctest-pids:" lines every rank prints on
# stderr (common.h) show each rank that moved ending in another process
# than the one that started it, and every other rank in its own.
# With --checkpoints N (not with --no-lib) N checkpoint/restart cases follow
# instead of the plain-vs-lib line: N call counts K of world rank 0 drawn
# from seed S in [1, 9/10 of rank 0's calls in the lib run] (printed for
# replay), each run as `ferry run --checkpoint after=K,dir=DIR` (FERRY_LOG=
# info, in c-tests/out/$MPI/ckpt/NAME.K/: DIR img/, events.jsonl, work/ as
# the working directory, {run,restart}.{out,err,cmd}) and then:
#   - "checkpoint written": `ferry restart DIR`; both exit 0, the two stdouts
#     together equal the plain run's, DIR is mode 700 with files mode 600 (a
#     rank-R.img per rank and checkpoint.json), the event log has exactly one
#     checkpoint and one restart event; the images are deleted on a pass;
#   - "checkpoint refused": a PASS only for a program of CKPT_REFUSALS below
#     whose reason contains (one of) the substring(s) listed there; the job
#     must exit 0 with the plain run's stdout and DIR must hold no image;
#   - neither (rank 0 made fewer calls this time): K becomes K/4+1 and the
#     run is made again, at most twice; then a FAIL.
# The ranks of ferry runs get only the FERRY_* entries of FERRY_TEST_ENV.
# With --retries R a regroup or checkpoint case that fails is run again
# (same SPECs or K) up to R times; a pass after a failure is reported as
# such ("passed on retry") and listed in c-tests/out/flaky.txt, never hidden.
# Each run is limited by `timeout 60` (FERRY_TEST_TIMEOUT). Outputs go to
# c-tests/out/$MPI/NAME.{plain,plain2,lib,regroup}.{out,err,cmd}.
# Prints one PASS/FAIL line per program and MPI (per program, MPI and K with
# --checkpoints), then "N passed, M failed"; exits non-zero if anything
# failed.

# test_mpi runs in a subshell on purpose (mpi-env.sh's exports stay in it);
# the functions it calls run in that subshell and see what it sets.
# shellcheck disable=SC2030,SC2031
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TESTS="$ROOT/c-tests"
OUT="$TESTS/out"
TIMEOUT="${FERRY_TEST_TIMEOUT:-60}"
CFLAGS=(-O1 -g -Wall -Wextra -I"$ROOT/include")

# Expected checkpoint refusals (--checkpoints): program -> a substring the
# "checkpoint refused" reason must contain (alternatives separated by "|").
# A refusal of any other program, or for another reason, is a FAIL. The
# library refuses programs holding error handlers of the program, attribute
# keyvals, RMA windows, info objects or threads (as long as it cannot carry
# them; derived datatypes and reduction operations it carries); a program
# is refused only while it holds one, so whether a K is refused depends on
# where it falls. An entry allows a refusal, it does not require one.
declare -A CKPT_REFUSALS=(
    # Comm keyvals (with copy/delete callbacks) from early on, then a Type
    # keyval (a keyval the program freed still counts: its attributes may
    # still be held)
    [attrs]='attribute keyval'
    # a user error handler (Comm_create_errhandler) set on a communicator
    [errhandler]='error handler'
    # a worker pthread of its own from MPI_Init_thread to the end
    [image_thread]='thread'
    # a Comm keyval whose attribute stays on a dup across the barriers
    [many_barriers]='attribute keyval'
    # Info objects (Info_create, Info_dup, Comm_get_info) for a while
    [misc]='info object'
    # a message matched by MPI_Mprobe/MPI_Improbe and received later
    [probe]='matched with MPI_Mprobe'
    # an RMA window (Win_create, then Win_allocate) for the whole run
    [rma]='RMA window'
    # a communicator rank 0 freed and ranks 1 and 2 still use
    [freed_comm]='cannot be made again in a new process'
    # its own ferry_migrate calls move ranks early on (image on under
    # `ferry run`): a checkpoint after a migration is refused
    [migrate]='after a migration'
)

usage() {
    awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"
    exit 2
}

no_lib=0
regroups=0
migrations=0
checkpoints=0
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
        --migrations) want=migrations ;;
        --checkpoints) want=checkpoints ;;
        --seed) want=seed ;;
        --retries) want=retries ;;
        -h|--help) usage ;;
        mpich|openmpi|mpich-deb) mpis+=("$arg") ;;
        all) mpis+=(mpich openmpi) ;;
        -*) echo "c-tests.sh: unknown option '$arg'" >&2; usage ;;
        *) names+=("$(basename "${arg%.c}")") ;;
    esac
done
if [ -n "$want" ]; then
    echo "c-tests.sh: --$want needs a value" >&2
    usage
fi
for opt in regroups migrations checkpoints seed retries; do
    if ! [[ "${!opt}" =~ ^(0|[1-9][0-9]*)$ ]]; then
        echo "c-tests.sh: --$opt wants a non-negative integer, not '${!opt}'" >&2
        usage
    fi
done
if { [ "$checkpoints" -gt 0 ] || [ "$migrations" -gt 0 ]; } && [ "$no_lib" -eq 1 ]; then
    echo "c-tests.sh: --checkpoints and --migrations need the library (not with --no-lib)" >&2
    exit 2
fi
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

# build_program NAME DIR: builds c-tests/NAME.c into DIR/NAME, after the
# shared libraries of its "/* ferry-test-lib: FILE SOURCE [FLAGS...] */"
# headers (SOURCE under c-tests/, built with the same mpicc, -shared -fPIC,
# into DIR/FILE); "/* ferry-test-link: FLAGS */" adds link flags, with DIR
# on the library path and in the program's RUNPATH.
build_program() {
    local name="$1" dir="$2" lib src rest
    local -a link=()
    while read -r lib src rest; do
        # shellcheck disable=SC2086  # FLAGS are words
        "$MPICC" -O1 -g -Wall -shared -fPIC $rest -o "$dir/$lib" "$TESTS/$src" || return 1
    done < <(sed -n 's|^/\* ferry-test-lib: \(.*\) \*/$|\1|p' "$TESTS/$name.c")
    read -r -a link < <(sed -n 's|^/\* ferry-test-link: \(.*\) \*/$|\1|p' "$TESTS/$name.c"; echo)
    "$MPICC" "${CFLAGS[@]}" -I"$TESTS" -o "$dir/$name" "$TESTS/$name.c" \
        -L"$dir" -Wl,-rpath,"$dir" "${link[@]}"
}

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

# shellcheck source=scripts/lib-tests.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib-tests.sh"

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
        if [ "$FERRY_MPI" != openmpi ]; then
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
        if [ "$checkpoints" -gt 0 ] && [ ! -x "$FERRY_BIN" ]; then
            echo "c-tests.sh: $FERRY_BIN does not exist: build it first (--checkpoints runs it)" >&2
            for name in "${names[@]}"; do result "$FERRY_MPI" "$name" FAIL "no ferry command $FERRY_BIN"; done
            return 0
        fi
    fi
    for name in "${names[@]}"; do
        local ranks
        if ! ranks="$(ranks_of "$name")"; then
            result "$FERRY_MPI" "$name" FAIL "no ranks header"
            continue
        fi
        if ! build_program "$name" "$dir" >"$dir/$name.build.log" 2>&1; then
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
        # the call counts (finalize: N calls) for --regroups, --checkpoints
        if [ "$regroups" -gt 0 ] || [ "$checkpoints" -gt 0 ] || [ "$migrations" -gt 0 ]; then
            lib_env=(FERRY_LOG=debug)
        fi
        run_one "$second" "$name" "$ranks" "${lib_env[@]}"
        against_plain "$second" || continue
        if [ "$regroups" -gt 0 ] && [ "$no_lib" -eq 0 ]; then
            op=regroup count="$regroups" regroup_one "$name" "$ranks"
            if [ "$migrations" -gt 0 ]; then op=migrate count="$migrations" regroup_one "$name" "$ranks"; fi
            if [ "$checkpoints" -gt 0 ]; then checkpoint_all "$name" "$ranks"; fi
            continue
        fi
        if [ "$migrations" -gt 0 ]; then
            op=migrate count="$migrations" regroup_one "$name" "$ranks"
            if [ "$checkpoints" -gt 0 ]; then checkpoint_all "$name" "$ranks"; fi
            continue
        fi
        if [ "$checkpoints" -gt 0 ] && [ "$name" = migrate ]; then
            # migrate.c moves its ranks itself early on (the process image
            # is on under `ferry run`): every checkpoint after that is
            # refused, and on Open MPI the end of such a job can hang in
            # its TCP transport (a known bug of several migrations there).
            echo "SKIP migrate [$FERRY_MPI] --checkpoints: a checkpoint after a migration is refused; known end-of-job hang on Open MPI"
            result "$FERRY_MPI" "$name" PASS "$ranks ranks, plain vs $second (checkpoints skipped)"
            continue
        fi
        if [ "$checkpoints" -gt 0 ]; then
            checkpoint_all "$name" "$ranks"
            continue
        fi
        result "$FERRY_MPI" "$name" PASS "$ranks ranks, plain vs $second"
    done
)

# regroup_one NAME RANKS: the run with $count regroups ($op=regroup) or
# migrations ($op=migrate) (see the header), tried again up to $retries
# times if it fails.
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
        echo "    ($op run of $name [$FERRY_MPI] failed: $try_failure)"
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
    # Seeded per program (and operation), so one program's specs do not
    # depend on the others.
    RANDOM=$(( (seed + $(cksum <<<"$name$op" | cut -d' ' -f1)) % 32768 ))
    local specs=() i rank after
    for ((i = 0; i < count; i++)); do
        rank=$((RANDOM % ranks))
        # Within the first third of the rank's calls: programs that poll
        # (MPI_Test loops) make fewer calls in some runs than in others.
        after=$(( (RANDOM * 32768 + RANDOM) % (calls[rank] > 3 ? calls[rank] / 3 : 1) + 1 ))
        specs+=("rank=$rank,after=$after")
    done
    local var=FERRY_REGROUP asked='regroup asked for' mode=regroup extra=()
    if [ "$op" = migrate ]; then
        var=FERRY_MIGRATE asked='migration (asked for|of rank [0-9]+.* asked for)' mode=migrate extra=(FERRY_IMAGE=1)
    fi
    local spec_list events="$dir/$name.$mode.events" attempt
    # A program that polls may make far fewer calls in this run than in the
    # one counted (probe.c: 20 to 600 in one rank): if no SPEC fired, the
    # call counts are quartered and it runs again (at most four times).
    for attempt in 1 2 3 4 5; do
        spec_list="$(IFS=';'; echo "${specs[*]}")"
        rm -f "$events"
        run_one "$mode" "$name" "$ranks" "$var=$spec_list" "FERRY_EVENTS=$events" "FERRY_LOG=${FERRY_LOG:-info}" "${extra[@]}"
        [ -n "$run_status" ] && break
        grep -qE "$asked" "$dir/$name.$mode.err" && break
        for i in "${!specs[@]}"; do
            rank="${specs[i]#rank=}"; rank="${rank%%,*}"
            after="${specs[i]##*after=}"
            specs[i]="rank=$rank,after=$(( after / 4 + 1 ))"
        done
    done
    local replay="replay: --${op/%migrate/migration}s $count --seed $seed $FERRY_MPI $name ($var=\"$spec_list\")"
    if [ -n "$run_status" ]; then
        try_failure="$run_status; $replay"
        show_file stdout "$dir/$name.$mode.out"
        show_file stderr "$dir/$name.$mode.err"
        return 0
    fi
    if ! diff -u "$dir/$name.plain.out" "$dir/$name.$mode.out" >"$dir/$name.diff" 2>&1; then
        try_failure="stdout differs with ${op}s; $replay"
        show_file "diff plain vs $mode" "$dir/$name.diff"
        show_file "$mode stderr" "$dir/$name.$mode.err"
        return 0
    fi
    rm -f "$dir/$name.diff"
    # Programs that poll make a different number of calls from run to run:
    # a SPEC beyond this run's count never fires. Every one that fired must
    # have run (queued ones included), and at least one must have.
    local done_n fired refused=0
    # (a migration refused is a regroup line with "migration_refused")
    done_n="$(grep "\"event\":\"$op\"" "$events" 2>/dev/null | grep -vc 'migration_refused' || true)"
    # (programs may ask for more themselves: the C API, a signal)
    fired="$(grep -cE "$asked" "$dir/$name.$mode.err" || true)"
    if [ "$op" = migrate ]; then
        refused="$(grep -c 'migration_refused' "$events" 2>/dev/null || true)"
        if [ "${refused:-0}" -gt 0 ]; then
            local want="${CKPT_REFUSALS[$name]:-}" ok=0 alt
            if [ -n "$want" ]; then
                IFS='|' read -r -a alts <<<"$want"
                for alt in "${alts[@]}"; do
                    grep -q "migration of rank [0-9]* refused: .*$alt" "$dir/$name.$mode.err" && ok=1
                done
            fi
            if [ "$ok" -eq 0 ]; then
                try_failure="$refused migration(s) refused, not expected for $name; $replay"
                show_file "$mode stderr" "$dir/$name.$mode.err"
                return 0
            fi
        fi
        # Refused before any regroup because the job has no state window
        # any more: allowed on Open MPI only, whose processes of several
        # spawned jobs may disagree on their node (docs/migration.md).
        local disabled
        disabled="$(grep -c 'refused: regroups and migrations are disabled in this job' "$dir/$name.$mode.err" || true)"
        if [ "${disabled:-0}" -gt 0 ] && [ "$FERRY_MPI" != openmpi ]; then
            try_failure="$disabled migration(s) refused because regroups were disabled, not expected on $FERRY_MPI; $replay"
            show_file "$mode stderr" "$dir/$name.$mode.err"
            return 0
        fi
        refused=$(( ${refused:-0} + ${disabled:-0} ))
    fi
    if [ "${fired:-0}" -eq 0 ] || [ $(( ${done_n:-0} + ${refused:-0} )) -ne "$fired" ]; then
        try_failure="${done_n:-0} ${op}s (and ${refused:-0} refused) in the event log, ${fired:-0} asked for ($count SPECs); $replay"
        show_file "$mode stderr" "$dir/$name.$mode.err"
        return 0
    fi
    if [ "$op" = migrate ]; then
        # Which ranks moved (event lines), and where each rank ended.
        local moved=" " line r a b
        while read -r r; do moved+="$r "; done < <(sed -n 's/.*"event":"migrate","rank":\([0-9]*\).*/\1/p' "$events")
        for ((r = 0; r < ranks; r++)); do
            line="$(grep -m1 "^ctest-pids: rank $r " "$dir/$name.$mode.err" || true)"
            if [ -z "$line" ]; then
                try_failure="rank $r printed no ctest-pids line; $replay"
                return 0
            fi
            a="$(sed -n 's/.*started in pid \([0-9]*\),.*/\1/p' <<<"$line")"
            b="$(sed -n 's/.*ends in pid \([0-9]*\)$/\1/p' <<<"$line")"
            if [[ "$moved" == *" $r "* ]] && [ "$a" = "$b" ]; then
                try_failure="rank $r migrated but ends in the process that started it (pid $a); $replay"
                return 0
            fi
            if [[ "$moved" != *" $r "* ]] && [ "$a" != "$b" ]; then
                try_failure="rank $r did not migrate but ends in pid $b, started in $a; $replay"
                return 0
            fi
        done
        try_pass="$ranks ranks, plain vs $done_n migrations of $count SPECs (ranks moved:${moved% }; ${refused:-0} refused; seed $seed)"
        return 0
    fi
    try_pass="$ranks ranks, plain vs $done_n regroups of $count SPECs (seed $seed)"
}

# describe_rc RC: how a run ended, for a failure message
describe_rc() {
    if [ "$1" -eq 124 ] || [ "$1" -eq 137 ]; then
        echo "timed out after ${TIMEOUT}s"
    elif [ "$1" -gt 128 ]; then
        echo "exited with status $1 (signal $(($1 - 128))?)"
    else
        echo "exited with status $1"
    fi
}

# ferry_run PREFIX CWD CMD...: run a ferry command in CWD with FERRY_LOG=info
# (unless FERRY_LOG is set) and FERRY_TEST_ENV, output in PREFIX.{out,err},
# the command line in PREFIX.cmd; sets rc (never fails)
ferry_run() {
    local prefix="$1" cwd="$2"
    shift 2
    local envs=("FERRY_LOG=${FERRY_LOG:-info}" "${test_env[@]}")
    { printf 'cd %q && env' "$cwd"; printf ' %q' "${envs[@]}" "$@"; echo; } >"$prefix.cmd"
    rc=0
    (cd "$cwd" && exec timeout -k 5 "$TIMEOUT" env "${envs[@]}" "$@") \
        </dev/null >"$prefix.out" 2>"$prefix.err" || rc=$?
}

# checkpoint_all NAME RANKS: the $checkpoints checkpoint/restart cases (see
# the header), one result line per K
checkpoint_all() {
    local name="$1" ranks="$2" calls0
    rm -rf "${dir:?}/ckpt/$name".*
    mkdir -p "$dir/ckpt"
    calls0="$(sed -n "/^ferry\[rank 0 pid [0-9]*\] debug: finalize: [0-9]* calls/{s/.*debug: finalize: \([0-9]*\) calls.*/\1/p;q}" \
        "$dir/$name.lib.err")"
    if [ -z "$calls0" ]; then
        result "$FERRY_MPI" "$name" FAIL "checkpoints: no call count for rank 0 in $dir/$name.lib.err"
        return 0
    fi
    # Seeded per program, so one program's Ks do not depend on the others.
    RANDOM=$(( (seed + $(cksum <<<"checkpoint $name" | cut -d' ' -f1)) % 32768 ))
    local top=$((calls0 * 9 / 10)) ks=() i
    [ "$top" -ge 1 ] || top=1
    for ((i = 0; i < checkpoints; i++)); do
        ks+=("$(( (RANDOM * 32768 + RANDOM) % top + 1 ))")
    done
    echo "    checkpoints of $name [$FERRY_MPI] at K = ${ks[*]} (rank 0 made $calls0 calls;" \
        "replay: --checkpoints $checkpoints --seed $seed $FERRY_MPI $name)"
    for i in "${!ks[@]}"; do
        checkpoint_one "$name" "$ranks" "${ks[i]}" "$i"
    done
}

# checkpoint_one NAME RANKS K I: the I-th case, tried again up to $retries
# times if it fails (a failed try's directory is kept as CASE.failT)
checkpoint_one() {
    local name="$1" ranks="$2" k="$3" try first="" case_dir="$dir/ckpt/$1.$3"
    # the same K drawn twice
    [ ! -e "$case_dir" ] || case_dir="$case_dir-$4"
    for ((try = 0; try <= retries; try++)); do
        checkpoint_try "$name" "$ranks" "$k" "$case_dir"
        if [ -z "$try_failure" ]; then
            if [ -n "$first" ]; then
                result "$FERRY_MPI" "$name" PASS "$try_pass; passed on retry $try, first run: $first"
                echo "$FERRY_MPI $name checkpoint at $k: $first" >>"$OUT/flaky.txt"
            else
                result "$FERRY_MPI" "$name" PASS "$try_pass"
            fi
            return 0
        fi
        [ -n "$first" ] || first="$try_failure"
        if [ "$try" -lt "$retries" ]; then
            rm -rf "$case_dir.fail$try"
            mv "$case_dir" "$case_dir.fail$try"
            echo "    (checkpoint case of $name [$FERRY_MPI] at $k failed: $try_failure; kept in $case_dir.fail$try)"
        fi
    done
    result "$FERRY_MPI" "$name" FAIL "$try_failure"
}

# checkpoint_try NAME RANKS K CASE_DIR: one attempt; sets try_failure (""
# on success) and try_pass (the success line)
checkpoint_try() {
    try_failure=""
    try_pass=""
    local name="$1" ranks="$2" k="$3" cdir="$4"
    local ck="$4/img" events="$4/events.jsonl" plain="$dir/$1.plain.out"
    local got="" tried=() attempt
    # A program that polls may make fewer calls in this run than in the one
    # counted: if rank 0 never reached K, K is quartered (at most twice).
    for attempt in 1 2 3; do
        rm -rf "$cdir"
        mkdir -p "$cdir/work"
        tried+=("$k")
        ferry_run "$cdir/run" "$cdir/work" "$FERRY_BIN" run --mpi "$FERRY_MPI" -n "$ranks" \
            --events "$events" --checkpoint "after=$k,dir=$ck" -- "$dir/$name"
        if grep -q 'checkpoint written' "$cdir/run.err"; then
            got=written
        elif grep -q 'checkpoint refused' "$cdir/run.err"; then
            got=refused
        elif grep -q 'checkpoint failed' "$cdir/run.err"; then
            got=failed
        fi
        if [ -n "$got" ] || [ "$rc" -ne 0 ] || [ "$attempt" -eq 3 ]; then
            break
        fi
        k=$((k / 4 + 1))
    done
    local at="checkpoint at $k"
    [ "${#tried[@]}" -eq 1 ] || at="$at (K ${tried[*]} tried in turn)"
    local replay="replay: --checkpoints $checkpoints --seed $seed $FERRY_MPI $name; commands in $cdir/*.cmd"
    case "$got" in
        failed)
            try_failure="$at: $(grep -m1 'checkpoint failed' "$cdir/run.err" | cut -c1-200 || true); $replay"
            show_file "checkpoint run stderr" "$cdir/run.err"
            return 0
            ;;
        "")
            if [ "$rc" -ne 0 ]; then
                try_failure="$at: the run $(describe_rc "$rc") without a checkpoint message; $replay"
            else
                try_failure="no checkpoint: rank 0 never reached K ${tried[*]} (no 'checkpoint written' or 'checkpoint refused' on stderr); $replay"
            fi
            show_file "checkpoint run stdout" "$cdir/run.out"
            show_file "checkpoint run stderr" "$cdir/run.err"
            return 0
            ;;
        refused)
            checkpoint_refused "$name" "$cdir" "$at" "$replay"
            return 0
            ;;
    esac
    if [ "$rc" -ne 0 ]; then
        try_failure="$at: written, but the run $(describe_rc "$rc"); $replay"
        show_file "checkpoint run stderr" "$cdir/run.err"
        return 0
    fi
    local mode bad="" r
    mode="$(stat -c %a "$ck" 2>/dev/null || echo none)"
    [ "$mode" = 700 ] || bad="$ck has mode $mode, not 700"
    for r in checkpoint.json $(seq -f 'rank-%g.img' 0 $((ranks - 1))); do
        [ -n "$bad" ] || [ -f "$ck/$r" ] || bad="$ck has no $r"
    done
    if [ -z "$bad" ]; then
        bad="$(find "$ck" -mindepth 1 \( ! -type f -o ! -perm 600 \) -printf '%M %P, ' | head -c 300)"
        [ -z "$bad" ] || bad="$ck has entries that are not files of mode 600: ${bad%, }"
    fi
    if [ -n "$bad" ]; then
        try_failure="$at: $bad; $replay"
        show_file "checkpoint run stderr" "$cdir/run.err"
        return 0
    fi
    local size
    size="$(du -sh "$ck" | cut -f1)"
    ferry_run "$cdir/restart" "$cdir/work" "$FERRY_BIN" restart "$ck"
    if [ "$rc" -ne 0 ]; then
        try_failure="$at (image $size): the restart $(describe_rc "$rc"); $replay"
        show_file "checkpoint run stderr" "$cdir/run.err"
        show_file "restart stdout" "$cdir/restart.out"
        show_file "restart stderr" "$cdir/restart.err"
        return 0
    fi
    cat "$cdir/run.out" "$cdir/restart.out" >"$cdir/both.out"
    if ! diff -u "$plain" "$cdir/both.out" >"$cdir/diff" 2>&1; then
        try_failure="$at (image $size): checkpoint + restart stdout differs from the plain run's ($(wc -l <"$cdir/run.out") + $(wc -l <"$cdir/restart.out") lines vs $(wc -l <"$plain")); $replay"
        show_file "diff plain vs checkpoint+restart" "$cdir/diff"
        show_file "checkpoint run stderr" "$cdir/run.err"
        show_file "restart stderr" "$cdir/restart.err"
        return 0
    fi
    rm -f "$cdir/diff"
    local n_ckpt n_restart
    n_ckpt="$(grep -c '"event":"checkpoint"' "$events" 2>/dev/null || true)"
    n_restart="$(grep -c '"event":"restart"' "$events" 2>/dev/null || true)"
    if [ "${n_ckpt:-0}" -ne 1 ] || [ "${n_restart:-0}" -ne 1 ]; then
        try_failure="$at (image $size): ${n_ckpt:-0} checkpoint and ${n_restart:-0} restart events in $events, expected 1 and 1; $replay"
        return 0
    fi
    try_pass="$at (image $size), restarted"
    rm -f "$ck"/*.img
}

# checkpoint_refused NAME CASE_DIR AT REPLAY: judge a refused checkpoint;
# sets try_failure or try_pass
checkpoint_refused() {
    local name="$1" cdir="$2" at="$3" replay="$4"
    local expect="${CKPT_REFUSALS[$1]:-}" reason
    reason="$(grep -m1 'checkpoint refused: rank [0-9]*: ' "$cdir/run.err" \
        | sed 's/.*checkpoint refused: //; s/; the job goes on$//' | cut -c1-200 || true)"
    if [ "$rc" -ne 0 ]; then
        try_failure="$at refused ($reason), but the job $(describe_rc "$rc") instead of going on; $replay"
        show_file "checkpoint run stdout" "$cdir/run.out"
        show_file "checkpoint run stderr" "$cdir/run.err"
        return 0
    fi
    if ! diff -u "$dir/$name.plain.out" "$cdir/run.out" >"$cdir/diff" 2>&1; then
        try_failure="$at refused, but stdout differs from the plain run's; $replay"
        show_file "diff plain vs refused run" "$cdir/diff"
        show_file "checkpoint run stderr" "$cdir/run.err"
        return 0
    fi
    rm -f "$cdir/diff"
    local images=""
    [ ! -d "$cdir/img" ] || images="$(find "$cdir/img" -name '*.img' -printf '%P ' | head -c 200)"
    if [ -n "$images" ]; then
        try_failure="$at refused, but images were written: $images; $replay"
        return 0
    fi
    if [ -z "$expect" ]; then
        try_failure="$at refused, but $name is not expected to be: $reason; $replay"
        show_file "checkpoint run stderr" "$cdir/run.err"
        return 0
    fi
    local alternatives=()
    IFS='|' read -r -a alternatives <<<"$expect"
    local alt=() a
    for a in "${alternatives[@]}"; do alt+=(-e "$a"); done
    if ! grep 'checkpoint refused' "$cdir/run.err" | grep -qF "${alt[@]}"; then
        try_failure="$at refused for another reason than '$expect': $reason; $replay"
        show_file "checkpoint run stderr" "$cdir/run.err"
        return 0
    fi
    reason="$(grep 'checkpoint refused' "$cdir/run.err" | grep -m1 -F "${alt[@]}" \
        | sed 's/.*checkpoint refused: //; s/; the job goes on$//' | cut -c1-200 || true)"
    try_pass="$at refused as expected: $reason"
}

if [ "$no_lib" -eq 1 ]; then
    echo "c-tests: ${#names[@]} program(s) on ${mpis[*]}, plain runs only (determinism check)"
elif [ "$regroups" -gt 0 ] || [ "$checkpoints" -gt 0 ] || [ "$migrations" -gt 0 ]; then
    what=()
    [ "$regroups" -eq 0 ] || what+=("$regroups regroups")
    [ "$migrations" -eq 0 ] || what+=("$migrations migrations")
    [ "$checkpoints" -eq 0 ] || what+=("$checkpoints checkpoints/restarts")
    echo "c-tests: ${#names[@]} program(s) on ${mpis[*]}, plain vs libferry.so with $(printf '%s, ' "${what[@]}" | sed 's/, $//') (seed $seed)"
else
    echo "c-tests: ${#names[@]} program(s) on ${mpis[*]}, plain vs LD_PRELOAD=libferry.so${FERRY_TEST_ENV:+ with $FERRY_TEST_ENV}"
fi
for mpi in "${mpis[@]}"; do
    test_mpi "$mpi"
done

if [ "$checkpoints" -gt 0 ]; then
    for mpi in "${mpis[@]}"; do
        echo "checkpoints [$mpi]: $(grep -c "^PASS .* \[$mpi\]: .*, restarted" "$RESULTS" || true) restarted," \
            "$(grep -c "^PASS .* \[$mpi\]: .* refused as expected" "$RESULTS" || true) refused as expected," \
            "$(grep -c "^FAIL .* \[$mpi\]" "$RESULTS" || true) failed"
    done
fi
passed="$(grep -c '^PASS ' "$RESULTS" || true)"
failed="$(grep -c '^FAIL ' "$RESULTS" || true)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
