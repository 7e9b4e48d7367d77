//! Control: the library's life cycle inside a process (set up at
//! `MPI_Init`, torn down at `MPI_Finalize`), its configuration from the
//! environment, the private control communicator and the state window,
//! and the hooks through which the protocol takes over a process (a command
//! noticed at a collective, a wake in a blocking call, a call count
//! reached).
use crate::core::handles;
use crate::core::runtime::{runtime, runtime_mut, Config, Runtime};
use crate::core::state::state;
use crate::protocol::schedule;
use crate::sys::bits::handle_bits;
use crate::sys::constants as k;
use crate::sys::life::{self, job_dir};
use crate::sys::nap::{barrier_napping, LONG_NAP};
use crate::sys::*;
use std::ffi::c_int;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;

static WORLD_BARRIERS: AtomicU64 = AtomicU64::new(0);
static WORLD_SWAPS: AtomicU64 = AtomicU64::new(0);

/// Called by `MPI_Init`/`MPI_Init_thread` after the real one succeeded
/// (through `ops::session::start`). `configure` reads this rank's
/// checkpoint SPEC (not in a process the program spawned).
pub fn start(provided: c_int, configure: impl FnOnce(c_int) -> Result<(), String>) {
    crate::sys::logging::init();
    life::set_thread_level(provided, provided == k::MPI_THREAD_MULTIPLE());
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            log::error!("{e}; test switches ignored");
            Config::default()
        }
    };
    let world = k::MPI_COMM_WORLD();
    let (mut rank, mut size) = (0, 0);
    // SAFETY: MPI is initialized; out-parameters are locals.
    unsafe {
        PMPI_Comm_rank(world, &mut rank);
        PMPI_Comm_size(world, &mut size);
    }
    // SAFETY: collective over the world, as every process starts here.
    let ch = unsafe { open(world) };
    let (control, finale, window) = (ch.control, ch.finale, ch.window);
    if window != k::MPI_WIN_NULL() {
        // SAFETY: fresh window memory of the state's size, 8-aligned
        // (checked by `open`), alive until the window is freed at
        // MPI_Finalize.
        unsafe { crate::core::state::move_to(ch.base) };
    }
    // Nobody may reach into a window before its owner has moved its state
    // in (the copy would overwrite what a fast peer put there).
    // SAFETY: collective over the new control communicator.
    unsafe { PMPI_Barrier(control) };
    crate::sys::logging::set_rank(rank);
    // A process the program spawned (MPI_Comm_spawn of its own) inherits
    // the job's environment but holds none of its ranks: the SPECs of
    // `ferry run` are not for it, and it must not write their status
    // files or exit statuses, nor take their requests.
    let mut parent = k::MPI_COMM_NULL();
    // SAFETY: MPI is up.
    unsafe { PMPI_Comm_get_parent(&mut parent) };
    let outside = parent != k::MPI_COMM_NULL() && !crate::core::moves::started_as_replacement();
    life::set_outside_job(outside);
    let mut config = config;
    if outside {
        log::debug!("spawned by the program: the job's SPECs and files are not this process's");
    } else if let Err(e) = config.read_regroups(rank) {
        // `ferry run` refuses a malformed SPEC before the launch; set by
        // hand, it is reported here and the job runs without it.
        if rank == 0 {
            log::error!("{e}; no regroup or migration will be started");
        }
    }
    // (A checkpoint SPEC is not for a process the program spawned.)
    let configured = if outside { Ok(()) } else { configure(rank) };
    if let Err(e) = configured {
        if rank == 0 {
            log::error!("{e}; no checkpoint will be taken");
        }
    }
    handles::init(world, size as usize);
    if window != k::MPI_WIN_NULL() {
        crate::protocol::regroup::install_signal();
    }
    log::debug!(
        "ferry {} on {} ({}), rank {rank} of {size}, thread level {provided}, process image {}",
        env!("CARGO_PKG_VERSION"),
        env!("FERRY_MPI_FLAVOUR"),
        library_version(),
        if crate::mem::active() { "on" } else { "off" }
    );
    crate::core::runtime::install(Runtime {
        config,
        world_rank: rank,
        world_size: size,
        control,
        window,
        finale,
    });
    schedule::JOB_DIR.store(job_dir().is_some(), Ordering::Relaxed);
    report_status("running");
    life::record_exit_status(rank);
    state()
        .next_event
        .store(schedule::next_scheduled(), Ordering::SeqCst);
}

/// The library's own MPI objects over one world: the control and finale
/// communicators and the state window (not yet holding the state).
pub struct Channel {
    pub control: MPI_Comm,
    pub finale: MPI_Comm,
    pub window: MPI_Win,
    /// The window's memory (null without a window).
    pub base: *mut u8,
}

impl Channel {
    /// The values a restore carries across its copy (see [`adopt`]).
    pub fn fresh(&self) -> crate::mem::layout::Fresh {
        let mut v: crate::mem::layout::Fresh = [0; 32];
        v[0] = handle_bits(self.control);
        v[1] = handle_bits(self.finale);
        v[2] = handle_bits(self.window);
        v[3] = self.base as u64;
        v
    }
}

/// Makes the library's objects over `world`. Collective over `world`.
///
/// # Safety
/// MPI is initialized and every process of `world` calls it.
pub unsafe fn open(world: MPI_Comm) -> Channel {
    let mut control = k::MPI_COMM_NULL();
    let mut finale = k::MPI_COMM_NULL();
    let mut window = k::MPI_WIN_NULL();
    let mut base: *mut u8 = std::ptr::null_mut();
    // SAFETY: contract of the function; out-parameters are locals.
    unsafe {
        PMPI_Comm_dup(world, &mut control);
        PMPI_Comm_set_errhandler(control, k::MPI_ERRORS_RETURN());
        PMPI_Comm_dup(world, &mut finale);
        // Memory MPI allocates, so that processes of one node share it
        // (MPICH needs the hint; Open MPI does it by itself).
        if !window_possible(control) {
            disable(
                "Open MPI cannot make a one-sided window over the processes of more than one \
                 migration here",
            );
            return Channel {
                control,
                finale,
                window,
                base,
            };
        }
        let mut info = k::MPI_INFO_NULL();
        PMPI_Info_create(&mut info);
        PMPI_Info_set(info, c"alloc_shm".as_ptr(), c"true".as_ptr());
        let rc = PMPI_Win_allocate(
            crate::core::state::STATE_BYTES as MPI_Aint,
            1,
            info,
            control,
            &mut base as *mut *mut u8 as *mut std::ffi::c_void,
            &mut window,
        );
        PMPI_Info_free(&mut info);
        let failed = rc != k::MPI_SUCCESS() || base.is_null() || !(base as usize).is_multiple_of(8);
        // Every process must have its window, or nobody uses one: a
        // process without would leave the others waiting in the protocol.
        if crate::sys::collective::any(control, failed, crate::sys::collective::Wait::Blocking) {
            if failed {
                disable(&format!(
                    "this process cannot allocate its state window (MPI error {rc})"
                ));
            } else {
                disable("another process cannot allocate its state window");
                PMPI_Win_free(&mut window);
            }
            window = k::MPI_WIN_NULL();
            base = std::ptr::null_mut();
        }
    }
    Channel {
        control,
        finale,
        window,
        base,
    }
}

/// Why this job has no state window (regroups and migrations disabled).
static DISABLED: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// The state window could not be made: regroups and migrations are off
/// from now on, for `why` (said once, as a warning).
fn disable(why: &str) {
    log::warn!("no state window: {why}; regroups and migrations disabled");
    if let Ok(mut d) = DISABLED.lock() {
        *d = Some(why.to_string());
    }
}

/// Why regroups and migrations are disabled in this job, if they are (the
/// library runs, but without a state window).
pub fn disabled_why() -> Option<String> {
    runtime()?;
    if crate::protocol::regroup::ready() {
        return None;
    }
    // (A replacement learnt why before its image replaced its memory.)
    Some(
        DISABLED
            .lock()
            .ok()
            .and_then(|d| d.clone())
            .unwrap_or_else(|| "the processes could not make a state window".into()),
    )
}

/// Whether Open MPI can make a window over `comm` without hanging.
///
/// Open MPI picks the one-sided component of a window in each process on
/// its own: shared memory when it believes every peer is on its node,
/// another one otherwise (which cannot reach other jobs), and a window
/// whose processes picked differently hangs in its creation. What a
/// process believes comes from the spawns it took part in: the processes
/// of a collective spawn learn that the new process shares their node,
/// and the new process learns it of the job its spawn's root belongs to,
/// of no other (seen here: a replacement spawned by a replacement takes
/// the job's first processes as remote; one spawned for another rank
/// takes the earlier replacement as remote). So a window is made only
/// while the world holds at most one replacement, spawned by one of the
/// job's first processes (their `MPI_Comm_split_type` is no safer: it
/// crashes where the beliefs differ). Each process tells which spawned
/// job it is (its own pid if it was started as a replacement, alone in
/// its job; 0 if `mpiexec` started it) and whether its spawn's root was a
/// replacement. All of this holds only where processes may pick
/// differently: with osc pt2pt alone in every process (`OMPI_MCA_osc=
/// pt2pt`, what `ferry run` sets) a window is always possible. MPICH
/// decides collectively: always true.
///
/// # Safety
/// Collective over `comm`, a live communicator of this process.
unsafe fn window_possible(comm: MPI_Comm) -> bool {
    if !crate::sys::quirks::NODE_BELIEFS_FROM_SPAWNS {
        return true;
    }
    // With osc pt2pt alone (what `ferry run` sets), every process picks
    // the same component whatever it believes of its peers' nodes.
    let not_pt2pt = !std::env::var("OMPI_MCA_osc").is_ok_and(|v| v.trim() == "pt2pt") as u64;
    let job: u64 = if crate::core::moves::started_as_replacement() {
        std::process::id() as u64
    } else {
        0
    };
    let grandchild = crate::core::moves::spawned_by_replacement() as u64;
    // [largest job, u64::MAX - smallest non-zero job, any grandchild, any
    // process not on pt2pt alone]
    let mine: [u64; 4] = [
        job,
        if job == 0 { 0 } else { u64::MAX - job },
        grandchild,
        not_pt2pt,
    ];
    // SAFETY: contract of the function.
    let out = unsafe {
        crate::sys::collective::allreduce(
            comm,
            &mine,
            crate::sys::collective::Op::Max,
            crate::sys::collective::Wait::Blocking,
        )
    }
    .unwrap_or_else(|_| vec![u64::MAX; 4]);
    out[3] == 0 || (at_most_one_job([out[0], out[1]]) && out[2] == 0)
}

/// The reduction of [`window_possible`] read: `[largest job, u64::MAX -
/// smallest non-zero job]` says whether at most one non-zero job is there.
fn at_most_one_job(out: [u64; 2]) -> bool {
    out[0] == 0 || u64::MAX - out[1] == out[0]
}

/// Frees this process's objects over the old world (collective with
/// every old process: the leaving one calls [`leave`]).
unsafe fn close_old(rt: &mut Runtime) {
    // SAFETY: our objects, freed collectively.
    unsafe {
        if rt.window != k::MPI_WIN_NULL() {
            crate::core::state::move_home();
            PMPI_Win_free(&mut rt.window);
        }
        PMPI_Comm_free(&mut rt.control);
        PMPI_Comm_free(&mut rt.finale);
    }
}

/// A migration made `world` (the old processes but the leaving one, and
/// the replacement): the library moves onto it. Collective over `world`
/// (with the replacement, which makes its objects with [`open`]), then
/// over the old control communicator (with the leaving process, in
/// [`leave`]), then over `world` again (with the replacement's [`joined`]).
///
/// # Safety
/// Every process of both worlds takes part as described, frozen.
pub unsafe fn move_to_world(world: MPI_Comm) {
    // SAFETY: contract of the function.
    let ch = unsafe { open(world) };
    // SAFETY: the program's main thread, frozen.
    let rt = unsafe { runtime_mut() };
    let Some(rt) = rt else { return };
    // SAFETY: contract of the function.
    unsafe { close_old(rt) };
    rt.control = ch.control;
    rt.finale = ch.finale;
    rt.window = ch.window;
    if ch.window != k::MPI_WIN_NULL() {
        // SAFETY: the new window's memory, checked by `open`.
        unsafe { crate::core::state::move_to(ch.base) };
    }
    // SAFETY: collective over the new control communicator (the
    // replacement's `joined`); the stayers wait asleep while it restores.
    unsafe { barrier_napping(rt.control, LONG_NAP) };
}

/// The leaving process's part of [`move_to_world`]: its objects over the
/// old world are freed with the others'.
///
/// # Safety
/// As [`move_to_world`].
pub unsafe fn leave() {
    // SAFETY: the program's main thread, frozen.
    if let Some(rt) = unsafe { runtime_mut() } {
        // SAFETY: contract of the function.
        unsafe { close_old(rt) };
        rt.window = k::MPI_WIN_NULL();
        rt.control = k::MPI_COMM_NULL();
        rt.finale = k::MPI_COMM_NULL();
    }
}

/// The replacement's part of [`move_to_world`], after it adopted its
/// objects.
///
/// # Safety
/// As [`move_to_world`].
pub unsafe fn joined() {
    if let Some(rt) = runtime() {
        // SAFETY: collective over the new control communicator, matching
        // `move_to_world`'s.
        unsafe { barrier_napping(rt.control, LONG_NAP) };
    }
}

/// Writes this rank's status file in the job directory (`ferry status`
/// reads it), if the job has one.
pub fn report_status(what: &str) {
    let Some(dir) = job_dir() else {
        return;
    };
    let Some(rt) = runtime() else { return };
    let mut st = ferry_common::job::RankStatus::new(
        rt.world_rank as u32,
        ferry_common::job::hostname(),
        std::process::id(),
        crate::core::moves::count() as u32,
        state().calls.load(Ordering::Relaxed),
    );
    st.state = Some(what.to_string());
    st.superstep = Some(state().supersteps[0].load(Ordering::Relaxed));
    st.regroups = Some(state().regroups.load(Ordering::Relaxed) as u32);
    st.extra.insert("image".into(), crate::mem::active().into());
    if !rt.config.dup_world_at_barrier.is_empty() {
        // The world-swap test switch: how often it fired, and of how many
        // barriers on the world (the test harness checks both).
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        st.extra
            .insert("world_barriers".into(), n(&WORLD_BARRIERS).into());
        st.extra
            .insert("world_swaps".into(), n(&WORLD_SWAPS).into());
    }
    // Panics caught at the wrappers' boundary (the test harness wants none).
    st.extra.insert(
        "internal_errors".into(),
        crate::calls::boundary::panics().into(),
    );
    if let Err(e) = dir.write_rank_status(&st) {
        log::debug!("cannot write the rank status: {e}");
    }
    STATUS_AT.store(ferry_common::time::unix_ms(), Ordering::Relaxed);
}

/// When this process last wrote its status (Unix ms).
static STATUS_AT: AtomicU64 = AtomicU64::new(0);

/// Called by `MPI_Finalize` before the real one (through
/// `ops::session::finish`): the requests queued here are led, then every
/// process waits for all the others, taking part in a regroup meanwhile.
/// [`finished`] frees the library's objects.
pub fn finish() {
    crate::protocol::regroup::closing();
    if let Some(rt) = runtime() {
        state().set_status(crate::core::state::Status::Finalizing);
        // Every rank says it arrived (once: a replacement resuming here
        // has said it already, in the process it replaced), then waits
        // for all, taking part in a regroup or migration meanwhile. A
        // counter in rank 0's window, not a barrier on a communicator: a
        // migration during the wait makes new communicators.
        if rt.window == k::MPI_WIN_NULL() {
            // No state window (regroups disabled): nothing can move any
            // more; a plain barrier.
            // SAFETY: our private communicator; every process comes here.
            unsafe { PMPI_Barrier(rt.finale) };
        } else if !ARRIVED.swap(true, Ordering::SeqCst) {
            arrive();
        }
        let mut idle = crate::sys::nap::Backoff::default();
        let mut since_read = std::time::Instant::now();
        let mut first = true;
        while runtime().is_some_and(|r| r.window != k::MPI_WIN_NULL()) {
            if first || since_read.elapsed() >= std::time::Duration::from_micros(500) {
                first = false;
                since_read = std::time::Instant::now();
                if arrivals() >= runtime().map_or(0, |r| r.world_size) as u64 {
                    break;
                }
            }
            if state().command_pending() {
                if crate::protocol::regroup::poll(true) {
                    crate::protocol::regroup::now();
                    state().set_status(crate::core::state::Status::Finalizing);
                }
                idle = crate::sys::nap::Backoff::default();
            }
            idle.pause(false);
        }
        // Everyone has arrived; leave together. Rank 0 must stay in MPI
        // until the others' last reads of its count are done: where
        // one-sided operations need the target's progress (Open MPI's osc
        // pt2pt, the only one it has between hosts over TCP), a rank 0
        // gone into `disconnect_all` would never complete them.
        if let Some(rt) = runtime().filter(|r| r.window != k::MPI_WIN_NULL()) {
            // SAFETY: our private communicator; every live process of the
            // job comes here once everyone has arrived.
            unsafe { barrier_napping(rt.finale, LONG_NAP) };
        }
    }
}

/// The end of `MPI_Finalize`'s part of the library, once what the
/// migrations left is finalized (`ops::session::finish`): the status, the
/// last log line, and the library's own MPI objects freed.
pub fn finished() {
    report_status("finalized");
    log::debug!(
        "finalize: {} calls, {} regroups, {} world barriers, {} world swaps, {} internal errors",
        state().calls.load(Ordering::Relaxed),
        state().regroups.load(Ordering::Relaxed),
        WORLD_BARRIERS.load(Ordering::Relaxed),
        WORLD_SWAPS.load(Ordering::Relaxed),
        crate::calls::boundary::panics()
    );
    release();
}

/// This rank reached `MPI_Finalize` (carried by an image: a replacement
/// resuming in the wait does not arrive twice).
static ARRIVED: AtomicBool = AtomicBool::new(false);

/// Adds this rank to rank 0's count of ranks in `MPI_Finalize`.
fn arrive() {
    arrived_at_rank0(true);
}

/// How many ranks reached `MPI_Finalize` (rank 0's count).
fn arrivals() -> u64 {
    arrived_at_rank0(false)
}

/// Reads rank 0's count of ranks in `MPI_Finalize`, adding this rank to it
/// when `add` (read and write under an exclusive lock, not
/// `MPI_Fetch_and_op`: Debian's Open MPI 4.1.4 crashes in its emulated
/// atomics when rank 0 targets itself). Returns the count read.
fn arrived_at_rank0(add: bool) -> u64 {
    let Some(rt) = runtime() else { return u64::MAX };
    let at = crate::core::state::offsets::ARRIVED as MPI_Aint;
    let next: [u64; 1];
    let mut v = [0u64];
    let mut epoch = crate::protocol::onesided::Epoch::one(rt.window, 0, add);
    epoch.get(0, at, &mut v);
    let mut epoch = epoch.settle();
    if add {
        next = [v[0] + 1];
        epoch.put(0, at, &next);
    }
    drop(epoch);
    v[0]
}

/// Frees the library's own MPI objects (the state window and the private
/// communicators). Collective: every process calls it once, before
/// `MPI_Finalize`.
pub fn release() {
    // SAFETY: the program's main thread in MPI_Finalize (see
    // `runtime_mut`); the window and the control communicator are ours
    // and freed collectively, as every process finalizes.
    unsafe {
        if let Some(rt) = runtime_mut() {
            if rt.window != k::MPI_WIN_NULL() {
                crate::core::state::move_home();
                PMPI_Win_free(&mut rt.window);
            }
            if rt.control != k::MPI_COMM_NULL() {
                PMPI_Comm_free(&mut rt.control);
            }
            if rt.finale != k::MPI_COMM_NULL() {
                PMPI_Comm_free(&mut rt.finale);
            }
        }
    }
}

/// Set while `scheduled` runs.
static NESTED: AtomicBool = AtomicBool::new(false);

#[cold]
pub fn scheduled(calls: u64) {
    let Some(rt) = runtime() else { return };
    if NESTED.swap(true, Ordering::Relaxed) {
        // A call made from inside the protocol's own work (an error
        // handler or callback MPI runs meanwhile): not a safe point.
        return;
    }
    let mut fired = schedule::SPECS_FIRED.load(Ordering::Relaxed) as usize;
    while rt
        .config
        .regroup_after
        .get(fired)
        .is_some_and(|&k| calls >= k)
    {
        log::info!(
            "regroup asked for after call {calls} (SPEC after={})",
            rt.config.regroup_after[fired]
        );
        fired += 1;
        crate::protocol::regroup::request();
    }
    schedule::SPECS_FIRED.store(fired as u64, Ordering::Relaxed);
    let mut moved = schedule::MIGRATIONS_FIRED.load(Ordering::Relaxed) as usize;
    while let Some((after, to)) = rt.config.migrate_after.get(moved).filter(|m| calls >= m.0) {
        log::info!("migration asked for after call {calls} (SPEC after={after})");
        moved += 1;
        crate::core::upcalls::upcalls().migrate_asked(rt.world_rank, to.clone());
    }
    schedule::MIGRATIONS_FIRED.store(moved as u64, Ordering::Relaxed);
    if schedule::JOB_DIR.load(Ordering::Relaxed)
        && ferry_common::time::unix_ms().saturating_sub(STATUS_AT.load(Ordering::Relaxed)) >= 1000
    {
        report_status("running");
    }
    if calls >= schedule::checkpoint_at() {
        crate::core::upcalls::upcalls().checkpoint_due(calls);
    }
    crate::protocol::regroup::service();
    if state().command.load(Ordering::SeqCst) == 0 && crate::protocol::regroup::queued() == 0 {
        state()
            .next_event
            .store(schedule::next_scheduled(), Ordering::SeqCst);
        if state().command.load(Ordering::SeqCst) != 0 || crate::protocol::regroup::queued() > 0 {
            state().next_event.store(0, Ordering::SeqCst);
        }
    }
    NESTED.store(false, Ordering::Relaxed);
}

/// After an `MPI_Barrier` on a communicator: the world-swap test switch.
#[inline]
pub fn after_barrier(comm: handles::CommRef) {
    if comm.index() != Some(0) {
        return;
    }
    let n = WORLD_BARRIERS.fetch_add(1, Ordering::Relaxed) + 1;
    let Some(rt) = runtime() else { return };
    if rt.config.dup_world_at_barrier.binary_search(&n).is_ok() {
        swap_world(n);
    }
}

#[cold]
fn swap_world(barrier: u64) {
    let old = handles::comm_real(k::MPI_COMM_WORLD());
    let mut new = k::MPI_COMM_NULL();
    let t0 = std::time::Instant::now();
    // A split, not a dup: a dup would run the program's attribute copy
    // callbacks. Every process is just past the same barrier on the world.
    let rank = runtime().map(|r| r.world_rank).unwrap_or(0);
    // SAFETY: collective over the world, as every process calls it here.
    let rc = unsafe { PMPI_Comm_split(old, 0, rank, &mut new) };
    if rc != k::MPI_SUCCESS() {
        log::error!(
            "world swap at barrier {barrier}: MPI_Comm_split failed ({rc}); staying on the old world"
        );
        return;
    }
    // SAFETY: as above; the test switch is only used where no message is
    // in flight at that barrier. Pending receives move with their
    // communicators.
    let parked = unsafe { crate::protocol::pending::park() };
    let moved = parked.len();
    // SAFETY: every process is here, the requests parked.
    let result = unsafe { crate::protocol::membership::rebuild_all(new, &|_| false) };
    // SAFETY: the communicators are rebuilt.
    unsafe { crate::protocol::pending::repost(parked) };
    match result {
        Ok(stats) => {
            WORLD_SWAPS.fetch_add(1, Ordering::Relaxed);
            log::info!(
                "world swapped at barrier {barrier}: {} communicators rebuilt, {} kept, {moved} requests moved, {:.1} ms",
                stats.communicators,
                stats.skipped,
                t0.elapsed().as_secs_f64() * 1e3
            );
        }
        Err(rc) => log::error!("world swap at barrier {barrier} failed while rebuilding ({rc})"),
    }
}
static LIB_VERSION: OnceLock<String> = OnceLock::new();

/// The real MPI library's version string.
pub fn library_version() -> &'static str {
    LIB_VERSION.get_or_init(|| {
        let mut buf = vec![0 as std::ffi::c_char; 8192];
        let mut len: c_int = 0;
        // SAFETY: the buffer exceeds MPI_MAX_LIBRARY_VERSION_STRING.
        unsafe { PMPI_Get_library_version(buf.as_mut_ptr(), &mut len) };
        let bytes: Vec<u8> = buf[..len.max(0) as usize]
            .iter()
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string()
    })
}

/// Why this MPI cannot start a replacement process, if it is known not to:
/// MPICH 4.0 (Debian 12's `libmpich12` 4.0.2, ch4:ucx) fails every
/// `MPI_Comm_spawn` here ("Error in spawn call") and aborts the job. A
/// migration is refused with this reason instead; regroups and checkpoints
/// need no spawn.
pub fn spawn_unusable() -> Option<String> {
    spawn_unusable_for(library_version())
}

fn spawn_unusable_for(version: &str) -> Option<String> {
    let v = version.strip_prefix("MPICH Version:")?.trim();
    v.starts_with("4.0").then(|| {
        format!(
            "this MPI (MPICH {v}) cannot spawn the replacement process (its MPI_Comm_spawn fails \
             with \"Error in spawn call\")"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawn_known_unusable_on_mpich_4_0_only() {
        assert!(spawn_unusable_for("MPICH Version:\t4.0.2").is_some());
        assert!(spawn_unusable_for("MPICH Version:      5.0.2").is_none());
        assert!(spawn_unusable_for("Open MPI v4.1.4, package: Debian OpenMPI").is_none());
    }

    #[test]
    fn one_spawned_job_at_most() {
        let reduce = |jobs: &[u64]| {
            let mut out = [0u64; 2];
            for &j in jobs {
                out[0] = out[0].max(j);
                out[1] = out[1].max(if j == 0 { 0 } else { u64::MAX - j });
            }
            out
        };
        assert!(at_most_one_job(reduce(&[0, 0, 0])));
        assert!(at_most_one_job(reduce(&[0, 42, 0])));
        assert!(at_most_one_job(reduce(&[42])));
        assert!(!at_most_one_job(reduce(&[0, 42, 43])));
        assert!(!at_most_one_job(reduce(&[7, 42])));
    }
}
