//! The buffer the program attached for buffered sends, given back to MPI
//! in a new process and taken back from a leaving one.
use crate::sys::constants as k;
use crate::sys::*;
use std::ffi::{c_int, c_void};
use std::sync::Mutex;

/// The buffer the program attached for buffered sends (address, size, and
/// whether it came through the large-count call), in the library's memory
/// so that an image carries it: a replacement or a restarted process
/// attaches it to its own MPI again ([`reattach_buffer`]).
pub(crate) static BSEND_BUFFER: Mutex<Option<(usize, i64, bool)>> = Mutex::new(None);

pub(crate) fn bsend_buffer(v: Option<(usize, i64, bool)>) {
    if let Ok(mut b) = BSEND_BUFFER.lock() {
        *b = v;
    }
}

/// In a process that goes on from an image (a migration's replacement, a
/// restart): the program's buffer for buffered sends is attached to this
/// process's MPI, as it was to the old one's. Its messages were delivered
/// before the image was taken (the drain), so it starts empty.
#[allow(clippy::unnecessary_cast)] // MPI_Count is the MPI's type (i64 or not)
pub fn reattach_buffer() {
    let held = BSEND_BUFFER.lock().ok().and_then(|b| *b);
    let Some((addr, size, large)) = held else {
        return;
    };
    // SAFETY: the program's buffer, carried by the image at the same
    // address, attached to the old process's MPI until the image.
    let rc = unsafe {
        #[cfg(ferry_has = "MPI_Buffer_attach_c")]
        if large {
            PMPI_Buffer_attach_c(addr as *mut c_void, size as MPI_Count)
        } else {
            PMPI_Buffer_attach(addr as *mut c_void, size as c_int)
        }
        #[cfg(not(ferry_has = "MPI_Buffer_attach_c"))]
        {
            let _ = large;
            PMPI_Buffer_attach(addr as *mut c_void, size as c_int)
        }
    };
    if rc != k::MPI_SUCCESS() {
        log::warn!("cannot attach the program's buffered-send buffer again (MPI error {rc})");
    }
}

/// In the process a rank left, before the program's memory is given back:
/// the program's buffered-send buffer is detached from this process's MPI,
/// which keeps its bookkeeping of buffered messages inside that buffer and
/// reads it again at `MPI_Finalize` (MPICH over TCP crashed there on the
/// zeroed pages). Its messages were delivered before the image (the
/// drain), so the detach has nothing to wait for.
#[allow(clippy::unnecessary_cast)] // MPI_Count is the MPI's type (i64 or not)
pub fn detach_buffer_of_leaving() {
    let held = BSEND_BUFFER.lock().ok().and_then(|mut b| b.take());
    let Some((_, _, large)) = held else {
        return;
    };
    let mut addr: *mut c_void = std::ptr::null_mut();
    let out = &mut addr as *mut *mut c_void as *mut c_void;
    // SAFETY: the buffer attached to this process's MPI; `out` and the
    // size are locals that outlive the call.
    let rc = unsafe {
        #[cfg(ferry_has = "MPI_Buffer_detach_c")]
        if large {
            let mut size: MPI_Count = 0;
            PMPI_Buffer_detach_c(out, &mut size)
        } else {
            let mut size: c_int = 0;
            PMPI_Buffer_detach(out, &mut size)
        }
        #[cfg(not(ferry_has = "MPI_Buffer_detach_c"))]
        {
            let _ = large;
            let mut size: c_int = 0;
            PMPI_Buffer_detach(out, &mut size)
        }
    };
    if rc != k::MPI_SUCCESS() {
        log::warn!("cannot detach the program's buffered-send buffer (MPI error {rc})");
    }
}
