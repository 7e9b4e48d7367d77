//! Layer `entry`: the only symbols the library exports: the `MPI_*` (and
//! Fortran) entry points, generated and hand-written, and the C API of
//! `include/ferry.h`.
//!
//! May use every layer.
pub mod api;
pub mod life;
pub mod special;
pub mod wrappers;
