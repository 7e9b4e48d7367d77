//! Blocking point-to-point operations, made wakeable.
//!
//! A blocking receive or probe can wait forever for a peer that has stopped
//! for a synchronization, so the library runs it as its nonblocking form
//! plus a test loop that also watches the process's MIG_CMD flag (a plain
//! load of its own window). While it waits, the process publishes what it
//! is blocked in, for the initiator to read; when the synchronization
//! freezes (MIG_WAKE), the wait returns [`Woken`]: the operation is taken
//! back (a receive cancelled) and repeated on the new communicators, drained
//! messages first. Sends that may wait for their receiver (synchronous
//! ones, and messages above the smallest eager limit) are waited for the
//! same way; small sends and collectives stay the real blocking calls.
use crate::core::channels::count_completed;
use crate::core::handles::{message_matched, CommRef};
use crate::core::state::{state, Blocked};
use crate::sys::constants as k;
use crate::sys::*;
use std::ffi::{c_int, c_void};
use std::mem::MaybeUninit;

/// A status to write into: the program's, or a local one when it passed
/// `MPI_STATUS_IGNORE` (the library needs the source to count the message).
pub struct StatusOut {
    local: MaybeUninit<MPI_Status>,
    user: *mut MPI_Status,
}

impl StatusOut {
    #[inline(always)]
    pub fn new(user: *mut MPI_Status) -> Self {
        StatusOut {
            local: MaybeUninit::uninit(),
            user,
        }
    }
    #[inline(always)]
    pub fn ptr(&mut self) -> *mut MPI_Status {
        if self.user == k::MPI_STATUS_IGNORE() {
            self.local.as_mut_ptr()
        } else {
            self.user
        }
    }
}

/// A wait left because the synchronization froze: the caller takes its
/// operation back, runs the regroup (`regroup::now`) and repeats it.
#[derive(Debug, PartialEq, Eq)]
pub struct Woken;

/// The world rank a blocked operation waits on (-1: any or several).
fn world_of(comm: CommRef, peer: c_int) -> i32 {
    if peer < 0 {
        return -1;
    }
    let Some(i) = comm.index() else { return -1 };
    if i == 0 {
        return peer;
    }
    crate::core::handles::with_tables(|t| {
        t.comms
            .get(i)
            .and_then(|s| s.recipe.as_ref())
            .and_then(|r| match &r.remote {
                Some(Some(remote)) => remote.get(peer as usize).copied(),
                Some(None) => None,
                None => r.local.as_ref().and_then(|l| l.get(peer as usize).copied()),
            })
            .unwrap_or(-1)
    })
}

/// Polls between two yields of the core in a blocked call.
const YIELD_EVERY: u32 = 16;

/// Polls until an operation is done or fails, and lets the protocol in
/// while it waits: `poll` makes one nonblocking attempt and returns its
/// error code and whether the operation is done. After the first miss the
/// process publishes what it is blocked in; while a synchronization runs it
/// takes part in it, and when it freezes the wait returns [`Woken`] (unless
/// `wakeable` is false: an operation that completes by itself, such as the
/// receive of a message already matched, is waited for to the end).
#[inline(always)]
pub fn block_on(
    kind: Blocked,
    comm: CommRef,
    peer: c_int,
    tag: c_int,
    wakeable: bool,
    mut poll: impl FnMut() -> (c_int, bool),
) -> Result<c_int, Woken> {
    let (rc, done) = poll();
    if rc != k::MPI_SUCCESS() || done {
        return Ok(rc);
    }
    let world = world_of(comm, peer);
    state().set_blocked(kind, comm.0, peer, tag, world);
    let mut since: Option<std::time::Instant> = None;
    let mut idle = crate::sys::nap::Backoff::default();
    let mut polls: u32 = 0;
    let r = loop {
        let (rc, done) = poll();
        if rc != k::MPI_SUCCESS() || done {
            break Ok(rc);
        }
        polls = polls.wrapping_add(1);
        if polls.is_multiple_of(YIELD_EVERY) {
            // Where ranks outnumber cores, the peer this call waits for
            // may need this core (MPI's own waits yield too); with a core
            // to itself, the yield returns at once.
            std::thread::yield_now();
        }
        if state().command_pending() {
            if woken(wakeable, world, &mut since) {
                break Err(Woken);
            }
            // While a synchronization runs, a blocked process leaves the
            // core to those that must move for it (the leader's readings
            // first); outside one it spins, as MPI's own waits do.
            idle.pause(false);
        }
    };
    state().clear_blocked();
    r
}

/// A blocked call's rare branch, while a command is up: whether the
/// protocol wakes it; if not, the leader is nudged when it waits long
/// (out of line: the common path of a blocking call stays small).
#[cold]
#[inline(never)]
fn woken(wakeable: bool, world: i32, since: &mut Option<std::time::Instant>) -> bool {
    let up = crate::core::upcalls::upcalls();
    if up.woken(wakeable) {
        return true;
    }
    up.nudge(world, *since.get_or_insert_with(std::time::Instant::now));
    false
}

/// Waits for one request, leaving the wait when the protocol asks.
///
/// # Safety
/// `req` and `status` must be valid for MPI_Test.
#[inline]
pub unsafe fn wait_one(
    req: *mut MPI_Request,
    status: *mut MPI_Status,
    kind: Blocked,
    comm: CommRef,
    peer: c_int,
    tag: c_int,
) -> Result<c_int, Woken> {
    let mut flag: c_int = 0;
    block_on(kind, comm, peer, tag, true, || {
        // SAFETY: forwarded from the caller.
        let rc = unsafe { PMPI_Test(req, &mut flag, status) };
        (rc, flag != 0)
    })
}

/// Waits for a request that completes by itself (a send the drain will
/// receive, the receive of a matched message), taking part in a regroup
/// meanwhile.
///
/// # Safety
/// `req` and `status` must be valid for MPI_Test.
pub unsafe fn wait_through(
    req: *mut MPI_Request,
    status: *mut MPI_Status,
    kind: Blocked,
    comm: CommRef,
    peer: c_int,
    tag: c_int,
) -> c_int {
    let _held = Held::new(req);
    loop {
        // SAFETY: forwarded.
        match unsafe { wait_one(req, status, kind, comm, peer, tag) } {
            Ok(rc) => return rc,
            Err(Woken) => crate::core::upcalls::upcalls().regroup_now(),
        }
    }
}

/// Send requests the library waits on for the program (a blocking send
/// that may wait for its receiver, the send half of a sendrecv), by the
/// address of the variable that holds each: a checkpoint completes them
/// (the drain has received their messages) so that the frames waiting on
/// them hold no request of the old MPI.
#[allow(clippy::declare_interior_mutable_const)]
const FREE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static HELD: [std::sync::atomic::AtomicUsize; 8] = [FREE; 8];

/// Registers a held request while it lives (see [`HELD`]).
pub struct Held(usize);

impl Held {
    pub fn new(req: *mut MPI_Request) -> Held {
        use std::sync::atomic::Ordering::Relaxed;
        let p = req as usize;
        // One atomic exchange on the way in (a send path): no lock.
        let _ = HELD
            .iter()
            .any(|x| x.compare_exchange(0, p, Relaxed, Relaxed).is_ok());
        Held(p)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering::Relaxed;
        let _ = HELD
            .iter()
            .any(|x| x.compare_exchange(self.0, 0, Relaxed, Relaxed).is_ok());
    }
}

/// Completes every held send request (after the drain, before an image).
///
/// # Safety
/// Every process is frozen and drained; the registered variables are live
/// (their frames are below on this thread's stack).
pub unsafe fn complete_held() {
    let held = HELD
        .iter()
        .map(|x| x.load(std::sync::atomic::Ordering::Relaxed))
        .filter(|&x| x != 0);
    for p in held {
        let req = p as *mut MPI_Request;
        // SAFETY: contract of the function; a completed request becomes
        // MPI_REQUEST_NULL in the frame's own variable.
        unsafe {
            if *req != k::MPI_REQUEST_NULL() {
                PMPI_Wait(req, k::MPI_STATUS_IGNORE());
            }
        }
    }
}

/// Takes back a receive a freeze interrupted: `Ok(rc)` when it had
/// completed meanwhile (its status is in `status`), `Err` when cancelled.
unsafe fn take_back(req: *mut MPI_Request, status: *mut MPI_Status) -> Result<c_int, Woken> {
    let mut cancelled: c_int = 0;
    // SAFETY: a live receive request of the library.
    unsafe {
        PMPI_Cancel(req);
        let rc = PMPI_Wait(req, status);
        PMPI_Test_cancelled(status, &mut cancelled);
        if cancelled != 0 {
            Err(Woken)
        } else {
            Ok(rc)
        }
    }
}

/// Where a receive delivers: for serving drained messages.
#[derive(Clone, Copy)]
pub struct Target {
    pub buf: *mut c_void,
    pub count: i64,
    /// The program's (virtual) handle: translated when used.
    pub datatype: MPI_Datatype,
}

/// Accounts a blocking receive from `source` that MPI completed into
/// `st`. A receive from `MPI_PROC_NULL` gets the status MPI defines for it
/// (source `MPI_PROC_NULL`, tag `MPI_ANY_TAG`, count 0) and counts
/// nothing: Debian's MPICH 4.0.2 reports source 0 and tag 0 for the
/// nonblocking receive the blocking one is made of here, which the
/// channel counts would have taken for a message from rank 0.
///
/// # Safety
/// `st` is the status MPI just filled.
unsafe fn settle_receive(comm: CommRef, source: c_int, st: *mut MPI_Status) {
    if source == k::MPI_PROC_NULL() {
        // SAFETY: contract of the function.
        unsafe {
            (*st).MPI_SOURCE = k::MPI_PROC_NULL();
            (*st).MPI_TAG = k::MPI_ANY_TAG();
            PMPI_Status_set_elements(st, k::MPI_BYTE(), 0);
            PMPI_Status_set_cancelled(st, 0);
        }
        return;
    }
    // SAFETY: contract of the function.
    count_completed(comm, source, unsafe { (*st).MPI_SOURCE });
}

/// `MPI_Recv`: drained messages first, then the nonblocking form and a
/// wait; a freeze takes the receive back and repeats it afterwards.
///
/// # Safety
/// Arguments as for the MPI call; `post` posts the matching nonblocking
/// receive on the real communicator it is given.
pub unsafe fn recv_blocking(
    comm: CommRef,
    mut real: MPI_Comm,
    source: c_int,
    tag: c_int,
    status: *mut MPI_Status,
    target: Target,
    post: impl Fn(MPI_Comm, *mut MPI_Request) -> c_int,
) -> c_int {
    let mut st = StatusOut::new(status);
    loop {
        if crate::core::upcalls::drained_waiting() {
            // SAFETY: the program's receive arguments.
            if let Some(rc) = unsafe {
                crate::core::upcalls::upcalls().drained_recv(
                    comm,
                    source,
                    tag,
                    target.buf,
                    target.count,
                    crate::core::handles::datatype_real(target.datatype),
                    status,
                )
            } {
                return rc;
            }
        }
        let mut req = k::MPI_REQUEST_NULL();
        let rc = post(real, &mut req);
        if rc != k::MPI_SUCCESS() {
            return rc;
        }
        // SAFETY: `req` is a live request, `st.ptr()` a valid status.
        let r = match unsafe { wait_one(&mut req, st.ptr(), Blocked::Recv, comm, source, tag) } {
            Ok(rc) => Ok(rc),
            // SAFETY: `req` is the live receive.
            Err(Woken) => unsafe { take_back(&mut req, st.ptr()) },
        };
        match r {
            Ok(rc) => {
                if rc == k::MPI_SUCCESS() {
                    // SAFETY: MPI filled the status.
                    unsafe { settle_receive(comm, source, st.ptr()) };
                }
                return rc;
            }
            Err(Woken) => {
                crate::core::upcalls::upcalls().regroup_now();
                real = crate::core::handles::comm_real_of(comm);
            }
        }
    }
}

/// `MPI_Mrecv` of a message MPI matched: it completes by itself.
///
/// # Safety
/// Arguments as for the MPI call.
pub unsafe fn mrecv_blocking(
    comm: CommRef,
    source: c_int,
    status: *mut MPI_Status,
    post: impl FnOnce(*mut MPI_Request) -> c_int,
) -> c_int {
    let mut req = k::MPI_REQUEST_NULL();
    let rc = post(&mut req);
    if rc != k::MPI_SUCCESS() {
        return rc;
    }
    let mut st = StatusOut::new(status);
    // SAFETY: `req` is live.
    let rc = unsafe { wait_through(&mut req, st.ptr(), Blocked::Recv, comm, source, -1) };
    if rc == k::MPI_SUCCESS() {
        // SAFETY: MPI filled the status.
        count_completed(comm, source, unsafe { (*st.ptr()).MPI_SOURCE });
    }
    rc
}

/// The smallest eager limit of the MPIs ferry supports (Open MPI's shared
/// memory transport): a standard send of at most this many bytes completes
/// without its receiver.
const EAGER_BYTES: i64 = 4096;

/// `MPI_Send`/`MPI_Ssend`: a send that may wait for its receiver (always
/// for `MPI_Ssend`; above the eager limit for `MPI_Send`) is posted as its
/// nonblocking form and waited for through any regroup (the drain receives
/// it); a small standard send stays the real call.
///
/// # Safety
/// Arguments as for the MPI call.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub unsafe fn send_blocking(
    comm: CommRef,
    dest: c_int,
    tag: c_int,
    synchronous: bool,
    count: i64,
    datatype: MPI_Datatype,
    send: impl FnOnce() -> c_int,
    isend: impl FnOnce(*mut MPI_Request) -> c_int,
) -> c_int {
    if !synchronous {
        let mut size: c_int = 0;
        // SAFETY: the program's datatype (MPI reports a bad one).
        unsafe { PMPI_Type_size(datatype, &mut size) };
        if count.saturating_mul(size.max(0) as i64) <= EAGER_BYTES {
            return send();
        }
    }
    let mut req = k::MPI_REQUEST_NULL();
    let rc = isend(&mut req);
    if rc != k::MPI_SUCCESS() {
        return rc;
    }
    // SAFETY: `req` is live.
    unsafe {
        wait_through(
            &mut req,
            k::MPI_STATUS_IGNORE(),
            Blocked::Send,
            comm,
            dest,
            tag,
        )
    }
}

/// `MPI_Sendrecv`: both halves posted, then waited for; a freeze takes the
/// receive back (the send is the drain's) and repeats it afterwards.
///
/// # Safety
/// Arguments as for the MPI call.
#[allow(clippy::too_many_arguments)]
pub unsafe fn sendrecv_blocking(
    comm: CommRef,
    real: MPI_Comm,
    source: c_int,
    tag: c_int,
    status: *mut MPI_Status,
    target: Target,
    isend: impl FnOnce(*mut MPI_Request) -> c_int,
    irecv: impl Fn(MPI_Comm, *mut MPI_Request) -> c_int,
) -> c_int {
    let mut sreq = k::MPI_REQUEST_NULL();
    let mut rreq = k::MPI_REQUEST_NULL();
    let served = if crate::core::upcalls::drained_waiting() {
        // SAFETY: the program's receive arguments.
        unsafe {
            crate::core::upcalls::upcalls().drained_recv(
                comm,
                source,
                tag,
                target.buf,
                target.count,
                crate::core::handles::datatype_real(target.datatype),
                status,
            )
        }
    } else {
        None
    };
    if served.is_none() {
        let rc = irecv(real, &mut rreq);
        if rc != k::MPI_SUCCESS() {
            return rc;
        }
    }
    let rc = isend(&mut sreq);
    let _held = Held::new(&mut sreq);
    if rc != k::MPI_SUCCESS() {
        if served.is_none() {
            // SAFETY: rreq is the live receive just posted.
            unsafe {
                PMPI_Cancel(&mut rreq);
                PMPI_Wait(&mut rreq, k::MPI_STATUS_IGNORE());
            }
        }
        return rc;
    }
    let rc = match served {
        Some(rc) => rc,
        None => {
            let mut st = StatusOut::new(status);
            // SAFETY: rreq is live; the receive completes into `st`.
            let r = match unsafe {
                wait_one(&mut rreq, st.ptr(), Blocked::SendRecv, comm, source, tag)
            } {
                Ok(rc) => Ok(rc),
                // SAFETY: rreq is live.
                Err(Woken) => unsafe { take_back(&mut rreq, st.ptr()) },
            };
            let rc = match r {
                Ok(rc) => rc,
                Err(Woken) => {
                    crate::core::upcalls::upcalls().regroup_now();
                    let real = crate::core::handles::comm_real_of(comm);
                    // SAFETY: the receive half again, drained messages first.
                    return unsafe {
                        let rc = recv_blocking(comm, real, source, tag, status, target, irecv);
                        let src = k::MPI_STATUS_IGNORE();
                        let s2 = wait_through(&mut sreq, src, Blocked::SendRecv, comm, source, -1);
                        if rc != k::MPI_SUCCESS() {
                            rc
                        } else {
                            s2
                        }
                    };
                }
            };
            if rc != k::MPI_SUCCESS() {
                return rc;
            }
            // SAFETY: MPI filled the status.
            unsafe { settle_receive(comm, source, st.ptr()) };
            rc
        }
    };
    if rc != k::MPI_SUCCESS() {
        return rc;
    }
    // SAFETY: sreq is the live send.
    unsafe {
        wait_through(
            &mut sreq,
            k::MPI_STATUS_IGNORE(),
            Blocked::SendRecv,
            comm,
            source,
            -1,
        )
    }
}

/// `MPI_Probe` as an `MPI_Iprobe` loop, drained messages first.
///
/// # Safety
/// Arguments as for the MPI call.
pub unsafe fn probe_blocking(
    comm_ref: CommRef,
    source: c_int,
    tag: c_int,
    mut comm: MPI_Comm,
    status: *mut MPI_Status,
) -> c_int {
    loop {
        if crate::core::upcalls::drained_waiting() {
            // SAFETY: forwarded.
            if let Some(rc) = unsafe {
                crate::core::upcalls::upcalls().drained_probe(
                    comm_ref,
                    source,
                    tag,
                    std::ptr::null_mut(),
                    status,
                )
            } {
                return rc;
            }
        }
        let mut flag: c_int = 0;
        match block_on(Blocked::Probe, comm_ref, source, tag, true, || {
            // SAFETY: forwarded from the caller.
            let rc = unsafe { PMPI_Iprobe(source, tag, comm, &mut flag, status) };
            (rc, flag != 0)
        }) {
            Ok(rc) => return rc,
            Err(Woken) => {
                crate::core::upcalls::upcalls().regroup_now();
                comm = crate::core::handles::comm_real_of(comm_ref);
            }
        }
    }
}

/// `MPI_Iprobe`, drained messages first.
///
/// # Safety
/// Arguments as for the MPI call.
pub unsafe fn iprobe(
    comm_ref: CommRef,
    source: c_int,
    tag: c_int,
    comm: MPI_Comm,
    flag: *mut c_int,
    status: *mut MPI_Status,
) -> c_int {
    if crate::core::upcalls::drained_waiting() {
        // SAFETY: forwarded.
        if let Some(rc) = unsafe {
            crate::core::upcalls::upcalls().drained_probe(comm_ref, source, tag, flag, status)
        } {
            return rc;
        }
    }
    // SAFETY: forwarded.
    unsafe { PMPI_Iprobe(source, tag, comm, flag, status) }
}

/// `MPI_Mprobe` as an `MPI_Improbe` loop, drained messages first.
///
/// # Safety
/// Arguments as for the MPI call.
pub unsafe fn mprobe_blocking(
    comm_ref: CommRef,
    source: c_int,
    tag: c_int,
    mut comm: MPI_Comm,
    message: *mut MPI_Message,
    status: *mut MPI_Status,
) -> c_int {
    let mut st = StatusOut::new(status);
    let stp = st.ptr();
    loop {
        if crate::core::upcalls::drained_waiting() {
            // SAFETY: forwarded.
            if let Some(rc) = unsafe {
                crate::core::upcalls::upcalls().drained_mprobe(
                    comm_ref,
                    source,
                    tag,
                    std::ptr::null_mut(),
                    message,
                    status,
                )
            } {
                return rc;
            }
        }
        let mut flag: c_int = 0;
        let r = block_on(Blocked::Probe, comm_ref, source, tag, true, || {
            // SAFETY: forwarded from the caller.
            let rc = unsafe { PMPI_Improbe(source, tag, comm, &mut flag, message, stp) };
            (rc, flag != 0)
        });
        match r {
            Ok(rc) => {
                if rc == k::MPI_SUCCESS() && !message.is_null() {
                    // SAFETY: MPI filled both.
                    unsafe { message_matched(*message, comm_ref, (*stp).MPI_SOURCE) };
                }
                return rc;
            }
            Err(Woken) => {
                crate::core::upcalls::upcalls().regroup_now();
                comm = crate::core::handles::comm_real_of(comm_ref);
            }
        }
    }
}

/// `MPI_Improbe`: drained messages first; remembers the channel of a
/// message MPI matched.
///
/// # Safety
/// Arguments as for the MPI call (`comm` already real).
pub unsafe fn improbe(
    comm_ref: CommRef,
    source: c_int,
    tag: c_int,
    comm: MPI_Comm,
    flag: *mut c_int,
    message: *mut MPI_Message,
    status: *mut MPI_Status,
) -> c_int {
    if crate::core::upcalls::drained_waiting() {
        // SAFETY: forwarded.
        if let Some(rc) = unsafe {
            crate::core::upcalls::upcalls()
                .drained_mprobe(comm_ref, source, tag, flag, message, status)
        } {
            return rc;
        }
    }
    let mut st = StatusOut::new(status);
    // SAFETY: forwarded from the caller.
    let rc = unsafe { PMPI_Improbe(source, tag, comm, flag, message, st.ptr()) };
    // SAFETY: on success MPI set the flag, and the message and status with it.
    unsafe {
        if rc == k::MPI_SUCCESS() && !flag.is_null() && *flag != 0 && !message.is_null() {
            message_matched(*message, comm_ref, (*st.ptr()).MPI_SOURCE);
        }
    }
    rc
}
