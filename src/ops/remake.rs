//! The program's MPI objects in a new process (a replacement, or a
//! restarted one): what a process records before its image is taken
//! (communicator names and error handlers, groups by world ranks, the
//! statuses of requests it completed, derived datatypes), made again on
//! the new MPI once the image is back ([`remake`], [`after_rebuild`]), and
//! what cannot be made again yet ([`library_reasons`]). Migrations and
//! checkpoints both carry them.
use crate::core::handles::with_tables;
use crate::sys::constants as k;
use crate::sys::*;
use std::ffi::{c_int, CString};
use std::mem::MaybeUninit;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What the new MPI must make again, recorded before the capture.
#[derive(Default)]
struct Record {
    /// Communicator slot → name given by the program.
    names: Vec<(usize, CString)>,
    /// Communicator slot → predefined error handler (raw handle bytes).
    errhandlers: Vec<(usize, MPI_Errhandler)>,
    /// Group slot → world ranks.
    groups: Vec<(usize, Vec<c_int>)>,
    /// Request slot → the status it completed with.
    completed: Vec<(usize, MPI_Status)>,
    /// The program's derived datatypes.
    datatypes: Vec<crate::core::datatypes::Saved>,
}

// SAFETY: MPI handles in the record are plain values, only used by the
// thread that calls MPI.
unsafe impl Send for Record {}

static RECORD: Mutex<Option<Record>> = Mutex::new(None);

/// Why this process cannot be carried now (beyond the image's own
/// reasons): MPI objects a new process cannot make again yet. `orphans`: the
/// communicators some members of the job have freed while others still
/// hold them ([`crate::protocol::membership::orphans`]).
pub(crate) fn library_reasons(parked: &[usize], orphans: usize) -> Vec<String> {
    let mut out = Vec::new();
    if orphans > 0 {
        out.push(format!(
            "{orphans} communicator(s) that some ranks have freed and others still use cannot be made again in a new process"
        ));
    }
    // What the tables hold that cannot be carried, counted at once.
    let (w, errh, foreign, swapped, matched) = with_tables(|t| {
        (
            t.windows.len(),
            t.comms.iter().filter(|(_, s)| s.errfn != 0).count(),
            t.comms
                .iter()
                .filter(|(i, s)| {
                    *i >= 2
                        && s.is_communicator()
                        && !s.recipe.as_ref().is_some_and(|r| r.rebuildable())
                })
                .count(),
            t.requests
                .iter()
                .filter(|(i, s)| !parked.contains(i) && s.swap_in != k::MPI_REQUEST_NULL())
                .count(),
            t.messages.len(),
        )
    });
    // RMA windows the program created: their memory is exposed to other
    // processes through the old MPI.
    if w > 0 {
        out.push(format!(
            "the program has {w} RMA window{} open (windows cannot be carried yet)",
            if w == 1 { "" } else { "s" }
        ));
    }
    let keyvals = crate::core::keyvals::program_keyvals_ever();
    if keyvals > 0 {
        out.push(format!(
            "the program made {keyvals} attribute keyval(s): attributes cannot be carried yet"
        ));
    }
    if errh > 0 {
        out.push(format!(
            "{errh} communicator(s) have error handlers of the program: they cannot be carried yet"
        ));
    }
    if foreign > 0 {
        out.push(format!(
            "{foreign} communicator(s) reach processes outside the job (spawned or connected)"
        ));
    }
    if swapped > 0 {
        out.push(format!(
            "{swapped} persistent receive(s) were served across an earlier regroup and not yet completed"
        ));
    }
    if matched > 0 {
        out.push(format!(
            "the program holds {matched} message(s) matched with MPI_Mprobe/MPI_Improbe and not yet received (they cannot be carried yet)"
        ));
    }
    let created = crate::core::objects::live();
    if !created.is_empty() {
        out.push(format!(
            "the program holds MPI objects the image cannot re-create yet: {created}"
        ));
    }
    out
}

/// Records what a new process must make again: names, error handlers,
/// groups, completed requests and derived datatypes (carried by the
/// image, read by [`remake`]).
pub(crate) fn record(
    completed: Vec<(usize, MPI_Status)>,
    datatypes: Vec<crate::core::datatypes::Saved>,
) {
    let record = Record {
        names: comm_names(),
        errhandlers: comm_errhandlers(),
        groups: group_ranks(),
        completed,
        datatypes,
    };
    if let Ok(mut r) = RECORD.lock() {
        *r = Some(record);
    }
}

/// Completes every live request that the regroup does not re-post, and
/// the library's own sends (`MPI_Isendrecv`'s, see
/// [`crate::calls::detached`]): after the drain each has been received.
pub(crate) unsafe fn complete_requests(
    parked: &[usize],
) -> Result<Vec<(usize, MPI_Status)>, String> {
    crate::calls::detached::wait_all(Duration::from_secs(30))?;
    let mut todo: Vec<(usize, MPI_Request)> = with_tables(|t| {
        t.requests
            .iter()
            .filter(|(i, s)| !parked.contains(i) && s.real != k::MPI_REQUEST_NULL())
            .map(|(i, s)| (i, s.real))
            .collect()
    });
    let mut done = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !todo.is_empty() {
        let mut i = 0;
        while i < todo.len() {
            let mut flag: c_int = 0;
            let mut st = MaybeUninit::<MPI_Status>::zeroed();
            // SAFETY: a live request of the program.
            unsafe { PMPI_Test(&mut todo[i].1, &mut flag, st.as_mut_ptr()) };
            if flag != 0 {
                // SAFETY: MPI_Test filled it.
                let st = unsafe { st.assume_init() };
                let slot = todo[i].0;
                let mut req = k::MPI_REQUEST_NULL();
                // SAFETY: a fresh completed request in place of the old.
                unsafe { crate::sys::grequest::completed_request(st, &mut req) };
                crate::core::handles::with_request(slot, |s| s.real = req);
                done.push((slot, st));
                todo.swap_remove(i);
            } else {
                i += 1;
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{} request(s) of the program did not complete within 30 s",
                todo.len()
            ));
        }
        std::thread::yield_now();
    }
    Ok(done)
}

/// Each communicator slot and its real communicator (not the slots that
/// only count collectives: windows and group collectives).
fn comm_reals() -> Vec<(usize, MPI_Comm)> {
    with_tables(|t| {
        t.comms
            .iter()
            .filter(|(_, s)| s.is_communicator() && s.real != k::MPI_COMM_NULL())
            .map(|(i, s)| (i, s.real))
            .collect()
    })
}

/// The communicators the program named, with their names.
fn comm_names() -> Vec<(usize, CString)> {
    comm_reals()
        .into_iter()
        .filter_map(|(i, real)| name_of(real).map(|name| (i, name)))
        .collect()
}

fn name_of(real: MPI_Comm) -> Option<CString> {
    let mut name = [0 as std::ffi::c_char; 256];
    let mut len: c_int = 0;
    // SAFETY: a live communicator; the buffer exceeds MPI_MAX_OBJECT_NAME.
    let rc = unsafe { PMPI_Comm_get_name(real, name.as_mut_ptr(), &mut len) };
    // SAFETY: MPI wrote a NUL-terminated name.
    (rc == k::MPI_SUCCESS() && len > 0)
        .then(|| unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }.to_owned())
}

/// The communicators whose error handler is one of MPI's predefined ones,
/// with it (to set again on the communicators made anew).
fn comm_errhandlers() -> Vec<(usize, MPI_Errhandler)> {
    comm_reals()
        .into_iter()
        .filter_map(|(i, real)| predefined_errhandler(real).map(|eh| (i, eh)))
        .collect()
}

fn predefined_errhandler(real: MPI_Comm) -> Option<MPI_Errhandler> {
    let mut eh = k::MPI_ERRHANDLER_NULL();
    // SAFETY: a live communicator.
    if unsafe { PMPI_Comm_get_errhandler(real, &mut eh) } != k::MPI_SUCCESS() {
        return None;
    }
    let predefined = eh == k::MPI_ERRORS_RETURN() || eh == k::MPI_ERRORS_ARE_FATAL();
    let found = eh;
    // SAFETY: the reference MPI_Comm_get_errhandler gave us (a predefined
    // handle stays valid after it).
    unsafe { PMPI_Errhandler_free(&mut eh) };
    predefined.then_some(found)
}

/// The program's groups made again from their world ranks on `world`
/// (`free_old`: the old real groups are live and freed).
///
/// # Safety
/// `world` is the job's current world.
pub(crate) unsafe fn remake_groups(
    world: MPI_Comm,
    groups: Vec<(usize, Vec<c_int>)>,
    free_old: bool,
) {
    let mut wg = k::MPI_GROUP_NULL();
    // SAFETY: a live communicator.
    unsafe { PMPI_Comm_group(world, &mut wg) };
    for (i, ranks) in groups {
        let mut g = k::MPI_GROUP_NULL();
        // SAFETY: ranks of the world, recorded from the old group.
        unsafe { PMPI_Group_incl(wg, ranks.len() as c_int, ranks.as_ptr(), &mut g) };
        let old = with_tables(|t| t.groups.get_mut(i).map(|slot| std::mem::replace(slot, g)));
        if let Some(mut old) = old.filter(|_| free_old) {
            // SAFETY: the program's old real group, replaced.
            unsafe { PMPI_Group_free(&mut old) };
        }
    }
    // SAFETY: our reference to the world group.
    unsafe { PMPI_Group_free(&mut wg) };
}

pub(crate) fn group_ranks() -> Vec<(usize, Vec<c_int>)> {
    let groups: Vec<(usize, MPI_Group)> =
        with_tables(|t| t.groups.iter().map(|(i, g)| (i, *g)).collect());
    let world = crate::core::handles::world_real();
    groups
        .into_iter()
        .filter_map(|(i, g)| {
            // SAFETY: a live group of the program.
            unsafe { crate::protocol::membership::world_ranks(g, world) }.map(|r| (i, r))
        })
        .collect()
}

/// In the restarted (or replacement) process, after the image is back: the
/// recorded MPI objects made again on the new MPI.
///
/// # Safety
/// The new MPI is up; `world` is the job's world on it.
pub(crate) unsafe fn remake(world: MPI_Comm) {
    // Communicators the old process kept from earlier rebuilds belong to
    // its MPI.
    with_tables(|t| {
        let slots: Vec<usize> = t.comms.iter().map(|(i, _)| i).collect();
        for i in slots {
            if let Some(s) = t.comms.get_mut(i) {
                s.retired.clear();
            }
        }
    });
    let record = RECORD.lock().ok().and_then(|mut r| r.take());
    let Some(record) = record else { return };
    // SAFETY: contract of the function.
    unsafe { remake_groups(world, record.groups, false) };
    if let Err(e) = crate::core::datatypes::remake_all(&record.datatypes)
        .and_then(|()| crate::core::ops::remake_all())
    {
        // The old job is gone: this one cannot go on without its datatypes.
        eprintln!("ferry: restart failed: {e}");
        // SAFETY: ends the job, as MPI does.
        unsafe { PMPI_Abort(world, 1) };
    }
    for (i, st) in record.completed {
        let mut req = k::MPI_REQUEST_NULL();
        // SAFETY: a fresh completed request reporting the recorded status.
        unsafe { crate::sys::grequest::completed_request(st, &mut req) };
        crate::core::handles::with_request(i, |s| s.real = req);
    }
    if let Ok(mut r) = REMADE.lock() {
        *r = Some(Remade {
            names: record.names,
            errhandlers: record.errhandlers,
        });
    }
}

/// Names and error handlers, applied once the communicators are rebuilt.
struct Remade {
    names: Vec<(usize, CString)>,
    errhandlers: Vec<(usize, MPI_Errhandler)>,
}

// SAFETY: predefined error handlers are plain values, used by the thread
// that calls MPI.
unsafe impl Send for Remade {}

static REMADE: Mutex<Option<Remade>> = Mutex::new(None);

/// After the rebuild of a restarted process: names and error handlers on
/// the new communicators.
pub fn after_rebuild() {
    let Some(Remade {
        names,
        errhandlers: ehs,
    }) = REMADE.lock().ok().and_then(|mut r| r.take())
    else {
        return;
    };
    let real_of = |i: usize| with_tables(|t| t.comms.get(i).map(|s| s.real));
    for (i, name) in names {
        if let Some(real) = real_of(i) {
            // SAFETY: a live communicator of the new MPI and a C string.
            unsafe { PMPI_Comm_set_name(real, name.as_ptr()) };
        }
    }
    for (i, eh) in ehs {
        if let Some(real) = real_of(i) {
            // SAFETY: a live communicator and a predefined error handler.
            unsafe { PMPI_Comm_set_errhandler(real, eh) };
            if i == 0 {
                crate::core::errhandlers::world_errhandler_too(k::MPI_COMM_WORLD(), real, eh);
            }
        }
    }
}
