//! Live migration: one rank leaves its process and goes on in a new one,
//! started with `MPI_Comm_spawn`, while the others keep their processes
//! (the patent's Figs. 3–5; docs/protocol.md, sections 5-7).
//!
//! A migration is a regroup ([`crate::protocol::regroup`]) whose leader says so
//! ([`agree`]). Once every process is frozen and every channel drained:
//!
//! 1. **Can it move?** The leaving process checks that it can be imaged
//!    (threads, windows, MPI objects an image cannot re-create yet); every
//!    process learns the answer. It then completes its sends and other
//!    requests that are not re-posted, and records its MPI objects.
//! 2. **Spawn.** Every process calls `MPI_Comm_spawn` of the same binary
//!    (rooted at the leaving rank, info key `host`), with the arguments of a
//!    replacement ([`MARKER`]): the thread level and the descriptor numbers
//!    to keep free before `MPI_Init`.
//! 3. **State transfer**, between the leaving process and the replacement
//!    alone, over the spawn's communicator: the leaving rank tells it which
//!    rank it takes and sends its process image ([`crate::ops::image::stream`]:
//!    memory, open files, signal handlers, and with them the library's own
//!    state). The replacement checks it and answers; every wait is bounded
//!    (`FERRY_TRANSFER_TIMEOUT_MS`).
//! 4. **Verdict and new group.** The leaving process tells every old
//!    process GO, NOGO (the replacement could not take the image:
//!    disconnected) or LOST (no answer: its communicator freed, it ends on
//!    its own); on NOGO and LOST the old process keeps the rank. On GO:
//!    `MPI_Intercomm_merge` (the replacement high), `MPI_Comm_split` keyed
//!    by the old rank with the leaving process excluded: the replacement
//!    holds rank j in the new world.
//! 5. **Restore.** The library moves onto the new world (control
//!    communicator and state window made again); the replacement copies
//!    the image into place and returns from the interrupted call, inside
//!    the regroup, which rebuilds every derived communicator and re-posts
//!    pending receives as after any regroup.
//! 6. **The leaving process** leaves the job: every member frees the
//!    migration's merged communicator and disconnects its
//!    intercommunicator ([`release_link`]), and it gives its memory back,
//!    finalizes and exits ([`depart`]); the event of the move is written
//!    once it is gone (where that can be seen, [`await_old_process`]).
//!    With `FERRY_OLD_PROCESS=stay` it sleeps instead until the rank that
//!    replaced it finalizes, and finalizes with it ([`dormant`]).
//!    On Open MPI 4.1.4, a host every first process of the job left
//!    cannot take a process again: such a move is refused ([`closed_host`]).
use crate::sys::constants as k;
use crate::sys::nap::napping;
use crate::sys::*;
use std::collections::VecDeque;
use std::ffi::{c_char, c_int, c_void, CString};
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// First argument of a replacement process: it restores the image it is
/// sent instead of running `main`.
pub use crate::mem::startup::REPLACEMENT_MARKER as MARKER;

/// Tag of the handshake (old rank to the replacement) and of FINISH.
const TAG_HELLO: c_int = 0x6673;
const TAG_FINISH: c_int = 0x6674;
const TAG_JOIN: c_int = 0x6675;
/// Tags of the replacement's answer once it has the image, and of the
/// leaving process's verdict to it.
const TAG_ACK: c_int = 0x6676;
const TAG_VERDICT: c_int = 0x6677;

/// Where a rank is asked to go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub rank: c_int,
    /// The host to start the replacement on (`None`: the rank's own).
    pub host: Option<String>,
    /// The number of the `ferry migrate` request it answers, if any: the
    /// event line carries it, so that each request's command finds its
    /// own outcome (two requests for one rank are two moves).
    pub request: Option<u64>,
}

/// Migrations asked for in this process (SPEC, C API, `ferry migrate`),
/// not yet led.
static QUEUE: Mutex<VecDeque<Target>> = Mutex::new(VecDeque::new());

/// Asks for the migration of `t.rank`; it starts at this process's next
/// MPI call (after any regroup or migration already running).
pub fn request(t: Target) {
    let rank = t.rank;
    if let Some(why) = crate::protocol::control::disabled_why() {
        refuse(rank, &why);
        return;
    }
    if let Ok(mut q) = QUEUE.lock() {
        q.push_back(t);
    }
    log::debug!("migration of rank {rank} queued");
    crate::protocol::regroup::request();
}

fn refuse(rank: c_int, why: &str) {
    refused(
        rank,
        &format!("regroups and migrations are disabled in this job ({why})"),
        "",
    );
}

/// Says that the migration of `rank` was refused (`to`: " to HOST", or
/// nothing) and why, on stderr and as a `refused` event.
fn refused(rank: c_int, why: &str, to: &str) {
    say(&format!(
        "migration of rank {rank}{to} refused: {why}; the job goes on"
    ));
    crate::ops::checkpoint::append_event(&ferry_common::events::Event::refused(
        "migration",
        u32::try_from(rank).ok(),
        why,
    ));
}

/// The state window is gone (see `control::disabled_why`): the migrations
/// still queued are refused, each with a message.
pub fn refuse_queued() {
    let why = crate::protocol::control::disabled_why()
        .unwrap_or_else(|| "the processes could not make a state window".into());
    let queued: Vec<Target> = QUEUE
        .lock()
        .map(|mut q| q.drain(..).collect())
        .unwrap_or_default();
    for t in queued {
        refuse(t.rank, &why);
    }
}

/// Migrations asked for from outside the job (`ferry migrate` writes
/// `requests/<n>.json` in the job directory, then signals a rank): each
/// request is claimed by renaming it to `<n>.taken` (so that exactly one
/// process takes it) and queued here. Returns how many were taken.
pub fn take_external_requests() -> usize {
    let Some(dir) = crate::sys::life::job_dir() else {
        return 0;
    };
    let Ok(list) = dir.pending_requests() else {
        return 0;
    };
    let mut n = 0;
    for (num, path) in list {
        let taken = path.with_extension("taken");
        if std::fs::rename(&path, &taken).is_err() {
            continue; // another process took it
        }
        match ferry_common::job::read_json::<ferry_common::job::MigrateRequest>(&taken) {
            Ok(req) => {
                log::info!(
                    "migration of rank {}{} asked for by `ferry migrate` (request {num})",
                    req.rank,
                    req.to
                        .as_deref()
                        .map(|h| format!(" to {h}"))
                        .unwrap_or_default()
                );
                request(Target {
                    rank: req.rank as c_int,
                    host: req.to,
                    request: Some(num),
                });
                n += 1;
            }
            Err(e) => say(&format!("a migration request cannot be read: {e}")),
        }
    }
    n
}

fn next_queued() -> Option<Target> {
    QUEUE.lock().ok().and_then(|mut q| q.pop_front())
}

/// What a regroup does once everyone is frozen and drained (its leader
/// decides).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operation {
    /// The group is made again with the same processes.
    Regroup,
    /// Every process writes its image and the job ends.
    Checkpoint,
    /// A rank moves to a new process.
    Migrate(Target),
}

/// An operation on the wire: kind, rank, host length, request + 1 (0:
/// none), then the host name.
const OP_WORDS: usize = 37;
const HOST_BYTES: usize = (OP_WORDS - 4) * 8;

/// The leader tells everyone what this regroup is. Collective over
/// `control`.
///
/// # Safety
/// Every process of the job calls it, in the same regroup.
pub unsafe fn agree(control: MPI_Comm, leader: c_int, rank: c_int, size: c_int) -> Operation {
    let mut buf = [0u64; OP_WORDS];
    if rank == leader {
        let op = if crate::ops::checkpoint::leading() {
            Operation::Checkpoint
        } else {
            loop {
                match next_queued() {
                    Some(t) if t.rank < 0 || t.rank >= size => {
                        let why = format!(
                            "there is no rank {} (the job has ranks 0..{})",
                            t.rank,
                            size - 1
                        );
                        say(&format!("migration refused: {why}; the job goes on"));
                        crate::ops::checkpoint::append_event(
                            &ferry_common::events::Event::refused("migration", None, &why),
                        );
                    }
                    Some(t) => break Operation::Migrate(t),
                    None => break Operation::Regroup,
                }
            }
        };
        encode(&op, &mut buf);
    }
    // SAFETY: a broadcast of a fixed buffer over the control communicator.
    unsafe {
        PMPI_Bcast(
            buf.as_mut_ptr() as *mut c_void,
            OP_WORDS as c_int,
            k::MPI_UINT64_T(),
            leader,
            control,
        )
    };
    decode(&buf)
}

fn encode(op: &Operation, buf: &mut [u64; OP_WORDS]) {
    match op {
        Operation::Regroup => buf[0] = 0,
        Operation::Checkpoint => buf[0] = 1,
        Operation::Migrate(t) => {
            buf[0] = 2;
            buf[1] = t.rank as u64;
            let host = t.host.as_deref().unwrap_or("").as_bytes();
            let n = host.len().min(HOST_BYTES);
            buf[2] = n as u64;
            buf[3] = t.request.map_or(0, |r| r.saturating_add(1));
            let mut bytes = [0u8; HOST_BYTES];
            bytes[..n].copy_from_slice(&host[..n]);
            for (i, w) in bytes.chunks_exact(8).enumerate() {
                buf[4 + i] = u64::from_le_bytes(w.try_into().unwrap_or([0; 8]));
            }
        }
    }
}

fn decode(buf: &[u64; OP_WORDS]) -> Operation {
    match buf[0] {
        1 => Operation::Checkpoint,
        2 => {
            let n = (buf[2] as usize).min(HOST_BYTES);
            let bytes: Vec<u8> = buf[4..].iter().flat_map(|w| w.to_le_bytes()).collect();
            let host = String::from_utf8_lossy(&bytes[..n]).into_owned();
            Operation::Migrate(Target {
                rank: buf[1] as c_int,
                host: (!host.is_empty()).then_some(host),
                request: buf[3].checked_sub(1),
            })
        }
        _ => Operation::Regroup,
    }
}

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
}

static REPORT: Mutex<Option<Report>> = Mutex::new(None);

/// The report of the migration this process just took part in.
pub fn take_report() -> Option<Report> {
    REPORT.lock().ok().and_then(|mut r| r.take())
}

pub use crate::core::moves::{
    count, happened, is_replacement, spawned_by_replacement, started_as_replacement,
};

/// A program's callback: `fn(arg)` (`ferry_on_leave`, `ferry_on_resume`).
pub type Callback = unsafe extern "C" fn(*mut std::ffi::c_void);

/// When a program's callback runs (see `include/ferry.h`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Hook {
    /// In the process about to leave its rank, before its image is taken.
    Leave,
    /// In the replacement, once the rank resumed there.
    Resume,
}

/// Most callbacks of each kind.
const MAX_HOOKS: usize = 16;
/// The program's callbacks (in the library's memory: they travel with the
/// image, as the program's functions and arguments do).
static HOOKS: Mutex<Vec<(Hook, Callback, usize)>> = Mutex::new(Vec::new());

/// Registers a callback; false when there are already [`MAX_HOOKS`].
pub fn add_hook(when: Hook, f: Callback, arg: usize) -> bool {
    let Ok(mut h) = HOOKS.lock() else {
        return false;
    };
    if h.iter().filter(|x| x.0 == when).count() >= MAX_HOOKS {
        return false;
    }
    h.push((when, f, arg));
    true
}

/// Runs the program's callbacks of one kind, in registration order, as
/// the program (what they allocate is the program's).
fn run_hooks(when: Hook) {
    let list: Vec<(Callback, usize)> = HOOKS
        .lock()
        .map(|h| {
            h.iter()
                .filter(|x| x.0 == when)
                .map(|x| (x.1, x.2))
                .collect()
        })
        .unwrap_or_default();
    for (f, arg) in list {
        // SAFETY: a function the program registered, with its argument.
        crate::mem::as_program(|| unsafe { f(arg as *mut c_void) });
    }
}

/// After a migration the job spans several launches of processes (Open
/// MPI: several jobs), which end independently: MPI's last writes to a
/// process that already exited must fail with EPIPE rather than kill this
/// one with SIGPIPE. Ignores SIGPIPE if this process took part in a
/// migration; returns the disposition to put back.
pub fn quiet_sigpipe() -> Option<libc::sigaction> {
    if !happened() {
        return None;
    }
    // SAFETY: plain sigaction calls on locals.
    unsafe {
        let mut ign: libc::sigaction = std::mem::zeroed();
        ign.sa_sigaction = libc::SIG_IGN;
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGPIPE, &ign, &mut old);
        Some(old)
    }
}

/// Puts back what [`quiet_sigpipe`] replaced.
pub fn restore_sigpipe(old: Option<libc::sigaction>) {
    if let Some(old) = old {
        // SAFETY: the disposition saved by `quiet_sigpipe`.
        unsafe { libc::sigaction(libc::SIGPIPE, &old, std::ptr::null_mut()) };
    }
}

/// The process this one replaced, still alive and asleep until this one
/// finalizes: (the migration's merged communicator, its rank there).
struct Link(MPI_Comm, c_int);
// SAFETY: an MPI handle used by the thread that calls MPI.
unsafe impl Send for Link {}
static PREDECESSOR: Mutex<Option<Link>> = Mutex::new(None);
/// The communicators of a migration this process took part in, kept
/// until `MPI_Finalize`: (the regroup's epoch, the intercommunicator of
/// the spawn, the merged communicator).
struct Kept(u64, MPI_Comm, MPI_Comm);
// SAFETY: MPI handles used by the thread that calls MPI.
unsafe impl Send for Kept {}
static KEPT: Mutex<Vec<Kept>> = Mutex::new(Vec::new());

fn keep(epoch: u64, inter: MPI_Comm, merged: MPI_Comm) {
    if let Ok(mut v) = KEPT.lock() {
        v.push(Kept(epoch, inter, merged));
    }
}

/// In a restarted process: the links of past migrations are the old job's
/// (their handles belong to an MPI that is gone).
pub fn forget_links() {
    crate::core::moves::set_replacement(false);
    if let Ok(mut v) = KEPT.lock() {
        std::mem::forget(std::mem::take(&mut *v));
    }
    crate::core::moves::set_took_part(false);
    if let Ok(mut p) = PREDECESSOR.lock() {
        *p = None;
    }
    if let Ok(mut v) = LEFT_BY_FIRST.lock() {
        v.clear();
    }
}

/// The regroup this migration is part of.
fn epoch() -> u64 {
    crate::core::state::state().command.load(Ordering::SeqCst)
}

/// Hosts where one of the job's first processes left the job (each
/// process keeps the list: the same in all, carried by the image).
static LEFT_BY_FIRST: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Notes that one of the job's first processes left `host`.
fn note_left(host: &str) {
    if let Ok(mut v) = LEFT_BY_FIRST.lock() {
        if !v.iter().any(|h| h == host) {
            v.push(host.to_string());
        }
    }
}

/// Whether this process is one the launcher started (not a replacement;
/// a restarted job's processes are its launcher's too).
fn first_process() -> bool {
    !crate::core::moves::is_replacement()
}

/// Why a move onto `host` must be refused on an MPI whose daemon forgets
/// a job on a host all its first processes left
/// ([`crate::sys::quirks::LEFT_HOST_CLOSED`]): one of them left `host`,
/// none is there any more, and some still run elsewhere (then the new
/// process would connect to them through the daemon that forgot them).
///
/// # Safety
/// Collective over `control` (every process of the job calls it with the
/// same `host`).
unsafe fn closed_host(control: MPI_Comm, host: &str) -> Option<String> {
    if !crate::sys::quirks::LEFT_HOST_CLOSED {
        return None;
    }
    let left = LEFT_BY_FIRST
        .lock()
        .map(|v| v.iter().any(|h| h == host))
        .unwrap_or(false);
    if !left {
        return None;
    }
    let first = first_process();
    // SAFETY: collective over `control` (contract of the function).
    let (there, anywhere) = unsafe {
        (
            any(control, first && hostname() == host),
            any(control, first),
        )
    };
    (!there && anywhere).then(|| {
        format!(
            "every process the job started on {host} has left it, and Open MPI 4.1.4 cannot \
             start a process there again while the job's first processes run elsewhere (its \
             daemon there forgot the job: ORTE state_orted.c:461); move it to a host where \
             one of them still runs, or to one none ever ran on"
        )
    })
}

/// Waits (at most 3 s) until the old process of the move `r` has exited,
/// where this process can tell: the old process left the job
/// ([`old_process_leaves`]) and ran on this host. Returns how long it
/// waited, `None` when it cannot tell.
pub fn await_old_process(r: &Report) -> Option<Duration> {
    let pid = r.old_pid as libc::pid_t;
    if !r.old_left || pid <= 0 || r.from_host != hostname() {
        return None;
    }
    let t = Instant::now();
    // A process is gone once it has ended: absent, or a zombie its
    // launcher's daemon has not reaped yet.
    let running = || ferry_common::job::process_running(pid as u32);
    while running() {
        if t.elapsed() > Duration::from_secs(3) {
            log::warn!(
                "process {pid}, which rank {} left, is still there after 3 s",
                r.rank
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Some(t.elapsed())
}

/// Whether the old process must stay (asleep until the job ends) for the
/// launcher's sake ([`crate::sys::quirks::HYDRA_NODE_CLOSED_WITH_FIRST_JOB`]):
/// it is the last of the job's first processes on its host, and other
/// processes of the job stay there (or its replacement goes there).
///
/// # Safety
/// Collective over `control`.
unsafe fn stays_for_launcher(
    control: MPI_Comm,
    leaving: bool,
    from_host: &str,
    to_host: &str,
    from_first: bool,
) -> bool {
    if !crate::sys::quirks::HYDRA_NODE_CLOSED_WITH_FIRST_JOB {
        return false;
    }
    let here = hostname() == from_host;
    // SAFETY: collective over `control` (contract of the function).
    let (first_there, any_there) = unsafe {
        (
            any(control, !leaving && here && first_process()),
            any(control, !leaving && here),
        )
    };
    let stays = from_first && !first_there && (any_there || to_host == from_host);
    if stays && leaving {
        log::info!(
            "the last of the job's first processes on {from_host} stays asleep until the job ends \
             (MPICH's hydra would lose the host otherwise: docs/host-loss.md)"
        );
    }
    stays
}

/// Whether a moved rank's old process leaves the job at once
/// (`FERRY_OLD_PROCESS`, `leave` unless `stay`), read once: every process
/// of a job has the same environment.
fn old_process_leaves() -> bool {
    static LEAVES: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *LEAVES.get_or_init(|| {
        ferry_common::env::var(ferry_common::env::FERRY_OLD_PROCESS).as_deref() != Some("stay")
    })
}

/// Frees the migration's merged communicator and disconnects its
/// intercommunicator (spawn or bridge): after it, the old process of the
/// moved rank shares nothing with the job but the MPI's own world, and
/// may finalize. Open MPI 4.1.4 hangs in `MPI_Comm_disconnect` of the
/// merged intracommunicator, so that one is only freed
/// (docs/host-loss.md, O1).
///
/// # Safety
/// Every member of both communicators calls it once, in the same order
/// as the other collectives over them.
unsafe fn release_link(e: u64, mut inter: MPI_Comm, mut merged: MPI_Comm) {
    // SAFETY: contract of the function.
    unsafe {
        // A reference of ours to their error handlers, never given back,
        // where the MPI releases it once too often
        // (`quirks::SPAWN_ERRHANDLER_OVER_RELEASED`).
        if crate::sys::quirks::SPAWN_ERRHANDLER_OVER_RELEASED {
            for c in [merged, inter] {
                let mut eh = k::MPI_ERRHANDLER_NULL();
                PMPI_Comm_get_errhandler(c, &mut eh);
            }
        }
        PMPI_Comm_free(&mut merged);
        let rc = PMPI_Comm_disconnect(&mut inter);
        if rc != k::MPI_SUCCESS() {
            log::warn!("disconnecting migration {e}'s intercommunicator failed ({rc})");
        }
    }
}

/// The old process of a moved rank leaves the job: its memory goes back
/// at once, it finalizes (quickly where the job was started with the
/// launcher settings of `ferry run`: no collective step in
/// `MPI_Finalize`), and exits. Never returns.
///
/// # Safety
/// The migration's communicators are released ([`release_link`]) and the
/// library's own objects over the old world freed (`control::leave`).
unsafe fn depart() -> ! {
    let pid = std::process::id();
    let t = Instant::now();
    crate::core::bsend::detach_buffer_of_leaving();
    if std::env::var_os("FERRY_TEST_KEEP_HEAP").is_none() {
        give_back_memory();
    }
    if crate::sys::quirks::FINALIZE_COUNTS_FOREIGN_COMMS {
        crate::core::handles::free_all_comms();
    }
    // SAFETY: the end of this process: MPI's exit handlers run, the
    // program's do not (they run in the replacement). No stdio flush: the
    // program's streams were flushed at the capture and live in the
    // memory given back.
    unsafe {
        let mut ign: libc::sigaction = std::mem::zeroed();
        ign.sa_sigaction = libc::SIG_IGN;
        libc::sigaction(libc::SIGPIPE, &ign, std::ptr::null_mut());
        PMPI_Finalize();
        log::info!(
            "process {pid} left the job ({} ms in MPI_Finalize)",
            t.elapsed().as_millis()
        );
        crate::mem::process::run_library_exit_handlers();
        libc::_exit(0)
    }
}

/// Before `MPI_Finalize`: every migration's intercommunicator is
/// disconnected by all its members (the old processes of that moment,
/// asleep or not, and the replacement), in the order of the migrations,
/// so that no process waits on another in a different order. Open MPI
/// otherwise disconnects the replacement from its parents inside its
/// `MPI_Finalize`, writing to processes that may be gone.
pub fn disconnect_all() {
    let mut kept = KEPT
        .lock()
        .map(|mut v| std::mem::take(&mut *v))
        .unwrap_or_default();
    kept.sort_by_key(|k| k.0);
    for Kept(e, inter, merged) in kept {
        // SAFETY: communicators of this process's MPI, released once;
        // every member comes here, in the same order.
        unsafe { release_link(e, inter, merged) };
    }
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
    let v: u64 = mine as u64;
    let mut out: u64 = 0;
    // SAFETY: a reduction of one integer over a live communicator; the
    // buffers outlive the call.
    let rc = unsafe {
        napping!(
            crate::sys::nap::LONG_NAP,
            PMPI_Iallreduce,
            PMPI_Allreduce,
            &v as *const u64 as *const c_void,
            &mut out as *mut u64 as *mut c_void,
            1,
            k::MPI_UINT64_T(),
            k::MPI_MAX(),
            comm,
        )
    };
    rc != k::MPI_SUCCESS() || out != 0
}

/// `v` of the process `root` of `comm`, to every process, waited for as
/// [`any`].
unsafe fn bcast_napping(comm: MPI_Comm, root: c_int, mut v: u64) -> Result<u64, c_int> {
    // SAFETY: a broadcast of one integer over a live communicator; the
    // buffer outlives the call.
    let rc = unsafe {
        napping!(
            crate::sys::nap::LONG_NAP,
            PMPI_Ibcast,
            PMPI_Bcast,
            &mut v as *mut u64 as *mut c_void,
            1,
            k::MPI_UINT64_T(),
            root,
            comm,
        )
    };
    if rc == k::MPI_SUCCESS() {
        Ok(v)
    } else {
        Err(rc)
    }
}

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

/// Runs the migration of `t`, with every other process. Called inside the
/// regroup after the drain; see the module comment.
///
/// # Safety
/// Every process is frozen and drained and calls it with the same target;
/// `parked` are the request slots the regroup took off their communicators.
pub unsafe fn run(
    control: MPI_Comm,
    rank: c_int,
    size: c_int,
    t: &Target,
    parked: &[usize],
    orphans: usize,
    flush: &mut dyn FnMut(),
) -> Moved {
    let leaving = rank == t.rank;
    let host = t.host.clone().unwrap_or_else(hostname);
    // 1. Can it move?
    let mut reasons = Vec::new();
    let mut datatypes = Vec::new();
    if leaving {
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
        reasons.extend(crate::ops::checkpoint::library_reasons(parked, orphans));
        match crate::core::datatypes::save_all() {
            Ok(d) => datatypes = d,
            Err(e) => reasons.push(e),
        }
    }
    // SAFETY: collective over the control communicator (every process
    // takes the same branch: the list of left hosts is the same in all).
    if let Some(why) = unsafe { closed_host(control, &host) } {
        if leaving {
            reasons.push(why);
        }
    }
    // SAFETY: collective over the control communicator.
    if unsafe { any(control, !reasons.is_empty()) } {
        for r in &reasons {
            refused(t.rank, r, "");
        }
        return Moved::Stayed;
    }
    // The leaving process's sends and requests that are not re-posted
    // complete now (the others make progress in the reduction).
    let mut failed = false;
    if leaving {
        // SAFETY: every process is frozen and drained.
        unsafe { crate::calls::p2p::complete_held() };
        // SAFETY: as above.
        match unsafe { crate::ops::checkpoint::complete_requests(parked) } {
            Ok(done) => crate::ops::checkpoint::record(done, datatypes),
            Err(e) => {
                say(&format!(
                    "migration of rank {} failed: {e}; the job goes on",
                    t.rank
                ));
                failed = true;
            }
        }
    }
    // SAFETY: collective.
    if unsafe { any(control, failed) } {
        return Moved::Stayed;
    }
    // The host the rank leaves, for the event.
    // (its last byte: whether the leaving process is one the job started
    // with, for `closed_host`)
    let mut from = [0u8; 256];
    if leaving {
        let h = hostname();
        let n = h.len().min(254);
        from[..n].copy_from_slice(&h.as_bytes()[..n]);
        from[255] = first_process() as u8;
    }
    // SAFETY: a broadcast of a fixed buffer over the control communicator.
    unsafe {
        PMPI_Bcast(
            from.as_mut_ptr() as *mut c_void,
            256,
            k::MPI_BYTE(),
            t.rank,
            control,
        )
    };
    let from_host =
        String::from_utf8_lossy(&from[..from.iter().position(|&b| b == 0).unwrap_or(255)])
            .into_owned();
    let from_first = from[255] != 0;
    // Whether the old process leaves the job at once (decided by all, and
    // known to the replacement: this is on the stack its image carries).
    // SAFETY: collective over the control communicator.
    let leaves = old_process_leaves()
        && !unsafe {
            // (where the replacement goes, the same in every process: no
            // host given is the leaving rank's)
            let to = t.host.as_deref().unwrap_or(&from_host);
            stays_for_launcher(control, leaving, &from_host, to, from_first)
        };
    // 2. Spawn.
    let t_spawn = Instant::now();
    let mut spawned = k::MPI_COMM_NULL();
    let mut failure = String::new();
    let failed = if SPAWN_ALONE {
        // By the leaving process alone (on MPI_COMM_SELF); the others
        // learn how it went, asleep meanwhile.
        if leaving {
            // SAFETY: MPI is up; a spawn rooted at this process alone.
            let (c, e) = unsafe { spawn(k::MPI_COMM_SELF(), 0, true, &host) };
            spawned = c;
            failure = e.unwrap_or_default();
        }
        // SAFETY: collective over the control communicator, rooted at
        // the leaving rank.
        let outcome = unsafe { bcast_napping(control, t.rank, (!failure.is_empty()) as u64) };
        outcome != Ok(0)
    } else {
        // SAFETY: collective over the control communicator.
        let (c, e) = unsafe { spawn(control, t.rank, leaving, &host) };
        spawned = c;
        failure = e.unwrap_or_default();
        // SAFETY: as above.
        unsafe { any(control, !failure.is_empty()) }
    };
    if failed {
        if leaving {
            if failure.is_empty() {
                failure = "MPI_Comm_spawn failed on another rank".into();
            }
            say(&format!(
                "migration of rank {} to {host} failed: {failure}; the job goes on",
                t.rank
            ));
        }
        if spawned != k::MPI_COMM_NULL() {
            // SAFETY: our intercommunicator (every parent has it).
            unsafe { PMPI_Comm_free(&mut spawned) };
        }
        return Moved::Stayed;
    }
    let spawn_us = t_spawn.elapsed().as_micros() as u64;
    // 3. State transfer, between the leaving process and the replacement
    // alone (over the spawn's communicator): whatever the replacement
    // does (dies, becomes unreachable, fails its checks) is settled here,
    // before any other process talks to it.
    let t_transfer = Instant::now();
    let mut verdict = Verdict::Lost;
    if leaving {
        let hello: [c_int; 2] = [rank, size];
        // SAFETY: two integers to the replacement, just spawned (a short
        // message: it leaves at once, the replacement alive or not).
        unsafe {
            PMPI_Send(
                hello.as_ptr() as *const c_void,
                2,
                k::MPI_INT(),
                0,
                TAG_HELLO,
                spawned,
            )
        };
        run_hooks(Hook::Leave);
        // The library's own messages must be delivered before the image.
        flush();
        crate::core::clock::wtime_captured();
        let level = crate::sys::life::thread_level();
        crate::core::moves::counted(true);
        let outcome = crate::ops::image::capture::capture(
            crate::ops::image::capture::Destination::Peer {
                comm: spawned,
                rank: 0,
            },
            rank,
            size,
            level,
        );
        verdict = match outcome {
            crate::ops::image::capture::Outcome::Resumed => {
                // SAFETY: this is the replacement, right after the jump.
                return unsafe { resumed(t, &from_host, from_first, leaves, spawn_us) };
            }
            crate::ops::image::capture::Outcome::Written(stats) => {
                log::info!(
                    "rank {rank}: image of {:.1} MiB sent to the replacement in {:.1} ms",
                    stats.image_bytes as f64 / (1 << 20) as f64,
                    stats.micros as f64 / 1e3
                );
                // SAFETY: the spawn's live intercommunicator.
                match unsafe { await_ack(spawned, crate::ops::image::stream::timeout()) } {
                    Ok(v) => v,
                    Err(e) => {
                        refused(
                            rank,
                            &format!(
                                "the replacement did not confirm the image ({e}); it is given up"
                            ),
                            &format!(" to {host}"),
                        );
                        Verdict::Lost
                    }
                }
            }
            crate::ops::image::capture::Outcome::Failed(e) => {
                refused(
                    rank,
                    &format!("cannot send the image: {e}; the replacement is given up"),
                    &format!(" to {host}"),
                );
                Verdict::Lost
            }
        };
        if verdict == Verdict::NoGo {
            refused(
                rank,
                "the replacement could not take the image",
                &format!(" to {host}"),
            );
        }
    }
    // 4. Every old process learns the verdict (the replacement too, unless
    // it is lost).
    // SAFETY: collective over the old control communicator, rooted at the
    // leaving rank.
    let verdict = match unsafe { bcast_napping(control, t.rank, verdict as u64) } {
        Ok(v) => Verdict::from_word(v),
        Err(_) => Verdict::Lost,
    };
    let transfer_us = t_transfer.elapsed().as_micros() as u64;
    if leaving && verdict != Verdict::Lost {
        let word = verdict as u64;
        // SAFETY: one integer to the replacement, which answered and waits
        // for it (a short message).
        unsafe {
            PMPI_Send(
                &word as *const u64 as *const c_void,
                1,
                k::MPI_UINT64_T(),
                0,
                TAG_VERDICT,
                spawned,
            )
        };
    }
    if verdict != Verdict::Go {
        if leaving {
            crate::core::moves::counted(false);
        }
        if spawned != k::MPI_COMM_NULL() {
            // SAFETY: the spawn's intercommunicator, held by the processes
            // of the spawn: disconnected with a replacement that answered,
            // only freed without one (a disconnect would wait for it).
            unsafe { drop_spawned(&mut spawned, verdict) };
        }
        return Moved::Stayed;
    }
    // 5. New group (the replacement answered and has its image): merge
    // with it, split keyed by the old ranks.
    let t_group = Instant::now();
    let mut inter = k::MPI_COMM_NULL();
    let mut merged = k::MPI_COMM_NULL();
    let mut world = k::MPI_COMM_NULL();
    // SAFETY: the communicators just made; collectives over them, with
    // the replacement doing the matching calls in `join`.
    unsafe {
        if SPAWN_ALONE {
            // The replacement joins everyone through the leaving process:
            // an intercommunicator from the control communicator to it,
            // bridged by the pair the spawn made.
            let mut pair = k::MPI_COMM_NULL();
            if leaving {
                PMPI_Intercomm_merge(spawned, 0, &mut pair);
            }
            PMPI_Intercomm_create(
                control,
                t.rank,
                if leaving { pair } else { control },
                1,
                TAG_JOIN,
                &mut inter,
            );
            if leaving {
                // The spawn's own pair is of no more use.
                PMPI_Comm_free(&mut pair);
                PMPI_Comm_disconnect(&mut spawned);
            }
        } else {
            inter = spawned;
        }
        PMPI_Intercomm_merge(inter, 0, &mut merged);
        PMPI_Comm_set_errhandler(merged, k::MPI_ERRORS_RETURN());
        PMPI_Comm_split(
            merged,
            if leaving { k::MPI_UNDEFINED() } else { 0 },
            rank,
            &mut world,
        );
    }
    if leaving {
        // SAFETY: collective with the other old processes.
        unsafe { crate::protocol::control::leave() };
        if leaves {
            // SAFETY: every member of the migration's communicators
            // releases them: the others in this function, the replacement
            // in `resumed`.
            unsafe { release_link(epoch(), inter, merged) };
            // SAFETY: nothing of the job depends on this process any more.
            unsafe { depart() }
        }
        keep(epoch(), inter, merged);
        // SAFETY: the rank lives on in the replacement (its rank in the
        // merged communicator: after every old process).
        unsafe { dormant(merged, size, inter) }
    }
    // 6. The library moves onto the new world.
    crate::core::moves::set_took_part(true);
    if leaves && from_first {
        note_left(&from_host);
    }
    // SAFETY: collective over the new world (with the replacement), then
    // over the old control communicator (with the leaving process).
    unsafe { crate::protocol::control::move_to_world(world) };
    let group_us = t_group.elapsed().as_micros() as u64;
    // SAFETY: collective over the new control communicator.
    unsafe { exchange_report(t, &from_host, spawn_us, group_us, transfer_us, leaves) };
    if leaves {
        // SAFETY: with the leaving process and the replacement (above and
        // in `resumed`).
        unsafe { release_link(epoch(), inter, merged) };
    } else {
        keep(epoch(), inter, merged);
    }
    Moved::Yes {
        new_world: world,
        replacement: false,
    }
}

/// How the transfer to the replacement ended, as the leaving process saw
/// it (told to every old process, and to the replacement unless lost).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
enum Verdict {
    /// The replacement has the image and checked it: the rank moves.
    Go = 0,
    /// The replacement answered that it could not take the image: it is
    /// disconnected cleanly and finalizes.
    NoGo = 1,
    /// No answer in time, or the image could not be sent: the replacement
    /// is given up without a word (its communicator freed, not
    /// disconnected); it ends on its own.
    Lost = 2,
}

impl Verdict {
    fn from_word(w: u64) -> Verdict {
        match w {
            0 => Verdict::Go,
            1 => Verdict::NoGo,
            _ => Verdict::Lost,
        }
    }
}

/// The replacement's answer once it has the image (see `join`).
const ACK_OK: u64 = 1;
const ACK_FAILED: u64 = 2;

/// What the answer `word` of the replacement means.
fn verdict_of_ack(word: u64) -> Verdict {
    match word {
        ACK_OK => Verdict::Go,
        ACK_FAILED => Verdict::NoGo,
        _ => Verdict::Lost,
    }
}

/// The leaving process waits for the replacement's answer on `spawned`,
/// at most `timeout`.
unsafe fn await_ack(spawned: MPI_Comm, timeout: Duration) -> Result<Verdict, String> {
    // MPI may still write into it after a receive given up: its own box,
    // leaked then.
    let mut word = Box::new(0u64);
    // SAFETY: a receive of one integer into the box, leaked if given up.
    match unsafe {
        crate::ops::image::stream::receive_bounded(
            spawned,
            &mut *word as *mut u64 as *mut c_void,
            1,
            k::MPI_UINT64_T(),
            0,
            TAG_ACK,
            timeout,
        )
    } {
        Ok(()) => Ok(verdict_of_ack(*word)),
        Err(e) => {
            Box::leak(word);
            Err(match e {
                crate::ops::image::stream::Stall::Timeout(d) => {
                    format!("no answer within {} ms", d.as_millis())
                }
                other => other.to_string(),
            })
        }
    }
}

/// The spawn's intercommunicator after a migration that did not happen:
/// disconnected (with the replacement, which does the same) when it
/// answered, freed when it is lost (`MPI_Comm_disconnect` would wait for
/// it forever; freeing lets the job go on and finalize).
unsafe fn drop_spawned(spawned: &mut MPI_Comm, verdict: Verdict) {
    // SAFETY: a live communicator of this process.
    unsafe {
        if verdict == Verdict::NoGo {
            PMPI_Comm_disconnect(spawned);
        } else {
            PMPI_Comm_free(spawned);
        }
    }
}

/// Whether the leaving process spawns its replacement alone (on
/// `MPI_COMM_SELF`, the others waiting asleep: they leave the cores to the
/// new process while it starts) rather than with every process (on the
/// control communicator). MPICH: alone. Open MPI: with everyone, because
/// only the processes of a spawn learn that the new process shares their
/// node, which its one-sided windows need (see `control::window_possible`).
const SPAWN_ALONE: bool = !crate::sys::quirks::NODE_BELIEFS_FROM_SPAWNS;

/// The spawn of the replacement, rooted at `root` of `comm` (the leaving
/// process): the intercommunicator to it.
/// What it made (maybe null) and what went wrong here, if anything (the
/// caller frees what was made when the spawn failed anywhere).
unsafe fn spawn(
    comm: MPI_Comm,
    root: c_int,
    leaving: bool,
    host: &str,
) -> (MPI_Comm, Option<String>) {
    let mut inter = k::MPI_COMM_NULL();
    let mut errcode: c_int = k::MPI_SUCCESS();
    let exe = std::fs::read_link("/proc/self/exe")
        .ok()
        .and_then(|p| CString::new(p.to_string_lossy().into_owned()).ok())
        .unwrap_or_default();
    let fds: Vec<String> = crate::mem::files::capture()
        .map(|v| v.iter().map(|r| r.fd.to_string()).collect())
        .unwrap_or_default();
    let args: Vec<CString> = [
        MARKER.to_string(),
        format!("level={}", crate::sys::life::thread_level()),
        format!("fds={}", fds.join(",")),
        format!(
            "root={}",
            if started_as_replacement() {
                "replacement"
            } else {
                "original"
            }
        ),
    ]
    .into_iter()
    // The libraries the program opened: the replacement opens them again
    // before its MPI_Init, while their places are still free.
    .chain(crate::mem::opened::spawn_arguments())
    .filter_map(|a| CString::new(a).ok())
    .collect();
    let mut argv: Vec<*mut c_char> = args.iter().map(|a| a.as_ptr() as *mut c_char).collect();
    argv.push(std::ptr::null_mut());
    let chost = CString::new(host).unwrap_or_default();
    // SAFETY: every pointer lives until the call returns; the arguments
    // of processes other than the root are ignored by MPI.
    let rc = unsafe {
        let mut info = k::MPI_INFO_NULL();
        if leaving {
            PMPI_Info_create(&mut info);
            PMPI_Info_set(info, c"host".as_ptr(), chost.as_ptr());
        }
        let rc = PMPI_Comm_spawn(
            if leaving {
                exe.as_ptr()
            } else {
                std::ptr::null()
            },
            if leaving {
                argv.as_mut_ptr()
            } else {
                std::ptr::null_mut()
            },
            1,
            info,
            root,
            comm,
            &mut inter,
            &mut errcode,
        );
        if leaving {
            PMPI_Info_free(&mut info);
        }
        if rc == k::MPI_SUCCESS() && leaving {
            errcode
        } else {
            rc
        }
    };
    let failure = (rc != k::MPI_SUCCESS() || inter == k::MPI_COMM_NULL())
        .then(|| format!("MPI_Comm_spawn failed: {}", error_string(rc)));
    (inter, failure)
}

fn error_string(rc: c_int) -> String {
    if rc == k::MPI_SUCCESS() {
        return "on another rank".into();
    }
    let mut buf = [0 as c_char; 1024];
    let mut len: c_int = 0;
    // SAFETY: the buffer exceeds MPI_MAX_ERROR_STRING.
    unsafe { PMPI_Error_string(rc, buf.as_mut_ptr(), &mut len) };
    let bytes: Vec<u8> = buf[..len.max(0) as usize]
        .iter()
        .map(|&c| c as u8)
        .collect();
    format!(
        "{} (MPI error {rc})",
        String::from_utf8_lossy(&bytes).trim()
    )
}

/// The measures of the migration go to everyone (the leader writes the
/// event): the replacement's own, broadcast from its rank.
unsafe fn exchange_report(
    t: &Target,
    from_host: &str,
    spawn_us: u64,
    group_us: u64,
    transfer_us: u64,
    old_left: bool,
) {
    let Some(rt) = crate::core::runtime::runtime() else {
        return;
    };
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
        PMPI_Bcast(
            words.as_mut_ptr() as *mut c_void,
            8,
            k::MPI_UINT64_T(),
            t.rank,
            rt.control,
        );
        PMPI_Bcast(
            host.as_mut_ptr() as *mut c_void,
            256,
            k::MPI_BYTE(),
            t.rank,
            rt.control,
        );
    }
    let n = host.iter().position(|&b| b == 0).unwrap_or(256);
    let to_host = String::from_utf8_lossy(&host[..n]).into_owned();
    let report = Report {
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
        from_host: from_host.to_string(),
        to_host,
        old_left,
    };
    if let Ok(mut r) = REPORT.lock() {
        *r = Some(report);
    }
}

/// In the replacement, right after the jump: it takes its own MPI objects
/// and joins the others on the new world.
unsafe fn resumed(
    t: &Target,
    from_host: &str,
    from_first: bool,
    leaves: bool,
    spawn_us: u64,
) -> Moved {
    let fresh = crate::ops::image::restore::fresh_values();
    let group_us = fresh[F_GROUP_US];
    crate::core::moves::set_replacement(true);
    crate::core::runtime::adopt(&fresh);
    crate::core::clock::wtime_resumed();
    crate::core::bsend::reattach_buffer();
    let merged: MPI_Comm = crate::sys::bits::handle_from_bits(fresh[F_MERGED]);
    let parent: MPI_Comm = crate::sys::bits::handle_from_bits(fresh[F_PARENT]);
    let world: MPI_Comm = crate::sys::bits::handle_from_bits(fresh[F_WORLD]);
    if let Ok(mut p) = PREDECESSOR.lock() {
        // The process this one replaced (the image's own predecessor link
        // belongs to the old process's MPI).
        *p = (!leaves).then_some(Link(merged, t.rank));
    }
    if let Ok(mut v) = KEPT.lock() {
        // The image's kept communicators are the old process's.
        std::mem::forget(std::mem::take(&mut *v));
    }
    crate::core::moves::set_took_part(true);
    if !leaves {
        keep(epoch(), parent, merged);
    } else if from_first {
        note_left(from_host);
    }
    // SAFETY: the new MPI is up; `world` is the job's new world.
    unsafe { crate::ops::checkpoint::remake(world) };
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
    unsafe { exchange_report(t, from_host, spawn_us, group_us, 0, leaves) };
    if leaves {
        // SAFETY: with the old processes, the one that left among them
        // (`run`).
        unsafe { release_link(epoch(), parent, merged) };
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

/// The old process, once its rank lives on in the replacement: gives its
/// memory back, sleeps until the replacement finalizes, then finalizes
/// with the job. Never returns.
unsafe fn dormant(merged: MPI_Comm, child: c_int, inter: MPI_Comm) -> ! {
    let pid = std::process::id();
    log::info!("process {pid} left its rank; asleep until the job ends");
    crate::core::bsend::detach_buffer_of_leaving();
    if std::env::var_os("FERRY_TEST_KEEP_HEAP").is_none() {
        give_back_memory();
    }
    // FINISH: the pid and host of the process that holds the rank now.
    let mut token = [0u64; 2];
    let mut req = k::MPI_REQUEST_NULL();
    // SAFETY: a receive of two integers into a local that outlives it.
    unsafe {
        PMPI_Irecv(
            token.as_mut_ptr() as *mut c_void,
            2,
            k::MPI_UINT64_T(),
            child,
            TAG_FINISH,
            merged,
            &mut req,
        )
    };
    let mut nap = Duration::from_millis(1);
    loop {
        let mut flag: c_int = 0;
        // SAFETY: the live request.
        unsafe { PMPI_Test(&mut req, &mut flag, k::MPI_STATUS_IGNORE()) };
        if flag != 0 {
            break;
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(200));
    }
    log::debug!("process {pid}: the job finalizes");
    finish_predecessor();
    disconnect_all();
    if crate::sys::quirks::FINALIZE_COUNTS_FOREIGN_COMMS {
        crate::core::handles::free_all_comms();
    }
    let _ = inter;
    // SAFETY: the end of this process, with the job: MPI's exit handlers
    // run, the program's do not (they run in the replacement). No stdio
    // flush: the program's streams were flushed at the capture and live in
    // the memory given back.
    unsafe {
        let mut ign: libc::sigaction = std::mem::zeroed();
        ign.sa_sigaction = libc::SIG_IGN;
        libc::sigaction(libc::SIGPIPE, &ign, std::ptr::null_mut());
        PMPI_Finalize();
        crate::mem::process::run_library_exit_handlers();
    }
    // This process belongs to the job the launcher started; the rank's
    // process may belong to a spawned one. Launchers end the job's output
    // forwarding when their first job ends (Open MPI: the rank's later
    // writes then die of SIGPIPE), so this process stays until the rank's
    // process has exited (on this host; at most ten minutes).
    let (rank_pid, rank_host) = (token[0] as libc::pid_t, token[1]);
    if rank_pid > 0 && rank_host == host_hash() {
        let until = std::time::Instant::now() + Duration::from_secs(600);
        // SAFETY: signal 0 only checks whether the process exists.
        while unsafe { libc::kill(rank_pid, 0) } == 0 && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // SAFETY: ends this process without the program's exit handlers.
    unsafe { libc::_exit(0) }
}

/// A hash of this host's name (to tell whether a pid is of this host).
fn host_hash() -> u64 {
    xxhash_rust::xxh3::xxh3_64(hostname().as_bytes())
}

/// The program's heap of the old process is of no more use: its pages go
/// back to the system (the arena's header page stays, so that the
/// allocator would still read a valid arena).
fn give_back_memory() {
    use crate::mem::layout::{page_up, APP_HEAP_BASE, PAGE};
    let hw = crate::mem::alloc::app().high_water();
    let lo = APP_HEAP_BASE + PAGE;
    if hw > lo {
        // SAFETY: memory of the program's arena, which no code of this
        // process touches any more (the program runs in the replacement).
        unsafe { libc::madvise(lo as *mut c_void, page_up(hw) - lo, libc::MADV_DONTNEED) };
    }
}

/// At `MPI_Finalize` (and in a dormant process told to finish): the
/// process this one replaced may finalize too.
pub fn finish_predecessor() {
    let link = PREDECESSOR.lock().ok().and_then(|mut p| p.take());
    if let Some(Link(comm, rank)) = link {
        let token: [u64; 2] = [std::process::id() as u64, host_hash()];
        // SAFETY: a send of two integers on the kept merged communicator to
        // the sleeping process, which receives them.
        unsafe {
            PMPI_Send(
                token.as_ptr() as *const c_void,
                2,
                k::MPI_UINT64_T(),
                rank,
                TAG_FINISH,
                comm,
            )
        };
    }
}

/// The start of a replacement process (in place of `main`, see
/// [`crate::mem::startup`]): MPI, the handshake with the migrating
/// rank, the new world, the image, the jump. Returns an exit status when
/// it cannot go on (the migration is then undone by everyone).
pub fn replacement_main(args: &[String]) -> i32 {
    let started = crate::ops::image::restore::now_us();
    let mut level = 0;
    let mut fds: Vec<c_int> = Vec::new();
    for a in args {
        if let Some(v) = a.strip_prefix("level=") {
            level = v.parse().unwrap_or(0);
        } else if let Some(v) = a.strip_prefix("fds=") {
            fds = v.split(',').filter_map(|f| f.parse().ok()).collect();
        }
    }
    // The program's opened libraries, at their places before MPI takes
    // any (what fails here is tried again, and said, once the image is in).
    if let Err(e) = crate::mem::opened::reopen_from_arguments(args) {
        log::debug!("replacement: before MPI_Init: {e}");
    }
    // The program's descriptor numbers stay free for its files.
    for &fd in &fds {
        // SAFETY: probing and reserving descriptor numbers of this process.
        unsafe {
            if libc::fcntl(fd, libc::F_GETFD) == -1 {
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                if null >= 0 && null != fd {
                    libc::dup2(null, fd);
                    libc::close(null);
                }
            }
        }
    }
    let init_started = crate::ops::image::restore::now_us();
    let mut provided = 0;
    // SAFETY: the first MPI call of this process.
    let rc = unsafe {
        PMPI_Init_thread(
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            level,
            &mut provided,
        )
    };
    if rc != k::MPI_SUCCESS() {
        crate::mem::startup::early_warn("replacement: MPI_Init_thread failed");
        return 1;
    }
    crate::sys::logging::init();
    let init_us = crate::ops::image::restore::now_us().saturating_sub(init_started);
    // SAFETY: MPI is up; collectives with the parents, in their order.
    match unsafe { join(started, init_us) } {
        Ok(never) => match never {},
        Err(e) => {
            crate::mem::startup::early_warn(&format!("replacement: {e}"));
            // SAFETY: MPI is up; the parents undid the migration.
            unsafe { PMPI_Finalize() };
            0
        }
    }
}

/// The replacement's side of the handshake, transfer, verdict and group.
/// `Err`: the migration was refused and this process is disconnected from
/// the job (it finalizes); a replacement cut off from the leaving process
/// ends on its own ([`cut_off`]).
unsafe fn join(started: u64, init_us: u64) -> Result<std::convert::Infallible, String> {
    let mut spawned = k::MPI_COMM_NULL();
    let timeout = crate::ops::image::stream::timeout();
    // SAFETY: MPI is up.
    unsafe { PMPI_Comm_get_parent(&mut spawned) };
    if spawned == k::MPI_COMM_NULL() {
        return Err("started without a parent job (not by ferry)".into());
    }
    // SAFETY: the parent intercommunicator.
    unsafe { PMPI_Comm_set_errhandler(spawned, k::MPI_ERRORS_RETURN()) };
    // (the leaving process's rank among the spawning ones: alone, or its
    // rank in the job)
    let from = if SPAWN_ALONE { 0 } else { k::MPI_ANY_SOURCE() };
    let mut hello: [c_int; 2] = [0; 2];
    // SAFETY: a bounded receive of two integers into a local that outlives
    // it unless it is given up, and then this process ends.
    if let Err(e) = unsafe {
        crate::ops::image::stream::receive_bounded(
            spawned,
            hello.as_mut_ptr() as *mut c_void,
            2,
            k::MPI_INT(),
            from,
            TAG_HELLO,
            timeout,
        )
    } {
        cut_off(&format!("no word from the leaving process ({e})"));
    }
    let [rank, _size] = hello;
    crate::sys::logging::set_rank(rank);
    let leaving = if SPAWN_ALONE { 0 } else { rank };
    let t_transfer = Instant::now();
    // SAFETY: the leaving process sends its image on the spawn's
    // communicator.
    let received = unsafe { crate::ops::image::stream::receive(spawned, leaving, timeout) };
    let transfer_us = t_transfer.elapsed().as_micros() as u64;
    let received = match received {
        Ok(r) => r,
        Err(e) => cut_off(&e),
    };
    // The restore proper is measured from here: check, copy, jump.
    let restore_started = crate::ops::image::restore::now_us();
    let prepared = crate::ops::image::restore::prepare(received);
    let ack: u64 = if prepared.is_ok() { ACK_OK } else { ACK_FAILED };
    let mut verdict: u64 = u64::MAX;
    // SAFETY: one integer each way with the leaving process, bounded; the
    // buffers are locals that outlive the calls unless given up, and then
    // this process ends.
    unsafe {
        if let Err(e) = send_bounded(spawned, &ack, leaving, TAG_ACK, timeout) {
            cut_off(&format!("cannot answer the leaving process ({e})"));
        }
        // The leaving process waits for the answer at most `timeout`, then
        // tells the job and this process.
        if let Err(e) = crate::ops::image::stream::receive_bounded(
            spawned,
            &mut verdict as *mut u64 as *mut c_void,
            1,
            k::MPI_UINT64_T(),
            leaving,
            TAG_VERDICT,
            timeout * 2 + Duration::from_secs(1),
        ) {
            cut_off(&format!("no verdict from the leaving process ({e})"));
        }
    }
    let prepared = match (prepared, Verdict::from_word(verdict)) {
        (Ok(p), Verdict::Go) => p,
        (outcome, _) => {
            // SAFETY: the leaving process disconnects too (NoGo).
            unsafe { PMPI_Comm_disconnect(&mut spawned) };
            return Err(match outcome {
                Err(e) => e,
                Ok(_) => "the migration was given up by the job".into(),
            });
        }
    };
    let t_group = Instant::now();
    let mut parent = k::MPI_COMM_NULL();
    let mut merged = k::MPI_COMM_NULL();
    let mut world = k::MPI_COMM_NULL();
    // SAFETY: collectives with the parents, in their order (`run`).
    unsafe {
        if SPAWN_ALONE {
            // Through the leaving process (see `run`).
            let mut pair = k::MPI_COMM_NULL();
            PMPI_Intercomm_merge(spawned, 1, &mut pair);
            PMPI_Intercomm_create(k::MPI_COMM_SELF(), 0, pair, 0, TAG_JOIN, &mut parent);
            PMPI_Comm_free(&mut pair);
            PMPI_Comm_disconnect(&mut spawned);
        } else {
            parent = spawned;
        }
        PMPI_Intercomm_merge(parent, 1, &mut merged);
        PMPI_Comm_set_errhandler(merged, k::MPI_ERRORS_RETURN());
        PMPI_Comm_split(merged, 0, rank, &mut world);
    }
    // The library's objects on the new world, made with the others.
    crate::core::moves::set_joining();
    // SAFETY: collective over the new world.
    let ch = unsafe { crate::protocol::control::open(world) };
    let mut fresh = ch.fresh();
    fresh[F_REPLACEMENT] = 1;
    fresh[F_MERGED] = crate::sys::bits::handle_bits(merged);
    fresh[F_PARENT] = crate::sys::bits::handle_bits(parent);
    fresh[F_WORLD] = crate::sys::bits::handle_bits(world);
    fresh[F_TRANSFER_US] = transfer_us;
    fresh[F_SPAWNED_AT] = started;
    fresh[F_GROUP_US] = t_group.elapsed().as_micros() as u64;
    let _ = (started, init_us);
    Err(prepared.jump(fresh, restore_started, 0))
}

/// A bounded send of one integer.
///
/// # Safety
/// `word` outlives the send unless it is given up (and then the process
/// ends without returning to its owner).
unsafe fn send_bounded(
    comm: MPI_Comm,
    word: &u64,
    dest: c_int,
    tag: c_int,
    timeout: Duration,
) -> Result<(), crate::ops::image::stream::Stall> {
    let mut req = k::MPI_REQUEST_NULL();
    // SAFETY: contract of the function.
    let rc = unsafe {
        PMPI_Isend(
            word as *const u64 as *const c_void,
            1,
            k::MPI_UINT64_T(),
            dest,
            tag,
            comm,
            &mut req,
        )
    };
    if rc != k::MPI_SUCCESS() {
        return Err(crate::ops::image::stream::Stall::Error(rc));
    }
    // SAFETY: the request just made.
    unsafe { crate::ops::image::stream::wait_bounded(&mut req, timeout, false) }
}

/// A replacement cut off from the leaving process (its host unreachable,
/// or the leaving process gave it up): the job has gone on without it, so
/// it ends on its own, at once and with status 0, without `MPI_Finalize`
/// (which would wait for processes it cannot reach). See docs/migration.md
/// for what each launcher then does.
fn cut_off(why: &str) -> ! {
    crate::mem::startup::early_warn(&format!(
        "replacement: {why}; the migration is given up, this process ends"
    ));
    // SAFETY: ends this process; nothing of the program runs here.
    unsafe { libc::_exit(0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_round_trip() {
        for op in [
            Operation::Regroup,
            Operation::Checkpoint,
            Operation::Migrate(Target {
                rank: 3,
                host: None,
                request: None,
            }),
            Operation::Migrate(Target {
                rank: 0,
                host: Some("node-7.cluster".into()),
                request: Some(0),
            }),
            Operation::Migrate(Target {
                rank: 5,
                host: Some("h".into()),
                request: Some(41),
            }),
        ] {
            let mut buf = [0u64; OP_WORDS];
            encode(&op, &mut buf);
            assert_eq!(decode(&buf), op);
        }
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
        let mut buf = [0u64; OP_WORDS];
        encode(
            &Operation::Migrate(Target {
                rank: 1,
                host: Some(long),
                request: Some(7),
            }),
            &mut buf,
        );
        match decode(&buf) {
            Operation::Migrate(t) => assert_eq!(t.host.map(|h| h.len()), Some(HOST_BYTES)),
            other => panic!("{other:?}"),
        }
    }
}
