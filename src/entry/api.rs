//! The C API (`include/ferry.h`): what a program can ask of the library
//! itself. Every entry point catches panics and answers with a code.
use crate::protocol::regroup;
use std::ffi::{c_int, c_long};
use std::panic::catch_unwind;

/// `FERRY_OK`.
pub const FERRY_OK: c_int = 0;
/// `FERRY_ENOTREADY`: before `MPI_Init`, or the state window is missing.
pub const FERRY_ENOTREADY: c_int = -2;
/// `FERRY_EFINISHED`: `MPI_Finalize` has begun.
pub const FERRY_EFINISHED: c_int = -3;

/// MPI calls this process made so far, as the library counts them (the K
/// of a SPEC's `after=K`). Each MPI call of the program counts once, from
/// C or Fortran; the library's own calls do not count.
#[no_mangle]
pub extern "C" fn ferry_call_count() -> c_long {
    catch_unwind(|| {
        crate::core::state::state()
            .calls
            .load(std::sync::atomic::Ordering::Relaxed) as c_long
    })
    .unwrap_or(0)
}

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

/// `FERRY_EINVAL`: an argument is wrong (a rank outside the job, a host
/// name that is not a valid name, a null callback).
pub const FERRY_EINVAL: c_int = -4;
/// `FERRY_EFULL`: no room for another callback.
pub const FERRY_EFULL: c_int = -5;

/// Asks for the migration of `rank` to `host` (null: the rank's own host).
/// Asynchronous: it starts at this process's next MPI call.
///
/// # Safety
/// `host` is null or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn ferry_request_migration(
    rank: c_int,
    host: *const std::ffi::c_char,
) -> c_int {
    let host = if host.is_null() {
        None
    } else {
        // SAFETY: contract of the function.
        Some(
            unsafe { std::ffi::CStr::from_ptr(host) }
                .to_string_lossy()
                .into_owned(),
        )
    };
    catch_unwind(move || {
        if regroup::closed() {
            return FERRY_EFINISHED;
        }
        if !regroup::ready() {
            return FERRY_ENOTREADY;
        }
        let size = crate::core::runtime::runtime()
            .map(|r| r.world_size)
            .unwrap_or(0);
        if rank < 0 || rank >= size {
            log::error!("ferry_migrate: there is no rank {rank} (the job has {size})");
            return FERRY_EINVAL;
        }
        if let Some(h) = &host {
            if let Err(e) = ferry_common::spec::check_host(h) {
                log::error!("ferry_migrate: {e}");
                return FERRY_EINVAL;
            }
        }
        log::info!("migration of rank {rank} asked for by the program (ferry_migrate)");
        crate::ops::migration::request(crate::ops::migration::Target {
            rank,
            host,
            request: None,
        });
        FERRY_OK
    })
    .unwrap_or(FERRY_ENOTREADY)
}

/// Migrations this rank has gone through.
#[no_mangle]
pub extern "C" fn ferry_migration_count() -> c_long {
    catch_unwind(|| crate::ops::migration::count() as c_long).unwrap_or(0)
}

pub use crate::ops::migration::Callback;

/// Registers `cb(arg)`, run in a process that is about to leave its rank
/// (before its image is taken: what it changes travels).
#[no_mangle]
pub extern "C" fn ferry_on_leave(cb: Option<Callback>, arg: *mut std::ffi::c_void) -> c_int {
    register(cb, arg, crate::ops::migration::Hook::Leave)
}

/// Registers `cb(arg)`, run in the replacement once the rank resumed in it.
#[no_mangle]
pub extern "C" fn ferry_on_resume(cb: Option<Callback>, arg: *mut std::ffi::c_void) -> c_int {
    register(cb, arg, crate::ops::migration::Hook::Resume)
}

fn register(
    cb: Option<Callback>,
    arg: *mut std::ffi::c_void,
    when: crate::ops::migration::Hook,
) -> c_int {
    let arg = arg as usize;
    catch_unwind(move || match cb {
        None => FERRY_EINVAL,
        Some(f) => {
            if crate::ops::migration::add_hook(when, f, arg) {
                FERRY_OK
            } else {
                FERRY_EFULL
            }
        }
    })
    .unwrap_or(FERRY_ENOTREADY)
}
