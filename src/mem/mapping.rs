//! The program's own memory mappings.
//!
//! Some programs (and language runtimes: Python's object allocator, many
//! Fortran runtimes for large arrays) take memory with `mmap` rather than
//! `malloc`. An anonymous private read-write mapping asked for by the
//! program's main thread outside MPI calls is served from the program's
//! arena instead (page-aligned, zero-filled), so it is carried; `munmap`
//! and `mremap` of such memory go back to the arena.
//!
//! What cannot be carried is recorded and refused at capture time: file
//! mappings the program made, and protections it changed inside its arena.
#![cfg_attr(test, allow(dead_code))]
use super::layout::{page_up, PAGE};
use std::collections::BTreeMap;
use std::ffi::{c_int, c_void};
use std::sync::Mutex;

/// Mappings served from the arena: address → length asked for.
static ARENA_MAPS: Mutex<BTreeMap<usize, usize>> = Mutex::new(BTreeMap::new());
/// Live file mappings of the program: (address, length).
static FILE_MAPS: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());
/// Ranges of the program's arena it made other than read-write.
static PROTECTED: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());

/// Why the program's mappings cannot be carried (empty: they can).
pub fn reasons() -> Vec<String> {
    let mut out = Vec::new();
    let files = FILE_MAPS.lock().map(|v| v.len()).unwrap_or(0);
    if files > 0 {
        out.push(format!(
            "the program has {files} memory-mapped file{} (file mappings cannot be carried yet)",
            if files == 1 { "" } else { "s" }
        ));
    }
    let prot = PROTECTED.lock().map(|v| v.len()).unwrap_or(0);
    if prot > 0 {
        out.push(format!(
            "the program changed the protection of {prot} range{} of its memory",
            if prot == 1 { "" } else { "s" }
        ));
    }
    out
}

fn overlaps(a: (usize, usize), lo: usize, len: usize) -> bool {
    a.0 < lo + len && lo < a.0 + a.1
}

type MmapFn = unsafe extern "C" fn(*mut c_void, usize, c_int, c_int, c_int, i64) -> *mut c_void;
type MunmapFn = unsafe extern "C" fn(*mut c_void, usize) -> c_int;
type MremapFn = unsafe extern "C" fn(*mut c_void, usize, usize, c_int, *mut c_void) -> *mut c_void;
type MprotectFn = unsafe extern "C" fn(*mut c_void, usize, c_int) -> c_int;

/// Whether a mapping request is one the arena serves.
fn arena_serves(addr: *mut c_void, prot: c_int, flags: c_int) -> bool {
    addr.is_null()
        && prot == libc::PROT_READ | libc::PROT_WRITE
        && flags & libc::MAP_ANONYMOUS != 0
        && flags & libc::MAP_PRIVATE != 0
        && flags & (libc::MAP_FIXED | libc::MAP_FIXED_NOREPLACE | libc::MAP_SHARED) == 0
        && super::program_allocates()
}

/// Serves an anonymous mapping from the program's arena (zero-filled).
fn from_arena(len: usize) -> *mut c_void {
    let n = page_up(len.max(1));
    // SAFETY: the arena is initialized (the program allocates there).
    let p = unsafe { super::alloc::app().alloc(n, PAGE) };
    if p.is_null() {
        return libc::MAP_FAILED;
    }
    // Fresh pages read as zero, as from mmap (reused ones are dropped).
    // SAFETY: the block's own whole pages.
    unsafe { libc::madvise(p as *mut c_void, n, libc::MADV_DONTNEED) };
    let counted = super::enter_mpi();
    if let Ok(mut m) = ARENA_MAPS.lock() {
        m.insert(p as usize, n);
    }
    super::leave_mpi(counted);
    p as *mut c_void
}

/// Gives a mapping served by the arena back (all of it, or drops the pages
/// of a part).
fn to_arena(addr: *mut c_void, len: usize) {
    let counted = super::enter_mpi();
    let whole = ARENA_MAPS
        .lock()
        .ok()
        .and_then(|mut m| match m.get(&(addr as usize)) {
            Some(&n) if page_up(len) >= n => m.remove(&(addr as usize)),
            _ => None,
        });
    super::leave_mpi(counted);
    // SAFETY: the program's own mapping in its arena.
    unsafe {
        if whole.is_some() {
            super::alloc::app().free(addr as *mut u8);
        } else if (addr as usize).is_multiple_of(PAGE) {
            libc::madvise(addr, page_up(len), libc::MADV_DONTNEED);
        }
    }
}

fn in_arena(p: *const c_void) -> bool {
    super::alloc::app().contains(p as *const u8)
}

#[cfg(not(test))]
mod exported {
    use super::*;

    #[no_mangle]
    pub unsafe extern "C" fn mmap(
        addr: *mut c_void,
        len: usize,
        prot: c_int,
        flags: c_int,
        fd: c_int,
        off: i64,
    ) -> *mut c_void {
        if arena_serves(addr, prot, flags) {
            return from_arena(len);
        }
        // SAFETY: forwarded.
        let p = unsafe { crate::next!(MmapFn, c"mmap")(addr, len, prot, flags, fd, off) };
        if p != libc::MAP_FAILED
            && flags & libc::MAP_ANONYMOUS == 0
            && super::super::program_allocates()
        {
            if let Ok(mut v) = FILE_MAPS.lock() {
                v.push((p as usize, len));
            }
        }
        p
    }

    #[no_mangle]
    pub unsafe extern "C" fn mmap64(
        addr: *mut c_void,
        len: usize,
        prot: c_int,
        flags: c_int,
        fd: c_int,
        off: i64,
    ) -> *mut c_void {
        // SAFETY: the same function on 64-bit Linux.
        unsafe { mmap(addr, len, prot, flags, fd, off) }
    }

    #[no_mangle]
    pub unsafe extern "C" fn munmap(addr: *mut c_void, len: usize) -> c_int {
        if in_arena(addr) {
            // A whole mapping goes back to the arena; a part of one only
            // drops its pages (they read as zero).
            to_arena(addr, len);
            return 0;
        }
        if let Ok(mut v) = FILE_MAPS.lock() {
            v.retain(|&m| !overlaps(m, addr as usize, len));
        }
        // SAFETY: forwarded.
        unsafe { crate::next!(MunmapFn, c"munmap")(addr, len) }
    }

    #[no_mangle]
    pub unsafe extern "C" fn mremap(
        old: *mut c_void,
        old_len: usize,
        new_len: usize,
        flags: c_int,
        new_addr: *mut c_void,
    ) -> *mut c_void {
        if in_arena(old) {
            if flags & libc::MREMAP_FIXED != 0 {
                // SAFETY: errno is thread-local.
                unsafe { *libc::__errno_location() = libc::EINVAL };
                return libc::MAP_FAILED;
            }
            if new_len <= old_len {
                // SAFETY: the tail pages of the program's own block.
                unsafe {
                    let keep = page_up(new_len);
                    if keep < page_up(old_len) {
                        libc::madvise(
                            (old as *mut u8).add(keep) as *mut c_void,
                            page_up(old_len) - keep,
                            libc::MADV_DONTNEED,
                        );
                    }
                }
                return old;
            }
            if flags & libc::MREMAP_MAYMOVE == 0 {
                // SAFETY: errno is thread-local.
                unsafe { *libc::__errno_location() = libc::ENOMEM };
                return libc::MAP_FAILED;
            }
            let p = from_arena(new_len);
            if p != libc::MAP_FAILED {
                // SAFETY: both blocks hold at least `old_len` bytes.
                unsafe { std::ptr::copy_nonoverlapping(old as *const u8, p as *mut u8, old_len) };
                to_arena(old, old_len);
            }
            return p;
        }
        // SAFETY: forwarded (the fifth argument is read only with
        // MREMAP_FIXED, as in C).
        unsafe { crate::next!(MremapFn, c"mremap")(old, old_len, new_len, flags, new_addr) }
    }

    #[no_mangle]
    pub unsafe extern "C" fn mprotect(addr: *mut c_void, len: usize, prot: c_int) -> c_int {
        if in_arena(addr) {
            if let Ok(mut v) = PROTECTED.lock() {
                v.retain(|&m| !overlaps(m, addr as usize, len));
                if prot != libc::PROT_READ | libc::PROT_WRITE {
                    v.push((addr as usize, len));
                }
            }
        }
        // SAFETY: forwarded.
        unsafe { crate::next!(MprotectFn, c"mprotect")(addr, len, prot) }
    }
}
