//! The library's own collectives (over its control communicator, a
//! migration's communicators: never the program's), typed: words (`u64`)
//! and bytes in, vectors out, MPI's return code kept where the caller acts
//! on it. One place for what every protocol step used to write out by hand
//! (buffers, counts, displacements, datatypes), and for how each is waited
//! for: [`Wait::Blocking`], or [`Wait::Napping`] (the nonblocking form
//! waited for asleep where the MPI allows it, see [`super::nap::napping`]).
//!
//! Every function is collective: each member of the communicator calls it,
//! in the same order as every other collective over it, with the same
//! shape (the same number of words where it says so, the same root and
//! wait). That is each function's safety contract.
use super::constants as k;
use super::nap::napping;
use super::*;
use std::ffi::{c_int, c_void};
use std::time::Duration;

/// How a collective is waited for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// MPI's blocking call.
    Blocking,
    /// Its nonblocking form, waited for with naps of at most the duration
    /// (where [`super::quirks::NONBLOCKING_COLLECTIVES`]; blocking
    /// otherwise). Every member must use the same.
    Napping(Duration),
}

/// A reduction's operation, on unsigned words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Sum,
    Max,
    BitOr,
}

impl Op {
    fn mpi(self) -> MPI_Op {
        match self {
            Op::Sum => k::MPI_SUM(),
            Op::Max => k::MPI_MAX(),
            Op::BitOr => k::MPI_BOR(),
        }
    }
}

/// Where a buffer of `v` starts, for MPI: never the dangling address of
/// an empty slice, which can equal a sentinel of the MPI's (Open MPI's
/// `MPI_IN_PLACE` is `(void *) 1`, the address of every empty `[u8]`, and
/// its collectives refuse it as a send buffer: `MPI_ERR_ARG`).
fn send_ptr<T>(v: &[T]) -> *const c_void {
    static NOTHING: u64 = 0;
    if v.is_empty() {
        &NOTHING as *const u64 as *const c_void
    } else {
        v.as_ptr() as *const c_void
    }
}

/// As [`send_ptr`], for a buffer MPI writes into (nothing is written into
/// an empty one: a local word stands for it).
fn recv_ptr<T>(v: &mut [T], spare: &mut u64) -> *mut c_void {
    if v.is_empty() {
        spare as *mut u64 as *mut c_void
    } else {
        v.as_mut_ptr() as *mut c_void
    }
}

/// `rc` as a result.
fn ok(rc: c_int) -> Result<(), c_int> {
    if rc == k::MPI_SUCCESS() {
        Ok(())
    } else {
        Err(rc)
    }
}

/// `mine` reduced with `op` across the members, to every member (over an
/// intercommunicator: the remote group's reduction).
///
/// # Safety
/// Collective over `comm` (module comment); every member gives as many
/// words.
pub unsafe fn allreduce(
    comm: MPI_Comm,
    mine: &[u64],
    op: Op,
    wait: Wait,
) -> Result<Vec<u64>, c_int> {
    let mut out = vec![0u64; mine.len()];
    if mine.is_empty() {
        return Ok(out);
    }
    let n = mine.len() as c_int;
    let (send, recv) = (
        mine.as_ptr() as *const c_void,
        out.as_mut_ptr() as *mut c_void,
    );
    // SAFETY: both buffers hold `n` words and outlive the call (a
    // nonblocking one is waited for before returning); contract of the
    // function for the rest.
    let rc = unsafe {
        match wait {
            Wait::Blocking => PMPI_Allreduce(send, recv, n, k::MPI_UINT64_T(), op.mpi(), comm),
            Wait::Napping(longest) => napping!(
                longest,
                PMPI_Iallreduce,
                PMPI_Allreduce,
                send,
                recv,
                n,
                k::MPI_UINT64_T(),
                op.mpi(),
                comm,
            ),
        }
    };
    ok(rc).map(|()| out)
}

/// Whether any member says yes. A failed reduction counts as yes: nobody
/// can tell what the others said.
///
/// # Safety
/// Collective over `comm` (module comment).
pub unsafe fn any(comm: MPI_Comm, mine: bool, wait: Wait) -> bool {
    // SAFETY: contract of the function.
    match unsafe { allreduce(comm, &[mine as u64], Op::Max, wait) } {
        Ok(v) => v[0] != 0,
        Err(_) => true,
    }
}

/// `mine` reduced with `op` at `root` (the others get zeros).
///
/// # Safety
/// Collective over `comm` (module comment); every member gives as many
/// words.
pub unsafe fn reduce(comm: MPI_Comm, mine: &[u64], op: Op, root: c_int) -> Vec<u64> {
    let mut out = vec![0u64; mine.len()];
    if !mine.is_empty() {
        // SAFETY: both buffers hold `mine.len()` words and outlive the
        // call; contract of the function for the rest.
        unsafe {
            PMPI_Reduce(
                mine.as_ptr() as *const c_void,
                out.as_mut_ptr() as *mut c_void,
                mine.len() as c_int,
                k::MPI_UINT64_T(),
                op.mpi(),
                root,
                comm,
            )
        };
    }
    out
}

/// `root`'s words, into every member's `buf`.
///
/// # Safety
/// Collective over `comm` (module comment); every member's `buf` has the
/// same length.
pub unsafe fn bcast(comm: MPI_Comm, buf: &mut [u64], root: c_int) -> Result<(), c_int> {
    if buf.is_empty() {
        return Ok(());
    }
    // SAFETY: the buffer holds its length in words; contract of the
    // function for the rest.
    ok(unsafe {
        PMPI_Bcast(
            buf.as_mut_ptr() as *mut c_void,
            buf.len() as c_int,
            k::MPI_UINT64_T(),
            root,
            comm,
        )
    })
}

/// `root`'s bytes, into every member's `buf`.
///
/// # Safety
/// As [`bcast`].
pub unsafe fn bcast_bytes(comm: MPI_Comm, buf: &mut [u8], root: c_int) -> Result<(), c_int> {
    if buf.is_empty() {
        return Ok(());
    }
    // SAFETY: as `bcast`.
    ok(unsafe {
        PMPI_Bcast(
            buf.as_mut_ptr() as *mut c_void,
            buf.len() as c_int,
            k::MPI_BYTE(),
            root,
            comm,
        )
    })
}

/// One word from each member, to every member, in rank order.
///
/// # Safety
/// Collective over `comm` (module comment).
pub unsafe fn allgather(comm: MPI_Comm, mine: u64) -> Result<Vec<u64>, c_int> {
    let mut size: c_int = 0;
    // SAFETY: a live communicator (contract of the function).
    unsafe { PMPI_Comm_size(comm, &mut size) };
    let mut all = vec![0u64; size.max(0) as usize];
    // SAFETY: one word from each of `size` members into a buffer of as
    // many; contract of the function for the rest.
    ok(unsafe {
        PMPI_Allgather(
            &mine as *const u64 as *const c_void,
            1,
            k::MPI_UINT64_T(),
            all.as_mut_ptr() as *mut c_void,
            1,
            k::MPI_UINT64_T(),
            comm,
        )
    })
    .map(|()| all)
}

/// Start of each piece in a buffer of the pieces of `counts`, one after
/// the other.
fn displacements(counts: &[c_int]) -> Vec<c_int> {
    counts
        .iter()
        .scan(0, |at, &c| {
            let d = *at;
            *at += c;
            Some(d)
        })
        .collect()
}

/// Cuts `all` into the pieces of `counts`.
fn pieces<T: Copy>(all: &[T], counts: &[c_int]) -> Vec<Vec<T>> {
    let mut at = 0usize;
    counts
        .iter()
        .map(|&c| {
            let c = c.max(0) as usize;
            let p = all[at..at + c].to_vec();
            at += c;
            p
        })
        .collect()
}

/// Each member's words (any number), to every member: one piece per
/// member, in rank order.
///
/// # Safety
/// Collective over `comm` (module comment).
pub unsafe fn allgatherv(comm: MPI_Comm, mine: &[u64]) -> Result<Vec<Vec<u64>>, c_int> {
    let n = mine.len() as c_int;
    let mut size: c_int = 0;
    // SAFETY: a live communicator (contract of the function).
    unsafe { PMPI_Comm_size(comm, &mut size) };
    let mut counts = vec![0 as c_int; size.max(0) as usize];
    // SAFETY: one count from each member into a buffer of `size`; then the
    // words, into a buffer sized and cut from those counts.
    unsafe {
        ok(PMPI_Allgather(
            &n as *const c_int as *const c_void,
            1,
            k::MPI_INT(),
            counts.as_mut_ptr() as *mut c_void,
            1,
            k::MPI_INT(),
            comm,
        ))?;
        let displs = displacements(&counts);
        let mut all = vec![0u64; counts.iter().map(|&c| c.max(0) as usize).sum()];
        let mut spare = 0u64;
        ok(PMPI_Allgatherv(
            send_ptr(mine),
            n,
            k::MPI_UINT64_T(),
            recv_ptr(&mut all, &mut spare),
            counts.as_ptr(),
            displs.as_ptr(),
            k::MPI_UINT64_T(),
            comm,
        ))?;
        Ok(pieces(&all, &counts))
    }
}

/// Each member's bytes (any number), gathered at `root`: one piece per
/// member, in rank order (empty elsewhere).
///
/// # Safety
/// Collective over `comm` (module comment).
pub unsafe fn gatherv_bytes(
    comm: MPI_Comm,
    mine: &[u8],
    root: c_int,
) -> Result<Vec<Vec<u8>>, c_int> {
    let n = mine.len() as c_int;
    let (mut size, mut me): (c_int, c_int) = (0, 0);
    // SAFETY: a live communicator (contract of the function).
    unsafe {
        PMPI_Comm_size(comm, &mut size);
        PMPI_Comm_rank(comm, &mut me);
    }
    let at_root = me == root;
    let mut counts = vec![0 as c_int; if at_root { size.max(0) as usize } else { 0 }];
    let (mut spare_counts, mut spare_bytes) = (0u64, 0u64);
    // SAFETY: one count from each member into a buffer of `size` at the
    // root; then the bytes, into a buffer sized and cut from those counts
    // (the receive arguments are significant at the root only).
    unsafe {
        ok(PMPI_Gather(
            &n as *const c_int as *const c_void,
            1,
            k::MPI_INT(),
            recv_ptr(&mut counts, &mut spare_counts),
            1,
            k::MPI_INT(),
            root,
            comm,
        ))?;
        let displs = displacements(&counts);
        let mut all = vec![0u8; counts.iter().map(|&c| c.max(0) as usize).sum()];
        ok(PMPI_Gatherv(
            send_ptr(mine),
            n,
            k::MPI_BYTE(),
            recv_ptr(&mut all, &mut spare_bytes),
            send_ptr(&counts) as *const c_int,
            send_ptr(&displs) as *const c_int,
            k::MPI_BYTE(),
            root,
            comm,
        ))?;
        Ok(pieces(&all, &counts))
    }
}

/// Personalized exchange: `out[r]` to member r; returns what each member
/// sent to this one, in rank order.
///
/// # Safety
/// Collective over `comm` (module comment); `out` has one piece per
/// member.
pub unsafe fn alltoallv(
    comm: MPI_Comm,
    out: &[Vec<u64>],
    wait: Wait,
) -> Result<Vec<Vec<u64>>, c_int> {
    let n = out.len();
    let send_counts: Vec<c_int> = out.iter().map(|v| v.len() as c_int).collect();
    let mut recv_counts = vec![0 as c_int; n];
    let longest = match wait {
        Wait::Napping(d) => Some(d),
        Wait::Blocking => None,
    };
    // SAFETY: `n` counts each way (contract of the function: `n` is the
    // communicator's size); then the words, described by the counts and
    // displacements of both buffers.
    unsafe {
        let (sc, rc) = (
            send_counts.as_ptr() as *const c_void,
            recv_counts.as_mut_ptr() as *mut c_void,
        );
        ok(match longest {
            Some(l) => napping!(
                l,
                PMPI_Ialltoall,
                PMPI_Alltoall,
                sc,
                1,
                k::MPI_INT(),
                rc,
                1,
                k::MPI_INT(),
                comm,
            ),
            None => PMPI_Alltoall(sc, 1, k::MPI_INT(), rc, 1, k::MPI_INT(), comm),
        })?;
        let sdispls = displacements(&send_counts);
        let rdispls = displacements(&recv_counts);
        let flat: Vec<u64> = out.concat();
        let mut incoming = vec![0u64; recv_counts.iter().map(|&c| c.max(0) as usize).sum()];
        let mut spare = 0u64;
        let (s, r) = (send_ptr(&flat), recv_ptr(&mut incoming, &mut spare));
        ok(match longest {
            Some(l) => napping!(
                l,
                PMPI_Ialltoallv,
                PMPI_Alltoallv,
                s,
                send_counts.as_ptr(),
                sdispls.as_ptr(),
                k::MPI_UINT64_T(),
                r,
                recv_counts.as_ptr(),
                rdispls.as_ptr(),
                k::MPI_UINT64_T(),
                comm,
            ),
            None => PMPI_Alltoallv(
                s,
                send_counts.as_ptr(),
                sdispls.as_ptr(),
                k::MPI_UINT64_T(),
                r,
                recv_counts.as_ptr(),
                rdispls.as_ptr(),
                k::MPI_UINT64_T(),
                comm,
            ),
        })?;
        Ok(pieces(&incoming, &recv_counts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_follow_their_counts() {
        let counts = [2, 0, 3, 1];
        assert_eq!(displacements(&counts), vec![0, 2, 2, 5]);
        let all = [1u64, 2, 3, 4, 5, 6];
        assert_eq!(
            pieces(&all, &counts),
            vec![vec![1, 2], vec![], vec![3, 4, 5], vec![6]]
        );
        assert!(pieces::<u64>(&[], &[]).is_empty());
    }
}
