//! Layer `ops`: what runs inside a regroup's freeze: the session that
//! runs a regroup's phases in order ([`session`]), a migration (with the
//! probe of its target host), a job checkpoint, and the process image
//! captured, streamed and restored ([`image`]).
//!
//! May use `sys`, `mem`, `core`, `calls`, `protocol` and `ops`.
pub mod checkpoint;
pub mod image;
pub mod links;
pub mod migration;
pub mod probe;
pub mod remake;
pub mod session;
