//! The exported MPI entry points, generated from the MPI Forum's API
//! description by `ferry-codegen` (see `codegen/`). Each wrapper counts the
//! call, translates virtual handles, does the protocol's bookkeeping for its
//! kind of call and calls the real function through its `PMPI_*` name.
//!
//! Under Open MPI, whose Fortran library calls `PMPI_*` directly, the
//! Fortran entry points (`mpi_send_`, ..., and `ompi_send_f` for
//! `use mpi_f08`) are exported too: each converts its arguments and calls
//! the C wrapper above, which counts it (see `docs/fortran.md`). Under MPICH
//! the `mpif.h` layer calls the C `MPI_*` functions (no entry points of
//! ours, so no call is counted twice) but for the attribute calls, and the
//! `use mpi_f08` layer calls `PMPI_*` for every procedure without a choice
//! buffer: those get entry points of ours (`fortran_mpich.rs`).
#[rustfmt::skip]
mod generated;

#[cfg(ferry_mpi = "openmpi")]
#[rustfmt::skip]
mod fortran;
#[cfg(ferry_mpi = "mpich")]
#[rustfmt::skip]
mod fortran_mpich;
pub(crate) mod fortran_support;
