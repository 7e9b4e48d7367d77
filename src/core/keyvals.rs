//! The program's attribute keyvals on communicators and their callbacks.
//!
//! MPI calls a keyval's copy and delete functions with the real
//! communicator; the program must see its own handle. Each keyval the
//! program creates is registered with MPI with two trampolines that find the
//! program's functions by keyval (MPI passes it) and call them with the
//! virtual handle. A null function (MPICH's MPI_COMM_NULL_COPY_FN and
//! MPI_COMM_NULL_DELETE_FN) keeps its meaning: copy nothing, delete nothing.
use crate::core::handles;
use crate::sys::constants as k;
use crate::sys::*;
use std::collections::HashMap;
use std::ffi::{c_int, c_void};
use std::sync::Mutex;

#[derive(Clone, Copy)]
pub(crate) struct AttrFns {
    /// The program freed the keyval (MPI keeps it while attributes use it,
    /// and still calls its delete function; it can no longer be read with).
    freed: bool,
    copy: MPI_Comm_copy_attr_function,
    delete: MPI_Comm_delete_attr_function,
    /// Made from Fortran (forwarded to the MPI's own Fortran layer): MPI
    /// calls the program's functions itself, never the trampolines.
    fortran: bool,
}

// SAFETY: plain function addresses.
unsafe impl Send for AttrFns {}

pub(crate) static KEYVALS: Mutex<Option<HashMap<c_int, AttrFns>>> = Mutex::new(None);

pub(crate) fn attr_fns(keyval: c_int) -> Option<AttrFns> {
    KEYVALS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .and_then(|m| m.get(&keyval).copied())
}

/// The keyvals the program created and has not freed, for carrying
/// attributes to a rebuilt communicator: each with whether it was made
/// from Fortran (its delete function is the program's own, which the
/// library cannot silence).
pub fn program_keyvals() -> Vec<(c_int, bool)> {
    let mut v: Vec<(c_int, bool)> = KEYVALS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map(|m| {
            m.iter()
                .filter(|(_, f)| !f.freed)
                .map(|(k, f)| (*k, f.fortran))
                .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    v
}

/// A communicator keyval the program made from Fortran, through the MPI's
/// own Fortran layer (the generated forwarding entry points call this):
/// recorded so that its attributes are carried to rebuilt communicators,
/// and counted among the program's keyvals.
pub fn fortran_keyval_made(kv: c_int) {
    record_keyval(kv, None, None, true);
}

/// Records a keyval the program made (see [`AttrFns`]).
pub(crate) fn record_keyval(
    kv: c_int,
    copy: MPI_Comm_copy_attr_function,
    delete: MPI_Comm_delete_attr_function,
    fortran: bool,
) {
    KEYVALS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashMap::new)
        .insert(
            kv,
            AttrFns {
                freed: false,
                copy,
                delete,
                fortran,
            },
        );
}

/// While set, the delete trampoline does not call the program: the library
/// removes an attribute it has carried to a rebuilt communicator from the
/// old one (the program's value lives on, on the new one).
pub(crate) static SILENT_DELETE: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Runs `f` with the program's delete functions silenced (see
/// [`SILENT_DELETE`]).
pub fn with_silent_delete<R>(f: impl FnOnce() -> R) -> R {
    SILENT_DELETE.store(true, std::sync::atomic::Ordering::SeqCst);
    let r = f();
    SILENT_DELETE.store(false, std::sync::atomic::Ordering::SeqCst);
    r
}

/// Every keyval the program created, freed ones included (their
/// attributes may still be held).
pub fn program_keyvals_ever() -> usize {
    KEYVALS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map(|m| m.len())
        .unwrap_or(0)
}

pub(crate) fn keyval_freed(kv: c_int) {
    if let Some(m) = KEYVALS.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        if let Some(f) = m.get_mut(&kv) {
            f.freed = true;
        }
    }
}

pub(crate) fn program_comm(real: MPI_Comm) -> MPI_Comm {
    handles::comm_of_real(real).unwrap_or(real)
}

pub(crate) unsafe extern "C" fn copy_trampoline(
    oldcomm: MPI_Comm,
    keyval: c_int,
    extra_state: *mut c_void,
    attribute_val_in: *mut c_void,
    attribute_val_out: *mut c_void,
    flag: *mut c_int,
) -> c_int {
    match attr_fns(keyval).and_then(|f| f.copy) {
        // SAFETY: the program's own function, with the arguments MPI gave.
        Some(f) => unsafe {
            let comm = program_comm(oldcomm);
            crate::mem::as_program(|| {
                f(
                    comm,
                    keyval,
                    extra_state,
                    attribute_val_in,
                    attribute_val_out,
                    flag,
                )
            })
        },
        None => {
            if !flag.is_null() {
                // SAFETY: MPI's out-parameter.
                unsafe { *flag = 0 };
            }
            k::MPI_SUCCESS()
        }
    }
}

pub(crate) unsafe extern "C" fn delete_trampoline(
    comm: MPI_Comm,
    keyval: c_int,
    attribute_val: *mut c_void,
    extra_state: *mut c_void,
) -> c_int {
    if SILENT_DELETE.load(std::sync::atomic::Ordering::SeqCst) {
        return k::MPI_SUCCESS();
    }
    match attr_fns(keyval).and_then(|f| f.delete) {
        // SAFETY: the program's own function, with the arguments MPI gave.
        Some(f) => unsafe {
            let comm = program_comm(comm);
            crate::mem::as_program(|| f(comm, keyval, attribute_val, extra_state))
        },
        None => k::MPI_SUCCESS(),
    }
}

/// How an attribute of a keyval made from Fortran is carried from one
/// communicator to another (through the MPI's Fortran calls: layer
/// `entry`'s, given at load with [`set_fortran_carrier`]); returns whether
/// there was one to carry.
pub type FortranCarrier = unsafe fn(MPI_Comm, MPI_Comm, c_int) -> bool;

static FORTRAN_CARRIER: std::sync::OnceLock<FortranCarrier> = std::sync::OnceLock::new();

/// At load: how Fortran attributes are carried.
pub fn set_fortran_carrier(f: FortranCarrier) {
    let _ = FORTRAN_CARRIER.set(f);
}

/// Carries the attribute of the Fortran keyval `kv` from `old` to `new`
/// (see [`FortranCarrier`]).
///
/// # Safety
/// `old` and `new` are live communicators of this process.
pub unsafe fn carry_fortran_attribute(old: MPI_Comm, new: MPI_Comm, kv: c_int) -> bool {
    match FORTRAN_CARRIER.get() {
        // SAFETY: contract of the function.
        Some(f) => unsafe { f(old, new, kv) },
        None => false,
    }
}
