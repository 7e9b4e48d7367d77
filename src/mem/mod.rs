//! Layer `mem`: the MPI-free half of the process image, a rank's own
//! memory laid out so that it can be carried into a fresh process. It may
//! use `sys` and itself only; the capture, the stream and the restore that
//! carry it (they talk to MPI) are in the `ops` layer
//! ([`crate::ops::image`]).
//!
//! The patent leaves a migrating process's local state to outside
//! middleware; ferry carries it itself (docs/protocol.md, section 6). The shape:
//!
//! * **Layout** ([`layout`]): with address-space randomization off (the
//!   library re-executes the program once without it, see [`startup`]) every
//!   library lands at the same address in every run of the same binary, and
//!   the program's own memory sits at fixed addresses: its heap in an
//!   arena, its main thread's stack in a region of its own, the library's
//!   heap in a second arena.
//! * **Startup** ([`startup`]): `__libc_start_main` is intercepted; the
//!   program (its constructors and `main`) runs on the fixed stack, with
//!   `argv` and `environ` copied into its arena.
//! * **Allocation** ([`alloc`]): the malloc family of the program's main
//!   thread, outside MPI calls, allocates in the arena ([`arena`]);
//!   everything MPI allocates (inside calls, or on its own threads) stays in
//!   libc's heap, which is never carried.
//! * **Mappings** ([`mapping`]): anonymous memory the program maps itself
//!   comes from its arena too.
//! * **Whose state** ([`closure`], [`opened`], [`carried`]): the
//!   program's closure of loaded objects (the executable, what it needs
//!   and what it opened, short of MPI and the C library) is told from the
//!   rest by the dependency graph; what an image carries of it is decided
//!   at the capture; the objects it opened are opened again at the same
//!   place in a new process.
//! * **Capture** ([`capture`](crate::ops::image::capture), in `ops`): at a
//!   call boundary the used arena, the stack, the writable data and
//!   thread-local blocks of the program's closure (minus MPI's objects
//!   copied into the program by `R_X86_64_COPY`), the library's own data
//!   and heap, open files ([`files`]), signal handlers,
//!   working directory, `environ`, the stdio list and the exit handlers
//!   ([`process`]) go to an image file ([`format`]: checksummed, with the
//!   binary's identity and the address layout).
//! * **Restore** ([`restore`](crate::ops::image::restore), in `ops`): a new
//!   process of the same binary calls `MPI_Init`, validates the image,
//!   copies it into place on a temporary stack and jumps back into the
//!   interrupted call (`context.c`, here in `mem`).
//!
//! What cannot be carried yet is refused before anything is written
//! ([`refusal`]): threads the program started, RMA windows it created,
//! files it opened that are gone or are not regular files, a library of
//! the program whose state points into memory an image does not carry, an
//! object nobody is known to have loaded.
pub mod alloc;
pub mod arena;
pub mod carried;
pub mod closure;
pub mod context;
pub mod elf;
pub mod files;
pub mod format;
pub mod layout;
pub mod mapping;
pub mod next;
pub mod opened;
pub mod process;
pub mod refusal;
pub mod startup;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Set once the arenas are mapped and the program runs on the fixed stack
/// (the image layer is on for this process).
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Depth of MPI calls of the program's main thread (only that thread, the
/// one running on the fixed stack, reads or writes it). While it is not
/// zero, allocations go to libc: they belong to MPI.
static IN_MPI: AtomicU32 = AtomicU32::new(0);

/// First argument of a replacement process (the migration starts it so):
/// it restores the image it is sent instead of running `main`.
pub const REPLACEMENT_MARKER: &str = "--ferry-replacement";

/// Set once `main` (or, in a restarted process, the image) runs
/// ([`startup`]): exit handlers registered from then on are the program's
/// own doing, and allocations are told apart by thread and MPI depth, no
/// longer by their caller.
static MAIN_STARTED: AtomicBool = AtomicBool::new(false);

/// Whether `main` (or the restored image) runs.
pub fn main_started() -> bool {
    MAIN_STARTED.load(Ordering::Relaxed)
}

/// Whether the image layer is on in this process.
#[inline(always)]
pub fn active() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

/// The current stack pointer (approximately: the address of a local).
#[inline(always)]
fn stack_pointer() -> usize {
    let x = 0u8;
    std::ptr::addr_of!(x) as usize
}

/// Whether the calling thread is the program's main thread, running on the
/// fixed stack.
#[inline(always)]
pub fn on_app_stack() -> bool {
    let sp = stack_pointer();
    (layout::APP_STACK_BASE..layout::APP_STACK_TOP).contains(&sp)
}

/// Entering an MPI call (or the library's own work): what the program's
/// main thread allocates from here belongs to MPI. Returns whether the
/// depth was counted (to be given back to [`leave_mpi`]).
#[inline(always)]
pub fn enter_mpi() -> bool {
    if active() && on_app_stack() {
        IN_MPI.store(IN_MPI.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        true
    } else {
        false
    }
}

/// Leaving what [`enter_mpi`] entered.
#[inline(always)]
pub fn leave_mpi(counted: bool) {
    if counted {
        IN_MPI.store(IN_MPI.load(Ordering::Relaxed) - 1, Ordering::Relaxed);
    }
}

/// Runs `f` as the program (a callback of the program's called from inside
/// an MPI call: what it allocates is the program's).
pub fn as_program<R>(f: impl FnOnce() -> R) -> R {
    if !(active() && on_app_stack()) {
        return f();
    }
    let depth = IN_MPI.swap(0, Ordering::Relaxed);
    let r = f();
    IN_MPI.store(depth, Ordering::Relaxed);
    r
}

/// Whether an allocation made now belongs to the program (and so goes to
/// its arena).
#[inline(always)]
pub fn program_allocates() -> bool {
    active() && IN_MPI.load(Ordering::Relaxed) == 0 && on_app_stack()
}
