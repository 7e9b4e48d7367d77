//! An allocator for one fixed, already mapped region `[base, base+len)`.
//!
//! Everything the allocator knows lives inside the region: a header in its
//! first page, free-list links inside free blocks, a 16-byte header before
//! every block. Copying the used parts of the region ([`Arena::used_ranges`])
//! and restoring them byte for byte restores the allocator exactly; an
//! [`Arena`] is only a handle, rebuilt from the address by [`Arena::attach`].
//! Stored positions are offsets from `base`, so the bytes do not even care
//! where they are restored.
//!
//! * Small blocks (up to 256 KiB): 56 size classes (16-byte steps up to
//!   256 B, then four per power of two), each with a free list threaded
//!   through its free blocks, carved in order from runs of at least 64 KiB.
//! * Large blocks and runs: page-granular extents, first fit from an
//!   address-ordered list of free extents (coalesced with their neighbours),
//!   else from the bump pointer. A free extent touching the bump pointer is
//!   given back to it. Freed extents of 1 MiB or more are `MADV_DONTNEED`ed.
//! * Alignment: 16 for every block. Larger alignments are served by a large
//!   extent placed at the alignment, or by a padded small block whose
//!   aligned pointer carries a header pointing back at the real block.
//! * One spin lock in the header serializes everything; the allocator never
//!   allocates while holding it.
//!
//! Limits: memory of the size classes stays with its class (runs are never
//! given back); blocks are not zeroed; the lock word is part of the image,
//! so capture the region while no thread is inside the arena.
#![deny(unsafe_op_in_unsafe_fn)]

use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};

/// The page size the arena works in (x86-64 Linux base pages).
pub const PAGE: usize = 4096;
/// Largest block served from the size classes; larger ones are extents.
pub const SMALL_MAX: usize = 256 << 10;

const MAGIC: u64 = u64::from_le_bytes(*b"FERRYARN");
const VERSION: u32 = 1;
/// Size of the header before every block (and the minimum alignment).
const HDR: usize = 16;
/// Where blocks start: page 0 holds the arena header.
const DATA_START: usize = PAGE;
const NCLASSES: usize = 56;
const RUN_MIN: usize = 64 << 10;
const DONTNEED_MIN: usize = 1 << 20;
const SPINS_BEFORE_YIELD: u32 = 256;

// Block header tags (high half of the header's first word).
const TAG_SMALL: u64 = 0xA110_C001;
const TAG_LARGE: u64 = 0xA110_C002;
const TAG_ALIGNED: u64 = 0xA110_C003;
const TAG_FREE: u64 = 0xF4EE_F4EE;

const fn class_size(c: usize) -> usize {
    if c < 16 {
        (c + 1) * 16
    } else {
        let k = c - 16;
        let lg = 8 + k / 4;
        (1 << lg) + (k % 4 + 1) * (1 << (lg - 2))
    }
}

const CLASS_SIZE: [usize; NCLASSES] = {
    let mut t = [0; NCLASSES];
    let mut c = 0;
    while c < NCLASSES {
        t[c] = class_size(c);
        c += 1;
    }
    t
};

/// The smallest class whose blocks hold `size` bytes (`size <= SMALL_MAX`).
#[inline]
fn class_of(size: usize) -> usize {
    if size <= 256 {
        size.max(1).div_ceil(16) - 1
    } else {
        let s = size - 1;
        let lg = (usize::BITS - 1 - s.leading_zeros()) as usize;
        16 + (lg - 8) * 4 + ((s >> (lg - 2)) & 3)
    }
}

#[inline]
const fn is_aligned(x: usize, a: usize) -> bool {
    x & (a - 1) == 0
}

#[inline]
const fn align_up(x: usize, a: usize) -> usize {
    (x + a - 1) & !(a - 1)
}

/// The arena header, at `base`.
#[repr(C)]
struct Header {
    magic: u64,
    version: u32,
    lock: AtomicU32,
    len: usize,
    st: State,
}

/// The allocator's state, only touched under the header's lock. All
/// positions are offsets from `base`; 0 means none.
#[repr(C)]
struct State {
    bump: usize,
    ext_head: usize,
    n_ext: usize,
    allocated: usize,
    live: usize,
    small_free: usize,
    ext_free: usize,
    free: [usize; NCLASSES],
    run_cur: [usize; NCLASSES],
    run_end: [usize; NCLASSES],
}

const _: () = assert!(std::mem::size_of::<Header>() <= DATA_START);

/// A free extent's node, in its first bytes.
#[repr(C)]
struct Ext {
    size: usize,
    next: usize,
}

/// The header before every block: `info` = tag << 32 | class (small) or
/// offset of the pointer from the extent start (large); `aux` = extent size
/// (large) or distance back to the real block (aligned).
#[repr(C)]
struct Blk {
    info: u64,
    aux: u64,
}

const _: () = assert!(std::mem::size_of::<Blk>() == HDR);

#[inline]
fn blk(p: usize) -> *mut Blk {
    (p - HDR) as *mut Blk
}

/// Writes the header of the block at `p`.
///
/// # Safety
/// The 16 bytes before `p` must be ours to write.
#[inline]
unsafe fn put_blk(p: usize, tag: u64, low: usize, aux: usize) {
    let (info, aux) = (tag << 32 | low as u64, aux as u64);
    // SAFETY: per the contract.
    unsafe { blk(p).write(Blk { info, aux }) };
}

/// A snapshot of an arena's accounting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArenaStats {
    /// Usable bytes of the live blocks (class and page rounding included).
    pub allocated_bytes: usize,
    /// Bytes free for reuse: small blocks on free lists plus free extents.
    pub free_bytes: usize,
    /// Number of live blocks.
    pub live_blocks: usize,
    /// Number of free extents below the high-water mark.
    pub free_extents: usize,
    /// Bytes from `base` to the high-water mark (header included).
    pub high_water_bytes: usize,
    /// Length of the region.
    pub capacity: usize,
}

/// A handle on an arena: where its region is. All state is in the region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arena {
    base: *mut u8,
    len: usize,
}

// SAFETY: the handle is an address; all shared state it reaches is in the
// region and only mutated under the region's lock.
unsafe impl Send for Arena {}
// SAFETY: as for Send: every `&self` method locks before touching state.
unsafe impl Sync for Arena {}

/// Exclusive access to the state; unlocks when dropped.
struct Guard<'a> {
    lock: &'a AtomicU32,
    st: &'a mut State,
    base: usize,
    len: usize,
}

impl Drop for Guard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.lock.store(0, Ordering::Release);
    }
}

#[cold]
fn lock_slow(lock: &AtomicU32) {
    let mut spins = 0u32;
    loop {
        while lock.load(Ordering::Relaxed) != 0 {
            if spins < SPINS_BEFORE_YIELD {
                spins += 1;
                std::hint::spin_loop();
            } else {
                // SAFETY: sched_yield has no preconditions.
                unsafe { libc::sched_yield() };
            }
        }
        if lock
            .compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
    }
}

impl Guard<'_> {
    #[inline]
    fn ext(&self, off: usize) -> *mut Ext {
        (self.base + off) as *mut Ext
    }

    fn put_ext(&self, at: usize, size: usize, next: usize) {
        // SAFETY: callers pass the start of a free extent of ours.
        unsafe { self.ext(at).write(Ext { size, next }) };
    }

    fn set_next(&mut self, prev: usize, v: usize) {
        if prev == 0 {
            self.st.ext_head = v;
        } else {
            // SAFETY: `prev` is a free extent of this arena: its node is ours.
            unsafe { (*self.ext(prev)).next = v };
        }
    }

    /// Takes the page-aligned extent `[s, e)` that `fit(fs)` places in the
    /// first free extent starting at `fs` able to hold it, else at the bump
    /// pointer. Leftovers before and after stay free.
    fn take_extent(&mut self, fit: impl Fn(usize) -> (usize, usize)) -> Option<(usize, usize)> {
        let (mut prev, mut cur) = (0, self.st.ext_head);
        while cur != 0 {
            let x = self.ext(cur);
            // SAFETY: list nodes are the first bytes of free extents, ours.
            let (size, next) = unsafe { ((*x).size, (*x).next) };
            let (s, e) = fit(cur);
            let end = cur + size;
            if e <= end {
                self.st.ext_free -= e - s;
                let mut link = next;
                if e < end {
                    self.put_ext(e, end - e, next);
                    link = e;
                    self.st.n_ext += 1;
                }
                if s > cur {
                    self.put_ext(cur, s - cur, link);
                } else {
                    self.set_next(prev, link);
                    self.st.n_ext -= 1;
                }
                return Some((s, e));
            }
            (prev, cur) = (cur, next);
        }
        let fs = self.st.bump;
        let (s, e) = fit(fs);
        if e > self.len {
            return None;
        }
        if s > fs {
            // The alignment gap becomes the last free extent (no free
            // extent ends at the bump pointer, so it has no free neighbour).
            self.put_ext(fs, s - fs, 0);
            self.set_next(prev, fs);
            self.st.n_ext += 1;
            self.st.ext_free += s - fs;
        }
        self.st.bump = e;
        Some((s, e))
    }

    /// Gives the page-aligned extent `[s, e)` back: coalesced with free
    /// neighbours, returned to the bump pointer when it reaches it, its
    /// pages dropped when the free extent is large.
    fn give_extent(&mut self, s: usize, e: usize) {
        let (mut pprev, mut prev, mut cur) = (0, 0, self.st.ext_head);
        while cur != 0 && cur < s {
            // SAFETY: list node of a free extent.
            (pprev, prev, cur) = (prev, cur, unsafe { (*self.ext(cur)).next });
        }
        self.st.ext_free += e - s;
        let (mut ms, mut me, mut drop_hi, mut link) = (s, e, e, cur);
        if cur == e {
            // SAFETY: list node of the following free extent.
            let n = unsafe { &*self.ext(cur) };
            (me, drop_hi, link) = (e + n.size, e + PAGE, n.next);
            self.st.n_ext -= 1;
        }
        // SAFETY: `prev` (when not 0) is a list node.
        let pred = if prev != 0 && prev + unsafe { (*self.ext(prev)).size } == s {
            ms = prev;
            pprev
        } else {
            self.st.n_ext += 1;
            prev
        };
        if me == self.st.bump {
            self.set_next(pred, link);
            self.st.n_ext -= 1;
            self.st.ext_free -= me - ms;
            self.st.bump = ms;
            if me - ms >= DONTNEED_MIN {
                self.dont_need(ms, me);
            }
            return;
        }
        self.put_ext(ms, me - ms, link);
        self.set_next(pred, ms);
        if me - ms >= DONTNEED_MIN {
            self.dont_need(s.max(ms + PAGE), drop_hi.min(me));
        }
    }

    fn dont_need(&self, lo: usize, hi: usize) {
        if lo < hi {
            // SAFETY: [lo, hi) is free, whole pages of our private mapping;
            // its contents are not needed (zero pages on next touch).
            let r = unsafe {
                libc::madvise(
                    (self.base + lo) as *mut libc::c_void,
                    hi - lo,
                    libc::MADV_DONTNEED,
                )
            };
            debug_assert_eq!(r, 0, "madvise failed");
        }
    }

    /// A block of class `c` (its user address), or 0 when out of memory.
    #[inline]
    fn small(&mut self, c: usize) -> usize {
        let head = self.st.free[c];
        let q = if head != 0 {
            let q = self.base + head;
            // SAFETY: a free small block's first word is its list link.
            self.st.free[c] = unsafe { *(q as *const usize) };
            self.st.small_free -= CLASS_SIZE[c];
            q
        } else {
            let slot = CLASS_SIZE[c] + HDR;
            if self.st.run_cur[c] + slot > self.st.run_end[c] {
                let run = align_up(RUN_MIN.max(4 * slot), PAGE);
                let one = align_up(slot, PAGE);
                let Some((s, e)) = self
                    .take_extent(|fs| (fs, fs + run))
                    .or_else(|| self.take_extent(|fs| (fs, fs + one)))
                else {
                    return 0;
                };
                (self.st.run_cur[c], self.st.run_end[c]) = (s, e);
            }
            let q = self.base + self.st.run_cur[c] + HDR;
            self.st.run_cur[c] += slot;
            q
        };
        // SAFETY: `q` is a block of ours with room for its header before it.
        unsafe { put_blk(q, TAG_SMALL, c, 0) };
        self.st.allocated += CLASS_SIZE[c];
        self.st.live += 1;
        q
    }
}

impl Arena {
    /// Writes a fresh arena header into `[base, base+len)` and returns the
    /// handle. `len` is rounded down to whole pages.
    ///
    /// # Safety
    /// The region must be mapped readable and writable, page aligned, zeroed
    /// or unused, at least two pages long, and stay mapped (and used only
    /// through arena handles) for as long as any handle on it is used.
    pub unsafe fn init(base: *mut u8, len: usize) -> Arena {
        let len = len & !(PAGE - 1);
        assert!(
            is_aligned(base as usize, PAGE) && len >= 2 * PAGE,
            "bad arena region"
        );
        let h = base as *mut Header;
        // SAFETY: the caller gives us the region; the header fits in page 0.
        unsafe {
            ptr::write_bytes(base, 0, std::mem::size_of::<Header>());
            (*h).len = len;
            (*h).st.bump = DATA_START;
            (*h).version = VERSION;
            (*h).magic = MAGIC;
        }
        Arena { base, len }
    }

    /// A handle on an arena already initialized in `[base, base+len)` (by
    /// this process or restored from an image): `None` unless the header's
    /// magic number, version and length match.
    ///
    /// # Safety
    /// As for [`Arena::init`]: at least `base`'s first page must be mapped
    /// and readable.
    pub unsafe fn attach(base: *mut u8, len: usize) -> Option<Arena> {
        let len = len & !(PAGE - 1);
        if base.is_null() || !is_aligned(base as usize, PAGE) || len < 2 * PAGE {
            return None;
        }
        let h = base as *const Header;
        // SAFETY: the caller guarantees the header page is readable.
        let ok = unsafe { (*h).magic == MAGIC && (*h).version == VERSION && (*h).len == len };
        ok.then_some(Arena { base, len })
    }

    /// A handle on the region `[base, base+len)` without looking at it (for
    /// the hot path, where the region is known to be initialized).
    ///
    /// # Safety
    /// The region must have been set up by [`Arena::init`] (in this process
    /// or restored from an image) before any allocating method is called.
    #[inline(always)]
    pub const unsafe fn from_raw(base: *mut u8, len: usize) -> Arena {
        Arena {
            base,
            len: len & !(PAGE - 1),
        }
    }

    /// The region this handle manages: `(base, len)`.
    pub fn region(&self) -> (*mut u8, usize) {
        (self.base, self.len)
    }

    #[inline]
    fn lock(&self) -> Guard<'_> {
        let h = self.base as *mut Header;
        // SAFETY: init/attach's contract keeps the header mapped; the lock
        // is only used atomically.
        let lock = unsafe { &(*h).lock };
        if lock
            .compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            lock_slow(lock);
        }
        // SAFETY: we hold the lock: nobody else touches the state (a field
        // disjoint from the lock) until the guard drops.
        let st = unsafe { &mut (*h).st };
        Guard {
            lock,
            st,
            base: self.base as usize,
            len: self.len,
        }
    }

    /// Allocates `size` bytes aligned to `align` (a power of two; 16 is
    /// always given). Null when the region is exhausted or `align` is not a
    /// power of two. Size 0 gives a unique minimal block. The contents are
    /// not zeroed.
    ///
    /// # Safety
    /// The handle's region must be valid (see [`Arena::init`]).
    #[inline]
    pub unsafe fn alloc(&self, size: usize, align: usize) -> *mut u8 {
        if align <= HDR {
            if size <= SMALL_MAX {
                return self.lock().small(class_of(size)) as *mut u8;
            }
            return self.alloc_large(size, HDR);
        }
        if !align.is_power_of_two() {
            return ptr::null_mut();
        }
        if size <= SMALL_MAX && align <= SMALL_MAX && size + align - HDR <= SMALL_MAX {
            let q = self.lock().small(class_of(size + align - HDR));
            if q == 0 {
                return ptr::null_mut();
            }
            let p = align_up(q, align);
            if p != q {
                // SAFETY: p - 16 >= q lies inside the block we own.
                unsafe { put_blk(p, TAG_ALIGNED, 0, p - q) };
            }
            return p as *mut u8;
        }
        self.alloc_large(size, align)
    }

    fn alloc_large(&self, size: usize, align: usize) -> *mut u8 {
        if size > self.len || align > self.len {
            return ptr::null_mut();
        }
        let fit = |fs: usize| {
            let p = align_up(fs + HDR, align);
            ((p - HDR) & !(PAGE - 1), align_up(p + size, PAGE))
        };
        let mut g = self.lock();
        let Some((s, e)) = g.take_extent(fit) else {
            return ptr::null_mut();
        };
        let p = align_up(s + HDR, align);
        // SAFETY: [s, e) is now ours and p - 16 >= s.
        unsafe { put_blk(g.base + p, TAG_LARGE, p - s, e - s) };
        g.st.allocated += e - p;
        g.st.live += 1;
        (g.base + p) as *mut u8
    }

    /// Frees a block from [`Arena::alloc`] or [`Arena::realloc`]; null is
    /// ignored. A pointer whose header is not live (double free) is ignored
    /// in release builds and asserted against in debug builds.
    ///
    /// # Safety
    /// `p` must be null or a live block of this arena, not used afterwards.
    pub unsafe fn free(&self, p: *mut u8) {
        if p.is_null() {
            return;
        }
        debug_assert!(self.contains(p), "free of a pointer outside the arena");
        let mut g = self.lock();
        let mut p = p as usize;
        // SAFETY: p is a block of ours: its header precedes it.
        let mut h = unsafe { blk(p).read() };
        if h.info >> 32 == TAG_ALIGNED {
            // SAFETY: as above; the real block's header precedes it.
            unsafe {
                (*blk(p)).info = TAG_FREE << 32;
                p -= h.aux as usize;
                h = blk(p).read();
            }
        }
        match h.info >> 32 {
            TAG_SMALL => {
                let c = h.info as u32 as usize;
                debug_assert!(c < NCLASSES);
                // SAFETY: the block is ours to mark and link.
                unsafe {
                    (*blk(p)).info = TAG_FREE << 32 | c as u64;
                    *(p as *mut usize) = g.st.free[c];
                }
                g.st.free[c] = p - g.base;
                g.st.small_free += CLASS_SIZE[c];
                g.st.allocated -= CLASS_SIZE[c];
                g.st.live -= 1;
            }
            TAG_LARGE => {
                let s = p - h.info as u32 as usize - g.base;
                let e = s + h.aux as usize;
                // SAFETY: the block is ours to mark.
                unsafe { (*blk(p)).info = TAG_FREE << 32 };
                g.st.allocated -= e - (p - g.base);
                g.st.live -= 1;
                g.give_extent(s, e);
            }
            _ => debug_assert!(false, "free of a block that is not live"),
        }
    }

    /// The usable size of a live block (at least what was asked for).
    ///
    /// # Safety
    /// `p` must be a live block of this arena.
    pub unsafe fn usable_size(&self, p: *mut u8) -> usize {
        let mut p = p as usize;
        // SAFETY: p is a live block: its header (and, for an aligned block,
        // the real block's) precede it.
        let mut h = unsafe { blk(p).read() };
        let mut back = 0;
        if h.info >> 32 == TAG_ALIGNED {
            back = h.aux as usize;
            p -= back;
            // SAFETY: as above.
            h = unsafe { blk(p).read() };
        }
        match h.info >> 32 {
            TAG_SMALL => CLASS_SIZE[h.info as u32 as usize] - back,
            TAG_LARGE => h.aux as usize - h.info as u32 as usize - back,
            _ => 0,
        }
    }

    /// Resizes a block with C `realloc` semantics: null `p` allocates; in
    /// place when it fits (a small block not shrinking below half its class,
    /// a large block shrinking or growing into a free neighbour), else moved.
    /// Null on failure, the old block untouched.
    ///
    /// # Safety
    /// `p` must be null or a live block of this arena; when the result is
    /// not null, `p` must not be used afterwards.
    pub unsafe fn realloc(&self, p: *mut u8, size: usize) -> *mut u8 {
        if p.is_null() {
            // SAFETY: same contract.
            return unsafe { self.alloc(size, HDR) };
        }
        // SAFETY: p is a live block of ours.
        let (h, old) = unsafe { (blk(p as usize).read(), self.usable_size(p)) };
        match h.info >> 32 {
            TAG_LARGE if size > SMALL_MAX => {
                if let Some(q) = self.resize_large(p as usize, h, size) {
                    return q as *mut u8;
                }
            }
            TAG_LARGE => {}
            _ if size <= old && (2 * size >= old || old <= 64 || h.info >> 32 == TAG_ALIGNED) => {
                return p;
            }
            _ => {}
        }
        // SAFETY: same contract.
        let q = unsafe { self.alloc(size, HDR) };
        if q.is_null() {
            return if size <= old { p } else { q };
        }
        // SAFETY: both blocks are ours, distinct, and hold the bytes copied.
        unsafe {
            ptr::copy_nonoverlapping(p, q, old.min(size));
            self.free(p);
        }
        q
    }

    /// Resizes the large block `p` in place, if it can.
    fn resize_large(&self, p: usize, h: Blk, size: usize) -> Option<usize> {
        if size > self.len {
            return None;
        }
        let mut g = self.lock();
        let po = p - g.base;
        let s = po - h.info as u32 as usize;
        let e = s + h.aux as usize;
        let e2 = align_up(po + size, PAGE);
        if e2 > e {
            g.take_extent(|fs| if fs == e { (e, e2) } else { (fs, usize::MAX) })?;
            g.st.allocated += e2 - e;
        } else if e2 < e {
            g.st.allocated -= e - e2;
            g.give_extent(e2, e);
        }
        // SAFETY: the block is ours; its extent is now [s, e2).
        unsafe { (*blk(p)).aux = (e2 - s) as u64 };
        Some(p)
    }

    /// Whether `p` lies in the arena's region (a range check only).
    #[inline]
    pub fn contains(&self, p: *const u8) -> bool {
        (p as usize).wrapping_sub(self.base as usize) < self.len
    }

    /// Replaces `out` with the address ranges to capture: half-open, sorted,
    /// disjoint, page aligned; the header and every block up to the
    /// high-water mark, minus the interiors of free extents. Never
    /// allocates while holding the lock (so `out` may live in this arena).
    pub fn used_ranges(&self, out: &mut Vec<(usize, usize)>) {
        out.clear();
        loop {
            let n = self.lock().st.n_ext + 1;
            out.reserve(n);
            let g = self.lock();
            if out.capacity() < g.st.n_ext + 1 {
                continue;
            }
            let base = g.base;
            let mut push = |lo: usize, hi: usize| {
                if lo < hi {
                    match out.last_mut() {
                        Some(last) if last.1 == base + lo => last.1 = base + hi,
                        _ => out.push((base + lo, base + hi)),
                    }
                }
            };
            let (mut from, mut cur) = (0, g.st.ext_head);
            while cur != 0 {
                // SAFETY: list node of a free extent.
                let x = unsafe { &*g.ext(cur) };
                push(from, cur + PAGE);
                (from, cur) = (cur + x.size, x.next);
            }
            push(from, g.st.bump);
            return;
        }
    }

    /// The end of the used part of the region: nothing at or above it
    /// needs capturing.
    pub fn high_water(&self) -> usize {
        self.base as usize + self.lock().st.bump
    }

    /// A snapshot of the accounting.
    pub fn stats(&self) -> ArenaStats {
        let g = self.lock();
        ArenaStats {
            allocated_bytes: g.st.allocated,
            free_bytes: g.st.small_free + g.st.ext_free,
            live_blocks: g.st.live,
            free_extents: g.st.n_ext,
            high_water_bytes: g.st.bump,
            capacity: g.len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// An anonymous NORESERVE mapping starting at a 1 GiB boundary,
    /// unmapped on drop. The library's arenas start at bases aligned far
    /// beyond any alignment a program asks (`layout`); the arena aligns
    /// blocks from its base, so a test arena on an unaligned base gave a
    /// block 2 MiB off a 4 MiB alignment (`aligned_blocks`, when earlier
    /// tests had moved where mmap places it).
    struct Region(*mut u8, usize, *mut u8, usize);

    impl Region {
        fn new(len: usize) -> Region {
            const ALIGN: usize = 1 << 30;
            let whole = len + ALIGN;
            // SAFETY: a fresh anonymous mapping, no address requested.
            let p = unsafe {
                libc::mmap(
                    ptr::null_mut(),
                    whole,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            assert_ne!(p, libc::MAP_FAILED);
            let start = (p as usize).next_multiple_of(ALIGN) as *mut u8;
            Region(start, len, p as *mut u8, whole)
        }
        fn arena(&self) -> Arena {
            // SAFETY: the mapping outlives the arena's use in each test.
            unsafe { Arena::init(self.0, self.1) }
        }
    }

    impl Drop for Region {
        fn drop(&mut self) {
            // SAFETY: our own mapping.
            unsafe { libc::munmap(self.2 as *mut libc::c_void, self.3) };
        }
    }

    const GIB: usize = 1 << 30;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Writes `pat` on the first 64 KiB of `[p, p+n)` and every 512th byte
    /// after (enough to touch every page, cheap for big blocks).
    fn fill(p: *mut u8, n: usize, pat: u8) {
        // SAFETY: tests only fill blocks they own, within their usable size.
        unsafe { ptr::write_bytes(p, pat, n.min(1 << 16)) };
        for i in ((1 << 16)..n).step_by(512) {
            // SAFETY: as above.
            unsafe { *p.add(i) = pat };
        }
    }
    /// Checks the bytes `fill` wrote (also on a prefix of a filled block).
    fn check(p: *mut u8, n: usize, pat: u8) {
        // SAFETY: as for fill.
        let s = unsafe { std::slice::from_raw_parts(p, n) };
        let head = &s[..n.min(1 << 16)];
        let ok = head
            .iter()
            .chain(s.iter().skip(1 << 16).step_by(512))
            .all(|&b| b == pat);
        assert!(ok, "contents lost at {p:?}");
    }

    /// Live blocks by header start -> end; asserts no overlap on insert.
    #[derive(Default)]
    struct Shadow(BTreeMap<usize, usize>);
    impl Shadow {
        fn insert(&mut self, p: *mut u8, usable: usize) {
            let (lo, hi) = (p as usize - HDR, p as usize + usable);
            if let Some((_, &e)) = self.0.range(..=lo).next_back() {
                assert!(e <= lo, "overlap below {p:?}");
            }
            if let Some((&s, _)) = self.0.range(lo..).next() {
                assert!(hi <= s, "overlap above {p:?}");
            }
            self.0.insert(lo, hi);
        }
        fn remove(&mut self, p: *mut u8) {
            assert!(self.0.remove(&(p as usize - HDR)).is_some());
        }
    }

    fn check_ranges(a: &Arena, sh: &Shadow) -> usize {
        let mut r = Vec::new();
        a.used_ranges(&mut r);
        assert_eq!(r[0].0, a.base as usize);
        for w in r.windows(2) {
            assert!(w[0].1 < w[1].0, "unsorted or touching ranges");
        }
        for &(lo, hi) in &r {
            assert!(is_aligned(lo | hi, PAGE) && lo < hi);
        }
        assert_eq!(r.last().unwrap().1, a.high_water());
        for (&lo, &hi) in &sh.0 {
            let i = r.partition_point(|&(_, e)| e <= lo);
            assert!(
                i < r.len() && r[i].0 <= lo && hi <= r[i].1,
                "live block not captured"
            );
        }
        r.iter().map(|(lo, hi)| hi - lo).sum()
    }

    fn random_size(rng: &mut Rng) -> usize {
        match rng.below(100) {
            0..=79 => rng.below(300),
            80..=96 => rng.below(SMALL_MAX),
            _ => SMALL_MAX + rng.below(6 << 20),
        }
    }

    #[test]
    fn classes_round_trip() {
        for s in 0..=SMALL_MAX {
            let c = class_of(s);
            assert!(
                CLASS_SIZE[c] >= s && (c == 0 || CLASS_SIZE[c - 1] < s),
                "{s}"
            );
            assert!(is_aligned(CLASS_SIZE[c], 16));
        }
        assert_eq!(CLASS_SIZE[NCLASSES - 1], SMALL_MAX);
    }

    #[test]
    fn random_with_shadow() {
        let r = Region::new(4 * GIB);
        let a = r.arena();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut live: Vec<(*mut u8, usize, u8)> = Vec::new();
        let mut sh = Shadow::default();
        for op in 0..200_000u32 {
            let k = rng.below(10);
            if k < 5 || live.is_empty() {
                let size = random_size(&mut rng);
                let align = if rng.below(8) == 0 {
                    1 << rng.below(22)
                } else {
                    16
                };
                // SAFETY: valid arena.
                let p = unsafe { a.alloc(size, align) };
                assert!(!p.is_null() && is_aligned(p as usize, align.max(16)));
                // SAFETY: p is live.
                let n = unsafe { a.usable_size(p) };
                assert!(n >= size);
                let pat = rng.next() as u8;
                fill(p, n, pat);
                sh.insert(p, n);
                live.push((p, n, pat));
            } else if k < 9 {
                let (p, n, pat) = live.swap_remove(rng.below(live.len()));
                check(p, n, pat);
                sh.remove(p);
                // SAFETY: p is live and dropped from the model.
                unsafe { a.free(p) };
            } else {
                let i = rng.below(live.len());
                let (p, n, pat) = live[i];
                let size = random_size(&mut rng);
                // SAFETY: p is live.
                let q = unsafe { a.realloc(p, size) };
                assert!(!q.is_null() && is_aligned(q as usize, 16));
                check(q, n.min(size), pat);
                sh.remove(p);
                // SAFETY: q is live.
                let m = unsafe { a.usable_size(q) };
                assert!(m >= size);
                fill(q, m, pat);
                sh.insert(q, m);
                live[i] = (q, m, pat);
            }
            if op % 20_000 == 0 {
                check_ranges(&a, &sh);
            }
        }
        check_ranges(&a, &sh);
        for (p, n, pat) in live.drain(..) {
            check(p, n, pat);
            // SAFETY: live.
            unsafe { a.free(p) };
        }
        let st = a.stats();
        assert_eq!((st.allocated_bytes, st.live_blocks), (0, 0));
    }

    #[test]
    fn realloc_keeps_contents() {
        let r = Region::new(4 * GIB);
        let a = r.arena();
        // SAFETY: whole test: blocks are used only while live.
        unsafe {
            // A large block at the top grows in place; one before a free
            // neighbour too (a fresh arena: all from the bump pointer).
            let b = a.alloc(1 << 20, 16);
            let c = a.alloc(1 << 20, 16);
            assert_eq!(a.realloc(c, 9 << 20), c);
            let d = a.alloc(1 << 20, 16);
            a.free(c);
            assert_eq!(a.realloc(b, 5 << 20), b);
            assert_eq!(a.usable_size(b), (5 << 20) + PAGE - HDR);
            // Shrinking in place frees the tail for the next block.
            assert_eq!(a.realloc(b, 2 << 20), b);
            let e = a.alloc(2 << 20, 16);
            assert!(e as usize > b as usize && (e as usize) < d as usize);
            // Through the classes and sizes, in place or moved.
            let mut p = a.alloc(10, 16);
            fill(p, 10, 7);
            let mut n = 10;
            for size in [100, 5000, 300_000, 3 << 20, 50 << 20, 1 << 20, 200, 8] {
                p = a.realloc(p, size);
                check(p, n.min(size), 7);
                fill(p, size, 7);
                n = size;
            }
            // Failure leaves the block alone.
            fill(e, 2 << 20, 3);
            assert!(a.realloc(e, 8 * GIB).is_null());
            check(e, 2 << 20, 3);
            for q in [p, b, d, e] {
                a.free(q);
            }
            assert_eq!(a.stats().allocated_bytes, 0);
        }
    }

    #[test]
    fn aligned_blocks() {
        let r = Region::new(4 * GIB);
        let a = r.arena();
        let mut sh = Shadow::default();
        let mut live = Vec::new();
        for lg in 0..=24 {
            for size in [0, 1, 24, 1000, 100_000, 300_000, 3 << 20] {
                let align = 1usize << lg;
                // SAFETY: valid arena; blocks used while live.
                unsafe {
                    let p = a.alloc(size, align);
                    assert!(
                        !p.is_null() && is_aligned(p as usize, align.max(16)),
                        "p {p:?} align {align} size {size} base {:?}",
                        r.0
                    );
                    let n = a.usable_size(p);
                    assert!(n >= size);
                    fill(p, n, lg as u8);
                    sh.insert(p, n);
                    live.push((p, n, lg as u8));
                }
            }
        }
        // SAFETY: a non power of two is refused.
        assert!(unsafe { a.alloc(8, 48) }.is_null());
        check_ranges(&a, &sh);
        for (p, n, pat) in live {
            check(p, n, pat);
            // SAFETY: live.
            unsafe { a.free(p) };
        }
        assert_eq!(a.stats().live_blocks, 0);
    }

    #[test]
    fn used_ranges_skip_freed_extent() {
        let r = Region::new(4 * GIB);
        let a = r.arena();
        let mut sh = Shadow::default();
        // SAFETY: whole test: blocks used while live.
        unsafe {
            let small: Vec<_> = (0..100).map(|i| a.alloc(i * 10, 16)).collect();
            let big = a.alloc(64 << 20, 16);
            fill(big, 64 << 20, 1);
            let after = a.alloc(1 << 20, 16);
            for &p in small.iter().chain([&after]) {
                sh.insert(p, a.usable_size(p));
            }
            let before = check_ranges(&a, &sh);
            assert!(before > 64 << 20);
            a.free(big);
            let total = check_ranges(&a, &sh);
            assert!(total < 4 << 20, "captured {total} bytes");
            // The freed pages are gone from memory.
            let interior = align_up(big as usize, PAGE) + PAGE;
            let n = (60 << 20) / PAGE;
            let mut v = vec![0u8; n];
            assert_eq!(
                libc::mincore(interior as *mut _, n * PAGE, v.as_mut_ptr()),
                0
            );
            assert!(v.iter().all(|b| b & 1 == 0), "freed pages still resident");
            // Freeing the top block gives its extent back to the bump pointer.
            let hw = a.high_water();
            a.free(after);
            assert!(a.high_water() < hw - (65 << 20));
            assert_eq!(a.stats().free_extents, 0);
        }
    }

    #[test]
    fn attach_and_restore_copy() {
        let r = Region::new(4 * GIB);
        let a = r.arena();
        // SAFETY: whole test: both regions are ours, blocks used while live.
        unsafe {
            assert_eq!(Arena::attach(r.0, r.1), Some(a));
            assert_eq!(Arena::attach(r.0, r.1 / 2), None);
            let fresh = Region::new(GIB);
            assert_eq!(Arena::attach(fresh.0, fresh.1), None);
            let blocks: Vec<_> = (0..2000).map(|i| (a.alloc(i * 37, 16), i as u8)).collect();
            for &(p, i) in &blocks {
                fill(p, a.usable_size(p), i);
            }
            let big = a.alloc(32 << 20, 16);
            let keep = a.alloc(1 << 20, 1 << 20);
            fill(keep, 1 << 20, 9);
            a.free(big);
            for &(p, _) in blocks.iter().step_by(3) {
                a.free(p);
            }
            // "Capture" the used ranges into a second region at the same
            // offsets and attach there.
            let r2 = Region::new(4 * GIB);
            let mut ranges = Vec::new();
            a.used_ranges(&mut ranges);
            for &(lo, hi) in &ranges {
                let off = lo - r.0 as usize;
                ptr::copy_nonoverlapping(lo as *const u8, r2.0.add(off), hi - lo);
            }
            let b = Arena::attach(r2.0, r2.1).expect("restored arena");
            assert_eq!(a.stats(), b.stats());
            let moved = |p: *mut u8| r2.0.add(p as usize - r.0 as usize);
            check(moved(keep), 1 << 20, 9);
            for (k, &(p, i)) in blocks.iter().enumerate() {
                if k % 3 != 0 {
                    check(moved(p), b.usable_size(moved(p)), i);
                    b.free(moved(p));
                }
            }
            // The restored arena reuses the freed hole, as the original would.
            let x = a.alloc(16 << 20, 16);
            let y = b.alloc(16 << 20, 16);
            assert_eq!(moved(x), y);
            b.free(moved(keep));
            b.free(y);
            assert_eq!(b.stats().live_blocks, 0);
            // A bad magic number refuses.
            (*(r.0 as *mut Header)).magic ^= 1;
            assert_eq!(Arena::attach(r.0, r.1), None);
        }
    }

    #[test]
    fn coalescing_reuses_the_hole() {
        let r = Region::new(4 * GIB);
        let a = r.arena();
        // SAFETY: whole test: blocks used while live.
        unsafe {
            let sz = (2 << 20) - HDR;
            let [x, y, z, guard] = [0; 4].map(|_| a.alloc(sz, 16));
            assert_eq!(y as usize - x as usize, 2 << 20);
            assert_eq!(z as usize - y as usize, 2 << 20);
            let hw = a.high_water();
            a.free(y);
            a.free(x);
            a.free(z);
            let st = a.stats();
            assert_eq!((st.free_extents, st.free_bytes), (1, 6 << 20));
            let w = a.alloc(3 * sz + 2 * HDR, 16);
            assert_eq!(w, x);
            assert_eq!(a.high_water(), hw);
            assert_eq!(a.stats().free_extents, 0);
            a.free(w);
            a.free(guard);
            assert_eq!(a.high_water(), a.base as usize + DATA_START);
        }
    }

    #[test]
    fn exhaustion_returns_null() {
        let r = Region::new(4 << 20);
        let a = r.arena();
        // SAFETY: whole test: blocks used while live.
        unsafe {
            assert!(a.alloc(usize::MAX, 16).is_null());
            assert!(a.alloc(usize::MAX - 100, 1 << 20).is_null());
            let mut v = Vec::new();
            loop {
                let p = a.alloc(1000, 16);
                if p.is_null() {
                    break;
                }
                v.push(p);
            }
            assert!(v.len() > 3000);
            for p in v {
                a.free(p);
            }
            assert!(!a.alloc(1000, 16).is_null());
        }
    }

    /// In release builds a double free is ignored, not a corruption.
    #[cfg(not(debug_assertions))]
    #[test]
    fn double_free_is_ignored() {
        let r = Region::new(GIB);
        let a = r.arena();
        // SAFETY: whole test: the double frees are the point; valid arena.
        unsafe {
            for size in [24, 1 << 20] {
                let p = a.alloc(size, 16);
                a.free(p);
                a.free(p);
                let (x, y) = (a.alloc(size, 16), a.alloc(size, 16));
                assert!(x != y && a.stats().live_blocks == 2);
                a.free(x);
                a.free(y);
            }
            assert!(a.contains(a.base) && !a.contains(a.base.add(GIB)));
        }
    }

    #[test]
    fn threads_with_cross_frees() {
        let r = Region::new(4 * GIB);
        let a = r.arena();
        let chans: Vec<_> = (0..4)
            .map(|_| std::sync::mpsc::channel::<usize>())
            .collect();
        let (txs, rxs): (Vec<_>, Vec<_>) = chans.into_iter().unzip();
        std::thread::scope(|s| {
            for (t, rx) in rxs.into_iter().enumerate() {
                let tx = txs[(t + 1) % 4].clone();
                s.spawn(move || {
                    let mut rng = Rng(t as u64 + 1);
                    let mut mine = Vec::new();
                    let release = |p: usize| {
                        // SAFETY: p was tagged by its allocator; live.
                        unsafe {
                            assert_eq!(*(p as *const u64), p as u64);
                            a.free(p as *mut u8);
                        }
                    };
                    for i in 0..100_000 {
                        let size = if i % 1000 == 0 {
                            300_000
                        } else {
                            8 + rng.below(500)
                        };
                        // SAFETY: valid arena; tagging our own block.
                        let p = unsafe { a.alloc(size, 16) } as usize;
                        assert!(p != 0);
                        // SAFETY: as above.
                        unsafe { *(p as *mut u64) = p as u64 };
                        if rng.below(2) == 0 {
                            tx.send(p).unwrap();
                        } else {
                            mine.push(p);
                        }
                        if mine.len() > 64 {
                            release(mine.swap_remove(rng.below(mine.len())));
                        }
                        while let Ok(q) = rx.try_recv() {
                            release(q);
                        }
                    }
                    drop(tx);
                    mine.into_iter().for_each(release);
                    rx.into_iter().for_each(release);
                });
            }
            drop(txs);
        });
        let st = a.stats();
        assert_eq!((st.allocated_bytes, st.live_blocks), (0, 0));
    }

    #[test]
    fn small_pairs_cost() {
        let r = Region::new(GIB);
        let a = r.arena();
        let n = 2_000_000;
        let t = std::time::Instant::now();
        for i in 0..n {
            // SAFETY: alloc then free at once.
            unsafe {
                let p = a.alloc(16 + (i & 127), 16);
                std::hint::black_box(p);
                a.free(p);
            }
        }
        let ns = t.elapsed().as_nanos() as f64 / n as f64;
        eprintln!("arena: {ns:.1} ns per small malloc/free pair");
    }
}
