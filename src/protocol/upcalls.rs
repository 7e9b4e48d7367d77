//! The protocol's side of `core::upcalls`: what the per-call path may ask
//! of it, on its rare branches, answered by the regroup, the drain and the
//! pending work. Registered at `MPI_Init` (`control::start`).
use crate::core::handles::CommRef;
use crate::core::upcalls::Protocol;
use crate::protocol::{control, drain, pending, regroup};
use crate::sys::*;
use std::ffi::{c_int, c_void};
use std::time::Instant;

/// The protocol the per-call path calls up into.
pub static PROTOCOL: Regroup = Regroup;

/// The regroup protocol of this library.
pub struct Regroup;

impl Protocol for Regroup {
    fn at_collective(&self, slot: usize, k: u64) -> bool {
        regroup::at_collective(slot, k)
    }
    fn scheduled(&self, calls: u64) {
        control::scheduled(calls)
    }
    fn woken(&self, wakeable: bool) -> bool {
        regroup::poll(false) && wakeable && regroup::may_freeze_here()
    }
    fn nudge(&self, world: i32, since: Instant) {
        regroup::nudge(world, since)
    }
    fn regroup_now(&self) {
        regroup::now()
    }
    unsafe fn drained_recv(
        &self,
        comm: CommRef,
        source: c_int,
        tag: c_int,
        buf: *mut c_void,
        count: i64,
        datatype: MPI_Datatype,
        status: *mut MPI_Status,
    ) -> Option<c_int> {
        // SAFETY: contract of the trait's method.
        unsafe { drain::recv(comm, source, tag, buf, count, datatype, status) }
    }
    unsafe fn drained_probe(
        &self,
        comm: CommRef,
        source: c_int,
        tag: c_int,
        flag: *mut c_int,
        status: *mut MPI_Status,
    ) -> Option<c_int> {
        // SAFETY: contract of the trait's method.
        unsafe { drain::probe(comm, source, tag, flag, status) }
    }
    unsafe fn drained_mprobe(
        &self,
        comm: CommRef,
        source: c_int,
        tag: c_int,
        flag: *mut c_int,
        message: *mut MPI_Message,
        status: *mut MPI_Status,
    ) -> Option<c_int> {
        // SAFETY: contract of the trait's method.
        unsafe { drain::mprobe(comm, source, tag, flag, message, status) }
    }
    unsafe fn serve_start(&self, i: usize) -> bool {
        // SAFETY: contract of the trait's method.
        unsafe { pending::serve_start(i) }
    }
    unsafe fn start_standin(&self, i: usize) -> c_int {
        // SAFETY: contract of the trait's method.
        unsafe { pending::start_standin(i) }
    }
}
