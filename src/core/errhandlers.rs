//! The program's error handlers on communicators.
//!
//! MPI calls a communicator's error handler with the real communicator. The
//! program must see its own (virtual) handle there, as it would without the
//! library: every handler it creates is registered with MPI as one
//! trampoline, which finds the program's function from the handler attached
//! to the communicator and calls it with the virtual handle.
use crate::core::handles::{self, with_tables};
use crate::sys::constants as k;
use crate::sys::*;
use std::collections::HashMap;
use std::ffi::c_int;
use std::sync::Mutex;

/// The program's handler function of each error handler it created.
pub(crate) static COMM_ERRHANDLERS: Mutex<Option<HashMap<usize, usize>>> = Mutex::new(None);

pub(crate) type ErrFn = unsafe extern "C" fn(*mut MPI_Comm, *mut c_int, ...);

pub(crate) fn errhandler_key(eh: MPI_Errhandler) -> usize {
    crate::sys::bits::handle_bits(eh) as usize
}

pub(crate) unsafe extern "C" fn comm_errhandler_trampoline(comm: *mut MPI_Comm, code: *mut c_int) {
    // No MPI call here: MPICH holds a lock of its error handler code while
    // it runs the handler. The function comes from the library's own record
    // of which handler each communicator has.
    // SAFETY: MPI passes a pointer to the communicator that raised the error.
    let real = unsafe { *comm };
    let slot = handles::comm_slot_of_real(real);
    let user = with_tables(|t| {
        slot.and_then(|i| t.comms.get(i))
            .map(|s| s.errfn)
            .unwrap_or(0)
    });
    if user == 0 {
        log::error!("error handler called for a communicator without a known handler function");
        return;
    }
    let mut v = slot.map(handles::comm_virtual).unwrap_or(real);
    // SAFETY: the address the program gave to MPI_Comm_create_errhandler.
    unsafe {
        let f: ErrFn = std::mem::transmute::<usize, ErrFn>(user);
        crate::mem::as_program(|| f(&mut v, code));
    }
}

pub(crate) fn user_errfn(eh: MPI_Errhandler) -> usize {
    COMM_ERRHANDLERS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .and_then(|m| m.get(&errhandler_key(eh)).copied())
        .unwrap_or(0)
}

pub(crate) fn set_errfn(comm: MPI_Comm, eh: MPI_Errhandler) {
    let (_, slot) = handles::comm_in(comm);
    let f = user_errfn(eh);
    with_tables(|t| {
        if let Some(s) = slot.index().and_then(|i| t.comms.get_mut(i)) {
            s.errfn = f;
        }
    });
}

/// Records the error handler a new communicator inherited (`comm_out`).
pub fn note_inherited_errhandler(v: MPI_Comm, real: MPI_Comm) {
    let mut eh = k::MPI_ERRHANDLER_NULL();
    // SAFETY: a communicator MPI just made; the reference is released.
    unsafe {
        if PMPI_Comm_get_errhandler(real, &mut eh) != k::MPI_SUCCESS() {
            return;
        }
        set_errfn(v, eh);
        PMPI_Errhandler_free(&mut eh);
    }
}

/// Errors of calls that name no communicator go to MPI's own
/// `MPI_COMM_WORLD`: when the program's world lives on another real
/// communicator (after a regroup or a restart), the error handler it sets
/// on its world goes to MPI's world as well.
pub fn world_errhandler_too(comm: MPI_Comm, real: MPI_Comm, errhandler: MPI_Errhandler) {
    let world = k::MPI_COMM_WORLD();
    if comm == world && real != world {
        // SAFETY: MPI's world and a handler MPI just accepted.
        unsafe { PMPI_Comm_set_errhandler(world, errhandler) };
    }
}

pub(crate) unsafe fn create_comm_errhandler(
    f: MPI_Comm_errhandler_function,
    errhandler: *mut MPI_Errhandler,
) -> c_int {
    let Some(user) = f else {
        // SAFETY: MPI reports the null function.
        return unsafe { PMPI_Comm_create_errhandler(f, errhandler) };
    };
    // SAFETY: the trampoline takes the two named arguments of the handler
    // type and ignores the variadic rest, which the x86-64 System V calling
    // convention allows (the caller cleans up, the callee reads only what it
    // names).
    let tramp: ErrFn = unsafe {
        std::mem::transmute::<unsafe extern "C" fn(*mut MPI_Comm, *mut c_int), ErrFn>(
            comm_errhandler_trampoline,
        )
    };
    // SAFETY: forwarded with the trampoline in place of the function.
    let rc = unsafe { PMPI_Comm_create_errhandler(Some(tramp), errhandler) };
    if rc == k::MPI_SUCCESS() && !errhandler.is_null() {
        // The program holds MPI's own handle: counted, so that a process
        // image refuses what it cannot make again.
        // SAFETY: MPI wrote the new handler.
        crate::core::objects::made(crate::core::objects::Kind::Errhandler, unsafe {
            *errhandler
        });
        // SAFETY: MPI wrote the new handler.
        let key = errhandler_key(unsafe { *errhandler });
        COMM_ERRHANDLERS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(HashMap::new)
            .insert(key, user as usize);
    }
    rc
}
