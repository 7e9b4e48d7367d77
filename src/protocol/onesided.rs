//! One-sided access to the processes' state windows (the patent's lock/get
//! and put), done so that no buffer is given back before MPI is finished
//! with it.
//!
//! The standard says that `MPI_Win_flush_all` and `MPI_Win_unlock_all`
//! complete every `MPI_Get` of the epoch. Debian's MPICH 4.0.2 returns
//! from both before a get from a process that is not making progress has
//! landed (its netmod serves it with an active message): the data arrives
//! later, at the next progress, into memory the reader has since freed.
//! CI saw it as heap corruption ("malloc(): unaligned tcache chunk
//! detected") and as readings of zeros that let a regroup freeze too early
//! (a hang): `c-tests/regroup.c`, 20 regroups, where the leader reads a
//! process still finishing `MPI_Init`.
//!
//! So an [`Epoch`] moves data with request-based operations (`MPI_Rget`,
//! `MPI_Rput`) and waits for their requests, which MPICH completes only
//! when the data is there; the buffers are borrowed until then, so the
//! compiler sees to it that none is freed or read early. The one operation
//! without a request form, `MPI_Compare_and_swap`, is flushed until its
//! result has been written ([`Epoch::compare_and_swap`]).
use crate::sys::constants as k;
use crate::sys::*;
use std::ffi::{c_int, c_void};
use std::marker::PhantomData;
use std::time::{Duration, Instant};

/// What can travel through a window: a type and its MPI datatype.
pub trait Word: Copy {
    fn datatype() -> MPI_Datatype;
}

impl Word for u8 {
    fn datatype() -> MPI_Datatype {
        k::MPI_BYTE()
    }
}

impl Word for u64 {
    fn datatype() -> MPI_Datatype {
        k::MPI_UINT64_T()
    }
}

/// The lock an epoch holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Lock {
    /// `MPI_Win_lock_all`.
    All,
    /// `MPI_Win_lock` on one target.
    One(c_int),
    /// Handed over to the epoch that [`Epoch::settle`] returned.
    Passed,
}

/// A passive-target access epoch on a window. Buffers given to
/// [`get`](Epoch::get) and [`put`](Epoch::put) stay borrowed for `'b`:
/// until [`settle`](Epoch::settle) waits for them (and returns the epoch,
/// still open, for more) or the epoch is dropped (which waits, then
/// unlocks).
pub struct Epoch<'b> {
    win: MPI_Win,
    lock: Lock,
    requests: Vec<MPI_Request>,
    buffers: PhantomData<&'b mut [u8]>,
}

impl<'b> Epoch<'b> {
    /// A shared epoch on every process's window (`MPI_Win_lock_all`).
    pub fn all(win: MPI_Win, assert: c_int) -> Self {
        // SAFETY: `win` is one of the library's live windows; the epoch is
        // closed by Drop.
        unsafe { PMPI_Win_lock_all(assert, win) };
        Self::opened(win, Lock::All)
    }

    /// An epoch on `target`'s window alone, shared or exclusive.
    pub fn one(win: MPI_Win, target: c_int, exclusive: bool) -> Self {
        let kind = if exclusive {
            k::MPI_LOCK_EXCLUSIVE()
        } else {
            k::MPI_LOCK_SHARED()
        };
        // SAFETY: as in `all`.
        unsafe { PMPI_Win_lock(kind, target, 0, win) };
        Self::opened(win, Lock::One(target))
    }

    fn opened(win: MPI_Win, lock: Lock) -> Self {
        Epoch {
            win,
            lock,
            requests: Vec::new(),
            buffers: PhantomData,
        }
    }

    /// Reads `buf.len()` words at displacement `disp` (in the window's
    /// units, bytes here) of `target`'s window into `buf`.
    pub fn get<T: Word>(&mut self, target: c_int, disp: MPI_Aint, buf: &'b mut [T]) {
        if buf.is_empty() {
            return;
        }
        let mut req = k::MPI_REQUEST_NULL();
        // SAFETY: `buf` is borrowed until the request is waited for (settle
        // or Drop), so MPI writes into live memory that nobody reads
        // meanwhile; the count is the buffer's length.
        unsafe {
            PMPI_Rget(
                buf.as_mut_ptr() as *mut c_void,
                buf.len() as c_int,
                T::datatype(),
                target,
                disp,
                buf.len() as c_int,
                T::datatype(),
                self.win,
                &mut req,
            )
        };
        self.requests.push(req);
    }

    /// Writes `buf` at displacement `disp` of `target`'s window.
    pub fn put<T: Word>(&mut self, target: c_int, disp: MPI_Aint, buf: &'b [T]) {
        if buf.is_empty() {
            return;
        }
        let mut req = k::MPI_REQUEST_NULL();
        // SAFETY: `buf` is borrowed until the request is waited for, so MPI
        // reads live memory; the count is the buffer's length.
        unsafe {
            PMPI_Rput(
                buf.as_ptr() as *const c_void,
                buf.len() as c_int,
                T::datatype(),
                target,
                disp,
                buf.len() as c_int,
                T::datatype(),
                self.win,
                &mut req,
            )
        };
        self.requests.push(req);
    }

    /// Waits until every get has landed and every put's buffer is free,
    /// and returns the epoch, still open, with its buffers released.
    pub fn settle<'c>(mut self) -> Epoch<'c> {
        self.wait();
        let lock = std::mem::replace(&mut self.lock, Lock::Passed);
        Epoch::opened(self.win, lock)
    }

    fn wait(&mut self) {
        if self.requests.is_empty() {
            return;
        }
        // SAFETY: requests of this epoch's Rget/Rput, each waited once.
        unsafe {
            PMPI_Waitall(
                self.requests.len() as c_int,
                self.requests.as_mut_ptr(),
                k::MPI_STATUSES_IGNORE(),
            )
        };
        self.requests.clear();
    }

    /// Atomically replaces the word at `disp` of `target`'s window by
    /// `new` if it holds `compare`, and returns what it held (`None` if MPI
    /// refused the operation). `impossible` is a value the word never
    /// holds: the result is waited for until it differs (the epoch is
    /// flushed meanwhile), since MPICH 4.0.2 may deliver it after the
    /// flush.
    pub fn compare_and_swap(
        &mut self,
        target: c_int,
        disp: MPI_Aint,
        new: u64,
        compare: u64,
        impossible: u64,
    ) -> Option<u64> {
        let mut old = impossible;
        let result: *mut u64 = &mut old;
        // SAFETY: `new` and `compare` are read before the call returns (an
        // atomic's origin values); `result` points at `old`, which lives
        // until the loop below has seen MPI write it (or MPI refused the
        // operation and will not write it).
        let rc = unsafe {
            PMPI_Compare_and_swap(
                &new as *const u64 as *const c_void,
                &compare as *const u64 as *const c_void,
                result as *mut c_void,
                k::MPI_UINT64_T(),
                target,
                disp,
                self.win,
            )
        };
        if rc != k::MPI_SUCCESS() {
            log::warn!("MPI refused a compare-and-swap on rank {target}'s window (error {rc})");
            return None;
        }
        let since = Instant::now();
        let mut said = false;
        loop {
            // SAFETY: `old` is live (see above); MPI writes it behind the
            // compiler's back, so it is read as volatile.
            let v = unsafe {
                PMPI_Win_flush(target, self.win);
                std::ptr::read_volatile(result)
            };
            if v != impossible {
                return Some(v);
            }
            if !said && since.elapsed() > Duration::from_secs(1) {
                said = true;
                log::warn!(
                    "a compare-and-swap on rank {target}'s window has not completed after 1 s \
                     (waiting for it: MPI still has to write its result)"
                );
            }
        }
    }
}

impl Drop for Epoch<'_> {
    fn drop(&mut self) {
        self.wait();
        // SAFETY: the lock this epoch took, released once.
        unsafe {
            match self.lock {
                Lock::All => {
                    PMPI_Win_unlock_all(self.win);
                }
                Lock::One(target) => {
                    PMPI_Win_unlock(target, self.win);
                }
                Lock::Passed => {}
            }
        }
    }
}
