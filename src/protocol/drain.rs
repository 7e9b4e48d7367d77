//! The drain: every channel, on every communicator, emptied by its counts.
//!
//! With every process frozen, each tells every other how many messages it
//! sent it on each communicator (by global id), and each receives what is
//! missing, `sent - received`, per channel, with `MPI_Probe` + `MPI_Recv`
//! as bytes. The messages are kept with their envelope and status, in the
//! order MPI delivered them, and served first, before MPI, to later
//! receives, probes and matched probes that match them (per source, first
//! in first out, which is all MPI promises; an `MPI_ANY_SOURCE` receive
//! takes the earliest that matches).
use crate::core::channels::count_receive;
use crate::core::handles::{self, with_tables, CommRef};
use crate::sys::constants as k;
use crate::sys::nap::SHORT_NAP;
use crate::sys::*;
use std::cell::UnsafeCell;
use std::collections::HashMap;
use std::ffi::{c_int, c_void};
use std::mem::MaybeUninit;

/// A drained message.
pub struct Drained {
    /// The communicator slot (stable across the rebuild).
    pub slot: usize,
    pub source: c_int,
    pub tag: c_int,
    /// The status of the drain's receive: source, tag, count in bytes.
    pub status: MPI_Status,
    pub data: Vec<u8>,
}

struct Queue(UnsafeCell<Vec<Drained>>);
// SAFETY: touched only from the program's MPI calls, serialized by MPI's
// threading rules below MPI_THREAD_MULTIPLE.
unsafe impl Sync for Queue {}
static QUEUE: Queue = Queue(UnsafeCell::new(Vec::new()));

/// Runs `f` with the queue of drained messages (scoped: no reference
/// outlives `f`, and `f` does not reach the queue again).
fn with_queue<R>(f: impl FnOnce(&mut Vec<Drained>) -> R) -> R {
    // SAFETY: see `Queue`; the reference lives for the call of `f` only,
    // and no caller of this function calls it from inside `f`.
    f(unsafe { &mut *QUEUE.0.get() })
}

/// Whether drained messages wait to be served (the one load the hot path
/// pays: `upcalls::drained_waiting`).
#[inline(always)]
pub fn pending() -> bool {
    crate::core::upcalls::drained_waiting()
}

fn matches(d: &Drained, slot: usize, source: c_int, tag: c_int) -> bool {
    d.slot == slot
        && (source == k::MPI_ANY_SOURCE() || source == d.source)
        && (tag == k::MPI_ANY_TAG() || tag == d.tag)
}

fn find(slot: CommRef, source: c_int, tag: c_int) -> Option<usize> {
    let slot = slot.index()?;
    with_queue(|q| q.iter().position(|d| matches(d, slot, source, tag)))
}

/// Takes the first drained message a receive (slot, source, tag) matches.
pub fn take(slot: CommRef, source: c_int, tag: c_int) -> Option<Drained> {
    let i = find(slot, source, tag)?;
    let (d, left) = with_queue(|q| (q.remove(i), !q.is_empty()));
    crate::core::upcalls::set_drained_waiting(left);
    Some(d)
}

/// What a drain moved.
#[derive(Default, Debug, Clone, Copy)]
pub struct Stats {
    pub messages: u64,
    pub bytes: u64,
}

/// The channels of one communicator slot: the world rank of each peer.
fn peers_of(i: usize) -> Option<Vec<c_int>> {
    with_tables(|t| peers_in(t, i))
}

fn peers_in(t: &handles::Tables, i: usize) -> Option<Vec<c_int>> {
    let s = t.comms.get(i)?;
    if !s.is_communicator() {
        return None;
    }
    if i == 0 {
        return Some((0..s.sent.len() as c_int).collect());
    }
    let r = s.recipe.as_ref()?;
    if !r.rebuildable() {
        return None;
    }
    match &r.remote {
        Some(Some(remote)) => Some(remote.clone()),
        Some(None) => None,
        None => r.local.clone(),
    }
}

/// Drains every channel into the queue. Collective over `control`.
///
/// # Safety
/// Every process must call it, frozen, with no receive of the library or
/// of the program posted (pending receives parked).
pub unsafe fn drain_all(control: MPI_Comm) -> Stats {
    let mut size: c_int = 0;
    // SAFETY: control is live.
    unsafe { PMPI_Comm_size(control, &mut size) };
    let n = size as usize;
    // Messages matched by a probe and not yet received are the program's.
    let mut matched: HashMap<(usize, c_int), u64> = HashMap::new();
    with_tables(|t| {
        for (c, src) in t.messages.values() {
            if let Some(i) = c.index() {
                *matched.entry((i, *src)).or_insert(0) += 1;
            }
        }
    });
    // What I sent to each world rank, by communicator id.
    let mut out: Vec<Vec<u64>> = vec![Vec::new(); n];
    let mut by_gid: HashMap<u64, usize> = HashMap::new();
    with_tables(|t| {
        let slots: Vec<usize> = t.comms.iter().map(|(i, _)| i).collect();
        for i in slots {
            let gid = t.comms.get(i).map(|s| s.gid).unwrap_or(0);
            if gid == 0 {
                continue;
            }
            let Some(peers) = peers_in(t, i) else {
                continue;
            };
            by_gid.insert(gid, i);
            let Some(s) = t.comms.get(i) else {
                continue;
            };
            for (p, &w) in peers.iter().enumerate() {
                let sent = s.sent.get(p).copied().unwrap_or(0);
                if sent > 0 && (w as usize) < n {
                    out[w as usize].extend([gid, sent]);
                }
            }
        }
    });
    // Both exchanges are waited for asleep where MPI allows (see
    // `nap::napping`): on an oversubscribed node the spinning of the
    // first arrived would keep the last ones off the cores.
    // SAFETY: collective over the control communicator (contract of the
    // function), one piece per process.
    let incoming = unsafe {
        crate::sys::collective::alltoallv(
            control,
            &out,
            crate::sys::collective::Wait::Napping(SHORT_NAP),
        )
    }
    .unwrap_or_else(|_| vec![Vec::new(); n]);
    let mut stats = Stats::default();
    for w in 0..n {
        let part = incoming.get(w).map(Vec::as_slice).unwrap_or(&[]);
        for pair in part.chunks_exact(2) {
            let (gid, sent) = (pair[0], pair[1]);
            let Some(&i) = by_gid.get(&gid) else {
                // This process freed it (others still hold it: see
                // `membership::orphans`). What it received there before
                // is not known any more, and what it did not receive it
                // never will: nothing to drain here.
                log::debug!("drain: rank {w} sent on communicator {gid:#x}, freed here");
                continue;
            };
            let Some(src) = peers_of(i).and_then(|p| p.iter().position(|&x| x == w as c_int))
            else {
                continue;
            };
            let src = src as c_int;
            let received = with_tables(|t| {
                t.comms
                    .get(i)
                    .and_then(|s| s.received.get(src as usize).copied())
                    .unwrap_or(0)
            }) + matched.get(&(i, src)).copied().unwrap_or(0);
            for _ in received..sent {
                // SAFETY: slot i is live; the message is there or on its way.
                match unsafe { receive_one(i, src) } {
                    Some(bytes) => {
                        stats.messages += 1;
                        stats.bytes += bytes;
                    }
                    None => break,
                }
            }
        }
    }
    if crate::sys::breaks::on("drop-drained") && !with_queue(|q| q.is_empty()) {
        let d = with_queue(|q| q.remove(0));
        crate::sys::breaks::fired(
            "drop-drained",
            &format!(
                "dropped a drained message (tag {}, {} bytes)",
                d.tag,
                d.data.len()
            ),
        );
    }
    crate::core::upcalls::set_drained_waiting(!with_queue(|q| q.is_empty()));
    if stats.messages > 0 {
        log::debug!(
            "drained {} messages ({} bytes)",
            stats.messages,
            stats.bytes
        );
    }
    stats
}

/// Receives the next message from `src` on slot `i` into the queue.
unsafe fn receive_one(i: usize, src: c_int) -> Option<u64> {
    let comm = with_tables(|t| t.comms.get(i).map(|s| s.real))?;
    let mut st = MaybeUninit::<MPI_Status>::zeroed();
    // SAFETY: comm is live; the status is a local.
    let rc = unsafe { PMPI_Probe(src, k::MPI_ANY_TAG(), comm, st.as_mut_ptr()) };
    if rc != k::MPI_SUCCESS() {
        log::error!("drain: probe failed ({rc})");
        return None;
    }
    let mut bytes: c_int = 0;
    // SAFETY: MPI filled the status.
    unsafe { PMPI_Get_count(st.as_ptr(), k::MPI_BYTE(), &mut bytes) };
    // SAFETY: as above.
    let tag = unsafe { st.assume_init_ref().MPI_TAG };
    let mut data = vec![0u8; bytes.max(0) as usize];
    let mut status = MaybeUninit::<MPI_Status>::zeroed();
    // SAFETY: the buffer holds `bytes` bytes.
    let rc = unsafe {
        PMPI_Recv(
            data.as_mut_ptr() as *mut c_void,
            bytes,
            k::MPI_BYTE(),
            src,
            tag,
            comm,
            status.as_mut_ptr(),
        )
    };
    if rc != k::MPI_SUCCESS() {
        log::error!("drain: receive failed ({rc})");
        return None;
    }
    count_receive(CommRef(i as u32), src);
    // SAFETY: MPI filled it.
    let status = unsafe { status.assume_init() };
    with_queue(|q| {
        q.push(Drained {
            slot: i,
            source: src,
            tag,
            status,
            data,
        })
    });
    Some(bytes as u64)
}

/// The library's own communicator over this process alone, on which a
/// drained message is handed to the program's receive (made at the first
/// delivery; a restored process, whose memory holds the old process's
/// handle, makes its own: the cell remembers whose it is).
struct Delivery(UnsafeCell<Option<(u32, MPI_Comm)>>);
// SAFETY: as for `Queue`.
unsafe impl Sync for Delivery {}
static DELIVERY: Delivery = Delivery(UnsafeCell::new(None));

/// This process's delivery communicator (a duplicate of `MPI_COMM_SELF`
/// that returns its errors), made if need be.
fn delivery_comm() -> Option<MPI_Comm> {
    let pid = std::process::id();
    // SAFETY: see `Delivery`; no reference outlives this function.
    let cell = unsafe { &mut *DELIVERY.0.get() };
    if let Some((owner, comm)) = *cell {
        if owner == pid {
            return Some(comm);
        }
    }
    let mut comm = k::MPI_COMM_NULL();
    // SAFETY: MPI is initialized (a drained message exists); `comm` is a
    // local the call fills.
    let rc = unsafe { PMPI_Comm_dup(k::MPI_COMM_SELF(), &mut comm) };
    if rc != k::MPI_SUCCESS() {
        log::error!("drain: cannot make the delivery communicator ({rc})");
        return None;
    }
    // SAFETY: the communicator just made.
    unsafe { PMPI_Comm_set_errhandler(comm, k::MPI_ERRORS_RETURN()) };
    *cell = Some((pid, comm));
    Some(comm)
}

/// Copies a drained message into a receive buffer and its status, as MPI
/// would have (but for the status's error field, which is left as the
/// program had it, as a call that completes one operation does): the bytes are sent by this process to itself, on the
/// library's own communicator, and received with the program's buffer,
/// count and datatype. MPI itself so lays them out (partial elements,
/// absolute addresses at `MPI_BOTTOM`, any datatype), reports a
/// truncation as `MPI_ERR_TRUNCATE`, and fills the status so that
/// `MPI_Get_count`/`MPI_Get_elements` answer what they would have; only
/// its source and tag are the message's.
///
/// # Safety
/// `buf`, `count`, `datatype` as given to a receive; `status` writable or
/// `MPI_STATUS_IGNORE`.
pub unsafe fn deliver(
    d: &Drained,
    buf: *mut c_void,
    count: i64,
    datatype: MPI_Datatype,
    status: *mut MPI_Status,
) -> c_int {
    let Some(comm) = delivery_comm() else {
        return k::MPI_ERR_INTERN();
    };
    let mut st = MaybeUninit::<MPI_Status>::zeroed();
    // SAFETY: the data holds `len` bytes; the program's buffer, count and
    // datatype are those of its receive (contract of the function); the
    // send and the receive are both this process's, on a communicator no
    // one else uses, so they match each other and nothing else.
    let mut rc = unsafe {
        PMPI_Sendrecv(
            d.data.as_ptr() as *const c_void,
            d.data.len() as c_int,
            k::MPI_BYTE(),
            0,
            0,
            buf,
            count.clamp(0, c_int::MAX as i64) as c_int,
            datatype,
            0,
            0,
            comm,
            st.as_mut_ptr(),
        )
    };
    if rc != k::MPI_SUCCESS() {
        let mut class: c_int = 0;
        // SAFETY: an error code MPI returned.
        unsafe { PMPI_Error_class(rc, &mut class) };
        if class == k::MPI_ERR_TRUNCATE() {
            rc = k::MPI_ERR_TRUNCATE();
        } else {
            log::error!("drain: delivering a drained message failed ({rc})");
        }
    }
    if status != k::MPI_STATUS_IGNORE() && !status.is_null() {
        // SAFETY: MPI filled `st`; `status` is writable, as the program
        // passed it.
        unsafe {
            let mut st = st.assume_init();
            st.MPI_SOURCE = d.status.MPI_SOURCE;
            st.MPI_TAG = d.status.MPI_TAG;
            // A call that completes one operation leaves the error field
            // as the program had it (MPI 4.1, section 3.2.5).
            st.MPI_ERROR = (*status).MPI_ERROR;
            *status = st;
        }
    }
    rc
}

/// Delivers a drained message into a receive buffer and makes `req` a
/// request that is already complete and reports it (for nonblocking and
/// persistent receives served from the queue).
///
/// # Safety
/// As for [`deliver`]; `req` must be writable.
pub unsafe fn deliver_completed(
    d: &Drained,
    buf: *mut c_void,
    count: i64,
    datatype: MPI_Datatype,
    req: *mut MPI_Request,
) -> c_int {
    let mut st = MaybeUninit::<MPI_Status>::zeroed();
    // SAFETY: forwarded; `st` is a local that `deliver` fills; a truncation
    // is reported in its MPI_ERROR, as MPI would at completion.
    unsafe {
        let rc = deliver(d, buf, count, datatype, st.as_mut_ptr());
        let mut st = st.assume_init();
        st.MPI_ERROR = rc;
        crate::sys::grequest::completed_request(st, req)
    }
}

/// A blocking receive served from the queue, if a drained message matches.
///
/// # Safety
/// As for `MPI_Recv`.
pub unsafe fn recv(
    slot: CommRef,
    source: c_int,
    tag: c_int,
    buf: *mut c_void,
    count: i64,
    datatype: MPI_Datatype,
    status: *mut MPI_Status,
) -> Option<c_int> {
    let d = take(slot, source, tag)?;
    // SAFETY: forwarded.
    Some(unsafe { deliver(&d, buf, count, datatype, status) })
}

/// An `MPI_Irecv` served from the queue: a request that is complete.
///
/// # Safety
/// As for `MPI_Irecv`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn irecv(
    slot: CommRef,
    source: c_int,
    tag: c_int,
    buf: *mut c_void,
    count: i64,
    datatype: MPI_Datatype,
    request: *mut MPI_Request,
) -> Option<c_int> {
    if request.is_null() {
        return None;
    }
    let d = take(slot, source, tag)?;
    let mut real = k::MPI_REQUEST_NULL();
    // SAFETY: forwarded; `real` is a local.
    let rc = unsafe { deliver_completed(&d, buf, count, datatype, &mut real) };
    if rc == k::MPI_SUCCESS() {
        // Already counted by the drain: `Other`, so completion counts nothing.
        // SAFETY: checked non-null.
        unsafe {
            *request = handles::request_out(real, handles::ReqKind::Other, slot, source, tag)
        };
    }
    Some(rc)
}

/// `MPI_Iprobe`/`MPI_Probe` answered from the queue.
///
/// # Safety
/// `flag` null or writable; `status` writable or `MPI_STATUS_IGNORE`.
pub unsafe fn probe(
    slot: CommRef,
    source: c_int,
    tag: c_int,
    flag: *mut c_int,
    status: *mut MPI_Status,
) -> Option<c_int> {
    let i = find(slot, source, tag)?;
    let st = with_queue(|q| q[i].status);
    // SAFETY: as the program passed them.
    unsafe {
        if !flag.is_null() {
            *flag = 1;
        }
        if status != k::MPI_STATUS_IGNORE() && !status.is_null() {
            let error = (*status).MPI_ERROR;
            *status = st;
            (*status).MPI_ERROR = error;
        }
    }
    Some(k::MPI_SUCCESS())
}

/// Drained messages handed out by `MPI_Mprobe`/`MPI_Improbe`, by handle.
struct Matched(UnsafeCell<Vec<Option<Drained>>>);
// SAFETY: as for `Queue`.
unsafe impl Sync for Matched {}
static MATCHED: Matched = Matched(UnsafeCell::new(Vec::new()));

/// Runs `f` with the matched messages (scoped, as [`with_queue`]).
fn with_matched<R>(f: impl FnOnce(&mut Vec<Option<Drained>>) -> R) -> R {
    // SAFETY: see `Matched`; the reference lives for the call of `f` only.
    f(unsafe { &mut *MATCHED.0.get() })
}

/// `MPI_Mprobe`/`MPI_Improbe` answered from the queue: the message is
/// taken out and the program gets a message handle of ours for it.
///
/// # Safety
/// As for `MPI_Improbe`.
pub unsafe fn mprobe(
    slot: CommRef,
    source: c_int,
    tag: c_int,
    flag: *mut c_int,
    message: *mut MPI_Message,
    status: *mut MPI_Status,
) -> Option<c_int> {
    if message.is_null() {
        return None;
    }
    let d = take(slot, source, tag)?;
    let st = d.status;
    let i = with_matched(|m| {
        let i = match m.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                m.push(None);
                m.len() - 1
            }
        };
        m[i] = Some(d);
        i
    });
    // SAFETY: as the program passed them.
    unsafe {
        if status != k::MPI_STATUS_IGNORE() && !status.is_null() {
            let error = (*status).MPI_ERROR;
            *status = st;
            (*status).MPI_ERROR = error;
        }
        if !flag.is_null() {
            *flag = 1;
        }
        *message = handles::message_virtual(i);
    }
    Some(k::MPI_SUCCESS())
}

/// `MPI_Mrecv`/`MPI_Imrecv` of a message handle of ours: delivers it
/// (`request` non-null makes a complete request). `None` for MPI's own.
///
/// # Safety
/// As for `MPI_Mrecv`/`MPI_Imrecv`.
pub unsafe fn mrecv(
    buf: *mut c_void,
    count: i64,
    datatype: MPI_Datatype,
    message: *mut MPI_Message,
    status: *mut MPI_Status,
    request: *mut MPI_Request,
) -> Option<c_int> {
    if message.is_null() {
        return None;
    }
    // SAFETY: checked non-null.
    let i = handles::message_index(unsafe { *message })?;
    let d = with_matched(|m| m.get_mut(i).and_then(Option::take))?;
    // SAFETY: checked non-null.
    unsafe { *message = k::MPI_MESSAGE_NULL() };
    if request.is_null() {
        // SAFETY: forwarded.
        return Some(unsafe { deliver(&d, buf, count, datatype, status) });
    }
    let mut real = k::MPI_REQUEST_NULL();
    // SAFETY: forwarded; `real` is a local.
    let rc = unsafe { deliver_completed(&d, buf, count, datatype, &mut real) };
    if rc == k::MPI_SUCCESS() {
        // SAFETY: checked non-null by the caller's contract.
        unsafe {
            *request = handles::request_out(
                real,
                handles::ReqKind::Other,
                CommRef(d.slot as u32),
                d.source,
                d.tag,
            )
        };
    }
    Some(rc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(slot: usize, source: c_int, tag: c_int, byte: u8) -> Drained {
        Drained {
            slot,
            source,
            tag,
            // SAFETY: MPI_Status is plain data; all zero is a valid value.
            status: unsafe { std::mem::zeroed() },
            data: vec![byte],
        }
    }

    /// Served in MPI order: per source first in first out, the earliest
    /// matching for wildcards, never across communicators.
    #[test]
    fn matching_order() {
        with_queue(|q| {
            q.clear();
            q.extend([
                msg(3, 0, 5, 1),
                msg(3, 0, 6, 2),
                msg(3, 1, 5, 3),
                msg(4, 0, 5, 4),
                msg(3, 0, 5, 5),
            ])
        });
        crate::core::upcalls::set_drained_waiting(true);
        let c3 = CommRef(3);
        let any_src = k::MPI_ANY_SOURCE();
        let any_tag = k::MPI_ANY_TAG();
        assert_eq!(take(c3, 1, any_tag).map(|d| d.data[0]), Some(3));
        assert_eq!(take(c3, 0, 6).map(|d| d.data[0]), Some(2));
        assert_eq!(take(c3, any_src, 5).map(|d| d.data[0]), Some(1));
        assert_eq!(take(c3, 1, 5).map(|d| d.data[0]), None);
        assert_eq!(
            take(CommRef(4), any_src, any_tag).map(|d| d.data[0]),
            Some(4)
        );
        assert!(pending());
        assert_eq!(take(c3, any_src, any_tag).map(|d| d.data[0]), Some(5));
        assert!(!pending(), "the queue is empty: the hot path check is off");
        assert!(take(CommRef::NONE, any_src, any_tag).is_none());
    }
}
