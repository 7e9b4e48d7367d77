//! Job checkpoint and restart, built from the regroup and the process
//! image.
//!
//! `FERRY_CHECKPOINT=after=K,dir=DIR` (`ferry run --checkpoint`): once
//! world rank 0 has made K calls it asks for a regroup and, leading it,
//! tells every process that this one is a checkpoint. Every process is then
//! frozen at a consistent point, with every channel drained into its
//! library (the regroup's collective and point-to-point synchronization and
//! drain). There each process
//!
//! 1. checks that it can be imaged (threads, windows, files, MPI objects the
//!    image cannot re-create yet); if any process cannot, every process
//!    says so and the job goes on as after a regroup;
//! 2. completes its outstanding requests that are not re-posted (sends,
//!    nonblocking collectives) and records what the new MPI must re-create
//!    (groups, communicator names, error handlers);
//! 3. writes its image to `DIR/rank-R.img` (0600, `DIR` 0700);
//! 4. when every image is written, rank 0 writes `DIR/checkpoint.json` and
//!    the event log line, and the job ends with status 0.
//!
//! `ferry restart DIR` starts the same program on as many ranks with
//! `FERRY_RESTART=DIR`: each process restores its image (see
//! [`crate::ops::image::restore`]) and resumes inside the regroup, on the new
//! MPI: it adopts the new MPI's objects, re-creates the recorded ones, and
//! the regroup's rebuild makes every communicator again; drained messages
//! and re-posted receives are served as after any regroup.
use crate::sys::constants as k;
use crate::sys::*;
use std::ffi::c_int;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

static DIR: Mutex<Option<PathBuf>> = Mutex::new(None);
/// Rank 0's request fired: the next regroup it leads is the checkpoint.
static LEADS: AtomicBool = AtomicBool::new(false);

/// Reads `FERRY_CHECKPOINT` (at `MPI_Init`).
pub fn configure(rank: c_int) -> Result<(), String> {
    match ferry_common::env::checkpoint_from_env() {
        Ok(Some(spec)) => {
            let dir = absolute(Path::new(&spec.dir));
            if let Ok(mut d) = DIR.lock() {
                *d = Some(dir);
            }
            if rank == 0 {
                crate::protocol::schedule::set_checkpoint_at(spec.after);
            }
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(e) => Err(format!("{}: {e}", ferry_common::env::FERRY_CHECKPOINT)),
    }
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|c| c.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

/// The call count at which this rank asks for the checkpoint (`u64::MAX`:
/// never, or already asked).
pub fn due_at() -> u64 {
    crate::protocol::schedule::checkpoint_at()
}

/// The call count is reached: ask for the regroup that will be the
/// checkpoint.
pub fn fire(calls: u64) {
    crate::protocol::schedule::set_checkpoint_at(u64::MAX);
    log::info!("checkpoint asked for after call {calls}");
    LEADS.store(true, Ordering::SeqCst);
    crate::protocol::regroup::request();
}

/// Whether this process asked for the checkpoint that the regroup it
/// leads now is (what the leader says in [`crate::ops::migration::agree`]).
pub fn leading() -> bool {
    LEADS.swap(false, Ordering::SeqCst)
}

/// How a checkpoint ended for the job (when it did not end the job).
pub enum Taken {
    /// Some process could not be imaged: the job goes on.
    Refused,
    /// An image could not be written: the job goes on.
    Failed,
    /// This is the restarted process; the regroup goes on with a fresh
    /// world. `restore_us`: this process's restore time; `image_bytes`:
    /// the memory its image held.
    Resumed { restore_us: u64, image_bytes: u64 },
}

/// Phases measured before the capture, for the event log.
pub struct Before {
    pub epoch: u64,
    pub notify_us: u64,
    pub collective_us: u64,
    pub p2p_sync_us: u64,
    pub drain_us: u64,
    pub drained_messages: u64,
    pub drained_bytes: u64,
    pub started: Option<Instant>,
}

/// Takes the checkpoint. Collective over `control`: every process of the
/// job calls it in the same regroup, after the drain. Does not return when
/// the checkpoint is written (the job ends).
///
/// # Safety
/// Every process is frozen and drained; `parked` are the request slots the
/// regroup took off their communicators (re-posted afterwards).
pub unsafe fn take(
    control: MPI_Comm,
    rank: c_int,
    size: c_int,
    parked: &[usize],
    orphans: usize,
    before: &Before,
    flush: &mut dyn FnMut(),
) -> Taken {
    let dir = DIR.lock().ok().and_then(|d| d.clone());
    let Some(dir) = dir else {
        log::error!("checkpoint: no directory (FERRY_CHECKPOINT is not set in this rank)");
        return Taken::Failed;
    };
    let mut reasons = crate::mem::refusal::reasons();
    reasons.extend(crate::ops::remake::library_reasons(parked, orphans));
    if crate::core::moves::happened() {
        reasons.push(
            "ranks of this job moved to new processes: a checkpoint after a migration is not supported yet"
                .into(),
        );
    }
    let datatypes = match crate::core::datatypes::save_all() {
        Ok(d) => d,
        Err(e) => {
            reasons.push(e);
            Vec::new()
        }
    };
    // SAFETY: collective over the control communicator.
    let refused = unsafe { any(control, !reasons.is_empty()) };
    if refused {
        for r in &reasons {
            log::error!("checkpoint refused: rank {rank} cannot be imaged: {r}");
            eprintln_rank(
                rank,
                &format!("checkpoint refused: rank {rank}: {r}; the job goes on"),
            );
            crate::sys::life::append_event(&ferry_common::events::Event::refused(
                "checkpoint",
                u32::try_from(rank).ok(),
                r,
            ));
        }
        if rank == 0 && reasons.is_empty() {
            eprintln_rank(rank, "checkpoint refused: another rank cannot be imaged (see its message); the job goes on");
        }
        return Taken::Refused;
    }
    // The library's own waits on the program's blocking sends: complete.
    // SAFETY: every process is frozen and drained.
    unsafe { crate::calls::p2p::complete_held() };
    // Requests that are not re-posted complete now; each is replaced by a
    // completed request reporting its status (made again after a restart).
    // SAFETY: every process is here, frozen; completion needs only MPI's
    // progress, which every process makes in the loop.
    let (completed, failed) = match unsafe { crate::ops::remake::complete_requests(parked) } {
        Ok(c) => (c, false),
        Err(e) => {
            log::error!("checkpoint: {e}");
            (Vec::new(), true)
        }
    };
    // SAFETY: collective.
    if unsafe { any(control, failed) } {
        eprintln_rank(
            rank,
            "checkpoint failed: requests could not complete; the job goes on",
        );
        return Taken::Failed;
    }
    crate::ops::remake::record(completed, datatypes);
    flush();
    crate::core::clock::wtime_captured();
    let made = private_dir(&dir);
    let outcome = match made {
        Ok(()) => {
            let level = crate::sys::life::thread_level();
            crate::ops::image::capture::capture(
                crate::ops::image::capture::Destination::File(
                    &crate::ops::image::restore::image_path(&dir, rank),
                ),
                rank,
                size,
                level,
            )
        }
        Err(e) => crate::ops::image::capture::Outcome::Failed(e),
    };
    match outcome {
        crate::ops::image::capture::Outcome::Resumed => {
            // The new process: its own MPI objects, then the recorded ones.
            let fresh = crate::ops::image::restore::fresh_values();
            crate::core::runtime::adopt(&fresh);
            crate::core::clock::wtime_resumed();
            crate::core::bsend::reattach_buffer();
            // Links of past migrations name the old job's processes.
            crate::ops::links::forget_links();
            let restore_us = crate::ops::image::restore::elapsed_us(&fresh);
            // SAFETY: the new MPI is up; every process of the job is here.
            unsafe { crate::ops::remake::remake(k::MPI_COMM_WORLD()) };
            Taken::Resumed {
                restore_us,
                image_bytes: fresh[crate::ops::image::restore::IMAGE_BYTES],
            }
        }
        crate::ops::image::capture::Outcome::Written(stats) => {
            // SAFETY: collective.
            let failed = unsafe { any(control, false) };
            if failed {
                let _ = std::fs::remove_file(&stats.path);
                eprintln_rank(rank, "checkpoint failed on another rank; the job goes on");
                return Taken::Failed;
            }
            // SAFETY: collective; then the job ends.
            unsafe { finish(control, rank, size, &dir, &stats, before) }
        }
        crate::ops::image::capture::Outcome::Failed(e) => {
            eprintln_rank(
                rank,
                &format!("checkpoint failed on rank {rank}: {e}; the job goes on"),
            );
            // SAFETY: collective (the others are in the same reduction).
            unsafe { any(control, true) };
            Taken::Failed
        }
    }
}

/// One line on stderr, written at once (lines of several ranks meet in
/// the launcher's output).
fn eprintln_rank(rank: c_int, msg: &str) {
    use std::io::Write;
    let line = format!("ferry[{rank}]: {msg}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Logical OR over the control communicator (blocking).
unsafe fn any(control: MPI_Comm, mine: bool) -> bool {
    // SAFETY: collective over the control communicator (the callers').
    unsafe { crate::sys::collective::any(control, mine, crate::sys::collective::Wait::Blocking) }
}

/// Makes `dir` (0700) or checks that it is a directory of ours and makes it
/// private.
fn private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => {}
        Err(e) => {
            return Err(format!(
                "cannot make the checkpoint directory {}: {e}",
                dir.display()
            ))
        }
    }
    let m = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // SAFETY: getuid cannot fail.
    if m.uid() != unsafe { libc::getuid() } {
        return Err(format!(
            "the checkpoint directory {} belongs to another user",
            dir.display()
        ));
    }
    if m.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot make {} private: {e}", dir.display()))?;
    }
    Ok(())
}

/// Every image is written: the job's record, the event, the end.
unsafe fn finish(
    control: MPI_Comm,
    rank: c_int,
    size: c_int,
    dir: &Path,
    stats: &crate::ops::image::capture::Stats,
    before: &Before,
) -> Taken {
    use crate::sys::collective::{reduce, Op};
    let mine = [stats.image_bytes, stats.micros, stats.file_bytes];
    // SAFETY: reductions of three words over the control communicator, by
    // every process.
    let (sums, maxs) = unsafe {
        (
            reduce(control, &mine, Op::Sum, 0),
            reduce(control, &mine, Op::Max, 0),
        )
    };
    if rank == 0 {
        let meta = serde_json::json!({
            "ranks": size,
            "program": crate::mem::elf::identity().0,
            "argv": crate::mem::startup::program_args(),
            "cwd": std::env::current_dir().ok().map(|p| p.to_string_lossy().into_owned()),
            // `ferry run`'s MPI (mpich-deb is an MPICH too), which
            // `ferry restart` starts again.
            "mpi": ferry_common::env::var(ferry_common::env::FERRY_MPI)
                .unwrap_or_else(|| env!("FERRY_MPI_FLAVOUR").to_string()),
            "lib": crate::mem::elf::ferry_path(),
            "thread_level": crate::sys::life::thread_level(),
            "image_bytes": sums[0],
            "file_bytes": sums[2],
            "created_unix_ms": ferry_common::time::unix_ms(),
            "events": ferry_common::env::var(ferry_common::env::FERRY_EVENTS),
        });
        let path = dir.join("checkpoint.json");
        let text = serde_json::to_string_pretty(&meta).unwrap_or_default();
        if let Err(e) = write_private(&path, text.as_bytes()) {
            log::error!("cannot write {}: {e}", path.display());
        }
        let mut ev = ferry_common::events::Event::new(ferry_common::events::EventKind::Checkpoint);
        ev.rank = Some(0);
        ev.old_pid = Some(std::process::id());
        ev.global_superstep =
            Some(crate::core::state::state().supersteps[0].load(Ordering::Relaxed));
        ev.drained_messages = Some(before.drained_messages);
        ev.drained_bytes = Some(before.drained_bytes);
        ev.image_bytes = Some(sums[0]);
        ev.phases_us.notify = Some(before.notify_us);
        ev.phases_us.collective_sync = Some(before.collective_us);
        ev.phases_us.p2p_sync = Some(before.p2p_sync_us);
        ev.phases_us.drain = Some(before.drain_us);
        ev.phases_us.state_transfer = Some(maxs[1]);
        ev.phases_us.total = before.started.map(|t| t.elapsed().as_micros() as u64);
        ev.extra.insert("epoch".into(), before.epoch.into());
        ev.extra
            .insert("dir".into(), dir.to_string_lossy().into_owned().into());
        ev.extra.insert("ranks".into(), size.into());
        ev.extra.insert("file_bytes".into(), sums[2].into());
        let mbps = if maxs[1] > 0 {
            sums[0] as f64 / maxs[1] as f64
        } else {
            0.0
        };
        ev.extra
            .insert("capture_mb_per_s".into(), (mbps.round() as u64).into());
        crate::sys::life::append_event(&ev);
        eprintln_rank(
            0,
            &format!(
                "checkpoint written to {}: {} ranks, {:.1} MiB of images, capture {:.1} ms; the job ends here (resume with `ferry restart {}`)",
                dir.display(),
                size,
                sums[0] as f64 / (1 << 20) as f64,
                maxs[1] as f64 / 1e3,
                dir.display()
            ),
        );
    }
    // SAFETY: every process ends here, together; stdio was flushed by the
    // capture; the program's exit handlers must not run (they run at the
    // end of the restarted job).
    unsafe {
        libc::fflush(std::ptr::null_mut());
        PMPI_Barrier(control);
        // Processes left behind by migrations end with the job.
        crate::ops::links::finish_predecessor();
        let _ = crate::ops::links::quiet_sigpipe();
        crate::ops::links::disconnect_all();
        crate::protocol::control::report_status("checkpointed");
        crate::protocol::control::release();
        PMPI_Finalize();
        crate::mem::process::run_library_exit_handlers();
        libc::_exit(0)
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

/// The restart event, written by rank 0 of the restarted job.
pub fn restarted(rank: c_int, image_bytes: u64, restore_us_max: u64, group_us: u64, total_us: u64) {
    if rank != 0 {
        return;
    }
    let mut ev = ferry_common::events::Event::new(ferry_common::events::EventKind::Restart);
    ev.rank = Some(0);
    ev.new_pid = Some(std::process::id());
    let old = crate::ops::image::restore::fresh_values()[crate::ops::image::restore::OLD_PID];
    if old != 0 {
        ev.old_pid = Some(old as u32);
    }
    ev.image_bytes = Some(image_bytes);
    if restore_us_max > 0 {
        let mbps = image_bytes as f64 / restore_us_max as f64;
        ev.extra
            .insert("restore_mb_per_s".into(), (mbps.round() as u64).into());
    }
    ev.phases_us.restore = Some(restore_us_max);
    ev.phases_us.group = Some(group_us);
    ev.phases_us.total = Some(total_us);
    if let Some(d) = ferry_common::env::var(crate::mem::startup::FERRY_RESTART) {
        ev.extra.insert("dir".into(), d.into());
    }
    crate::sys::life::append_event(&ev);
    log::info!(
        "restarted: restore {:.1} ms, group {:.1} ms",
        restore_us_max as f64 / 1e3,
        group_us as f64 / 1e3
    );
}
