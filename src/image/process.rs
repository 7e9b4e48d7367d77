//! The rest of a process's state that lives outside its memory regions or
//! in the C library: signal handlers, working directory, file mode mask,
//! `environ`, the list of the program's stdio streams and the exit
//! handlers the program registered. Captured into [`Extras`] (kept in the
//! library's arena, so carried with the image) and applied again once the
//! image is in place.
// The interposed C functions are not built into unit tests (whose harness
// keeps libc's): their helpers are unused there.
#![cfg_attr(test, allow(dead_code, unused_macros))]
use super::elf;
use std::ffi::{c_int, c_void};
use std::sync::Mutex;

extern "C" {
    static mut environ: *mut *mut libc::c_char;
    static mut _IO_list_all: *mut c_void;
}

/// Offset of `_chain` in glibc's `struct _IO_FILE` on x86-64 (after the
/// flags word and eleven buffer pointers and the marker list).
const FILE_CHAIN_OFFSET: usize = 104;

/// A signal's disposition, as the kernel's `sigaction` has it.
#[derive(Clone)]
pub struct Handler {
    pub signo: c_int,
    pub action: libc::sigaction,
}

/// What is applied after the memory is back.
#[derive(Clone, Default)]
pub struct Extras {
    pub cwd: Option<std::path::PathBuf>,
    pub umask: u32,
    pub environ: usize,
    /// The program's stdio streams (in its arena), in list order.
    pub streams: Vec<usize>,
    pub handlers: Vec<Handler>,
}

/// Exit handlers the program registered once `main` ran (the ones its
/// constructors registered are registered again by the new process's own
/// constructors).
#[derive(Clone, Copy)]
enum ExitHandler {
    Cxa { f: usize, arg: usize, dso: usize },
    OnExit { f: usize, arg: usize },
}

static EXIT_HANDLERS: Mutex<Vec<ExitHandler>> = Mutex::new(Vec::new());

/// Captures the extras of this process.
pub fn capture() -> Extras {
    // SAFETY: umask can only be read by setting it; set it back at once.
    let umask = unsafe {
        let m = libc::umask(0o022);
        libc::umask(m);
        m
    };
    Extras {
        cwd: std::env::current_dir().ok(),
        umask,
        // SAFETY: reading the C library's pointer.
        environ: unsafe { environ } as usize,
        streams: program_streams(),
        handlers: program_handlers(),
    }
}

/// The program's streams, walking the C library's list of open streams
/// (valid in this process).
fn program_streams() -> Vec<usize> {
    let mut out = Vec::new();
    let app = super::alloc::app();
    // SAFETY: the C library's list of streams, read while no other thread
    // of the program runs (checked before a capture); `_chain` is at the
    // same offset in every glibc for x86-64.
    unsafe {
        let mut f = _IO_list_all;
        let mut guard = 0;
        while !f.is_null() && guard < 1 << 20 {
            if app.contains(f as *const u8) {
                out.push(f as usize);
            }
            f = *((f as *const u8).add(FILE_CHAIN_OFFSET) as *const *mut c_void);
            guard += 1;
        }
    }
    out
}

/// Signal handlers that are functions of the program (of the executable or
/// of a carried library).
fn program_handlers() -> Vec<Handler> {
    let fb = elf::ferry_base();
    let carried: Vec<(usize, usize)> = elf::objects()
        .iter()
        .filter(|o| o.carried(fb) && o.base != fb)
        .map(|o| (o.base, o.base))
        .collect();
    let mut out = Vec::new();
    for signo in 1..=64 {
        if matches!(signo, libc::SIGKILL | libc::SIGSTOP | 32 | 33) {
            continue;
        }
        // SAFETY: querying a disposition into a zeroed struct.
        let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
        if unsafe { libc::sigaction(signo, std::ptr::null(), &mut act) } != 0 {
            continue;
        }
        let h = act.sa_sigaction;
        if h == libc::SIG_DFL || h == libc::SIG_IGN {
            continue;
        }
        let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
        // SAFETY: dladdr only reads the loader's tables.
        if unsafe { libc::dladdr(h as *const c_void, &mut info) } == 0 {
            continue;
        }
        let owner = info.dli_fbase as usize;
        if carried.iter().any(|&(b, _)| b == owner) {
            out.push(Handler { signo, action: act });
        }
    }
    out
}

/// Applies the extras in the new process (the memory is back).
pub fn apply(x: &Extras) -> Result<(), String> {
    if let Some(cwd) = &x.cwd {
        std::env::set_current_dir(cwd).map_err(|e| {
            format!(
                "cannot go back to the working directory {}: {e}",
                cwd.display()
            )
        })?;
    }
    // SAFETY: process-wide settings of this (single-threaded, for the
    // program) process, to the values the old one had.
    unsafe {
        libc::umask(x.umask);
        if x.environ != 0 {
            environ = x.environ as *mut *mut libc::c_char;
        }
        // The program's streams go in front of the new process's list, in
        // their old order, so that exit() flushes and closes them.
        if let (Some(&first), Some(&last)) = (x.streams.first(), x.streams.last()) {
            for w in x.streams.windows(2) {
                *((w[0] as *mut u8).add(FILE_CHAIN_OFFSET) as *mut usize) = w[1];
            }
            *((last as *mut u8).add(FILE_CHAIN_OFFSET) as *mut *mut c_void) = _IO_list_all;
            _IO_list_all = first as *mut c_void;
        }
        for h in &x.handlers {
            libc::sigaction(h.signo, &h.action, std::ptr::null_mut());
        }
    }
    reregister_exit_handlers();
    Ok(())
}

type CxaAtexit = unsafe extern "C" fn(usize, usize, usize) -> c_int;
type OnExit = unsafe extern "C" fn(usize, usize) -> c_int;

fn real_cxa_atexit() -> CxaAtexit {
    // SAFETY: the C library's __cxa_atexit.
    unsafe {
        std::mem::transmute::<*mut c_void, CxaAtexit>(libc::dlsym(
            libc::RTLD_NEXT,
            c"__cxa_atexit".as_ptr(),
        ))
    }
}

fn real_on_exit() -> OnExit {
    // SAFETY: the C library's on_exit.
    unsafe {
        std::mem::transmute::<*mut c_void, OnExit>(libc::dlsym(
            libc::RTLD_NEXT,
            c"on_exit".as_ptr(),
        ))
    }
}

fn reregister_exit_handlers() {
    let list = EXIT_HANDLERS.lock().map(|l| l.clone()).unwrap_or_default();
    for h in list {
        // SAFETY: the handlers the program registered in the old process,
        // functions at the same addresses here.
        unsafe {
            match h {
                ExitHandler::Cxa { f, arg, dso } => {
                    real_cxa_atexit()(f, arg, dso);
                }
                ExitHandler::OnExit { f, arg } => {
                    real_on_exit()(f, arg);
                }
            }
        }
    }
}

fn record(h: ExitHandler) {
    if super::startup::main_started() && super::program_allocates() {
        let counted = super::enter_mpi();
        if let Ok(mut l) = EXIT_HANDLERS.lock() {
            l.push(h);
        }
        super::leave_mpi(counted);
    }
}

#[cfg(not(test))]
mod exported {
    use super::*;

    #[no_mangle]
    pub unsafe extern "C" fn __cxa_atexit(f: usize, arg: usize, dso: usize) -> c_int {
        // SAFETY: forwarded.
        let rc = unsafe { real_cxa_atexit()(f, arg, dso) };
        if rc == 0 {
            record(ExitHandler::Cxa { f, arg, dso });
        }
        rc
    }

    #[no_mangle]
    pub unsafe extern "C" fn on_exit(f: usize, arg: usize) -> c_int {
        // SAFETY: forwarded.
        let rc = unsafe { real_on_exit()(f, arg) };
        if rc == 0 {
            record(ExitHandler::OnExit { f, arg });
        }
        rc
    }
}
