//! Where the carried memory lives: fixed addresses, the same in every
//! process of the job, chosen far from where Linux puts anything by itself
//! on x86-64 (executables near 0x5555_5555_0000 and libraries and mmaps
//! near 0x7fff_f7..., with randomization off).
//!
//! | region | address | size | carried |
//! |---|---|---|---|
//! | program heap (arena) | `APP_HEAP_BASE` | 64 GiB reserved | used parts |
//! | program main stack | `APP_STACK_BASE` | 256 MiB reserved | from the stack pointer up |
//! | library heap (arena) | `LIB_HEAP_BASE` | 16 GiB reserved | used parts |
//! | virtual handles (Open MPI) | `HANDLE_BASE` | 96 MiB, no access | no (nothing in it) |
//! | handover page | `HANDOVER_BASE` | 1 MiB | never (it says which side of a restore we are on) |
//! | restore stack | `RESTORE_STACK_BASE` | 8 MiB | never |
//!
//! Reservations are `MAP_NORESERVE`: they cost address space, not memory.

pub const GIB: usize = 1 << 30;
pub const MIB: usize = 1 << 20;
pub const PAGE: usize = 4096;

pub const APP_HEAP_BASE: usize = 0x2000_0000_0000;
pub const APP_HEAP_LEN: usize = 64 * GIB;

pub const APP_STACK_BASE: usize = 0x2100_0000_0000;
pub const APP_STACK_LEN: usize = 256 * MIB;
pub const APP_STACK_TOP: usize = APP_STACK_BASE + APP_STACK_LEN;

pub const LIB_HEAP_BASE: usize = 0x2200_0000_0000;
pub const LIB_HEAP_LEN: usize = 16 * GIB;

pub const HANDLE_BASE: usize = 0x2300_0000_0000;
/// Six spans of 2^24 handle values (communicators, groups, requests,
/// messages, datatypes, reduction operations).
pub const HANDLE_LEN: usize = 6 << 24;

pub const HANDOVER_BASE: usize = 0x2400_0000_0000;
pub const HANDOVER_LEN: usize = MIB;

pub const RESTORE_STACK_BASE: usize = 0x2500_0000_0000;
pub const RESTORE_STACK_LEN: usize = 8 * MIB;

/// Rounds down to a page.
pub const fn page_down(a: usize) -> usize {
    a & !(PAGE - 1)
}

/// Rounds up to a page.
pub const fn page_up(a: usize) -> usize {
    (a + PAGE - 1) & !(PAGE - 1)
}

/// Maps `len` bytes of fresh, zeroed memory at exactly `base`, or says why
/// not (the address is taken: another process layout, or a second call).
pub fn map_fixed(base: usize, len: usize, prot: i32) -> Result<(), String> {
    // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping; the
    // result is checked.
    let p = unsafe {
        libc::mmap(
            base as *mut libc::c_void,
            len,
            prot,
            libc::MAP_PRIVATE
                | libc::MAP_ANONYMOUS
                | libc::MAP_NORESERVE
                | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(format!(
            "cannot map {} MiB at {base:#x}: {}",
            len >> 20,
            std::io::Error::last_os_error()
        ));
    }
    if p as usize != base {
        // Old kernels ignore the NOREPLACE flag and place it elsewhere.
        // SAFETY: the mapping we just made.
        unsafe { libc::munmap(p, len) };
        return Err(format!(
            "cannot map at {base:#x}: the kernel placed it elsewhere"
        ));
    }
    Ok(())
}

/// Most memory regions an image may have.
pub const MAX_REGIONS: usize = 16_384;
/// Most files an image may reopen.
pub const MAX_FILES: usize = 1_024;
/// Most ranges zeroed by a restore (the two arenas).
pub const MAX_ZERO: usize = 8;

/// A file reopened for the program: the temporary descriptor goes to the
/// program's number at the program's offset.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FileMove {
    pub tmp: i32,
    pub target: i32,
    pub fd_flags: i32,
    pub _pad: i32,
    pub offset: i64,
}

/// A copy from the mapped image into place: the first `moved` bytes (whole
/// pages of an image received in anonymous memory) are moved by remapping
/// their pages, the rest copied.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Copy {
    pub dst: u64,
    pub src: u64,
    pub len: u64,
    pub moved: u64,
}

/// The new process's own values carried across a restore (see
/// `runtime::fresh`; slots 4..=11 are the migration's, 12.. the restore's).
pub type Fresh = [u64; 32];

/// The handover page: what crosses a restore without being part of the
/// image. Mapped at the same address in every process, never carried: it
/// tells a save point on which side of a restore it is, holds the saved
/// context (a `ucontext_t` keeps a pointer to its own floating-point area,
/// so it must be used at the address it was saved at), and carries the new
/// process's fresh values (its MPI objects) across the copy that overwrites
/// the library's own memory.
#[repr(C)]
pub struct Handover {
    /// Set by the restore right before it jumps (read by the save point).
    pub resumed: i32,
    pub _pad: i32,
    pub ctx: libc::ucontext_t,
    pub canary: u64,
    /// The new process's own values, opaque to the image layer (see
    /// `runtime::fresh`).
    pub fresh: Fresh,
    pub nfiles: u32,
    pub ncopies: u32,
    pub nzero: u32,
    pub _pad2: u32,
    pub files: [FileMove; MAX_FILES],
    pub copies: [Copy; MAX_REGIONS],
    pub zero: [(u64, u64); MAX_ZERO],
}

/// The handover page (mapped by [`super::startup`]).
pub fn handover() -> *mut Handover {
    HANDOVER_BASE as *mut Handover
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_do_not_overlap() {
        let mut r = [
            (APP_HEAP_BASE, APP_HEAP_LEN),
            (APP_STACK_BASE, APP_STACK_LEN),
            (LIB_HEAP_BASE, LIB_HEAP_LEN),
            (HANDLE_BASE, HANDLE_LEN),
            (HANDOVER_BASE, HANDOVER_LEN),
            (RESTORE_STACK_BASE, RESTORE_STACK_LEN),
        ];
        r.sort();
        for w in r.windows(2) {
            assert!(
                w[0].0 + w[0].1 <= w[1].0,
                "{:x?} overlaps {:x?}",
                w[0],
                w[1]
            );
        }
        assert!(std::mem::size_of::<Handover>() < HANDOVER_LEN);
        assert_eq!(page_up(1), PAGE);
        assert_eq!(page_down(PAGE + 5), PAGE);
    }
}
