# shellcheck shell=bash
# Helpers shared by the test runners (c-tests.sh). Source
# it after setting RESULTS (the file each result line is appended to) and,
# optionally, RESULT_PREFIX (put before each program's name).

# result MPI NAME PASS|FAIL|SKIP [REASON]: one result line, printed and kept
result() {
    local line
    if [ -n "${4:-}" ]; then
        line="$3 ${RESULT_PREFIX:-}$2 [$1]: $4"
    else
        line="$3 ${RESULT_PREFIX:-}$2 [$1]"
    fi
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

# against_plain MODE: after `run_one MODE` of $name (in $dir, on $FERRY_MPI),
# a FAIL line if that run failed ($run_status) or its stdout differs from
# the plain run's; returns 1 then.
against_plain() {
    local mode="$1"
    if [ -n "$run_status" ]; then
        result "$FERRY_MPI" "$name" FAIL "$run_status"
        echo "    command: $(cat "$dir/$name.$mode.cmd")"
        show_file stdout "$dir/$name.$mode.out"
        show_file stderr "$dir/$name.$mode.err"
        return 1
    fi
    if ! diff -u "$dir/$name.plain.out" "$dir/$name.$mode.out" >"$dir/$name.diff" 2>&1; then
        result "$FERRY_MPI" "$name" FAIL "stdout differs between plain and $mode run"
        show_file "diff plain vs $mode" "$dir/$name.diff"
        show_file "$mode stderr" "$dir/$name.$mode.err"
        return 1
    fi
    rm -f "$dir/$name.diff"
}
