//! Blocking point-to-point operations, made wakeable.
//!
//! A blocking receive or probe can wait forever for a peer that has stopped
//! for a synchronization, so the library runs it as its nonblocking form
//! plus a test loop that also watches the process's MIG_WAKE flag (a plain
//! load of its own window). While it waits, the process publishes what it
//! is blocked in, for the point-to-point synchronization to read. Blocking
//! sends and collectives stay the real blocking calls: a send completes when
//! the drain receives it, and collectives are met through the supersteps.
use crate::channels::count_receive;
use crate::handles::{message_matched, CommRef};
use crate::state::{state, Blocked};
use crate::sys::constants as k;
use crate::sys::*;
use std::ffi::c_int;
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

/// Polls until an operation is done or fails, and lets the protocol in
/// while it waits: `poll` makes one nonblocking attempt and returns its
/// error code and whether the operation is done. After the first miss the
/// process publishes what it is blocked in; whenever MIG_WAKE is raised the
/// protocol runs (`control::woken`) before polling goes on.
#[inline]
pub fn block_on(
    kind: Blocked,
    comm: CommRef,
    peer: c_int,
    tag: c_int,
    mut poll: impl FnMut() -> (c_int, bool),
) -> c_int {
    let (rc, done) = poll();
    if rc != k::MPI_SUCCESS() || done {
        return rc;
    }
    let s = state();
    s.set_blocked(kind, comm.0, peer, tag);
    let rc = loop {
        let (rc, done) = poll();
        if rc != k::MPI_SUCCESS() || done {
            break rc;
        }
        if s.wake_requested() {
            crate::control::woken(kind, comm, peer, tag);
        }
    };
    s.clear_blocked();
    rc
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
) -> c_int {
    let mut flag: c_int = 0;
    block_on(kind, comm, peer, tag, || {
        // SAFETY: forwarded from the caller.
        let rc = unsafe { PMPI_Test(req, &mut flag, status) };
        (rc, flag != 0)
    })
}

/// `MPI_Recv` and `MPI_Mrecv`: post the nonblocking form, then wait.
///
/// # Safety
/// Arguments as for the MPI call; `post` posts the matching nonblocking receive.
pub unsafe fn recv_blocking(
    comm: CommRef,
    source: c_int,
    tag: c_int,
    status: *mut MPI_Status,
    post: impl FnOnce(*mut MPI_Request) -> c_int,
) -> c_int {
    let mut req = k::MPI_REQUEST_NULL();
    let rc = post(&mut req);
    if rc != k::MPI_SUCCESS() {
        return rc;
    }
    let mut st = StatusOut::new(status);
    // SAFETY: `req` is a live request, `st.ptr()` a valid status.
    let rc = unsafe { wait_one(&mut req, st.ptr(), Blocked::Recv, comm, source, tag) };
    if rc == k::MPI_SUCCESS() {
        // SAFETY: MPI filled the status.
        let src = unsafe { (*st.ptr()).MPI_SOURCE };
        if src != k::MPI_PROC_NULL() {
            count_receive(comm, src);
        }
    }
    rc
}

/// `MPI_Sendrecv`: both halves posted, then waited for together.
///
/// # Safety
/// Arguments as for the MPI call.
pub unsafe fn sendrecv_blocking(
    comm: CommRef,
    source: c_int,
    status: *mut MPI_Status,
    isend: impl FnOnce(*mut MPI_Request) -> c_int,
    irecv: impl FnOnce(*mut MPI_Request) -> c_int,
) -> c_int {
    let mut reqs = [k::MPI_REQUEST_NULL(), k::MPI_REQUEST_NULL()];
    let rc = irecv(&mut reqs[0]);
    if rc != k::MPI_SUCCESS() {
        return rc;
    }
    let rc = isend(&mut reqs[1]);
    if rc != k::MPI_SUCCESS() {
        // SAFETY: reqs[0] is the live receive just posted.
        unsafe {
            PMPI_Cancel(&mut reqs[0]);
            PMPI_Wait(&mut reqs[0], k::MPI_STATUS_IGNORE());
        }
        return rc;
    }
    let mut st = StatusOut::new(status);
    // SAFETY: the receive completes into `st`; then the send is waited for.
    let rc = unsafe { wait_one(&mut reqs[0], st.ptr(), Blocked::SendRecv, comm, source, -1) };
    if rc != k::MPI_SUCCESS() {
        return rc;
    }
    // SAFETY: MPI filled the status.
    let src = unsafe { (*st.ptr()).MPI_SOURCE };
    if src != k::MPI_PROC_NULL() {
        count_receive(comm, src);
    }
    // SAFETY: reqs[1] is the live send.
    unsafe {
        wait_one(
            &mut reqs[1],
            k::MPI_STATUS_IGNORE(),
            Blocked::SendRecv,
            comm,
            source,
            -1,
        )
    }
}

/// `MPI_Probe` as an `MPI_Iprobe` loop.
///
/// # Safety
/// Arguments as for the MPI call (`comm` already real).
pub unsafe fn probe_blocking(
    comm_ref: CommRef,
    source: c_int,
    tag: c_int,
    comm: MPI_Comm,
    status: *mut MPI_Status,
) -> c_int {
    let mut flag: c_int = 0;
    block_on(Blocked::Probe, comm_ref, source, tag, || {
        // SAFETY: forwarded from the caller.
        let rc = unsafe { PMPI_Iprobe(source, tag, comm, &mut flag, status) };
        (rc, flag != 0)
    })
}

/// `MPI_Mprobe` as an `MPI_Improbe` loop.
///
/// # Safety
/// Arguments as for the MPI call (`comm` already real).
pub unsafe fn mprobe_blocking(
    comm_ref: CommRef,
    source: c_int,
    tag: c_int,
    comm: MPI_Comm,
    message: *mut MPI_Message,
    status: *mut MPI_Status,
) -> c_int {
    let mut flag: c_int = 0;
    let mut st = StatusOut::new(status);
    let stp = st.ptr();
    let rc = block_on(Blocked::Probe, comm_ref, source, tag, || {
        // SAFETY: forwarded from the caller.
        let rc = unsafe { PMPI_Improbe(source, tag, comm, &mut flag, message, stp) };
        (rc, flag != 0)
    });
    if rc == k::MPI_SUCCESS() && !message.is_null() {
        // SAFETY: MPI filled both.
        unsafe { message_matched(*message, comm_ref, (*stp).MPI_SOURCE) };
    }
    rc
}

/// `MPI_Improbe`: remembers the channel of a matched message.
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
