//! What cannot be carried yet, found before anything is written: the
//! capture is refused with the reasons and the job goes on.
//!
//! * Threads the program started itself (`pthread_create` from the
//!   program, outside MPI calls): their stacks and registers are not
//!   carried. MPI's own threads are started inside MPI calls and do not
//!   count.
//! * Open files that are not regular files, devices or directories, or
//!   that were deleted or renamed since they were opened.
//!
//! (What the program's MPI objects forbid, RMA windows among them, is the
//! library's to say: `checkpoint::library_reasons`.)
// The interposed C functions are not built into unit tests (whose harness
// keeps libc's): their helpers are unused there.
#![cfg_attr(test, allow(dead_code, unused_macros))]
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::OnceLock;

/// Threads of the program alive now.
static THREADS: AtomicI64 = AtomicI64::new(0);

/// Threads the program started that are still running.
pub fn program_threads() -> i64 {
    THREADS.load(Ordering::SeqCst)
}

/// Every reason this process cannot be imaged now (empty: it can).
pub fn reasons() -> Vec<String> {
    let mut out = Vec::new();
    if !super::active() {
        out.push(
            "the process image is off in this process (FERRY_IMAGE was not set at its start, or \
             address-space randomization could not be turned off)"
                .to_string(),
        );
        return out;
    }
    let n = program_threads();
    if n > 0 {
        out.push(format!(
            "the program runs {n} thread{} of its own (threads cannot be carried yet)",
            if n == 1 { "" } else { "s" }
        ));
    }
    if let Err(e) = super::files::capture() {
        out.push(e.0);
    }
    out.extend(super::mapping::reasons());
    out.extend(super::carried::reasons());
    out
}

type StartRoutine = extern "C" fn(*mut c_void) -> *mut c_void;
type CreateFn = unsafe extern "C" fn(
    *mut libc::pthread_t,
    *const libc::pthread_attr_t,
    StartRoutine,
    *mut c_void,
) -> c_int;

struct Launch {
    start: StartRoutine,
    arg: *mut c_void,
}

/// A key whose destructor runs when a thread of the program ends (by
/// returning or by `pthread_exit`).
fn exit_key() -> libc::pthread_key_t {
    static KEY: OnceLock<libc::pthread_key_t> = OnceLock::new();
    *KEY.get_or_init(|| {
        extern "C" fn ended(_: *mut c_void) {
            THREADS.fetch_sub(1, Ordering::SeqCst);
        }
        let mut k: libc::pthread_key_t = 0;
        // SAFETY: creates a key with our destructor.
        unsafe { libc::pthread_key_create(&mut k, Some(ended)) };
        k
    })
}

extern "C" fn program_thread(p: *mut c_void) -> *mut c_void {
    // SAFETY: the box made in pthread_create below, consumed once.
    let l = unsafe { Box::from_raw(p as *mut Launch) };
    // SAFETY: a non-null value so that the destructor runs at exit.
    unsafe { libc::pthread_setspecific(exit_key(), std::ptr::dangling::<c_void>()) };
    (l.start)(l.arg)
}

#[cfg(not(test))]
#[no_mangle]
/// `pthread_create`, counting the program's own threads.
///
/// # Safety
/// As the C library's `pthread_create`.
pub unsafe extern "C" fn pthread_create(
    thread: *mut libc::pthread_t,
    attr: *const libc::pthread_attr_t,
    start: StartRoutine,
    arg: *mut c_void,
) -> c_int {
    let real = crate::next!(CreateFn, c"pthread_create");
    if !super::program_allocates() {
        // MPI's threads, or any thread before the image layer is on.
        // SAFETY: forwarded.
        return unsafe { real(thread, attr, start, arg) };
    }
    let counted = super::enter_mpi();
    let _ = exit_key();
    let launch = Box::into_raw(Box::new(Launch { start, arg }));
    THREADS.fetch_add(1, Ordering::SeqCst);
    super::leave_mpi(counted);
    // SAFETY: forwarded with our trampoline, which runs the program's start.
    let rc = unsafe { real(thread, attr, program_thread, launch as *mut c_void) };
    if rc != 0 {
        THREADS.fetch_sub(1, Ordering::SeqCst);
        // SAFETY: not handed to any thread.
        drop(unsafe { Box::from_raw(launch) });
    }
    rc
}
