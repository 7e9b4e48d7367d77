//! What this rank has scheduled at call counts: the regroups and
//! migrations its SPECs ask for (`FERRY_REGROUP`, `FERRY_MIGRATE`), the
//! checkpoint (`FERRY_CHECKPOINT`) and the status written for `ferry
//! status`. The hot path compares the call count with one number,
//! [`next_scheduled`]; `control::scheduled` does the work when it is
//! reached.
use crate::core::runtime::runtime;
use crate::core::state::state;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// How many of this rank's regroup SPECs have fired.
pub static SPECS_FIRED: AtomicU64 = AtomicU64::new(0);
/// How many of this rank's migrate SPECs have fired.
pub static MIGRATIONS_FIRED: AtomicU64 = AtomicU64::new(0);
/// The job has a directory (`ferry run`): status files are written.
pub static JOB_DIR: AtomicBool = AtomicBool::new(false);

/// The call count at which this rank asks for the checkpoint
/// (`FERRY_CHECKPOINT`'s `after`, in rank 0; `u64::MAX`: none).
static CHECKPOINT_AT: AtomicU64 = AtomicU64::new(u64::MAX);

/// Calls between two looks at whether the status is due.
const STATUS_EVERY_CALLS: u64 = 1 << 16;

/// Schedules this rank's checkpoint request at call count `at`
/// (`u64::MAX`: none).
pub fn set_checkpoint_at(at: u64) {
    CHECKPOINT_AT.store(at, Ordering::SeqCst);
}

/// The call count at which this rank asks for the checkpoint.
pub fn checkpoint_at() -> u64 {
    CHECKPOINT_AT.load(Ordering::Relaxed)
}

/// The next call count at which this rank has work scheduled.
pub fn next_scheduled() -> u64 {
    let Some(rt) = runtime() else {
        return u64::MAX;
    };
    let fired = SPECS_FIRED.load(Ordering::Relaxed) as usize;
    let moved = MIGRATIONS_FIRED.load(Ordering::Relaxed) as usize;
    let status = if JOB_DIR.load(Ordering::Relaxed) {
        state().calls.load(Ordering::Relaxed) + STATUS_EVERY_CALLS
    } else {
        u64::MAX
    };
    rt.config
        .regroup_after
        .get(fired)
        .copied()
        .unwrap_or(u64::MAX)
        .min(rt.config.migrate_after.get(moved).map_or(u64::MAX, |m| m.0))
        .min(checkpoint_at())
        .min(status)
}
