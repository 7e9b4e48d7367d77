//! The boundary between the program and the library: every exported
//! function runs its body through [`guard`], which counts the call for the
//! protocol and catches any panic of ours, so that a bug in ferry is
//! reported and survived (the call returns `MPI_ERR_INTERN`) instead of
//! aborting the user's job.
use crate::core::state::state;
use crate::sys::constants::MPI_ERR_INTERN;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};

thread_local! {
    /// Whether this thread is inside a forwarding entry point.
    static FORWARDING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Forwarding entry points running now, in any thread: while there is
/// none (nearly always), [`forwarding`] answers without the thread-local
/// look-up, which in a preloaded library is a call (`__tls_get_addr`) on
/// every MPI call's path.
static FORWARDS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Whether this thread runs the MPI's own Fortran function of a forwarding
/// entry point (`entry::wrappers::fortran_support::forward`): a C wrapper
/// reached from there (MPICH's Fortran layer calls the C `MPI_*`
/// functions) does not count the call again ([`guard`]) and passes the
/// program's callbacks as they are (`special::create_keyval`).
#[cfg_attr(ferry_mpi = "openmpi", allow(dead_code))] // Open MPI's Fortran layer never calls a C wrapper
#[inline(always)]
pub fn forwarding() -> bool {
    FORWARDS.load(Ordering::Relaxed) != 0 && forwarding_here()
}

/// This thread's flag (out of line: the compiler would otherwise read it
/// ahead of the test above, on every call).
#[cold]
#[inline(never)]
fn forwarding_here() -> bool {
    FORWARDING.with(|f| f.get())
}

/// Runs the MPI's own Fortran function of a forwarding entry point, with
/// [`forwarding`] true in this thread meanwhile.
pub fn while_forwarding<R>(body: impl FnOnce() -> R) -> R {
    // (This thread's own calls see the count it raised.)
    FORWARDS.fetch_add(1, Ordering::Relaxed);
    let was = FORWARDING.with(|f| f.replace(true));
    let r = body();
    FORWARDING.with(|f| f.set(was));
    FORWARDS.fetch_sub(1, Ordering::Relaxed);
    r
}

/// Panics caught so far (reported once each, counted always).
static PANICS: AtomicU64 = AtomicU64::new(0);

/// Runs one wrapper body: counts the call (and lets the protocol in when
/// the count reached its next work: `Upcalls::scheduled`), then runs the body as [`guard_uncounted`].
#[inline(always)]
pub fn guard<R>(name: &'static str, fallback: R, body: impl FnOnce() -> R) -> R {
    // MPICH's own Fortran function of a forwarding entry point, which
    // counted the call, calling a C wrapper.
    #[cfg(ferry_mpi = "mpich")]
    if forwarding() {
        return guard_uncounted(name, fallback, body);
    }
    guard_uncounted(name, fallback, || {
        let calls = state().tick();
        // The work scheduled at a call count, a queued request or a
        // pending command (both put `next_event` to 0).
        if calls >= state().next_event.load(Ordering::Relaxed) {
            crate::core::upcalls::upcalls().scheduled(calls);
        }
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
