//! Sends the library owns: the send half of `MPI_Isendrecv` and
//! `MPI_Isendrecv_replace`.
//!
//! MPI 4's nonblocking send-receive is one request over two operations,
//! which a regroup could neither take off its communicator (a receive is
//! cancelled and posted again; MPI cannot cancel half of a send-receive)
//! nor a migration carry. So the library takes it apart
//! (`entry::special`): its receive is an ordinary receive of the program
//! (parked, posted again, served from the drained queue, carried by a
//! migration as any `MPI_Irecv`), and its send is a standard-mode send of
//! a packed copy of the data, counted on its channel like the program's
//! own, that the library owns and completes by itself. The program's
//! request is the receive's: MPI lets a standard send complete before it
//! is matched (the copy is a buffer), so reporting the operation complete
//! when its receive is does not change what the program may see, and its
//! send buffer is free at once.
//!
//! The copies are freed as their sends complete (looked at whenever a new
//! one is posted); a migration's or checkpoint's old process waits for
//! them after the drain ([`wait_all`]), as it does for the program's own
//! sends, and so does `MPI_Finalize`.
use crate::core::channels::{count_send, uncount_send};
use crate::core::handles::CommRef;
use crate::sys::constants as k;
use crate::sys::*;
use std::cell::UnsafeCell;
use std::ffi::{c_int, c_void};
use std::time::{Duration, Instant};

/// A send in flight and the copy it sends from.
struct Detached {
    request: MPI_Request,
    _data: Vec<u8>,
}

struct List(UnsafeCell<Vec<Detached>>);
// SAFETY: touched only from the program's MPI calls, serialized by MPI's
// threading rules below MPI_THREAD_MULTIPLE.
unsafe impl Sync for List {}
static LIST: List = List(UnsafeCell::new(Vec::new()));

/// Runs `f` with the list (scoped: no reference outlives `f`, and `f` does
/// not reach the list again).
fn with_list<R>(f: impl FnOnce(&mut Vec<Detached>) -> R) -> R {
    // SAFETY: see `List`; the reference lives for the call of `f` only.
    f(unsafe { &mut *LIST.0.get() })
}

/// Sends `data` (packed, `len` bytes of it) to `dest` with `tag` on the
/// real communicator `comm` (slot `slot`), counted on its channel; the
/// library keeps the copy until the send is done.
///
/// # Safety
/// `comm` is a live real communicator of the program; `dest` and `tag`
/// are the program's.
pub unsafe fn send(
    data: Vec<u8>,
    len: i64,
    dest: c_int,
    tag: c_int,
    comm: MPI_Comm,
    slot: CommRef,
) -> c_int {
    sweep();
    let Ok(len) = c_int::try_from(len) else {
        log::error!("a send-receive of {len} bytes is beyond what the library can send");
        return k::MPI_ERR_COUNT();
    };
    count_send(slot, dest);
    let mut request = k::MPI_REQUEST_NULL();
    // SAFETY: `data` holds `len` packed bytes and moves into the list with
    // the request, so it lives until MPI is done with it.
    let rc = unsafe {
        PMPI_Isend(
            data.as_ptr() as *const c_void,
            len,
            k::MPI_PACKED(),
            dest,
            tag,
            comm,
            &mut request,
        )
    };
    if rc != k::MPI_SUCCESS() {
        uncount_send(slot, dest);
        return rc;
    }
    with_list(|l| {
        l.push(Detached {
            request,
            _data: data,
        })
    });
    rc
}

/// Frees the copies of the sends that are done.
pub fn sweep() {
    with_list(|l| {
        l.retain_mut(|d| {
            let mut flag: c_int = 0;
            // SAFETY: a live request of the library's.
            unsafe { PMPI_Test(&mut d.request, &mut flag, k::MPI_STATUS_IGNORE()) };
            flag == 0
        })
    });
}

/// How many of the library's sends are in flight.
pub fn in_flight() -> usize {
    with_list(|l| l.len())
}

/// Waits until every send of the library's is done (in a migration's or
/// checkpoint's old process after the drain, when each has been received;
/// at `MPI_Finalize`), within `limit`.
pub fn wait_all(limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    loop {
        sweep();
        let n = in_flight();
        if n == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{n} send(s) of MPI_Isendrecv did not complete within {} s",
                limit.as_secs()
            ));
        }
        std::thread::yield_now();
    }
}

/// At `MPI_Finalize`: waits for the library's sends as a wait of the
/// program's would (a regroup asked for meanwhile runs, and the wait goes
/// on after it).
pub fn finish() {
    if in_flight() == 0 {
        return;
    }
    crate::calls::completion::wait_through_regroups(|| {
        sweep();
        (k::MPI_SUCCESS(), in_flight() == 0)
    });
}
