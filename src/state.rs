//! The process's protocol state: what the patent keeps in each process's
//! one-sided window (Figs. 6–9) so that the initiator of a migration can read
//! it with lock/get and set flags with put.
//!
//! One `ProcState` per process, at a fixed address, exposed through
//! `MPI_Win_create` on the control communicator at `MPI_Init`. The hot path
//! touches it with plain loads and stores (relaxed atomics: the unified
//! memory model lets remote puts land in the same memory); the only fence is
//! the one that closes the collective race (see `superstep`).
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};

/// Most communicators whose superstep a process publishes. MPICH allows
/// about 2048 live communicators; slots are reused after `MPI_Comm_free`.
pub const MAX_COMMS: usize = 16384;

/// What a process is blocked in, for the point-to-point synchronization.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blocked {
    Nothing = 0,
    Recv = 1,
    Probe = 2,
    Wait = 3,
    SendRecv = 4,
}

/// The window-resident state. `repr(C)` so a remote reader knows the layout.
#[repr(C)]
pub struct ProcState {
    /// MIG_CMD: nonzero when a protocol command is pending for this process.
    pub command: AtomicU64,
    /// MIG_WAKE: nonzero asks a blocked operation to return to the library.
    pub wake: AtomicU64,
    /// MPI calls made by the program (the `after=K` of a SPEC counts these).
    pub calls: AtomicU64,
    /// The blocked operation: kind, communicator slot, peer, tag.
    pub blocked_kind: AtomicU32,
    pub blocked_comm: AtomicU32,
    pub blocked_peer: AtomicI32,
    pub blocked_tag: AtomicI32,
    /// The communicator slot of the collective being entered (+1; 0 = none).
    pub entering_comm: AtomicU32,
    pub _pad: AtomicU32,
    /// Collective sequence number per communicator slot.
    pub supersteps: [AtomicU64; MAX_COMMS],
}

pub struct StateCell(UnsafeCell<ProcState>);
// SAFETY: every field is an atomic; the cell only exists so that MPI can be
// handed a `*mut` to the memory for `MPI_Win_create`.
unsafe impl Sync for StateCell {}

#[allow(clippy::declare_interior_mutable_const)]
const ZERO64: AtomicU64 = AtomicU64::new(0);

pub static STATE: StateCell = StateCell(UnsafeCell::new(ProcState {
    command: AtomicU64::new(0),
    wake: AtomicU64::new(0),
    calls: AtomicU64::new(0),
    blocked_kind: AtomicU32::new(0),
    blocked_comm: AtomicU32::new(0),
    blocked_peer: AtomicI32::new(0),
    blocked_tag: AtomicI32::new(0),
    entering_comm: AtomicU32::new(0),
    _pad: AtomicU32::new(0),
    supersteps: [ZERO64; MAX_COMMS],
}));

/// The process's state.
#[inline(always)]
pub fn state() -> &'static ProcState {
    // SAFETY: all fields are atomics, so shared references are sound even
    // while MPI writes into the memory on behalf of a remote put.
    unsafe { &*STATE.0.get() }
}

/// Address and size of the state for `MPI_Win_create`.
pub fn window_memory() -> (*mut u8, usize) {
    (STATE.0.get() as *mut u8, std::mem::size_of::<ProcState>())
}

impl ProcState {
    /// Counts one MPI call of the program; returns the new count.
    #[inline(always)]
    pub fn tick(&self) -> u64 {
        let n = self.calls.load(Ordering::Relaxed) + 1;
        self.calls.store(n, Ordering::Relaxed);
        n
    }

    #[inline(always)]
    pub fn set_blocked(&self, kind: Blocked, comm: u32, peer: i32, tag: i32) {
        self.blocked_comm.store(comm, Ordering::Relaxed);
        self.blocked_peer.store(peer, Ordering::Relaxed);
        self.blocked_tag.store(tag, Ordering::Relaxed);
        self.blocked_kind.store(kind as u32, Ordering::Release);
    }

    #[inline(always)]
    pub fn clear_blocked(&self) {
        self.blocked_kind
            .store(Blocked::Nothing as u32, Ordering::Relaxed);
    }

    /// True when the protocol asks this process to leave a blocking call.
    #[inline(always)]
    pub fn wake_requested(&self) -> bool {
        self.wake.load(Ordering::Relaxed) != 0
    }

    /// True when a protocol command is pending.
    #[inline(always)]
    pub fn command_pending(&self) -> bool {
        self.command.load(Ordering::Relaxed) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_stable() {
        // Remote readers index into the window by these offsets.
        assert_eq!(std::mem::offset_of!(ProcState, command), 0);
        assert_eq!(std::mem::offset_of!(ProcState, wake), 8);
        assert_eq!(std::mem::offset_of!(ProcState, supersteps), 48);
    }

    #[test]
    fn blocked_round_trip() {
        let s = state();
        s.set_blocked(Blocked::Recv, 3, 1, 7);
        assert_eq!(s.blocked_kind.load(Ordering::Relaxed), Blocked::Recv as u32);
        assert_eq!(s.blocked_peer.load(Ordering::Relaxed), 1);
        s.clear_blocked();
        assert_eq!(s.blocked_kind.load(Ordering::Relaxed), 0);
    }
}
