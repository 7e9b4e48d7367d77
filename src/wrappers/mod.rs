//! The exported MPI entry points, generated from the MPI Forum's API
//! description by `ferry-codegen` (see `codegen/`). Each wrapper counts the
//! call, translates virtual handles, does the protocol's bookkeeping for its
//! kind of call and calls the real function through its `PMPI_*` name.
#[rustfmt::skip]
mod generated;
