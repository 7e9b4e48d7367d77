//! Whether ranks of this job moved: the few flags of the migration that
//! every layer reads (the per-call path among them, three relaxed loads
//! and no lock). `ops::migration` sets them.
use std::sync::atomic::{AtomicBool, Ordering};

/// Set in a replacement before its image is back (its own memory then).
static JOINING: AtomicBool = AtomicBool::new(false);

/// This process is a replacement (set from the handover page after the
/// jump: the image's copy belongs to the old process).
static REPLACEMENT: AtomicBool = AtomicBool::new(false);

/// This process keeps the communicators of a migration it took part in.
static KEPT_ANY: AtomicBool = AtomicBool::new(false);

/// A replacement, before its image is back.
pub fn set_joining() {
    JOINING.store(true, Ordering::SeqCst);
}

/// This process is (or, in a restarted one, no longer is) a replacement.
pub fn set_replacement(yes: bool) {
    REPLACEMENT.store(yes, Ordering::SeqCst);
}

/// This process keeps (or no longer keeps) a migration's communicators.
pub fn set_kept_any(yes: bool) {
    KEPT_ANY.store(yes, Ordering::SeqCst);
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
    JOINING.load(Ordering::Relaxed) || is_replacement() || KEPT_ANY.load(Ordering::Relaxed)
}
