//! The process image carried: [`capture`] writes it (to a file or, through
//! [`stream`], straight to a replacement process over MPI) and [`restore`]
//! puts it back in place in a new process. The memory they carry, and how
//! it is laid out, is the `mem` layer's.
pub mod capture;
pub mod mapped;
pub mod restore;
pub mod stream;
