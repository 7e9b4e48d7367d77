//! Whether ranks of this job moved: the few facts of the migration that
//! every layer reads (the per-call path among them, three relaxed loads
//! and no lock): `ops::migration` sets them.
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Migrations this rank went through (carried by the image, as all of
/// the library's memory).
static MIGRATIONS: AtomicU64 = AtomicU64::new(0);

/// How many times this rank has moved.
pub fn count() -> u64 {
    MIGRATIONS.load(Ordering::Relaxed)
}

/// This rank moved once more (`true`), or a move counted was undone.
pub fn counted(moved: bool) {
    if moved {
        MIGRATIONS.fetch_add(1, Ordering::SeqCst);
    } else {
        MIGRATIONS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Whether this process was started as the replacement of a migrating
/// rank (the kernel's copy of its arguments: the program's, carried by
/// the image, do not say, and neither can memory the image replaces).
pub fn started_as_replacement() -> bool {
    has_argument(crate::mem::REPLACEMENT_MARKER)
}

/// Whether this process is a replacement spawned by a process that was a
/// replacement itself (its spawn argument `root=replacement`).
pub fn spawned_by_replacement() -> bool {
    started_as_replacement() && has_argument("root=replacement")
}

/// Whether the kernel's copy of this process's arguments holds `arg`.
fn has_argument(arg: &str) -> bool {
    std::fs::read("/proc/self/cmdline")
        .map(|b| b.split(|&c| c == 0).any(|a| a == arg.as_bytes()))
        .unwrap_or(false)
}

/// Set in a replacement before its image is back (its own memory then).
static JOINING: AtomicBool = AtomicBool::new(false);

/// This process is a replacement (set from the handover page after the
/// jump: the image's copy belongs to the old process).
static REPLACEMENT: AtomicBool = AtomicBool::new(false);

/// This process took part in a migration (its communicators hold, or
/// held, spawned processes).
static TOOK_PART: AtomicBool = AtomicBool::new(false);

/// A replacement, before its image is back.
pub fn set_joining() {
    JOINING.store(true, Ordering::SeqCst);
}

/// This process is (or, in a restarted one, no longer is) a replacement.
pub fn set_replacement(yes: bool) {
    REPLACEMENT.store(yes, Ordering::SeqCst);
}

/// This process took part in a migration (or, in a restarted one, its
/// migrations were the old job's).
pub fn set_took_part(yes: bool) {
    TOOK_PART.store(yes, Ordering::SeqCst);
}

/// Whether this process replaced a migrated one (its `MPI_Comm_get_parent`
/// is the library's, not the program's).
#[inline]
pub fn is_replacement() -> bool {
    REPLACEMENT.load(Ordering::Relaxed)
}

/// Whether this process took part in a migration (as one that stayed or as
/// a replacement): its communicators then hold spawned processes.
#[inline]
pub fn happened() -> bool {
    JOINING.load(Ordering::Relaxed) || is_replacement() || TOOK_PART.load(Ordering::Relaxed)
}
