//! Allocation: who gets which memory.
//!
//! * The program's main thread, outside MPI calls: its arena (carried).
//! * The library itself (every Rust allocation of libferry): the library
//!   arena (carried, so that the protocol's tables, queues and the frames
//!   of the interrupted call stay valid in the new process).
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

/// Sets up both arenas in freshly mapped, zeroed regions.
///
/// # Safety
/// The regions of [`APP_HEAP_BASE`] and [`LIB_HEAP_BASE`] must be mapped
/// and unused; called once, before any other thread exists.
pub unsafe fn init_arenas() {
    // SAFETY: contract of the function.
    unsafe {
        Arena::init(LIB_HEAP_BASE as *mut u8, LIB_HEAP_LEN);
        Arena::init(APP_HEAP_BASE as *mut u8, APP_HEAP_LEN);
    }
    LIB_READY.store(true, Ordering::SeqCst);
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
        // The image layer is on only once both arenas are set up.
        crate::image::program_allocates()
    }

    #[no_mangle]
    pub unsafe extern "C" fn malloc(n: usize) -> *mut c_void {
        if to_arena() {
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

    #[no_mangle]
    pub unsafe extern "C" fn calloc(n: usize, m: usize) -> *mut c_void {
        if to_arena() {
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

    #[no_mangle]
    pub unsafe extern "C" fn realloc(p: *mut c_void, n: usize) -> *mut c_void {
        if p.is_null() {
            // SAFETY: as malloc.
            return unsafe { malloc(n) };
        }
        if in_app(p) {
            // SAFETY: a block of the program's arena.
            return unsafe { app().realloc(p as *mut u8, n) as *mut c_void };
        }
        if in_lib(p) {
            // SAFETY: a block of the library arena.
            return unsafe { lib().realloc(p as *mut u8, n) as *mut c_void };
        }
        if to_arena() {
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
