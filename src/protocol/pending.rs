//! Pending operations across a change of communicators.
//!
//! A receive the program posted on a communicator that is about to be
//! replaced must survive with the same request handle: before the rebuild
//! it is taken off the old communicator (cancelled, or found completed), and
//! after the rebuild it is posted again on the new one, under the same
//! virtual handle. A receive that completed while being cancelled keeps its
//! result: the program later completes a generalized request that reports
//! the original status. Inactive persistent requests are made again on the
//! new communicator; active ones are restarted there.
use crate::core::handles::{with_tables, P2pArgs, P2pOp, ReqKind};
use crate::sys::constants as k;
use crate::sys::*;
use std::ffi::{c_int, c_void};
use std::mem::MaybeUninit;

/// A request taken off its communicator.
pub struct Parked {
    slot: usize,
    seq: u64,
    args: P2pArgs,
    /// Set when the receive completed instead of being cancelled.
    completed: Option<MPI_Status>,
    /// A persistent request that was active: start it again.
    restart: bool,
    /// A started persistent send: a message in flight, left to the drain;
    /// completed by [`complete_sends`] once drained, then made again.
    in_flight: Option<MPI_Request>,
}

impl Parked {
    /// The request slot.
    pub fn slot(&self) -> usize {
        self.slot
    }
}

/// Whether requests on this communicator slot move with the rebuild.
fn moves(t: &crate::core::handles::Tables, comm: usize) -> bool {
    comm == 0
        || t.comms
            .get(comm)
            .and_then(|s| s.recipe.as_ref())
            .is_some_and(|r| r.rebuildable())
}

/// The slot of request `i`, as it is now.
fn slot_of(i: usize) -> Option<crate::core::handles::ReqSlot> {
    with_tables(|t| t.requests.get(i).copied())
}

/// Completes every pending `MPI_Comm_idup` (every member started it: the
/// supersteps agree), so that the communicator exists before the rebuild;
/// the program's own wait later finds the request done.
///
/// # Safety
/// Every process must be frozen, as in the regroup.
pub unsafe fn complete_idups() {
    let idups: Vec<(usize, MPI_Request)> = with_tables(|t| {
        t.requests
            .iter()
            .filter(|(_, s)| s.kind == ReqKind::CommIdup && s.real != k::MPI_REQUEST_NULL())
            .map(|(i, s)| (i, s.real))
            .collect()
    });
    for (i, mut real) in idups {
        // SAFETY: a live idup request of the program.
        unsafe { PMPI_Wait(&mut real, k::MPI_STATUS_IGNORE()) };
        crate::calls::idup::idup_completed(i);
        crate::core::handles::with_request(i, |s| s.real = real);
    }
}

/// Takes every pending receive and every persistent request off the
/// communicators that are about to be rebuilt.
///
/// # Safety
/// MPI must be initialized; no other thread may use these requests.
pub unsafe fn park() -> Vec<Parked> {
    type Todo = (
        usize,
        ReqKind,
        MPI_Request,
        P2pArgs,
        bool,
        u64,
        MPI_Request,
        bool,
    );
    let mut todo: Vec<Todo> = with_tables(|t| {
        t.requests
            .iter()
            .filter_map(|(i, s)| {
                let args = s.p2p?;
                let comm = s.comm.index()?;
                (moves(t, comm) && s.kind != ReqKind::Other && !s.cancelled).then_some((
                    i, s.kind, s.real, args, s.active, s.seq, s.swap_in, s.standin,
                ))
            })
            .collect()
    });
    // Receives are matched in the order they were posted: keep it.
    todo.sort_by_key(|t| t.5);
    let mut parked = Vec::new();
    for (i, kind, mut real, args, active, seq, mut successor, standin) in todo {
        if successor != k::MPI_REQUEST_NULL() {
            // A persistent receive with two real requests: the program's
            // (`real`) and the persistent one, inactive, that takes its
            // place after the program's wait (`successor`). Either it was
            // served across an earlier rebuild (`real` is a completed
            // generalized request reporting a message counted when it was
            // drained), or it is an active MPI_ANY_SOURCE receive made as a
            // matched-probe request (`standin`: taken back like a receive).
            // Both go; `repost` makes them again (and starts a cancelled
            // one again).
            let completed = if standin {
                // SAFETY: the live matched-probe request of this slot.
                unsafe { take_back(i, &mut real) }
            } else {
                let mut st = MaybeUninit::<MPI_Status>::zeroed();
                // SAFETY: the completed generalized request of this slot;
                // MPI_Wait fills the status from its query function.
                unsafe {
                    PMPI_Wait(&mut real, st.as_mut_ptr());
                    Some(st.assume_init())
                }
            };
            // SAFETY: the slot's inactive persistent request, ours alone.
            unsafe { PMPI_Request_free(&mut successor) };
            crate::core::handles::with_request(i, |s| {
                s.real = k::MPI_REQUEST_NULL();
                s.swap_in = k::MPI_REQUEST_NULL();
                s.standin = false;
            });
            parked.push(Parked {
                slot: i,
                seq,
                args,
                restart: completed.is_none(),
                completed,
                in_flight: None,
            });
            continue;
        }
        let pending = kind == ReqKind::Recv || active;
        let mut completed = None;
        if pending {
            if kind == ReqKind::PersistentSend {
                // A started send is a message in flight: the drain's
                // business, and it must not be cancelled here.
                parked.push(Parked {
                    slot: i,
                    seq,
                    args,
                    completed: None,
                    restart: false,
                    in_flight: Some(real),
                });
                continue;
            }
            // SAFETY: a live receive request of the program.
            completed = unsafe { take_back(i, &mut real) };
        }
        if kind != ReqKind::Recv {
            // A persistent request outlives its completion: free it, it is
            // made again on the new communicator.
            // SAFETY: an inactive persistent request of the program.
            unsafe { PMPI_Request_free(&mut real) };
        }
        parked.push(Parked {
            slot: i,
            seq,
            args,
            restart: pending && kind != ReqKind::Recv && completed.is_none(),
            completed,
            in_flight: None,
        });
    }
    parked
}

/// Takes the live receive request `real` of slot `i` off its
/// communicator: cancelled (`None`), or found completed (its status). A
/// completed one consumed a message: counted now, for the drain, and not
/// again when the program completes it (a receive from `MPI_PROC_NULL`
/// consumed nothing, whatever source the MPI reports, and is never
/// cancelled: it completes at once).
///
/// # Safety
/// `real` is a live receive request of this process.
unsafe fn take_back(i: usize, real: &mut MPI_Request) -> Option<MPI_Status> {
    let mut st = MaybeUninit::<MPI_Status>::zeroed();
    let mut cancelled: c_int = 0;
    if slot_of(i).map(|s| s.peer) == Some(k::MPI_PROC_NULL()) {
        // Complete at once, and not cancellable: MPICH takes a started
        // persistent receive from MPI_PROC_NULL for an inactive one
        // ("Attempt to cancel an inactive persistent request", fatal).
        // SAFETY: contract of the function.
        unsafe {
            PMPI_Wait(real, st.as_mut_ptr());
            return Some(st.assume_init());
        }
    }
    // SAFETY: contract of the function.
    unsafe {
        PMPI_Cancel(real);
        PMPI_Wait(real, st.as_mut_ptr());
        PMPI_Test_cancelled(st.as_ptr(), &mut cancelled);
    }
    if cancelled != 0 {
        return None;
    }
    // SAFETY: MPI_Wait filled it.
    let st = unsafe { st.assume_init() };
    if let Some(s) = slot_of(i) {
        crate::core::channels::count_completed(s.comm, s.peer, st.MPI_SOURCE);
    }
    Some(st)
}

/// `MPI_Start` of a persistent receive while drained messages wait: one
/// that matches is delivered at once, and the request reports it as a
/// completed request; its inactive self comes back after the program's
/// wait (`swap_in`). Returns whether it was served.
///
/// # Safety
/// `i` must be the slot of an inactive persistent receive of the program.
pub unsafe fn serve_start(i: usize) -> bool {
    let Some(slot) = slot_of(i) else {
        return false;
    };
    let Some(args) = slot.p2p else { return false };
    if slot.kind != ReqKind::PersistentRecv {
        return false;
    }
    let Some(d) = crate::protocol::drain::take(slot.comm, slot.peer, slot.tag) else {
        return false;
    };
    let mut done = k::MPI_REQUEST_NULL();
    // SAFETY: the program's own receive arguments; a fresh request.
    unsafe {
        crate::protocol::drain::deliver_completed(
            &d,
            args.buf,
            args.count,
            crate::core::handles::datatype_real(args.datatype),
            &mut done,
        )
    };
    crate::core::handles::with_request(i, |s| {
        s.swap_in = s.real;
        s.real = done;
        s.active = true;
    });
    true
}

pub use crate::calls::anysource::needs_standin;

/// `MPI_Start` of a persistent receive that [`needs_standin`]: a
/// matched-probe receive with its arguments becomes the active request;
/// the persistent one waits, inactive, in `swap_in`.
///
/// # Safety
/// `i` must be the slot of an inactive persistent receive of the program.
pub unsafe fn start_standin(i: usize) -> c_int {
    let Some(slot) = slot_of(i) else {
        return k::MPI_ERR_REQUEST();
    };
    let Some(args) = slot.p2p else {
        return k::MPI_ERR_REQUEST();
    };
    let comm = crate::core::handles::comm_real_of(slot.comm);
    let mut req = k::MPI_REQUEST_NULL();
    let dt = crate::core::handles::datatype_real(args.datatype);
    // SAFETY: the arguments the program gave to MPI_Recv_init.
    let rc = unsafe {
        match args.op {
            #[cfg(ferry_has = "MPI_Recv_init_c")]
            P2pOp::Recv_init_c => crate::calls::anysource::irecv_c(
                args.buf,
                args.count as MPI_Count,
                dt,
                slot.peer,
                slot.tag,
                comm,
                &mut req,
            ),
            _ => crate::calls::anysource::irecv(
                args.buf,
                args.count as c_int,
                dt,
                slot.peer,
                slot.tag,
                comm,
                &mut req,
            ),
        }
    };
    if rc == k::MPI_SUCCESS() {
        crate::core::handles::with_request(i, |s| {
            s.swap_in = s.real;
            s.real = req;
            s.standin = true;
            s.active = true;
        });
    }
    rc
}

/// After the drain: every started persistent send has been received, so it
/// completes; it is then freed, to be made again on the new communicator.
/// The program's own wait on it later finds an inactive request, as MPI
/// allows.
///
/// # Safety
/// Only after the drain (or the sends may never complete).
pub unsafe fn complete_sends(parked: &mut [Parked]) {
    for p in parked.iter_mut() {
        if let Some(mut real) = p.in_flight.take() {
            // SAFETY: a started persistent send of the program, received
            // by the drain.
            unsafe {
                PMPI_Wait(&mut real, k::MPI_STATUS_IGNORE());
                PMPI_Request_free(&mut real);
            }
            crate::core::handles::with_request(p.slot, |s| s.active = false);
        }
    }
}

/// Posts the parked requests again on the rebuilt communicators.
///
/// # Safety
/// The communicators of the parked requests must have been rebuilt.
pub unsafe fn repost(mut parked: Vec<Parked>) {
    parked.sort_by_key(|p| p.seq);
    if crate::sys::breaks::on("lose-request") && !parked.is_empty() {
        parked.remove(0);
        crate::sys::breaks::fired("lose-request", "a parked request was not posted again");
    }
    for p in parked {
        if p.in_flight.is_some() {
            // Not drained (the world-swap test switch): it stays where it is.
            log::warn!(
                "persistent send request in flight during a rebuild: left on the old communicator"
            );
            continue;
        }
        let Some(slot) = slot_of(p.slot) else {
            continue;
        };
        let comm = crate::core::handles::comm_real_of(slot.comm);
        let mut real = k::MPI_REQUEST_NULL();
        // A receive a drained message matches takes it, before MPI.
        let served = if (slot.kind == ReqKind::Recv
            || (slot.kind == ReqKind::PersistentRecv && p.restart))
            && p.completed.is_none()
        {
            crate::protocol::drain::take(slot.comm, slot.peer, slot.tag)
        } else {
            None
        };
        if slot.kind == ReqKind::PersistentRecv && (served.is_some() || p.completed.is_some()) {
            // A persistent receive whose message is at hand: it reports it
            // through a completed request, and its inactive successor on
            // the new communicator takes over after the program's wait.
            let st = match &served {
                Some(d) => {
                    let mut st = MaybeUninit::<MPI_Status>::zeroed();
                    // SAFETY: the program's own receive arguments.
                    // (A truncation is reported at completion, in the
                    // status's error field.)
                    unsafe {
                        let rc = crate::protocol::drain::deliver(
                            d,
                            p.args.buf,
                            p.args.count,
                            crate::core::handles::datatype_real(p.args.datatype),
                            st.as_mut_ptr(),
                        );
                        let mut st = st.assume_init();
                        st.MPI_ERROR = rc;
                        st
                    }
                }
                // SAFETY: a plain C struct, for which all zeroes is valid.
                None => p.completed.unwrap_or_else(|| unsafe { std::mem::zeroed() }),
            };
            let mut next = k::MPI_REQUEST_NULL();
            // SAFETY: the arguments the program gave at first.
            let rc = unsafe { post(p.args, slot.peer, slot.tag, comm, &mut next) };
            // SAFETY: a completed generalized request reporting `st`.
            let rc2 = unsafe { crate::sys::grequest::completed_request(st, &mut real) };
            if rc != k::MPI_SUCCESS() || rc2 != k::MPI_SUCCESS() {
                log::error!(
                    "could not move persistent receive slot {} ({rc}, {rc2})",
                    p.slot
                );
            }
            crate::core::handles::with_request(p.slot, |s| {
                s.real = real;
                s.swap_in = next;
                s.active = true;
            });
            continue;
        }
        let served_any = served.is_some();
        let rc = match (slot.kind, p.completed, served) {
            (ReqKind::Recv, _, Some(d)) => {
                // SAFETY: the program's own receive arguments.
                unsafe {
                    crate::protocol::drain::deliver_completed(
                        &d,
                        p.args.buf,
                        p.args.count,
                        crate::core::handles::datatype_real(p.args.datatype),
                        &mut real,
                    )
                }
            }
            (ReqKind::Recv, Some(st), _) => {
                // SAFETY: a completed generalized request reporting `st`.
                unsafe { crate::sys::grequest::completed_request(st, &mut real) }
            }
            _ => {
                // SAFETY: the arguments the program gave at first.
                let rc = unsafe { post(p.args, slot.peer, slot.tag, comm, &mut real) };
                if rc == k::MPI_SUCCESS() && p.restart && !needs_standin(p.slot) {
                    // SAFETY: the persistent request just made.
                    unsafe { PMPI_Start(&mut real) }
                } else {
                    rc
                }
            }
        };
        if rc != k::MPI_SUCCESS() {
            log::error!(
                "could not post request slot {} again ({rc}): it will never complete",
                p.slot
            );
        }
        crate::core::handles::with_request(p.slot, |s| {
            s.real = real;
            if s.kind == ReqKind::Recv && (p.completed.is_some() || served_any) {
                // Counted already (by the drain, or when it completed).
                s.kind = ReqKind::Other;
            }
        });
        if rc == k::MPI_SUCCESS() && p.restart && needs_standin(p.slot) {
            // SAFETY: the inactive persistent receive just made.
            let rc = unsafe { start_standin(p.slot) };
            if rc != k::MPI_SUCCESS() {
                log::error!(
                    "could not start request slot {} again ({rc}): it will never complete",
                    p.slot
                );
            }
        }
    }
    // Twins of datatypes the program freed under requests now done.
    // (Held communicators are freed in the program's own calls: that runs
    // its attributes' delete functions.)
    crate::core::datatypes::release_held();
}

/// Calls the point-to-point function that made a request, on `comm`.
unsafe fn post(
    a: P2pArgs,
    peer: c_int,
    tag: c_int,
    comm: MPI_Comm,
    req: *mut MPI_Request,
) -> c_int {
    let (buf, n, dt) = (
        a.buf,
        a.count,
        crate::core::handles::datatype_real(a.datatype),
    );
    let c = n as c_int;
    let cbuf = buf as *const c_void;
    // SAFETY: as the program called it, on a communicator of the same group.
    unsafe {
        match a.op {
            P2pOp::Irecv => crate::calls::anysource::irecv(buf, c, dt, peer, tag, comm, req),
            P2pOp::Recv_init => PMPI_Recv_init(buf, c, dt, peer, tag, comm, req),
            P2pOp::Send_init => PMPI_Send_init(cbuf, c, dt, peer, tag, comm, req),
            P2pOp::Bsend_init => PMPI_Bsend_init(cbuf, c, dt, peer, tag, comm, req),
            P2pOp::Ssend_init => PMPI_Ssend_init(cbuf, c, dt, peer, tag, comm, req),
            P2pOp::Rsend_init => PMPI_Rsend_init(cbuf, c, dt, peer, tag, comm, req),
            #[cfg(ferry_has = "MPI_Irecv_c")]
            P2pOp::Irecv_c => {
                crate::calls::anysource::irecv_c(buf, n as MPI_Count, dt, peer, tag, comm, req)
            }
            #[cfg(ferry_has = "MPI_Recv_init_c")]
            P2pOp::Recv_init_c => PMPI_Recv_init_c(buf, n as MPI_Count, dt, peer, tag, comm, req),
            #[cfg(ferry_has = "MPI_Send_init_c")]
            P2pOp::Send_init_c => PMPI_Send_init_c(cbuf, n as MPI_Count, dt, peer, tag, comm, req),
            #[cfg(ferry_has = "MPI_Bsend_init_c")]
            P2pOp::Bsend_init_c => {
                PMPI_Bsend_init_c(cbuf, n as MPI_Count, dt, peer, tag, comm, req)
            }
            #[cfg(ferry_has = "MPI_Ssend_init_c")]
            P2pOp::Ssend_init_c => {
                PMPI_Ssend_init_c(cbuf, n as MPI_Count, dt, peer, tag, comm, req)
            }
            #[cfg(ferry_has = "MPI_Rsend_init_c")]
            P2pOp::Rsend_init_c => {
                PMPI_Rsend_init_c(cbuf, n as MPI_Count, dt, peer, tag, comm, req)
            }
            #[allow(unreachable_patterns)]
            _ => k::MPI_ERR_INTERN(),
        }
    }
}
