//! Startup: the program is made imageable before its first instruction.
//!
//! `__libc_start_main` (which every dynamically linked C, C++ and Fortran
//! program calls from its entry point) is intercepted. When the image layer
//! is asked for (`FERRY_IMAGE=1`, a checkpoint or a restart), it
//!
//! 1. re-executes the program once with address-space randomization off
//!    (`personality(ADDR_NO_RANDOMIZE)`), so that every library lands at
//!    the same address in every process of the same binary;
//! 2. maps the fixed regions of [`super::layout`] and sets up the arenas;
//! 3. copies `argv` and the environment into the program's arena (so that
//!    the pointers the program keeps to them are carried);
//! 4. runs the real `__libc_start_main` — the program's constructors, then
//!    `main` — on the fixed stack.
//!
//! In a restarted process `main` is not run: the image takes its place
//! (`ops::image::restore`, given through [`Instead`]). Whatever fails here is reported and the program
//! runs as it would without the image layer.
use super::layout::*;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::atomic::Ordering;

type MainFn = unsafe extern "C" fn(c_int, *mut *mut c_char, *mut *mut c_char) -> c_int;
type StartFn = unsafe extern "C" fn(
    MainFn,
    c_int,
    *mut *mut c_char,
    *mut c_void,
    *mut c_void,
    *mut c_void,
    *mut c_void,
) -> c_int;

extern "C" {
    static mut environ: *mut *mut c_char;
}

pub use super::REPLACEMENT_MARKER;

/// What a process runs instead of the program's `main`. This layer knows
/// when (a replacement's marker, `FERRY_RESTART`), the layers above know
/// how: they give these at load time ([`set_instead`], from
/// `entry::life`), before the program's entry point runs.
pub struct Instead {
    /// A replacement of a migrating rank, given the arguments after the
    /// marker; returns an exit code if it does not take over.
    pub replacement: fn(&[String]) -> i32,
    /// A restart from a checkpoint directory; returns an exit code if the
    /// restore failed.
    pub restart: fn(&str) -> i32,
    /// The rank a failed restart reports its exit status for.
    pub restart_rank: fn() -> Option<i32>,
}

static INSTEAD: std::sync::OnceLock<Instead> = std::sync::OnceLock::new();

/// At load: what runs instead of `main` (see [`Instead`]).
pub fn set_instead(instead: Instead) {
    let _ = INSTEAD.set(instead);
}

/// Environment switch that turns the image layer on.
pub const FERRY_IMAGE: &str = "FERRY_IMAGE";
/// Set by `ferry restart`: the checkpoint directory to resume from.
pub const FERRY_RESTART: &str = "FERRY_RESTART";

/// The program's arguments (as `main` got them).
pub fn program_args() -> Vec<String> {
    // SAFETY: set once before main; a null-terminated vector in the arena.
    let Some(s) = (unsafe { START }) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for i in 0..s.argc.max(0) as usize {
        // SAFETY: argc entries.
        let p = unsafe { *s.argv.add(i) };
        if p.is_null() {
            break;
        }
        // SAFETY: a C string of the program's arguments.
        out.push(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned());
    }
    out
}

#[derive(Clone, Copy)]
struct Start {
    real: StartFn,
    main: MainFn,
    argc: c_int,
    argv: *mut *mut c_char,
    init: *mut c_void,
    fini: *mut c_void,
    rtld_fini: *mut c_void,
    stack_end: *mut c_void,
}

/// What the trampoline on the new stack needs (set once, before the switch).
static mut START: Option<Start> = None;
static mut REAL_MAIN: Option<MainFn> = None;

fn env_is(name: &CStr) -> Option<&'static str> {
    // SAFETY: getenv on a valid name; the value lives as long as the
    // environment is not changed, which nothing does during startup.
    unsafe {
        let v = libc::getenv(name.as_ptr());
        if v.is_null() {
            None
        } else {
            CStr::from_ptr(v).to_str().ok()
        }
    }
}

/// Whether this process wants the image layer.
fn wanted(s: &Start) -> bool {
    let on = |v: Option<&str>| v.is_some_and(|v| !v.trim().is_empty());
    if replacing(s.argc, s.argv) {
        return true;
    }
    // Turned off on purpose: such a process cannot be moved or imaged.
    if matches!(env_is(c"FERRY_IMAGE"), Some("0" | "off" | "no" | "false")) {
        return false;
    }
    matches!(env_is(c"FERRY_IMAGE"), Some("1" | "on" | "yes" | "true"))
        || on(env_is(c"FERRY_CHECKPOINT"))
        || on(env_is(c"FERRY_RESTART"))
        || on(env_is(c"FERRY_MIGRATE"))
        || replacing(s.argc, s.argv)
}

/// Whether this process is the replacement of a migrating rank (started
/// by the library with [`REPLACEMENT_MARKER`] as first argument).
fn replacing(argc: c_int, argv: *mut *mut c_char) -> bool {
    if argc < 2 || argv.is_null() {
        return false;
    }
    // SAFETY: argv has argc entries, each a C string.
    let first = unsafe { *argv.add(1) };
    // SAFETY: as above.
    !first.is_null() && unsafe { CStr::from_ptr(first) }.to_bytes() == REPLACEMENT_MARKER.as_bytes()
}

/// Says something on stderr before the logger exists (it is set up at
/// `MPI_Init`).
pub(crate) fn early_warn(msg: &str) {
    let line = format!("ferry: {msg}\n");
    // SAFETY: a plain write of our own buffer.
    unsafe { libc::write(2, line.as_ptr() as *const c_void, line.len()) };
}

#[no_mangle]
/// The C library's program start, intercepted (see the module comment).
///
/// # Safety
/// Called once by the program's entry point, with the arguments the C
/// library's own `__libc_start_main` takes.
pub unsafe extern "C" fn __libc_start_main(
    main: MainFn,
    argc: c_int,
    argv: *mut *mut c_char,
    init: *mut c_void,
    fini: *mut c_void,
    rtld_fini: *mut c_void,
    stack_end: *mut c_void,
) -> c_int {
    // SAFETY: the next definition is glibc's, with this signature.
    let real: StartFn = unsafe {
        let p = libc::dlsym(libc::RTLD_NEXT, c"__libc_start_main".as_ptr());
        if p.is_null() {
            early_warn("cannot find the C library's __libc_start_main");
            libc::abort();
        }
        std::mem::transmute::<*mut c_void, StartFn>(p)
    };
    let start = Start {
        real,
        main,
        argc,
        argv,
        init,
        fini,
        rtld_fini,
        stack_end,
    };
    if !wanted(&start) {
        // SAFETY: forwarded unchanged.
        return unsafe { real(main, argc, argv, init, fini, rtld_fini, stack_end) };
    }
    match std::panic::catch_unwind(|| prepare(&start)) {
        Ok(Ok(start)) => {
            // SAFETY: single-threaded startup; read by the trampoline only.
            unsafe {
                REAL_MAIN = Some(start.main);
                START = Some(start);
                super::context::on_stack(
                    APP_STACK_BASE,
                    APP_STACK_LEN,
                    on_fixed_stack,
                    std::ptr::null_mut(),
                );
            }
            // The real __libc_start_main ends with exit().
            // SAFETY: unreachable in practice; end as the C library would.
            unsafe { libc::_exit(127) }
        }
        Ok(Err(e)) => {
            early_warn(&format!(
                "the process image is off ({e}); the program runs, but cannot be checkpointed or moved"
            ));
        }
        Err(_) => early_warn("internal error while preparing the process image; it is off"),
    }
    // SAFETY: forwarded unchanged.
    unsafe { real(main, argc, argv, init, fini, rtld_fini, stack_end) }
}

/// Everything before the switch to the fixed stack. Returns the start
/// arguments to use (with `argv` in the arena).
fn prepare(s: &Start) -> Result<Start, String> {
    ensure_no_randomization(s)?;
    // SAFETY: no other thread exists (the regions may be there already:
    // mapped by the first allocation of a constructor of the program's).
    unsafe { super::alloc::ensure_arenas() }?;
    super::ACTIVE.store(true, Ordering::SeqCst);
    // What is loaded now is the start's; what is opened from here is noted.
    super::opened::start();
    if env_is(c"FERRY_RESTART").is_some() || replacing(s.argc, s.argv) {
        // Nothing of the new process belongs to the program until its image
        // is back: the constructors' and MPI's allocations go to libc.
        super::IN_MPI.store(1, Ordering::SeqCst);
        // The image brings the program's own copies; the new process keeps
        // its environment where the C library put it (outside the arena,
        // which the image replaces).
        return Ok(*s);
    }
    // From here the main thread's allocations outside the fixed stack still
    // go to libc; copy argv and the environment into the arena by hand (so
    // that the pointers the program keeps to them are carried).
    // SAFETY: argv has argc entries and a null; environ is the C library's.
    let (argv, envp) = unsafe { (copy_vector(s.argv), copy_vector(environ)) };
    // SAFETY: the environment pointer of the C library, replaced by an
    // equal copy before anything else runs.
    unsafe { environ = envp };
    Ok(Start { argv, ..*s })
}

/// Re-executes the program without address-space randomization, unless it
/// already runs so.
fn ensure_no_randomization(s: &Start) -> Result<(), String> {
    // SAFETY: querying the personality changes nothing.
    let persona = unsafe { libc::personality(0xffff_ffff) };
    if persona >= 0 && persona & libc::ADDR_NO_RANDOMIZE != 0 {
        // SAFETY: removes our marker from the environment (children of the
        // program inherit the personality, not the need to re-execute).
        unsafe { libc::unsetenv(c"FERRY_IMAGE_REEXEC".as_ptr()) };
        return Ok(());
    }
    if env_is(c"FERRY_IMAGE_REEXEC").is_some() {
        return Err("address-space randomization cannot be turned off here".into());
    }
    // SAFETY: setting our own personality for the exec that follows; the
    // environment variable marks the second start; execv keeps the pid,
    // the open files and the rest of the environment.
    unsafe {
        if libc::personality((persona as libc::c_ulong) | libc::ADDR_NO_RANDOMIZE as libc::c_ulong)
            < 0
        {
            return Err(format!(
                "cannot turn address-space randomization off: {}",
                std::io::Error::last_os_error()
            ));
        }
        libc::setenv(c"FERRY_IMAGE_REEXEC".as_ptr(), c"1".as_ptr(), 1);
        libc::execv(c"/proc/self/exe".as_ptr(), s.argv as *const *const c_char);
    }
    Err(format!(
        "cannot re-execute the program without address-space randomization: {}",
        std::io::Error::last_os_error()
    ))
}

/// Copies a null-terminated vector of C strings into the program's arena.
///
/// # Safety
/// `v` must be a valid null-terminated vector of C strings (or null).
unsafe fn copy_vector(v: *mut *mut c_char) -> *mut *mut c_char {
    let arena = super::alloc::app();
    let mut n = 0;
    // SAFETY: contract of the function.
    unsafe {
        if !v.is_null() {
            while !(*v.add(n)).is_null() {
                n += 1;
            }
        }
        let out = arena.alloc((n + 1) * std::mem::size_of::<*mut c_char>(), 16) as *mut *mut c_char;
        for i in 0..n {
            let s = *v.add(i);
            let len = libc::strlen(s) + 1;
            let d = arena.alloc(len, 16) as *mut c_char;
            std::ptr::copy_nonoverlapping(s, d, len);
            *out.add(i) = d;
        }
        *out.add(n) = std::ptr::null_mut();
        out
    }
}

/// Runs on the fixed stack: the C library's start, with our `main`.
extern "C" fn on_fixed_stack(_: *mut c_void) -> i64 {
    // SAFETY: set before the switch, read once here.
    let s = unsafe { START.expect("start arguments") };
    // SAFETY: glibc's start, with the arguments it was given (argv copied).
    unsafe {
        (s.real)(
            main_hook,
            s.argc,
            s.argv,
            s.init,
            s.fini,
            s.rtld_fini,
            s.stack_end,
        ) as i64
    }
}

/// The program's `main`, or the restore of its image.
unsafe extern "C" fn main_hook(
    argc: c_int,
    argv: *mut *mut c_char,
    envp: *mut *mut c_char,
) -> c_int {
    super::MAIN_STARTED.store(true, Ordering::SeqCst);
    let instead = INSTEAD.get();
    if let (true, Some(instead)) = (replacing(argc, argv), instead) {
        let args: Vec<String> = (2..argc.max(0) as usize)
            .filter_map(|i| {
                // SAFETY: argc entries, each a C string.
                let p = unsafe { *argv.add(i) };
                // SAFETY: as above.
                (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
            })
            .collect();
        // Does not return when the replacement takes over.
        let code = (instead.replacement)(&args);
        // SAFETY: nothing of the program ran; end the process.
        unsafe { libc::_exit(code) };
    }
    if let (Some(dir), Some(instead)) = (env_is(c"FERRY_RESTART"), instead) {
        // Does not return when the restore succeeds.
        let code = (instead.restart)(dir);
        // (Its launcher may not report it: see `life::record_exit_status`.)
        crate::sys::life::write_exit_status((instead.restart_rank)().unwrap_or(-1), code);
        // SAFETY: nothing of the program ran; end the process.
        unsafe { libc::_exit(code) };
    }
    // SAFETY: set before the switch.
    let main = unsafe { REAL_MAIN.expect("main") };
    // SAFETY: the program's main, with the arguments glibc gives it.
    unsafe { main(argc, argv, envp) }
}
