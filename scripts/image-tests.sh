#!/usr/bin/env bash
# Checkpoint/restart tests: `ferry run --checkpoint after=K,dir=DIR` then
# `ferry restart DIR` against plain runs of the same programs.
#
#   scripts/image-tests.sh [--keep] [mpich|openmpi|all]
#
# For each chosen MPI (default: all) the programs c-tests/image_heap.c (also
# built with -DVARIANT, a different global layout), c-tests/image_cxx.cpp and
# c-tests/image_thread.c are built into c-tests/out/$MPI/image/bin/ and run
# plain ($MPIEXEC -n N) for reference outputs. Then, one PASS/FAIL line each:
#   run-nockpt PROG   `ferry run` without --checkpoint prints the reference
#                     output (and writes the reference file);
#   ckpt PROG K       checkpoint after K calls, in a fresh working directory,
#                     then `ferry restart DIR` from the same directory: both
#                     exit 0, DIR is mode 700 and its files mode 600, the
#                     checkpoint run stopped early, its stdout followed by
#                     the restart's equals the reference byte for byte, and
#                     the file the program appends to equals the reference;
#   corrupt-flip      a byte in the middle of the image's largest file
#                     inverted: restart fails (exit 1..127, no signal, no
#                     program output) and says "corrupt" or "checksum";
#   corrupt-truncate  the largest file cut to half: fails, says "truncated"
#                     or "corrupt";
#   corrupt-foreign   the program's file replaced by the -DVARIANT build:
#                     fails, says "binary", "foreign" or "does not match";
#   corrupt-control   the untouched checkpoint then restarts and completes
#                     correctly (so the failures above were the damage's);
#   refuse PROG K     a program with a thread of its own: the checkpoint is
#                     refused ("refused" and the reason on stderr), the job
#                     runs to the end with the reference output, exit 0, and
#                     DIR holds no files.
# Every run is limited by `timeout $FERRY_TEST_TIMEOUT` (default 120 s).
# Outputs go to c-tests/out/$MPI/image/CASE/ (NAME.{out,err,cmd}, diffs);
# checkpoint images of passing cases are deleted unless --keep is given.
# FERRY_TEST_BIN and FERRY_TEST_LIB, if set, are used instead of the built
# $FERRY_BIN and $FERRY_LIB (e.g. a build in another target directory).
# Ends with "N passed, M failed"; exits non-zero if anything failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TESTS="$ROOT/c-tests"
TIMEOUT="${FERRY_TEST_TIMEOUT:-120}"
CFLAGS=(-O1 -g -Wall -Wextra)

# ---- the cases (extend here) ------------------------------------------------
# programs (in build order): source file, arguments, the file it writes in
# its working directory ("" = none)
PROGS=(image_heap image_cxx image_thread)
declare -A PROG_SRC=([image_heap]=image_heap.c [image_cxx]=image_cxx.cpp [image_thread]=image_thread.c)
declare -A PROG_ARGS=([image_heap]="image_heap.txt" [image_cxx]="" [image_thread]="")
declare -A PROG_FILE=([image_heap]=image_heap.txt [image_cxx]="" [image_thread]="")
# built with -DVARIANT as PROG_variant (for corrupt-foreign)
VARIANTS=(image_heap)
# runs under ferry without a checkpoint
NOCKPT_CASES=(image_heap image_cxx)
# "PROG K": checkpoint after K calls, then restart
CKPT_CASES=("image_heap 5" "image_heap 60" "image_heap 250" "image_cxx 5" "image_cxx 150")
# damage done to one checkpoint of CORRUPT_PROG at CORRUPT_K; each name N has
# a function damage_N and the stderr it must produce (grep -Ei)
CORRUPT_PROG=image_heap
CORRUPT_K=60
CORRUPT_CASES=(flip truncate foreign)
declare -A CORRUPT_EXPECT=([flip]='corrupt|checksum' [truncate]='truncated|corrupt'
                           [foreign]='binary|foreign|does not match')
# "PROG K": the checkpoint must be refused (stderr: "refused" and one of REFUSE_WHY)
REFUSE_CASES=("image_thread 50")
REFUSE_WHY='thread|task'

usage() {
    awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"
    exit 2
}

keep=0
mpis=()
for arg in "$@"; do
    case "$arg" in
        mpich|openmpi) mpis+=("$arg") ;;
        all) mpis+=(mpich openmpi) ;;
        --keep) keep=1 ;;
        -h|--help) usage ;;
        *) echo "image-tests.sh: unknown argument '$arg'" >&2; usage ;;
    esac
done
[ ${#mpis[@]} -gt 0 ] || mpis=(mpich openmpi)

mkdir -p "$TESTS/out"
RESULTS="$(mktemp "$TESTS/out/image-results.XXXXXX")"
NOTES="$(mktemp "$TESTS/out/image-notes.XXXXXX")"
trap 'rm -f "$RESULTS" "$NOTES"' EXIT

# ---- helpers ------------------------------------------------------------------

# result PASS|FAIL NAME [DETAIL]
result() {
    local line
    if [ "$1" = PASS ]; then
        line="PASS $2 [$FERRY_MPI]${3:+ ($3)}"
    else
        line="FAIL $2 [$FERRY_MPI]: ${3:-failed}"
    fi
    echo "$line"
    echo "$line" >>"$RESULTS"
    flush_notes
}

# show_file LABEL FILE: the tail of a file, indented, if non-empty (kept in
# $NOTES while a case runs, printed after its result line)
show_file() {
    if [ -s "$2" ]; then
        echo "    --- $1 ($2, last 15 lines):"
        tail -n 15 "$2" | awk '{ print "    | " $0 }'
    fi >>"$NOTES"
}

flush_notes() {
    cat "$NOTES"
    : >"$NOTES"
}

# run_in PREFIX CWD CMD...: run CMD in CWD, stdout/stderr to PREFIX.out/.err,
# the command line to PREFIX.cmd; sets rc (never fails)
run_in() {
    local prefix="$1" cwd="$2"
    shift 2
    { printf 'cd %q &&' "$cwd"; printf ' %q' "$@"; echo; } >"$prefix.cmd"
    rc=0
    (cd "$cwd" && exec timeout -k 5 "$TIMEOUT" "$@") </dev/null >"$prefix.out" 2>"$prefix.err" || rc=$?
}

# describe_rc RC: "exited with status RC" / "timed out" / "killed by signal"
describe_rc() {
    if [ "$1" -eq 124 ] || [ "$1" -eq 137 ]; then
        echo "timed out after ${TIMEOUT}s (status $1)"
    elif [ "$1" -ge 128 ]; then
        echo "exited with status $1 (signal $(($1 - 128))?)"
    else
        echo "exited with status $1"
    fi
}

# prog_args PROG: the program's arguments as the array `args`
prog_args() {
    args=()
    read -r -a args <<<"${PROG_ARGS[$1]}"
}

ranks_of() {
    grep -m1 -oE '/\* ranks: [0-9]+ \*/' "$TESTS/${PROG_SRC[$1]}" | grep -oE '[0-9]+'
}

# same_output WANT GOT DIFF: sets why when the files differ (diff kept in DIFF)
same_output() {
    if ! cmp -s "$1" "$2"; then
        diff -u "$1" "$2" >"$3" 2>&1 || true
        why="${4:-stdout} differs from the reference ($(basename "$3"): $(grep -c '^[-+][^-+]' "$3" || true) lines differ)"
        show_file diff "$3"
        return 1
    fi
    return 0
}

# same_file PROG REFDIR WORKDIR: the program's output file (if any) matches
same_file() {
    local f="${PROG_FILE[$1]}"
    [ -n "$f" ] || return 0
    if [ ! -f "$3/$f" ]; then
        why="the program's file $3/$f is missing"
        return 1
    fi
    if ! cmp -s "$2/$f" "$3/$f"; then
        diff -u "$2/$f" "$3/$f" >"$3/../$f.diff" 2>&1 || true
        why="$f differs from the reference ($(wc -c <"$3/$f") vs $(wc -c <"$2/$f") bytes, see $3/../$f.diff)"
        show_file diff "$3/../$f.diff"
        return 1
    fi
    return 0
}

# check_image_dir DIR: mode 700, at least one file, all files mode 600,
# subdirectories closed to group and others; sets why
check_image_dir() {
    local d="$1" mode bad
    if [ ! -d "$d" ]; then
        why="no checkpoint directory $d"
        return 1
    fi
    mode="$(stat -c %a "$d")"
    if [ "$mode" != 700 ]; then
        why="$d has mode $mode, expected 700"
        return 1
    fi
    if [ -z "$(find "$d" -type f -print -quit)" ]; then
        why="the checkpoint directory $d holds no files"
        return 1
    fi
    bad="$(find "$d" -type f ! -perm 600 -printf '%m %P, ' | head -c 300)"
    if [ -n "$bad" ]; then
        why="image files not mode 600: ${bad%, }"
        return 1
    fi
    bad="$(find "$d" -mindepth 1 -type d -perm /077 -printf '%m %P/, ' | head -c 300)"
    if [ -n "$bad" ]; then
        why="subdirectories open to group/others: ${bad%, }"
        return 1
    fi
    return 0
}

# largest_file DIR: path of the largest regular file under DIR
largest_file() {
    find "$1" -type f -printf '%s\t%p\n' | sort -n | tail -n 1 | cut -f2-
}

image_size() { du -sh "$1" 2>/dev/null | cut -f1; }

# drop_image DIR: delete a passing case's image unless --keep
drop_image() {
    [ "$keep" -eq 1 ] || rm -rf "$1"
}

# ---- the cases --------------------------------------------------------------

# case_nockpt PROG
case_nockpt() {
    local prog="$1" dir="$OUT/run-nockpt-$1"
    rm -rf "$dir"
    mkdir -p "$dir/work"
    prog_args "$prog"
    run_in "$dir/run" "$dir/work" "$FERRY" run --mpi "$FERRY_MPI" -n "$(ranks_of "$prog")" \
        -- "$BIN/$prog" "${args[@]}"
    if [ "$rc" -ne 0 ]; then
        why="ferry run $(describe_rc "$rc")"
        show_file stderr "$dir/run.err"
        return
    fi
    same_output "$OUT/ref-$prog/run.out" "$dir/run.out" "$dir/run.diff" || return
    same_file "$prog" "$OUT/ref-$prog/work" "$dir/work" || return
    detail="$(wc -l <"$dir/run.out") lines"
}

# checkpoint_run DIR PROG K: `ferry run --checkpoint after=K,dir=DIR/ckpt`
# of PROG in the fresh working directory DIR/work (logs DIR/run.*; sets rc).
checkpoint_run() {
    local dir="$1" prog="$2" k="$3"
    rm -rf "$dir"
    mkdir -p "$dir/work"
    prog_args "$prog"
    run_in "$dir/run" "$dir/work" "$FERRY" run --mpi "$FERRY_MPI" -n "$(ranks_of "$prog")" \
        --checkpoint "after=$k,dir=$dir/ckpt" -- "$BIN/$prog" "${args[@]}"
}

# case_ckpt PROG K
case_ckpt() {
    local prog="$1" k="$2" dir="$OUT/ckpt-$1-$2"
    local ck="$dir/ckpt" ref="$OUT/ref-$prog/run.out"
    checkpoint_run "$dir" "$prog" "$k"
    if [ "$rc" -ne 0 ]; then
        why="checkpoint run $(describe_rc "$rc")"
        show_file stderr "$dir/run.err"
        return
    fi
    check_image_dir "$ck" || { show_file stderr "$dir/run.err"; return; }
    if cmp -s "$ref" "$dir/run.out"; then
        why="the checkpoint run printed the whole output: it did not stop at the checkpoint"
        show_file stderr "$dir/run.err"
        return
    fi
    local size
    size="$(image_size "$ck")"
    run_in "$dir/restart" "$dir/work" "$FERRY" restart "$ck"
    if [ "$rc" -ne 0 ]; then
        why="ferry restart $(describe_rc "$rc")"
        show_file "restart stderr" "$dir/restart.err"
        return
    fi
    cat "$dir/run.out" "$dir/restart.out" >"$dir/both.out"
    same_output "$ref" "$dir/both.out" "$dir/both.diff" "checkpoint + restart stdout" || return
    same_file "$prog" "$OUT/ref-$prog/work" "$dir/work" || return
    detail="image $size, split after line $(wc -l <"$dir/run.out") of $(wc -l <"$ref")"
    drop_image "$ck"
}

# The damage functions work on $CK (the checkpoint) and $CBIN (the program
# file the checkpoint ran); each sets detail.
damage_flip() {
    local f size off old new
    f="$(largest_file "$CK")"
    size="$(stat -c %s "$f")"
    off=$((size / 2))
    old="$(od -An -tu1 -j "$off" -N1 "$f" | tr -d ' \n')"
    new=$((old ^ 255))
    printf '%b' "\\0$(printf '%03o' "$new")" | dd of="$f" bs=1 seek="$off" conv=notrunc status=none
    if [ "$(od -An -tu1 -j "$off" -N1 "$f" | tr -d ' \n')" != "$new" ]; then
        why="could not change byte $off of $f"
        return 1
    fi
    detail="byte $off of ${f#"$CK"/} ($size bytes): $old -> $new"
}

damage_truncate() {
    local f size
    f="$(largest_file "$CK")"
    size="$(stat -c %s "$f")"
    truncate -s $((size / 2)) "$f"
    detail="${f#"$CK"/} cut from $size to $((size / 2)) bytes"
}

damage_foreign() {
    cp "$BIN/${CORRUPT_PROG}_variant" "$CBIN.new"
    mv -f "$CBIN.new" "$CBIN"
    detail="$(basename "$CBIN") replaced by its -DVARIANT build"
}

# restore_checkpoint: the pristine checkpoint and program back in place
restore_checkpoint() {
    rm -rf "$CK"
    cp -a "$CDIR/pristine" "$CK"
    cp "$BIN/$CORRUPT_PROG" "$CBIN.new"
    mv -f "$CBIN.new" "$CBIN"
}

# case_corrupt NAME: damage the checkpoint, restart must fail cleanly
case_corrupt() {
    local name="$1"
    if [ -n "$corrupt_base_failed" ]; then
        why="no checkpoint to damage: $corrupt_base_failed"
        return
    fi
    restore_checkpoint
    "damage_$name" || return
    local p="$CDIR/$name"
    run_in "$p" "$CDIR/work" "$FERRY" restart "$CK"
    if [ "$rc" -eq 0 ]; then
        why="ferry restart of a damaged checkpoint ($detail) exited 0"
    elif [ "$rc" -ge 124 ]; then
        why="ferry restart of a damaged checkpoint ($detail) $(describe_rc "$rc"): expected a clean error exit (1..123)"
    elif ! grep -Eiq "${CORRUPT_EXPECT[$name]}" "$p.err"; then
        why="ferry restart exited $rc but its stderr does not match /${CORRUPT_EXPECT[$name]}/i ($detail)"
    elif [ -s "$p.out" ]; then
        why="ferry restart refused ($rc) but the program printed $(wc -l <"$p.out") lines first ($detail)"
    else
        detail="$detail; exit $rc: $(grep -Ei -m1 "${CORRUPT_EXPECT[$name]}" "$p.err" | cut -c1-160)"
        return
    fi
    show_file stdout "$p.out"
    show_file stderr "$p.err"
}

# case_corrupt_control: the undamaged checkpoint restarts correctly
case_corrupt_control() {
    if [ -n "$corrupt_base_failed" ]; then
        why="no checkpoint: $corrupt_base_failed"
        return
    fi
    restore_checkpoint
    run_in "$CDIR/control" "$CDIR/work" "$FERRY" restart "$CK"
    if [ "$rc" -ne 0 ]; then
        why="ferry restart of the undamaged checkpoint $(describe_rc "$rc")"
        show_file stderr "$CDIR/control.err"
        return
    fi
    cat "$CDIR/base.out" "$CDIR/control.out" >"$CDIR/both.out"
    same_output "$OUT/ref-$CORRUPT_PROG/run.out" "$CDIR/both.out" "$CDIR/both.diff" \
        "checkpoint + restart stdout" || return
    same_file "$CORRUPT_PROG" "$OUT/ref-$CORRUPT_PROG/work" "$CDIR/work" || return
    detail="image $(image_size "$CK"), K=$CORRUPT_K, after the damaged restarts"
}

# corrupt_setup: one checkpoint of CORRUPT_PROG for all the damage cases,
# running a copy of the program (so that it can be swapped)
corrupt_setup() {
    CDIR="$OUT/corrupt"
    CK="$CDIR/ckpt"
    CBIN="$CDIR/bin/$CORRUPT_PROG"
    corrupt_base_failed=""
    rm -rf "$CDIR"
    mkdir -p "$CDIR/work" "$CDIR/bin"
    cp "$BIN/$CORRUPT_PROG" "$CBIN"
    prog_args "$CORRUPT_PROG"
    run_in "$CDIR/base" "$CDIR/work" "$FERRY" run --mpi "$FERRY_MPI" \
        -n "$(ranks_of "$CORRUPT_PROG")" --checkpoint "after=$CORRUPT_K,dir=$CK" -- "$CBIN" "${args[@]}"
    why=""
    if [ "$rc" -ne 0 ]; then
        corrupt_base_failed="checkpoint run $(describe_rc "$rc") ($CDIR/base.err)"
    elif [ ! -d "$CK" ] || [ -z "$(largest_file "$CK")" ]; then
        corrupt_base_failed="no file in $CK"
    else
        cp -a "$CK" "$CDIR/pristine"
    fi
    why=""
}

# case_refuse PROG K
case_refuse() {
    local prog="$1" k="$2" dir="$OUT/refuse-$1-$2"
    local ck="$dir/ckpt"
    checkpoint_run "$dir" "$prog" "$k"
    if [ "$rc" -ne 0 ]; then
        why="ferry run $(describe_rc "$rc") (a refused checkpoint must let the job finish)"
        show_file stderr "$dir/run.err"
        return
    fi
    same_output "$OUT/ref-$prog/run.out" "$dir/run.out" "$dir/run.diff" || return
    if ! grep -qi refused "$dir/run.err"; then
        why="no 'refused' on stderr"
        show_file stderr "$dir/run.err"
        return
    fi
    if ! grep -Eqi "$REFUSE_WHY" "$dir/run.err"; then
        why="stderr says refused but gives no reason matching /$REFUSE_WHY/i"
        show_file stderr "$dir/run.err"
        return
    fi
    if [ -d "$ck" ] && [ -n "$(find "$ck" -type f -print -quit)" ]; then
        why="$ck holds files after a refused checkpoint: $(find "$ck" -type f -printf '%P ' | head -c 200)"
        return
    fi
    detail="$(grep -i -m1 refused "$dir/run.err" | cut -c1-160)"
}

# run_case NAME FUNCTION ARGS...: one PASS/FAIL line for the case
run_case() {
    local name="$1"
    shift
    why=""
    detail=""
    "$@" || true
    if [ -n "$why" ]; then
        result FAIL "$name" "$why"
    else
        result PASS "$name" "$detail"
    fi
}

# build NAME SOURCE COMPILER [FLAGS...]: sets why on failure
build() {
    local name="$1" src="$2" cc="$3"
    shift 3
    if ! "$cc" "${CFLAGS[@]}" "$@" -I"$TESTS" -o "$BIN/$name" "$TESTS/$src" >"$BIN/$name.build.log" 2>&1; then
        show_file "build log" "$BIN/$name.build.log"
        return 1
    fi
    if [ -s "$BIN/$name.build.log" ]; then
        echo "note: $name [$FERRY_MPI] built with warnings, see $BIN/$name.build.log"
    fi
}

# reference PROG: a plain run (no ferry) in OUT/ref-PROG/work
reference() {
    local prog="$1" dir="$OUT/ref-$1"
    rm -rf "$dir"
    mkdir -p "$dir/work"
    prog_args "$prog"
    local cmd=("$MPIEXEC")
    # shellcheck disable=SC2206  # the flags are a word list on purpose
    [ -n "$FERRY_MPIEXEC_FLAGS" ] && cmd+=($FERRY_MPIEXEC_FLAGS)
    cmd+=(-n "$(ranks_of "$prog")" "$BIN/$prog" "${args[@]}")
    run_in "$dir/run" "$dir/work" "${cmd[@]}"
    if [ "$rc" -ne 0 ]; then
        why="plain run $(describe_rc "$rc")"
        show_file stderr "$dir/run.err"
    elif ! grep -qx OK "$dir/run.out"; then
        why="plain run printed no OK line"
        show_file stdout "$dir/run.out"
    else
        detail="$(wc -l <"$dir/run.out") lines${PROG_FILE[$prog]:+, $(wc -c <"$dir/work/${PROG_FILE[$prog]}") bytes in ${PROG_FILE[$prog]}}"
        return 0
    fi
    return 1
}

# test_mpi MPI (a subshell: mpi-env.sh's exports stay in it)
test_mpi() (
    # shellcheck source=scripts/mpi-env.sh
    . "$ROOT/scripts/mpi-env.sh" "$1"
    OUT="$TESTS/out/$FERRY_MPI/image"
    BIN="$OUT/bin"
    FERRY="${FERRY_TEST_BIN:-$FERRY_BIN}"
    FERRY_LIB="${FERRY_TEST_LIB:-$FERRY_LIB}"
    case "$FERRY_MPI" in
        mpich) MPICXX="$(dirname "$MPICC")/mpicxx" ;;
        openmpi) MPICXX=/usr/bin/mpicxx.openmpi ;;
    esac
    mkdir -p "$BIN"
    echo "== $FERRY_MPI: outputs in $OUT"

    # what cannot run: one FAIL line per case
    local missing="" c
    [ -x "$MPICC" ] && [ -x "$MPICXX" ] && [ -x "$MPIEXEC" ] || missing="MPI not installed ($MPICC, $MPICXX)"
    if [ -n "$missing" ]; then
        result FAIL setup "$missing"
        return 0
    fi

    # builds
    local prog src broken=()
    declare -A ok=()
    for prog in "${PROGS[@]}"; do
        src="${PROG_SRC[$prog]}"
        why=""
        if [[ "$src" == *.cpp ]]; then
            build "$prog" "$src" "$MPICXX" || why="build failed"
        else
            build "$prog" "$src" "$MPICC" || why="build failed"
        fi
        if [ -n "$why" ]; then
            result FAIL "build $prog" "$why (see $BIN/$prog.build.log)"
            broken+=("$prog")
        fi
    done
    for prog in "${VARIANTS[@]}"; do
        if ! build "${prog}_variant" "${PROG_SRC[$prog]}" "$MPICC" -DVARIANT; then
            result FAIL "build ${prog}_variant" "build failed (see $BIN/${prog}_variant.build.log)"
        fi
    done

    # references
    for prog in "${PROGS[@]}"; do
        [[ " ${broken[*]} " == *" $prog "* ]] && continue
        why=""
        detail=""
        if reference "$prog"; then
            ok[$prog]=1
            result PASS "reference $prog" "$detail"
        else
            result FAIL "reference $prog" "$why"
        fi
    done

    if [ ! -x "$FERRY" ]; then
        missing="no ferry command $FERRY (build it first)"
    fi
    # skip PROG NAME: a FAIL line when the case cannot run; true if skipped
    skip() {
        if [ -n "$missing" ]; then
            result FAIL "$2" "$missing"
        elif [ -z "${ok[$1]:-}" ]; then
            result FAIL "$2" "no reference output for $1"
        else
            return 1
        fi
        return 0
    }

    for prog in "${NOCKPT_CASES[@]}"; do
        skip "$prog" "run-nockpt $prog" || run_case "run-nockpt $prog" case_nockpt "$prog"
    done
    for c in "${CKPT_CASES[@]}"; do
        read -r prog k <<<"$c"
        skip "$prog" "ckpt $prog after=$k" || run_case "ckpt $prog after=$k" case_ckpt "$prog" "$k"
    done
    if ! skip "$CORRUPT_PROG" "corrupt-setup"; then
        corrupt_setup
        for c in "${CORRUPT_CASES[@]}"; do
            if [ "$c" = foreign ] && [ ! -x "$BIN/${CORRUPT_PROG}_variant" ]; then
                result FAIL "corrupt-$c" "no ${CORRUPT_PROG}_variant build"
                continue
            fi
            run_case "corrupt-$c" case_corrupt "$c"
        done
        run_case "corrupt-control" case_corrupt_control
        if [ "$keep" -eq 0 ] && ! grep -q "^FAIL corrupt-.*\[$FERRY_MPI\]" "$RESULTS"; then
            rm -rf "$CK" "$CDIR/pristine"
        fi
    fi
    for c in "${REFUSE_CASES[@]}"; do
        read -r prog k <<<"$c"
        skip "$prog" "refuse $prog after=$k" || run_case "refuse $prog after=$k" case_refuse "$prog" "$k"
    done
)

echo "image-tests: checkpoint/restart on ${mpis[*]}"
for mpi in "${mpis[@]}"; do
    test_mpi "$mpi"
done

passed="$(grep -c '^PASS ' "$RESULTS" || true)"
failed="$(grep -c '^FAIL ' "$RESULTS" || true)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
