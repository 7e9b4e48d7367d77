//! The boundary between the program and the library: every exported
//! function runs its body through [`guard`], which counts the call for the
//! protocol and catches any panic of ours, so that a bug in ferry is
//! reported and survived (the call returns `MPI_ERR_INTERN`) instead of
//! aborting the user's job.
use crate::core::state::state;
use crate::sys::constants::MPI_ERR_INTERN;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};

/// Panics caught so far (reported once each, counted always).
static PANICS: AtomicU64 = AtomicU64::new(0);

/// Runs one wrapper body: counts the call (and lets the protocol in, see
/// `control::after_tick`), then runs the body as [`guard_uncounted`].
#[inline(always)]
pub fn guard<R>(name: &'static str, fallback: R, body: impl FnOnce() -> R) -> R {
    // MPICH's own Fortran function of a forwarding entry point, which
    // counted the call, calling a C wrapper.
    #[cfg(ferry_mpi = "mpich")]
    if crate::entry::wrappers::fortran_support::forwarding() {
        return guard_uncounted(name, fallback, body);
    }
    guard_uncounted(name, fallback, || {
        let calls = state().tick();
        crate::protocol::control::after_tick(calls);
        body()
    })
}

/// Runs the body of an entry point that is not itself an MPI call of the
/// program's count: a Fortran entry point, whose body calls the C wrapper
/// that counts (so each call is counted once). Panics are caught alike.
#[inline(always)]
pub fn guard_uncounted<R>(name: &'static str, fallback: R, body: impl FnOnce() -> R) -> R {
    let counted = crate::mem::enter_mpi();
    let r = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(r) => r,
        Err(payload) => {
            report(name, payload);
            fallback
        }
    };
    crate::mem::leave_mpi(counted);
    r
}

#[cold]
fn report(name: &str, payload: Box<dyn std::any::Any + Send>) {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string());
    let n = PANICS.fetch_add(1, Ordering::Relaxed) + 1;
    log::error!("internal error in {name} (#{n}): {what}; the call returns MPI_ERR_INTERN");
}

/// The error code a wrapper returns when ferry itself failed.
#[inline(always)]
pub fn internal_error() -> i32 {
    MPI_ERR_INTERN()
}

/// Panics caught at the boundary since the start.
pub fn panics() -> u64 {
    PANICS.load(Ordering::Relaxed)
}
