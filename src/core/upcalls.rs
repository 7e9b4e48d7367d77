//! The protocol as the per-call path reaches it: one small trait,
//! [`Protocol`], implemented by layer `protocol` and registered at
//! `MPI_Init` ([`register`]). The layers below it (`core`, `calls`) call
//! up only through it, and only on rare branches, each behind a flag they
//! read themselves (a command in the state window, a call count reached,
//! drained messages waiting): the common path costs what it cost when
//! these were direct calls.
//!
//! Before `MPI_Init` registers the protocol (and in a process without
//! one) every method answers as if nothing were going on.
use crate::core::handles::CommRef;
use crate::sys::*;
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// What the per-call path asks of the protocol.
pub trait Protocol: Sync {
    /// Entering collective number `k` on the communicator in `slot` while
    /// a command is up: joins the regroup; returns whether the job moved
    /// to new communicators meanwhile (`regroup::at_collective`).
    fn at_collective(&self, slot: usize, k: u64) -> bool;
    /// The call count reached the next scheduled work (SPECs, a queued
    /// request, a checkpoint: `control::scheduled`).
    fn scheduled(&self, calls: u64);
    /// A blocked call polls while a command is up: whether it is woken
    /// to let the regroup in (and may be, if `wakeable`).
    fn woken(&self, wakeable: bool) -> bool;
    /// A blocked call still waits for `world` since `since`: tells the
    /// leader, if it waits too long.
    fn nudge(&self, world: i32, since: Instant);
    /// Runs the regroup this process was woken for (`regroup::now`).
    fn regroup_now(&self);
    /// A receive served from the drained messages, if one matches
    /// (`drain::recv`).
    ///
    /// # Safety
    /// As the program's `MPI_Recv` arguments.
    #[allow(clippy::too_many_arguments)]
    unsafe fn drained_recv(
        &self,
        comm: CommRef,
        source: c_int,
        tag: c_int,
        buf: *mut c_void,
        count: i64,
        datatype: MPI_Datatype,
        status: *mut MPI_Status,
    ) -> Option<c_int>;
    /// A probe answered from the drained messages (`drain::probe`).
    ///
    /// # Safety
    /// As the program's `MPI_Probe`/`MPI_Iprobe` arguments (`flag` may be
    /// null for the blocking form).
    unsafe fn drained_probe(
        &self,
        comm: CommRef,
        source: c_int,
        tag: c_int,
        flag: *mut c_int,
        status: *mut MPI_Status,
    ) -> Option<c_int>;
    /// A matched probe answered from the drained messages
    /// (`drain::mprobe`).
    ///
    /// # Safety
    /// As the program's `MPI_Mprobe`/`MPI_Improbe` arguments.
    unsafe fn drained_mprobe(
        &self,
        comm: CommRef,
        source: c_int,
        tag: c_int,
        flag: *mut c_int,
        message: *mut MPI_Message,
        status: *mut MPI_Status,
    ) -> Option<c_int>;
    /// Starting the persistent receive of request slot `i` is served by a
    /// drained message (`pending::serve_start`).
    ///
    /// # Safety
    /// The program's live request.
    unsafe fn serve_start(&self, i: usize) -> bool;
    /// Starts the persistent receive of request slot `i` by a stand-in,
    /// as `calls::anysource::needs_standin` said (`pending::start_standin`).
    ///
    /// # Safety
    /// The program's live request.
    unsafe fn start_standin(&self, i: usize) -> c_int;
}

/// The protocol, once registered.
static PROTOCOL: std::sync::OnceLock<&'static dyn Protocol> = std::sync::OnceLock::new();

/// Drained messages wait to be served (set by the drain).
static DRAINED: AtomicBool = AtomicBool::new(false);

/// At `MPI_Init`: the protocol the per-call path calls up into.
pub fn register(p: &'static dyn Protocol) {
    let _ = PROTOCOL.set(p);
}

/// The protocol (an inert one before [`register`]).
#[inline]
pub fn protocol() -> &'static dyn Protocol {
    PROTOCOL.get().copied().unwrap_or(&Inert)
}

/// Whether drained messages wait to be served: the per-call path's flag
/// in front of [`Protocol::drained_recv`] and the probes.
#[inline(always)]
pub fn drained_waiting() -> bool {
    DRAINED.load(Ordering::Relaxed)
}

/// The drain says whether messages wait.
pub fn set_drained_waiting(yes: bool) {
    DRAINED.store(yes, Ordering::Relaxed);
}

/// The protocol before `MPI_Init`: nothing is going on.
struct Inert;

impl Protocol for Inert {
    fn at_collective(&self, _: usize, _: u64) -> bool {
        false
    }
    fn scheduled(&self, _: u64) {}
    fn woken(&self, _: bool) -> bool {
        false
    }
    fn nudge(&self, _: i32, _: Instant) {}
    fn regroup_now(&self) {}
    unsafe fn drained_recv(
        &self,
        _: CommRef,
        _: c_int,
        _: c_int,
        _: *mut c_void,
        _: i64,
        _: MPI_Datatype,
        _: *mut MPI_Status,
    ) -> Option<c_int> {
        None
    }
    unsafe fn drained_probe(
        &self,
        _: CommRef,
        _: c_int,
        _: c_int,
        _: *mut c_int,
        _: *mut MPI_Status,
    ) -> Option<c_int> {
        None
    }
    unsafe fn drained_mprobe(
        &self,
        _: CommRef,
        _: c_int,
        _: c_int,
        _: *mut c_int,
        _: *mut MPI_Message,
        _: *mut MPI_Status,
    ) -> Option<c_int> {
        None
    }
    unsafe fn serve_start(&self, _: usize) -> bool {
        false
    }
    unsafe fn start_standin(&self, _: usize) -> c_int {
        0
    }
}
