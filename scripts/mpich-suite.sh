#!/usr/bin/env bash
# Build MPICH's own test suite (test/mpi) and describe it as data for a harness.
#
#   scripts/mpich-suite.sh [--mpi mpich|mpich-deb|openmpi]... [--prefix DIR]
#                          [--max-np N] [--list] [--run-plain [--resume]]
#
# Steps (each skipped when its result is already there; one progress line
# per step with its seconds, on stderr):
#   1. source: a deb-src entry for this Debian release (a file of its own,
#      /etc/apt/sources.list.d/ferry-deb-src.sources, unless one exists;
#      apt-get update only then, and only for that file), then
#      `apt-get source --download-only mpich` into $PREFIX/download (Debian's
#      mpich_4.0.2.orig.tar.xz) and only mpich-VERSION/test/mpi of it
#      extracted to $PREFIX/src. The package registry is the only source.
#   2. build, once per MPI (default: mpich; --mpi may be repeated): the
#      suite's configure run in $PREFIX/MPI with the compilers and launcher
#      of scripts/mpi-env.sh MPI (C tests only: no Fortran, C++, ROMIO or
#      perf tests; Open MPI with --enable-strictmpi, so without MPICH's MPIX
#      extensions), then `make -k` in each directory of DIRS below. A
#      program that fails to build is recorded, not fatal:
#      $PREFIX/MPI/build.tsv (dir, entries listed, built, seconds) and
#      $PREFIX/MPI/build-failures.tsv (dir, program, first error line);
#      logs in $PREFIX/MPI/DIR/build.log.
#   3. --list: the manifest on stdout (nothing else goes there), also
#      written to $PREFIX/MPI/manifest.tsv: one test per line, tab-separated
#          dir  name  np  args  env  flags
#      from each directory's list files (FERRY_MPICH_SUITE_LISTS, default
#      "testlist testlist.dtp"; testlist.cvar adds ~860 collective-algorithm
#      variants at 10 ranks), parsed as the suite's runtests does: comments
#      dropped, np defaults to 2, entries naming a directory followed,
#      strict=false entries dropped under --enable-strictmpi, mpix=true
#      entries dropped. args: the arg= values; env: the env= VAR=VAL pairs,
#      plus MPIEXEC_TIMEOUT=timeLimit (runtests sets it; init/timeout needs
#      it) when timeLimit is below $FERRY_TEST_TIMEOUT; both space-separated.
#      flags: every other key=value (xfail=, timeLimit=, resultTest=,
#      mpiexecarg=, strict=, mem=...), plus list=FILE for an entry of
#      another list than testlist, and np=ORIG when np was capped to
#      --max-np (default $FERRY_MPICH_SUITE_MAXNP or 8; 0: no cap). An empty
#      field is "-". Only tests whose program was built are listed. A test
#      is keyed dir/name, or dir/name:K for the K-th line (K > 1) of the
#      same dir and name (other args or env).
#   4. --run-plain: every manifest test without ferry, in $PREFIX/MPI/DIR:
#          [env VAR=VAL...] timeout $FERRY_TEST_TIMEOUT (60) \
#              $MPIEXEC $FERRY_MPIEXEC_FLAGS -n NP [mpiexecargs] ./NAME ARGS
#      (with Open MPI each env VAR is also passed on with -x VAR), writing
#      $PREFIX/MPI/plain.tsv: key, PASS|FAIL, seconds, reason. PASS means
#      exit 0 and a line " No Errors" in the output (runtests' rule), or for
#      resultTest=TestStatus/TestErrFatal a non-zero exit (not a timeout),
#      for TestStatusNoErrors a non-zero exit and " No Errors". xfail tests
#      run too; their reason names the xfail. Outputs: $PREFIX/MPI/plain/
#      DIR/NAME[.K].{out,cmd}. Prints passed/total per directory and the
#      total time (also in $PREFIX/MPI/plain-summary.txt). Exits 0 even when
#      tests fail: it is a baseline. --resume continues an interrupted run
#      (the results in $PREFIX/MPI/plain.tsv.tmp are kept).
# DIRS: pt2pt coll comm group datatype topo attr init errhan info rma spawn
# (FERRY_MPICH_SUITE_DIRS overrides). PREFIX: --prefix, else
# $FERRY_MPICH_SUITE_PREFIX, else /opt/ferry/mpich-suite. make runs with
# -j$FERRY_MPICH_SUITE_JOBS (default 2). Run as root (apt-get).

# The functions of steps 2-4 read what suite_mpi's subshell sourced from
# mpi-env.sh, on purpose:
# shellcheck disable=SC2030,SC2031
set -euo pipefail

SCRIPTS="$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")"
# shellcheck source=scripts/lib-common.sh
. "$SCRIPTS/lib-common.sh"

PREFIX="${FERRY_MPICH_SUITE_PREFIX:-/opt/ferry/mpich-suite}"
MAXNP="${FERRY_MPICH_SUITE_MAXNP:-8}"
JOBS="${FERRY_MPICH_SUITE_JOBS:-2}"
TIMEOUT="${FERRY_TEST_TIMEOUT:-60}"
read -r -a DIRS <<<"${FERRY_MPICH_SUITE_DIRS:-pt2pt coll comm group datatype topo attr init errhan info rma spawn}"
read -r -a LISTS <<<"${FERRY_MPICH_SUITE_LISTS:-testlist testlist.dtp}"
DEB_SRC_FILE=/etc/apt/sources.list.d/ferry-deb-src.sources

usage() {
    awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"
    exit "${1:-2}"
}

# Progress goes to stderr: stdout is the manifest's with --list.
progress() { printf '%s: %s\n' "$FERRY_SCRIPT" "$*" >&2; }

# Wall-clock time in microseconds, and seconds since such a time ("12.3").
now_us() { local t="$EPOCHREALTIME"; echo "${t/[.,]/}"; }
secs_since() {
    local d=$(($(now_us) - $1))
    printf '%d.%d' $((d / 1000000)) $((d % 1000000 / 100000))
}

# --- step 1: the source ----------------------------------------------------

# has_deb_src: whether any APT source file already has a deb-src entry.
has_deb_src() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f "$f" ]] && grep -Eq '^[[:space:]]*deb-src[[:space:]]' "$f" && return 0
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f "$f" ]] && grep -Eiq '^[[:space:]]*Types:.*[[:space:]]deb-src([[:space:]]|$)' "$f" && return 0
    done
    return 1
}

# ensure_deb_src: apt-cache knows the mpich source package afterwards.
ensure_deb_src() {
    local t0 codename
    t0="$(now_us)"
    if apt-cache showsrc mpich 2>/dev/null | grep -q '^Package: mpich$'; then
        progress "deb-src: mpich's source package known already ($(secs_since "$t0") s)"
        return
    fi
    if has_deb_src; then
        progress "deb-src: an entry exists but its index is missing: apt-get update"
        apt-get update -qq >&2
    else
        codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
        [[ -n "$codename" ]] || die "no VERSION_CODENAME in /etc/os-release"
        cat >"$DEB_SRC_FILE" <<EOF
# Added by ferry's scripts/mpich-suite.sh: Debian's source packages, for
# \`apt-get source mpich\` (MPICH's test suite).
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: $codename
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
        progress "deb-src: wrote $DEB_SRC_FILE ($codename); apt-get update of that file only"
        # Only the new file's index; List-Cleanup=0 keeps every other index.
        apt-get update -qq -o Dir::Etc::sourcelist="$DEB_SRC_FILE" \
            -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0 >&2
    fi
    apt-cache showsrc mpich 2>/dev/null | grep -q '^Package: mpich$' ||
        die "apt-cache still knows no mpich source package"
    progress "deb-src: done ($(secs_since "$t0") s)"
}

# fetch_source: sets ORIG (the orig tarball) and VERSION (upstream's).
fetch_source() {
    local t0 dl="$PREFIX/download" found=()
    t0="$(now_us)"
    shopt -s nullglob
    found=("$dl"/mpich_*.orig.tar.*)
    shopt -u nullglob
    if ((${#found[@]} == 0)); then
        ensure_deb_src
        mkdir -p "$dl"
        # as root: apt's sandbox user _apt could not write into $dl
        (cd "$dl" && apt-get -qq -o APT::Sandbox::User=root source --download-only mpich >&2)
        shopt -s nullglob
        found=("$dl"/mpich_*.orig.tar.*)
        shopt -u nullglob
        ((${#found[@]} == 1)) || die "apt-get source left no single mpich_*.orig.tar.* in $dl"
        progress "source: downloaded $(basename "${found[0]}") ($(secs_since "$t0") s)"
    else
        ((${#found[@]} == 1)) || die "more than one mpich_*.orig.tar.* in $dl"
        progress "source: $(basename "${found[0]}") there already"
    fi
    ORIG="${found[0]}"
    VERSION="$(basename "$ORIG")"
    VERSION="${VERSION#mpich_}"
    VERSION="${VERSION%.orig.tar.*}"
}

# extract_suite: sets SRC (the suite's source directory).
extract_suite() {
    local t0 tmp
    t0="$(now_us)"
    SRC="$PREFIX/src/mpich-$VERSION/test/mpi"
    if [[ -x "$SRC/configure" ]]; then
        progress "extract: $SRC there already"
        return
    fi
    mkdir -p "$PREFIX/src/mpich-$VERSION/test"
    tmp="$(mktemp -d "$PREFIX/src/.extract.XXXXXX")"
    tar -xf "$ORIG" -C "$tmp" "mpich-$VERSION/test/mpi"
    rm -rf "$SRC"
    mv "$tmp/mpich-$VERSION/test/mpi" "$SRC"
    rm -rf "$tmp"
    progress "extract: mpich-$VERSION/test/mpi to $PREFIX/src ($(secs_since "$t0") s)"
}

# --- step 2: configure and build (in the per-MPI subshell) -------------------

# configure_suite: configure in $B unless done with the same arguments.
configure_suite() {
    local t0 mpicxx want
    t0="$(now_us)"
    # the C++ wrapper next to MPICC (mpicc -> mpicxx, mpicc.mpich ->
    # mpicxx.mpich): never Debian's /usr/bin/mpicxx alternative
    mpicxx="${MPICC%mpicc*}mpicxx${MPICC##*mpicc}"
    local args=(--enable-fortran=no --disable-cxx --disable-romio --disable-perftest
                "MPICC=$MPICC" "MPICXX=$mpicxx" "MPIEXEC=$MPIEXEC"
                "MPIF77=${MPIF90:-false}" "MPIFC=${MPIF90:-false}")
    # Open MPI: standard MPI only (no MPIX_* tests, no strict=false tests)
    [[ "$FERRY_MPI" == openmpi ]] && args+=(--enable-strictmpi)
    want="$(printf '%s\n' "$SRC" "${args[@]}")"
    if [[ -f "$B/config.status" && -f "$B/.ferry-configure" ]] &&
       [[ "$(cat "$B/.ferry-configure")" == "$want" ]]; then
        progress "[$FERRY_MPI] configure: done already ($B)"
        return
    fi
    rm -rf "$B"
    mkdir -p "$B"
    if ! (cd "$B" && "$SRC/configure" "${args[@]}" >configure.log 2>&1); then
        die "[$FERRY_MPI] configure failed: see $B/configure.log and $B/config.log"
    fi
    printf '%s\n' "$want" >"$B/.ferry-configure"
    progress "[$FERRY_MPI] configure: $(secs_since "$t0") s"
}

# strict_mode: whether the configured suite is strict MPI (as runtests asks).
strict_mode() { grep -q '^[$]testIsStrict *= *"true"' "$B/runtests"; }

# join WORD...: the words space-separated, "-" when there are none.
join() { if (($#)); then printf '%s' "$*"; else printf -- '-'; fi; }

# entries DIR: a manifest line for every test DIR's list files name (built
# or not), following entries that are directories.
entries() {
    local dir="$1" list path line name np kv key val sub skip strict=no
    local -a f args envs flags
    strict_mode && strict=yes
    for list in "${LISTS[@]}"; do
        path="$B/$dir/$list"
        [[ -f "$path" ]] || path="$SRC/$dir/$list"
        [[ -f "$path" ]] || continue
        while IFS= read -r line || [[ -n "$line" ]]; do
            line="${line%%#*}"
            read -r -a f <<<"$line"
            ((${#f[@]})) || continue
            name="${f[0]}"
            if [[ "$name" == '!'* ]]; then
                warn "$dir/$list: '$line' (a build command) ignored"
                continue
            fi
            np="${f[1]:-2}"
            [[ "$np" =~ ^[0-9]+$ ]] || { warn "$dir/$list: '$line': np '$np', 2 used"; np=2; }
            args=() envs=() flags=() skip=0
            [[ "$list" == testlist ]] || flags+=("list=$list")
            for kv in "${f[@]:2}"; do
                [[ "$kv" == *=* ]] || continue      # runtests ignores these too
                key="${kv%%=*}" val="${kv#*=}"
                case "$key" in
                    arg) args+=("$val") ;;
                    env) envs+=("$val") ;;
                    strict) [[ "${val,,}" == false && "$strict" == yes ]] && skip=1
                            flags+=("$kv") ;;
                    mpix) [[ "${val,,}" == true ]] && skip=1 ;;  # MPI_HAS_MPIX=no outside MPICH
                    timeLimit) flags+=("$kv")
                        # runtests gives the launcher the limit (init/timeout
                        # needs it): kept when below our own timeout
                        [[ "$val" =~ ^[0-9]+$ ]] && ((val < TIMEOUT)) &&
                            envs+=("MPIEXEC_TIMEOUT=$val") ;;
                    *) flags+=("$kv") ;;
                esac
            done
            ((skip)) && continue
            if [[ -d "$SRC/$dir/$name" || -d "$B/$dir/$name" ]]; then
                entries "$dir/$name"
                continue
            fi
            sub=""
            if [[ "$name" == */* ]]; then sub="/${name%/*}"; name="${name##*/}"; fi
            if ((MAXNP > 0 && np > MAXNP)); then flags+=("np=$np"); np="$MAXNP"; fi
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$dir$sub" "$name" "$np" \
                "$(join "${args[@]}")" "$(join "${envs[@]}")" "$(join "${flags[@]}")"
        done <"$path"
    done
}

# built DIR NAME: whether the test program was built.
built() { [[ -f "$B/$1/$2" && -x "$B/$1/$2" ]]; }

# drop_lines FILE DIR: FILE without its lines for DIR (first column).
drop_lines() {
    [[ -f "$1" ]] || return 0
    awk -F'\t' -v d="$2" '$1 != d && index($1, d "/") != 1' "$1" >"$1.tmp"
    mv "$1.tmp" "$1"
}

# build_dir DIR: make -k in DIR once; records what was built.
build_dir() {
    local dir="$1" t0 rc=0 listed=0 nbuilt=0 d n reason
    if [[ -f "$B/$dir/.ferry-built" ]]; then
        progress "[$FERRY_MPI] build $dir: done already ($(cat "$B/$dir/.ferry-built"))"
        return
    fi
    [[ -f "$B/$dir/Makefile" ]] || { warn "[$FERRY_MPI] $dir: no Makefile, skipped"; return; }
    t0="$(now_us)"
    drop_lines "$B/build.tsv" "$dir"
    drop_lines "$B/build-failures.tsv" "$dir"
    make -C "$B/$dir" -k -j"$JOBS" >"$B/$dir/build.log" 2>&1 || rc=$?
    local -A failed=()
    while IFS=$'\t' read -r d n _; do
        listed=$((listed + 1))
        if built "$d" "$n"; then
            nbuilt=$((nbuilt + 1))
        elif [[ -z "${failed[$d/$n]:-}" ]]; then
            failed[$d/$n]=1
            reason="$(grep -m1 -E "(^|/)$n\.c:[0-9]+(:[0-9]+)?: ((fatal )?error|undefined reference)" \
                          "$B/$dir/build.log" | sed "s/^.*\($n\.c:\)/\1/; s/\t/ /g" || true)"
            printf '%s\t%s\t%s\n' "$d" "$n" "${reason:-no program (see $dir/build.log)}" \
                >>"$B/build-failures.tsv"
        fi
    done < <(entries "$dir")
    local secs
    secs="$(secs_since "$t0")"
    printf '%s\t%s\t%s\t%s\n' "$dir" "$listed" "$nbuilt" "$secs" >>"$B/build.tsv"
    local summary="$nbuilt of $listed listed tests built, programs failed: ${#failed[@]}, make rc $rc, $secs s"
    printf '%s\n' "$summary" >"$B/$dir/.ferry-built"
    progress "[$FERRY_MPI] build $dir: $summary"
}

# --- step 3: the manifest ------------------------------------------------------

write_manifest() {
    local dir d n rest
    for dir in "${DIRS[@]}"; do
        [[ -f "$B/$dir/.ferry-built" ]] || continue
        while IFS=$'\t' read -r d n rest; do
            built "$d" "$n" && printf '%s\t%s\t%s\n' "$d" "$n" "$rest"
        done < <(entries "$dir")
    done >"$B/manifest.tsv.tmp"
    mv "$B/manifest.tsv.tmp" "$B/manifest.tsv"
}

# --- step 4: the plain runs ------------------------------------------------------

# first_line FILE: the first line of the program's output (not of the
# launcher's banner), trimmed, tabs as spaces, <= 120 characters; with the
# launcher's exit string (Hydra: "Segmentation fault (signal 11)") if any.
first_line() {
    awk '
        /^=/ || /^(This typically refers|Please see the FAQ)/ { next }
        /EXIT STRING: / { if (exit_string == "") { exit_string = $0; sub(/^.*EXIT STRING: /, "", exit_string) }; next }
        NF && line == "" { line = $0; gsub(/\t/, " ", line); sub(/^ +/, "", line) }
        END {
            if (exit_string != "") line = line (line == "" ? "" : " ") "[" exit_string "]"
            print substr(line, 1, 120)
        }' "$1"
}

# run_test DIR NAME NP ARGS ENV FLAGS LOGBASE: one plain run; sets
# result ("PASS"/"FAIL"), reason and secs.
run_test() {
    local dir="$1" name="$2" np="$3" log="$7" rc=0 t0 rtest="" xfail="" kv no_errors=0
    local -a args=() envs=() flags=() cmd=(timeout -k 10 "$TIMEOUT" "$MPIEXEC")
    [[ "$4" == - ]] || read -r -a args <<<"$4"
    [[ "$5" == - ]] || read -r -a envs <<<"$5"
    [[ "$6" == - ]] || read -r -a flags <<<"$6"
    # shellcheck disable=SC2206  # the flags are a word list on purpose
    [[ -n "$FERRY_MPIEXEC_FLAGS" ]] && cmd+=($FERRY_MPIEXEC_FLAGS)
    cmd+=(-n "$np")
    for kv in "${flags[@]}"; do
        case "$kv" in
            mpiexecarg=*) cmd+=("${kv#*=}") ;;
            resultTest=*) rtest="${kv#*=}" ;;
            xfail=*) xfail+="${xfail:+ }$kv" ;;
        esac
    done
    if [[ "$FERRY_MPI" == openmpi ]]; then
        for kv in "${envs[@]}"; do cmd+=(-x "${kv%%=*}"); done
    fi
    cmd+=("./$name" "${args[@]}")
    mkdir -p "$(dirname "$log")"
    printf 'cd %q && env' "$B/$dir" >"$log.cmd"
    printf ' %q' "${envs[@]}" "${cmd[@]}" >>"$log.cmd"
    echo >>"$log.cmd"
    t0="$(now_us)"
    (cd "$B/$dir" && env "${envs[@]}" "${cmd[@]}") </dev/null >"$log.out" 2>&1 || rc=$?
    secs="$(secs_since "$t0")"
    grep -Eq '^[[:space:]]*No [Ee]rrors[[:space:]]*$' "$log.out" && no_errors=1
    result=FAIL
    if ((rc == 124 || rc == 137)); then
        reason="timeout after $TIMEOUT s"
    else
        case "$rtest" in
            "")
                if ((rc == 0 && no_errors)); then result=PASS; reason="-"
                elif ((rc == 0)); then reason="exit 0 without ' No Errors': $(first_line "$log.out")"
                else reason="exit $rc: $(first_line "$log.out")"
                fi ;;
            TestStatus|TestErrFatal)
                if ((rc != 0)); then result=PASS; reason="exit $rc, as resultTest=$rtest wants"
                else reason="exit 0, resultTest=$rtest wants a non-zero exit"
                fi ;;
            TestStatusNoErrors)
                if ((rc != 0 && no_errors)); then result=PASS; reason="exit $rc and ' No Errors', as resultTest=$rtest wants"
                else reason="exit $rc, no_errors=$no_errors: resultTest=$rtest wants non-zero and ' No Errors'"
                fi ;;
            *) reason="unknown resultTest=$rtest: exit $rc" ;;
        esac
    fi
    if [[ -n "$xfail" ]]; then
        if [[ "$reason" == - ]]; then reason="[$xfail]"; else reason="[$xfail] $reason"; fi
    fi
    return 0
}

# run_plain: step 4. With --resume the results of an interrupted run
# (plain.tsv.tmp) are kept and only the tests they lack are run.
run_plain() {
    local t_all d n np a e fl key k log result reason secs
    local -A seen=() kept=()
    t_all="$(now_us)"
    if ((resume)) && [[ -f "$B/plain.tsv.tmp" ]]; then
        while IFS=$'\t' read -r key _; do kept[$key]=1; done <"$B/plain.tsv.tmp"
        progress "[$FERRY_MPI] resuming: ${#kept[@]} results of $B/plain.tsv.tmp kept"
    else
        : >"$B/plain.tsv.tmp"
        rm -rf "$B/plain"
    fi
    while IFS=$'\t' read -r -u 3 d n np a e fl; do
        key="$d/$n"
        k=$((${seen[$key]:-0} + 1))
        seen[$key]=$k
        ((k > 1)) && key+=":$k"
        [[ -z "${kept[$key]:-}" ]] || continue
        log="$B/plain/$d/$n"
        ((k > 1)) && log+=".$k"
        run_test "$d" "$n" "$np" "$a" "$e" "$fl" "$log"
        printf '%s\t%s\t%s\t%s\n' "$key" "$result" "$secs" "$reason" >>"$B/plain.tsv.tmp"
        progress "[$FERRY_MPI] $result $key (np $np) $secs s${reason:+ $reason}"
    done 3<"$B/manifest.tsv"
    # in the manifest's order (a resumed run may have appended out of order)
    awk -F'\t' 'NR == FNR { r[$1] = $0; next }
                { key = $1 "/" $2; k = ++seen[key]; if (k > 1) key = key ":" k
                  if (key in r) print r[key] }' "$B/plain.tsv.tmp" "$B/manifest.tsv" >"$B/plain.tsv"
    rm -f "$B/plain.tsv.tmp"
    # passed/total per directory (the key without its last part)
    awk -F'\t' -v secs="$(secs_since "$t_all")" -v mpi="$FERRY_MPI" '
        {
            d = $1; sub(/\/[^\/]*$/, "", d)
            if (!(d in total)) order[++nd] = d
            total[d]++; all++; sum += $3
            if ($2 == "PASS") { pass[d]++; passed++ }
        }
        END {
            for (i = 1; i <= nd; i++) printf "%-9s %4d/%d passed\n", order[i], pass[order[i]], total[order[i]]
            printf "%-9s %4d/%d passed in %s s (%s; the tests took %.0f s)\n", "total", passed, all, secs, mpi, sum
        }' "$B/plain.tsv" | tee "$B/plain-summary.txt" >&2
}

# suite_mpi MPI: steps 2-4 for one MPI, in a subshell with its environment.
suite_mpi() (
    # shellcheck source=scripts/mpi-env.sh
    . "$SCRIPTS/mpi-env.sh" "$1"
    B="$PREFIX/$FERRY_MPI"
    [[ -x "$MPICC" ]] || die "[$FERRY_MPI] no C compiler wrapper $MPICC"
    configure_suite
    local dir t0
    t0="$(now_us)"
    for dir in "${DIRS[@]}"; do build_dir "$dir"; done
    progress "[$FERRY_MPI] build: $(secs_since "$t0") s"
    write_manifest
    progress "[$FERRY_MPI] manifest: $(wc -l <"$B/manifest.tsv") tests in $B/manifest.tsv" \
             "($(awk -F'\t' '$6 ~ /(^| )np=/' "$B/manifest.tsv" | wc -l) capped to np $MAXNP)"
    ((do_list)) && cat "$B/manifest.tsv"
    ((do_run)) && run_plain
    return 0
)

mpis=()
do_list=0
do_run=0
resume=0
while (($#)); do
    case "$1" in
        --mpi) (($# >= 2)) || usage; mpis+=("$2"); shift ;;
        --mpi=*) mpis+=("${1#*=}") ;;
        --prefix) (($# >= 2)) || usage; PREFIX="$2"; shift ;;
        --prefix=*) PREFIX="${1#*=}" ;;
        --max-np) (($# >= 2)) || usage; MAXNP="$2"; shift ;;
        --max-np=*) MAXNP="${1#*=}" ;;
        --list) do_list=1 ;;
        --run-plain) do_run=1 ;;
        --resume) do_run=1 resume=1 ;;
        -h|--help) usage 0 ;;
        *) warn "unknown argument '$1'"; usage ;;
    esac
    shift
done
((${#mpis[@]})) || mpis=(mpich)
for m in "${mpis[@]}"; do
    case "$m" in mpich|mpich-deb|openmpi) ;; *) die "unknown MPI '$m' (mpich, mpich-deb or openmpi)" ;; esac
done
[[ "$MAXNP" =~ ^[0-9]+$ ]] || die "--max-np: '$MAXNP' is not a number"
[[ "$PREFIX" == /* ]] || PREFIX="$PWD/$PREFIX"

mkdir -p "$PREFIX/src"
fetch_source
extract_suite
for m in "${mpis[@]}"; do
    suite_mpi "$m"
done
