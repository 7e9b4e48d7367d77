//! The C API (`include/ferry.h`): what a program can ask of the library
//! itself. Every entry point catches panics and answers with a code.
use crate::regroup;
use std::ffi::{c_int, c_long};
use std::panic::catch_unwind;

/// `FERRY_OK`.
pub const FERRY_OK: c_int = 0;
/// `FERRY_ENOTREADY`: before `MPI_Init`, or the state window is missing.
pub const FERRY_ENOTREADY: c_int = -2;
/// `FERRY_EFINISHED`: `MPI_Finalize` has begun.
pub const FERRY_EFINISHED: c_int = -3;

/// Asks for a regroup started by this rank (asynchronous).
#[no_mangle]
pub extern "C" fn ferry_request_regroup() -> c_int {
    catch_unwind(|| {
        if regroup::closed() {
            return FERRY_EFINISHED;
        }
        if !regroup::ready() {
            return FERRY_ENOTREADY;
        }
        log::info!("regroup asked for by the program (ferry_regroup)");
        regroup::request();
        FERRY_OK
    })
    .unwrap_or(FERRY_ENOTREADY)
}

/// Regroups this process went through.
#[no_mangle]
pub extern "C" fn ferry_regroup_count() -> c_long {
    catch_unwind(|| regroup::completed() as c_long).unwrap_or(0)
}
