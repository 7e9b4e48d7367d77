//! A request that is already complete: an MPI generalized request whose
//! query reports a status the library made. The library serves some
//! receives itself (drained messages, receives a migration carried) and
//! hands the program such a request, which every completion call of MPI
//! then reports as it would any other.
use crate::sys::constants as k;
use crate::sys::*;
use std::ffi::{c_int, c_void};

/// A request that is already complete and reports `status`.
///
/// # Safety
/// `req` must be writable.
pub unsafe fn completed_request(status: MPI_Status, req: *mut MPI_Request) -> c_int {
    let extra = Box::into_raw(Box::new(status)) as *mut c_void;
    // SAFETY: the callbacks below match MPI's generalized request interface.
    unsafe {
        let rc = PMPI_Grequest_start(Some(query), Some(free), Some(cancel), extra, req);
        if rc != k::MPI_SUCCESS() {
            drop(Box::from_raw(extra as *mut MPI_Status));
            return rc;
        }
        PMPI_Grequest_complete(*req)
    }
}

unsafe extern "C" fn query(extra: *mut c_void, status: *mut MPI_Status) -> c_int {
    // SAFETY: `extra` is the boxed status given to MPI_Grequest_start.
    unsafe { *status = *(extra as *const MPI_Status) };
    k::MPI_SUCCESS()
}

unsafe extern "C" fn free(extra: *mut c_void) -> c_int {
    // SAFETY: made by Box::into_raw in `completed_request`, freed once.
    drop(unsafe { Box::from_raw(extra as *mut MPI_Status) });
    k::MPI_SUCCESS()
}

unsafe extern "C" fn cancel(_extra: *mut c_void, _complete: c_int) -> c_int {
    k::MPI_SUCCESS()
}
