//! Layer `calls`: the bookkeeping of one MPI call of the program: the
//! boundary every call goes through, blocking point-to-point made
//! wakeable, request completion, `MPI_ANY_SOURCE` receives after a
//! migration, the communicators of pending `MPI_Comm_idup`s, the sends the
//! library owns (`MPI_Isendrecv`'s).
//!
//! May use `sys`, `mem`, `core` and `calls`.
pub mod anysource;
pub mod boundary;
pub mod completion;
pub mod detached;
pub mod idup;
pub mod p2p;
