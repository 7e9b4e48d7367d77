//! Virtual handles. The program never holds a real communicator, group or
//! request: it holds a virtual one that this module maps to the real handle
//! of the moment. That is what lets the library swap the world communicator
//! and rebuild every derived communicator underneath a running program.
//!
//! * `MPI_COMM_WORLD` and `MPI_COMM_SELF`, compiled into the program, map to
//!   slots 0 and 1 of the communicator table.
//! * Other handles are slots of fixed-capacity tables that never move, so a
//!   slot can be referred to by pointer on the hot path. Under MPICH a
//!   virtual handle is an integer with MPICH's "indirect" kind bits and the
//!   slot index; under Open MPI it is the address of the slot itself.
//! * A value that is not one of ours (a bad handle, `MPI_COMM_NULL`) passes
//!   through untouched, so MPI reports the same error it would without us.
//!
//! The tables are per process and, unless the program asked for
//! `MPI_THREAD_MULTIPLE`, touched by one thread at a time (MPI's own rule);
//! with `MPI_THREAD_MULTIPLE`, slot allocation takes a lock.
use crate::sys::constants as k;
use crate::sys::slab::Slab;
use crate::sys::{MPI_Comm, MPI_Group, MPI_Message, MPI_Request};
use std::cell::UnsafeCell;
use std::collections::HashMap;
use std::ffi::c_int;
use std::sync::Mutex;

pub const MAX_COMMS: usize = crate::core::state::MAX_COMMS;
pub const MAX_GROUPS: usize = 1 << 16;
pub const MAX_REQUESTS: usize = 1 << 20;
pub const MAX_DATATYPES: usize = 1 << 16;

/// A derived datatype of the program. Predefined datatypes are not
/// virtual (they are the same in every process).
#[derive(Clone, Copy)]
pub struct DtSlot {
    pub real: crate::sys::MPI_Datatype,
    /// `MPI_Type_commit` was called on it.
    pub committed: bool,
    /// Creation order (a datatype is made after those it is made of).
    pub serial: u64,
    /// The program freed it while a pending request still used it (MPI
    /// keeps such a datatype until the request is done): `real` is then
    /// the library's twin of the same layout, for a rebuild that posts the
    /// request again, and the slot goes once no request names it
    /// ([`crate::core::datatypes::release_held`]).
    pub held: bool,
}

/// A communicator as the library knows it.
pub struct CommSlot {
    /// The real communicator of the moment.
    pub real: MPI_Comm,
    /// Messages sent to / received from each peer (remote peers for an
    /// intercommunicator), counted on the hot path for the drain.
    pub sent: Vec<u64>,
    pub received: Vec<u64>,
    /// How to rebuild it on a new world (`None` for world and self).
    pub recipe: Option<Box<crate::core::recipe::Recipe>>,
    /// Creation order, for rebuilding in the order of creation.
    pub serial: u64,
    /// The program's error handler function attached to it (0 = none of
    /// the program's), called by the trampoline in `special`.
    pub errfn: usize,
    /// Global id, the same in every member (0: not synchronized, e.g.
    /// `MPI_COMM_SELF`). See [`crate::core::comms::gid_of`].
    pub gid: u64,
    /// The real communicators this one was before rebuilds (freed when the
    /// program frees it).
    pub retired: Vec<MPI_Comm>,
    /// What the slot counts the collectives of.
    pub kind: SlotKind,
    /// The program freed it while a request of its own still used it: MPI
    /// frees such a communicator only once its requests are done, and so
    /// does the library, which keeps the slot (drained, rebuilt, its
    /// requests posted again) until no request names it
    /// ([`crate::core::comms::release_held`]).
    pub held: bool,
}

/// What a slot of the communicator table stands for. Only communicators
/// are rebuilt and drained; the other kinds only count collectives, so
/// that the synchronization covers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotKind {
    /// A communicator of the program (or world, or self).
    Communicator,
    /// An RMA window of the program: its collectives (`MPI_Win_fence`,
    /// `MPI_Win_free`) are counted; it outlives a change of communicators.
    Window,
    /// The calls of `MPI_Comm_create_group` by one group on one parent with
    /// one tag: collective over the group only, counted under a global id
    /// of the three (see [`crate::core::comms::group_collective`]).
    GroupCollective,
}

impl CommSlot {
    /// Whether the slot is a communicator (rebuilt at a regroup, drained).
    pub fn is_communicator(&self) -> bool {
        self.kind == SlotKind::Communicator
    }
}

/// The global id of the world.
pub const WORLD_GID: u64 = 1;

/// Mixes numbers into a global id (splitmix64 steps; never 0 or 1).
pub fn mix_gid(parts: &[u64]) -> u64 {
    let mut h: u64 = 0x6665_7272_7967_6964; // "ferrygid"
    for &p in parts {
        h ^= p;
        h = h.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = h;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        h = z ^ (z >> 31);
    }
    if h <= WORLD_GID {
        h + 2
    } else {
        h
    }
}

/// A reference to a communicator slot, valid while the slot is live (slots
/// never move). `CommRef::NONE` stands for a handle that is not ours.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CommRef(pub u32);

impl CommRef {
    pub const NONE: CommRef = CommRef(u32::MAX);
    #[inline(always)]
    pub fn index(self) -> Option<usize> {
        (self.0 != u32::MAX).then_some(self.0 as usize)
    }
}

/// What a request stands for, so that its completion can be accounted.
#[repr(u8)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ReqKind {
    Send,
    Recv,
    PersistentSend,
    PersistentRecv,
    Collective,
    /// The request of `MPI_Comm_idup`: completing it makes the communicator.
    CommIdup,
    Other,
}

#[derive(Clone, Copy)]
pub struct ReqSlot {
    pub real: MPI_Request,
    pub kind: ReqKind,
    pub comm: CommRef,
    pub peer: c_int,
    pub tag: c_int,
    /// For receives and persistent operations: how to post it again on a
    /// rebuilt communicator.
    pub p2p: Option<P2pArgs>,
    /// A persistent request started and not yet completed.
    pub active: bool,
    /// Order of posting (receives are matched in this order; reposting
    /// after a rebuild keeps it).
    pub seq: u64,
    /// A persistent receive served across a rebuild: `real` is a completed
    /// generalized request reporting the message, and this the inactive
    /// persistent request on the new communicator that takes its place
    /// once the program has completed it.
    pub swap_in: MPI_Request,
    /// An active persistent `MPI_ANY_SOURCE` receive started as a
    /// matched-probe request ([`crate::calls::anysource`]): `real` is that
    /// request, `swap_in` the persistent one, inactive, that takes its
    /// place once the program has completed it (unlike a served one, its
    /// message is counted then).
    pub standin: bool,
    /// The program cancelled it (`MPI_Cancel`): it stays where it is and
    /// completes as cancelled.
    pub cancelled: bool,
}

static REQUEST_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn next_seq() -> u64 {
    let n = REQUEST_SEQ.load(std::sync::atomic::Ordering::Relaxed) + 1;
    REQUEST_SEQ.store(n, std::sync::atomic::Ordering::Relaxed);
    n
}

/// The point-to-point call that made a request, by name.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum P2pOp {
    Irecv,
    Irecv_c,
    Recv_init,
    Recv_init_c,
    Send_init,
    Send_init_c,
    Bsend_init,
    Bsend_init_c,
    Ssend_init,
    Ssend_init_c,
    Rsend_init,
    Rsend_init_c,
}

/// What it takes to post a point-to-point request again.
#[derive(Clone, Copy, Debug)]
pub struct P2pArgs {
    pub op: P2pOp,
    pub buf: *mut std::ffi::c_void,
    pub count: i64,
    /// The program's (virtual) handle: translated when the request is
    /// posted again.
    pub datatype: crate::sys::MPI_Datatype,
}

pub struct Tables {
    pub comms: Slab<CommSlot>,
    pub groups: Slab<MPI_Group>,
    pub datatypes: Slab<DtSlot>,
    pub requests: Slab<ReqSlot>,
    /// Matched messages (from `MPI_Mprobe`/`MPI_Improbe`) to their channel.
    pub messages: HashMap<usize, (CommRef, c_int)>,
    pub next_serial: u64,
    /// Communicators made per creation key (see [`gid_of`]).
    pub created: HashMap<u64, u64>,
    /// The program's RMA windows, to their slot.
    pub windows: HashMap<usize, usize>,
    /// The slots of group collectives, by global id.
    pub group_collectives: HashMap<u64, usize>,
}

struct TablesCell(UnsafeCell<Option<Tables>>);
// SAFETY: MPI's threading rules: calls are serialized by the program below
// MPI_THREAD_MULTIPLE; with MULTIPLE, `lock()` serializes table changes.
unsafe impl Sync for TablesCell {}
static TABLES: TablesCell = TablesCell(UnsafeCell::new(None));
static MULTI_LOCK: Mutex<()> = Mutex::new(());

/// Runs `f` with the tables: the only way to them, and scoped, so that no
/// reference to them outlives `f` (nor is kept across a call into MPI made
/// outside it, which may call back into the program and the library). A
/// debug build checks that `f` does not reach the tables again (a nested
/// call would hold two mutable references at once). Created at the first
/// use (in `MPI_Init`, by [`init`]); before that, wrappers see no virtual
/// handles and pass everything through.
#[inline(always)]
pub fn with_tables<R>(f: impl FnOnce(&mut Tables) -> R) -> R {
    let _scope = reentry::Scope::enter();
    // SAFETY: see `TablesCell`: the reference lives for the call of `f`
    // only, and the scope above rules out a second one on this thread.
    f(unsafe { tables_mut() })
}

/// The tables, made at the first use.
///
/// # Safety
/// The caller holds no other reference to them (see [`with_tables`]).
#[inline(always)]
unsafe fn tables_mut() -> &'static mut Tables {
    // SAFETY: see `TablesCell` and the contract of the function.
    unsafe {
        match &mut *TABLES.0.get() {
            Some(t) => t,
            None => init_tables(),
        }
    }
}

/// The check of [`with_tables`] for nested uses, in debug builds (nothing
/// in release builds: the per-call path is what the program pays).
mod reentry {
    #[cfg(debug_assertions)]
    std::thread_local! {
        static INSIDE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    /// A use of the tables on this thread, until dropped.
    pub struct Scope(());

    impl Scope {
        #[inline(always)]
        pub fn enter() -> Scope {
            #[cfg(debug_assertions)]
            INSIDE.with(|i| {
                assert!(
                    !i.get(),
                    "the handle tables were reached from inside `with_tables`"
                );
                i.set(true);
            });
            Scope(())
        }
    }

    impl Drop for Scope {
        #[inline(always)]
        fn drop(&mut self) {
            #[cfg(debug_assertions)]
            INSIDE.with(|i| i.set(false));
        }
    }
}

#[cold]
unsafe fn init_tables() -> &'static mut Tables {
    let t = Tables {
        comms: Slab::new(MAX_COMMS),
        groups: Slab::new(MAX_GROUPS),
        datatypes: Slab::new(MAX_DATATYPES),
        requests: Slab::new(MAX_REQUESTS),
        messages: HashMap::new(),
        next_serial: 2,
        created: HashMap::new(),
        windows: HashMap::new(),
        group_collectives: HashMap::new(),
    };
    // SAFETY: see `TablesCell`: the first use, on the thread that calls
    // MPI, before anything can hold a reference to the tables.
    unsafe {
        *TABLES.0.get() = Some(t);
        (*TABLES.0.get()).as_mut().unwrap()
    }
}

/// Serializes table changes when the program runs MPI_THREAD_MULTIPLE.
pub fn lock() -> Option<std::sync::MutexGuard<'static, ()>> {
    if crate::sys::life::thread_multiple() {
        Some(MULTI_LOCK.lock().unwrap_or_else(|e| e.into_inner()))
    } else {
        None
    }
}

/// Sets up world (slot 0) and self (slot 1).
pub fn init(world_real: MPI_Comm, world_size: usize) {
    let (w, s) = with_tables(|t| (init_world(t, world_real, world_size), init_self(t)));
    assert_eq!((w, s), (0, 1), "world and self must be the first slots");
    publish_gid(0, WORLD_GID);
    publish_gid(1, 0);
}

fn init_world(t: &mut Tables, world_real: MPI_Comm, world_size: usize) -> usize {
    t.comms.insert(CommSlot {
        real: world_real,
        sent: vec![0; world_size],
        received: vec![0; world_size],
        recipe: None,
        serial: 0,
        errfn: 0,
        gid: WORLD_GID,
        retired: Vec::new(),
        kind: SlotKind::Communicator,
        held: false,
    })
}

fn init_self(t: &mut Tables) -> usize {
    t.comms.insert(CommSlot {
        real: k::MPI_COMM_SELF(),
        sent: vec![0; 1],
        received: vec![0; 1],
        recipe: None,
        serial: 1,
        errfn: 0,
        gid: 0,
        retired: Vec::new(),
        kind: SlotKind::Communicator,
        held: false,
    })
}

// ---------------------------------------------------------------------------
// Encoding of virtual handles.

#[cfg(ferry_mpi = "mpich")]
mod codec {
    //! MPICH handles are `int`s: bits 30–31 the kind (0 invalid, 1 builtin,
    //! 2 direct, 3 indirect), bits 26–29 the object type, the rest an
    //! index. MPICH never makes a handle of kind 0 except the null handles
    //! (index 0), so ours are kind 0, the family's object type, and the slot
    //! index + 1: they cannot equal a real handle, which the program also
    //! sees (in error handler and attribute callbacks, from MPIX_ calls).
    pub const COMM: u32 = 0x0400_0000;
    pub const GROUP: u32 = 0x0800_0000;
    pub const DATATYPE: u32 = 0x0C00_0000;
    pub const REQUEST: u32 = 0x2C00_0000;
    const MASK: u32 = 0xFC00_0000;

    // (each handle kind is its own type wrapping the `int`: read and made
    // through its bits)
    #[inline(always)]
    pub fn encode<H: Copy>(tag: u32, index: usize) -> H {
        crate::sys::bits::handle_from_bits((tag | (index as u32 + 1)) as u64)
    }
    #[inline(always)]
    pub fn decode<H: Copy>(tag: u32, h: H, cap: usize) -> Option<usize> {
        let h = crate::sys::bits::handle_bits(h) as u32;
        let i = (h & !MASK) as usize;
        (h & MASK == tag && i != 0 && i <= cap).then(|| i - 1)
    }
}

#[cfg(ferry_mpi = "openmpi")]
mod codec {
    //! Open MPI handles are pointers. Ours are addresses inside a reserved,
    //! inaccessible region of the address space, one region per family, so
    //! they can never equal a real object's address.
    use std::sync::OnceLock;
    pub const COMM: u32 = 0;
    pub const GROUP: u32 = 1;
    pub const REQUEST: u32 = 2;
    pub const MESSAGE: u32 = 3;
    pub const DATATYPE: u32 = 4;
    // (the sixth: reduction operations, see `crate::core::ops`)
    const SPANS: usize = 6;
    const SPAN: usize = 1 << 24;
    const _: () = assert!(SPANS * SPAN == crate::mem::layout::HANDLE_LEN);
    static BASE: OnceLock<usize> = OnceLock::new();

    fn base() -> usize {
        *BASE.get_or_init(|| {
            // At a fixed address (the same in every process of the job, so
            // that the handles a process image holds mean the same after a
            // restart), else wherever the kernel puts it.
            let fixed = crate::mem::layout::HANDLE_BASE;
            if crate::mem::layout::map_fixed(fixed, SPANS * SPAN, libc::PROT_NONE).is_ok() {
                return fixed;
            }
            // SAFETY: a fresh anonymous PROT_NONE reservation: nothing lives
            // there and nothing can be read or written through it.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    SPANS * SPAN,
                    libc::PROT_NONE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            assert!(
                p != libc::MAP_FAILED,
                "cannot reserve the virtual handle region"
            );
            p as usize
        })
    }

    #[inline(always)]
    pub fn encode<T>(tag: u32, index: usize) -> *mut T {
        (base() + tag as usize * SPAN + index) as *mut T
    }
    #[inline(always)]
    pub fn decode<T>(tag: u32, h: *mut T, cap: usize) -> Option<usize> {
        let lo = base() + tag as usize * SPAN;
        let a = h as usize;
        (a >= lo && a < lo + cap.min(SPAN)).then(|| a - lo)
    }
}

// ---------------------------------------------------------------------------
// Slot indices of virtual handles, for their Fortran integers (see
// the Fortran integers of layer `entry`): a virtual handle's Fortran integer names its slot,
// so it stays the same when the real handle underneath is made anew.

/// The slot of a virtual communicator other than world and self.
#[inline(always)]
pub fn comm_index(v: MPI_Comm) -> Option<usize> {
    codec::decode(codec::COMM, v, MAX_COMMS)
}

/// The slot of a virtual group.
#[inline(always)]
pub fn group_index(v: MPI_Group) -> Option<usize> {
    codec::decode(codec::GROUP, v, MAX_GROUPS)
}

/// The program's handle of a group slot.
#[inline(always)]
pub fn group_virtual(i: usize) -> MPI_Group {
    codec::encode(codec::GROUP, i)
}

/// The slot of a virtual (derived) datatype.
#[inline(always)]
pub fn datatype_index(v: crate::sys::MPI_Datatype) -> Option<usize> {
    codec::decode(codec::DATATYPE, v, MAX_DATATYPES)
}

/// The program's handle of a datatype slot.
#[inline(always)]
pub fn datatype_virtual(i: usize) -> crate::sys::MPI_Datatype {
    codec::encode(codec::DATATYPE, i)
}

// ---------------------------------------------------------------------------
// Communicators.

/// Translates a program's communicator: the real handle and our slot.
#[inline(always)]
pub fn comm_in(v: MPI_Comm) -> (MPI_Comm, CommRef) {
    let i = if v == k::MPI_COMM_WORLD() {
        0
    } else if v == k::MPI_COMM_SELF() {
        1
    } else {
        match codec::decode(codec::COMM, v, MAX_COMMS) {
            Some(i) => i,
            None => return (v, CommRef::NONE),
        }
    };
    with_tables(|t| match t.comms.get(i) {
        Some(s) => (s.real, CommRef(i as u32)),
        None => (v, CommRef::NONE),
    })
}

#[inline(always)]
pub fn comm_real(v: MPI_Comm) -> MPI_Comm {
    comm_in(v).0
}

/// The real world communicator of the moment.
#[inline]
pub fn world_real() -> MPI_Comm {
    comm_real(k::MPI_COMM_WORLD())
}

#[inline(always)]
pub fn comm_null() -> MPI_Comm {
    k::MPI_COMM_NULL()
}

/// The program's handle for a slot.
pub fn comm_virtual(i: usize) -> MPI_Comm {
    match i {
        0 => k::MPI_COMM_WORLD(),
        1 => k::MPI_COMM_SELF(),
        _ => codec::encode(codec::COMM, i),
    }
}

/// Publishes a slot's global id in the state window.
pub fn publish_gid(i: usize, gid: u64) {
    use std::sync::atomic::Ordering;
    let s = crate::core::state::state();
    s.gids[i].store(gid, Ordering::Relaxed);
    s.used_slots.fetch_max(i as u32 + 1, Ordering::Relaxed);
}

/// `MPI_WIN_NULL`.
pub fn win_null() -> crate::sys::MPI_Win {
    k::MPI_WIN_NULL()
}

/// The key of a window in the table of windows.
pub fn win_key(w: crate::sys::MPI_Win) -> usize {
    crate::sys::bits::handle_bits(w) as usize
}

/// The slot of a window (`CommRef::NONE` if unknown).
#[inline]
pub fn win_slot(win: crate::sys::MPI_Win) -> CommRef {
    with_tables(|t| {
        t.windows
            .get(&win_key(win))
            .map(|&i| CommRef(i as u32))
            .unwrap_or(CommRef::NONE)
    })
}

/// After `MPI_Win_free` succeeded.
pub fn win_released(slot: CommRef) {
    if let Some(i) = slot.index() {
        let _g = lock();
        with_tables(|t| {
            t.windows.retain(|_, v| *v != i);
            t.comms.remove(i);
        });
        publish_gid(i, 0);
    }
}

/// The real communicator of a slot at this moment.
pub fn comm_real_of(c: CommRef) -> MPI_Comm {
    with_tables(|t| {
        c.index()
            .and_then(|i| t.comms.get(i))
            .map(|s| s.real)
            .unwrap_or(k::MPI_COMM_NULL())
    })
}

/// After `MPI_Comm_free`/`MPI_Comm_disconnect` succeeded: forget the slot
/// and hand the program the null handle MPI returned.
pub fn comm_released(v: MPI_Comm, real_after: MPI_Comm) -> MPI_Comm {
    if let Some(i) = codec::decode(codec::COMM, v, MAX_COMMS) {
        let slot = {
            let _g = lock();
            let s = with_tables(|t| t.comms.remove(i));
            publish_gid(i, 0);
            s
        };
        // What it was before rebuilds goes with it (outside the lock: the
        // program's delete functions may run).
        for mut old in slot.map(|s| s.retired).unwrap_or_default() {
            // SAFETY: a real communicator of this process that only the
            // library still held.
            unsafe { crate::sys::PMPI_Comm_free(&mut old) };
        }
    }
    real_after
}

/// Frees every real communicator the tables hold, but MPI's own world and
/// self: the ones the program did not free, and what they were before
/// rebuilds. Called right before `MPI_Finalize` by a process whose
/// communicators hold processes of other jobs (after a migration) on
/// Open MPI: its `MPI_Finalize` disconnects each such communicator still
/// alive in an array sized by its own count of them, which the
/// communicators a migration makes do not always match (a heap overflow:
/// `free(): invalid next size`). Freed here, there are none left to count.
pub fn free_all_comms() {
    let mut reals: Vec<MPI_Comm> = Vec::new();
    {
        let _g = lock();
        with_tables(|t| {
            let slots: Vec<usize> = t.comms.iter().map(|(i, _)| i).collect();
            for i in slots {
                let Some(s) = t.comms.get_mut(i) else {
                    continue;
                };
                reals.append(&mut s.retired);
                let real = s.real;
                if s.is_communicator()
                    && real != k::MPI_COMM_NULL()
                    && real != k::MPI_COMM_WORLD()
                    && real != k::MPI_COMM_SELF()
                {
                    reals.push(real);
                    s.real = k::MPI_COMM_NULL();
                }
            }
        });
    }
    let n = reals.len();
    for mut c in reals {
        // SAFETY: real communicators of this process, each freed once; the
        // program is past its last call on them (it is finalizing, or it
        // lives on in another process).
        unsafe { crate::sys::PMPI_Comm_free(&mut c) };
    }
    log::debug!("freed {n} communicators before MPI_Finalize");
}

/// The virtual handle of a real communicator, if the library knows it.
pub fn comm_of_real(real: MPI_Comm) -> Option<MPI_Comm> {
    comm_slot_of_real(real).map(comm_virtual)
}

/// The slot of a real communicator, if the library knows it.
pub fn comm_slot_of_real(real: MPI_Comm) -> Option<usize> {
    with_tables(|t| t.comms.iter().find(|(_, s)| s.real == real).map(|(i, _)| i))
}

// ---------------------------------------------------------------------------
// Groups. A group is a set of processes; its handle is virtual so that the
// group can be re-made when a process is replaced.

#[inline(always)]
pub fn group_null() -> MPI_Group {
    k::MPI_GROUP_NULL()
}

#[inline(always)]
pub fn group_real(v: MPI_Group) -> MPI_Group {
    match codec::decode(codec::GROUP, v, MAX_GROUPS) {
        Some(i) => with_tables(|t| t.groups.get(i).copied().unwrap_or(v)),
        None => v,
    }
}

pub fn group_out(real: MPI_Group) -> MPI_Group {
    if real == k::MPI_GROUP_NULL() || real == k::MPI_GROUP_EMPTY() {
        return real;
    }
    let _g = lock();
    let i = with_tables(|t| t.groups.insert(real));
    codec::encode(codec::GROUP, i)
}

pub fn group_released(v: MPI_Group, real_after: MPI_Group) -> MPI_Group {
    if let Some(i) = codec::decode(codec::GROUP, v, MAX_GROUPS) {
        let _g = lock();
        with_tables(|t| t.groups.remove(i));
    }
    real_after
}

pub fn group_of_real(real: MPI_Group) -> Option<MPI_Group> {
    with_tables(|t| {
        t.groups
            .iter()
            .find(|(_, g)| **g == real)
            .map(|(i, _)| codec::encode(codec::GROUP, i))
    })
}

// ---------------------------------------------------------------------------
// Datatypes: the program's derived datatypes are virtual, so that a process
// image can make them again on another MPI (see `crate::core::objects`).

#[inline(always)]
pub fn datatype_null() -> crate::sys::MPI_Datatype {
    k::MPI_DATATYPE_NULL()
}

/// The real datatype of a handle the program gave (predefined and unknown
/// handles pass through).
#[inline(always)]
pub fn datatype_real(v: crate::sys::MPI_Datatype) -> crate::sys::MPI_Datatype {
    match codec::decode(codec::DATATYPE, v, MAX_DATATYPES) {
        Some(i) => with_tables(|t| t.datatypes.get(i).map(|s| s.real).unwrap_or(v)),
        None => v,
    }
}

/// A datatype MPI returned: predefined ones as they are, derived ones get a
/// virtual handle.
pub fn datatype_out(real: crate::sys::MPI_Datatype) -> crate::sys::MPI_Datatype {
    if real == k::MPI_DATATYPE_NULL()
        || crate::core::objects::predefined(crate::sys::bits::handle_bits(real))
    {
        return real;
    }
    // MPI's own account decides (MPICH's pair types, for one, are
    // predefined handles of the "direct" kind); before MPI_Init (the tool
    // interface) nothing is derived.
    if crate::core::runtime::runtime().is_none() || crate::core::objects::is_named(real) {
        return real;
    }
    let _g = lock();
    let i = with_tables(|t| {
        let serial = t.next_serial;
        t.next_serial += 1;
        t.datatypes.insert(DtSlot {
            real,
            committed: false,
            serial,
            held: false,
        })
    });
    codec::encode(codec::DATATYPE, i)
}

/// After `MPI_Type_free` (the real handle is now null: the slot goes) or
/// `MPI_Type_commit` (the slot is kept, committed).
pub fn datatype_released(
    v: crate::sys::MPI_Datatype,
    real_after: crate::sys::MPI_Datatype,
) -> crate::sys::MPI_Datatype {
    let Some(i) = codec::decode(codec::DATATYPE, v, MAX_DATATYPES) else {
        return real_after;
    };
    let _g = lock();
    with_tables(|t| {
        if real_after == k::MPI_DATATYPE_NULL() {
            t.datatypes.remove(i);
            real_after
        } else {
            if let Some(s) = t.datatypes.get_mut(i) {
                s.real = real_after;
                s.committed = true;
            }
            v
        }
    })
}

/// The virtual handle of a real derived datatype (for callbacks MPI makes
/// with real handles), or the real one.
pub fn datatype_of_real(real: crate::sys::MPI_Datatype) -> crate::sys::MPI_Datatype {
    with_tables(|t| {
        t.datatypes
            .iter()
            .find(|(_, s)| s.real == real)
            .map(|(i, _)| codec::encode(codec::DATATYPE, i))
            .unwrap_or(real)
    })
}

/// An array of datatypes the program gave, translated (`len` entries; an
/// empty vector for a null array).
///
/// # Safety
/// `p` must be null or valid for `len` reads.
pub unsafe fn datatype_array_in(
    p: *const crate::sys::MPI_Datatype,
    len: usize,
    translate: bool,
) -> Vec<crate::sys::MPI_Datatype> {
    if p.is_null() {
        return Vec::new();
    }
    // SAFETY: contract of the function.
    let a = unsafe { std::slice::from_raw_parts(p, len) };
    if translate {
        a.iter().map(|&d| datatype_real(d)).collect()
    } else {
        vec![datatype_null(); len]
    }
}

/// Datatypes MPI wrote into our array, given to the program.
///
/// # Safety
/// `p` must be null or valid for `v.len()` writes.
pub unsafe fn datatype_array_out(p: *mut crate::sys::MPI_Datatype, v: &[crate::sys::MPI_Datatype]) {
    if p.is_null() {
        return;
    }
    for (i, &real) in v.iter().enumerate() {
        // SAFETY: contract of the function.
        unsafe { *p.add(i) = datatype_out(real) };
    }
}

/// The pointer to give MPI for a translated array: ours, or null if the
/// program gave null.
#[inline]
pub fn array_ptr<T>(v: &mut [T], orig: *mut T) -> *mut T {
    if orig.is_null() {
        orig
    } else {
        v.as_mut_ptr()
    }
}

/// How many datatypes an `alltoallw`-like call reads from `sendtypes` and
/// `recvtypes`: the group size (remote group of an intercommunicator), or
/// the neighbourhood's out- and in-degree for the neighbourhood forms.
pub fn alltoallw_lens(comm: MPI_Comm, neighbor: bool) -> (usize, usize) {
    let (mut a, mut b): (c_int, c_int) = (0, 0);
    // SAFETY: queries on the real communicator the program gave.
    unsafe {
        if !neighbor {
            let mut inter: c_int = 0;
            crate::sys::PMPI_Comm_test_inter(comm, &mut inter);
            if inter != 0 {
                crate::sys::PMPI_Comm_remote_size(comm, &mut a);
            } else {
                crate::sys::PMPI_Comm_size(comm, &mut a);
            }
            return (a as usize, a as usize);
        }
        let mut kind: c_int = 0;
        crate::sys::PMPI_Topo_test(comm, &mut kind);
        if kind == k::MPI_DIST_GRAPH() {
            let mut weighted: c_int = 0;
            crate::sys::PMPI_Dist_graph_neighbors_count(comm, &mut b, &mut a, &mut weighted);
        } else if kind == k::MPI_GRAPH() {
            let mut rank: c_int = 0;
            crate::sys::PMPI_Comm_rank(comm, &mut rank);
            crate::sys::PMPI_Graph_neighbors_count(comm, rank, &mut a);
            b = a;
        } else if kind == k::MPI_CART() {
            let mut nd: c_int = 0;
            crate::sys::PMPI_Cartdim_get(comm, &mut nd);
            a = 2 * nd;
            b = a;
        }
    }
    // (send count = out-degree, receive count = in-degree)
    (a as usize, b as usize)
}

// ---------------------------------------------------------------------------
// Reduction operations (their table is `crate::core::ops`'s).

#[inline(always)]
pub fn op_null() -> crate::sys::MPI_Op {
    k::MPI_OP_NULL()
}

// ---------------------------------------------------------------------------
// Requests.

#[inline(always)]
pub fn request_null() -> MPI_Request {
    k::MPI_REQUEST_NULL()
}

/// The slot index of a virtual request.
#[inline(always)]
pub fn request_index(v: MPI_Request) -> Option<usize> {
    codec::decode(codec::REQUEST, v, MAX_REQUESTS)
}

/// Slot index and real handle of a program's request, in one lookup.
#[inline(always)]
pub fn request_lookup(v: MPI_Request) -> (Option<usize>, MPI_Request) {
    match request_index(v) {
        Some(i) => with_tables(|t| match t.requests.get(i) {
            Some(s) => (Some(i), s.real),
            None => (None, v),
        }),
        None => (None, v),
    }
}

#[inline(always)]
pub fn request_real(v: MPI_Request) -> MPI_Request {
    match request_index(v) {
        Some(i) => with_tables(|t| t.requests.get(i).map(|s| s.real).unwrap_or(v)),
        None => v,
    }
}

/// Runs `f` with the slot of request `i`, if it is live.
#[inline(always)]
pub fn with_request<R>(i: usize, f: impl FnOnce(&mut ReqSlot) -> R) -> Option<R> {
    with_tables(|t| t.requests.get_mut(i).map(f))
}

/// A request MPI just made.
#[inline(always)]
pub fn request_out(
    real: MPI_Request,
    kind: ReqKind,
    comm: CommRef,
    peer: c_int,
    tag: c_int,
) -> MPI_Request {
    request_insert(real, kind, comm, peer, tag, None)
}

/// A receive or persistent request MPI just made, with what it takes to
/// post it again.
#[inline(always)]
pub fn request_out_p2p(
    real: MPI_Request,
    kind: ReqKind,
    comm: CommRef,
    peer: c_int,
    tag: c_int,
    args: P2pArgs,
) -> MPI_Request {
    request_insert(real, kind, comm, peer, tag, Some(args))
}

#[inline(always)]
fn request_insert(
    real: MPI_Request,
    kind: ReqKind,
    comm: CommRef,
    peer: c_int,
    tag: c_int,
    p2p: Option<P2pArgs>,
) -> MPI_Request {
    if real == k::MPI_REQUEST_NULL() {
        return real;
    }
    let _g = lock();
    let seq = if p2p.is_some() { next_seq() } else { 0 };
    let i = with_tables(|t| {
        t.requests.insert(ReqSlot {
            real,
            kind,
            comm,
            peer,
            tag,
            p2p,
            active: false,
            seq,
            swap_in: k::MPI_REQUEST_NULL(),
            standin: false,
            cancelled: false,
        })
    });
    codec::encode(codec::REQUEST, i)
}

#[inline(always)]
pub fn request_virtual(i: usize) -> MPI_Request {
    codec::encode(codec::REQUEST, i)
}

/// Forgets a request whose real handle MPI has freed.
#[inline(always)]
pub fn request_release(i: usize) {
    let _g = lock();
    with_tables(|t| t.requests.remove(i));
}

pub fn request_of_real(real: MPI_Request) -> Option<MPI_Request> {
    with_tables(|t| {
        t.requests
            .iter()
            .find(|(_, s)| s.real == real)
            .map(|(i, _)| request_virtual(i))
    })
}

// ---------------------------------------------------------------------------
// Matched messages: `MPI_Message` handles stay real, but the library
// remembers which channel each came from, to count its receipt.

fn message_key(m: MPI_Message) -> usize {
    crate::sys::bits::handle_bits(m) as usize
}

pub fn message_matched(m: MPI_Message, comm: CommRef, source: c_int) {
    if m == k::MPI_MESSAGE_NULL() || m == k::MPI_MESSAGE_NO_PROC() {
        return;
    }
    let _g = lock();
    with_tables(|t| t.messages.insert(message_key(m), (comm, source)));
}

/// The channel of a matched message about to be received.
pub fn message_consumed(m: MPI_Message) -> (CommRef, c_int) {
    let _g = lock();
    with_tables(|t| {
        t.messages
            .remove(&message_key(m))
            .unwrap_or((CommRef::NONE, k::MPI_PROC_NULL()))
    })
}

/// The message handle of the `i`-th drained message handed out by a
/// matched probe (see `drain::mprobe`).
#[cfg(ferry_mpi = "mpich")]
pub fn message_virtual(i: usize) -> MPI_Message {
    // Kind 0 (never a real handle), the request object type, bit 25 set:
    // apart from virtual requests too.
    crate::sys::bits::handle_from_bits((0x2E00_0000u32 | (i as u32 + 1)) as u64)
}

/// The index of a message handle of ours, if it is one.
#[cfg(ferry_mpi = "mpich")]
pub fn message_index(m: MPI_Message) -> Option<usize> {
    let h = crate::sys::bits::handle_bits(m) as u32;
    let i = h & 0x01FF_FFFF;
    (h & 0xFE00_0000 == 0x2E00_0000 && i != 0).then(|| i as usize - 1)
}

#[cfg(ferry_mpi = "openmpi")]
pub fn message_virtual(i: usize) -> MPI_Message {
    codec::encode(codec::MESSAGE, i)
}

#[cfg(ferry_mpi = "openmpi")]
pub fn message_index(m: MPI_Message) -> Option<usize> {
    codec::decode(codec::MESSAGE, m, MAX_REQUESTS)
}

/// A real MPI handle kept in a `static` (Open MPI's handles are pointers,
/// which Rust does not let cross threads by default).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Raw<T>(pub T);
// SAFETY: MPI handles are process-wide names of MPI objects, valid on any
// thread the MPI threading level allows to use them.
unsafe impl<T> Send for Raw<T> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tables_are_reached_in_turn() {
        let a = with_tables(|t| t.next_serial);
        let b = with_tables(|t| t.next_serial);
        assert_eq!(a, b);
    }

    /// A use of the tables from inside another is caught (debug builds:
    /// `cargo test` without `--release`).
    #[cfg(debug_assertions)]
    #[test]
    #[should_panic(expected = "reached from inside")]
    fn a_nested_use_is_caught() {
        with_tables(|_| with_tables(|t| t.next_serial));
    }
}
