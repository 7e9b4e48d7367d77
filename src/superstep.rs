//! Supersteps: the collective sequence number of each communicator (the
//! patent's superstep, kept per communicator so that sub-communicator
//! collectives are covered), published in the state window.
//!
//! Entering a collective is "store the new superstep, fence, load the
//! command flag". The initiator of a synchronization does the mirror image
//! (set the flag, fence, read the supersteps), so that at least one side
//! sees the other: either the initiator reads a superstep that already
//! counts this collective, and makes it part of the target, or this process
//! sees the command before it enters, and stops to take part in the
//! synchronization. That closes the race of DESIGN.md 2.5 without turning
//! blocking collectives into nonblocking ones.
use crate::handles::CommRef;
use crate::state::state;
use std::sync::atomic::Ordering;

/// What `leave_collective` needs from `enter_collective`.
#[derive(Clone, Copy)]
pub struct Ticket(CommRef);

#[inline(always)]
pub fn enter_collective(comm: CommRef) -> Ticket {
    if let Some(i) = comm.index() {
        let s = state();
        let steps = &s.supersteps[i];
        s.entering_comm.store(i as u32 + 1, Ordering::Relaxed);
        // The publishing store is a sequentially consistent exchange: one
        // locked instruction on x86-64, the store and the full fence at
        // once (cheaper than a store followed by `mfence`).
        steps.swap(steps.load(Ordering::Relaxed) + 1, Ordering::SeqCst);
        if s.command.load(Ordering::SeqCst) != 0 {
            crate::control::command_at_collective(comm);
        }
    }
    Ticket(comm)
}

#[inline(always)]
pub fn leave_collective(t: Ticket) {
    if t.0.index().is_some() {
        state().entering_comm.store(0, Ordering::Relaxed);
    }
}
