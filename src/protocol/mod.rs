//! Layer `protocol`: the regroup, the patent's dynamic group
//! synchronization: what is scheduled at call counts, life cycle and
//! control communicator, one-sided access to the state windows, the
//! synchronization's decisions, the freeze, the drain, pending operations
//! and the new group.
//!
//! May use `sys`, `mem`, `core`, `calls` and `protocol`.
pub mod control;
pub mod drain;
pub mod membership;
pub mod onesided;
pub mod pending;
pub mod regroup;
pub mod schedule;
pub mod sync;
