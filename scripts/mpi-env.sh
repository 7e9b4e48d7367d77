# shellcheck shell=bash
# Source with the MPI flavour to use: `. scripts/mpi-env.sh mpich|openmpi|mpich-deb`.
#   mpich      the pip wheel's MPICH 5.0.2 under $FERRY_PREFIX/mpich (no Fortran)
#   openmpi    Debian's Open MPI 4.1.4 (/usr/bin/*.openmpi)
#   mpich-deb  Debian's MPICH 4.0.2 (libmpich-dev: /usr/bin/*.mpich), with
#              Fortran; its MPI_Comm_spawn fails, so no migration there
# Every path is explicit: Debian's `mpicc`/`mpif90`/`mpiexec` alternatives
# are never used (installing MPICH next to Open MPI must change nothing).
# Exports the paths every other script and test relies on:
#   FERRY_MPI       mpich | openmpi | mpich-deb
#   MPICC           the MPI C compiler wrapper (build.rs reads it)
#   MPIF90          the MPI Fortran compiler wrapper ("" if this MPI has none)
#   MPIEXEC         the launcher
#   FERRY_MPIEXEC_FLAGS  flags the launcher needs on this machine (root, 2 cores)
#   CARGO_TARGET_DIR     target/$FERRY_MPI: one build per MPI
#   FERRY_LIB       the built interposition library for this MPI
#   FERRY_BIN       the built `ferry` command
#   FERRY_PY        python of the venv whose mpi4py is built against this MPI
FERRY_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FERRY_PREFIX="${FERRY_PREFIX:-/opt/ferry}"
FERRY_MPI="${1:-${FERRY_MPI:-mpich}}"
case "$FERRY_MPI" in
  mpich)
    MPICC="$FERRY_PREFIX/mpich/bin/mpicc"
    MPIEXEC="$FERRY_PREFIX/mpich/bin/mpiexec"
    MPIF90=""
    FERRY_MPIEXEC_FLAGS=""
    FERRY_PY="$FERRY_PREFIX/mpich/bin/python"
    ;;
  mpich-deb)
    MPICC=/usr/bin/mpicc.mpich
    MPIEXEC=/usr/bin/mpiexec.mpich
    MPIF90=/usr/bin/mpif90.mpich
    FERRY_MPIEXEC_FLAGS=""
    # no mpi4py is built against this MPI
    FERRY_PY=""
    ;;
  openmpi)
    MPICC=/usr/bin/mpicc.openmpi
    MPIEXEC=/usr/bin/mpiexec.openmpi
    MPIF90=/usr/bin/mpif90.openmpi
    FERRY_MPIEXEC_FLAGS="--oversubscribe"
    FERRY_PY="$FERRY_PREFIX/openmpi/bin/python"
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    export OMPI_MCA_rmaps_base_oversubscribe=1
    # no InfiniBand/UCX here: keep Open MPI from probing for it noisily
    export OMPI_MCA_btl="^openib,ofi"
    # one-sided windows through osc pt2pt in every process, as `ferry run`
    # sets (docs/migration.md: otherwise a job gets two migrations), for
    # the runs with and without the library alike
    export OMPI_MCA_osc="${OMPI_MCA_osc:-pt2pt}"
    ;;
  *) echo "mpi-env.sh: unknown MPI '$FERRY_MPI' (mpich, openmpi or mpich-deb)" >&2; return 2 ;;
esac
CARGO_TARGET_DIR="$FERRY_ROOT/target/$FERRY_MPI"
FERRY_LIB="$CARGO_TARGET_DIR/release/libferry.so"
FERRY_BIN="$CARGO_TARGET_DIR/release/ferry"
export FERRY_ROOT FERRY_PREFIX FERRY_MPI MPICC MPIEXEC MPIF90 FERRY_MPIEXEC_FLAGS \
       CARGO_TARGET_DIR FERRY_LIB FERRY_BIN FERRY_PY
