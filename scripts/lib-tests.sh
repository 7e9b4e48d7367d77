# shellcheck shell=bash
# Helpers shared by the test runners (c-tests.sh, fortran-tests.sh). Source
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
