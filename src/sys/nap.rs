//! Napping waits: the library's own waits (its collectives over the
//! control communicator, the steps of a migration) poll and then sleep,
//! leaving the cores to the processes that work, where MPI's blocking
//! waits would spin.
use super::constants as k;
use super::*;
use std::ffi::c_int;

/// The longest nap of the protocol's short waits (see [`wait_napping`]).
pub(crate) const SHORT_NAP: std::time::Duration = std::time::Duration::from_micros(200);
/// The longest nap of its long waits.
pub(crate) const LONG_NAP: std::time::Duration = std::time::Duration::from_millis(1);

/// Waits for `req`, polling, and after the first few polls sleeping
/// between them, naps doubling up to `longest`: the processes that wait
/// leave the cores to those that work (MPI's blocking waits spin). Through
/// a migration's long steps (the replacement starts, the image crosses)
/// naps grow to [`LONG_NAP`]; in the synchronization's and the drain's
/// short ones to [`SHORT_NAP`], where a long nap would be most of the step.
pub(crate) unsafe fn wait_napping(req: &mut MPI_Request, longest: std::time::Duration) -> c_int {
    let mut polls = 0u32;
    let mut nap = std::time::Duration::from_micros(20).min(longest);
    loop {
        let mut flag: c_int = 0;
        // SAFETY: a live request of this process.
        let rc = unsafe { PMPI_Test(req, &mut flag, k::MPI_STATUS_IGNORE()) };
        if rc != k::MPI_SUCCESS() || flag != 0 {
            return rc;
        }
        polls += 1;
        if polls < 64 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(nap);
            nap = (nap * 2).min(longest);
        }
    }
}

/// One of the library's own collectives, waited for asleep where that is
/// safe: `napping!(longest, PMPI_Ibarrier, PMPI_Barrier, comm)` starts the
/// nonblocking form with the arguments given plus a request and waits for
/// it as [`wait_napping`] (naps of at most `longest`) when
/// [`NONBLOCKING_COLLECTIVES`](super::quirks::NONBLOCKING_COLLECTIVES), and calls the blocking form otherwise.
/// Every member of the communicator runs the same expansion, so the two
/// forms never meet (a nonblocking collective matches no blocking one).
/// Evaluates to MPI's return code. Must be used inside an `unsafe` block
/// whose contract covers both calls.
macro_rules! napping {
    ($longest:expr, $nonblocking:ident, $blocking:ident, $($arg:expr),+ $(,)?) => {
        if $crate::sys::quirks::NONBLOCKING_COLLECTIVES {
            let mut req = $crate::sys::constants::MPI_REQUEST_NULL();
            let rc = $nonblocking($($arg),+, &mut req);
            if rc == $crate::sys::constants::MPI_SUCCESS() {
                $crate::sys::nap::wait_napping(&mut req, $longest)
            } else {
                rc
            }
        } else {
            $blocking($($arg),+)
        }
    };
}
pub(crate) use napping;

/// A barrier over `comm`, waited for asleep with naps of at most
/// `longest` (see [`napping`]; every member must use this one).
///
/// # Safety
/// Collective over `comm`, a live communicator of this process.
pub(crate) unsafe fn barrier_napping(comm: MPI_Comm, longest: std::time::Duration) {
    // SAFETY: contract of the function.
    unsafe { napping!(longest, PMPI_Ibarrier, PMPI_Barrier, comm) };
}

/// Pauses in a wait loop: a few yields, then short sleeps, so that a
/// stopped process leaves the cores to the ones that must move (a leader
/// sleeps less: everyone waits for its readings).
#[derive(Default)]
pub struct Backoff(u32);

impl Backoff {
    pub fn pause(&mut self, leading: bool) {
        self.0 = self.0.saturating_add(1);
        if self.0 < 16 {
            std::thread::yield_now();
        } else {
            let us = if leading { 20 } else { 50 };
            std::thread::sleep(std::time::Duration::from_micros(us));
        }
    }
}
