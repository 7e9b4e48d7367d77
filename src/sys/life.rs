//! Where this process is in its life, as every layer may ask: whether
//! `MPI_Init` has run, the thread level MPI provided, whether the process
//! holds a rank of the job (or was spawned by the program itself, outside
//! the job), the job directory, and the exit status it leaves there.
use std::ffi::c_int;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// `MPI_Init` has run and the library is set up.
static INITIALIZED: AtomicBool = AtomicBool::new(false);
/// The thread level MPI provided.
static LEVEL: AtomicI32 = AtomicI32::new(0);
/// The level is `MPI_THREAD_MULTIPLE`.
static MULTIPLE: AtomicBool = AtomicBool::new(false);
/// Set in a process the program spawned itself (see [`job_dir`]).
static OUTSIDE_JOB: AtomicBool = AtomicBool::new(false);

/// At `MPI_Init`, once MPI said which thread level it provides.
pub fn set_thread_level(provided: c_int, multiple: bool) {
    LEVEL.store(provided, Ordering::Relaxed);
    MULTIPLE.store(multiple, Ordering::Relaxed);
}

/// The thread level MPI provided to the program.
pub fn thread_level() -> c_int {
    LEVEL.load(Ordering::Relaxed)
}

/// Whether the program may call MPI from several threads at once.
#[inline(always)]
pub fn thread_multiple() -> bool {
    MULTIPLE.load(Ordering::Relaxed)
}

/// At `MPI_Init`, once the library is set up.
pub fn set_initialized() {
    INITIALIZED.store(true, Ordering::Release);
}

/// Whether `MPI_Init` has run (and the library is set up).
pub fn initialized() -> bool {
    INITIALIZED.load(Ordering::Acquire)
}

/// At `MPI_Init`: this process was spawned by the program (it holds none
/// of the job's ranks).
pub fn set_outside_job(outside: bool) {
    OUTSIDE_JOB.store(outside, Ordering::Relaxed);
}

/// The job directory of this process's ranks (`FERRY_JOB_DIR`), unless
/// this process was spawned by the program (it holds no rank of the job).
pub fn job_dir() -> Option<ferry_common::job::JobDir> {
    if OUTSIDE_JOB.load(Ordering::Relaxed) {
        return None;
    }
    ferry_common::job::JobDir::from_env()
}

/// This rank, for [`on_exit`] (the runtime is gone by then).
static EXIT_RANK: AtomicI32 = AtomicI32::new(-1);

/// Has the program's exit status written to `rank-R.exit` in the job
/// directory when this process exits (not when it leaves its rank: that
/// one ends with `_exit`). Open MPI's launcher, told to keep a job whose
/// process dies (`--enable-recovery`, so that a migration can lose its
/// replacement), exits 0 whatever its ranks' statuses: `ferry run` reads
/// them from here. Called once in each process that holds a rank: at
/// `MPI_Init`, and in a replacement once it has resumed (the list of exit
/// handlers is the C library's, not carried by the image).
pub fn record_exit_status(rank: c_int) {
    if job_dir().is_none() {
        return;
    }
    EXIT_RANK.store(rank, Ordering::Relaxed);
    extern "C" {
        // glibc's: like atexit, with the status given to `exit`.
        fn on_exit(
            function: extern "C" fn(c_int, *mut std::ffi::c_void),
            arg: *mut std::ffi::c_void,
        ) -> c_int;
    }
    // SAFETY: registers a function of this library, which stays loaded
    // until the process ends; no argument.
    if unsafe { on_exit(exit_recorder, std::ptr::null_mut()) } != 0 {
        log::debug!("cannot register the exit status recorder");
    }
}

extern "C" fn exit_recorder(status: c_int, _arg: *mut std::ffi::c_void) {
    let _ =
        std::panic::catch_unwind(|| write_exit_status(EXIT_RANK.load(Ordering::Relaxed), status));
}

/// Writes `rank-R.exit` (see [`record_exit_status`]); also for a process
/// that ends before the program ran (a refused restart).
pub fn write_exit_status(rank: c_int, status: c_int) {
    if let (Some(dir), true) = (job_dir(), rank >= 0) {
        let _ = std::fs::write(
            dir.path().join(format!("rank-{rank}.exit")),
            format!("{status}\n"),
        );
    }
}

/// Appends an event to the job's event log (`FERRY_EVENTS`), if it has
/// one.
pub fn append_event(ev: &ferry_common::events::Event) {
    if let Some(path) = ferry_common::env::var(ferry_common::env::FERRY_EVENTS) {
        if let Err(e) = ferry_common::events::append_event(&path, ev) {
            log::warn!("cannot append to the event log {path}: {e}");
        }
    }
}
