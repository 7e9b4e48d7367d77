//! # ferry — live migration of MPI ranks
//!
//! `libferry.so` sits between an unmodified MPI program and its MPI library
//! (preloaded with `LD_PRELOAD`) and implements the dynamic group
//! communication protocol of US 8,335,813 (MPI-Mitten). The map, in layer
//! order, lowest first: a module may use its own layer and the layers
//! listed before it, never a later one (`tests/layers.rs` checks it; the
//! references that break the rule today are listed there as debt, see
//! `docs/architecture.md`).
//!
//! | layer | module | role |
//! |---|---|---|
//! | [`sys`] | [`sys`] | the raw MPI layer: bindgen's `mpi.h` and macro-only constants |
//! | | [`sys::slab`] | fixed-capacity slot tables, never moved, for the handle tables |
//! | | [`sys::logging`] | the `log` backend (`FERRY_LOG`) and the panic hook |
//! | [`mem`] | [`mem`] and its modules | the process image's MPI-free half: the program's memory at fixed addresses (layout, arenas, allocation, startup, loaded objects, files, image format, refusals) |
//! | [`core`] | [`core::state`] | the window-resident protocol state (MIG_CMD, status, blocked op, ids, supersteps) |
//! | | [`core::handles`] | virtual communicators, groups, requests and derived datatypes, mapped to the real ones |
//! | | [`core::superstep`] | per-communicator collective sequence numbers (the global superstep) |
//! | | [`core::channels`] | per-(communicator, peer) sent/received counts, for the drain |
//! | | [`core::datatypes`] | the program's derived datatypes described before an image and made again after it |
//! | | [`core::ops`] | the program's reduction operations: virtual handles, trampolines that show the program its own datatype handles |
//! | | [`core::objects`] | MPI objects the program holds that an image cannot re-create yet |
//! | [`calls`] | [`calls::boundary`] | each call counted; panics caught so a ferry bug never aborts the job |
//! | | [`calls::p2p`] | blocking receives and probes made wakeable (MIG_WAKE) |
//! | | [`calls::completion`] | the wait/test families: completion accounted, handles written back |
//! | | [`calls::anysource`] | MPICH's `MPI_ANY_SOURCE` receives after a migration, as matched probes |
//! | [`protocol`] | [`protocol::control`] | life cycle, configuration, control communicator, SPEC triggers, finalize |
//! | | [`protocol::onesided`] | lock/get/put on the state windows, each buffer held until MPI is done with it |
//! | | [`protocol::sync`] | the collective synchronization's decisions (targets, releases, freeze), pure and model-checked |
//! | | [`protocol::regroup`] | the protocol end to end: request, notify (MIG_CMD), collective sync, freeze (MIG_WAKE/MIG_END), drain, new group, event log |
//! | | [`protocol::drain`] | channels emptied by their counts; drained messages served first |
//! | | [`protocol::pending`] | pending receives and persistent requests carried onto rebuilt communicators |
//! | | [`protocol::membership`] | who is in each communicator; rebuilding them on a new world (new group) |
//! | [`ops`] | [`ops::migration`] | a rank moves: spawn, merge, split by old rank, image handed over, the old process asleep |
//! | | [`ops::checkpoint`] | job checkpoint and restart: the regroup's freeze and drain, then every process's image |
//! | | [`ops::probe`] | a migration's target host knocked on before the spawn, within a bound |
//! | | [`ops::image`] | the process image captured, streamed to a replacement and restored |
//! | [`entry`] | [`entry::wrappers`] | every exported `MPI_*` function, generated from the MPI Forum's spec |
//! | | [`entry::special`] | the hand-written wrappers (init, completion, conversions, idup) |
//! | | [`entry::api`] | the C API of `include/ferry.h` (ask for a regroup, count them) |
//!
//! Protocol logic is safe Rust; `unsafe` stays at the FFI edge, each block
//! with a `SAFETY:` note.
// MPI handles are opaque names (pointers to MPI's own objects under Open
// MPI): passing one to a PMPI function is not a dereference of ours.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

// The layers, lowest first: the order of the map above (the blank lines
// keep rustfmt from sorting them).
pub mod sys;

pub mod mem;

pub mod core;

pub mod calls;

pub mod protocol;

pub mod ops;

pub mod entry;

/// Every allocation of the library itself goes to its own arena once the
/// process image is on (see [`mem::alloc`]).
#[global_allocator]
static ALLOCATOR: mem::alloc::LibAlloc = mem::alloc::LibAlloc;
