//! Live migration: ranks leave their processes and go on in new ones,
//! started with `MPI_Comm_spawn_multiple`, while the others keep their
//! processes (the patent's Figs. 3–5; docs/migration.md).
//!
//! A migration is a regroup ([`crate::protocol::regroup`]) whose leader says so
//! ([`agree`]): one rank, or several in one synchronization (a batch:
//! `ferry migrate --rank 1,2,3`, `ferry evacuate`). Once every process is
//! frozen and every channel drained, [`run`] goes through its phases:
//!
//! 1. [`check`]: **can each move?** Each leaving process checks that it can
//!    be imaged (threads, windows, MPI objects an image cannot re-create
//!    yet, its target host); every process learns the answers; the refused
//!    ranks are said and the others go on.
//! 2. [`find_origins`]: where each leaves from, and whether the old
//!    processes leave the job at once (all of them, or none).
//! 3. [`complete`]: the leaving processes complete their sends and other
//!    requests that are not re-posted, and record their MPI objects.
//! 4. [`spawn_all`]: **one spawn** of every replacement (each on its host),
//!    with the arguments of a replacement ([`MARKER`]): the thread level,
//!    the descriptor numbers to keep free before `MPI_Init`, the leaving
//!    process to listen to.
//! 5. [`transfer`]: **state transfer**, between each leaving process and
//!    its replacement alone, over the spawn's communicator: the rank it
//!    takes and the process image ([`crate::ops::image::stream`]: memory,
//!    open files, signal handlers, and with them the library's own state).
//!    Each replacement checks its image and answers; every wait is bounded
//!    (`FERRY_TRANSFER_TIMEOUT_MS`). Every process learns each verdict: GO
//!    for all, or the spawn is given up (NOGO: disconnected; LOST: freed)
//!    and the ranks whose own transfer went well are tried again.
//! 6. [`new_group`]: `MPI_Intercomm_merge` (the replacements high),
//!    `MPI_Comm_split` keyed by the old ranks with the leaving processes
//!    excluded: each replacement holds its rank in the new world.
//! 7. **Restore.** The library moves onto the new world (control
//!    communicator and state window made again); each replacement copies
//!    its image into place and returns from the interrupted call, inside
//!    the regroup, which rebuilds every derived communicator and re-posts
//!    pending receives as after any regroup.
//! 8. **The leaving processes** leave the job: every member frees the
//!    migration's merged communicator and disconnects its
//!    intercommunicator ([`links::release_link`]), and they give their memory
//!    back, finalize and exit ([`depart`]); the event of each move is
//!    written once its old process is gone (where that can be seen,
//!    [`await_old_process`]). With `FERRY_OLD_PROCESS=stay` they sleep
//!    instead until the ranks that replaced them finalize, and finalize
//!    with them ([`dormant`]). On Open MPI 4.1.4, a host every first
//!    process of the job left cannot take a process again: such a move is
//!    refused ([`closed_host`]).
use crate::ops::links;
use crate::sys::collective;
use crate::sys::constants as k;
use crate::sys::*;
use std::collections::VecDeque;
use std::ffi::{c_char, c_int, c_void, CString};
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

mod departure;
mod hooks;
mod queue;
mod replacement;
mod spawn;
mod transfer;

use self::spawn::*;
pub use self::{departure::*, hooks::*, queue::*, replacement::*, transfer::*};

/// First argument of a replacement process: it restores the image it is
/// sent instead of running `main`.
pub use crate::mem::REPLACEMENT_MARKER as MARKER;

/// Tag of the handshake (old rank to the replacement) and of FINISH.
const TAG_HELLO: c_int = 0x6673;
const TAG_JOIN: c_int = 0x6675;
/// Tags of the replacement's answer once it has the image, and of the
/// leaving process's verdict to it.
const TAG_ACK: c_int = 0x6676;
const TAG_VERDICT: c_int = 0x6677;

/// One line on stderr, at once.
fn say(msg: &str) {
    use std::io::Write;
    let rank = crate::core::runtime::runtime()
        .map(|r| r.world_rank)
        .unwrap_or(-1);
    let line = format!("ferry[{rank}]: {msg}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// How a migration ended for this process.
pub enum Moved {
    /// The rank did not move (refused or failed, said why): the regroup
    /// goes on as a plain one.
    Stayed,
    /// The rank moved: the job goes on over `new_world`. `replacement`:
    /// this is the new process (resumed from the image).
    Yes {
        new_world: MPI_Comm,
        replacement: bool,
    },
}

/// The measures of one migration, for the event line (known to the
/// leader once the migration is done).
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub rank: c_int,
    pub old_pid: u64,
    pub new_pid: u64,
    pub from_host: String,
    pub to_host: String,
    pub image_bytes: u64,
    pub spawn_us: u64,
    pub group_us: u64,
    pub transfer_us: u64,
    pub restore_us: u64,
    /// Whether the old process left the job (else it sleeps until the
    /// job ends).
    pub old_left: bool,
    /// How many ranks moved in the same synchronization.
    pub batch: usize,
}

static REPORTS: Mutex<Vec<Report>> = Mutex::new(Vec::new());

/// The reports of the migration this process just took part in, one per
/// rank that moved.
pub fn take_reports() -> Vec<Report> {
    REPORTS
        .lock()
        .map(|mut r| std::mem::take(&mut *r))
        .unwrap_or_default()
}

pub use crate::core::moves::{
    count, happened, is_replacement, spawned_by_replacement, started_as_replacement,
};

/// The regroup this migration is part of.
fn epoch() -> u64 {
    crate::core::state::state().command.load(Ordering::SeqCst)
}

/// Whether this process is one the launcher started (not a replacement;
/// a restarted job's processes are its launcher's too).
fn first_process() -> bool {
    !crate::core::moves::is_replacement()
}

// Slots of the handover page's fresh values used by a migration.
const F_REPLACEMENT: usize = 4;
const F_MERGED: usize = 5;
const F_PARENT: usize = 6;
const F_WORLD: usize = 7;
const F_TRANSFER_US: usize = 8;
const F_SPAWNED_AT: usize = 9;
const F_GROUP_US: usize = 10;

/// Logical OR over `comm`, waited for without holding a core where MPI
/// allows (see [`crate::sys::nap::napping`]).
unsafe fn any(comm: MPI_Comm, mine: bool) -> bool {
    // SAFETY: collective over `comm` (the callers' contracts).
    unsafe { collective::any(comm, mine, LONG_WAIT) }
}

/// How the migration's collectives are waited for: asleep, naps growing to
/// a millisecond (the replacement starts, the image crosses).
const LONG_WAIT: collective::Wait = collective::Wait::Napping(crate::sys::nap::LONG_NAP);

fn hostname() -> String {
    ferry_common::job::hostname()
}

/// Whether `host` names a machine this one can resolve.
fn resolvable(host: &str) -> bool {
    use std::net::ToSocketAddrs;
    (host, 0)
        .to_socket_addrs()
        .is_ok_and(|mut a| a.next().is_some())
}

/// One synchronization's moves as every process knows them, and what the
/// phases found out so far.
struct Batch {
    control: MPI_Comm,
    /// The process that led the regroup (it queues again what must be
    /// tried again).
    leader: c_int,
    rank: c_int,
    size: c_int,
    /// The moves still on (sorted by rank; the same in every process).
    targets: Vec<Target>,
    /// Each target's host of origin and whether its leaving process is
    /// one the job started with (for `closed_host`).
    origins: Vec<(String, bool)>,
    /// Whether the old processes leave the job at once (else they sleep
    /// until it ends): the same for the whole batch.
    leaves: bool,
}

impl Batch {
    /// This process's place among the targets, if it is a leaving one.
    fn mine(&self) -> Option<usize> {
        self.targets.iter().position(|t| t.rank == self.rank)
    }
    fn leaving(&self) -> bool {
        self.mine().is_some()
    }
    /// Where target `i` goes (no host given: its own).
    fn host_of(&self, i: usize) -> String {
        match (&self.targets[i].host, self.origins.get(i)) {
            (Some(h), _) => h.clone(),
            (None, Some((from, _))) => from.clone(),
            (None, None) => hostname(),
        }
    }
    /// Keeps the targets whose flag is false (all processes agree on the
    /// flags).
    fn drop_flagged(&mut self, flags: &[u64]) {
        let mut i = 0;
        self.targets.retain(|_| {
            i += 1;
            flags.get(i - 1).copied().unwrap_or(0) == 0
        });
        let mut i = 0;
        if !self.origins.is_empty() {
            self.origins.retain(|_| {
                i += 1;
                flags.get(i - 1).copied().unwrap_or(0) == 0
            });
        }
    }
    /// One word per target, from each leaving process to every process
    /// (the others give 0): an OR over the control communicator.
    ///
    /// # Safety
    /// Collective over the control communicator.
    unsafe fn share(&self, mine: u64) -> Vec<u64> {
        let mut words = vec![0u64; self.targets.len()];
        if let Some(i) = self.mine() {
            words[i] = mine;
        }
        // SAFETY: contract of the function.
        unsafe { share_words(self.control, words) }
    }
}

/// Each process's words OR-ed into every process's (every process gives
/// as many), waited for as [`any`]; if the reduction fails, every word
/// says "not so" (nobody can tell what the others said).
///
/// # Safety
/// Collective over `comm`.
unsafe fn share_words(comm: MPI_Comm, mine: Vec<u64>) -> Vec<u64> {
    // SAFETY: contract of the function.
    unsafe { collective::allreduce(comm, &mine, collective::Op::BitOr, LONG_WAIT) }
        .unwrap_or_else(|_| vec![u64::MAX; mine.len()])
}

/// Runs the migrations of `batch` (one synchronization: one spawn, one new
/// group), with every other process. Called inside the regroup after the
/// drain; see the module comment. `leader`: the process that led it (it
/// queues again what must be tried again).
///
/// # Safety
/// Every process is frozen and drained and calls it with the same batch;
/// `parked` are the request slots the regroup took off their
/// communicators.
#[allow(clippy::too_many_arguments)]
pub unsafe fn run(
    control: MPI_Comm,
    leader: c_int,
    rank: c_int,
    size: c_int,
    batch: &[Target],
    parked: &[usize],
    orphans: usize,
    flush: &mut dyn FnMut(),
) -> Moved {
    if let Ok(mut r) = RETRIED.lock() {
        r.clear();
    }
    let mut b = Batch {
        control,
        leader,
        rank,
        size,
        targets: batch.to_vec(),
        origins: Vec::new(),
        leaves: false,
    };
    // 1. Which of them can move (each leaving process says, the others
    // go on without the refused ones)?
    // SAFETY: every process is here (contract of the function).
    let datatypes = unsafe { check(&mut b, parked, orphans) };
    if b.targets.is_empty() {
        return Moved::Stayed;
    }
    // 2. Where they leave from, and whether the old processes leave.
    // SAFETY: as above.
    unsafe { find_origins(&mut b) };
    // 3. The leaving processes complete what is not re-posted.
    // SAFETY: as above.
    unsafe { complete(&mut b, parked, datatypes) };
    if b.targets.is_empty() {
        return Moved::Stayed;
    }
    // 4. One spawn of every replacement.
    let t_spawn = Instant::now();
    // SAFETY: as above.
    let Some(mut spawned) = (unsafe { spawn_all(&b) }) else {
        return Moved::Stayed;
    };
    let spawn_us = t_spawn.elapsed().as_micros() as u64;
    // 5. Each leaving process sends its image to its replacement; every
    // process learns how each transfer went.
    let t_transfer = Instant::now();
    // SAFETY: as above; the replacement comes back here.
    let verdict = match unsafe { transfer(&b, &spawned, flush, spawn_us) } {
        Transferred::Resumed(moved) => return moved,
        Transferred::Verdict(v) => v,
    };
    let transfer_us = t_transfer.elapsed().as_micros() as u64;
    if verdict != Verdict::Go {
        // SAFETY: the spawn's communicators, held by every member.
        unsafe { spawned.drop_all(verdict) };
        return Moved::Stayed;
    }
    // 6. The new group: every old process but the leaving ones, and the
    // replacements in their ranks.
    let t_group = Instant::now();
    // SAFETY: as above, with the replacements in `join`.
    let (inter, merged, world) = unsafe { new_group(&b, &mut spawned) };
    if let Some(i) = b.mine() {
        // SAFETY: collective with the other old processes.
        unsafe { crate::protocol::control::leave() };
        if b.leaves {
            // SAFETY: every member of the migration's communicators
            // releases them: the others below, the replacements in
            // `resumed`.
            unsafe { links::release_link(epoch(), inter, merged) };
            // SAFETY: nothing of the job depends on this process any more.
            unsafe { depart() }
        }
        links::keep(epoch(), inter, merged);
        // SAFETY: the rank lives on in the replacement (its rank in the
        // merged communicator: after every old process, in the order of
        // the targets).
        unsafe { dormant(merged, size + i as c_int, inter) }
    }
    // 7. The library moves onto the new world.
    crate::core::moves::set_took_part(true);
    if b.leaves {
        for (host, first) in &b.origins {
            if *first {
                links::note_left(host);
            }
        }
    }
    // SAFETY: collective over the new world (with the replacements), then
    // over the old control communicator (with the leaving processes).
    unsafe { crate::protocol::control::move_to_world(world) };
    let group_us = t_group.elapsed().as_micros() as u64;
    // SAFETY: collective over the new control communicator.
    unsafe { exchange_reports(&b, spawn_us, group_us, transfer_us) };
    if b.leaves {
        // SAFETY: with the leaving processes and the replacements (above
        // and in `resumed`).
        unsafe { links::release_link(epoch(), inter, merged) };
    } else {
        links::keep(epoch(), inter, merged);
    }
    Moved::Yes {
        new_world: world,
        replacement: false,
    }
}

/// Phase 1: each leaving process checks that it can move (image, host,
/// objects); the refused ones are said, with their reasons, and dropped
/// from the batch. Returns this process's datatypes to record, if it
/// leaves.
///
/// # Safety
/// Collective over the control communicator, every process frozen and
/// drained.
unsafe fn check(
    b: &mut Batch,
    parked: &[usize],
    orphans: usize,
) -> Vec<crate::core::datatypes::Saved> {
    let mut reasons = Vec::new();
    let mut datatypes = Vec::new();
    if let Some(i) = b.mine() {
        let host = b.targets[i].host.clone().unwrap_or_else(hostname);
        if !crate::mem::active() {
            reasons.push(
                "its process image is off (start the job with `ferry run`, or FERRY_IMAGE=1)"
                    .to_string(),
            );
        }
        if !resolvable(&host) {
            reasons.push(format!("the host {host:?} is unknown"));
        } else if host != hostname() {
            // Bounded: a spawn toward a host that is down cannot be
            // interrupted (see `crate::ops::probe`).
            match crate::ops::probe::knock(&host, crate::ops::probe::Knock::from_env()) {
                crate::ops::probe::Answer::Up(after) => {
                    log::debug!("host {host} answered in {} µs", after.as_micros())
                }
                crate::ops::probe::Answer::Down(why) => {
                    reasons.push(format!("the host {host:?} does not answer: {why}"))
                }
            }
        }
        reasons.extend(crate::mem::refusal::reasons());
        reasons.extend(crate::protocol::control::spawn_unusable());
        reasons.extend(crate::ops::remake::library_reasons(parked, orphans));
        match crate::core::datatypes::save_all() {
            Ok(d) => datatypes = d,
            Err(e) => reasons.push(e),
        }
    }
    // The hosts a process may not be started on again (every process
    // takes the same branches: the list of left hosts is the same in all).
    let mut hosts: Vec<Option<String>> = b.targets.iter().map(|t| t.host.clone()).collect();
    hosts.dedup();
    for h in hosts {
        // (no host given: the rank's own, where it still runs)
        let Some(h) = h else { continue };
        // SAFETY: collective over the control communicator.
        if let Some(why) = unsafe { closed_host(b.control, &h) } {
            if let Some(i) = b.mine() {
                if b.targets[i].host.as_deref() == Some(h.as_str()) {
                    reasons.push(why);
                }
            }
        }
    }
    // SAFETY: collective over the control communicator.
    let flags = unsafe { b.share(!reasons.is_empty() as u64) };
    if let Some(i) = b.mine() {
        for r in &reasons {
            refused(b.rank, r, "");
        }
        if flags[i] != 0 && reasons.is_empty() {
            refused(b.rank, "the others could not learn whether it can", "");
        }
    }
    b.drop_flagged(&flags);
    if b.mine().is_some() {
        datatypes
    } else {
        Vec::new()
    }
}

/// Phase 2: each target's host of origin (and whether its process is one
/// the job started with), and whether the old processes leave the job.
///
/// # Safety
/// Collective over the control communicator.
unsafe fn find_origins(b: &mut Batch) {
    const W: usize = 33;
    let n = b.targets.len();
    let mut words = vec![0u64; n * W];
    if let Some(i) = b.mine() {
        let h = hostname();
        let bytes = &h.as_bytes()[..h.len().min(255)];
        words[i * W] = bytes.len() as u64 | (first_process() as u64) << 32;
        words[i * W + 1..(i + 1) * W].copy_from_slice(&words_of(bytes, 256));
    }
    // SAFETY: contract of the function.
    let words = unsafe { share_words(b.control, words) };
    b.origins = (0..n)
        .map(|i| {
            let head = words[i * W];
            let host = string_of(&words[i * W + 1..(i + 1) * W], (head & 0xffff) as usize);
            (host, head >> 32 & 1 != 0)
        })
        .collect();
    // Whether the old processes leave the job at once: all of them, or
    // none (they share the migration's communicators). Decided by all,
    // and known to the replacements: this is on the stack their images
    // carry.
    let mut stays = false;
    let leaving = b.leaving();
    for i in 0..n {
        let (from, first) = b.origins[i].clone();
        let to = b.host_of(i);
        // SAFETY: collective over the control communicator.
        stays |= unsafe { stays_for_launcher(b.control, leaving, &from, &to, first) };
    }
    b.leaves = old_process_leaves() && !stays;
}

/// Phase 3: the leaving processes' sends and requests that are not
/// re-posted complete now (the others make progress in the reduction),
/// and their MPI objects are recorded; a failure drops that target.
///
/// # Safety
/// Collective over the control communicator, every process frozen and
/// drained.
unsafe fn complete(b: &mut Batch, parked: &[usize], datatypes: Vec<crate::core::datatypes::Saved>) {
    let mut failed = false;
    if b.leaving() {
        // SAFETY: every process is frozen and drained.
        unsafe { crate::calls::p2p::complete_held() };
        // SAFETY: as above.
        match unsafe { crate::ops::remake::complete_requests(parked) } {
            Ok(done) => crate::ops::remake::record(done, datatypes),
            Err(e) => {
                say(&format!(
                    "migration of rank {} failed: {e}; the job goes on",
                    b.rank
                ));
                failed = true;
            }
        }
    }
    // SAFETY: collective.
    let flags = unsafe { b.share(failed as u64) };
    b.drop_flagged(&flags);
}

/// Phase 6: the new group (every replacement answered and has its
/// image): an intercommunicator from the old processes to the
/// replacements, merged (the replacements high, in the order of the
/// targets), split keyed by the old ranks with the leaving processes
/// excluded: each replacement holds its rank in the new world. Returns
/// (intercommunicator, merged, new world).
///
/// # Safety
/// Collective over the control communicator and the spawn's, with the
/// replacements doing the matching calls in `join`.
unsafe fn new_group(b: &Batch, spawned: &mut Spawned) -> (MPI_Comm, MPI_Comm, MPI_Comm) {
    let leaving = b.leaving();
    let mut inter = k::MPI_COMM_NULL();
    let mut merged = k::MPI_COMM_NULL();
    let mut world = k::MPI_COMM_NULL();
    // SAFETY: contract of the function.
    unsafe {
        if SPAWN_ALONE {
            // The replacements join everyone through the leaving
            // processes: an intercommunicator from the control
            // communicator to them, bridged by the pair the spawn made
            // (the leaving processes low, the replacements after them).
            let mut pair = k::MPI_COMM_NULL();
            if leaving {
                PMPI_Intercomm_merge(spawned.inter, 0, &mut pair);
            }
            PMPI_Intercomm_create(
                b.control,
                b.targets[0].rank,
                if leaving { pair } else { b.control },
                b.targets.len() as c_int,
                TAG_JOIN,
                &mut inter,
            );
            if leaving {
                // The spawn's own communicators are of no more use.
                PMPI_Comm_free(&mut pair);
                PMPI_Comm_disconnect(&mut spawned.inter);
                PMPI_Comm_free(&mut spawned.leavers);
            }
        } else {
            inter = spawned.inter;
        }
        PMPI_Intercomm_merge(inter, 0, &mut merged);
        PMPI_Comm_set_errhandler(merged, k::MPI_ERRORS_RETURN());
        PMPI_Comm_split(
            merged,
            if leaving { k::MPI_UNDEFINED() } else { 0 },
            b.rank,
            &mut world,
        );
    }
    (inter, merged, world)
}

/// The measures of the migration go to everyone (the leader writes the
/// events): each replacement's own, broadcast from its rank.
///
/// # Safety
/// Collective over the new control communicator.
unsafe fn exchange_reports(b: &Batch, spawn_us: u64, group_us: u64, transfer_us: u64) {
    let Some(rt) = crate::core::runtime::runtime() else {
        return;
    };
    let mut reports = Vec::with_capacity(b.targets.len());
    for (i, t) in b.targets.iter().enumerate() {
        let me_new = rt.world_rank == t.rank;
        let mut words = [0u64; 8];
        let mut host = [0u8; 256];
        if me_new {
            let fresh = crate::ops::image::restore::fresh_values();
            words = [
                std::process::id() as u64,
                fresh[crate::ops::image::restore::OLD_PID],
                fresh[crate::ops::image::restore::IMAGE_BYTES],
                fresh[F_TRANSFER_US],
                crate::ops::image::restore::elapsed_us(&fresh),
                0,
                0,
                0,
            ];
            let h = hostname();
            let n = h.len().min(255);
            host[..n].copy_from_slice(&h.as_bytes()[..n]);
        }
        // SAFETY: broadcasts of fixed buffers over the control communicator.
        unsafe {
            let _ = collective::bcast(rt.control, &mut words, t.rank);
            let _ = collective::bcast_bytes(rt.control, &mut host, t.rank);
        }
        let n = host.iter().position(|&b| b == 0).unwrap_or(256);
        reports.push(Report {
            rank: t.rank,
            new_pid: words[0],
            old_pid: words[1],
            image_bytes: words[2],
            transfer_us: if me_new {
                words[3]
            } else {
                transfer_us.max(words[3])
            },
            restore_us: words[4],
            spawn_us,
            group_us,
            from_host: b.origins.get(i).map(|o| o.0.clone()).unwrap_or_default(),
            to_host: String::from_utf8_lossy(&host[..n]).into_owned(),
            old_left: b.leaves,
            batch: b.targets.len(),
        });
    }
    if let Ok(mut r) = REPORTS.lock() {
        *r = reports;
    }
}

/// In the replacement of target `i`, right after the jump: it takes its
/// own MPI objects and joins the others on the new world.
///
/// # Safety
/// This is the replacement, just resumed from the image, inside [`run`].
unsafe fn resumed(b: &Batch, i: usize, spawn_us: u64) -> Moved {
    let t = &b.targets[i];
    let fresh = crate::ops::image::restore::fresh_values();
    let group_us = fresh[F_GROUP_US];
    crate::core::moves::set_replacement(true);
    crate::core::runtime::adopt(&fresh);
    crate::core::clock::wtime_resumed();
    crate::core::bsend::reattach_buffer();
    let merged: MPI_Comm = crate::sys::bits::handle_from_bits(fresh[F_MERGED]);
    let parent: MPI_Comm = crate::sys::bits::handle_from_bits(fresh[F_PARENT]);
    let world: MPI_Comm = crate::sys::bits::handle_from_bits(fresh[F_WORLD]);
    // The process this one replaced (the image's own predecessor link
    // belongs to the old process's MPI), and the image's kept
    // communicators are the old process's.
    links::set_predecessor((!b.leaves).then_some((merged, t.rank)));
    links::forget_kept();
    crate::core::moves::set_took_part(true);
    if !b.leaves {
        links::keep(epoch(), parent, merged);
    } else {
        for (host, first) in &b.origins {
            if *first {
                links::note_left(host);
            }
        }
    }
    // SAFETY: the new MPI is up; `world` is the job's new world.
    unsafe { crate::ops::remake::remake(world) };
    // SAFETY: collective over the new control communicator, matching the
    // others' `move_to_world`.
    unsafe { crate::protocol::control::joined() };
    let from = fresh[F_SPAWNED_AT];
    log::info!(
        "rank {} resumed in process {} on {} ({} µs after the spawn began)",
        t.rank,
        std::process::id(),
        hostname(),
        crate::ops::image::restore::now_us().saturating_sub(from)
    );
    // SAFETY: collective over the new control communicator.
    unsafe { exchange_reports(b, spawn_us, group_us, 0) };
    if b.leaves {
        // SAFETY: with the old processes, the ones that left among them
        // (`run`), and the other replacements.
        unsafe { links::release_link(epoch(), parent, merged) };
    }
    // The regroup signal's handler is the kernel's, not memory: installed
    // again here (unless the program's own handler, put back with the
    // image, is there).
    crate::protocol::regroup::install_signal();
    crate::protocol::control::report_status("running");
    if let Some(rt) = crate::core::runtime::runtime() {
        crate::sys::life::record_exit_status(rt.world_rank);
    }
    run_hooks(Hook::Resume);
    Moved::Yes {
        new_world: world,
        replacement: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(rank: c_int, host: Option<&str>, request: Option<u64>) -> Target {
        Target {
            rank,
            host: host.map(str::to_string),
            request,
        }
    }

    #[test]
    fn operations_round_trip() {
        for op in [
            Operation::Regroup,
            Operation::Checkpoint,
            Operation::Migrate(vec![target(3, None, None)]),
            Operation::Migrate(vec![target(0, Some("node-7.cluster"), Some(0))]),
            Operation::Migrate(vec![
                target(1, Some("h"), Some(41)),
                target(2, None, Some(41)),
                target(5, Some("ferry-h3"), Some(41)),
            ]),
        ] {
            assert_eq!(decode(&encode(&op)), op);
        }
    }

    #[test]
    fn batches_are_sorted_and_checked() {
        let (ok, refused) = validate(
            vec![
                target(3, Some("b"), Some(1)),
                target(1, Some("a"), Some(1)),
                target(7, None, Some(1)),
                target(3, Some("c"), Some(1)),
                target(-1, None, Some(1)),
            ],
            4,
        );
        assert_eq!(
            ok.iter().map(|t| t.rank).collect::<Vec<_>>(),
            vec![1, 3],
            "sorted by rank, each once"
        );
        assert_eq!(
            ok[1].host.as_deref(),
            Some("b"),
            "the first ask of a rank wins"
        );
        let why: Vec<(c_int, &str)> = refused.iter().map(|(r, w)| (*r, w.as_str())).collect();
        assert_eq!(why.len(), 3);
        assert!(why[0].0 == 7 && why[0].1.contains("no rank 7"), "{why:?}");
        assert!(why[1].0 == 3 && why[1].1.contains("twice"), "{why:?}");
        assert!(why[2].0 == -1 && why[2].1.contains("ranks 0..3"), "{why:?}");
    }

    #[test]
    fn a_batch_moves_only_if_every_transfer_went_well() {
        use Verdict::*;
        assert_eq!(batch_verdict(&[Go]), Go);
        assert_eq!(batch_verdict(&[Go, Go, Go]), Go);
        // Answered, but one could not take its image: all disconnect.
        assert_eq!(batch_verdict(&[Go, NoGo, Go]), NoGo);
        // One lost: nobody can disconnect from it.
        assert_eq!(batch_verdict(&[NoGo, Go, Lost]), Lost);
        assert_eq!(batch_verdict(&[Lost]), Lost);
    }

    #[test]
    fn host_names_cross_in_words() {
        for h in ["", "a", "ferry-h2", "node-0017.rack-3.example.org"] {
            let w = words_of(h.as_bytes(), 256);
            assert_eq!(w.len(), 32);
            assert_eq!(string_of(&w, h.len()), h);
        }
        // Cut at the width, never past it.
        let long = "x".repeat(300);
        assert_eq!(string_of(&words_of(long.as_bytes(), 256), 300).len(), 256);
    }

    #[test]
    fn verdicts_cross_the_wire() {
        for v in [Verdict::Go, Verdict::NoGo, Verdict::Lost] {
            assert_eq!(Verdict::from_word(v as u64), v);
        }
        // Anything else is no verdict: the replacement is given up.
        assert_eq!(Verdict::from_word(3), Verdict::Lost);
        assert_eq!(Verdict::from_word(u64::MAX), Verdict::Lost);
    }

    #[test]
    fn the_replacements_answer_decides() {
        assert_eq!(verdict_of_ack(ACK_OK), Verdict::Go);
        assert_eq!(verdict_of_ack(ACK_FAILED), Verdict::NoGo);
        // (a receive given up leaves the buffer as it was: 0)
        assert_eq!(verdict_of_ack(0), Verdict::Lost);
        assert_eq!(verdict_of_ack(7), Verdict::Lost);
    }

    #[test]
    fn long_host_names_are_cut_not_overrun() {
        let long = "h".repeat(400);
        match decode(&encode(&Operation::Migrate(vec![target(
            1,
            Some(&long),
            Some(7),
        )]))) {
            Operation::Migrate(t) => {
                assert_eq!(t.len(), 1);
                assert_eq!(t[0].host.as_ref().map(|h| h.len()), Some(HOST_BYTES));
                assert_eq!(t[0].request, Some(7));
            }
            other => panic!("{other:?}"),
        }
    }
}
