//! Completion of requests: the `MPI_Wait*`/`MPI_Test*` families, start,
//! cancel and free. Each translates the program's virtual requests into the
//! real ones, lets MPI complete them (waits as test loops that the protocol
//! can interrupt), accounts completed receives on their channel, and writes
//! the virtual handles back: a request MPI freed is released and becomes
//! `MPI_REQUEST_NULL` for the program, a persistent one keeps its handle.
use crate::core::channels::{count_completed, count_send};
use crate::core::handles::{self, ReqKind};
use crate::core::state::Blocked;
use crate::sys::constants as k;
use crate::sys::quirks;
use crate::sys::*;
use std::cell::RefCell;
use std::ffi::c_int;
use std::mem::MaybeUninit;

/// Accounts one completed request.
#[inline]
fn settle(i: usize, status: *mut MPI_Status) {
    let Some((kind, swap_in, standin, comm, peer)) = handles::with_request(i, |slot| {
        slot.active = false;
        (slot.kind, slot.swap_in, slot.standin, slot.comm, slot.peer)
    }) else {
        return;
    };
    match kind {
        // Served across a rebuild: counted when it was drained.
        ReqKind::PersistentRecv if swap_in != k::MPI_REQUEST_NULL() && !standin => {}
        ReqKind::Recv | ReqKind::PersistentRecv => {
            let mut cancelled: c_int = 0;
            // SAFETY: `status` was filled by MPI for this request.
            unsafe {
                PMPI_Test_cancelled(status, &mut cancelled);
                if cancelled == 0 {
                    count_completed(comm, peer, (*status).MPI_SOURCE);
                }
            }
        }
        ReqKind::CommIdup => crate::calls::idup::idup_completed(i),
        _ => {}
    }
}

/// Writes back one virtual request after MPI may have changed its real one.
#[inline]
fn write_back(v: &mut MPI_Request, real_after: MPI_Request) {
    write_back_at(v, handles::request_index(*v), real_after)
}

#[inline]
fn write_back_at(v: &mut MPI_Request, idx: Option<usize>, real_after: MPI_Request) {
    match idx {
        Some(i) => {
            let swap_in = handles::with_request(i, |s| s.swap_in).unwrap_or(k::MPI_REQUEST_NULL());
            if real_after == k::MPI_REQUEST_NULL() && swap_in != k::MPI_REQUEST_NULL() {
                // The persistent request on the new communicator takes
                // over, inactive, under the same handle.
                handles::with_request(i, |s| {
                    s.real = swap_in;
                    s.swap_in = k::MPI_REQUEST_NULL();
                    s.standin = false;
                });
            } else if real_after == k::MPI_REQUEST_NULL() {
                handles::request_release(i);
                *v = real_after;
                // A communicator the program freed under this request.
                crate::core::comms::release_held();
            } else {
                handles::with_request(i, |s| s.real = real_after);
            }
        }
        None => *v = real_after,
    }
}

fn needs_status(i: Option<usize>) -> bool {
    i.and_then(|i| {
        handles::with_request(i, |s| {
            matches!(
                s.kind,
                ReqKind::Recv | ReqKind::PersistentRecv | ReqKind::CommIdup
            )
        })
    })
    .unwrap_or(false)
}

/// `MPI_Wait`.
///
/// # Safety
/// As for the MPI call.
pub unsafe fn wait(request: *mut MPI_Request, status: *mut MPI_Status) -> c_int {
    if request.is_null() {
        // SAFETY: MPI reports the bad argument.
        return unsafe { PMPI_Wait(request, status) };
    }
    // SAFETY: checked non-null above.
    let v = unsafe { &mut *request };
    let (idx, mut real) = handles::request_lookup(*v);
    if idx.is_none() {
        // SAFETY: not one of ours: forwarded unchanged.
        return unsafe { PMPI_Wait(request, status) };
    }
    let mut st = crate::calls::p2p::StatusOut::new(status);
    let (comm, peer, tag) = idx
        .and_then(|i| handles::with_request(i, |s| (s.comm, s.peer, s.tag)))
        .unwrap_or((handles::CommRef::NONE, -1, -1));
    loop {
        // SAFETY: `real` is the program's request, translated.
        match unsafe {
            crate::calls::p2p::wait_one(&mut real, st.ptr(), Blocked::Wait, comm, peer, tag)
        } {
            Ok(rc) => {
                if rc == k::MPI_SUCCESS() {
                    if let Some(i) = idx {
                        settle(i, st.ptr());
                    }
                }
                write_back_at(v, idx, real);
                return rc;
            }
            Err(crate::calls::p2p::Woken) => {
                // The regroup moves a pending receive to the new
                // communicator under the same handle: look it up again.
                write_back_at(v, idx, real);
                crate::core::upcalls::upcalls().regroup_now();
                real = handles::request_real(*v);
            }
        }
    }
}

/// `MPI_Test`.
///
/// # Safety
/// As for the MPI call.
pub unsafe fn test(request: *mut MPI_Request, flag: *mut c_int, status: *mut MPI_Status) -> c_int {
    if request.is_null() || flag.is_null() {
        // SAFETY: MPI reports the bad argument.
        return unsafe { PMPI_Test(request, flag, status) };
    }
    // SAFETY: checked non-null above.
    let v = unsafe { &mut *request };
    let (idx, mut real) = handles::request_lookup(*v);
    if idx.is_none() {
        // Not one of ours (MPI_REQUEST_NULL, or a bad handle MPI reports).
        // SAFETY: forwarded unchanged.
        return unsafe { PMPI_Test(request, flag, status) };
    }
    let mut st = crate::calls::p2p::StatusOut::new(status);
    // SAFETY: translated request, valid flag and status.
    let rc = unsafe { PMPI_Test(&mut real, flag, st.ptr()) };
    // SAFETY: flag checked non-null.
    if rc == k::MPI_SUCCESS() && unsafe { *flag } != 0 {
        if let Some(i) = idx {
            settle(i, st.ptr());
        }
    }
    write_back_at(v, idx, real);
    rc
}

thread_local! {
    static SCRATCH: RefCell<(Vec<MPI_Request>, Vec<MaybeUninit<MPI_Status>>)> =
        const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Runs `f` with the real requests of an array and, when the program
/// ignores statuses but the library needs them, a scratch status array.
/// Scratch buffers are reused between calls (no allocation on the steady
/// path) and taken out of the thread-local while in use, so a call made by
/// a callback from inside MPI gets buffers of its own.
unsafe fn with_array<R>(
    count: c_int,
    reqs: *mut MPI_Request,
    statuses: *mut MPI_Status,
    f: impl FnOnce(&mut [MPI_Request], &[Option<usize>], *mut MPI_Status) -> R,
) -> R {
    let n = count.max(0) as usize;
    let (mut reals, mut scratch) = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
    reals.clear();
    let mut idx: Vec<Option<usize>> = Vec::with_capacity(n);
    let virt = if n == 0 || reqs.is_null() {
        &mut [][..]
    } else {
        // SAFETY: the program passes `count` requests.
        unsafe { std::slice::from_raw_parts_mut(reqs, n) }
    };
    let mut need = false;
    for v in virt.iter() {
        let i = handles::request_index(*v);
        need |= needs_status(i);
        idx.push(i);
        reals.push(handles::request_real(*v));
    }
    let st = if statuses == k::MPI_STATUSES_IGNORE() && need {
        scratch.resize(n.max(1), MaybeUninit::uninit());
        scratch.as_mut_ptr() as *mut MPI_Status
    } else {
        statuses
    };
    let r = f(&mut reals, &idx, st);
    for (v, real) in virt.iter_mut().zip(reals.iter()) {
        write_back(v, *real);
    }
    SCRATCH.with(|s| *s.borrow_mut() = (reals, scratch));
    r
}

fn status_at(st: *mut MPI_Status, i: usize) -> *mut MPI_Status {
    if st == k::MPI_STATUSES_IGNORE() {
        k::MPI_STATUS_IGNORE()
    } else {
        // SAFETY: the status array has one entry per request.
        unsafe { st.add(i) }
    }
}

fn settle_at(idx: &[Option<usize>], st: *mut MPI_Status, i: usize) {
    if let Some(slot) = idx.get(i).copied().flatten() {
        let s = status_at(st, i);
        if s != k::MPI_STATUS_IGNORE() {
            settle(slot, s);
        }
    }
}

/// `MPI_Waitall` where `MPI_Testall` is broken
/// ([`quirks::TESTALL_ERR_IN_STATUS_PERSISTENT_COLL`]): each request is
/// polled with `MPI_Request_get_status`, which neither frees nor
/// deactivates it, and once all are complete one `MPI_Waitall` completes
/// them at once, each status the one `MPI_Request_get_status` gave. Like
/// a `MPI_Testall` loop, an attempt cut short by a
/// regroup changes nothing (a loop of `MPI_Testsome` would lose what it
/// completed: its messages uncounted for the drain, its statuses).
///
/// # Safety
/// `reals` are the real requests; `st` is `MPI_STATUSES_IGNORE` or holds
/// one status per request.
unsafe fn wait_all_by_get_status(
    reals: &mut [MPI_Request],
    st: *mut MPI_Status,
) -> Result<c_int, crate::calls::p2p::Woken> {
    // The requests before `next` are complete (and stay so until waited),
    // with the statuses `MPI_Request_get_status` gave: MPICH's
    // `MPI_Waitall` then reports a persistent request's status empty.
    let mut next = 0;
    let keep = st != k::MPI_STATUSES_IGNORE();
    // The statuses kept, in a buffer of this thread's reused from call to
    // call (taken, so that a wait inside a regroup gets its own).
    let mut got: Vec<MPI_Status> = STATUSES.with(|c| std::mem::take(&mut *c.borrow_mut()));
    got.clear();
    let rc = wait_for(|| {
        while let Some(&r) = reals.get(next) {
            let mut flag: c_int = 0;
            let mut s = MaybeUninit::<MPI_Status>::zeroed();
            // SAFETY: a real request (or null), left as it is; a
            // status of ours.
            let rc = unsafe { PMPI_Request_get_status(r, &mut flag, s.as_mut_ptr()) };
            if rc != k::MPI_SUCCESS() {
                return (rc, true);
            }
            if flag == 0 {
                return (k::MPI_SUCCESS(), false);
            }
            if keep {
                // SAFETY: MPI wrote it (a zeroed status is valid anyway).
                got.push(unsafe { s.assume_init() });
            }
            next += 1;
        }
        (k::MPI_SUCCESS(), true)
    })?;
    if rc != k::MPI_SUCCESS() {
        STATUSES.with(|c| *c.borrow_mut() = got);
        return Ok(rc);
    }
    // SAFETY: every request is complete: this returns at once.
    let rc = unsafe { PMPI_Waitall(reals.len() as c_int, reals.as_mut_ptr(), st) };
    if keep && (rc == k::MPI_SUCCESS() || rc == k::MPI_ERR_IN_STATUS()) {
        for (i, g) in got.iter().enumerate() {
            // SAFETY: one status per request; the error field stays
            // MPI_Waitall's.
            unsafe {
                let e = (*st.add(i)).MPI_ERROR;
                *st.add(i) = *g;
                (*st.add(i)).MPI_ERROR = e;
            }
        }
    }
    STATUSES.with(|c| *c.borrow_mut() = got);
    Ok(rc)
}

thread_local! {
    /// [`wait_all_by_get_status`]'s statuses, kept between calls.
    static STATUSES: RefCell<Vec<MPI_Status>> = const { RefCell::new(Vec::new()) };
}

/// Polls `poll` until done, as a wait on requests of no one communicator
/// (wakeable: a regroup may cut it short).
fn wait_for(poll: impl FnMut() -> (c_int, bool)) -> Result<c_int, crate::calls::p2p::Woken> {
    crate::calls::p2p::block_on(Blocked::Wait, handles::CommRef::NONE, -1, -1, true, poll)
}

fn ok_or_in_status(rc: c_int) -> bool {
    rc == k::MPI_SUCCESS() || rc == k::MPI_ERR_IN_STATUS()
}

fn status_ok(st: *mut MPI_Status, i: usize, rc: c_int) -> bool {
    if rc == k::MPI_SUCCESS() {
        return true;
    }
    let s = status_at(st, i);
    // SAFETY: with MPI_ERR_IN_STATUS the error field of each status is set.
    s != k::MPI_STATUS_IGNORE() && unsafe { (*s).MPI_ERROR } == k::MPI_SUCCESS()
}

/// `MPI_Waitall` / `MPI_Testall`.
///
/// # Safety
/// As for the MPI calls.
pub unsafe fn all(
    count: c_int,
    reqs: *mut MPI_Request,
    flag: *mut c_int,
    statuses: *mut MPI_Status,
    wait: bool,
) -> c_int {
    // SAFETY: forwarded.
    unsafe {
        with_regroups(|| {
            with_array(count, reqs, statuses, |reals, idx, st| {
                let mut done: c_int = 0;
                let rc = if wait {
                    if quirks::TESTALL_ERR_IN_STATUS_PERSISTENT_COLL {
                        done = 1;
                        wait_all_by_get_status(reals, st)?
                    } else {
                        wait_for(|| {
                            let rc = PMPI_Testall(count, reals.as_mut_ptr(), &mut done, st);
                            (rc, done != 0)
                        })?
                    }
                } else {
                    PMPI_Testall(count, reals.as_mut_ptr(), &mut done, st)
                };
                if !flag.is_null() {
                    *flag = done;
                }
                if (done != 0 || rc == k::MPI_ERR_IN_STATUS()) && ok_or_in_status(rc) {
                    for i in 0..reals.len() {
                        if status_ok(st, i, rc) {
                            settle_at(idx, st, i);
                        }
                    }
                }
                Ok(rc)
            })
        })
    }
}

/// Polls `poll` until done, in a wait a regroup may cut short: the
/// regroup runs, then the wait goes on (for the library's own waits on
/// what no program request stands for: its sends, a buffer's flush).
pub fn wait_through_regroups(mut poll: impl FnMut() -> (c_int, bool)) -> c_int {
    with_regroups(|| wait_for(&mut poll))
}

/// Runs a wait over the program's requests again after each regroup that
/// interrupted it (the regroup moves pending receives under the same
/// handles, so the next attempt translates them afresh).
fn with_regroups(mut f: impl FnMut() -> Result<c_int, crate::calls::p2p::Woken>) -> c_int {
    loop {
        match f() {
            Ok(rc) => return rc,
            Err(crate::calls::p2p::Woken) => crate::core::upcalls::upcalls().regroup_now(),
        }
    }
}

/// `MPI_Waitany` / `MPI_Testany`.
///
/// # Safety
/// As for the MPI calls.
pub unsafe fn any(
    count: c_int,
    reqs: *mut MPI_Request,
    index: *mut c_int,
    flag: *mut c_int,
    status: *mut MPI_Status,
    wait: bool,
) -> c_int {
    // SAFETY: forwarded.
    unsafe {
        let mut one = crate::calls::p2p::StatusOut::new(status);
        let stp = one.ptr();
        with_regroups(|| {
            with_array(count, reqs, k::MPI_STATUSES_IGNORE(), |reals, idx, _| {
                let mut done: c_int = 0;
                let mut at: c_int = k::MPI_UNDEFINED();
                let mut attempt = || {
                    let rc = PMPI_Testany(count, reals.as_mut_ptr(), &mut at, &mut done, stp);
                    (rc, done != 0)
                };
                let rc = if wait {
                    wait_for(attempt)?
                } else {
                    attempt().0
                };
                if !index.is_null() {
                    *index = at;
                }
                if !flag.is_null() {
                    *flag = done;
                }
                if rc == k::MPI_SUCCESS() && done != 0 && at != k::MPI_UNDEFINED() && at >= 0 {
                    if let Some(slot) = idx.get(at as usize).copied().flatten() {
                        settle(slot, stp);
                    }
                }
                Ok(rc)
            })
        })
    }
}

/// `MPI_Waitsome` / `MPI_Testsome`.
///
/// # Safety
/// As for the MPI calls.
pub unsafe fn some(
    incount: c_int,
    reqs: *mut MPI_Request,
    outcount: *mut c_int,
    indices: *mut c_int,
    statuses: *mut MPI_Status,
    wait: bool,
) -> c_int {
    // SAFETY: forwarded.
    unsafe {
        with_regroups(|| {
            with_array(incount, reqs, statuses, |reals, idx, st| {
                let mut out: c_int = 0;
                let mut attempt = || {
                    let rc = PMPI_Testsome(incount, reals.as_mut_ptr(), &mut out, indices, st);
                    (rc, out != 0)
                };
                let rc = if wait {
                    wait_for(attempt)?
                } else {
                    attempt().0
                };
                if !outcount.is_null() {
                    *outcount = out;
                }
                if ok_or_in_status(rc) && out != k::MPI_UNDEFINED() && out > 0 && !indices.is_null()
                {
                    for j in 0..out as usize {
                        let i = *indices.add(j) as usize;
                        // Statuses are packed in completion order.
                        if status_ok(st, j, rc) {
                            if let Some(slot) = idx.get(i).copied().flatten() {
                                let sp = status_at(st, j);
                                if sp != k::MPI_STATUS_IGNORE() {
                                    settle(slot, sp);
                                }
                            }
                        }
                    }
                }
                Ok(rc)
            })
        })
    }
}

/// `MPI_Start`: a persistent send counts its message at each start.
///
/// # Safety
/// As for the MPI call.
pub unsafe fn start(request: *mut MPI_Request) -> c_int {
    if request.is_null() {
        // SAFETY: MPI reports the bad argument.
        return unsafe { PMPI_Start(request) };
    }
    // SAFETY: non-null.
    let v = unsafe { &mut *request };
    let idx = handles::request_index(*v);
    if crate::core::upcalls::drained_waiting() {
        if let Some(i) = idx {
            // SAFETY: an inactive persistent request of the program.
            if unsafe { crate::core::upcalls::upcalls().serve_start(i) } {
                return k::MPI_SUCCESS();
            }
        }
    }
    let started = idx.and_then(|i| {
        handles::with_request(i, |s| {
            s.active = true;
            s.cancelled = false;
            (s.kind, s.comm, s.peer)
        })
    });
    if let Some((kind, comm, peer)) = started {
        if kind == ReqKind::PersistentSend {
            count_send(comm, peer);
        }
        if kind == ReqKind::Collective {
            let t = crate::core::superstep::enter_collective(comm);
            crate::core::superstep::leave_collective(t);
        }
    }
    if let Some(i) = idx.filter(|&i| crate::calls::anysource::needs_standin(i)) {
        // SAFETY: an inactive persistent receive of the program.
        let rc = unsafe { crate::core::upcalls::upcalls().start_standin(i) };
        if rc != k::MPI_SUCCESS() {
            handles::with_request(i, |s| s.active = false);
        }
        return rc;
    }
    let mut real = handles::request_real(*v);
    // SAFETY: translated request.
    let rc = unsafe { PMPI_Start(&mut real) };
    if rc != k::MPI_SUCCESS() {
        let failed = idx.and_then(|i| {
            handles::with_request(i, |s| {
                s.active = false;
                (s.kind, s.comm, s.peer)
            })
        });
        if let Some((ReqKind::PersistentSend, comm, peer)) = failed {
            crate::core::channels::uncount_send(comm, peer);
        }
    }
    write_back(v, real);
    rc
}

/// `MPI_Startall`.
///
/// # Safety
/// As for the MPI call.
pub unsafe fn start_all(count: c_int, reqs: *mut MPI_Request) -> c_int {
    let one_by_one = || {
        crate::core::upcalls::drained_waiting()
            || crate::calls::anysource::active() && {
                // SAFETY: the program passes `count` requests.
                let r = unsafe { std::slice::from_raw_parts(reqs, count as usize) };
                r.iter().any(|v| {
                    handles::request_index(*v).is_some_and(crate::calls::anysource::needs_standin)
                })
            }
    };
    if count > 0 && !reqs.is_null() && one_by_one() {
        // One at a time, so that receives drained messages match are
        // served from the queue, and persistent MPI_ANY_SOURCE receives
        // that must be matched-probe requests are made so.
        for i in 0..count as usize {
            // SAFETY: the program passes `count` requests.
            let rc = unsafe { start(reqs.add(i)) };
            if rc != k::MPI_SUCCESS() {
                return rc;
            }
        }
        return k::MPI_SUCCESS();
    }
    // SAFETY: forwarded.
    unsafe {
        with_array(count, reqs, k::MPI_STATUSES_IGNORE(), |reals, idx, _| {
            for i in idx.iter().flatten() {
                let started = handles::with_request(*i, |s| {
                    s.active = true;
                    s.cancelled = false;
                    (s.kind, s.comm, s.peer)
                });
                if let Some((ReqKind::PersistentSend, comm, peer)) = started {
                    count_send(comm, peer);
                }
            }
            PMPI_Startall(count, reals.as_mut_ptr())
        })
    }
}

/// `MPI_Request_free`.
///
/// # Safety
/// As for the MPI call.
pub unsafe fn request_free(request: *mut MPI_Request) -> c_int {
    if request.is_null() {
        // SAFETY: MPI reports the bad argument.
        return unsafe { PMPI_Request_free(request) };
    }
    // SAFETY: non-null.
    let v = unsafe { &mut *request };
    let (idx, mut real) = handles::request_lookup(*v);
    // A persistent receive served across a rebuild has two real requests:
    // the completed one the program sees and its inactive successor.
    // SAFETY: translated request.
    let rc = unsafe { PMPI_Request_free(&mut real) };
    if rc == k::MPI_SUCCESS() {
        let successor = idx.and_then(|i| {
            handles::with_request(i, |s| {
                std::mem::replace(&mut s.swap_in, k::MPI_REQUEST_NULL())
            })
        });
        if let Some(mut successor) = successor.filter(|r| *r != k::MPI_REQUEST_NULL()) {
            // SAFETY: the slot's inactive persistent request, ours alone.
            unsafe { PMPI_Request_free(&mut successor) };
        }
        write_back_at(v, idx, k::MPI_REQUEST_NULL());
    }
    rc
}

/// `MPI_Cancel`.
///
/// # Safety
/// As for the MPI call.
pub unsafe fn cancel(request: *mut MPI_Request) -> c_int {
    if request.is_null() {
        // SAFETY: MPI reports the bad argument.
        return unsafe { PMPI_Cancel(request) };
    }
    // SAFETY: non-null.
    let v = unsafe { *request };
    let mut real = handles::request_real(v);
    // SAFETY: translated request.
    let rc = unsafe { PMPI_Cancel(&mut real) };
    if rc == k::MPI_SUCCESS() {
        if let Some(i) = handles::request_index(v) {
            handles::with_request(i, |s| s.cancelled = true);
        }
    }
    rc
}

/// `MPI_Request_get_status`: no completion, only a look.
///
/// # Safety
/// As for the MPI call.
pub unsafe fn get_status(request: MPI_Request, flag: *mut c_int, status: *mut MPI_Status) -> c_int {
    // SAFETY: translated request.
    unsafe { PMPI_Request_get_status(handles::request_real(request), flag, status) }
}
