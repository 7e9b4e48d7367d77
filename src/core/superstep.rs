//! Supersteps: the collective sequence number of each communicator (the
//! patent's superstep, kept per communicator so that sub-communicator
//! collectives are covered), published in the state window, and the
//! collective synchronization's hook at every collective entry.
//!
//! Entering a collective is "store the new superstep, fence, load the
//! command flag". The initiator of a synchronization does the mirror image
//! (set the flag, fence, read the supersteps), so that at least one side
//! sees the other: either the initiator reads a superstep that already
//! counts this collective, and makes it part of the target, or this process
//! sees the command before it enters, and lets the synchronization decide
//! whether it may (`regroup::at_collective`, through [`crate::core::upcalls`]). That closes the race
//! of docs/protocol.md (section 5) without turning blocking collectives into nonblocking
//! ones: the common path is one locked exchange and one load.
use crate::core::handles::CommRef;
use crate::core::state::state;
use crate::sys::*;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// The last collective entered (slot, superstep): a communicator made by
/// it takes its global id from its parent's id and this superstep.
static LAST_SLOT: AtomicU32 = AtomicU32::new(0);
static LAST_STEP: AtomicU64 = AtomicU64::new(0);

/// What `leave_collective` and the wrapper need from `enter_collective`.
#[derive(Clone, Copy)]
pub struct Ticket {
    comm: CommRef,
    /// The job was moved to new communicators while this process waited
    /// at the entry: the wrapper must use the new real communicator.
    regrouped: bool,
}

impl Ticket {
    /// The real communicator to call MPI with.
    /// Another communicator of the call (`peer_comm`), translated again
    /// from the program's handle after a regroup.
    #[inline(always)]
    pub fn again(&self, real: MPI_Comm, program: MPI_Comm) -> MPI_Comm {
        if self.regrouped {
            crate::core::handles::comm_real(program)
        } else {
            real
        }
    }

    #[inline(always)]
    pub fn real(&self, real: MPI_Comm) -> MPI_Comm {
        if self.regrouped {
            crate::core::handles::comm_real_of(self.comm)
        } else {
            real
        }
    }
}

#[inline(always)]
pub fn enter_collective(comm: CommRef) -> Ticket {
    let mut t = Ticket {
        comm,
        regrouped: false,
    };
    if let Some(i) = comm.index() {
        let steps = &state().supersteps[i];
        state().entering_comm.store(i as u32 + 1, Ordering::Relaxed);
        let k = steps.load(Ordering::Relaxed) + 1;
        // The publishing store is a sequentially consistent exchange: one
        // locked instruction on x86-64, the store and the full fence at
        // once (cheaper than a store followed by `mfence`).
        steps.swap(k, Ordering::SeqCst);
        LAST_SLOT.store(i as u32, Ordering::Relaxed);
        LAST_STEP.store(k, Ordering::Relaxed);
        if state().command.load(Ordering::SeqCst) != 0 {
            t.regrouped = crate::core::upcalls::upcalls().at_collective(i, k);
        }
    }
    t
}

#[inline(always)]
pub fn leave_collective(t: Ticket) {
    if t.comm.index().is_some() {
        state().entering_comm.store(0, Ordering::Relaxed);
    }
}

/// The slot and superstep of the last collective entered.
pub fn last_collective() -> (usize, u64) {
    (
        LAST_SLOT.load(Ordering::Relaxed) as usize,
        LAST_STEP.load(Ordering::Relaxed),
    )
}

/// Counts one more call of the group collective that goes with the next
/// collective entered, its *companion* (the leaders' pair of an
/// `MPI_Intercomm_create`, `comms::leaders_pair`, whose members are
/// published): stored before that collective's superstep, so that a
/// reader who sees the one sees the other. The synchronization takes it
/// back and gives it again with the superstep when it stops the process
/// in front of the collective (`regroup::at_collective`).
#[inline]
pub fn count_companion(pair: CommRef) {
    if let Some(p) = pair.index() {
        let s = &state().supersteps[p];
        s.store(s.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }
}

/// A communicator constructor that is collective over the new group only
/// (`MPI_Comm_create_group`): its global id is keyed by the parent without
/// a superstep (see `comms::gid_of`).
#[inline]
pub fn note_creation(parent: CommRef) {
    LAST_SLOT.store(parent.0, Ordering::Relaxed);
    LAST_STEP.store(u64::MAX, Ordering::Relaxed);
}
