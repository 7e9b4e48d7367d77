//! Calls up: one small trait, [`Upcalls`], through which the lower
//! layers reach the higher ones, implemented by `ops::session` and
//! registered when the library is loaded ([`register`], from
//! `entry::life`).
//!
//! * The per-call path (`core`, `calls`) reaches the protocol through it
//!   only on rare branches, each behind a flag it reads itself (a command
//!   in the state window, a call count reached, drained messages
//!   waiting): the common path costs what it cost when these were direct
//!   calls.
//! * The protocol (`protocol`) reaches the operations through it: the
//!   regroup it is frozen for is run as a session of phases, a migration
//!   or a checkpoint its schedule fires is asked for.
//!
//! Before it is registered every method answers as if nothing were going
//! on.
use crate::core::handles::CommRef;
use crate::sys::*;
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// What the lower layers ask of the higher ones.
pub trait Upcalls: Sync {
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
    /// Runs the regroup this process is frozen for, with every other
    /// process (`ops::session::run`).
    fn regroup_now(&self);
    /// A signal came: takes the requests `ferry migrate` left in the job
    /// directory; how many (`migration::take_external_requests`).
    fn external_requests(&self) -> usize;
    /// What was asked for cannot run (no state window): the requests
    /// queued are refused (`migration::refuse_queued`).
    fn refuse_queued(&self);
    /// This rank's schedule asks for its move (a `FERRY_MIGRATE` SPEC),
    /// to `host` if given (`migration::request`).
    fn migrate_asked(&self, rank: c_int, host: Option<String>);
    /// The checkpoint's call count is reached (`checkpoint::fire`).
    fn checkpoint_due(&self, calls: u64);
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

/// The higher layers, once registered.
static UPCALLS: std::sync::OnceLock<&'static dyn Upcalls> = std::sync::OnceLock::new();

/// Drained messages wait to be served (set by the drain).
static DRAINED: AtomicBool = AtomicBool::new(false);

/// At load: what the lower layers call up into.
pub fn register(p: &'static dyn Upcalls) {
    let _ = UPCALLS.set(p);
}

/// What the lower layers call up into (an inert one before [`register`]).
/// Out of line: every caller is on a rare branch, which should stay small
/// where it sits on the per-call path.
#[inline(never)]
pub fn upcalls() -> &'static dyn Upcalls {
    UPCALLS.get().copied().unwrap_or(&Inert)
}

/// Whether drained messages wait to be served: the per-call path's flag
/// in front of [`Upcalls::drained_recv`] and the probes.
#[inline(always)]
pub fn drained_waiting() -> bool {
    DRAINED.load(Ordering::Relaxed)
}

/// The drain says whether messages wait.
pub fn set_drained_waiting(yes: bool) {
    DRAINED.store(yes, Ordering::Relaxed);
}

/// Before registration: nothing is going on.
struct Inert;

impl Upcalls for Inert {
    fn at_collective(&self, _: usize, _: u64) -> bool {
        false
    }
    fn scheduled(&self, _: u64) {}
    fn woken(&self, _: bool) -> bool {
        false
    }
    fn nudge(&self, _: i32, _: Instant) {}
    fn regroup_now(&self) {}
    fn external_requests(&self) -> usize {
        0
    }
    fn refuse_queued(&self) {}
    fn migrate_asked(&self, _: c_int, _: Option<String>) {}
    fn checkpoint_due(&self, _: u64) {}
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
