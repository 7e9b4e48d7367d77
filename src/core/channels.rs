//! Channel counters: messages sent to and received from each peer on each
//! communicator. The drain compares them to know what is still in flight.
use crate::core::handles::{with_tables, CommRef};
use std::ffi::c_int;

/// Counts a message posted to `dest` (a send, or the start of a persistent
/// send). Sends to `MPI_PROC_NULL` and to ranks out of range count nothing:
/// MPI rejects the latter itself.
#[inline(always)]
pub fn count_send(comm: CommRef, dest: c_int) {
    if let Some(i) = comm.index() {
        with_tables(|t| {
            if let Some(n) = t
                .comms
                .get_mut(i)
                .and_then(|s| s.sent.get_mut(dest as usize))
            {
                *n += 1;
            }
        });
    }
}

/// Counts a message received from `source`.
#[inline(always)]
pub fn count_receive(comm: CommRef, source: c_int) {
    if let Some(i) = comm.index() {
        with_tables(|t| {
            if let Some(n) = t
                .comms
                .get_mut(i)
                .and_then(|s| s.received.get_mut(source as usize))
            {
                *n += 1;
            }
        });
    }
}

/// Counts a receive MPI completed, from the source its status names
/// (`status_source`): nothing when the program asked for `MPI_PROC_NULL`
/// (nothing arrived, whatever source the MPI reports: Debian's MPICH 4.0.2
/// says 0) or when the status names no process (`MPI_PROC_NULL` is
/// negative in every MPI).
#[inline(always)]
pub fn count_completed(comm: CommRef, asked: c_int, status_source: c_int) {
    if asked != crate::sys::constants::MPI_PROC_NULL() && status_source >= 0 {
        count_receive(comm, status_source);
    }
}

/// Takes back the count of a send MPI refused (an error return: nothing
/// was sent).
#[cold]
pub fn uncount_send(comm: CommRef, dest: c_int) {
    if let Some(i) = comm.index() {
        with_tables(|t| {
            if let Some(n) = t
                .comms
                .get_mut(i)
                .and_then(|s| s.sent.get_mut(dest as usize))
            {
                *n = n.saturating_sub(1);
            }
        });
    }
}
