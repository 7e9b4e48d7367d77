//! The library's runtime in a process: its configuration from the
//! environment and the MPI objects it made for itself at `MPI_Init` (the
//! control and finale communicators, the state window).
use crate::sys::bits::{handle_bits, handle_from_bits};
use crate::sys::*;
use std::ffi::c_int;

/// Settings read from the environment at `MPI_Init`.
#[derive(Debug, Default)]
pub struct Config {
    /// Test switch: at the N-th `MPI_Barrier` on the world, move the job
    /// onto a new communicator over the world's processes and rebuild every derived
    /// communicator (`FERRY_TEST_DUP_WORLD_AT_BARRIER=N[,M,...]`).
    pub dup_world_at_barrier: Vec<u64>,
    /// The call counts after which this rank starts a regroup (its
    /// `FERRY_REGROUP` SPECs), ascending.
    pub regroup_after: Vec<u64>,
    /// The call counts after which this rank asks to move, and where to
    /// (its `FERRY_MIGRATE` SPECs), ascending.
    pub migrate_after: Vec<(u64, Option<String>)>,
}

impl Config {
    pub fn from_env() -> Result<Config, String> {
        let mut c = Config::default();
        if let Ok(v) = std::env::var("FERRY_TEST_DUP_WORLD_AT_BARRIER") {
            for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let n: u64 = item.parse().map_err(|_| {
                    format!("FERRY_TEST_DUP_WORLD_AT_BARRIER: '{item}' is not a barrier count")
                })?;
                c.dup_world_at_barrier.push(n);
            }
            c.dup_world_at_barrier.sort_unstable();
        }
        Ok(c)
    }

    /// This rank's regroup SPECs from `FERRY_REGROUP`.
    pub fn read_regroups(&mut self, rank: c_int) -> Result<(), String> {
        use ferry_common::env::FERRY_REGROUP;
        if let Some(list) = ferry_common::env::var(FERRY_REGROUP) {
            let specs = ferry_common::spec::parse_spec_list(&list)
                .map_err(|e| format!("{FERRY_REGROUP}: {e}"))?;
            self.regroup_after = specs
                .iter()
                .filter(|s| s.rank as c_int == rank)
                .map(|s| s.after)
                .collect();
            self.regroup_after.sort_unstable();
        }
        use ferry_common::env::FERRY_MIGRATE;
        if let Some(list) = ferry_common::env::var(FERRY_MIGRATE) {
            let specs = ferry_common::spec::parse_spec_list(&list)
                .map_err(|e| format!("{FERRY_MIGRATE}: {e}"))?;
            self.migrate_after = specs
                .iter()
                .filter(|s| s.rank as c_int == rank)
                .map(|s| (s.after, s.to.clone()))
                .collect();
            self.migrate_after.sort_by_key(|m| m.0);
        }
        Ok(())
    }
}

/// The library's per-process runtime, made at `MPI_Init`.
pub struct Runtime {
    pub config: Config,
    pub world_rank: c_int,
    pub world_size: c_int,
    /// Private duplicate of the world for the protocol's own messages.
    pub control: MPI_Comm,
    /// The state window (`MPI_WIN_NULL` if the MPI could not make one).
    pub window: MPI_Win,
    /// Another private duplicate, for the wait at `MPI_Finalize` (kept
    /// apart so that it cannot mix with the regroup's collectives).
    pub finale: MPI_Comm,
}

struct RuntimeCell(std::cell::UnsafeCell<Option<Runtime>>);
// SAFETY: written once inside MPI_Init (before the program can make any
// other MPI call) and at MPI_Finalize; read otherwise.
unsafe impl Sync for RuntimeCell {}
static RUNTIME: RuntimeCell = RuntimeCell(std::cell::UnsafeCell::new(None));

/// The runtime, once `MPI_Init` has made it.
pub fn runtime() -> Option<&'static Runtime> {
    // SAFETY: see `RuntimeCell`.
    unsafe { (*RUNTIME.0.get()).as_ref() }
}

/// The runtime, to change the objects a regroup or a migration remade.
///
/// # Safety
/// The program's main thread, inside the library, frozen or in
/// `MPI_Init`/`MPI_Finalize`: no other reference to the runtime is alive.
pub unsafe fn runtime_mut() -> Option<&'static mut Runtime> {
    // SAFETY: contract of the function (see `RuntimeCell`).
    unsafe { (*RUNTIME.0.get()).as_mut() }
}

/// At `MPI_Init`: the runtime is made (see `RuntimeCell`: no other thread
/// can be in the library yet).
pub fn install(rt: Runtime) {
    // SAFETY: see `RuntimeCell`: written once, in MPI_Init.
    unsafe { *RUNTIME.0.get() = Some(rt) };
    crate::sys::life::set_initialized();
}

/// This process's own MPI objects, for a restore to put aside while the
/// library's memory is replaced by the image's (see [`adopt`]): the
/// control and finale communicators, the state window and its memory.
pub fn fresh() -> crate::mem::layout::Fresh {
    let mut v: crate::mem::layout::Fresh = [0; 32];
    if let Some(rt) = runtime() {
        v[0] = handle_bits(rt.control);
        v[1] = handle_bits(rt.finale);
        v[2] = handle_bits(rt.window);
    }
    v[3] = crate::core::state::location() as u64;
    v
}

/// In a restored process: the library (the old process's, from the
/// image) takes the new process's MPI objects put aside by [`fresh`].
pub fn adopt(v: &crate::mem::layout::Fresh) {
    // SAFETY: see `RuntimeCell`: the program's main thread, inside the
    // library, with no other thread of the program.
    unsafe {
        if let Some(rt) = (*RUNTIME.0.get()).as_mut() {
            rt.control = handle_from_bits(v[0]);
            rt.finale = handle_from_bits(v[1]);
            rt.window = handle_from_bits(v[2]);
        }
        crate::core::state::adopt(v[3] as usize);
    }
}
