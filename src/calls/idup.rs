//! `MPI_Comm_idup`'s pending communicators: where MPI writes the
//! communicator of each pending duplicate, by request slot, until the
//! request completes (in a wait or test, or in a regroup's pending work).
//! The wrapper that starts one is `entry::special`'s.
use crate::core::handles::{self, with_tables, Raw};
use crate::sys::*;
use std::collections::HashMap;
use std::sync::Mutex;

/// Where MPI writes the communicators of pending `MPI_Comm_idup`s, by
/// request slot: a heap cell that stays put until the request completes.
pub(crate) static IDUP_CELLS: Mutex<Option<HashMap<usize, Box<Raw<MPI_Comm>>>>> = Mutex::new(None);

/// The request of an `MPI_Comm_idup` completed: its communicator is ready.
pub fn idup_completed(request_slot: usize) {
    let cell = IDUP_CELLS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_mut()
        .and_then(|m| m.remove(&request_slot));
    let Some(cell) = cell else { return };
    let Some(comm) = handles::with_request(request_slot, |s| s.comm) else {
        return;
    };
    with_tables(|t| {
        if let Some(s) = comm.index().and_then(|i| t.comms.get_mut(i)) {
            s.real = cell.0;
        }
    });
}
