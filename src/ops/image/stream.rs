//! An image sent straight to the replacement process over MPI, without a
//! file: the bytes of the image file format ([`crate::mem::format`]), each piece
//! preceded by its offset and length. The receiver puts every piece where
//! the file would have it, in memory, and restores from that as from a
//! mapped file: the same checksums, identity checks and copy.
//!
//! Messages, all with [`TAG`], from the migrating process to the
//! replacement: `[offset, len]` (two `u64`) then `len` bytes, as many times
//! as there are pieces; `[END, total]` closes the image.
use super::mapped::Mapped;
use crate::sys::constants as k;
use crate::sys::*;
use std::ffi::{c_int, c_void};
use std::time::{Duration, Instant};

/// The tag of the image's messages on the migration's communicator.
pub const TAG: c_int = 0x6672; // "fr"
/// The offset that closes an image.
const END: u64 = u64::MAX;
/// Largest single message of the image: a piece is sent in messages of
/// at most this size, so that the transfer's timeout (no message
/// completing for that long) measures progress of a mebibyte, not of a
/// whole piece: a piece of tens of megabytes on a slow link would
/// otherwise be taken for a stalled transfer (seen with a 10 Mbit/s link
/// shared by two transfers).
const MESSAGE: usize = 1 << 20;

/// Room reserved for an image being received: everything an image may
/// hold (both arenas, the stack, and the data of the loaded objects).
pub fn reservation() -> usize {
    use crate::mem::layout::*;
    APP_HEAP_LEN + APP_STACK_LEN + LIB_HEAP_LEN + 4 * GIB
}

/// `len` bytes of fresh anonymous private memory, outside every arena
/// (so outside the carried memory), for `what`.
fn map_private(len: usize, what: &str) -> Result<*mut c_void, String> {
    // SAFETY: an anonymous private mapping of our own.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(format!(
            "cannot map room for {what}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(p)
}

/// How long a transfer may go without progress (no message of the image,
/// at most a mebibyte, completing, no answer from the other side) before it is given up:
/// `FERRY_TRANSFER_TIMEOUT_MS`, 10 s by default.
pub fn timeout() -> Duration {
    timeout_from(ferry_common::env::var("FERRY_TRANSFER_TIMEOUT_MS").as_deref())
}

/// The transfer timeout a value of `FERRY_TRANSFER_TIMEOUT_MS` gives
/// (unset, empty, zero or not a number: the default).
fn timeout_from(v: Option<&str>) -> Duration {
    let ms = v
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&ms| ms > 0)
        .unwrap_or(DEFAULT_TIMEOUT_MS);
    Duration::from_millis(ms)
}

const DEFAULT_TIMEOUT_MS: u64 = 10_000;

/// Waits for `req` until it completes or `timeout` passes without it
/// completing: polls, spinning first (a transfer's messages follow each
/// other closely), then, after [`SPIN`], with naps growing to a
/// millisecond. On a timeout
/// the request is given up (cancelled if `cancel`, then freed): the
/// caller must not reuse its buffer unless it was cancelled.
///
/// # Safety
/// `req` is a live request of this process (or null).
pub unsafe fn wait_bounded(
    req: &mut MPI_Request,
    timeout: Duration,
    cancel: bool,
) -> Result<(), Stall> {
    let since = Instant::now();
    let mut nap = Duration::from_micros(20);
    loop {
        let mut flag: c_int = 0;
        // SAFETY: contract of the function.
        let rc = unsafe { PMPI_Test(req, &mut flag, k::MPI_STATUS_IGNORE()) };
        if rc != k::MPI_SUCCESS() {
            return Err(Stall::Error(rc));
        }
        if flag != 0 {
            return Ok(());
        }
        let waited = since.elapsed();
        if waited >= timeout {
            // SAFETY: the live request, given up.
            unsafe { give_up(req, cancel) };
            return Err(Stall::Timeout(timeout));
        }
        if waited < SPIN {
            std::thread::yield_now();
        } else {
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(1));
        }
    }
}

/// A receive waited for as [`wait_bounded`] (given up: cancelled).
///
/// # Safety
/// `buf` holds `n` of `ty` and outlives the receive (given up: cancelled,
/// and MPI may still write into it).
pub unsafe fn receive_bounded(
    comm: MPI_Comm,
    buf: *mut c_void,
    n: c_int,
    ty: MPI_Datatype,
    source: c_int,
    tag: c_int,
    timeout: Duration,
) -> Result<(), Stall> {
    let mut req = k::MPI_REQUEST_NULL();
    // SAFETY: contract of the function.
    let rc = unsafe { PMPI_Irecv(buf, n, ty, source, tag, comm, &mut req) };
    if rc != k::MPI_SUCCESS() {
        return Err(Stall::Error(rc));
    }
    // SAFETY: the request just made.
    unsafe { wait_bounded(&mut req, timeout, true) }
}

/// How long a wait polls without sleeping: longer than any message of a
/// transfer that moves (napping between the pieces of a transfer slows
/// it down several times over); only a stalled one sleeps.
const SPIN: Duration = Duration::from_millis(100);

/// A request given up: cancelled (a receive's buffer is then left alone)
/// if asked, and freed (MPI completes or drops it on its own).
unsafe fn give_up(req: &mut MPI_Request, cancel: bool) {
    if *req == k::MPI_REQUEST_NULL() {
        return;
    }
    // SAFETY: a live request of this process.
    unsafe {
        if cancel {
            PMPI_Cancel(req);
        }
        PMPI_Request_free(req);
    }
}

/// Why a bounded wait ended without its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stall {
    /// MPI returned this error.
    Error(c_int),
    /// Nothing completed for this long.
    Timeout(Duration),
}

impl std::fmt::Display for Stall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stall::Error(rc) => write!(f, "MPI error {rc}"),
            Stall::Timeout(d) => write!(f, "nothing arrived for {} ms", d.as_millis()),
        }
    }
}

/// A copy of `b` in a mapping of its own (outside the carried memory):
/// its address and length, to unmap when its messages complete.
fn copy_of(b: &[u8]) -> Result<(usize, usize), String> {
    let p = map_private(b.len(), "a piece of the image")?;
    // SAFETY: `p` is `b.len()` fresh bytes; `b` is readable.
    unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), p as *mut u8, b.len()) };
    Ok((p as usize, b.len()))
}

/// Most pieces a [`Sender`] keeps in flight (then it waits for them).
const SLOTS: usize = 4096;

/// What a [`Sender`] changes while the image is written: outside every
/// memory the image carries (its own anonymous mapping), so that no
/// carried byte changes between its hashing and its send.
#[repr(C)]
struct Flight {
    /// The headers of the messages in flight (MPI reads them until their
    /// send completes).
    heads: [[u64; 2]; SLOTS],
    reqs: [MPI_Request; 2 * SLOTS],
    /// Copies of the pieces that change while the image is written (see
    /// [`Sender::send`]): address and length of each mapping.
    staged: [(usize, usize); SLOTS],
    nstaged: usize,
    /// Headers and requests in use, requests completed.
    nheads: usize,
    posted: usize,
    done: usize,
    /// The messages in flight were given up: MPI may still read the
    /// headers, so the mapping is never unmapped.
    abandoned: bool,
}

/// The image's messages to the replacement, every one posted at once
/// (nonblocking) and completed together at the end: the pieces of the
/// program's heap (frozen while the image is written: nothing of the
/// program runs and MPI allocates elsewhere) straight from memory, every
/// other piece (the stack, data and library heap, which the writer itself
/// still changes) from a copy made when it is hashed. No message is posted
/// after the last piece: on MPICH over UCX a send posted to a process that
/// died crashes the sender, while sends posted before complete. The wait
/// is bounded by [`timeout`] without progress: a replacement that died or
/// cannot be reached fails the transfer (or, on MPICH, its answer never
/// comes) instead of hanging it.
///
/// Made before the image is written: sending allocates nothing and
/// changes no memory the image carries.
pub struct Sender {
    comm: MPI_Comm,
    rank: c_int,
    timeout: Duration,
    flight: *mut Flight,
}

impl Sender {
    /// A sender of the image to `rank` of `comm`.
    pub fn new(comm: MPI_Comm, rank: c_int) -> Result<Sender, String> {
        let len = std::mem::size_of::<Flight>();
        let p = map_private(len, "the image's messages")?;
        let flight = p as *mut Flight;
        // SAFETY: fresh zeroed memory of the right size; the requests are
        // set to null (zero is not null in every MPI).
        unsafe {
            for r in (*flight).reqs.iter_mut() {
                *r = k::MPI_REQUEST_NULL();
            }
        }
        Ok(Sender {
            comm,
            rank,
            timeout: timeout(),
            flight,
        })
    }

    fn flight(&mut self) -> &mut Flight {
        // SAFETY: our mapping, alive as long as the sender; used by the
        // one thread that writes the image.
        unsafe { &mut *self.flight }
    }

    /// Sends the piece `b` at offset `at` of the image; `frozen`: its
    /// bytes do not change until [`Sender::finish`] (the send may
    /// complete later).
    ///
    /// # Safety
    /// `comm` is live and its `rank` is receiving the image ([`receive`]);
    /// `b` stays readable until the sends complete (`frozen`) or this call
    /// returns.
    pub unsafe fn send(&mut self, b: &[u8], at: u64, frozen: bool) -> Result<(), String> {
        if self.flight().abandoned {
            return Err("the image was given up".into());
        }
        let f = self.flight();
        if f.nheads == SLOTS || f.nstaged == SLOTS || f.posted + 2 > 2 * SLOTS {
            // SAFETY: our requests.
            unsafe { self.complete()? };
        }
        // A copy is listed for unmapping only once all its messages are
        // posted: a `complete` while they are being posted must not
        // unmap it (a transfer given up leaves it mapped: MPI may still
        // read it).
        let copy = if frozen || b.is_empty() {
            None
        } else {
            Some(copy_of(b)?)
        };
        let b: &[u8] = match copy {
            // SAFETY: the copy lives until the messages complete.
            Some((p, len)) => unsafe { std::slice::from_raw_parts(p as *const u8, len) },
            None => b,
        };
        let f = self.flight();
        f.heads[f.nheads] = [at, b.len() as u64];
        let head = f.heads[f.nheads].as_ptr();
        f.nheads += 1;
        // SAFETY: contract of the function; the header lives in the
        // mapping until the send completes, the piece in memory that does
        // not change (frozen) or in its copy.
        unsafe {
            self.post(head as *const c_void, 2, k::MPI_UINT64_T())?;
            for piece in b.chunks(MESSAGE) {
                if self.flight().posted == 2 * SLOTS {
                    self.complete()?;
                }
                self.post(
                    piece.as_ptr() as *const c_void,
                    piece.len() as c_int,
                    k::MPI_BYTE(),
                )?;
            }
        }
        if let Some(c) = copy {
            let f = self.flight();
            f.staged[f.nstaged] = c;
            f.nstaged += 1;
        }
        Ok(())
    }

    /// Posts one message.
    unsafe fn post(
        &mut self,
        buf: *const c_void,
        n: c_int,
        ty: MPI_Datatype,
    ) -> Result<(), String> {
        let (rank, comm) = (self.rank, self.comm);
        let f = self.flight();
        let slot = f.posted;
        // SAFETY: contract of `send`; the request slot is ours.
        let rc = unsafe { PMPI_Isend(buf, n, ty, rank, TAG, comm, &mut f.reqs[slot]) };
        if rc != k::MPI_SUCCESS() {
            // SAFETY: our requests.
            unsafe { self.abandon() };
            return Err(format!("sending the image failed (MPI error {rc})"));
        }
        f.posted += 1;
        Ok(())
    }

    /// Waits for every message in flight, bounded (see [`Sender`]).
    unsafe fn complete(&mut self) -> Result<(), String> {
        let timeout = self.timeout;
        let f = self.flight();
        while f.done < f.posted {
            let slot = f.done;
            // SAFETY: a live request of ours.
            match unsafe { wait_bounded(&mut f.reqs[slot], timeout, false) } {
                Ok(()) => f.done += 1,
                Err(e) => {
                    f.done += 1; // (given up by the wait)
                                 // SAFETY: our requests.
                    unsafe { self.abandon() };
                    return Err(format!("the replacement did not take the image ({e})"));
                }
            }
        }
        for i in 0..f.nstaged {
            let (p, len) = f.staged[i];
            // SAFETY: a copy made by `stage`, whose messages completed.
            unsafe { libc::munmap(p as *mut c_void, len) };
        }
        f.nstaged = 0;
        f.posted = 0;
        f.done = 0;
        f.nheads = 0;
        Ok(())
    }

    /// The messages still in flight are given up (freed: the memory they
    /// read stays, and so do their headers).
    unsafe fn abandon(&mut self) {
        let f = self.flight();
        for slot in f.done..f.posted {
            // SAFETY: a live request of ours (or null).
            unsafe { give_up(&mut f.reqs[slot], false) };
        }
        f.done = f.posted;
        f.abandoned = true;
    }

    /// Closes the image (`total` bytes were sent) and waits until every
    /// message is delivered.
    ///
    /// # Safety
    /// As [`Sender::send`].
    pub unsafe fn finish(&mut self, total: u64) -> Result<(), String> {
        let f = self.flight();
        if f.abandoned {
            return Err("the image was given up".into());
        }
        if f.nheads == SLOTS || f.posted + 1 > 2 * SLOTS {
            // SAFETY: our requests.
            unsafe { self.complete()? };
        }
        let f = self.flight();
        f.heads[f.nheads] = [END, total];
        let head = f.heads[f.nheads].as_ptr();
        f.nheads += 1;
        // SAFETY: the header lives in the mapping.
        unsafe {
            self.post(head as *const c_void, 2, k::MPI_UINT64_T())?;
            self.complete()
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        if self.flight().abandoned {
            return; // MPI may still read the headers
        }
        // SAFETY: our mapping, no message in flight.
        unsafe { libc::munmap(self.flight as *mut c_void, std::mem::size_of::<Flight>()) };
    }
}

/// Receives an image from `source` on `comm` into memory, each message
/// waited for at most `timeout` (a sender that died or cannot be reached
/// fails the transfer instead of hanging it).
///
/// # Safety
/// `comm` is a live communicator of this process and `source` the process
/// that sends the image with a [`Sender`].
pub unsafe fn receive(comm: MPI_Comm, source: c_int, timeout: Duration) -> Result<Mapped, String> {
    let mut map = Mapped::reserve(reservation())?;
    // One message, bounded; on a timeout the receive is cancelled (the
    // buffers here are the reservation's or leaked).
    let recv = |buf: *mut c_void, n: c_int, ty: MPI_Datatype| -> Result<(), String> {
        // SAFETY: contract of the function; `buf` holds `n` of `ty`.
        unsafe { receive_bounded(comm, buf, n, ty, source, TAG, timeout) }
            .map_err(|e| format!("receiving the image failed: {e}"))
    };
    // The header buffer outlives a receive given up (MPI may still write).
    let head: &mut [u64; 2] = Box::leak(Box::new([0u64; 2]));
    loop {
        recv(head.as_mut_ptr() as *mut c_void, 2, k::MPI_UINT64_T())?;
        let [at, len] = *head;
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
            let n = (len as usize - done).min(MESSAGE);
            // SAFETY: `dst..dst+len` is inside the reservation (checked by
            // `piece`); the sender sends exactly these pieces.
            recv(
                // SAFETY: as above.
                unsafe { dst.add(done) } as *mut c_void,
                n as c_int,
                k::MPI_BYTE(),
            )?;
            done += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_timeout_from_the_environment() {
        let default = Duration::from_millis(DEFAULT_TIMEOUT_MS);
        assert_eq!(timeout_from(None), default);
        assert_eq!(timeout_from(Some("")), default);
        assert_eq!(timeout_from(Some("0")), default);
        assert_eq!(timeout_from(Some("soon")), default);
        assert_eq!(timeout_from(Some("-5")), default);
        assert_eq!(timeout_from(Some("3000")), Duration::from_millis(3000));
        assert_eq!(timeout_from(Some(" 250 ")), Duration::from_millis(250));
    }

    #[test]
    fn stalls_say_what_happened() {
        assert_eq!(
            Stall::Timeout(Duration::from_millis(3000)).to_string(),
            "nothing arrived for 3000 ms"
        );
        assert_eq!(Stall::Error(17).to_string(), "MPI error 17");
    }
}
