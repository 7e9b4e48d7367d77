//! Allocation: who gets which memory.
//!
//! * The program's main thread, outside MPI calls: its arena (carried).
//! * The library itself (every Rust allocation of libferry): the library
//!   arena (carried, so that the protocol's tables, queues and the frames
//!   of the interrupted call stay valid in the new process).
//! * Before `main`, in a process that will be imaged: what the constructors
//!   of the program's own libraries allocate (found by walking the stack to
//!   the innermost frame that decides, see [`premain_program_code`]): its
//!   arena too, so that the state those libraries set up at their start is
//!   carried with their data.
//! * Everything else (MPI inside a call, MPI's threads, the program's other
//!   threads): libc, never carried.
//!
//! `free` and `realloc` route by address, so a block always goes back to
//! the allocator it came from, whatever thread or moment frees it.
// The interposed C functions are not built into unit tests (whose harness
// keeps libc's): their helpers are unused there.
#![cfg_attr(test, allow(dead_code, unused_macros))]
use super::arena::Arena;
use super::layout::*;
use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};

extern "C" {
    fn __libc_malloc(n: usize) -> *mut c_void;
    fn __libc_free(p: *mut c_void);
    fn __libc_calloc(n: usize, m: usize) -> *mut c_void;
    fn __libc_realloc(p: *mut c_void, n: usize) -> *mut c_void;
    fn __libc_memalign(align: usize, n: usize) -> *mut c_void;
}

/// Set when the library's arena is initialized.
static LIB_READY: AtomicBool = AtomicBool::new(false);

/// The program's arena.
#[inline(always)]
pub fn app() -> Arena {
    // SAFETY: the address range of the program's arena (mapped before
    // the image layer is turned on; callers check it or only test
    // addresses).
    unsafe { Arena::from_raw(APP_HEAP_BASE as *mut u8, APP_HEAP_LEN) }
}

/// The library's arena.
#[inline(always)]
pub fn lib() -> Arena {
    // SAFETY: as for `app`.
    unsafe { Arena::from_raw(LIB_HEAP_BASE as *mut u8, LIB_HEAP_LEN) }
}

/// Whether the library's arena is set up (what the library allocates from
/// now on is carried).
pub fn lib_ready() -> bool {
    LIB_READY.load(Ordering::Relaxed)
}

/// Maps the fixed regions and sets up both arenas, once (before `main`,
/// by the first allocation of a program's constructor, or at the start).
///
/// # Safety
/// Called before any other thread exists.
pub unsafe fn ensure_arenas() -> Result<(), String> {
    if LIB_READY.load(Ordering::SeqCst) {
        return Ok(());
    }
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    map_fixed(APP_HEAP_BASE, APP_HEAP_LEN, rw)?;
    map_fixed(APP_STACK_BASE, APP_STACK_LEN, rw)?;
    map_fixed(LIB_HEAP_BASE, LIB_HEAP_LEN, rw)?;
    map_fixed(HANDOVER_BASE, HANDOVER_LEN, rw)?;
    map_fixed(RESTORE_STACK_BASE, RESTORE_STACK_LEN, rw)?;
    // SAFETY: the regions were just mapped, zeroed; no other thread.
    unsafe {
        Arena::init(LIB_HEAP_BASE as *mut u8, LIB_HEAP_LEN);
        Arena::init(APP_HEAP_BASE as *mut u8, APP_HEAP_LEN);
    }
    LIB_READY.store(true, Ordering::SeqCst);
    find_dynamic_linker();
    Ok(())
}

/// The addresses of the dynamic linker's code and data (set with the
/// arenas; empty before).
static LD_LO: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static LD_HI: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Whether code at `caller` is the dynamic linker's.
#[inline(always)]
fn from_dynamic_linker(caller: usize) -> bool {
    let lo = LD_LO.load(Ordering::Relaxed);
    caller.wrapping_sub(lo) < LD_HI.load(Ordering::Relaxed).wrapping_sub(lo)
}

/// Finds the dynamic linker (the object loaded at `AT_BASE`).
fn find_dynamic_linker() {
    // SAFETY: reads an auxiliary vector entry.
    let base = unsafe { libc::getauxval(libc::AT_BASE) } as usize;
    if base == 0 {
        return;
    }
    if let Some(o) = super::elf::objects().into_iter().find(|o| o.base == base) {
        LD_LO.store(o.extent.0, Ordering::Relaxed);
        LD_HI.store(o.extent.1, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------
// Before `main`: the constructors of the program's libraries.

/// Whether allocations before `main` are routed at all in this process:
/// 0 not decided yet, 1 yes, 2 no.
static PREMAIN: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);
/// Set while the router works (its own allocations go to libc).
static ROUTING: AtomicBool = AtomicBool::new(false);

/// Whether this process routes the allocations made before `main`: it will
/// be imaged (asked for by the environment), runs without address-space
/// randomization already (otherwise it is executed again first), and is
/// neither a replacement nor a restart (whose constructors' state is
/// replaced by the image's).
fn premain_wanted() -> bool {
    let env = |name: &std::ffi::CStr| -> Option<&'static [u8]> {
        // SAFETY: getenv on a valid name; the environment is the start's.
        unsafe {
            let v = libc::getenv(name.as_ptr());
            (!v.is_null()).then(|| std::ffi::CStr::from_ptr(v).to_bytes())
        }
    };
    let set = |v: Option<&[u8]>| v.is_some_and(|v| !v.is_empty());
    if set(env(c"FERRY_RESTART")) {
        return false;
    }
    let wanted = match env(c"FERRY_IMAGE") {
        Some(b"0" | b"off" | b"no" | b"false") => false,
        Some(b"1" | b"on" | b"yes" | b"true") => true,
        _ => set(env(c"FERRY_CHECKPOINT")) || set(env(c"FERRY_MIGRATE")),
    };
    // SAFETY: querying the personality changes nothing.
    let persona = unsafe { libc::personality(0xffff_ffff) };
    if !wanted || persona < 0 || persona & libc::ADDR_NO_RANDOMIZE == 0 {
        return false;
    }
    // A replacement is started with the marker as its first argument.
    let mut buf = [0u8; 512];
    // SAFETY: raw system calls on our own buffer (the interposed `open`
    // must not run this early).
    let n = unsafe {
        let fd = libc::syscall(
            libc::SYS_open,
            c"/proc/self/cmdline".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return false;
        }
        let n = libc::syscall(libc::SYS_read, fd, buf.as_mut_ptr(), buf.len());
        libc::syscall(libc::SYS_close, fd);
        n
    };
    let args = &buf[..n.max(0) as usize];
    let mut it = args.split(|&b| b == 0);
    let _exe = it.next();
    it.next() != Some(super::REPLACEMENT_MARKER.as_bytes())
}

/// Before `main`, on the main thread: whether the allocation being made is
/// for the program's state.
#[cold]
#[inline(never)]
fn premain_program_allocates() -> bool {
    if super::main_started() || ROUTING.load(Ordering::Relaxed) {
        return false;
    }
    match PREMAIN.load(Ordering::Relaxed) {
        2 => return false,
        1 => {}
        _ => {
            ROUTING.store(true, Ordering::SeqCst);
            let on = premain_wanted();
            ROUTING.store(false, Ordering::SeqCst);
            PREMAIN.store(if on { 1 } else { 2 }, Ordering::SeqCst);
            if !on {
                return false;
            }
        }
    }
    // SAFETY: gettid and getpid only read.
    if unsafe { libc::gettid() != libc::getpid() } {
        return false;
    }
    ROUTING.store(true, Ordering::SeqCst);
    let program = std::panic::catch_unwind(premain_caller_is_program).unwrap_or(false)
        // SAFETY: before main, on the only thread.
        && unsafe { ensure_arenas() }.is_ok();
    ROUTING.store(false, Ordering::SeqCst);
    program
}

/// What an address's object is to the router.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Frame {
    /// Passed over: libferry itself (the allocator, the router) and the C
    /// library's functions that allocate for their caller.
    Through,
    /// The program's code: the allocation is the program's.
    Program,
    /// The dynamic linker, MPI, libferry's own dependencies, an object
    /// nothing reaches: not the program's.
    Other,
}

/// The objects as the router sees them: (start, end, frame), made once
/// before `main` (and again if an object was loaded since).
struct Table {
    n: usize,
    loads: u64,
    spans: [(usize, usize, Frame); 512],
}

static mut TABLE: Table = Table {
    n: 0,
    loads: 0,
    spans: [(0, 0, Frame::Other); 512],
};

/// How many objects the dynamic linker has loaded so far.
fn loads() -> u64 {
    unsafe extern "C" fn first(info: *mut libc::dl_phdr_info, _: usize, out: *mut c_void) -> i32 {
        // SAFETY: the dynamic linker's record and our counter, during the call.
        unsafe { *(out as *mut u64) = (*info).dlpi_adds };
        1
    }
    let mut n = 0u64;
    // SAFETY: the callback stores one number.
    unsafe { libc::dl_iterate_phdr(Some(first), &mut n as *mut u64 as *mut c_void) };
    n
}

/// The router's view of the code at `ip`.
///
/// # Safety
/// Before `main`, on the only thread, with `ROUTING` set.
unsafe fn frame_of(ip: usize) -> Frame {
    // SAFETY: contract of the function (nothing else touches the table).
    let t = unsafe { &mut *std::ptr::addr_of_mut!(TABLE) };
    let now = loads();
    if t.loads != now {
        let objs = super::elf::objects();
        let sides = super::closure::sides_with(&objs, |_| None);
        // SAFETY: reads an auxiliary vector entry.
        let interp = unsafe { libc::getauxval(libc::AT_BASE) } as usize;
        let fb = super::elf::ferry_base();
        t.n = 0;
        for (o, side) in objs.iter().zip(sides) {
            if t.n == t.spans.len() {
                break;
            }
            use super::closure::Side;
            let f = if o.base == interp && interp != 0 {
                Frame::Other
            } else if o.base == fb {
                Frame::Through
            } else {
                match side {
                    Some(Side::Program | Side::Shared) => Frame::Program,
                    Some(Side::CLibrary) => Frame::Through,
                    _ => Frame::Other,
                }
            };
            t.spans[t.n] = (o.extent.0, o.extent.1, f);
            t.n += 1;
        }
        t.loads = now;
    }
    t.spans[..t.n]
        .iter()
        .find(|s| s.0 <= ip && ip < s.1)
        .map(|s| s.2)
        .unwrap_or(Frame::Other)
}

#[repr(C)]
struct UnwindContext {
    _private: [u8; 0],
}

extern "C" {
    fn _Unwind_Backtrace(
        trace: unsafe extern "C" fn(*mut UnwindContext, *mut c_void) -> i32,
        arg: *mut c_void,
    ) -> i32;
    fn _Unwind_GetIP(ctx: *mut UnwindContext) -> usize;
}

/// Walks the stack from the allocation outwards to the first frame that
/// decides.
fn premain_caller_is_program() -> bool {
    struct Walk {
        decided: Option<bool>,
        frames: u32,
    }
    unsafe extern "C" fn step(ctx: *mut UnwindContext, arg: *mut c_void) -> i32 {
        const NO_REASON: i32 = 0;
        const NORMAL_STOP: i32 = 4;
        // SAFETY: our walk, and the unwinder's context, during the call.
        let (w, ip) = unsafe { (&mut *(arg as *mut Walk), _Unwind_GetIP(ctx)) };
        w.frames += 1;
        if w.frames > 64 {
            return NORMAL_STOP;
        }
        // SAFETY: before main, with ROUTING set (see the caller).
        match unsafe { frame_of(ip.saturating_sub(1)) } {
            Frame::Through => NO_REASON,
            Frame::Program => {
                w.decided = Some(true);
                NORMAL_STOP
            }
            Frame::Other => {
                w.decided = Some(false);
                NORMAL_STOP
            }
        }
    }
    let mut w = Walk {
        decided: None,
        frames: 0,
    };
    // SAFETY: the unwinder walks this thread's stack, calling `step`.
    unsafe { _Unwind_Backtrace(step, &mut w as *mut Walk as *mut c_void) };
    w.decided.unwrap_or(false)
}

/// Whether code at `ip` is the program's (before `main`: who called
/// `dlopen`).
pub fn premain_program_code(ip: usize) -> bool {
    if ROUTING.swap(true, Ordering::SeqCst) {
        return false;
    }
    // SAFETY: before main (callers check), ROUTING set.
    let f = std::panic::catch_unwind(|| unsafe { frame_of(ip.saturating_sub(1)) });
    ROUTING.store(false, Ordering::SeqCst);
    matches!(f, Ok(Frame::Program))
}

#[inline(always)]
fn in_app(p: *const c_void) -> bool {
    (p as usize).wrapping_sub(APP_HEAP_BASE) < APP_HEAP_LEN
}

#[inline(always)]
fn in_lib(p: *const c_void) -> bool {
    (p as usize).wrapping_sub(LIB_HEAP_BASE) < LIB_HEAP_LEN
}

/// The real `malloc_usable_size` of libc (we export our own).
fn libc_usable_size(p: *mut c_void) -> usize {
    type F = unsafe extern "C" fn(*mut c_void) -> usize;
    // SAFETY: libc's malloc_usable_size, on a block of libc's.
    unsafe { crate::next!(F, c"malloc_usable_size")(p) }
}

// ---------------------------------------------------------------------------
// The library's own allocations.

/// The global allocator of libferry: its arena once the image layer is on,
/// libc before (and in processes where it is off).
pub struct LibAlloc;

// SAFETY: every block comes from the library arena or from libc and goes
// back to the one it came from (routed by address); both honour size and
// alignment.
unsafe impl GlobalAlloc for LibAlloc {
    #[inline]
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if LIB_READY.load(Ordering::Relaxed) {
            // SAFETY: the arena is initialized.
            return unsafe { lib().alloc(l.size(), l.align()) };
        }
        // SAFETY: plain libc allocations.
        unsafe {
            if l.align() <= 16 {
                __libc_malloc(l.size()) as *mut u8
            } else {
                __libc_memalign(l.align(), l.size()) as *mut u8
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, _l: Layout) {
        if in_lib(p as *const c_void) {
            // SAFETY: a block of the library arena.
            unsafe { lib().free(p) }
        } else {
            // SAFETY: a block of libc.
            unsafe { __libc_free(p as *mut c_void) }
        }
    }

    #[inline]
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if in_lib(p as *const c_void) {
            if l.align() <= 16 {
                // SAFETY: a block of the library arena.
                return unsafe { lib().realloc(p, n) };
            }
        } else if !LIB_READY.load(Ordering::Relaxed) && l.align() <= 16 {
            // SAFETY: a block of libc, resized by libc.
            return unsafe { __libc_realloc(p as *mut c_void, n) as *mut u8 };
        }
        // Moving between allocators, or over-aligned: allocate, copy, free.
        // SAFETY: the new block has room for min(old, new) bytes.
        unsafe {
            let q = self.alloc(Layout::from_size_align_unchecked(n, l.align()));
            if !q.is_null() {
                std::ptr::copy_nonoverlapping(p, q, l.size().min(n));
                self.dealloc(p, l);
            }
            q
        }
    }
}

// ---------------------------------------------------------------------------
// The program's malloc family (exported; not in unit-test builds, whose
// test harness must keep libc's).

#[cfg(not(test))]
mod exported {
    use super::*;

    #[inline(always)]
    fn to_arena() -> bool {
        // The image layer is on only once both arenas are set up; before
        // `main`, the constructors of the program's libraries.
        crate::mem::program_allocates()
            || (!crate::mem::main_started() && premain_program_allocates())
    }

    /// [`to_arena`] for an allocation asked for by code at `caller`: the
    /// dynamic linker's own (its tables of loaded objects, made while the
    /// program opens a library) are never the program's: they are the C
    /// library's state, and a process that gave its arena back still
    /// closes libraries at its end.
    #[inline(always)]
    fn to_arena_from(caller: usize) -> bool {
        to_arena() && !from_dynamic_linker(caller)
    }

    // malloc, calloc and realloc hand their caller's return address to
    // the function that does the work (two instructions: the stack is
    // left as the caller made it).

    /// `malloc`.
    ///
    /// # Safety
    /// As the C library's.
    #[no_mangle]
    #[unsafe(naked)]
    pub unsafe extern "C" fn malloc(_n: usize) -> *mut c_void {
        std::arch::naked_asm!("mov rsi, [rsp]", "jmp {f}", f = sym malloc_from)
    }

    /// `calloc`.
    ///
    /// # Safety
    /// As the C library's.
    #[no_mangle]
    #[unsafe(naked)]
    pub unsafe extern "C" fn calloc(_n: usize, _m: usize) -> *mut c_void {
        std::arch::naked_asm!("mov rdx, [rsp]", "jmp {f}", f = sym calloc_from)
    }

    /// `realloc`.
    ///
    /// # Safety
    /// As the C library's.
    #[no_mangle]
    #[unsafe(naked)]
    pub unsafe extern "C" fn realloc(_p: *mut c_void, _n: usize) -> *mut c_void {
        std::arch::naked_asm!("mov rdx, [rsp]", "jmp {f}", f = sym realloc_from)
    }

    unsafe extern "C" fn malloc_from(n: usize, caller: usize) -> *mut c_void {
        if to_arena_from(caller) {
            // SAFETY: the arena is initialized.
            return unsafe { app().alloc(n, 16) as *mut c_void };
        }
        // SAFETY: libc's allocator.
        unsafe { __libc_malloc(n) }
    }

    #[no_mangle]
    pub unsafe extern "C" fn free(p: *mut c_void) {
        if p.is_null() {
            return;
        }
        if in_app(p) {
            // SAFETY: a block of the program's arena.
            unsafe { app().free(p as *mut u8) }
        } else if in_lib(p) {
            // SAFETY: a block of the library arena (handed to C code).
            unsafe { lib().free(p as *mut u8) }
        } else {
            // SAFETY: a block of libc.
            unsafe { __libc_free(p) }
        }
    }

    unsafe extern "C" fn calloc_from(n: usize, m: usize, caller: usize) -> *mut c_void {
        if to_arena_from(caller) {
            let Some(bytes) = n.checked_mul(m) else {
                return std::ptr::null_mut();
            };
            // SAFETY: the arena is initialized; the block has `bytes`.
            unsafe {
                let p = app().alloc(bytes, 16);
                if !p.is_null() {
                    std::ptr::write_bytes(p, 0, bytes);
                }
                return p as *mut c_void;
            }
        }
        // SAFETY: libc's allocator.
        unsafe { __libc_calloc(n, m) }
    }

    unsafe extern "C" fn realloc_from(p: *mut c_void, n: usize, caller: usize) -> *mut c_void {
        if p.is_null() {
            // SAFETY: as malloc.
            return unsafe { malloc_from(n, caller) };
        }
        if in_app(p) {
            // SAFETY: a block of the program's arena.
            return unsafe { app().realloc(p as *mut u8, n) as *mut c_void };
        }
        if in_lib(p) {
            // SAFETY: a block of the library arena.
            return unsafe { lib().realloc(p as *mut u8, n) as *mut c_void };
        }
        if to_arena_from(caller) {
            // A block of libc (made before the arena, or by MPI) that the
            // program grows: it moves into the arena, so it is carried.
            // SAFETY: the new block has room for the copied bytes, which the
            // old block holds.
            unsafe {
                let q = app().alloc(n, 16);
                if q.is_null() {
                    return std::ptr::null_mut();
                }
                let old = libc_usable_size(p);
                std::ptr::copy_nonoverlapping(p as *const u8, q, old.min(n));
                __libc_free(p);
                return q as *mut c_void;
            }
        }
        // SAFETY: libc's allocator, its block.
        unsafe { __libc_realloc(p, n) }
    }

    #[no_mangle]
    pub unsafe extern "C" fn reallocarray(p: *mut c_void, n: usize, m: usize) -> *mut c_void {
        match n.checked_mul(m) {
            // SAFETY: as realloc.
            Some(bytes) => unsafe { realloc(p, bytes) },
            None => {
                // SAFETY: errno is thread-local.
                unsafe { *libc::__errno_location() = libc::ENOMEM };
                std::ptr::null_mut()
            }
        }
    }

    unsafe fn aligned(align: usize, n: usize) -> *mut c_void {
        if to_arena() {
            // SAFETY: the arena is initialized.
            return unsafe { app().alloc(n, align.max(16)) as *mut c_void };
        }
        // SAFETY: libc's allocator.
        unsafe { __libc_memalign(align, n) }
    }

    #[no_mangle]
    pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, n: usize) -> i32 {
        if !align.is_power_of_two() || !align.is_multiple_of(std::mem::size_of::<usize>()) {
            return libc::EINVAL;
        }
        // SAFETY: valid alignment; `out` is the caller's.
        let p = unsafe { aligned(align, n) };
        if p.is_null() {
            return libc::ENOMEM;
        }
        // SAFETY: the caller's out-parameter.
        unsafe { *out = p };
        0
    }

    #[no_mangle]
    pub unsafe extern "C" fn memalign(align: usize, n: usize) -> *mut c_void {
        // SAFETY: as `aligned` (a non power of two is rounded up, as glibc).
        unsafe { aligned(align.max(1).next_power_of_two(), n) }
    }

    #[no_mangle]
    pub unsafe extern "C" fn aligned_alloc(align: usize, n: usize) -> *mut c_void {
        if !align.is_power_of_two() {
            // SAFETY: errno is thread-local.
            unsafe { *libc::__errno_location() = libc::EINVAL };
            return std::ptr::null_mut();
        }
        // SAFETY: valid alignment.
        unsafe { aligned(align, n) }
    }

    #[no_mangle]
    pub unsafe extern "C" fn valloc(n: usize) -> *mut c_void {
        // SAFETY: page alignment.
        unsafe { aligned(PAGE, n) }
    }

    #[no_mangle]
    pub unsafe extern "C" fn pvalloc(n: usize) -> *mut c_void {
        // SAFETY: page alignment, whole pages.
        unsafe { aligned(PAGE, page_up(n.max(1))) }
    }

    #[no_mangle]
    pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
        if p.is_null() {
            0
        } else if in_app(p) {
            // SAFETY: a block of the program's arena.
            unsafe { app().usable_size(p as *mut u8) }
        } else if in_lib(p) {
            // SAFETY: a block of the library arena.
            unsafe { lib().usable_size(p as *mut u8) }
        } else {
            libc_usable_size(p)
        }
    }
}
