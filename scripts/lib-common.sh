# shellcheck shell=bash
# Small helpers shared by the scripts (setup, benchmarks).
# Source it; it defines functions and two constants only.

# The mpi4py release that setup.sh installs (both venvs) and whose test suite
# it unpacks. Change it here only: setup.sh re-installs when it differs.
# shellcheck disable=SC2034  # used by the scripts that source this file
FERRY_MPI4PY_VERSION="4.1.2"
# The MPICH wheel (and the MPI standard description used by codegen).
# shellcheck disable=SC2034
FERRY_MPICH_VERSION="5.0.2"
# shellcheck disable=SC2034
FERRY_PYMPISTANDARD_VERSION="0.2.0"

# The scripts' own name, for messages.
FERRY_SCRIPT="$(basename "${0:-ferry}")"

say()  { printf '%s: %s\n' "$FERRY_SCRIPT" "$*"; }
warn() { printf '%s: warning: %s\n' "$FERRY_SCRIPT" "$*" >&2; }
die()  { printf '%s: error: %s\n' "$FERRY_SCRIPT" "$*" >&2; exit 1; }

# mpi_env_get MPI VAR: the value of VAR that scripts/mpi-env.sh exports for
# MPI, without changing the caller's environment.
mpi_env_get() {
    local mpi="$1" var="$2" root
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
    (
        # shellcheck source=scripts/mpi-env.sh
        . "$root/mpi-env.sh" "$mpi" >/dev/null
        printf '%s\n' "${!var}"
    )
}
