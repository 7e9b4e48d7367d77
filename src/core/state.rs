//! The process's protocol state: what the patent keeps in each process's
//! one-sided window (Figs. 6–9) so that the initiator of a synchronization
//! can read it with lock/get and set flags with put.
//!
//! One `ProcState` per process. Until `MPI_Init` it is a static; there it
//! moves into memory MPI allocates for the window (`MPI_Win_allocate`, so
//! that processes on one node reach each other's state through shared
//! memory, without waiting for the target to make progress), and back to
//! the static at `MPI_Finalize`. The hot path
//! touches it with plain loads and stores (relaxed atomics: the unified
//! memory model lets remote puts land in the same memory); the only fence is
//! the one that closes the collective race (see `superstep`).
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};

/// Most communicators whose superstep a process publishes. MPICH allows
/// about 2048 live communicators; slots are reused after `MPI_Comm_free`.
pub const MAX_COMMS: usize = 16384;
/// The largest world whose group collectives are synchronized (a bit per
/// world rank in the window; a larger job's `MPI_Comm_create_group` is
/// not covered, which the library says when it meets one).
pub const MAX_GROUP_RANKS: usize = 65_536;
/// Words of the bitmap of a group collective's members.
pub const GROUP_WORDS: usize = MAX_GROUP_RANKS / 64;

/// What a process is blocked in, for the point-to-point synchronization.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blocked {
    Nothing = 0,
    Recv = 1,
    Probe = 2,
    Wait = 3,
    SendRecv = 4,
    Send = 5,
}

/// Where a process is, as far as the synchronization is concerned
/// (published in `status`; read by the initiator).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Running the program (or inside a call that will return by itself).
    Running = 0,
    /// Stopped at the entry of a collective beyond its target (`stop_slot`).
    Stopped = 1,
    /// Waiting in a wakeable blocking call (`blocked_*` say which).
    Blocked = 2,
    /// Inside `MPI_Finalize`, waiting for the others: no more collectives.
    Finalizing = 3,
    /// Taking part in the drain and rebuild.
    Frozen = 4,
}

impl Status {
    pub fn from_u32(v: u32) -> Status {
        match v {
            1 => Status::Stopped,
            2 => Status::Blocked,
            3 => Status::Finalizing,
            4 => Status::Frozen,
            _ => Status::Running,
        }
    }
}

/// The window-resident state. `repr(C)` so a remote reader knows the layout;
/// everything before `gids` is the header the initiator reads first.
#[repr(C)]
pub struct ProcState {
    /// MIG_CMD: the epoch of the synchronization in progress (0 = none).
    /// Put by the initiator together with `command_leader` and `next_event`.
    pub command: AtomicU64,
    /// World rank of the process leading that synchronization.
    pub command_leader: AtomicU64,
    /// The call count at which `after_tick` has work to do. The initiator
    /// puts 0 here with the command, so the very next call notices it at
    /// the cost of the comparison every call makes anyway.
    pub next_event: AtomicU64,
    /// MPI calls made by the program (the `after=K` of a SPEC counts these).
    pub calls: AtomicU64,
    /// On world rank 0 only: world rank + 1 of the process that holds the
    /// right to lead a synchronization (0 = free). Taken with a remote
    /// compare-and-swap, so that concurrent requests are queued, not lost.
    pub leader: AtomicU64,
    /// Synchronizations this process went through.
    pub regroups: AtomicU64,
    /// [`Status`].
    pub status: AtomicU32,
    /// With `Status::Stopped`: the communicator slot of the collective.
    pub stop_slot: AtomicU32,
    /// The blocked operation: kind, communicator slot, peer, tag, and the
    /// peer as a world rank (-1: any or several).
    pub blocked_kind: AtomicU32,
    pub blocked_comm: AtomicU32,
    pub blocked_peer: AtomicI32,
    pub blocked_tag: AtomicI32,
    pub blocked_world: AtomicI32,
    /// The communicator slot of the collective being entered (+1; 0 = none).
    pub entering_comm: AtomicU32,
    /// One past the highest communicator slot ever used.
    pub used_slots: AtomicU32,
    /// The slot (+1; 0 = none) of the group collective
    /// (`MPI_Comm_create_group`) this process is in, whose members are in
    /// `group_members`. Written before the collective's superstep, so
    /// that a reader who sees the superstep sees the members.
    pub group_slot: AtomicU32,
    /// Global id of the communicator in each slot (0 = not synchronized).
    pub gids: [AtomicU64; MAX_COMMS],
    /// Collective sequence number per communicator slot.
    pub supersteps: [AtomicU64; MAX_COMMS],
    /// The members of the group collective of `group_slot`, as a bit per
    /// world rank (`MAX_GROUP_RANKS` at most).
    pub group_members: [AtomicU64; GROUP_WORDS],
    /// On world rank 0 only: how many ranks reached `MPI_Finalize` (each
    /// adds one, once, whichever process holds the rank then).
    pub arrived: AtomicU64,
}

/// Bytes of the header (everything before `gids`).
pub const HEADER_BYTES: usize = std::mem::offset_of!(ProcState, gids);

pub struct StateCell(UnsafeCell<ProcState>);
// SAFETY: every field is an atomic; the cell only exists so that MPI can be
// handed a `*mut` to the memory for `MPI_Win_create`.
unsafe impl Sync for StateCell {}

#[allow(clippy::declare_interior_mutable_const)]
const ZERO64: AtomicU64 = AtomicU64::new(0);

pub static STATE: StateCell = StateCell(UnsafeCell::new(ProcState {
    command: AtomicU64::new(0),
    command_leader: AtomicU64::new(0),
    next_event: AtomicU64::new(u64::MAX),
    calls: AtomicU64::new(0),
    leader: AtomicU64::new(0),
    regroups: AtomicU64::new(0),
    status: AtomicU32::new(0),
    stop_slot: AtomicU32::new(0),
    blocked_kind: AtomicU32::new(0),
    blocked_comm: AtomicU32::new(0),
    blocked_peer: AtomicI32::new(0),
    blocked_tag: AtomicI32::new(0),
    blocked_world: AtomicI32::new(-1),
    entering_comm: AtomicU32::new(0),
    used_slots: AtomicU32::new(0),
    group_slot: AtomicU32::new(0),
    gids: [ZERO64; MAX_COMMS],
    supersteps: [ZERO64; MAX_COMMS],
    group_members: [ZERO64; GROUP_WORDS],
    arrived: AtomicU64::new(0),
}));

/// Where the state is: the static, or the window's memory.
static STATE_AT: std::sync::atomic::AtomicPtr<ProcState> =
    std::sync::atomic::AtomicPtr::new(STATE.0.get());

/// The process's state.
#[inline(always)]
pub fn state() -> &'static ProcState {
    // SAFETY: STATE_AT points at the static or at window memory that lives
    // until `move_home` (called before the window is freed); all fields are
    // atomics, so shared references are sound even while MPI writes into
    // the memory on behalf of a remote put.
    unsafe { &*STATE_AT.load(Ordering::Relaxed) }
}

/// Bytes of the state (the window's size).
pub const STATE_BYTES: usize = std::mem::size_of::<ProcState>();

/// Moves the state into `base` (window memory of `STATE_BYTES` bytes,
/// suitably aligned), copying what it holds.
///
/// # Safety
/// `base` must be valid for `STATE_BYTES` bytes, aligned for `ProcState`,
/// and outlive every use until [`move_home`]; no other thread may use the
/// state meanwhile.
pub unsafe fn move_to(base: *mut u8) {
    let from = STATE_AT.load(Ordering::SeqCst) as *const u8;
    // SAFETY: contract of the function; the regions are distinct.
    unsafe { std::ptr::copy_nonoverlapping(from, base, STATE_BYTES) };
    STATE_AT.store(base as *mut ProcState, Ordering::SeqCst);
}

/// Moves the state back into the static (before its window is freed).
pub fn move_home() {
    let home = STATE.0.get();
    let at = STATE_AT.load(Ordering::SeqCst);
    if at != home {
        // SAFETY: `at` is the live window memory, `home` the static.
        unsafe { std::ptr::copy_nonoverlapping(at as *const u8, home as *mut u8, STATE_BYTES) };
        STATE_AT.store(home, Ordering::SeqCst);
    }
}

/// Copies the live state into the static, leaving it where it is (the
/// static is the process image's copy: window memory belongs to MPI and is
/// not carried).
pub fn copy_home() {
    let home = STATE.0.get();
    let at = STATE_AT.load(Ordering::SeqCst);
    if at != home {
        // SAFETY: `at` is the live window memory, `home` the static.
        unsafe { std::ptr::copy_nonoverlapping(at as *const u8, home as *mut u8, STATE_BYTES) };
    }
}

/// Where the state is now (the window memory of this process's MPI, or
/// the static), as an address.
pub fn location() -> usize {
    STATE_AT.load(Ordering::SeqCst) as usize
}

/// After a restore: the state carried in the static moves into the new
/// process's window memory at `at` (0: it stays in the static).
///
/// # Safety
/// `at` must be this process's live state window memory (or 0).
pub unsafe fn adopt(at: usize) {
    let home = STATE.0.get();
    STATE_AT.store(home, Ordering::SeqCst);
    if at != 0 && at != home as usize {
        // SAFETY: contract of the function.
        unsafe { move_to(at as *mut u8) };
    }
}

/// Byte offsets of the fields a remote process reads or writes.
pub mod offsets {
    use super::ProcState;
    use std::mem::offset_of;
    pub const COMMAND: usize = offset_of!(ProcState, command);
    pub const LEADER: usize = offset_of!(ProcState, leader);
    pub const GIDS: usize = offset_of!(ProcState, gids);
    pub const SUPERSTEPS: usize = offset_of!(ProcState, supersteps);
    pub const GROUP_MEMBERS: usize = offset_of!(ProcState, group_members);
    pub const ARRIVED: usize = offset_of!(ProcState, arrived);
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
    pub fn set_blocked(&self, kind: Blocked, comm: u32, peer: i32, tag: i32, world: i32) {
        self.blocked_comm.store(comm, Ordering::Relaxed);
        self.blocked_peer.store(peer, Ordering::Relaxed);
        self.blocked_tag.store(tag, Ordering::Relaxed);
        self.blocked_world.store(world, Ordering::Relaxed);
        self.blocked_kind.store(kind as u32, Ordering::Release);
        self.status.store(Status::Blocked as u32, Ordering::Release);
    }

    #[inline(always)]
    pub fn clear_blocked(&self) {
        self.blocked_kind
            .store(Blocked::Nothing as u32, Ordering::Relaxed);
        self.status.store(Status::Running as u32, Ordering::Release);
    }

    pub fn set_status(&self, s: Status) {
        self.status.store(s as u32, Ordering::SeqCst);
    }

    /// True when a protocol command is pending.
    #[inline(always)]
    pub fn command_pending(&self) -> bool {
        self.command.load(Ordering::Relaxed) != 0
    }
}

/// The header fields as read from a remote window (plain integers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub command: u64,
    pub calls: u64,
    pub regroups: u64,
    pub status: u32,
    pub stop_slot: u32,
    pub blocked_kind: u32,
    pub blocked_world: i32,
    pub entering_comm: u32,
    pub used_slots: u32,
    pub group_slot: u32,
}

impl Header {
    /// Decodes the header bytes of a window (native byte order: the
    /// processes of one job share the machine architecture).
    pub fn from_bytes(b: &[u8]) -> Header {
        use std::mem::offset_of;
        let u64_at = |o: usize| u64::from_ne_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
        let u32_at = |o: usize| u32::from_ne_bytes(b[o..o + 4].try_into().unwrap_or([0; 4]));
        Header {
            command: u64_at(offset_of!(ProcState, command)),
            calls: u64_at(offset_of!(ProcState, calls)),
            regroups: u64_at(offset_of!(ProcState, regroups)),
            status: u32_at(offset_of!(ProcState, status)),
            stop_slot: u32_at(offset_of!(ProcState, stop_slot)),
            blocked_kind: u32_at(offset_of!(ProcState, blocked_kind)),
            blocked_world: u32_at(offset_of!(ProcState, blocked_world)) as i32,
            entering_comm: u32_at(offset_of!(ProcState, entering_comm)),
            used_slots: u32_at(offset_of!(ProcState, used_slots)),
            group_slot: u32_at(offset_of!(ProcState, group_slot)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_stable() {
        // Remote writers put command, command_leader and next_event in one
        // operation: they must stay adjacent and in this order.
        assert_eq!(std::mem::offset_of!(ProcState, command), 0);
        assert_eq!(std::mem::offset_of!(ProcState, command_leader), 8);
        assert_eq!(std::mem::offset_of!(ProcState, next_event), 16);
        assert_eq!(HEADER_BYTES % 8, 0);
        assert_eq!(offsets::SUPERSTEPS, offsets::GIDS + 8 * MAX_COMMS);
    }

    #[test]
    fn header_decodes_what_the_process_wrote() {
        let s = ProcState {
            command: AtomicU64::new(3),
            command_leader: AtomicU64::new(1),
            next_event: AtomicU64::new(0),
            calls: AtomicU64::new(77),
            leader: AtomicU64::new(0),
            regroups: AtomicU64::new(2),
            status: AtomicU32::new(Status::Stopped as u32),
            stop_slot: AtomicU32::new(5),
            blocked_kind: AtomicU32::new(0),
            blocked_comm: AtomicU32::new(0),
            blocked_peer: AtomicI32::new(0),
            blocked_tag: AtomicI32::new(0),
            blocked_world: AtomicI32::new(-1),
            entering_comm: AtomicU32::new(0),
            used_slots: AtomicU32::new(4),
            group_slot: AtomicU32::new(6),
            gids: [ZERO64; MAX_COMMS],
            supersteps: [ZERO64; MAX_COMMS],
            group_members: [ZERO64; GROUP_WORDS],
            arrived: AtomicU64::new(0),
        };
        // SAFETY: reading the header bytes of a live, initialized struct.
        let bytes = unsafe {
            std::slice::from_raw_parts(&s as *const ProcState as *const u8, HEADER_BYTES)
        };
        let h = Header::from_bytes(bytes);
        assert_eq!(h.command, 3);
        assert_eq!(h.calls, 77);
        assert_eq!(h.regroups, 2);
        assert_eq!(Status::from_u32(h.status), Status::Stopped);
        assert_eq!(h.stop_slot, 5);
        assert_eq!(h.group_slot, 6);
        assert_eq!(h.blocked_world, -1);
        assert_eq!(h.used_slots, 4);
    }

    #[test]
    fn blocked_round_trip() {
        let s = state();
        s.set_blocked(Blocked::Recv, 3, 1, 7, 1);
        assert_eq!(s.blocked_kind.load(Ordering::Relaxed), Blocked::Recv as u32);
        assert_eq!(
            Status::from_u32(s.status.load(Ordering::Relaxed)),
            Status::Blocked
        );
        s.clear_blocked();
        assert_eq!(s.blocked_kind.load(Ordering::Relaxed), 0);
    }
}
