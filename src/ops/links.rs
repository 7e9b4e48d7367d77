//! The links of past migrations, kept in every process until the job
//! ends: the old process this one replaced (asleep until this one
//! finalizes), the communicators of each migration this process took part
//! in (released by all their members together before `MPI_Finalize`), and
//! the hosts the job's first processes left. Checkpoints and the end of
//! the job read them as much as migrations write them.
use crate::sys::constants as k;
use crate::sys::*;
use std::ffi::{c_int, c_void};
use std::sync::Mutex;

/// The tag of FINISH: a replacement that finalizes tells the process it
/// replaced (asleep until then) that it may finalize too.
pub const TAG_FINISH: c_int = 0x6674;

/// After a migration the job spans several launches of processes (Open
/// MPI: several jobs), which end independently: MPI's last writes to a
/// process that already exited must fail with EPIPE rather than kill this
/// one with SIGPIPE. Ignores SIGPIPE if this process took part in a
/// migration; returns the disposition to put back.
pub fn quiet_sigpipe() -> Option<libc::sigaction> {
    if !crate::core::moves::happened() {
        return None;
    }
    // SAFETY: plain sigaction calls on locals.
    unsafe {
        let mut ign: libc::sigaction = std::mem::zeroed();
        ign.sa_sigaction = libc::SIG_IGN;
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGPIPE, &ign, &mut old);
        Some(old)
    }
}

/// Puts back what [`quiet_sigpipe`] replaced.
pub fn restore_sigpipe(old: Option<libc::sigaction>) {
    if let Some(old) = old {
        // SAFETY: the disposition saved by `quiet_sigpipe`.
        unsafe { libc::sigaction(libc::SIGPIPE, &old, std::ptr::null_mut()) };
    }
}

/// The process this one replaced, still alive and asleep until this one
/// finalizes: (the migration's merged communicator, its rank there).
struct Link(MPI_Comm, c_int);
// SAFETY: an MPI handle used by the thread that calls MPI.
unsafe impl Send for Link {}
static PREDECESSOR: Mutex<Option<Link>> = Mutex::new(None);
/// The communicators of a migration this process took part in, kept
/// until `MPI_Finalize`: (the regroup's epoch, the intercommunicator of
/// the spawn, the merged communicator).
struct Kept(u64, MPI_Comm, MPI_Comm);
// SAFETY: MPI handles used by the thread that calls MPI.
unsafe impl Send for Kept {}
static KEPT: Mutex<Vec<Kept>> = Mutex::new(Vec::new());

pub fn keep(epoch: u64, inter: MPI_Comm, merged: MPI_Comm) {
    if let Ok(mut v) = KEPT.lock() {
        v.push(Kept(epoch, inter, merged));
    }
}

/// In a restarted process: the links of past migrations are the old job's
/// (their handles belong to an MPI that is gone).
pub fn forget_links() {
    crate::core::moves::set_replacement(false);
    forget_kept();
    crate::core::moves::set_took_part(false);
    if let Ok(mut p) = PREDECESSOR.lock() {
        *p = None;
    }
    if let Ok(mut v) = LEFT_BY_FIRST.lock() {
        v.clear();
    }
}

/// Sets the process this one replaced (`None`: it left the job).
pub fn set_predecessor(link: Option<(MPI_Comm, c_int)>) {
    if let Ok(mut p) = PREDECESSOR.lock() {
        *p = link.map(|(comm, rank)| Link(comm, rank));
    }
}

/// Forgets the kept communicators (a restored image's are its old
/// process's, of another MPI).
pub fn forget_kept() {
    if let Ok(mut v) = KEPT.lock() {
        std::mem::forget(std::mem::take(&mut *v));
    }
}

/// Whether one of the job's first processes left `host`.
pub fn left_by_first(host: &str) -> bool {
    LEFT_BY_FIRST
        .lock()
        .map(|v| v.iter().any(|h| h == host))
        .unwrap_or(false)
}

/// Hosts where one of the job's first processes left the job (each
/// process keeps the list: the same in all, carried by the image).
static LEFT_BY_FIRST: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Notes that one of the job's first processes left `host`.
pub fn note_left(host: &str) {
    if let Ok(mut v) = LEFT_BY_FIRST.lock() {
        if !v.iter().any(|h| h == host) {
            v.push(host.to_string());
        }
    }
}

/// Frees the migration's merged communicator and disconnects its
/// intercommunicator (spawn or bridge): after it, the old process of the
/// moved rank shares nothing with the job but the MPI's own world, and
/// may finalize. Open MPI 4.1.4 hangs in `MPI_Comm_disconnect` of the
/// merged intracommunicator, so that one is only freed
/// (docs/host-loss.md, O1).
///
/// # Safety
/// Every member of both communicators calls it once, in the same order
/// as the other collectives over them.
pub unsafe fn release_link(e: u64, mut inter: MPI_Comm, mut merged: MPI_Comm) {
    // SAFETY: contract of the function.
    unsafe {
        // A reference of ours to their error handlers, never given back,
        // where the MPI releases it once too often
        // (`quirks::SPAWN_ERRHANDLER_OVER_RELEASED`).
        if crate::sys::quirks::SPAWN_ERRHANDLER_OVER_RELEASED {
            for c in [merged, inter] {
                let mut eh = k::MPI_ERRHANDLER_NULL();
                PMPI_Comm_get_errhandler(c, &mut eh);
            }
        }
        PMPI_Comm_free(&mut merged);
        let rc = PMPI_Comm_disconnect(&mut inter);
        if rc != k::MPI_SUCCESS() {
            log::warn!("disconnecting migration {e}'s intercommunicator failed ({rc})");
        }
    }
}

/// Before `MPI_Finalize`: every migration's intercommunicator is
/// disconnected by all its members (the old processes of that moment,
/// asleep or not, and the replacement), in the order of the migrations,
/// so that no process waits on another in a different order. Open MPI
/// otherwise disconnects the replacement from its parents inside its
/// `MPI_Finalize`, writing to processes that may be gone.
pub fn disconnect_all() {
    let mut kept = KEPT
        .lock()
        .map(|mut v| std::mem::take(&mut *v))
        .unwrap_or_default();
    kept.sort_by_key(|k| k.0);
    for Kept(e, inter, merged) in kept {
        // SAFETY: communicators of this process's MPI, released once;
        // every member comes here, in the same order.
        unsafe { release_link(e, inter, merged) };
    }
}

/// A hash of this host's name (to tell whether a pid is of this host).
pub fn host_hash() -> u64 {
    xxhash_rust::xxh3::xxh3_64(ferry_common::job::hostname().as_bytes())
}

/// At `MPI_Finalize` (and in a dormant process told to finish): the
/// process this one replaced may finalize too.
pub fn finish_predecessor() {
    let link = PREDECESSOR.lock().ok().and_then(|mut p| p.take());
    if let Some(Link(comm, rank)) = link {
        let token: [u64; 2] = [std::process::id() as u64, host_hash()];
        // SAFETY: a send of two integers on the kept merged communicator to
        // the sleeping process, which receives them.
        unsafe {
            PMPI_Send(
                token.as_ptr() as *const c_void,
                2,
                k::MPI_UINT64_T(),
                rank,
                TAG_FINISH,
                comm,
            )
        };
    }
}
