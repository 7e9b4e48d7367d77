//! Receives from `MPI_ANY_SOURCE` on MPICH after a migration.
//!
//! MPICH 5.0.2 loses posted `MPI_ANY_SOURCE` receives on a communicator
//! that holds a spawned process: a ring of `MPI_Irecv(MPI_ANY_SOURCE)` +
//! `MPI_Send` hangs within a few rounds, without ferry too (matched probes,
//! `MPI_Improbe(MPI_ANY_SOURCE)` + `MPI_Mrecv`, work). After a migration
//! every communicator of the job holds one, so there such a receive is
//! made as a generalized request of MPICH's (`MPIX_Grequest_start`) whose
//! poll function, called by MPI's progress from the program's waits and
//! tests, matches a message with `MPI_Improbe` and receives it with
//! `MPI_Mrecv`. The program sees an ordinary request: its status carries
//! source, tag and count; cancelling it works before a message matched.
//!
//! The large-count forms (`MPI_Irecv_c`, `MPI_Recv_c`, `MPI_Sendrecv_c`,
//! a started `MPI_Recv_init_c`) go the same way, received with
//! `MPI_Mrecv_c`.
//!
//! Everywhere else (Open MPI, before any migration, a fixed source) this
//! is `MPI_Irecv` (`MPI_Irecv_c`) itself.
#[cfg(ferry_mpi = "mpich")]
use crate::sys::constants as k;
use crate::sys::*;
use std::ffi::{c_int, c_void};

/// Whether `MPI_ANY_SOURCE` receives are matched-probe requests here
/// (MPICH, after a migration).
#[inline]
pub fn active() -> bool {
    crate::sys::quirks::ANY_SOURCE_LOST_WITH_SPAWNED && crate::core::moves::happened()
}

/// Whether starting this persistent receive must make a matched-probe
/// request in its place (this module: MPICH, `MPI_ANY_SOURCE`,
/// after a migration).
pub fn needs_standin(i: usize) -> bool {
    // (MPI_Start's path: the flag first, the table only after a migration
    // on MPICH)
    active()
        && crate::core::handles::with_tables(|t| {
            t.requests.get(i).is_some_and(|s| {
                s.kind == crate::core::handles::ReqKind::PersistentRecv
                    && s.p2p.is_some_and(|a| {
                        matches!(
                            a.op,
                            crate::core::handles::P2pOp::Recv_init
                                | crate::core::handles::P2pOp::Recv_init_c
                        )
                    })
                    && needed(s.peer)
            })
        })
}

/// Whether a receive from `source` must be a matched-probe request here
/// (MPICH, `MPI_ANY_SOURCE`, after a migration).
#[inline]
pub fn needed(source: c_int) -> bool {
    source == crate::sys::constants::MPI_ANY_SOURCE() && active()
}

/// `MPI_Irecv`, or the matched-probe request above when it must be.
///
/// # Safety
/// As `MPI_Irecv`.
pub unsafe fn irecv(
    buf: *mut c_void,
    count: c_int,
    datatype: MPI_Datatype,
    source: c_int,
    tag: c_int,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    #[cfg(ferry_mpi = "mpich")]
    if needed(source) {
        // SAFETY: contract of the function.
        return unsafe {
            mpich::deferred(buf, mpich::Count::Int(count), datatype, tag, comm, request)
        };
    }
    // SAFETY: contract of the function.
    unsafe { PMPI_Irecv(buf, count, datatype, source, tag, comm, request) }
}

/// `MPI_Irecv_c`, or the matched-probe request above when it must be.
///
/// # Safety
/// As `MPI_Irecv_c`.
#[cfg(ferry_has = "MPI_Irecv_c")]
pub unsafe fn irecv_c(
    buf: *mut c_void,
    count: MPI_Count,
    datatype: MPI_Datatype,
    source: c_int,
    tag: c_int,
    comm: MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    #[cfg(all(ferry_mpi = "mpich", ferry_has = "MPI_Mrecv_c"))]
    if needed(source) {
        // SAFETY: contract of the function.
        return unsafe {
            mpich::deferred(
                buf,
                mpich::Count::Large(count),
                datatype,
                tag,
                comm,
                request,
            )
        };
    }
    // SAFETY: contract of the function.
    unsafe { PMPI_Irecv_c(buf, count, datatype, source, tag, comm, request) }
}

#[cfg(ferry_mpi = "mpich")]
mod mpich {
    use super::*;

    /// A receive's count, as the program gave it.
    #[derive(Clone, Copy)]
    pub(super) enum Count {
        Int(c_int),
        /// The large-count form's (`MPI_Irecv_c`): received with
        /// `MPI_Mrecv_c`.
        #[cfg(ferry_has = "MPI_Mrecv_c")]
        Large(MPI_Count),
    }

    /// One receive waiting for its message.
    struct Deferred {
        buf: *mut c_void,
        count: Count,
        datatype: MPI_Datatype,
        tag: c_int,
        comm: MPI_Comm,
        request: MPI_Request,
        status: MPI_Status,
        done: bool,
        cancelled: bool,
    }

    pub(super) unsafe fn deferred(
        buf: *mut c_void,
        count: Count,
        datatype: MPI_Datatype,
        tag: c_int,
        comm: MPI_Comm,
        request: *mut MPI_Request,
    ) -> c_int {
        let d = Box::into_raw(Box::new(Deferred {
            buf,
            count,
            datatype,
            tag,
            comm,
            request: k::MPI_REQUEST_NULL(),
            // SAFETY: a plain C struct, all zero is valid.
            status: unsafe { std::mem::zeroed() },
            done: false,
            cancelled: false,
        }));
        // SAFETY: the callbacks below match MPICH's signatures; `d` lives
        // until `free` runs.
        let rc = unsafe {
            PMPIX_Grequest_start(
                Some(query),
                Some(free),
                Some(cancel),
                Some(poll),
                Some(wait),
                d as *mut c_void,
                request,
            )
        };
        if rc != k::MPI_SUCCESS() {
            // SAFETY: ours, not handed to MPI.
            drop(unsafe { Box::from_raw(d) });
            return rc;
        }
        // SAFETY: `d` is alive (freed only by `free`, after completion).
        unsafe { (*d).request = *request };
        k::MPI_SUCCESS()
    }

    /// MPI's progress asks whether the request is done: a matched probe,
    /// and the message is received.
    unsafe extern "C" fn poll(state: *mut c_void, _status: *mut MPI_Status) -> c_int {
        // SAFETY: the state given to MPIX_Grequest_start.
        let d = unsafe { &mut *(state as *mut Deferred) };
        if d.done {
            return k::MPI_SUCCESS();
        }
        let mut flag: c_int = 0;
        let mut msg = k::MPI_MESSAGE_NULL();
        // SAFETY: the program's communicator and buffer, as it posted them.
        unsafe {
            let mut st: MPI_Status = std::mem::zeroed();
            let rc = PMPI_Improbe(
                k::MPI_ANY_SOURCE(),
                d.tag,
                d.comm,
                &mut flag,
                &mut msg,
                &mut st,
            );
            if rc != k::MPI_SUCCESS() || flag == 0 {
                return rc;
            }
            let rc = match d.count {
                Count::Int(n) => PMPI_Mrecv(d.buf, n, d.datatype, &mut msg, &mut d.status),
                #[cfg(ferry_has = "MPI_Mrecv_c")]
                Count::Large(n) => PMPI_Mrecv_c(d.buf, n, d.datatype, &mut msg, &mut d.status),
            };
            d.status.MPI_ERROR = rc;
            d.done = true;
            PMPI_Grequest_complete(d.request);
        }
        k::MPI_SUCCESS()
    }

    /// MPI's wait on such requests: one round of polls (MPI calls it again
    /// while any is not done).
    unsafe extern "C" fn wait(
        count: c_int,
        states: *mut *mut c_void,
        _timeout: f64,
        status: *mut MPI_Status,
    ) -> c_int {
        for i in 0..count.max(0) as usize {
            // SAFETY: MPI's array of the states of its requests.
            let rc = unsafe { poll(*states.add(i), status) };
            if rc != k::MPI_SUCCESS() {
                return rc;
            }
        }
        k::MPI_SUCCESS()
    }

    unsafe extern "C" fn query(state: *mut c_void, status: *mut MPI_Status) -> c_int {
        // SAFETY: as in `poll`; `status` is MPI's.
        unsafe {
            let d = &*(state as *const Deferred);
            *status = d.status;
            if d.cancelled {
                PMPI_Status_set_cancelled(status, 1);
            }
        }
        k::MPI_SUCCESS()
    }

    unsafe extern "C" fn cancel(state: *mut c_void, complete: c_int) -> c_int {
        // SAFETY: as in `poll`.
        let d = unsafe { &mut *(state as *mut Deferred) };
        if complete == 0 && !d.done {
            d.done = true;
            d.cancelled = true;
            // SAFETY: our live generalized request.
            unsafe { PMPI_Grequest_complete(d.request) };
        }
        k::MPI_SUCCESS()
    }

    unsafe extern "C" fn free(state: *mut c_void) -> c_int {
        // SAFETY: the box made by `deferred`, freed once by MPI.
        drop(unsafe { Box::from_raw(state as *mut Deferred) });
        k::MPI_SUCCESS()
    }
}
