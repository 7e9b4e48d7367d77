//! Layer `core`: the library's own bookkeeping of the program's MPI world,
//! the tables every call and the protocol read and write: the protocol
//! state published in the window, virtual handles, supersteps, channel
//! counts, derived datatypes, reduction operations and the other objects
//! the program holds.
//!
//! May use `sys`, `mem` and `core`.
pub mod bsend;
pub mod channels;
pub mod clock;
pub mod comms;
pub mod datatypes;
pub mod errhandlers;
pub mod fortran;
pub mod handles;
pub mod keyvals;
pub mod moves;
pub mod objects;
pub mod ops;
pub mod recipe;
pub mod runtime;
pub mod state;
pub mod superstep;
pub mod upcalls;
