//! # ferry — live migration of MPI ranks
//!
//! `libferry.so` sits between an unmodified MPI program and its MPI library
//! (preloaded with `LD_PRELOAD`) and implements the dynamic group
//! communication protocol of US 8,335,813 (MPI-Mitten). The map, in layer
//! order, lowest first: a module may use its own layer and the layers
//! listed before it, never a later one, and the modules of one layer form
//! no cycle (`tests/layers.rs` checks both, see `docs/architecture.md`). Lower layers call up only through one trait,
//! [`core::upcalls::Upcalls`], implemented by [`ops::session`].
//!
//! | layer | module | role |
//! |---|---|---|
//! | [`sys`] | [`sys`] | the raw MPI layer: bindgen's `mpi.h` and macro-only constants |
//! | | [`sys::slab`] | fixed-capacity slot tables, never moved, for the handle tables |
//! | | [`sys::logging`] | the `log` backend (`FERRY_LOG`) and the panic hook |
//! | | [`sys::bits`] | an MPI handle (an `int` or a pointer) as 64 bits and back |
//! | | [`sys::life`] | where the process is in its life: initialized, thread level, job directory, exit status, the event log |
//! | | [`sys::nap`] | the library's own waits, polling then asleep |
//! | | [`sys::collective`] | the library's own collectives, typed (words in, vectors out), blocking or napping |
//! | | [`sys::grequest`] | a request that is already complete, reporting a status the library made |
//! | | [`sys::quirks`] | every workaround of an MPI bug, with its reference |
//! | [`mem`] | [`mem`] and its modules | the process image's MPI-free half: the program's memory at fixed addresses (layout, arenas, allocation, startup, loaded objects, files, image format, refusals) |
//! | [`core`] | [`core::state`] | the window-resident protocol state (MIG_CMD, status, blocked op, ids, supersteps) |
//! | | [`core::runtime`] | the configuration and the library's own MPI objects (control, finale, window) |
//! | | [`core::recipe`] | what makes a communicator again on a new world: its members' world ranks, its topology |
//! | | [`core::handles`] | virtual communicators, groups, requests and derived datatypes, mapped to the real ones |
//! | | [`core::upcalls`] | the one trait through which the lower layers call up |
//! | | [`core::superstep`] | per-communicator collective sequence numbers (the global superstep), and a group collective's count beside one |
//! | | [`core::comms`] | communicators and windows MPI just made, taken in with their recipe and global id; the group collectives (`MPI_Comm_create_group`, the leaders of `MPI_Intercomm_create`) counted beside them |
//! | | [`core::fortran`] | Fortran integers of virtual handles |
//! | | [`core::channels`] | per-(communicator, peer) sent/received counts, for the drain |
//! | | [`core::datatypes`] | the program's derived datatypes described before an image and made again after it |
//! | | [`core::ops`] | the program's reduction operations: virtual handles, trampolines that show the program its own datatype handles |
//! | | [`core::objects`] | MPI objects the program holds that an image cannot re-create yet |
//! | | [`core::errhandlers`], [`core::keyvals`] | the program's error handlers and attribute keyvals, with the trampolines that show it its own handles |
//! | | [`core::bsend`], [`core::clock`] | the buffer attached for buffered sends, and `MPI_Wtime`, carried across a move |
//! | | [`core::moves`] | whether ranks of this job moved (read on the per-call path) |
//! | [`calls`] | [`calls::boundary`] | each call counted; panics caught so a ferry bug never aborts the job |
//! | | [`calls::p2p`] | blocking receives and probes made wakeable (MIG_WAKE) |
//! | | [`calls::completion`] | the wait/test families: completion accounted, handles written back |
//! | | [`calls::anysource`] | MPICH's `MPI_ANY_SOURCE` receives after a migration, as matched probes |
//! | | [`calls::idup`] | the communicators of pending `MPI_Comm_idup`s |
//! | | [`calls::detached`] | the sends the library owns: `MPI_Isendrecv` taken apart into a receive of the program and a send of a copy |
//! | [`protocol`] | [`protocol::schedule`] | what is due at which call count: SPECs' regroups and migrations, the checkpoint, the status |
//! | | [`protocol::control`] | life cycle, control communicator, status files, the finalize wait; fires what is scheduled |
//! | | [`protocol::onesided`] | lock/get/put on the state windows, each buffer held until MPI is done with it |
//! | | [`protocol::sync`] | the collective synchronization's decisions (targets, releases, freeze), pure and model-checked |
//! | | [`protocol::regroup`] | request, notify (MIG_CMD), collective sync, and the phases of a freeze (MIG_WAKE/MIG_END): freeze, drain, new group, thaw |
//! | | [`protocol::drain`] | channels emptied by their counts; drained messages served first |
//! | | [`protocol::pending`] | pending receives and persistent requests carried onto rebuilt communicators |
//! | | [`protocol::membership`] | who is in each communicator; rebuilding them on a new world (new group) |
//! | [`ops`] | [`ops::image`] | the process image captured, streamed to a replacement and restored |
//! | | [`ops::remake`] | the program's MPI objects recorded before an image and made again after it |
//! | | [`ops::links`] | the links of past migrations: the old process asleep, the communicators released at the end |
//! | | [`ops::probe`] | a migration's target host knocked on before the spawn, within a bound |
//! | | [`ops::migration`] | ranks move, one or a batch in one synchronization: the requests and their agreement (`queue`), check, spawn (`spawn`), image handed over (`transfer`, and the new process's side: `replacement`), merge, split by old rank, the old processes leave (`departure`) |
//! | | [`ops::checkpoint`] | job checkpoint and restart: the regroup's freeze and drain, then every process's image |
//! | | [`ops::session`] | one regroup run as its phases, with a migration or checkpoint inside; `MPI_Init`/`MPI_Finalize`'s part; the event line |
//! | [`entry`] | [`entry::wrappers`] | every exported `MPI_*` function, generated from the MPI Forum's spec |
//! | | [`entry::special`] | the hand-written wrappers (init, completion, conversions, idup) |
//! | | [`entry::api`] | the C API of `include/ferry.h` (ask for a regroup, count them) |
//! | | [`entry::life`] | at load: what the lower layers call up into |
//!
//! Protocol logic is safe Rust; `unsafe` stays at the FFI edge, each block
//! with a `SAFETY:` note.
// MPI handles are opaque names (pointers to MPI's own objects under Open
// MPI): passing one to a PMPI function is not a dereference of ours.
#![allow(clippy::not_unsafe_ptr_arg_deref)]
// Every unsafe operation sits in its own `unsafe` block, even inside an
// `unsafe fn`, and every such block says why it is sound (`// SAFETY:`).
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

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
