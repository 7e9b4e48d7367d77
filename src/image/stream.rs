//! An image sent straight to the replacement process over MPI, without a
//! file: the bytes of the image file format ([`super::format`]), each piece
//! preceded by its offset and length. The receiver puts every piece where
//! the file would have it, in memory, and restores from that as from a
//! mapped file: the same checksums, identity checks and copy.
//!
//! Messages, all with [`TAG`], from the migrating process to the
//! replacement: `[offset, len]` (two `u64`) then `len` bytes, as many times
//! as there are pieces; `[END, total]` closes the image.
use super::restore::Mapped;
use crate::sys::constants as k;
use crate::sys::*;
use std::ffi::{c_int, c_void};
use std::mem::MaybeUninit;

/// The tag of the image's messages on the migration's communicator.
pub const TAG: c_int = 0x6672; // "fr"
/// The offset that closes an image.
const END: u64 = u64::MAX;
/// Largest single message (MPI counts are `int`).
const MAX_MESSAGE: usize = 1 << 30;

/// Room reserved for an image being received: everything an image may
/// hold (both arenas, the stack, and the data of the loaded objects).
pub fn reservation() -> usize {
    use super::layout::*;
    APP_HEAP_LEN + APP_STACK_LEN + LIB_HEAP_LEN + 4 * GIB
}

fn check(rc: c_int, what: &str) -> Result<(), String> {
    if rc == k::MPI_SUCCESS() {
        Ok(())
    } else {
        Err(format!("{what} failed (MPI error {rc})"))
    }
}

/// Sends the piece `b` at offset `at` of the image.
///
/// # Safety
/// `comm` is a live communicator of this process, `rank` the receiver in
/// it, which is receiving the image (see [`receive`]).
pub unsafe fn send(comm: MPI_Comm, rank: c_int, b: &[u8], at: u64) -> Result<(), String> {
    let head = [at, b.len() as u64];
    // SAFETY: contract of the function; the buffers live across the calls.
    unsafe {
        check(
            PMPI_Send(
                head.as_ptr() as *const c_void,
                2,
                k::MPI_UINT64_T(),
                rank,
                TAG,
                comm,
            ),
            "sending the image",
        )?;
        for piece in b.chunks(MAX_MESSAGE) {
            check(
                PMPI_Send(
                    piece.as_ptr() as *const c_void,
                    piece.len() as c_int,
                    k::MPI_BYTE(),
                    rank,
                    TAG,
                    comm,
                ),
                "sending the image",
            )?;
        }
    }
    Ok(())
}

/// Closes the image: `total` bytes were sent.
///
/// # Safety
/// As [`send`].
pub unsafe fn end(comm: MPI_Comm, rank: c_int, total: u64) -> Result<(), String> {
    let head = [END, total];
    // SAFETY: contract of the function.
    check(
        unsafe {
            PMPI_Send(
                head.as_ptr() as *const c_void,
                2,
                k::MPI_UINT64_T(),
                rank,
                TAG,
                comm,
            )
        },
        "closing the image",
    )
}

/// Receives an image from `source` on `comm` into memory.
///
/// # Safety
/// `comm` is a live communicator of this process and `source` the process
/// that sends the image with [`send`] and [`end`].
pub unsafe fn receive(comm: MPI_Comm, source: c_int) -> Result<Mapped, String> {
    let mut map = Mapped::reserve(reservation())?;
    loop {
        let mut head = [0u64; 2];
        let mut st = MaybeUninit::<MPI_Status>::uninit();
        // SAFETY: contract of the function; a local buffer of two u64s.
        check(
            unsafe {
                PMPI_Recv(
                    head.as_mut_ptr() as *mut c_void,
                    2,
                    k::MPI_UINT64_T(),
                    source,
                    TAG,
                    comm,
                    st.as_mut_ptr(),
                )
            },
            "receiving the image",
        )?;
        let [at, len] = head;
        if at == END {
            if !map.complete(len) {
                return Err(format!("the image announced {len} bytes, more than fit"));
            }
            return Ok(map);
        }
        let Some(dst) = map.piece(at, len) else {
            return Err(format!(
                "a piece of the image ({len} bytes at {at}) lies outside the room for it"
            ));
        };
        let mut done = 0usize;
        while done < len as usize {
            let n = (len as usize - done).min(MAX_MESSAGE);
            // SAFETY: `dst..dst+len` is inside the reservation (checked by
            // `piece`); the sender sends exactly these pieces.
            check(
                unsafe {
                    PMPI_Recv(
                        dst.add(done) as *mut c_void,
                        n as c_int,
                        k::MPI_BYTE(),
                        source,
                        TAG,
                        comm,
                        st.as_mut_ptr(),
                    )
                },
                "receiving the image",
            )?;
            done += n;
        }
    }
}
