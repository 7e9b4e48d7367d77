//! The rest of a process's state that lives outside its memory regions or
//! in the C library: signal handlers, working directory, file mode mask,
//! the list of the program's stdio streams, the exit handlers and the
//! environment changes the program made. Captured into [`Extras`] and the
//! recorded lists (kept in the library's memory, so carried with the
//! image) and applied again once the image is in place.
// The interposed C functions are not built into unit tests (whose harness
// keeps libc's): their helpers are unused there.
#![cfg_attr(test, allow(dead_code, unused_macros))]
use std::ffi::{c_int, c_void};
use std::sync::Mutex;

extern "C" {
    static mut _IO_list_all: *mut c_void;
}

/// Offset of `_chain` in glibc's `struct _IO_FILE` on x86-64 (after the
/// flags word and eleven buffer pointers and the marker list).
const FILE_CHAIN_OFFSET: usize = 104;

/// A disposition the program gave a signal (its last one for that
/// signal), recorded by the interposed `sigaction` and `signal`.
#[derive(Clone)]
pub struct Handler {
    pub signo: c_int,
    pub action: libc::sigaction,
    /// Set before `MPI_Init`: the MPI library may have installed its own
    /// handler on top (and call the program's from it), so in a restarted
    /// process it is installed again before `MPI_Init` too.
    pub before_init: bool,
}

/// The program's signal dispositions, one per signal.
static HANDLERS: Mutex<Vec<Handler>> = Mutex::new(Vec::new());

/// The program's recorded dispositions.
pub fn program_handlers() -> Vec<Handler> {
    HANDLERS.lock().map(|h| h.clone()).unwrap_or_default()
}

/// Records a disposition the program set (not MPI: only outside MPI calls
/// on the program's main thread).
fn record_handler(signo: c_int, action: &libc::sigaction) {
    if !super::program_allocates() {
        return;
    }
    let counted = super::enter_mpi();
    let before_init = !crate::sys::life::initialized();
    if let Ok(mut h) = HANDLERS.lock() {
        h.retain(|x| x.signo != signo);
        h.push(Handler {
            signo,
            action: *action,
            before_init,
        });
    }
    super::leave_mpi(counted);
}

/// A disposition as bytes (for the image header).
pub fn handler_bytes(h: &Handler) -> Vec<u8> {
    // SAFETY: a plain C struct, read as its bytes.
    unsafe {
        std::slice::from_raw_parts(
            &h.action as *const libc::sigaction as *const u8,
            std::mem::size_of::<libc::sigaction>(),
        )
    }
    .to_vec()
}

/// A disposition from its bytes (`None` if they are not one).
pub fn handler_from(signo: c_int, b: &[u8], before_init: bool) -> Option<Handler> {
    if b.len() != std::mem::size_of::<libc::sigaction>() || !(1..=64).contains(&signo) {
        return None;
    }
    // SAFETY: a plain C struct, for which all zeroes is a valid value.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: filled with the bytes of a sigaction (`b` is one's size).
    unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), &mut action as *mut _ as *mut u8, b.len()) };
    Some(Handler {
        signo,
        action,
        before_init,
    })
}

/// Installs recorded dispositions (those set before `MPI_Init` or those
/// set after it).
pub fn install_handlers(handlers: &[Handler], before_init: bool) {
    for h in handlers.iter().filter(|h| h.before_init == before_init) {
        if launcher_notices::wants(h.signo) {
            launcher_notices::set_wanted(&h.action);
            continue;
        }
        // SAFETY: a disposition the program had, whose handler function is
        // at the same address in this process (same binary, same layout).
        unsafe { real_sigaction()(h.signo, &h.action, std::ptr::null_mut()) };
    }
}

/// The launcher's notices that a process of the job ended, kept from the
/// program and from MPI ([`crate::sys::quirks::LAUNCHER_SIGNALS_FINALIZED_EXIT`]):
/// SIGUSR1 is caught by [`filter`](launcher_notices) for good; the
/// disposition the program or MPI sets is kept here ("wanted") and the
/// filter hands it every SIGUSR1 but the parent's.
pub mod launcher_notices {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};

    const SIG: c_int = libc::SIGUSR1;
    static ACTIVE: AtomicBool = AtomicBool::new(false);
    /// The wanted disposition: `sa_sigaction` (a function, `SIG_DFL` or
    /// `SIG_IGN`) and `sa_flags`.
    static WANTED: AtomicUsize = AtomicUsize::new(libc::SIG_DFL);
    static WANTED_FLAGS: AtomicI32 = AtomicI32::new(0);
    /// The C library's `sigaction`, resolved before any signal.
    static REAL: AtomicUsize = AtomicUsize::new(0);
    static DROPPED: AtomicU64 = AtomicU64::new(0);

    /// Whether `signo`'s disposition goes through the filter.
    pub fn wants(signo: c_int) -> bool {
        signo == SIG && ACTIVE.load(Ordering::Relaxed)
    }

    /// How many notices were dropped.
    pub fn dropped() -> u64 {
        DROPPED.load(Ordering::Relaxed)
    }

    /// Puts the filter in place, the disposition there now becoming the
    /// wanted one. Once, at load, on an MPI that needs it.
    pub fn install() {
        if !crate::sys::quirks::LAUNCHER_SIGNALS_FINALIZED_EXIT || ACTIVE.load(Ordering::SeqCst) {
            return;
        }
        let real = real_sigaction();
        REAL.store(real as usize, Ordering::SeqCst);
        // SAFETY: plain C structs, for which all zeroes is valid; a query,
        // then our handler installed with the signal's own mask.
        unsafe {
            let mut now: libc::sigaction = std::mem::zeroed();
            if real(SIG, std::ptr::null(), &mut now) != 0 {
                return;
            }
            set_wanted(&now);
            let mut ours: libc::sigaction = std::mem::zeroed();
            ours.sa_sigaction = filter as *const () as usize;
            ours.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            libc::sigemptyset(&mut ours.sa_mask);
            if real(SIG, &ours, std::ptr::null_mut()) == 0 {
                ACTIVE.store(true, Ordering::SeqCst);
            }
        }
    }

    /// Keeps `act` as the wanted disposition.
    pub fn set_wanted(act: &libc::sigaction) {
        WANTED_FLAGS.store(act.sa_flags, Ordering::SeqCst);
        WANTED.store(act.sa_sigaction, Ordering::SeqCst);
    }

    /// The wanted disposition, as `sigaction` would report it.
    pub fn wanted() -> libc::sigaction {
        // SAFETY: a plain C struct, for which all zeroes is valid.
        let mut a: libc::sigaction = unsafe { std::mem::zeroed() };
        a.sa_sigaction = WANTED.load(Ordering::SeqCst);
        a.sa_flags = WANTED_FLAGS.load(Ordering::SeqCst);
        a
    }

    /// The handler of SIGUSR1 while the filter is active.
    extern "C" fn filter(sig: c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
        // SAFETY: the kernel's siginfo for this delivery; getppid is
        // async-signal-safe.
        let from_parent = !info.is_null()
            && unsafe { (*info).si_code == libc::SI_USER && (*info).si_pid() == libc::getppid() };
        if from_parent {
            DROPPED.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let h = WANTED.load(Ordering::SeqCst);
        let flags = WANTED_FLAGS.load(Ordering::SeqCst);
        match h {
            libc::SIG_IGN => {}
            libc::SIG_DFL => {
                // The default action (the end of the process): the signal
                // again, with the default disposition, once this handler
                // returns and unblocks it.
                let real = REAL.load(Ordering::SeqCst);
                if real != 0 {
                    // SAFETY: the C library's sigaction (resolved at
                    // install) and raise, both async-signal-safe.
                    unsafe {
                        let real: SigactionFn = std::mem::transmute::<usize, SigactionFn>(real);
                        let mut dfl: libc::sigaction = std::mem::zeroed();
                        dfl.sa_sigaction = libc::SIG_DFL;
                        real(sig, &dfl, std::ptr::null_mut());
                        libc::raise(sig);
                    }
                }
            }
            f if flags & libc::SA_SIGINFO != 0 => {
                // SAFETY: the handler the program or MPI installed for
                // this signal, with the arguments the kernel gave.
                unsafe {
                    std::mem::transmute::<
                        usize,
                        extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void),
                    >(f)(sig, info, ctx)
                }
            }
            // SAFETY: as above, a one-argument handler.
            f => unsafe { std::mem::transmute::<usize, extern "C" fn(c_int)>(f)(sig) },
        }
    }
}

type SigactionFn =
    unsafe extern "C" fn(c_int, *const libc::sigaction, *mut libc::sigaction) -> c_int;
type SignalFn = unsafe extern "C" fn(c_int, libc::sighandler_t) -> libc::sighandler_t;

fn real_sigaction() -> SigactionFn {
    crate::next!(SigactionFn, c"sigaction")
}

fn real_signal() -> SignalFn {
    crate::next!(SignalFn, c"signal")
}

/// What is applied after the memory is back.
#[derive(Clone, Default)]
pub struct Extras {
    pub cwd: Option<std::path::PathBuf>,
    pub umask: u32,
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
        // The environment is the new process's (its MPI set its own
        // variables there), with the changes the program made replayed on
        // it. The old one's strings are still in the image: pointers the
        // program kept from getenv stay valid.
        libc::unsetenv(c"FERRY_RESTART".as_ptr());
        replay_env_changes();
        // The program's streams go in front of the new process's list, in
        // their old order, so that exit() flushes and closes them.
        if let (Some(&first), Some(&last)) = (x.streams.first(), x.streams.last()) {
            for w in x.streams.windows(2) {
                *((w[0] as *mut u8).add(FILE_CHAIN_OFFSET) as *mut usize) = w[1];
            }
            *((last as *mut u8).add(FILE_CHAIN_OFFSET) as *mut *mut c_void) = _IO_list_all;
            _IO_list_all = first as *mut c_void;
        }
        // The filter's wanted disposition is library memory, carried with
        // the image: the old process's. The program's own, set before
        // `MPI_Init`, was given to this process's filter before the jump
        // and is given again here (as a handler the program installed
        // itself replaces the one MPI chained in front of it).
        for h in x.handlers.iter().filter(|h| h.before_init) {
            if launcher_notices::wants(h.signo) {
                launcher_notices::set_wanted(&h.action);
            }
        }
        install_handlers(&x.handlers, false);
    }
    reregister_exit_handlers();
    Ok(())
}

/// A change the program made to its environment (`setenv`, `unsetenv`,
/// `putenv`), replayed after a restore.
#[derive(Clone)]
enum EnvChange {
    Set(std::ffi::CString, std::ffi::CString),
    Unset(std::ffi::CString),
}

static ENV_CHANGES: Mutex<Vec<EnvChange>> = Mutex::new(Vec::new());

fn record_env(c: impl FnOnce() -> Option<EnvChange>) {
    if !super::program_allocates() {
        return;
    }
    let counted = super::enter_mpi();
    if let Some(c) = c() {
        if let Ok(mut l) = ENV_CHANGES.lock() {
            l.push(c);
        }
    }
    super::leave_mpi(counted);
}

fn replay_env_changes() {
    type SetenvFn = unsafe extern "C" fn(*const libc::c_char, *const libc::c_char, c_int) -> c_int;
    type UnsetenvFn = unsafe extern "C" fn(*const libc::c_char) -> c_int;
    let list = ENV_CHANGES.lock().map(|l| l.clone()).unwrap_or_default();
    for c in list {
        // SAFETY: the C library's functions on C strings of ours.
        unsafe {
            match c {
                EnvChange::Set(k, v) => {
                    crate::next!(SetenvFn, c"setenv")(k.as_ptr(), v.as_ptr(), 1);
                }
                EnvChange::Unset(k) => {
                    crate::next!(UnsetenvFn, c"unsetenv")(k.as_ptr());
                }
            }
        }
    }
}

type CxaAtexit = unsafe extern "C" fn(usize, usize, usize) -> c_int;
type OnExit = unsafe extern "C" fn(usize, usize) -> c_int;

fn real_cxa_atexit() -> CxaAtexit {
    crate::next!(CxaAtexit, c"__cxa_atexit")
}

fn real_on_exit() -> OnExit {
    crate::next!(OnExit, c"on_exit")
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
    if super::main_started() && super::program_allocates() {
        let counted = super::enter_mpi();
        if let Ok(mut l) = EXIT_HANDLERS.lock() {
            l.push(h);
        }
        super::leave_mpi(counted);
    } else if !of_the_program(&h) {
        record_library(h);
    }
}

/// Exit handlers of the libraries that are not carried (MPI and what it
/// loads): a process that ends after a checkpoint runs them (MPICH's
/// launcher takes a process that skipped its own for a failed one) but not
/// the program's. A fixed array: this process's registrations only, never
/// carried into another process (whose own libraries register their own).
struct LibraryHandlers {
    pid: u32,
    n: usize,
    list: [Option<ExitHandler>; 64],
}

static LIBRARY_HANDLERS: Mutex<LibraryHandlers> = Mutex::new(LibraryHandlers {
    pid: 0,
    n: 0,
    list: [None; 64],
});

fn of_the_program(h: &ExitHandler) -> bool {
    let f = match *h {
        ExitHandler::Cxa { f, .. } | ExitHandler::OnExit { f, .. } => f,
    };
    // SAFETY: a plain C struct, for which all zeroes is a valid value.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr only reads the loader's tables.
    if unsafe { libc::dladdr(f as *const c_void, &mut info) } == 0 {
        return true;
    }
    super::carried::carried_base(info.dli_fbase as usize)
}

fn record_library(h: ExitHandler) {
    if let Ok(mut l) = LIBRARY_HANDLERS.lock() {
        let pid = std::process::id();
        if l.pid != pid {
            // Another process's list (carried by an image): start anew.
            l.pid = pid;
            l.n = 0;
        }
        if l.n < l.list.len() {
            let n = l.n;
            l.list[n] = Some(h);
            l.n += 1;
        }
    }
}

/// Runs the exit handlers of the libraries that are not carried (MPI's),
/// last registered first, without the program's: for a process that ends
/// after its image is written.
pub fn run_library_exit_handlers() {
    let list: Vec<ExitHandler> = match LIBRARY_HANDLERS.lock() {
        Ok(l) if l.pid == std::process::id() => l.list[..l.n].iter().flatten().copied().collect(),
        _ => Vec::new(),
    };
    for h in list.into_iter().rev() {
        // SAFETY: a handler a library registered in this process, called
        // once, as exit() would.
        unsafe {
            match h {
                ExitHandler::Cxa { f, arg, .. } => {
                    std::mem::transmute::<usize, extern "C" fn(usize)>(f)(arg)
                }
                ExitHandler::OnExit { f, arg } => {
                    std::mem::transmute::<usize, extern "C" fn(c_int, usize)>(f)(0, arg)
                }
            }
        }
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
    pub unsafe extern "C" fn setenv(
        name: *const libc::c_char,
        value: *const libc::c_char,
        overwrite: c_int,
    ) -> c_int {
        type F = unsafe extern "C" fn(*const libc::c_char, *const libc::c_char, c_int) -> c_int;
        // SAFETY: forwarded.
        let rc = unsafe { crate::next!(F, c"setenv")(name, value, overwrite) };
        if rc == 0 && !name.is_null() && !value.is_null() {
            record_env(|| {
                // SAFETY: C strings the program gave; the value now set is
                // read back (overwrite may have kept the old one).
                unsafe {
                    let k = std::ffi::CStr::from_ptr(name).to_owned();
                    let now = libc::getenv(name);
                    (!now.is_null())
                        .then(|| EnvChange::Set(k, std::ffi::CStr::from_ptr(now).to_owned()))
                }
            });
        }
        rc
    }

    #[no_mangle]
    pub unsafe extern "C" fn unsetenv(name: *const libc::c_char) -> c_int {
        type F = unsafe extern "C" fn(*const libc::c_char) -> c_int;
        // SAFETY: forwarded.
        let rc = unsafe { crate::next!(F, c"unsetenv")(name) };
        if rc == 0 && !name.is_null() {
            // SAFETY: a C string the program gave.
            record_env(|| {
                Some(EnvChange::Unset(
                    // SAFETY: as above.
                    unsafe { std::ffi::CStr::from_ptr(name) }.to_owned(),
                ))
            });
        }
        rc
    }

    #[no_mangle]
    pub unsafe extern "C" fn putenv(string: *mut libc::c_char) -> c_int {
        type F = unsafe extern "C" fn(*mut libc::c_char) -> c_int;
        // SAFETY: forwarded.
        let rc = unsafe { crate::next!(F, c"putenv")(string) };
        if rc == 0 && !string.is_null() {
            record_env(|| {
                // SAFETY: the program's "NAME=VALUE" (or "NAME") string.
                let kv = unsafe { std::ffi::CStr::from_ptr(string) }.to_bytes();
                let c = |b: &[u8]| std::ffi::CString::new(b.to_vec()).ok();
                match kv.iter().position(|&b| b == b'=') {
                    Some(i) => Some(EnvChange::Set(c(&kv[..i])?, c(&kv[i + 1..])?)),
                    None => Some(EnvChange::Unset(c(kv)?)),
                }
            });
        }
        rc
    }

    #[no_mangle]
    pub unsafe extern "C" fn sigaction(
        signo: c_int,
        act: *const libc::sigaction,
        old: *mut libc::sigaction,
    ) -> c_int {
        if launcher_notices::wants(signo) {
            // The filter stays; what is asked for is kept behind it.
            if !old.is_null() {
                // SAFETY: the caller's buffer for the old disposition.
                unsafe { *old = launcher_notices::wanted() };
            }
            if !act.is_null() {
                // SAFETY: the caller's disposition, valid during the call.
                let act = unsafe { &*act };
                launcher_notices::set_wanted(act);
                record_handler(signo, act);
            }
            return 0;
        }
        // SAFETY: forwarded.
        let rc = unsafe { real_sigaction()(signo, act, old) };
        if rc == 0 && !act.is_null() {
            // SAFETY: the caller's disposition, valid during the call.
            record_handler(signo, unsafe { &*act });
        }
        rc
    }

    #[no_mangle]
    pub unsafe extern "C" fn signal(
        signo: c_int,
        handler: libc::sighandler_t,
    ) -> libc::sighandler_t {
        if launcher_notices::wants(signo) {
            let old = launcher_notices::wanted().sa_sigaction;
            // SAFETY: a plain C struct, for which all zeroes is valid;
            // `signal`'s semantics (BSD: restarted calls).
            let mut now: libc::sigaction = unsafe { std::mem::zeroed() };
            now.sa_sigaction = handler;
            now.sa_flags = libc::SA_RESTART;
            launcher_notices::set_wanted(&now);
            record_handler(signo, &now);
            return old;
        }
        // SAFETY: forwarded.
        let old = unsafe { real_signal()(signo, handler) };
        if old != libc::SIG_ERR {
            // What `signal` installed, as `sigaction` reports it.
            // SAFETY: a plain C struct, for which all zeroes is valid.
            let mut now: libc::sigaction = unsafe { std::mem::zeroed() };
            // SAFETY: a query into a zeroed struct.
            if unsafe { real_sigaction()(signo, std::ptr::null(), &mut now) } == 0 {
                record_handler(signo, &now);
            }
        }
        old
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
