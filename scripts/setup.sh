#!/usr/bin/env bash
# Install everything ferry needs on a Debian 12 machine. Run as root.
#
#   scripts/setup.sh
#
# Idempotent: every step first checks whether its result is already there
# and working, and only installs what is missing, so a second run is quick
# and installs nothing. Steps:
#   1. Debian packages (apt-get update runs once, and only if one is missing):
#      libclang (bindgen), Open MPI 4.1.4 (openmpi-bin, libopenmpi-dev),
#      MPICH 4.0.2 with Fortran (libmpich-dev: mpicc.mpich, mpif90.mpich,
#      mpiexec.mpich; flavour mpich-deb), gfortran, iproute2, GROMACS
#      (gmx_mpi on Open MPI: the harness's apps:: cases), valgrind
#      (scripts/bench-instructions.sh). Debian's
#      alternatives keep /usr/bin/mpicc, mpif90, mpiexec on Open MPI
#      (priority 50 over MPICH's 40); no script uses those names anyway.
#      A summary line says where they point.
#   2. $FERRY_PREFIX/mpich (default /opt/ferry/mpich): a venv with the MPICH
#      wheel, pympistandard, and mpi4py built from source against the venv's
#      mpicc.
#   3. $FERRY_PREFIX/openmpi: a venv with mpi4py built from source against
#      Debian's Open MPI (/usr/bin/mpicc.openmpi).
#   4. $FERRY_PREFIX/mpi4py-tests: the test/ directory of the same mpi4py
#      release's source distribution (the harness's mpi4py:: cases run it).
#   5. rustup components rustfmt and clippy.
# Versions are pinned in scripts/lib-common.sh. A venv whose packages have
# other versions, or whose mpi4py does not load the expected libmpi, is
# rebuilt. Paths come from scripts/mpi-env.sh. Ends with a short summary.
# (mpi_env_get sources mpi-env.sh in a subshell on purpose)
# shellcheck disable=SC2031
set -euo pipefail

SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib-common.sh
. "$SCRIPTS/lib-common.sh"

FERRY_PREFIX="${FERRY_PREFIX:-/opt/ferry}"
export FERRY_PREFIX
PYTHON="${PYTHON:-python3}"
TESTS_DIR="$FERRY_PREFIX/mpi4py-tests"
TESTS_STAMP="$TESTS_DIR/.mpi4py-version"

APT_PACKAGES=(
    libclang-dev clang          # bindgen (build.rs)
    openmpi-bin libopenmpi-dev  # Open MPI 4.1.4: mpicc.openmpi, mpiexec.openmpi
    libmpich-dev                # MPICH 4.0.2 with Fortran: mpicc.mpich, mpif90.mpich, mpiexec.mpich
    gfortran                    # Fortran test programs
    iproute2                    # `ip netns` test hosts
    ca-certificates             # pip over https on a bare machine
    gromacs                     # a real application (gmx_mpi, Open MPI): the harness's apps:: cases
    valgrind                    # scripts/bench-instructions.sh (callgrind)
)

installed_something=0
apt_updated=0
notes=()

case "${1:-}" in
    -h|--help) sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    "") ;;
    *) die "no arguments expected (got '$1'); see --help" ;;
esac

# --- 1. Debian packages -----------------------------------------------------
apt_missing() {
    local pkg status
    for pkg in "${APT_PACKAGES[@]}"; do
        status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
        [[ "$status" == "install ok installed" ]] || printf '%s\n' "$pkg"
    done
}

step_apt() {
    local missing
    mapfile -t missing < <(apt_missing)
    if ((${#missing[@]} == 0)); then
        say "apt: all ${#APT_PACKAGES[@]} packages present"
        return
    fi
    [[ $EUID -eq 0 ]] || die "apt: missing ${missing[*]}; run this script as root"
    say "apt: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ((apt_updated == 0)); then
        apt-get update -q
        apt_updated=1
    fi
    apt-get install -y -q "${missing[@]}"
    installed_something=1
}

# --- Python checks ------------------------------------------------------------
step_python() {
    command -v "$PYTHON" >/dev/null || die "python: '$PYTHON' not found"
    # The venvs need the venv module and ensurepip (Debian's own python3 has
    # them in python3-venv; pyenv's python has them built in).
    if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
        if [[ "$(command -v "$PYTHON")" == /usr/bin/* ]]; then
            say "python: installing python3-venv"
            APT_PACKAGES=(python3-venv)
            step_apt
        fi
        "$PYTHON" -c 'import venv, ensurepip' \
            || die "python: '$PYTHON' cannot create venvs (no venv/ensurepip module)"
    fi
}

# venv_has VENV PKG==VER...: succeeds when the venv's python has exactly
# these package versions; prints the first difference otherwise.
venv_has() {
    local venv="$1"; shift
    [[ -x "$venv/bin/python" ]] || { echo "no venv"; return 1; }
    "$venv/bin/python" - "$@" <<'EOF' 2>&1
import importlib.metadata as md, sys
for spec in sys.argv[1:]:
    name, want = spec.split("==")
    try:
        have = md.version(name)
    except md.PackageNotFoundError:
        sys.exit(f"{name} not installed")
    if have != want:
        sys.exit(f"{name} {have} installed, {want} wanted")
EOF
}

# venv_check VENV MPICC PKG==VER...: succeeds when the venv's python has
# exactly these package versions and its mpi4py.MPI loads the libmpi that
# MPICC links (an mpi4py built elsewhere, or a binary wheel, fails this).
# Prints the MPI library's name and version on success, the reason on failure.
venv_check() {
    local venv="$1" mpicc="$2"; shift 2
    [[ -x "$venv/bin/python" ]] || { echo "no venv"; return 1; }
    [[ -x "$mpicc" ]] || { echo "no $mpicc"; return 1; }
    local libdirs
    libdirs="$("$mpicc" -show 2>/dev/null | tr ' ' '\n' | sed -n 's/^-L//p' | tr '\n' ':')"
    venv_has "$venv" "$@" || return 1
    "$venv/bin/python" - "$libdirs" <<'EOF' 2>&1
import os, sys
libdirs = [d for d in sys.argv[1].split(":") if d]
import mpi4py
mpi4py.rc.initialize = False   # MPI_Get_library_version works before init
mpi4py.rc.finalize = False
from mpi4py import MPI
loaded = sorted({line.split()[-1] for line in open("/proc/self/maps")
                 if "/libmpi.so" in line or "/libmpi_abi.so" in line})
if len(loaded) != 1:
    sys.exit(f"mpi4py.MPI loaded libmpi {loaded or 'not at all'}")
lib = os.path.realpath(loaded[0])
ok = any(os.path.realpath(os.path.dirname(lib)) == os.path.realpath(d)
         or os.path.realpath(os.path.join(d, "libmpi.so")) == lib
         for d in libdirs)
if not ok:
    sys.exit(f"mpi4py.MPI loaded {lib}, not the libmpi of {libdirs}")
name, version = MPI.get_vendor()
print(f"{name} {'.'.join(map(str, version))}, MPI {'.'.join(map(str, MPI.Get_version()))}", "|", lib)
EOF
}

# build_mpi4py VENV MPICC: mpi4py from source, linked by MPICC.
build_mpi4py() {
    local venv="$1" mpicc="$2"
    say "$venv: building mpi4py $FERRY_MPI4PY_VERSION from source with $mpicc (a few minutes)"
    MPICC="$mpicc" "$venv/bin/pip" install -q --disable-pip-version-check \
        --force-reinstall --no-deps --no-binary mpi4py --no-cache-dir \
        "mpi4py==$FERRY_MPI4PY_VERSION"
    installed_something=1
}

make_venv() {
    local venv="$1"
    if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
        say "$venv: creating venv with $("$PYTHON" --version 2>&1)"
        mkdir -p "$(dirname "$venv")"
        "$PYTHON" -m venv --clear "$venv"
        installed_something=1
    fi
}

# setup_venv MPI: the venv mpi-env.sh names for MPI (FERRY_PY's prefix).
setup_venv() {
    local mpi="$1" venv mpicc py why
    py="$(mpi_env_get "$mpi" FERRY_PY)"
    mpicc="$(mpi_env_get "$mpi" MPICC)"
    venv="$(dirname "$(dirname "$py")")"
    local wanted=("mpi4py==$FERRY_MPI4PY_VERSION")
    if [[ "$mpi" == mpich ]]; then
        wanted+=("mpich==$FERRY_MPICH_VERSION" "pympistandard==$FERRY_PYMPISTANDARD_VERSION")
    fi
    if why="$(venv_check "$venv" "$mpicc" "${wanted[@]}")"; then
        say "$mpi: $venv ready (${why%% |*})"
        return
    fi
    say "$mpi: $venv needs work: ${why##*$'\n'}"
    make_venv "$venv"
    local rebuild=0
    if [[ "$mpi" == mpich ]]; then
        local pins=("mpich==$FERRY_MPICH_VERSION" "pympistandard==$FERRY_PYMPISTANDARD_VERSION")
        # a new MPICH means mpi4py must be built again against it
        venv_has "$venv" "${pins[0]}" >/dev/null || rebuild=1
        if ! venv_has "$venv" "${pins[@]}" >/dev/null; then
            say "$venv: pip install ${pins[*]}"
            "$venv/bin/pip" install -q --disable-pip-version-check "${pins[@]}"
            installed_something=1
        fi
    fi
    [[ -x "$mpicc" ]] || die "$mpi: $mpicc not found after install"
    if ((rebuild)) || ! why="$(venv_check "$venv" "$mpicc" "${wanted[@]}")"; then
        build_mpi4py "$venv" "$mpicc"
        why="$(venv_check "$venv" "$mpicc" "${wanted[@]}")" \
            || die "$mpi: $venv still not right after install: $why"
    fi
    say "$mpi: $venv ready (${why%% |*})"
}

# --- 4. mpi4py test suite ---------------------------------------------------
step_tests() {
    if [[ -f "$TESTS_DIR/main.py" && -f "$TESTS_DIR/mpiunittest.py" \
          && "$(cat "$TESTS_STAMP" 2>/dev/null)" == "$FERRY_MPI4PY_VERSION" ]]; then
        say "mpi4py tests: $TESTS_DIR ready ($FERRY_MPI4PY_VERSION)"
        return
    fi
    say "mpi4py tests: fetching the mpi4py $FERRY_MPI4PY_VERSION source distribution"
    local tmp
    tmp="$(mktemp -d)"
    "$PYTHON" -m pip download -q --disable-pip-version-check --no-binary :all: \
        --no-deps "mpi4py==$FERRY_MPI4PY_VERSION" -d "$tmp"
    local sdist
    sdist="$(ls "$tmp"/mpi4py-*.tar.gz)"
    tar -xzf "$sdist" -C "$tmp" "mpi4py-$FERRY_MPI4PY_VERSION/test"
    rm -rf "$TESTS_DIR"
    mkdir -p "$FERRY_PREFIX"
    mv "$tmp/mpi4py-$FERRY_MPI4PY_VERSION/test" "$TESTS_DIR"
    echo "$FERRY_MPI4PY_VERSION" > "$TESTS_STAMP"
    rm -rf "$tmp"
    installed_something=1
    say "mpi4py tests: unpacked to $TESTS_DIR"
}

# --- 5. rustup components ---------------------------------------------------
step_rust() {
    if ! command -v rustup >/dev/null; then
        command -v cargo >/dev/null || die "rust: neither rustup nor cargo found"
        notes+=("rust: no rustup here; rustfmt/clippy not checked")
        return
    fi
    local have missing=() comp
    have="$(rustup component list --installed 2>/dev/null || true)"
    for comp in rustfmt clippy; do
        grep -q "^$comp" <<<"$have" || missing+=("$comp")
    done
    if ((${#missing[@]} == 0)); then
        say "rust: rustfmt and clippy present"
        return
    fi
    say "rust: rustup component add ${missing[*]}"
    if rustup component add "${missing[@]}"; then
        installed_something=1
    else
        notes+=("rust: could not add ${missing[*]} (rustup's dist server unreachable?):" \
                "      cargo fmt / cargo clippy will not be available")
        warn "rustup component add ${missing[*]} failed; continuing without them"
    fi
}

# --- run ----------------------------------------------------------------------
start=$SECONDS
step_apt
step_python
setup_venv mpich
setup_venv openmpi
step_tests
step_rust

# --- summary ----------------------------------------------------------------
echo
echo "== ferry setup summary =="
for mpi in mpich openmpi; do
    py="$(mpi_env_get "$mpi" FERRY_PY)"
    printf '%-8s %-34s mpi4py %s: %s\n' "$mpi" "$(dirname "$(dirname "$py")")" \
        "$FERRY_MPI4PY_VERSION" \
        "$(venv_check "$(dirname "$(dirname "$py")")" "$(mpi_env_get "$mpi" MPICC)" | sed 's/ | / (/; s/$/)/')"
done
printf '%-8s %s (mpi4py %s)\n' tests "$TESTS_DIR" "$(cat "$TESTS_STAMP")"
printf '%-8s %s\n' libclang "$(dpkg-query -W -f='${Version}' libclang-dev)"
printf '%-8s %s (/usr/bin/mpicc -> %s, mpiexec -> %s; ferry uses explicit paths)\n' mpich-deb \
    "$(dpkg-query -W -f='${Version}' libmpich-dev)" \
    "$(readlink -f /usr/bin/mpicc 2>/dev/null || echo none)" \
    "$(readlink -f /usr/bin/mpiexec 2>/dev/null || echo none)"
printf '%-8s %s; %s\n' rust "$(rustc --version 2>/dev/null || echo 'rustc not found')" \
    "$(rustup component list --installed 2>/dev/null | grep -o -e '^rustfmt' -e '^clippy' | tr '\n' ' ' || true)"
for note in "${notes[@]}"; do echo "note: $note"; done
if ((installed_something)); then
    echo "setup: done in $((SECONDS - start)) s (installed what was missing)"
else
    echo "setup: done in $((SECONDS - start)) s (nothing to install)"
fi
