//! The wrappers written by hand: initialization and finalization, request
//! completion (delegated to `completion`), handle conversion to and from
//! Fortran integers, `MPI_Comm_idup` (whose communicator exists only once
//! its request completes), `MPI_Sendrecv_replace` made wakeable, and
//! `MPI_Comm_get_parent` (the same handle every time).
//!
//! Each function here has the signature of the MPI function of the same
//! name; the generated wrapper calls it inside the boundary guard.
//!
//! # Safety
//! Every function here has exactly the contract of the MPI function of the
//! same name: the pointers the program passes must be what MPI requires.
#![allow(non_snake_case, clippy::missing_safety_doc, clippy::too_many_arguments)]
use crate::calls::completion;
use crate::calls::idup::*;
use crate::core::bsend::*;
use crate::core::clock::*;
use crate::core::comms;
use crate::core::errhandlers::*;
use crate::core::fortran;
use crate::core::handles::{self, with_tables, CommRef, Raw, ReqKind};
/// (Named by the generated Fortran wrappers.)
pub use crate::core::keyvals::fortran_keyval_made;
use crate::core::keyvals::*;
use crate::protocol::membership::Recipe;
use crate::sys::constants as k;
use crate::sys::*;
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void};
use std::sync::Mutex;

// --- life cycle -------------------------------------------------------------

pub unsafe fn MPI_Init(argc: *mut c_int, argv: *mut *mut *mut c_char) -> c_int {
    // SAFETY: forwarded.
    let rc = unsafe { PMPI_Init(argc, argv) };
    if rc == k::MPI_SUCCESS() {
        let mut provided = k::MPI_THREAD_SINGLE();
        // SAFETY: MPI is initialized.
        unsafe { PMPI_Query_thread(&mut provided) };
        crate::ops::session::start(provided);
    }
    rc
}

pub unsafe fn MPI_Init_thread(
    argc: *mut c_int,
    argv: *mut *mut *mut c_char,
    required: c_int,
    provided: *mut c_int,
) -> c_int {
    // SAFETY: forwarded.
    let rc = unsafe { PMPI_Init_thread(argc, argv, required, provided) };
    if rc == k::MPI_SUCCESS() {
        let level = if provided.is_null() {
            k::MPI_THREAD_SINGLE()
        } else {
            // SAFETY: MPI wrote it.
            unsafe { *provided }
        };
        crate::ops::session::start(level);
    }
    rc
}

pub unsafe fn MPI_Finalize() -> c_int {
    let quiet = crate::ops::links::quiet_sigpipe();
    // The library's sends (MPI_Isendrecv's) complete before MPI ends.
    crate::calls::detached::finish();
    crate::ops::session::finish();
    // SAFETY: plain forward.
    let rc = unsafe { PMPI_Finalize() };
    crate::ops::links::restore_sigpipe(quiet);
    rc
}

pub unsafe fn MPI_Pcontrol(level: c_int) -> c_int {
    // The variadic arguments have no meaning to MPI; only the level is
    // forwarded.
    // SAFETY: plain forward.
    unsafe { PMPI_Pcontrol(level) }
}

// --- completion ---------------------------------------------------------------

pub unsafe fn MPI_Wait(request: *mut MPI_Request, status: *mut MPI_Status) -> c_int {
    // SAFETY: forwarded.
    unsafe { completion::wait(request, status) }
}
pub unsafe fn MPI_Test(
    request: *mut MPI_Request,
    flag: *mut c_int,
    status: *mut MPI_Status,
) -> c_int {
    // SAFETY: forwarded.
    unsafe { completion::test(request, flag, status) }
}
pub unsafe fn MPI_Waitall(
    count: c_int,
    reqs: *mut MPI_Request,
    statuses: *mut MPI_Status,
) -> c_int {
    // SAFETY: forwarded.
    unsafe { completion::all(count, reqs, std::ptr::null_mut(), statuses, true) }
}
pub unsafe fn MPI_Testall(
    count: c_int,
    reqs: *mut MPI_Request,
    flag: *mut c_int,
    statuses: *mut MPI_Status,
) -> c_int {
    // SAFETY: forwarded.
    unsafe { completion::all(count, reqs, flag, statuses, false) }
}
pub unsafe fn MPI_Waitany(
    count: c_int,
    reqs: *mut MPI_Request,
    index: *mut c_int,
    status: *mut MPI_Status,
) -> c_int {
    // SAFETY: forwarded.
    unsafe { completion::any(count, reqs, index, std::ptr::null_mut(), status, true) }
}
pub unsafe fn MPI_Testany(
    count: c_int,
    reqs: *mut MPI_Request,
    index: *mut c_int,
    flag: *mut c_int,
    status: *mut MPI_Status,
) -> c_int {
    // SAFETY: forwarded.
    unsafe { completion::any(count, reqs, index, flag, status, false) }
}
pub unsafe fn MPI_Waitsome(
    incount: c_int,
    reqs: *mut MPI_Request,
    outcount: *mut c_int,
    indices: *mut c_int,
    statuses: *mut MPI_Status,
) -> c_int {
    // SAFETY: forwarded.
    unsafe { completion::some(incount, reqs, outcount, indices, statuses, true) }
}
pub unsafe fn MPI_Testsome(
    incount: c_int,
    reqs: *mut MPI_Request,
    outcount: *mut c_int,
    indices: *mut c_int,
    statuses: *mut MPI_Status,
) -> c_int {
    // SAFETY: forwarded.
    unsafe { completion::some(incount, reqs, outcount, indices, statuses, false) }
}
pub unsafe fn MPI_Start(request: *mut MPI_Request) -> c_int {
    // SAFETY: forwarded.
    unsafe { completion::start(request) }
}
pub unsafe fn MPI_Startall(count: c_int, reqs: *mut MPI_Request) -> c_int {
    // SAFETY: forwarded.
    unsafe { completion::start_all(count, reqs) }
}
pub unsafe fn MPI_Request_free(request: *mut MPI_Request) -> c_int {
    // SAFETY: forwarded.
    unsafe { completion::request_free(request) }
}
pub unsafe fn MPI_Cancel(request: *mut MPI_Request) -> c_int {
    // SAFETY: forwarded.
    unsafe { completion::cancel(request) }
}
pub unsafe fn MPI_Request_get_status(
    request: MPI_Request,
    flag: *mut c_int,
    status: *mut MPI_Status,
) -> c_int {
    // SAFETY: forwarded.
    unsafe { completion::get_status(request, flag, status) }
}

/// Real requests of a read-only array, for the `MPI_Request_get_status_*`
/// family (MPI-4.1), which completes nothing.
#[cfg(ferry_has = "MPI_Request_get_status_all")]
unsafe fn reals(count: c_int, reqs: *const MPI_Request) -> Vec<MPI_Request> {
    if reqs.is_null() || count <= 0 {
        return Vec::new();
    }
    // SAFETY: the program passes `count` requests.
    unsafe { std::slice::from_raw_parts(reqs, count as usize) }
        .iter()
        .map(|r| handles::request_real(*r))
        .collect()
}

#[cfg(ferry_has = "MPI_Request_get_status_all")]
pub unsafe fn MPI_Request_get_status_all(
    count: c_int,
    reqs: *const MPI_Request,
    flag: *mut c_int,
    statuses: *mut MPI_Status,
) -> c_int {
    // SAFETY: forwarded with translated handles.
    unsafe {
        let r = reals(count, reqs);
        PMPI_Request_get_status_all(
            count,
            if reqs.is_null() { reqs } else { r.as_ptr() },
            flag,
            statuses,
        )
    }
}
#[cfg(ferry_has = "MPI_Request_get_status_any")]
pub unsafe fn MPI_Request_get_status_any(
    count: c_int,
    reqs: *const MPI_Request,
    index: *mut c_int,
    flag: *mut c_int,
    status: *mut MPI_Status,
) -> c_int {
    // SAFETY: forwarded with translated handles.
    unsafe {
        let r = reals(count, reqs);
        PMPI_Request_get_status_any(
            count,
            if reqs.is_null() { reqs } else { r.as_ptr() },
            index,
            flag,
            status,
        )
    }
}
#[cfg(ferry_has = "MPI_Request_get_status_some")]
pub unsafe fn MPI_Request_get_status_some(
    incount: c_int,
    reqs: *const MPI_Request,
    outcount: *mut c_int,
    indices: *mut c_int,
    statuses: *mut MPI_Status,
) -> c_int {
    // SAFETY: forwarded with translated handles.
    unsafe {
        let r = reals(incount, reqs);
        PMPI_Request_get_status_some(
            incount,
            if reqs.is_null() { reqs } else { r.as_ptr() },
            outcount,
            indices,
            statuses,
        )
    }
}

pub unsafe fn MPI_Comm_c2f(comm: MPI_Comm) -> MPI_Fint {
    fortran::comm_c2f(comm)
}
pub unsafe fn MPI_Comm_f2c(comm: MPI_Fint) -> MPI_Comm {
    fortran::comm_f2c(comm)
}
pub unsafe fn MPI_Group_c2f(group: MPI_Group) -> MPI_Fint {
    fortran::group_c2f(group)
}
pub unsafe fn MPI_Group_f2c(group: MPI_Fint) -> MPI_Group {
    fortran::group_f2c(group)
}
pub unsafe fn MPI_Request_c2f(request: MPI_Request) -> MPI_Fint {
    fortran::request_c2f(request)
}
pub unsafe fn MPI_Request_f2c(request: MPI_Fint) -> MPI_Request {
    fortran::request_f2c(request)
}
pub unsafe fn MPI_Type_c2f(datatype: MPI_Datatype) -> MPI_Fint {
    fortran::datatype_c2f(datatype)
}
pub unsafe fn MPI_Type_f2c(datatype: MPI_Fint) -> MPI_Datatype {
    fortran::datatype_f2c(datatype)
}
pub unsafe fn MPI_Op_c2f(op: MPI_Op) -> MPI_Fint {
    fortran::op_c2f(op)
}
pub unsafe fn MPI_Op_f2c(op: MPI_Fint) -> MPI_Op {
    fortran::op_f2c(op)
}
#[cfg(ferry_has = "MPI_Type_toint")]
pub unsafe fn MPI_Type_toint(datatype: MPI_Datatype) -> c_int {
    fortran::datatype_c2f(datatype)
}
#[cfg(ferry_has = "MPI_Type_fromint")]
pub unsafe fn MPI_Type_fromint(datatype: c_int) -> MPI_Datatype {
    fortran::datatype_f2c(datatype)
}
#[cfg(ferry_has = "MPI_Op_toint")]
pub unsafe fn MPI_Op_toint(op: MPI_Op) -> c_int {
    fortran::op_c2f(op)
}
#[cfg(ferry_has = "MPI_Op_fromint")]
pub unsafe fn MPI_Op_fromint(op: c_int) -> MPI_Op {
    fortran::op_f2c(op)
}

// MPICH's ABI conversions: the identity, as its own.
#[cfg(ferry_has = "MPI_Comm_toint")]
pub unsafe fn MPI_Comm_toint(comm: MPI_Comm) -> c_int {
    fortran::comm_c2f(comm)
}
#[cfg(ferry_has = "MPI_Comm_fromint")]
pub unsafe fn MPI_Comm_fromint(comm: c_int) -> MPI_Comm {
    fortran::comm_f2c(comm)
}
#[cfg(ferry_has = "MPI_Group_toint")]
pub unsafe fn MPI_Group_toint(group: MPI_Group) -> c_int {
    fortran::group_c2f(group)
}
#[cfg(ferry_has = "MPI_Group_fromint")]
pub unsafe fn MPI_Group_fromint(group: c_int) -> MPI_Group {
    fortran::group_f2c(group)
}
#[cfg(ferry_has = "MPI_Request_toint")]
pub unsafe fn MPI_Request_toint(request: MPI_Request) -> c_int {
    fortran::request_c2f(request)
}
#[cfg(ferry_has = "MPI_Request_fromint")]
pub unsafe fn MPI_Request_fromint(request: c_int) -> MPI_Request {
    fortran::request_f2c(request)
}

// --- MPI_Comm_create_group -----------------------------------------------------

/// `MPI_Comm_create_group`, collective over `group` only: counted as a
/// group collective ([`comms::group_collective`]), so that a regroup never
/// freezes a member while another waits inside for it.
#[cfg(ferry_has = "MPI_Comm_create_group")]
pub unsafe fn MPI_Comm_create_group(
    comm: MPI_Comm,
    group: MPI_Group,
    tag: c_int,
    newcomm: *mut MPI_Comm,
) -> c_int {
    let (real, parent) = handles::comm_in(comm);
    // SAFETY: the program's live group, made real.
    let slot = unsafe { comms::group_collective(parent, handles::group_real(group), tag) };
    let program_group = group;
    let mut made = k::MPI_COMM_NULL();
    let out = if newcomm.is_null() {
        newcomm
    } else {
        &mut made as *mut MPI_Comm
    };
    let rc = if slot == CommRef::NONE {
        crate::core::superstep::note_creation(parent);
        // SAFETY: forwarded.
        unsafe { PMPI_Comm_create_group(real, handles::group_real(program_group), tag, out) }
    } else {
        let t = crate::core::superstep::enter_collective(slot);
        // A regroup at the entry moved the job: the parent's (and the
        // group's, after a migration) real ones now.
        let real = t.again(real, comm);
        let group = handles::group_real(program_group);
        // SAFETY: forwarded.
        let rc = unsafe { PMPI_Comm_create_group(real, group, tag, out) };
        crate::core::superstep::leave_collective(t);
        comms::group_collective_left();
        rc
    };
    if !newcomm.is_null() {
        // SAFETY: checked non-null.
        unsafe {
            if rc == k::MPI_SUCCESS() {
                *newcomm = comms::comm_out(made);
            } else if made == k::MPI_COMM_NULL() {
                *newcomm = made;
            }
        }
    }
    rc
}

// --- MPI_Intercomm_create -------------------------------------------------------

/// `MPI_Intercomm_create`: collective over the local communicator (its
/// superstep), and at the local leader also the leaders' pair, counted as
/// a group collective beside it ([`comms::leaders_pair`]), so that a
/// regroup never freezes the other group in front of the call while this
/// one waits inside for it.
pub unsafe fn MPI_Intercomm_create(
    local_comm: MPI_Comm,
    local_leader: c_int,
    peer_comm: MPI_Comm,
    remote_leader: c_int,
    tag: c_int,
    newintercomm: *mut MPI_Comm,
) -> c_int {
    let (local_real, local_slot) = handles::comm_in(local_comm);
    let mut rank: c_int = -1;
    // SAFETY: the program's live local communicator, made real.
    unsafe { PMPI_Comm_rank(local_real, &mut rank) };
    let mut pair = CommRef::NONE;
    if rank == local_leader {
        let (peer_real, peer_slot) = handles::comm_in(peer_comm);
        let mut me: c_int = -1;
        // SAFETY: at the local leader the peer communicator is significant,
        // hence live.
        if unsafe { PMPI_Comm_rank(peer_real, &mut me) } == k::MPI_SUCCESS() {
            pair = comms::leaders_pair(peer_slot, me, remote_leader, tag);
        }
    }
    crate::core::superstep::count_companion(pair);
    let t = crate::core::superstep::enter_collective(local_slot);
    // A regroup at the entry moved the job: the real ones now.
    let local_real = t.real(local_real);
    let peer_real = if rank == local_leader {
        t.again(handles::comm_real(peer_comm), peer_comm)
    } else {
        handles::comm_real(peer_comm)
    };
    let mut made = k::MPI_COMM_NULL();
    let out = if newintercomm.is_null() {
        newintercomm
    } else {
        &mut made as *mut MPI_Comm
    };
    // SAFETY: forwarded.
    let rc = unsafe {
        PMPI_Intercomm_create(local_real, local_leader, peer_real, remote_leader, tag, out)
    };
    crate::core::superstep::leave_collective(t);
    if pair != CommRef::NONE {
        comms::group_collective_left();
    }
    if !newintercomm.is_null() {
        // SAFETY: checked non-null.
        unsafe {
            if rc == k::MPI_SUCCESS() {
                *newintercomm = comms::comm_out(made);
            } else if made == k::MPI_COMM_NULL() {
                *newintercomm = made;
            }
        }
    }
    rc
}

// --- MPI_Comm_idup --------------------------------------------------------------

unsafe fn idup_common(
    comm: MPI_Comm,
    newcomm: *mut MPI_Comm,
    request: *mut MPI_Request,
    post: impl FnOnce(MPI_Comm, *mut MPI_Comm, *mut MPI_Request) -> c_int,
) -> c_int {
    let (real, slot) = handles::comm_in(comm);
    if newcomm.is_null() || request.is_null() || slot == CommRef::NONE {
        return post(real, newcomm, request);
    }
    let mut cell = Box::new(Raw(k::MPI_COMM_NULL()));
    let mut req = k::MPI_REQUEST_NULL();
    let t = crate::core::superstep::enter_collective(slot);
    // A regroup at the entry moved the job: the parent's real one now.
    let real = t.real(real);
    let rc = post(real, &mut cell.0, &mut req);
    crate::core::superstep::leave_collective(t);
    if rc != k::MPI_SUCCESS() {
        return rc;
    }
    // A duplicate has the group and topology of its parent. MPI hands out
    // the new handle at once (the program may set its error handler or
    // name before the request completes); it is usable for communication
    // once the request completes, when it is read again.
    // SAFETY: `real` is the live parent.
    let v = comms::comm_register_dup(cell.0, unsafe { Recipe::of(real, handles::world_real()) });
    let (_, new_slot) = handles::comm_in(v);
    let vreq = handles::request_out(req, ReqKind::CommIdup, new_slot, 0, 0);
    match handles::request_index(vreq) {
        Some(i) => {
            IDUP_CELLS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert_with(HashMap::new)
                .insert(i, cell);
        }
        None => {
            // MPI completed it at once: the communicator is there already.
            with_tables(|t| {
                if let Some(s) = new_slot.index().and_then(|i| t.comms.get_mut(i)) {
                    s.real = cell.0;
                }
            });
        }
    }
    // SAFETY: both checked non-null.
    unsafe {
        *newcomm = v;
        *request = vreq;
    }
    rc
}

pub unsafe fn MPI_Comm_idup(
    comm: MPI_Comm,
    newcomm: *mut MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: forwarded.
    unsafe { idup_common(comm, newcomm, request, |c, n, r| PMPI_Comm_idup(c, n, r)) }
}

#[cfg(ferry_has = "MPI_Comm_idup_with_info")]
pub unsafe fn MPI_Comm_idup_with_info(
    comm: MPI_Comm,
    info: MPI_Info,
    newcomm: *mut MPI_Comm,
    request: *mut MPI_Request,
) -> c_int {
    // SAFETY: forwarded.
    unsafe {
        idup_common(comm, newcomm, request, |c, n, r| {
            PMPI_Comm_idup_with_info(c, info, n, r)
        })
    }
}

// --- MPI_Comm_get_parent ------------------------------------------------------

static PARENT: Mutex<Option<Raw<MPI_Comm>>> = Mutex::new(None);

pub unsafe fn MPI_Comm_get_parent(parent: *mut MPI_Comm) -> c_int {
    if crate::ops::migration::is_replacement() && !parent.is_null() {
        // The replacement's parent is the library's migration, not the
        // program's: the program sees what its first process saw.
        // SAFETY: the program's out-parameter.
        unsafe { *parent = k::MPI_COMM_NULL() };
        return k::MPI_SUCCESS();
    }
    let mut real = k::MPI_COMM_NULL();
    // SAFETY: forwarded to a local.
    let rc = unsafe { PMPI_Comm_get_parent(if parent.is_null() { parent } else { &mut real }) };
    if rc != k::MPI_SUCCESS() || parent.is_null() {
        return rc;
    }
    let v = if real == k::MPI_COMM_NULL() {
        real
    } else {
        let mut cached = PARENT.lock().unwrap_or_else(|e| e.into_inner());
        match *cached {
            // Still the same real parent (not disconnected): same handle.
            Some(Raw(v)) if handles::comm_real(v) == real => v,
            _ => {
                let v = comms::comm_out(real);
                *cached = Some(Raw(v));
                v
            }
        }
    };
    // SAFETY: checked non-null.
    unsafe { *parent = v };
    rc
}

// --- MPI_Comm_free ---------------------------------------------------------------
//
// A communicator that a pending request names is kept, as MPI keeps it,
// until the request is done (see `core::comms::hold_if_pending`).

pub unsafe fn MPI_Comm_free(comm: *mut MPI_Comm) -> c_int {
    if comm.is_null() {
        // SAFETY: forwarded (MPI reports the null argument).
        return unsafe { PMPI_Comm_free(comm) };
    }
    // SAFETY: the program's handle, readable as MPI requires.
    let v = unsafe { *comm };
    if comms::hold_if_pending(v) {
        // SAFETY: writable, as MPI requires.
        unsafe { *comm = k::MPI_COMM_NULL() };
        return k::MPI_SUCCESS();
    }
    let mut real = handles::comm_real(v);
    // SAFETY: forwarded, with the real handle.
    let rc = unsafe { PMPI_Comm_free(&mut real) };
    if rc == k::MPI_SUCCESS() {
        // SAFETY: writable, as MPI requires.
        unsafe { *comm = handles::comm_released(v, real) };
        comms::release_held();
    }
    rc
}

// --- MPI_Type_free ---------------------------------------------------------------
//
// A datatype that a pending receive or persistent request names is kept,
// as MPI keeps it, for a rebuild to post that request again: a twin of the
// same layout is made before MPI frees the program's (see
// `core::datatypes::twin_for_pending`).

pub unsafe fn MPI_Type_free(datatype: *mut MPI_Datatype) -> c_int {
    if datatype.is_null() {
        // SAFETY: forwarded (MPI reports the null argument).
        return unsafe { PMPI_Type_free(datatype) };
    }
    // SAFETY: the program's handle, readable as MPI requires.
    let v = unsafe { *datatype };
    let mut real = handles::datatype_real(v);
    // SAFETY: the program's live datatype, before MPI frees it.
    let twin = unsafe { crate::core::datatypes::twin_for_pending(v, real) };
    // SAFETY: forwarded, with the real handle.
    let rc = unsafe { PMPI_Type_free(&mut real) };
    if rc != k::MPI_SUCCESS() {
        if let Some(mut t) = twin {
            // SAFETY: the twin just made, which nothing names.
            unsafe { PMPI_Type_free(&mut t) };
        }
        return rc;
    }
    let out = match twin {
        Some(t) => {
            crate::core::datatypes::hold(v, t);
            real
        }
        None => handles::datatype_released(v, real),
    };
    // SAFETY: writable, as MPI requires.
    unsafe { *datatype = out };
    crate::core::datatypes::release_held();
    rc
}

// --- MPI_Sendrecv_replace ---------------------------------------------------------
//
// Made wakeable like MPI_Sendrecv: the outgoing data is packed first, then
// the receive into the program's buffer and the send of the packed copy are
// posted and waited for. A message sent as MPI_PACKED matches a receive of
// any datatype with the same type signature, so the peer sees no change.

macro_rules! sendrecv_replace {
    ($name:ident, $count:ty, $pack_size:ident, $pack:ident, $irecv:path, $isend:ident) => {
        pub unsafe fn $name(
            buf: *mut c_void,
            count: $count,
            datatype: MPI_Datatype,
            dest: c_int,
            sendtag: c_int,
            source: c_int,
            recvtag: c_int,
            comm: MPI_Comm,
            status: *mut MPI_Status,
        ) -> c_int {
            let (comm, slot) = handles::comm_in(comm);
            let datatype_virtual = datatype;
            let datatype = handles::datatype_real(datatype);
            // SAFETY: arguments as the program gave them, handles translated;
            // the packed buffer lives until both requests complete.
            unsafe {
                let mut size: $count = 0;
                let rc = $pack_size(count, datatype, comm, &mut size);
                if rc != k::MPI_SUCCESS() {
                    return rc;
                }
                let mut packed = vec![0u8; (size as usize).max(1)];
                let mut position: $count = 0;
                let rc = $pack(
                    buf,
                    count,
                    datatype,
                    packed.as_mut_ptr().cast(),
                    size,
                    &mut position,
                    comm,
                );
                if rc != k::MPI_SUCCESS() {
                    return rc;
                }
                crate::core::channels::count_send(slot, dest);
                let packed_ptr: *const c_void = packed.as_ptr().cast();
                let target = crate::calls::p2p::Target {
                    buf,
                    count: count as i64,
                    datatype: datatype_virtual,
                };
                crate::calls::p2p::sendrecv_blocking(
                    slot,
                    comm,
                    source,
                    recvtag,
                    status,
                    target,
                    |req| {
                        $isend(
                            packed_ptr,
                            position,
                            k::MPI_PACKED(),
                            dest,
                            sendtag,
                            comm,
                            req,
                        )
                    },
                    |comm, req| {
                        $irecv(
                            buf,
                            count,
                            handles::datatype_real(datatype_virtual),
                            source,
                            recvtag,
                            comm,
                            req,
                        )
                    },
                )
            }
        }
    };
}

sendrecv_replace!(
    MPI_Sendrecv_replace,
    c_int,
    PMPI_Pack_size,
    PMPI_Pack,
    crate::calls::anysource::irecv,
    PMPI_Isend
);
#[cfg(ferry_has = "MPI_Sendrecv_replace_c")]
sendrecv_replace!(
    MPI_Sendrecv_replace_c,
    MPI_Count,
    PMPI_Pack_size_c,
    PMPI_Pack_c,
    PMPI_Irecv_c,
    PMPI_Isend_c
);

// --- MPI_Isendrecv, MPI_Isendrecv_replace -----------------------------------------
//
// Taken apart (see `calls::detached`): the send data is packed and sent by
// the library, which owns the copy; the receive is the program's own
// nonblocking receive, served from the drained queue first, and its request
// is the one the program gets. A message sent as MPI_PACKED matches a
// receive of any datatype with the same type signature, so the peer sees
// no change.

/// The receive half: as the generated `MPI_Irecv`, drained messages first.
#[cfg(ferry_has = "MPI_Isendrecv")]
macro_rules! isendrecv_receive {
    ($irecv:path, $op:ident, $buf:expr, $count:expr, $datatype_virtual:expr, $source:expr,
     $tag:expr, $comm:expr, $slot:expr, $request:expr) => {{
        let datatype = handles::datatype_real($datatype_virtual);
        if crate::protocol::drain::pending() {
            if let Some(rc) = crate::protocol::drain::irecv(
                $slot,
                $source,
                $tag,
                $buf,
                $count as i64,
                datatype,
                $request,
            ) {
                return rc;
            }
        }
        let mut real = handles::request_null();
        let rc = $irecv($buf, $count, datatype, $source, $tag, $comm, &mut real);
        if rc == k::MPI_SUCCESS() {
            *$request = handles::request_out_p2p(
                real,
                ReqKind::Recv,
                $slot,
                $source,
                $tag,
                handles::P2pArgs {
                    op: handles::P2pOp::$op,
                    buf: $buf,
                    count: $count as i64,
                    datatype: $datatype_virtual,
                },
            );
        }
        rc
    }};
}

/// The send half: `count` elements of `datatype` (real) at `buf` packed
/// into a copy the library sends and keeps until the send is done.
#[cfg(ferry_has = "MPI_Isendrecv")]
macro_rules! isendrecv_send {
    ($pack_size:ident, $pack:ident, $count_ty:ty, $buf:expr, $count:expr, $datatype:expr,
     $dest:expr, $tag:expr, $comm:expr, $slot:expr) => {{
        let mut size: $count_ty = 0;
        let rc = $pack_size($count, $datatype, $comm, &mut size);
        if rc != k::MPI_SUCCESS() {
            return rc;
        }
        let mut packed = vec![0u8; (size as usize).max(1)];
        let mut position: $count_ty = 0;
        let rc = $pack(
            $buf,
            $count,
            $datatype,
            packed.as_mut_ptr().cast(),
            size,
            &mut position,
            $comm,
        );
        if rc != k::MPI_SUCCESS() {
            return rc;
        }
        crate::calls::detached::send(packed, position as i64, $dest, $tag, $comm, $slot)
    }};
}

#[cfg(ferry_has = "MPI_Isendrecv")]
macro_rules! isendrecv {
    ($name:ident, $count:ty, $pack_size:ident, $pack:ident, $irecv:path, $op:ident) => {
        pub unsafe fn $name(
            sendbuf: *const c_void,
            sendcount: $count,
            sendtype: MPI_Datatype,
            dest: c_int,
            sendtag: c_int,
            recvbuf: *mut c_void,
            recvcount: $count,
            recvtype: MPI_Datatype,
            source: c_int,
            recvtag: c_int,
            comm: MPI_Comm,
            request: *mut MPI_Request,
        ) -> c_int {
            if request.is_null() {
                return k::MPI_ERR_ARG();
            }
            let (comm, slot) = handles::comm_in(comm);
            // SAFETY: arguments as the program gave them, handles
            // translated; the request checked non-null.
            unsafe {
                let rc = isendrecv_send!(
                    $pack_size,
                    $pack,
                    $count,
                    sendbuf,
                    sendcount,
                    handles::datatype_real(sendtype),
                    dest,
                    sendtag,
                    comm,
                    slot
                );
                if rc != k::MPI_SUCCESS() {
                    return rc;
                }
                isendrecv_receive!(
                    $irecv, $op, recvbuf, recvcount, recvtype, source, recvtag, comm, slot, request
                )
            }
        }
    };
}

#[cfg(ferry_has = "MPI_Isendrecv")]
isendrecv!(
    MPI_Isendrecv,
    c_int,
    PMPI_Pack_size,
    PMPI_Pack,
    crate::calls::anysource::irecv,
    Irecv
);
#[cfg(ferry_has = "MPI_Isendrecv_c")]
isendrecv!(
    MPI_Isendrecv_c,
    MPI_Count,
    PMPI_Pack_size_c,
    PMPI_Pack_c,
    crate::calls::anysource::irecv_c,
    Irecv_c
);
/// `MPI_Isendrecv_replace` is `MPI_Isendrecv` from and into one buffer:
/// the send half is packed (copied) before the receive is posted.
#[cfg(ferry_has = "MPI_Isendrecv_replace")]
macro_rules! isendrecv_replace {
    ($name:ident, $count:ty, $isendrecv:ident) => {
        pub unsafe fn $name(
            buf: *mut c_void,
            count: $count,
            datatype: MPI_Datatype,
            dest: c_int,
            sendtag: c_int,
            source: c_int,
            recvtag: c_int,
            comm: MPI_Comm,
            request: *mut MPI_Request,
        ) -> c_int {
            // SAFETY: as for `isendrecv!`: the data is copied before the
            // receive into the same buffer is posted.
            unsafe {
                $isendrecv(
                    buf, count, datatype, dest, sendtag, buf, count, datatype, source, recvtag,
                    comm, request,
                )
            }
        }
    };
}

#[cfg(ferry_has = "MPI_Isendrecv_replace")]
isendrecv_replace!(MPI_Isendrecv_replace, c_int, MPI_Isendrecv);
#[cfg(ferry_has = "MPI_Isendrecv_replace_c")]
isendrecv_replace!(MPI_Isendrecv_replace_c, MPI_Count, MPI_Isendrecv_c);

// --- error handlers on communicators ------------------------------------------
//
// MPI calls a communicator's error handler with the real communicator. The
// program must see its own (virtual) handle there, as it would without the
// library: every handler it creates is registered with MPI as one
// trampoline, which finds the program's function from the handler attached
// to the communicator and calls it with the virtual handle.

pub unsafe fn MPI_Comm_set_errhandler(comm: MPI_Comm, errhandler: MPI_Errhandler) -> c_int {
    let real = handles::comm_real(comm);
    // SAFETY: forwarded with the real communicator.
    let rc = unsafe { PMPI_Comm_set_errhandler(real, errhandler) };
    if rc == k::MPI_SUCCESS() {
        set_errfn(comm, errhandler);
        world_errhandler_too(comm, real, errhandler);
    }
    rc
}

#[cfg(ferry_has = "MPI_Errhandler_set")]
pub unsafe fn MPI_Errhandler_set(comm: MPI_Comm, errhandler: MPI_Errhandler) -> c_int {
    let real = handles::comm_real(comm);
    // SAFETY: forwarded with the real communicator.
    let rc = unsafe { PMPI_Errhandler_set(real, errhandler) };
    if rc == k::MPI_SUCCESS() {
        set_errfn(comm, errhandler);
        world_errhandler_too(comm, real, errhandler);
    }
    rc
}

pub unsafe fn MPI_Comm_create_errhandler(
    comm_errhandler_fn: MPI_Comm_errhandler_function,
    errhandler: *mut MPI_Errhandler,
) -> c_int {
    // SAFETY: forwarded.
    unsafe { create_comm_errhandler(comm_errhandler_fn, errhandler) }
}

/// MPI-1's name for the same thing (removed in MPI-3.0, still exported).
#[cfg(ferry_has = "MPI_Errhandler_create")]
pub unsafe fn MPI_Errhandler_create(
    function: MPI_Handler_function,
    errhandler: *mut MPI_Errhandler,
) -> c_int {
    // SAFETY: forwarded; MPI_Handler_function is MPI_Comm_errhandler_function
    // under another name.
    unsafe { create_comm_errhandler(function, errhandler) }
}

// --- attribute callbacks on communicators ---------------------------------------
//
// MPI calls a keyval's copy and delete functions with the real
// communicator; the program must see its own handle. Each keyval the
// program creates is registered with MPI with two trampolines that find the
// program's functions by keyval (MPI passes it) and call them with the
// virtual handle. A null function (MPICH's MPI_COMM_NULL_COPY_FN and
// MPI_COMM_NULL_DELETE_FN) keeps its meaning: copy nothing, delete nothing.

pub unsafe fn MPI_Comm_free_keyval(keyval: *mut c_int) -> c_int {
    let kv = if keyval.is_null() {
        None
    } else {
        // SAFETY: the program's keyval.
        Some(unsafe { *keyval })
    };
    // SAFETY: forwarded.
    let rc = unsafe { PMPI_Comm_free_keyval(keyval) };
    if let (true, Some(kv)) = (rc == k::MPI_SUCCESS(), kv) {
        keyval_freed(kv);
    }
    rc
}

pub unsafe fn MPI_Keyval_free(keyval: *mut c_int) -> c_int {
    // SAFETY: the same call under its MPI-1 name.
    unsafe { MPI_Comm_free_keyval(keyval) }
}

unsafe fn create_keyval(
    copy: MPI_Comm_copy_attr_function,
    delete: MPI_Comm_delete_attr_function,
    keyval: *mut c_int,
    extra_state: *mut c_void,
) -> c_int {
    // MPICH's Fortran layer (forwarded to, see `fortran_support::forwarding`)
    // sets a Fortran proxy on the keyval after this call: its functions are
    // Fortran ones, which MPICH calls with real handles.
    #[cfg(ferry_mpi = "mpich")]
    if crate::entry::wrappers::fortran_support::forwarding() {
        // SAFETY: forwarded as it is.
        return unsafe { PMPI_Comm_create_keyval(copy, delete, keyval, extra_state) };
    }
    // SAFETY: forwarded with the trampolines in place of the functions.
    let rc = unsafe {
        PMPI_Comm_create_keyval(
            Some(copy_trampoline),
            Some(delete_trampoline),
            keyval,
            extra_state,
        )
    };
    if rc == k::MPI_SUCCESS() && !keyval.is_null() {
        // SAFETY: MPI wrote the new keyval.
        record_keyval(unsafe { *keyval }, copy, delete, false);
    }
    rc
}

pub unsafe fn MPI_Comm_create_keyval(
    comm_copy_attr_fn: MPI_Comm_copy_attr_function,
    comm_delete_attr_fn: MPI_Comm_delete_attr_function,
    comm_keyval: *mut c_int,
    extra_state: *mut c_void,
) -> c_int {
    // SAFETY: forwarded.
    unsafe {
        create_keyval(
            comm_copy_attr_fn,
            comm_delete_attr_fn,
            comm_keyval,
            extra_state,
        )
    }
}

/// MPI-1's name (removed in MPI-3.0, still exported); same function types.
#[cfg(ferry_has = "MPI_Keyval_create")]
pub unsafe fn MPI_Keyval_create(
    copy_fn: MPI_Copy_function,
    delete_fn: MPI_Delete_function,
    keyval: *mut c_int,
    extra_state: *mut c_void,
) -> c_int {
    // SAFETY: forwarded; the MPI-1 types are the same signatures.
    unsafe { create_keyval(copy_fn, delete_fn, keyval, extra_state) }
}

// --- predefined attributes ------------------------------------------------------
//
// After a regroup the world is a communicator MPI made from another one:
// Open MPI keeps the predefined attributes (MPI_TAG_UB, MPI_HOST, ...) on
// its original MPI_COMM_WORLD only. They are read from there.

fn predefined(keyval: c_int) -> bool {
    [
        k::MPI_TAG_UB(),
        k::MPI_HOST(),
        k::MPI_IO(),
        k::MPI_WTIME_IS_GLOBAL(),
        k::MPI_APPNUM(),
        k::MPI_UNIVERSE_SIZE(),
        k::MPI_LASTUSEDCODE(),
    ]
    .contains(&keyval)
}

macro_rules! get_attr {
    ($name:ident, $real:ident) => {
        pub unsafe fn $name(
            comm: MPI_Comm,
            keyval: c_int,
            attribute_val: *mut c_void,
            flag: *mut c_int,
        ) -> c_int {
            let (real, slot) = handles::comm_in(comm);
            // SAFETY: forwarded with the communicator translated.
            let rc = unsafe { $real(real, keyval, attribute_val, flag) };
            if rc == k::MPI_SUCCESS()
                && slot.index() == Some(0)
                && !flag.is_null()
                // SAFETY: MPI wrote the flag on success.
                && unsafe { *flag } == 0
                && predefined(keyval)
                && real != k::MPI_COMM_WORLD()
            {
                // SAFETY: as above, on the original world.
                return unsafe { $real(k::MPI_COMM_WORLD(), keyval, attribute_val, flag) };
            }
            rc
        }
    };
}

get_attr!(MPI_Comm_get_attr, PMPI_Comm_get_attr);
#[cfg(ferry_has = "MPI_Attr_get")]
get_attr!(MPI_Attr_get, PMPI_Attr_get);

// --- reduction operations ------------------------------------------------------

pub unsafe fn MPI_Op_create(user_fn: MPI_User_function, commute: c_int, op: *mut MPI_Op) -> c_int {
    let Some(f) = user_fn else {
        return k::MPI_ERR_ARG();
    };
    // SAFETY: the program's function and out-parameter.
    unsafe { crate::core::ops::create(f as usize, commute, false, op) }
}

#[cfg(ferry_has = "MPI_Op_create_c")]
pub unsafe fn MPI_Op_create_c(
    user_fn: MPI_User_function_c,
    commute: c_int,
    op: *mut MPI_Op,
) -> c_int {
    let Some(f) = user_fn else {
        return k::MPI_ERR_ARG();
    };
    // SAFETY: the program's function and out-parameter.
    unsafe { crate::core::ops::create(f as usize, commute, true, op) }
}

// --- memory for the program -------------------------------------------------------

/// `MPI_Alloc_mem`: with the process image on, the program's main thread
/// gets memory of its own arena (carried by an image; MPI's would not be).
/// MPI may return any memory here; registered memory is only an
/// optimization of some networks.
pub unsafe fn MPI_Alloc_mem(size: MPI_Aint, info: MPI_Info, baseptr: *mut c_void) -> c_int {
    if crate::mem::active() && crate::mem::on_app_stack() && !baseptr.is_null() {
        if size < 0 {
            return k::MPI_ERR_ARG();
        }
        // SAFETY: the program's arena, initialized while the image is on.
        let p = unsafe { crate::mem::alloc::app().alloc((size as usize).max(1), 64) };
        if p.is_null() {
            return k::MPI_ERR_OTHER();
        }
        // SAFETY: `baseptr` is the address of the program's pointer.
        unsafe { *(baseptr as *mut *mut u8) = p };
        return k::MPI_SUCCESS();
    }
    // SAFETY: forwarded.
    unsafe { PMPI_Alloc_mem(size, info, baseptr) }
}

/// `MPI_Free_mem`: memory of the program's arena goes back there.
pub unsafe fn MPI_Free_mem(base: *mut c_void) -> c_int {
    if crate::mem::alloc::app().contains(base as *const u8) && crate::mem::active() {
        // SAFETY: a block `MPI_Alloc_mem` gave from the arena.
        unsafe { crate::mem::alloc::app().free(base as *mut u8) };
        return k::MPI_SUCCESS();
    }
    // SAFETY: forwarded.
    unsafe { PMPI_Free_mem(base) }
}

// --- the buffer of buffered sends -------------------------------------------------

/// `MPI_Buffer_attach`: forwarded, and remembered.
pub unsafe fn MPI_Buffer_attach(buffer: *mut c_void, size: c_int) -> c_int {
    // SAFETY: forwarded.
    let rc = unsafe { PMPI_Buffer_attach(buffer, size) };
    if rc == k::MPI_SUCCESS() {
        bsend_buffer(Some((buffer as usize, size as i64, false)));
    }
    rc
}

/// `MPI_Buffer_attach_c`: as [`MPI_Buffer_attach`].
#[cfg(ferry_has = "MPI_Buffer_attach_c")]
#[allow(clippy::unnecessary_cast)] // MPI_Count is the MPI's type (i64 or not)
pub unsafe fn MPI_Buffer_attach_c(buffer: *mut c_void, size: MPI_Count) -> c_int {
    // SAFETY: forwarded.
    let rc = unsafe { PMPI_Buffer_attach_c(buffer, size) };
    if rc == k::MPI_SUCCESS() {
        bsend_buffer(Some((buffer as usize, size as i64, true)));
    }
    rc
}

/// Waits until every buffered message of this process has gone, as a wait
/// of the program's would (`MPI_Buffer_iflush`'s request polled; a
/// regroup asked for meanwhile runs, and drains those messages), so that
/// the blocking `MPI_Buffer_detach` after it returns at once. Without it a
/// process in `MPI_Buffer_detach` while its receiver waited for it in a
/// regroup froze the job (MPICH's pt2pt/bsendpending). MPIs before 4.1
/// have no `MPI_Buffer_iflush`: their detach blocks as before.
#[cfg(ferry_has = "MPI_Buffer_iflush")]
unsafe fn buffer_flushed() {
    let mut owner = 0;
    let mut request = k::MPI_REQUEST_NULL();
    crate::calls::completion::wait_through_regroups(|| {
        if owner != std::process::id() {
            // (Again in a replacement: the old process's request stayed
            // there, and its messages were drained.)
            owner = std::process::id();
            // SAFETY: a request of the library's.
            if unsafe { PMPI_Buffer_iflush(&mut request) } != k::MPI_SUCCESS() {
                return (k::MPI_SUCCESS(), true); // (no buffer attached: the detach says so)
            }
        }
        let mut flag: c_int = 0;
        // SAFETY: the library's own request.
        let rc = unsafe { PMPI_Test(&mut request, &mut flag, k::MPI_STATUS_IGNORE()) };
        (rc, flag != 0)
    });
}

/// `MPI_Buffer_detach`: forwarded once the buffered messages have gone
/// (a wait a regroup may interrupt, see `buffer_flushed`), and forgotten.
pub unsafe fn MPI_Buffer_detach(buffer_addr: *mut c_void, size: *mut c_int) -> c_int {
    #[cfg(ferry_has = "MPI_Buffer_iflush")]
    // SAFETY: no argument.
    unsafe {
        buffer_flushed()
    };
    // SAFETY: forwarded.
    let rc = unsafe { PMPI_Buffer_detach(buffer_addr, size) };
    if rc == k::MPI_SUCCESS() {
        bsend_buffer(None);
    }
    rc
}

/// `MPI_Buffer_detach_c`: as [`MPI_Buffer_detach`].
#[cfg(ferry_has = "MPI_Buffer_detach_c")]
pub unsafe fn MPI_Buffer_detach_c(buffer_addr: *mut c_void, size: *mut MPI_Count) -> c_int {
    #[cfg(ferry_has = "MPI_Buffer_iflush")]
    // SAFETY: no argument.
    unsafe {
        buffer_flushed()
    };
    // SAFETY: forwarded.
    let rc = unsafe { PMPI_Buffer_detach_c(buffer_addr, size) };
    if rc == k::MPI_SUCCESS() {
        bsend_buffer(None);
    }
    rc
}

// --- time ----------------------------------------------------------------------------

pub unsafe fn MPI_Wtime() -> f64 {
    // SAFETY: a plain forward.
    unsafe { PMPI_Wtime() + wtime_offset() }
}

// --- MPI_Dist_graph_create ----------------------------------------------------

pub unsafe fn MPI_Dist_graph_create(
    comm_old: MPI_Comm,
    n: c_int,
    sources: *const c_int,
    degrees: *const c_int,
    destinations: *const c_int,
    weights: *const c_int,
    info: MPI_Info,
    reorder: c_int,
    comm_dist_graph: *mut MPI_Comm,
) -> c_int {
    // SAFETY: the program's arguments, as MPI requires them.
    unsafe {
        making_comm(comm_old, comm_dist_graph, |comm_old, out| {
            if crate::sys::quirks::DIST_GRAPH_HANGS_WITH_SPAWNED && crate::core::moves::happened() {
                crate::protocol::membership::dist_graph_create(
                    comm_old,
                    n,
                    sources,
                    degrees,
                    destinations,
                    weights,
                    info,
                    reorder,
                    out,
                )
            } else {
                PMPI_Dist_graph_create(
                    comm_old,
                    n,
                    sources,
                    degrees,
                    destinations,
                    weights as *mut c_int,
                    info,
                    reorder,
                    out,
                )
            }
        })
    }
}

/// The frame of a collective that makes a communicator from `comm` (the
/// program's handle) into `newcomm` (the program's out-parameter, maybe
/// null): the superstep counted around `make(real comm, real out)`, the
/// new communicator given a virtual handle.
///
/// # Safety
/// `make` calls MPI as the program's call requires; `newcomm` is null or
/// the program's writable out-parameter.
unsafe fn making_comm(
    comm: MPI_Comm,
    newcomm: *mut MPI_Comm,
    make: impl FnOnce(MPI_Comm, *mut MPI_Comm) -> c_int,
) -> c_int {
    let (comm, slot) = handles::comm_in(comm);
    let mut real_new = handles::comm_null();
    let ticket = crate::core::superstep::enter_collective(slot);
    let comm = ticket.real(comm);
    let out = if newcomm.is_null() {
        newcomm
    } else {
        &mut real_new
    };
    let rc = make(comm, out);
    crate::core::superstep::leave_collective(ticket);
    if rc == k::MPI_SUCCESS() && !newcomm.is_null() {
        // SAFETY: the program's out-parameter.
        unsafe { *newcomm = comms::comm_out(real_new) };
    }
    rc
}

/// `MPI_Comm_split_type`. After a migration on Open MPI, a shared-memory
/// split (`MPI_COMM_TYPE_SHARED`) is made by ferry from the processes'
/// hosts (see `membership::split_by_host`): Open MPI 4.1.4's own crashes
/// (`MPI_ERR_TRUNCATE`) or hangs where processes hold different beliefs of
/// which peers share their node, as spawned processes and the job's first
/// ones do. Everything else goes to the MPI.
pub unsafe fn MPI_Comm_split_type(
    comm: MPI_Comm,
    split_type: c_int,
    key: c_int,
    info: MPI_Info,
    newcomm: *mut MPI_Comm,
) -> c_int {
    // (`happened` is the same in every process: all take part in every
    // migration, and a replacement carries its rank's.)
    let by_host = crate::sys::quirks::NODE_BELIEFS_FROM_SPAWNS
        && split_type == k::MPI_COMM_TYPE_SHARED()
        && crate::core::moves::happened();
    // SAFETY: the program's arguments, as MPI requires them.
    unsafe {
        making_comm(comm, newcomm, |comm, out| {
            if by_host {
                crate::protocol::membership::split_by_host(comm, key, out)
            } else {
                PMPI_Comm_split_type(comm, split_type, key, info, out)
            }
        })
    }
}
