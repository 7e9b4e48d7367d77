//! # ferry — live migration of MPI ranks
//!
//! `libferry.so` sits between an unmodified MPI program and its MPI library
//! (preloaded with `LD_PRELOAD`) and implements the dynamic group
//! communication protocol of US 8,335,813 (MPI-Mitten). The map, in the
//! order a call goes through it:
//!
//! | module | role |
//! |---|---|
//! | [`wrappers`] | every exported `MPI_*` function, generated from the MPI Forum's spec |
//! | [`api`] | the C API of `include/ferry.h` (ask for a regroup, count them) |
//! | [`boundary`] | each call counted; panics caught so a ferry bug never aborts the job |
//! | [`handles`] | virtual communicators, groups, requests and derived datatypes, mapped to the real ones |
//! | [`superstep`] | per-communicator collective sequence numbers (the global superstep) |
//! | [`channels`] | per-(communicator, peer) sent/received counts, for the drain |
//! | [`anysource`] | MPICH's `MPI_ANY_SOURCE` receives after a migration, as matched probes |
//! | [`p2p`] | blocking receives and probes made wakeable (MIG_WAKE) |
//! | [`completion`] | the wait/test families: completion accounted, handles written back |
//! | [`state`] | the window-resident protocol state (MIG_CMD, status, blocked op, ids, supersteps) |
//! | [`onesided`] | lock/get/put on the state windows, each buffer held until MPI is done with it |
//! | [`regroup`] | the protocol end to end: request, notify (MIG_CMD), collective sync, freeze (MIG_WAKE/MIG_END), drain, new group, event log |
//! | [`sync`] | the collective synchronization's decisions (targets, releases, freeze), pure and model-checked |
//! | [`drain`] | channels emptied by their counts; drained messages served first |
//! | [`pending`] | pending receives and persistent requests carried onto rebuilt communicators |
//! | [`membership`] | who is in each communicator; rebuilding them on a new world (new group) |
//! | [`image`] | the process image: the program's memory at fixed addresses, captured and restored |
//! | [`probe`] | a migration's target host knocked on before the spawn, within a bound |
//! | [`migration`] | a rank moves: spawn, merge, split by old rank, image handed over, the old process asleep |
//! | [`checkpoint`] | job checkpoint and restart: the regroup's freeze and drain, then every process's image |
//! | [`datatypes`] | the program's derived datatypes described before an image and made again after it |
//! | [`ops`] | the program's reduction operations: virtual handles, trampolines that show the program its own datatype handles |
//! | [`objects`] | MPI objects the program holds that an image cannot re-create yet |
//! | [`control`] | life cycle, configuration, control communicator, SPEC triggers, finalize |
//! | [`special`] | the hand-written wrappers (init, completion, conversions, idup) |
//! | [`sys`] | the raw MPI layer: bindgen's `mpi.h` and macro-only constants |
//!
//! Protocol logic is safe Rust; `unsafe` stays at the FFI edge, each block
//! with a `SAFETY:` note.
// MPI handles are opaque names (pointers to MPI's own objects under Open
// MPI): passing one to a PMPI function is not a dereference of ours.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

pub mod anysource;
pub mod api;
pub mod boundary;
pub mod channels;
pub mod checkpoint;
pub mod completion;
pub mod control;
pub mod datatypes;
pub mod drain;
pub mod handles;
pub mod image;
pub mod logging;
pub mod membership;
pub mod migration;
pub mod objects;
pub mod onesided;
pub mod ops;
pub mod p2p;
pub mod pending;
pub mod probe;
pub mod regroup;
pub mod slab;
pub mod special;
pub mod state;
pub mod superstep;
pub mod sync;
pub mod sys;
pub mod wrappers;

/// Every allocation of the library itself goes to its own arena once the
/// process image is on (see [`image::alloc`]).
#[global_allocator]
static ALLOCATOR: image::alloc::LibAlloc = image::alloc::LibAlloc;
