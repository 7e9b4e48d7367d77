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
/// not yet led: each entry is one synchronization's moves (a batch).
static QUEUE: Mutex<VecDeque<Vec<Target>>> = Mutex::new(VecDeque::new());

/// Asks for the migration of `t.rank`; it starts at this process's next
/// MPI call (after any regroup or migration already running).
pub fn request(t: Target) {
    request_batch(vec![t]);
}

/// Asks for the migration of several ranks in one synchronization: one
/// freeze and drain, their replacements started by one spawn, one new
/// group (`ferry evacuate`).
pub fn request_batch(batch: Vec<Target>) {
    if let Some(why) = crate::protocol::control::disabled_why() {
        for t in &batch {
            refuse(t.rank, &why);
        }
        return;
    }
    let ranks: Vec<c_int> = batch.iter().map(|t| t.rank).collect();
    if let Ok(mut q) = QUEUE.lock() {
        q.push_back(batch);
    }
    log::debug!("migration of rank(s) {ranks:?} queued");
    crate::protocol::regroup::request();
}

/// A batch whose transfer failed for some of its ranks: the others are
/// tried again at once, before anything else queued (in the process that
/// led it).
fn requeue_first(batch: Vec<Target>) {
    let ranks: Vec<c_int> = batch.iter().map(|t| t.rank).collect();
    if let Ok(mut q) = QUEUE.lock() {
        q.push_front(batch);
    }
    log::info!("migration of rank(s) {ranks:?} tried again without the others");
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
    crate::sys::life::append_event(&ferry_common::events::Event::refused(
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
        .map(|mut q| q.drain(..).flatten().collect())
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
                    "migration of rank {}{}{} asked for by `ferry migrate` (request {num})",
                    req.rank,
                    req.with
                        .iter()
                        .map(|m| format!(", {}", m.rank))
                        .collect::<String>(),
                    req.to
                        .as_deref()
                        .map(|h| format!(" to {h}"))
                        .unwrap_or_default()
                );
                let batch = std::iter::once((req.rank, req.to))
                    .chain(req.with.into_iter().map(|m| (m.rank, m.to)))
                    .map(|(rank, host)| Target {
                        rank: rank as c_int,
                        host,
                        request: Some(num),
                    })
                    .collect();
                request_batch(batch);
                n += 1;
            }
            Err(e) => say(&format!("a migration request cannot be read: {e}")),
        }
    }
    n
}

fn next_queued() -> Option<Vec<Target>> {
    QUEUE.lock().ok().and_then(|mut q| q.pop_front())
}

/// The moves of a batch that can be tried, sorted by rank, and those
/// refused at once with the reason (no such rank, or a rank asked twice).
fn validate(batch: Vec<Target>, size: c_int) -> (Vec<Target>, Vec<(c_int, String)>) {
    let mut ok: Vec<Target> = Vec::new();
    let mut refused = Vec::new();
    for t in batch {
        if t.rank < 0 || t.rank >= size {
            let why = format!(
                "there is no rank {} (the job has ranks 0..{})",
                t.rank,
                size - 1
            );
            refused.push((t.rank, why));
        } else if ok.iter().any(|o| o.rank == t.rank) {
            refused.push((
                t.rank,
                "it is asked to move twice in the same synchronization".to_string(),
            ));
        } else {
            ok.push(t);
        }
    }
    ok.sort_by_key(|t| t.rank);
    (ok, refused)
}

/// What a regroup does once everyone is frozen and drained (its leader
/// decides).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operation {
    /// The group is made again with the same processes.
    Regroup,
    /// Every process writes its image and the job ends.
    Checkpoint,
    /// Ranks move to new processes, in one synchronization (sorted by
    /// rank, each once).
    Migrate(Vec<Target>),
}

/// An operation on the wire: kind and number of targets, then each
/// target in [`TARGET_WORDS`]: rank, host length, request + 1 (0: none),
/// then the host name.
const HEAD_WORDS: usize = 2;
const TARGET_WORDS: usize = 36;
const HOST_BYTES: usize = (TARGET_WORDS - 3) * 8;
/// Most ranks moved in one synchronization.
pub const MAX_BATCH: usize = 256;

/// The leader tells everyone what this regroup is: the checkpoint it
/// asked for (`checkpoint`, read in the leader only), else the next batch
/// of moves queued, else a plain regroup. Collective over `control`.
///
/// # Safety
/// Every process of the job calls it, in the same regroup.
pub unsafe fn agree(
    control: MPI_Comm,
    leader: c_int,
    rank: c_int,
    size: c_int,
    checkpoint: bool,
) -> Operation {
    let mut words = Vec::new();
    if rank == leader {
        let op = if checkpoint {
            Operation::Checkpoint
        } else {
            loop {
                let Some(batch) = next_queued() else {
                    break Operation::Regroup;
                };
                let (mut ok, refused) = validate(batch, size);
                for (r, why) in refused {
                    say(&format!(
                        "migration of rank {r} refused: {why}; the job goes on"
                    ));
                    crate::sys::life::append_event(&ferry_common::events::Event::refused(
                        "migration",
                        (0..size).contains(&r).then_some(r as u32),
                        &why,
                    ));
                }
                if ok.len() > MAX_BATCH {
                    // The rest in the next synchronization.
                    let rest = ok.split_off(MAX_BATCH);
                    requeue_first(rest);
                }
                if !ok.is_empty() {
                    break Operation::Migrate(ok);
                }
            }
        };
        words = encode(&op);
    }
    let mut head = [0u64; HEAD_WORDS];
    head.copy_from_slice(words.get(..HEAD_WORDS).unwrap_or(&[0; HEAD_WORDS]));
    // SAFETY: broadcasts over the control communicator of buffers of the
    // sizes every process knows (the head gives the body's).
    unsafe {
        let _ = collective::bcast(control, &mut head, leader);
        words.resize(HEAD_WORDS + head[1] as usize * TARGET_WORDS, 0);
        words[..HEAD_WORDS].copy_from_slice(&head);
        let _ = collective::bcast(control, &mut words[HEAD_WORDS..], leader);
    }
    decode(&words)
}

fn encode(op: &Operation) -> Vec<u64> {
    match op {
        Operation::Regroup => vec![0, 0],
        Operation::Checkpoint => vec![1, 0],
        Operation::Migrate(targets) => {
            let mut buf = vec![2, targets.len() as u64];
            for t in targets {
                let host = t.host.as_deref().unwrap_or("").as_bytes();
                let n = host.len().min(HOST_BYTES);
                buf.push(t.rank as u64);
                buf.push(n as u64);
                buf.push(t.request.map_or(0, |r| r.saturating_add(1)));
                buf.extend(words_of(&host[..n], HOST_BYTES));
            }
            buf
        }
    }
}

fn decode(buf: &[u64]) -> Operation {
    match buf.first() {
        Some(1) => Operation::Checkpoint,
        Some(2) => Operation::Migrate(
            buf[HEAD_WORDS.min(buf.len())..]
                .chunks_exact(TARGET_WORDS)
                .map(|w| {
                    let n = (w[1] as usize).min(HOST_BYTES);
                    let host = string_of(&w[3..], n);
                    Target {
                        rank: w[0] as c_int,
                        host: (!host.is_empty()).then_some(host),
                        request: w[2].checked_sub(1),
                    }
                })
                .collect(),
        ),
        _ => Operation::Regroup,
    }
}

/// `bytes` in words (little-endian), zero-padded to `len` bytes.
fn words_of(bytes: &[u8], len: usize) -> Vec<u64> {
    let mut padded = bytes[..bytes.len().min(len)].to_vec();
    padded.resize(len.div_ceil(8) * 8, 0);
    padded
        .chunks_exact(8)
        .map(|w| u64::from_le_bytes(w.try_into().unwrap_or([0; 8])))
        .collect()
}

/// The first `n` bytes of `words` (as [`words_of`] wrote them), read as
/// text; `n` at most their length.
fn string_of(words: &[u64], n: usize) -> String {
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    String::from_utf8_lossy(&bytes[..n.min(bytes.len())]).into_owned()
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

/// The regroup this migration is part of.
fn epoch() -> u64 {
    crate::core::state::state().command.load(Ordering::SeqCst)
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
    if !links::left_by_first(host) {
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

/// What the spawn of a batch made: the intercommunicator to the
/// replacements (in the order of the targets), and the communicator of
/// the processes that spawned them (MPICH: the leaving ones alone; Open
/// MPI: every process, the control communicator).
struct Spawned {
    inter: MPI_Comm,
    /// The leaving processes' own communicator (MPICH), freed with the
    /// spawn; null where the spawn was over the control communicator.
    leavers: MPI_Comm,
}

impl Spawned {
    /// After a batch that does not move: the intercommunicator
    /// disconnected (with replacements that all answered, which do the
    /// same) or freed (one is lost: a disconnect would wait for it).
    ///
    /// # Safety
    /// Every member of the spawn calls it, with the same verdict.
    unsafe fn drop_all(&mut self, verdict: Verdict) {
        // SAFETY: contract of the function.
        unsafe {
            if self.inter != k::MPI_COMM_NULL() {
                drop_spawned(&mut self.inter, verdict);
            }
            if self.leavers != k::MPI_COMM_NULL() {
                PMPI_Comm_free(&mut self.leavers);
            }
        }
    }
}

/// Phase 4: one `MPI_Comm_spawn_multiple` of every replacement, each on
/// its host. MPICH: by the leaving processes alone (the others wait
/// asleep, leaving the cores to the new processes while they start);
/// Open MPI: by every process ([`SPAWN_ALONE`]). `None`: it failed (said
/// by the leaving processes), and nothing moves.
///
/// # Safety
/// Collective over the control communicator.
unsafe fn spawn_all(b: &Batch) -> Option<Spawned> {
    let leaving = b.leaving();
    let mut leavers = k::MPI_COMM_NULL();
    // SAFETY: collective over the control communicator (a split keyed by
    // rank: the leaving processes in the order of the targets).
    let (comm, root) = unsafe {
        if SPAWN_ALONE {
            PMPI_Comm_split(
                b.control,
                if leaving { 0 } else { k::MPI_UNDEFINED() },
                b.rank,
                &mut leavers,
            );
            (leavers, 0)
        } else {
            (b.control, b.targets[0].rank)
        }
    };
    let mut inter = k::MPI_COMM_NULL();
    let mut failure = String::new();
    if comm != k::MPI_COMM_NULL() {
        let mut me_in_comm: c_int = 0;
        // SAFETY: a live communicator of this process.
        unsafe { PMPI_Comm_rank(comm, &mut me_in_comm) };
        // SAFETY: collective over `comm` (every process of the spawn).
        let (c, e) = unsafe { spawn(b, comm, root, me_in_comm) };
        inter = c;
        failure = e.unwrap_or_default();
    }
    // SAFETY: collective over the control communicator (those outside
    // the spawn wait here asleep).
    let failed = unsafe { share_words(b.control, vec![(!failure.is_empty()) as u64]) }[0] != 0;
    let mut s = Spawned { inter, leavers };
    if failed {
        if let Some(i) = b.mine() {
            if failure.is_empty() {
                failure = "MPI_Comm_spawn_multiple failed on another rank".into();
            }
            say(&format!(
                "migration of rank {} to {} failed: {failure}; the job goes on",
                b.rank,
                b.host_of(i)
            ));
        }
        // SAFETY: what this process holds of the spawn (freed: nothing
        // answers on it).
        unsafe { s.drop_all(Verdict::Lost) };
        return None;
    }
    Some(s)
}

/// The leaving process's image went to its replacement (this is the old
/// process), or the replacement resumed here.
enum Transferred {
    Verdict(Verdict),
    Resumed(Moved),
}

/// Phase 5: between each leaving process and its replacement alone (over
/// the spawn's intercommunicator): whatever a replacement does (dies,
/// becomes unreachable, fails its checks) is settled here, before any
/// other process talks to it. Every process then learns how each went:
/// the batch goes on only if all did; otherwise the replacements are
/// given up, and the ranks whose own transfer went well are tried again
/// without the others (queued by the leader).
///
/// # Safety
/// Collective over the control communicator, after [`spawn_all`].
unsafe fn transfer(
    b: &Batch,
    spawned: &Spawned,
    flush: &mut dyn FnMut(),
    spawn_us: u64,
) -> Transferred {
    let mut verdict = Verdict::Lost;
    if let Some(i) = b.mine() {
        let host = b.host_of(i);
        let hello: [c_int; 2] = [b.rank, b.size];
        // SAFETY: two integers to the replacement, just spawned (a short
        // message: it leaves at once, the replacement alive or not).
        unsafe {
            PMPI_Send(
                hello.as_ptr() as *const c_void,
                2,
                k::MPI_INT(),
                i as c_int,
                TAG_HELLO,
                spawned.inter,
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
                comm: spawned.inter,
                rank: i as c_int,
            },
            b.rank,
            b.size,
            level,
        );
        verdict = match outcome {
            crate::ops::image::capture::Outcome::Resumed => {
                // SAFETY: this is the replacement, right after the jump.
                return Transferred::Resumed(unsafe { resumed(b, i, spawn_us) });
            }
            crate::ops::image::capture::Outcome::Written(stats) => {
                log::info!(
                    "rank {}: image of {:.1} MiB sent to the replacement in {:.1} ms",
                    b.rank,
                    stats.image_bytes as f64 / (1 << 20) as f64,
                    stats.micros as f64 / 1e3
                );
                // SAFETY: the spawn's live intercommunicator.
                match unsafe {
                    await_ack(
                        spawned.inter,
                        i as c_int,
                        crate::ops::image::stream::timeout(),
                    )
                } {
                    Ok(v) => v,
                    Err(e) => {
                        refused(
                            b.rank,
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
                    b.rank,
                    &format!("cannot send the image: {e}; the replacement is given up"),
                    &format!(" to {host}"),
                );
                Verdict::Lost
            }
        };
        if verdict == Verdict::NoGo {
            refused(
                b.rank,
                "the replacement could not take the image",
                &format!(" to {host}"),
            );
        }
    }
    // Every old process learns each verdict (the replacements too, unless
    // lost).
    // SAFETY: collective over the control communicator.
    let each: Vec<Verdict> = unsafe { b.share(verdict as u64) }
        .into_iter()
        .map(Verdict::from_word)
        .collect();
    let whole = batch_verdict(&each);
    if let Some(i) = b.mine() {
        if verdict != Verdict::Lost {
            let word = whole as u64;
            // SAFETY: one integer to the replacement, which answered and
            // waits for it (a short message).
            unsafe {
                PMPI_Send(
                    &word as *const u64 as *const c_void,
                    1,
                    k::MPI_UINT64_T(),
                    i as c_int,
                    TAG_VERDICT,
                    spawned.inter,
                )
            };
        }
        if whole != Verdict::Go {
            crate::core::moves::counted(false);
            if verdict == Verdict::Go {
                say(&format!(
                    "migration of rank {} waits: another rank of its synchronization could not \
                     move; it is tried again without it",
                    b.rank
                ));
            }
        }
    }
    if whole != Verdict::Go {
        let again: Vec<Target> = b
            .targets
            .iter()
            .zip(&each)
            .filter(|(_, v)| **v == Verdict::Go)
            .map(|(t, _)| t.clone())
            .collect();
        // (smaller than the batch: this ends)
        if !again.is_empty() && again.len() < b.targets.len() {
            if let Ok(mut r) = RETRIED.lock() {
                *r = again.iter().map(|t| t.rank).collect();
            }
            if b.rank == b.leader {
                requeue_first(again);
            }
        }
    }
    Transferred::Verdict(whole)
}

/// The ranks of the last batch that are tried again (not refused: the
/// event of the regroup does not count them as such).
static RETRIED: Mutex<Vec<c_int>> = Mutex::new(Vec::new());

/// The ranks the last migration queued again (see [`transfer`]).
pub fn retried() -> Vec<c_int> {
    RETRIED.lock().map(|r| r.clone()).unwrap_or_default()
}

/// How a batch's transfers went, from each one's: it goes on only if
/// every replacement has its image; a replacement lost makes them all
/// given up without a word (the spawn's communicator cannot be
/// disconnected without it); otherwise they are disconnected cleanly.
fn batch_verdict(each: &[Verdict]) -> Verdict {
    if each.iter().all(|v| *v == Verdict::Go) {
        Verdict::Go
    } else if each.contains(&Verdict::Lost) {
        Verdict::Lost
    } else {
        Verdict::NoGo
    }
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

/// The leaving process waits for the answer of its replacement (`peer`
/// on `spawned`), at most `timeout`.
unsafe fn await_ack(spawned: MPI_Comm, peer: c_int, timeout: Duration) -> Result<Verdict, String> {
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
            peer,
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

/// The spawn of every replacement of `b`, over `comm` rooted at `root`
/// (`me`: this process's rank in `comm`): each leaving process gives its
/// command (its program, the arguments of a replacement and its host) to
/// the root, which starts them all with one `MPI_Comm_spawn_multiple`.
/// What it made (maybe null) and what went wrong here, if anything (the
/// caller frees what was made when the spawn failed anywhere).
///
/// # Safety
/// Collective over `comm`; the leaving processes are in it.
unsafe fn spawn(b: &Batch, comm: MPI_Comm, root: c_int, me: c_int) -> (MPI_Comm, Option<String>) {
    let n = b.targets.len();
    // This process's command: NUL-separated program, arguments, and the
    // host last (empty unless it leaves).
    let mut mine: Vec<u8> = Vec::new();
    if let Some(i) = b.mine() {
        let exe = std::fs::read_link("/proc/self/exe")
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let fds: Vec<String> = crate::mem::files::capture()
            .map(|v| v.iter().map(|r| r.fd.to_string()).collect())
            .unwrap_or_default();
        let words: Vec<String> = [
            exe,
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
            // Where its hello and image come from: this process.
            format!("from={me}"),
        ]
        .into_iter()
        // The libraries the program opened: the replacement opens them
        // again before its MPI_Init, while their places are still free.
        .chain(crate::mem::opened::spawn_arguments())
        .chain(std::iter::once(b.host_of(i)))
        .collect();
        for w in words {
            mine.extend(w.bytes().filter(|&c| c != 0));
            mine.push(0);
        }
    }
    let is_root = me == root;
    // SAFETY: collective over `comm` (contract of the function).
    let gathered = match unsafe { collective::gatherv_bytes(comm, &mine, root) } {
        Ok(g) => g,
        Err(rc) => {
            return (
                k::MPI_COMM_NULL(),
                Some(format!(
                    "gathering the commands failed: {}",
                    error_string(rc)
                )),
            )
        }
    };
    // At the root: each command, in the order of the ranks in `comm` (the
    // leaving processes' order: the targets').
    let commands: Vec<Vec<CString>> = gathered
        .iter()
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            piece
                .strip_suffix(&[0])
                .unwrap_or(piece)
                .split(|&c| c == 0)
                .filter_map(|w| CString::new(w).ok())
                .collect()
        })
        .collect();
    let mut inter = k::MPI_COMM_NULL();
    let mut errcodes = vec![k::MPI_SUCCESS(); n];
    let rc = if is_root {
        if commands.len() != n || commands.iter().any(|c| c.len() < 3) {
            return (
                inter,
                Some(format!(
                    "the spawn's root got {} commands for {n} ranks",
                    commands.len()
                )),
            );
        }
        // Program, argument vector (NULL-ended) and info (its host) of
        // each replacement.
        let mut programs: Vec<*mut c_char> = Vec::with_capacity(n);
        let mut argvs: Vec<Vec<*mut c_char>> = Vec::with_capacity(n);
        let mut infos = Vec::with_capacity(n);
        for c in &commands {
            let (host, rest) = c.split_last().expect("at least three words");
            programs.push(rest[0].as_ptr() as *mut c_char);
            let mut argv: Vec<*mut c_char> = rest[1..]
                .iter()
                .map(|a| a.as_ptr() as *mut c_char)
                .collect();
            argv.push(std::ptr::null_mut());
            argvs.push(argv);
            let mut info = k::MPI_INFO_NULL();
            // SAFETY: an info object of ours, freed below.
            unsafe {
                PMPI_Info_create(&mut info);
                PMPI_Info_set(info, c"host".as_ptr(), host.as_ptr());
            }
            infos.push(info);
        }
        let mut argv_ptrs: Vec<*mut *mut c_char> =
            argvs.iter_mut().map(|a| a.as_mut_ptr()).collect();
        let maxprocs = vec![1 as c_int; n];
        // SAFETY: every pointer lives until the call returns.
        let rc = unsafe {
            PMPI_Comm_spawn_multiple(
                n as c_int,
                programs.as_mut_ptr(),
                argv_ptrs.as_mut_ptr(),
                maxprocs.as_ptr(),
                infos.as_ptr(),
                root,
                comm,
                &mut inter,
                errcodes.as_mut_ptr(),
            )
        };
        for mut info in infos {
            // SAFETY: ours, from above.
            unsafe { PMPI_Info_free(&mut info) };
        }
        rc
    } else {
        // SAFETY: the arguments of processes other than the root are
        // ignored by MPI.
        unsafe {
            PMPI_Comm_spawn_multiple(
                n as c_int,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
                root,
                comm,
                &mut inter,
                errcodes.as_mut_ptr(),
            )
        }
    };
    let rc = if rc == k::MPI_SUCCESS() && is_root {
        errcodes
            .iter()
            .copied()
            .find(|&e| e != k::MPI_SUCCESS())
            .unwrap_or(rc)
    } else {
        rc
    };
    let failure = (rc != k::MPI_SUCCESS() || inter == k::MPI_COMM_NULL())
        .then(|| format!("MPI_Comm_spawn_multiple failed: {}", error_string(rc)));
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
            links::TAG_FINISH,
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
    links::finish_predecessor();
    links::disconnect_all();
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
    if rank_pid > 0 && rank_host == links::host_hash() {
        let until = std::time::Instant::now() + Duration::from_secs(600);
        // SAFETY: signal 0 only checks whether the process exists.
        while unsafe { libc::kill(rank_pid, 0) } == 0 && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // SAFETY: ends this process without the program's exit handlers.
    unsafe { libc::_exit(0) }
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

/// The start of a replacement process (in place of `main`, see
/// [`crate::mem::startup`]): MPI, the handshake with the migrating
/// rank, the new world, the image, the jump. Returns an exit status when
/// it cannot go on (the migration is then undone by everyone).
pub fn replacement_main(args: &[String]) -> i32 {
    let started = crate::ops::image::restore::now_us();
    let mut level = 0;
    let mut fds: Vec<c_int> = Vec::new();
    let mut from: c_int = 0;
    for a in args {
        if let Some(v) = a.strip_prefix("level=") {
            level = v.parse().unwrap_or(0);
        } else if let Some(v) = a.strip_prefix("fds=") {
            fds = v.split(',').filter_map(|f| f.parse().ok()).collect();
        } else if let Some(v) = a.strip_prefix("from=") {
            from = v.parse().unwrap_or(0);
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
    match unsafe { join(started, init_us, from) } {
        Ok(never) => match never {},
        Err(e) => {
            crate::mem::startup::early_warn(&format!("replacement: {e}"));
            // SAFETY: MPI is up; the parents undid the migration.
            unsafe { PMPI_Finalize() };
            0
        }
    }
}

/// The replacement's side of the handshake, transfer, verdict and group;
/// `leaving`: the leaving process's rank among the spawning ones (its
/// `from=` argument). `Err`: the migration was refused and this process
/// is disconnected from the job (it finalizes); a replacement cut off
/// from the leaving process, or given up with the others of its batch,
/// ends on its own ([`cut_off`]).
unsafe fn join(
    started: u64,
    init_us: u64,
    leaving: c_int,
) -> Result<std::convert::Infallible, String> {
    let mut spawned = k::MPI_COMM_NULL();
    let timeout = crate::ops::image::stream::timeout();
    // SAFETY: MPI is up.
    unsafe { PMPI_Comm_get_parent(&mut spawned) };
    if spawned == k::MPI_COMM_NULL() {
        return Err("started without a parent job (not by ferry)".into());
    }
    // SAFETY: the parent intercommunicator.
    unsafe { PMPI_Comm_set_errhandler(spawned, k::MPI_ERRORS_RETURN()) };
    let mut hello: [c_int; 2] = [0; 2];
    // SAFETY: a bounded receive of two integers into a local that outlives
    // it unless it is given up, and then this process ends.
    if let Err(e) = unsafe {
        crate::ops::image::stream::receive_bounded(
            spawned,
            hello.as_mut_ptr() as *mut c_void,
            2,
            k::MPI_INT(),
            leaving,
            TAG_HELLO,
            timeout,
        )
    } {
        cut_off(&format!("no word from the leaving process ({e})"));
    }
    let [rank, _size] = hello;
    crate::sys::logging::set_rank(rank);
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
        // Another replacement of the batch is lost: the spawn's
        // communicator cannot be disconnected; the parents free it.
        (_, Verdict::Lost) => cut_off("the migration was given up by the job"),
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
            // Through the leaving processes (see `new_group`): the
            // replacements of the batch are this process's world.
            let mut pair = k::MPI_COMM_NULL();
            PMPI_Intercomm_merge(spawned, 1, &mut pair);
            PMPI_Intercomm_create(k::MPI_COMM_WORLD(), 0, pair, 0, TAG_JOIN, &mut parent);
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
