//! The exported MPI entry points, generated from the MPI Forum's API
//! description by `ferry-codegen` (see `codegen/`). Each wrapper counts the
//! call, translates virtual handles, does the protocol's bookkeeping for its
//! kind of call and calls the real function through its `PMPI_*` name.
//!
//! Under Open MPI, whose Fortran library calls `PMPI_*` directly, the
//! Fortran entry points (`mpi_send_`, ..., and `ompi_send_f` for
//! `use mpi_f08`) are exported too: each converts its arguments and calls
//! the C wrapper above, which counts it (see `docs/fortran.md`). Under MPICH
//! the Fortran layer calls the C `MPI_*` functions: no Fortran exports, so
//! no call is counted twice.
#[rustfmt::skip]
mod generated;

#[cfg(ferry_mpi = "openmpi")]
#[rustfmt::skip]
mod fortran;
#[cfg(ferry_mpi = "openmpi")]
pub(crate) mod fortran_support;
