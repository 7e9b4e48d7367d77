//! A session: one regroup, run as its phases in order, with what it is
//! for in the middle. The protocol layer gives the phases
//! (`protocol::regroup`: [`freeze`](crate::protocol::regroup::freeze),
//! [`drain`](crate::protocol::regroup::Frozen::drain),
//! [`rebuild`](crate::protocol::regroup::Frozen::rebuild),
//! [`thaw`](crate::protocol::regroup::Frozen::thaw)); this layer decides
//! what runs while the job is frozen and drained (a migration, a
//! checkpoint, or nothing) and reports the regroup (the event line).
//!
//! It is also what the lower layers call up into (`core::upcalls`):
//! [`UPCALLS`], registered when the library is loaded; and the library's
//! life in the process, [`start`] at `MPI_Init` and [`finish`] at
//! `MPI_Finalize`.
use crate::core::handles::CommRef;
use crate::core::state::state;
use crate::core::upcalls::Upcalls;
use crate::ops::{checkpoint, links, migration, remake};
use crate::protocol::regroup::{self, Frozen, Thawed};
use crate::protocol::{control, drain, pending};
use crate::sys::*;
use std::ffi::{c_int, c_void};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// What a restarted process runs in place of `main` (`FERRY_RESTART`):
/// its image restored, the library started on the new MPI by [`start`].
pub fn restart(dir: &str) -> i32 {
    crate::ops::image::restore::restart(dir, start)
}

/// The library's start in a process, in `MPI_Init` (or a restarted
/// process's) after the real one succeeded, with the thread level MPI
/// provided.
pub fn start(provided: c_int) {
    control::start(provided, checkpoint::configure);
}

/// `MPI_Finalize` begins, before the real one: every process waits for all
/// (taking part in a regroup meanwhile), the processes this rank left
/// behind finalize with it, and the library's objects are freed.
pub fn finish() {
    control::finish();
    let migrated = crate::core::moves::happened();
    links::finish_predecessor();
    links::disconnect_all();
    if crate::sys::quirks::FINALIZE_COUNTS_FOREIGN_COMMS && migrated {
        crate::core::handles::free_all_comms();
    }
    control::finished();
}

/// What the operation of a regroup did to this process.
enum Outcome {
    /// A plain regroup, or a refused operation.
    Stayed,
    /// A migration made a new world (and this process is the replacement,
    /// or one that stayed, with the program's groups to make again).
    Migrated {
        new_world: MPI_Comm,
        replacement: bool,
        stayer_groups: Option<Vec<(usize, Vec<c_int>)>>,
    },
    /// The job resumed from a checkpoint (in a new MPI): how long the
    /// restore took and the image's size.
    Resumed { restore_us: u64, image_bytes: u64 },
}

/// Runs the regroup this process is frozen for, with every other
/// process: called at a safe point (no internal request of the library
/// outstanding) once FREEZE has arrived.
pub fn run() {
    // 1. The freeze.
    let Some(mut frozen) = regroup::freeze() else {
        return;
    };
    // 2. The drain.
    frozen.drain();
    // 3. What this regroup is (the leader says): a plain one, a checkpoint
    // (every process images itself here; in a restarted job the processes
    // come back here, on a new MPI) or a migration.
    // SAFETY: every process of the job is here, after the drain.
    let op = unsafe {
        migration::agree(
            frozen.control,
            frozen.leader,
            frozen.rank,
            frozen.size,
            checkpoint::leading(),
        )
    };
    let outcome = match &op {
        migration::Operation::Migrate(batch) => migrate(&frozen, batch),
        migration::Operation::Checkpoint => take_checkpoint(&frozen),
        _ => Outcome::Stayed,
    };
    // 4. The new group.
    let (migrated, fresh, mut stayer_groups, resumed) = match outcome {
        Outcome::Stayed => (None, false, None, None),
        Outcome::Migrated {
            new_world,
            replacement,
            stayer_groups,
        } => (Some(new_world), replacement, stayer_groups, None),
        Outcome::Resumed {
            restore_us,
            image_bytes,
        } => (None, true, None, Some((restore_us, image_bytes))),
    };
    let rebuilt = frozen.rebuild(migrated, fresh, |new_world| {
        if fresh {
            remake::after_rebuild();
        }
        if let Some(groups) = stayer_groups.take() {
            // SAFETY: the new world is live; the old groups are ours.
            unsafe { remake::remake_groups(new_world, groups, true) };
        }
    });
    if !rebuilt {
        return;
    }
    // 5. The thaw, then the report.
    let thawed = frozen.thaw();
    match resumed {
        Some((restore_us, image_bytes)) => report_restart(&thawed, restore_us, image_bytes),
        None => report(&thawed, &op, migrated.is_some()),
    }
}

/// The migration of a regroup (one rank or several, in one
/// synchronization).
fn migrate(frozen: &Frozen, batch: &[migration::Target]) -> Outcome {
    // SAFETY: every process is here, frozen and drained.
    match unsafe {
        migration::run(
            frozen.control,
            frozen.leader,
            frozen.rank,
            frozen.size,
            batch,
            &frozen.slots(),
            frozen.orphans.len(),
            &mut regroup::flush_outboxes,
        )
    } {
        migration::Moved::Stayed => Outcome::Stayed,
        migration::Moved::Yes {
            new_world,
            replacement,
        } => Outcome::Migrated {
            new_world,
            replacement,
            // The program's groups name the old process: made again on
            // the new world after the rebuild.
            stayer_groups: (!replacement).then(remake::group_ranks),
        },
    }
}

/// The checkpoint of a regroup (and, in a restarted job, where it resumes).
fn take_checkpoint(frozen: &Frozen) -> Outcome {
    let led = regroup::led();
    let (notify_us, collective_us) = led.map(|l| l.notify_and_collective_us()).unwrap_or((0, 0));
    let before = checkpoint::Before {
        epoch: frozen.epoch,
        notify_us,
        collective_us,
        p2p_sync_us: frozen.p2p_sync.as_micros() as u64,
        drain_us: frozen.drain.as_micros() as u64,
        drained_messages: frozen.drained.messages,
        drained_bytes: frozen.drained.bytes,
        started: led.map(|l| l.started),
    };
    // SAFETY: every process is here, frozen and drained.
    match unsafe {
        checkpoint::take(
            frozen.control,
            frozen.rank,
            frozen.size,
            &frozen.slots(),
            frozen.orphans.len(),
            &before,
            &mut regroup::flush_outboxes,
        )
    } {
        checkpoint::Taken::Resumed {
            restore_us,
            image_bytes,
        } => Outcome::Resumed {
            restore_us,
            image_bytes,
        },
        _ => Outcome::Stayed,
    }
}

/// A restarted job's report: the slowest restore and the images' sizes.
fn report_restart(t: &Thawed, restore_us: u64, image_bytes: u64) {
    use crate::sys::collective::{reduce, Op};
    // SAFETY: reductions of one word over the control communicator, by
    // every process.
    let (worst, bytes) = unsafe {
        (
            reduce(t.control, &[restore_us], Op::Max, 0)[0],
            reduce(t.control, &[image_bytes], Op::Sum, 0)[0],
        )
    };
    let group_us = t.maxs.group_us;
    checkpoint::restarted(t.rank, bytes, worst, group_us, worst + group_us);
}

/// The leader's event lines of a regroup or a migration (one per rank
/// that moved), and its log line.
fn report(t: &Thawed, op: &migration::Operation, migrated: bool) {
    let Some(led) = t.led else { return };
    let (epoch, rank, sums, maxs) = (t.epoch, t.rank, t.sums, t.maxs);
    let superstep = state().supersteps[0].load(Ordering::Relaxed);
    let total = led.started.elapsed();
    let us = |d: Duration| d.as_micros() as u64;
    let (notify, collective) = led.notify_and_collective_us();
    let reports = if migrated {
        migration::take_reports()
    } else {
        Vec::new()
    };
    let targets: &[migration::Target] = match op {
        migration::Operation::Migrate(batch) => batch,
        _ => &[],
    };
    // The ranks of the batch that did not move (tried again later are
    // not refused).
    let retried = migration::retried();
    let refused: Vec<c_int> = targets
        .iter()
        .map(|t| t.rank)
        .filter(|r| !reports.iter().any(|m| m.rank == *r) && !retried.contains(r))
        .collect();
    // What every line of this regroup says.
    let mut base = ferry_common::events::Event::new(ferry_common::events::EventKind::Regroup);
    base.rank = Some(rank as u32);
    base.global_superstep = Some(superstep);
    base.drained_messages = Some(sums.drained_messages);
    base.drained_bytes = Some(sums.drained_bytes);
    base.phases_us.notify = Some(notify);
    base.phases_us.collective_sync = Some(collective);
    base.phases_us.p2p_sync = Some(maxs.p2p_sync_us);
    base.phases_us.drain = Some(maxs.drain_us);
    base.phases_us.group = Some(maxs.group_us);
    base.phases_us.total = Some(us(total));
    base.extra.insert("epoch".into(), epoch.into());
    base.extra.insert("readings".into(), led.readings.into());
    base.extra.insert("releases".into(), led.releases.into());
    base.extra
        .insert("requests_moved".into(), sums.requests_moved.into());
    if let Some(first) = refused.first() {
        base.extra
            .insert("migration_refused".into(), (*first).into());
        if targets.len() > 1 {
            base.extra
                .insert("migrations_refused".into(), refused.clone().into());
        }
    }
    if targets.len() > 1 {
        let ranks: Vec<c_int> = targets.iter().map(|t| t.rank).collect();
        base.extra.insert("batch".into(), ranks.into());
    }
    let request_of = |r: c_int| targets.iter().find(|t| t.rank == r).and_then(|t| t.request);
    log::info!(
        "{} {epoch} done in {:.2} ms: sync {:.2} ms, {} messages drained ({} bytes), {} requests moved",
        match reports.len() {
            0 => "regroup".to_string(),
            1 => "migration".to_string(),
            n => format!("migration of {n} ranks"),
        },
        total.as_secs_f64() * 1e3,
        (collective + maxs.p2p_sync_us) as f64 / 1e3,
        sums.drained_messages,
        sums.drained_bytes,
        sums.requests_moved
    );
    let mut lines = Vec::new();
    if reports.is_empty() {
        let mut ev = base.clone();
        // (a refused batch: the request of its first rank)
        if let Some(n) = targets.first().and_then(|t| t.request) {
            ev.extra.insert("request".into(), n.into());
        }
        ev.extra.insert("pid".into(), std::process::id().into());
        lines.push(ev);
    }
    for r in &reports {
        let mut ev = base.clone();
        ev.event = ferry_common::events::EventKind::Migrate;
        ev.rank = Some(r.rank as u32);
        ev.from_host = Some(r.from_host.clone());
        ev.to_host = Some(r.to_host.clone());
        ev.old_pid = Some(r.old_pid as u32);
        ev.new_pid = Some(r.new_pid as u32);
        ev.image_bytes = Some(r.image_bytes);
        ev.phases_us.spawn = Some(r.spawn_us);
        ev.phases_us.state_transfer = Some(r.transfer_us);
        ev.phases_us.restore = Some(r.restore_us);
        ev.phases_us.group = Some(r.group_us + maxs.group_us);
        ev.extra.insert("leader".into(), rank.into());
        if let Some(n) = request_of(r.rank) {
            ev.extra.insert("request".into(), n.into());
        }
        // The event says the rank left its old process: written once that
        // process is gone where this process can see it (same host), so
        // that whoever acts on the event (a kill, a node taken down) finds
        // nothing of the rank there any more.
        if let Some(waited) = migration::await_old_process(r) {
            ev.extra
                .insert("old_process_gone_us".into(), us(waited).into());
        }
        lines.push(ev);
    }
    if let Some(path) = ferry_common::env::var(ferry_common::env::FERRY_EVENTS) {
        for ev in &lines {
            if let Err(e) = ferry_common::events::append_event(&path, ev) {
                log::warn!("cannot append to the event log {path}: {e}");
            }
        }
    }
}

/// What the lower layers call up into.
pub static UPCALLS: Session = Session;

/// The operations layer, as `core::upcalls` reaches it.
pub struct Session;

impl Upcalls for Session {
    fn at_collective(&self, slot: usize, k: u64) -> bool {
        regroup::at_collective(slot, k)
    }
    fn scheduled(&self, calls: u64) {
        control::scheduled(calls)
    }
    fn woken(&self, wakeable: bool) -> bool {
        regroup::poll(false) && wakeable && regroup::may_freeze_here()
    }
    fn nudge(&self, world: i32, since: Instant) {
        regroup::nudge(world, since)
    }
    fn regroup_now(&self) {
        run()
    }
    fn external_requests(&self) -> usize {
        migration::take_external_requests()
    }
    fn refuse_queued(&self) {
        migration::refuse_queued()
    }
    fn migrate_asked(&self, rank: c_int, host: Option<String>) {
        migration::request(migration::Target {
            rank,
            host,
            request: None,
        });
    }
    fn checkpoint_due(&self, calls: u64) {
        checkpoint::fire(calls)
    }
    unsafe fn drained_recv(
        &self,
        comm: CommRef,
        source: c_int,
        tag: c_int,
        buf: *mut c_void,
        count: i64,
        datatype: MPI_Datatype,
        status: *mut MPI_Status,
    ) -> Option<c_int> {
        // SAFETY: contract of the trait's method.
        unsafe { drain::recv(comm, source, tag, buf, count, datatype, status) }
    }
    unsafe fn drained_probe(
        &self,
        comm: CommRef,
        source: c_int,
        tag: c_int,
        flag: *mut c_int,
        status: *mut MPI_Status,
    ) -> Option<c_int> {
        // SAFETY: contract of the trait's method.
        unsafe { drain::probe(comm, source, tag, flag, status) }
    }
    unsafe fn drained_mprobe(
        &self,
        comm: CommRef,
        source: c_int,
        tag: c_int,
        flag: *mut c_int,
        message: *mut MPI_Message,
        status: *mut MPI_Status,
    ) -> Option<c_int> {
        // SAFETY: contract of the trait's method.
        unsafe { drain::mprobe(comm, source, tag, flag, message, status) }
    }
    unsafe fn serve_start(&self, i: usize) -> bool {
        // SAFETY: contract of the trait's method.
        unsafe { pending::serve_start(i) }
    }
    unsafe fn start_standin(&self, i: usize) -> c_int {
        // SAFETY: contract of the trait's method.
        unsafe { pending::start_standin(i) }
    }
}
