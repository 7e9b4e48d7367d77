//! The program's clock (`MPI_Wtime`), which goes on across a move
//! instead of starting over with the new process's MPI.
use crate::sys::*;

/// Added to MPI's clock: MPI_Wtime must not run backwards for the program
/// when it goes on in a new process (Open MPI counts from `MPI_Init`).
/// Kept as the bits of an `f64` in the library's memory, so carried.
pub(crate) static WTIME_OFFSET: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The program's clock when its image was taken.
pub(crate) static WTIME_AT_CAPTURE: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(0);

pub(crate) fn wtime_offset() -> f64 {
    f64::from_bits(WTIME_OFFSET.load(std::sync::atomic::Ordering::Relaxed))
}

/// Before an image: the program's clock now.
pub fn wtime_captured() {
    // SAFETY: a plain query of MPI's clock.
    let now = unsafe { PMPI_Wtime() } + wtime_offset();
    WTIME_AT_CAPTURE.store(now.to_bits(), std::sync::atomic::Ordering::Relaxed);
}

/// In the new process: the program's clock goes on from where it was (or
/// later, if the new MPI's clock is already ahead).
pub fn wtime_resumed() {
    let then = f64::from_bits(WTIME_AT_CAPTURE.load(std::sync::atomic::Ordering::Relaxed));
    // SAFETY: a plain query of MPI's clock.
    let now = unsafe { PMPI_Wtime() };
    let offset = (then - now).max(0.0);
    WTIME_OFFSET.store(offset.to_bits(), std::sync::atomic::Ordering::Relaxed);
}
