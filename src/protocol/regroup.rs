//! The regroup: the patent's dynamic group synchronization run end to end
//! with the same processes (Figs. 5, 7, 9). A migration (issue 5) is this
//! plus a replacement process.
//!
//! The phases, in order, each under its own name:
//!
//! 1. **Request.** A SPEC's call count, a signal (`SIGUSR2`, see
//!    [`SIGNAL`]) or the C API queue a request in the asking process. It
//!    takes the lead with a remote compare-and-swap on world rank 0's window
//!    ([`try_lead`]); while another process leads, the request stays queued.
//! 2. **Notify (MIG_CMD).** The leader puts the command into every process's
//!    window; the next MPI call of each notices it with the comparison every
//!    call makes anyway (`next_event` is put to 0 with it).
//! 3. **Collective synchronization.** The leader reads every window
//!    (supersteps by communicator id), sends the targets over the control
//!    communicator, and keeps reading and releasing until every member of
//!    every communicator stands at its target ([`crate::protocol::sync`]). Processes
//!    run on meanwhile, point-to-point traffic included; at a collective
//!    beyond its target a process stops ([`at_collective`]).
//! 4. **Point-to-point synchronization (MIG_WAKE, MIG_END).** The leader
//!    sends FREEZE: blocked operations leave their wait (their request is
//!    cancelled, to be repeated afterwards), running processes stop at their
//!    next call, stopped ones move on, all into [`now`].
//! 5. **Drain** ([`crate::protocol::drain`]): every channel on every communicator is
//!    emptied by sent/received counts into a queue served first afterwards.
//! 6. **New group** ([`crate::protocol::membership`]): a new world, every derived
//!    communicator rebuilt in the order of their global ids, pending requests reposted.
//! 7. **Resume**, and the leader writes the event log line.
use crate::core::state::{offsets, state, Status};
use crate::protocol::onesided::Epoch;
use crate::protocol::sync::{self, Decision, Gid, Targets, View};
use crate::sys::constants as k;
use crate::sys::nap::Backoff;
use crate::sys::*;
use std::cell::UnsafeCell;
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The signal that asks a process to start a regroup.
pub const SIGNAL: c_int = libc::SIGUSR2;

/// The assertion of the library's shared epochs on the state windows.
/// MPICH: `MPI_MODE_NOCHECK` (no process ever takes a conflicting lock on
/// them there: the lead is taken with an atomic), so that no lock has to be
/// granted by a target busy elsewhere. Open MPI takes the lead under an
/// exclusive lock, so its shared epochs keep the check
/// (`quirks::COMPARE_AND_SWAP_ON_SELF_CRASHES`).
#[cfg(ferry_mpi = "mpich")]
const LOCK_ALL_ASSERT: c_int = k::MPI_MODE_NOCHECK();
#[cfg(not(ferry_mpi = "mpich"))]
const LOCK_ALL_ASSERT: c_int = 0;

/// The tag of the leader's messages on the control communicator.
const TAG_CTRL: c_int = 31_337;
/// Messages: `[kind, epoch, ...]`.
/// The leader's targets: `[.., gid, target, gid, target, ...]`.
const MSG_TARGETS: u64 = 1;
/// The leader's FREEZE (MIG_WAKE + MIG_END): everybody stops and drains.
const MSG_FREEZE: u64 = 2;
/// A member raised a communicator's target to pass a collective it must
/// pass: `[.., gid, target]` (sent to the other members and the leader).
const MSG_RAISE: u64 = 3;
/// A process blocked, behind its targets, asks the process it waits on to
/// pass the collective it stopped at.
const MSG_PASS: u64 = 4;

/// Requests queued in this process (SPEC, signal, API) not yet led.
static QUEUED: AtomicU64 = AtomicU64::new(0);
/// Signals received and not yet queued (the handler only counts).
static SIGNALLED: AtomicU64 = AtomicU64::new(0);
/// Set once `MPI_Finalize` began: requests are no longer taken.
static CLOSED: AtomicBool = AtomicBool::new(false);

/// A regroup this process has noticed and takes part in.
struct Regroup {
    epoch: u64,
    leader: c_int,
    /// The targets as this process knows them (merged by maximum: targets
    /// only grow), once the leader's first ones arrived.
    targets: Option<Targets>,
    freeze: bool,
    /// Somebody blocked on this process asked it to pass.
    pass: bool,
    /// When this process last asked others to pass.
    asked: Option<Instant>,
    coordinator: Option<Coordinator>,
    /// This process's own messages on their way.
    outbox: Vec<(MPI_Request, Box<[u64]>)>,
    /// The raise this process asked the leader for (communicator, count).
    raising: Option<(Gid, u64)>,
}

impl Regroup {
    fn new(epoch: u64, leader: c_int) -> Regroup {
        Regroup {
            epoch,
            leader,
            targets: None,
            freeze: false,
            pass: false,
            asked: None,
            coordinator: None,
            outbox: Vec::new(),
            raising: None,
        }
    }

    fn merge(&mut self, pairs: &[u64]) {
        let t = self.targets.get_or_insert_with(Targets::new);
        for p in pairs.chunks_exact(2) {
            let e = t.entry(p[0]).or_insert(0);
            *e = (*e).max(p[1]);
        }
    }

    /// Whether some communicator of this process is below its target.
    fn behind(&self) -> bool {
        let Some(t) = &self.targets else { return false };
        let used = state().used_slots.load(Ordering::Relaxed) as usize;
        (0..used.min(crate::core::state::MAX_COMMS)).any(|i| {
            let g = state().gids[i].load(Ordering::Relaxed);
            g != 0
                && state().supersteps[i].load(Ordering::Relaxed) < t.get(&g).copied().unwrap_or(0)
        })
    }
}

/// Sends a small message on the control communicator, kept until it is
/// delivered (`outbox`).
fn post(outbox: &mut Vec<(MPI_Request, Box<[u64]>)>, to: c_int, body: &[u64]) {
    let Some((control, _, _, _)) = channel() else {
        return;
    };
    let buf: Box<[u64]> = body.into();
    let mut req = k::MPI_REQUEST_NULL();
    // SAFETY: the buffer is kept in the outbox until the send completes.
    unsafe {
        PMPI_Isend(
            buf.as_ptr() as *const c_void,
            buf.len() as c_int,
            k::MPI_UINT64_T(),
            to,
            TAG_CTRL,
            control,
            &mut req,
        )
    };
    outbox.push((req, buf));
}

/// Completes what has been delivered.
fn flush(outbox: &mut Vec<(MPI_Request, Box<[u64]>)>, wait: bool) {
    outbox.retain_mut(|(req, _)| {
        let mut flag: c_int = 0;
        // SAFETY: a live Isend request of ours.
        unsafe {
            if wait {
                PMPI_Wait(req, k::MPI_STATUS_IGNORE());
                flag = 1;
            } else {
                PMPI_Test(req, &mut flag, k::MPI_STATUS_IGNORE());
            }
        }
        flag == 0
    });
}

/// Asks for the target of `slot`'s communicator to be raised to `k`, so
/// that this process may pass its `k`-th collective there (and the other
/// members come too). Every target comes from the leader: a member asks it
/// and waits for its new targets (or FREEZE, if the leader froze the job
/// first — then nobody passes, and nobody is left inside a collective the
/// others will not enter). The leader raises its own at once, unless it
/// already froze.
fn raise(x: &mut Regroup, slot: usize, gid: Gid, k: u64) {
    if x.raising.is_some_and(|r| r >= (gid, k)) {
        return;
    }
    x.raising = Some((gid, k));
    if let Some(c) = x.coordinator.as_mut() {
        if c.frozen {
            return;
        }
        let e = c.targets.entry(gid).or_insert(0);
        *e = (*e).max(k);
        send_all(c, MSG_TARGETS);
        x.merge(&[gid, k]);
        log::debug!("passing collective {k} on slot {slot}: target raised");
        return;
    }
    let body = [MSG_RAISE, x.epoch, gid, k];
    let leader = x.leader;
    post(&mut x.outbox, leader, &body);
    log::debug!("collective {k} on slot {slot}: asking the leader to raise its target");
}

struct Cell(UnsafeCell<Option<Regroup>>);
// SAFETY: only touched from the program's MPI calls, which MPI serializes
// below MPI_THREAD_MULTIPLE (the protocol is not run under MULTIPLE).
unsafe impl std::marker::Sync for Cell {}
static SYNC: Cell = Cell(UnsafeCell::new(None));

/// Runs `f` with this process's state of the running synchronization
/// (scoped: no reference outlives `f`; `f` does not reach it again, nor
/// call what does: `poll`, `coordinate`, `now`).
fn with_sync<R>(f: impl FnOnce(&mut Option<Regroup>) -> R) -> R {
    // SAFETY: see `Cell`; the reference lives for the call of `f` only,
    // and no caller of this function calls it from inside `f`.
    f(unsafe { &mut *SYNC.0.get() })
}

/// Queues a regroup request from this process; it starts at its next MPI
/// call. Async-signal-safe (atomic stores only).
pub fn request() {
    QUEUED.fetch_add(1, Ordering::SeqCst);
    state().next_event.store(0, Ordering::SeqCst);
}

/// Open access or exposure epochs of the program's RMA windows.
static EPOCHS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// The program opened an epoch on one of its windows (`MPI_Win_lock`, ...).
pub fn epoch_opened() {
    EPOCHS.fetch_add(1, Ordering::Relaxed);
}

/// The program closed one (`MPI_Win_unlock`, ...).
pub fn epoch_closed() {
    let _ = EPOCHS.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
}

/// Whether this process may freeze where it is, at a call boundary or in a
/// blocking wait: not inside an epoch of its own windows, where peers may
/// be waiting inside MPI (in `MPI_Win_lock`, ...) for it to go on.
pub fn may_freeze_here() -> bool {
    EPOCHS.load(Ordering::Relaxed) == 0
}

/// Whether the library can run a regroup (after `MPI_Init`, with a window).
pub fn ready() -> bool {
    channel().is_some()
}

/// Whether `MPI_Finalize` has begun.
pub fn closed() -> bool {
    CLOSED.load(Ordering::Relaxed)
}

/// Requests queued and not yet started.
pub fn queued() -> u64 {
    QUEUED.load(Ordering::Relaxed) + SIGNALLED.load(Ordering::Relaxed)
}

/// Regroups this process went through.
pub fn completed() -> u64 {
    state().regroups.load(Ordering::Relaxed)
}

extern "C" fn on_signal(_sig: c_int) {
    // Async-signal-safe: two atomic operations.
    SIGNALLED.fetch_add(1, Ordering::SeqCst);
    state().next_event.store(0, Ordering::SeqCst);
}

/// Installs the signal handler unless the program has one of its own.
pub fn install_signal() {
    // SAFETY: plain libc calls with locally owned structures; the handler
    // only performs atomic stores.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(SIGNAL, std::ptr::null(), &mut old) != 0 {
            return;
        }
        if old.sa_sigaction != libc::SIG_DFL {
            log::info!("the program handles SIGUSR2 itself: regroup by signal disabled");
            return;
        }
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as extern "C" fn(c_int) as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(SIGNAL, &sa, std::ptr::null_mut());
    }
}

/// The control communicator and window, if the library is running.
fn channel() -> Option<(MPI_Comm, MPI_Win, c_int, c_int)> {
    let rt = crate::core::runtime::runtime()?;
    (rt.window != k::MPI_WIN_NULL()).then_some((
        rt.control,
        rt.window,
        rt.world_rank,
        rt.world_size,
    ))
}

/// What `after_tick` does while a request is queued or a command pending:
/// joins the synchronization, or tries to lead one. `safe`: the process is
/// at a call boundary, where it may freeze.
pub fn service() {
    let signals = SIGNALLED.swap(0, Ordering::SeqCst);
    // A signal brings the requests `ferry migrate` left in the job
    // directory; without any, it asks for a regroup.
    if signals > 0 && crate::core::upcalls::upcalls().external_requests() == 0 {
        log::info!("regroup asked for by signal (SIGUSR2, {signals} received)");
        QUEUED.fetch_add(signals, Ordering::SeqCst);
    }
    if !ready() {
        // No state window any more: what was asked for cannot run.
        if QUEUED.swap(0, Ordering::SeqCst) > 0 {
            crate::core::upcalls::upcalls().refuse_queued();
        }
        return;
    }
    if state().command.load(Ordering::SeqCst) != 0 {
        if poll(true) && may_freeze_here() {
            now();
        }
        return;
    }
    if QUEUED.load(Ordering::Relaxed) > 0 && !CLOSED.load(Ordering::Relaxed) && try_lead() {
        QUEUED.fetch_sub(1, Ordering::SeqCst);
        if poll(true) && may_freeze_here() {
            now();
        }
    }
}

/// The `next_event` a process returns to after a regroup.
fn restore_next_event() {
    let next = if queued() > 0 {
        0
    } else {
        crate::protocol::schedule::next_scheduled()
    };
    state().next_event.store(next, Ordering::SeqCst);
    // A command put meanwhile must not be hidden by this store.
    if state().command.load(Ordering::SeqCst) != 0 {
        state().next_event.store(0, Ordering::SeqCst);
    }
}

/// Takes part in the synchronization in progress: receives the leader's
/// targets and FREEZE, and coordinates when this process leads. Returns
/// whether FREEZE has arrived (the caller freezes at its next safe point).
pub fn poll(_safe: bool) -> bool {
    let Some((control, _, _, _)) = channel() else {
        return false;
    };
    let epoch = state().command.load(Ordering::SeqCst);
    if epoch == 0 {
        return false;
    }
    with_sync(|sy| {
        if sy.as_ref().is_none_or(|x| x.epoch != epoch) {
            let leader = state().command_leader.load(Ordering::SeqCst) as c_int;
            log::debug!("regroup {epoch}: command noticed (leader {leader})");
            *sy = Some(Regroup::new(epoch, leader));
        }
    });
    coordinate();
    with_sync(|sy| sy.as_mut().is_some_and(|x| receive_control(control, x)))
}

/// The control messages that arrived for this process (targets, raises,
/// FREEZE, PASS), merged into `x`; whether FREEZE has arrived.
fn receive_control(control: MPI_Comm, x: &mut Regroup) -> bool {
    flush(&mut x.outbox, false);
    // Messages from the leader and the other members, in the order each
    // sent them; those of an earlier regroup are stale.
    loop {
        let mut flag: c_int = 0;
        let mut st = std::mem::MaybeUninit::<MPI_Status>::uninit();
        // SAFETY: control is our private communicator; outputs are locals.
        unsafe {
            PMPI_Iprobe(
                k::MPI_ANY_SOURCE(),
                TAG_CTRL,
                control,
                &mut flag,
                st.as_mut_ptr(),
            )
        };
        if flag == 0 {
            break;
        }
        let mut n: c_int = 0;
        // SAFETY: MPI filled the status.
        let from = unsafe {
            PMPI_Get_count(st.as_ptr(), k::MPI_UINT64_T(), &mut n);
            st.assume_init_ref().MPI_SOURCE
        };
        let mut msg = vec![0u64; n.max(0) as usize];
        // SAFETY: the buffer holds n u64s.
        unsafe {
            PMPI_Recv(
                msg.as_mut_ptr() as *mut c_void,
                n,
                k::MPI_UINT64_T(),
                from,
                TAG_CTRL,
                control,
                k::MPI_STATUS_IGNORE(),
            )
        };
        if msg.len() < 2 || msg[1] != x.epoch {
            continue;
        }
        match msg[0] {
            MSG_TARGETS => x.merge(&msg[2..]),
            // A member asks the leader (this process) to raise a target;
            // once the leader froze the job, nobody passes any more (the
            // member gets FREEZE): the leader must not either.
            MSG_RAISE if x.coordinator.as_ref().is_some_and(|c| !c.frozen) => x.merge(&msg[2..]),
            MSG_RAISE => {}
            MSG_FREEZE => x.freeze = true,
            MSG_PASS => x.pass = true,
            _ => log::warn!("unexpected control message {msg:?} from rank {from}"),
        }
    }
    x.freeze
}

/// A process blocked in a point-to-point wait while a regroup runs: if it
/// is behind its targets and has waited a while, it asks the process it
/// waits on (everybody, when that is not one process) to pass the
/// collective it may have stopped at: what it waits for may come after it.
pub fn nudge(world: i32, blocked_since: Instant) {
    with_sync(|sy| {
        if let Some(x) = sy.as_mut() {
            ask_to_pass(x, world, blocked_since)
        }
    })
}

fn ask_to_pass(x: &mut Regroup, world: i32, blocked_since: Instant) {
    if blocked_since.elapsed() < Duration::from_millis(2)
        || x.asked
            .is_some_and(|t| t.elapsed() < Duration::from_millis(10))
        || !x.behind()
    {
        return;
    }
    x.asked = Some(Instant::now());
    let body = [MSG_PASS, x.epoch];
    let me = crate::core::runtime::runtime()
        .map(|r| r.world_rank)
        .unwrap_or(-1);
    let size = crate::core::runtime::runtime()
        .map(|r| r.world_size)
        .unwrap_or(0);
    let to: Vec<c_int> = if world >= 0 {
        vec![world]
    } else {
        (0..size).collect()
    };
    for r in to.into_iter().filter(|&r| r != me) {
        post(&mut x.outbox, r, &body);
    }
    log::debug!("blocked behind the targets: asking rank {world} to pass");
}

/// A process entered its `k`-th collective on `slot` and saw a command:
/// waits for the targets, then enters if the collective is within its
/// target, or stops in front of it until released or frozen. Returns
/// whether the job moved to new communicators meanwhile.
pub fn at_collective(slot: usize, k: u64) -> bool {
    let gid: Gid = state().gids[slot].load(Ordering::Relaxed);
    if gid == 0 || channel().is_none() {
        return false;
    }
    // A group collective counted with this one (`superstep::count_companion`).
    let companion = companion_of(slot, channel().map(|c| c.3).unwrap_or(0));
    // Until the synchronization says it may enter, the collective is not
    // entered: take the count back (and the companion's), so that the
    // initiator's readings show this process in front of it, not inside.
    state().stop_slot.store(slot as u32, Ordering::Relaxed);
    if let Some(c) = &companion {
        state().supersteps[c.slot].store(c.k - 1, Ordering::Relaxed);
    }
    state().supersteps[slot].swap(k - 1, Ordering::SeqCst);
    state().set_status(Status::Stopped);
    let mut regrouped = false;
    let mut told = false;
    let mut idle = Backoff::default();
    loop {
        if state().command.load(Ordering::SeqCst) == 0 {
            break;
        }
        let freeze = poll(false);
        let step = with_sync(|sy| {
            let x = sy.as_mut()?;
            let leading = x.coordinator.is_some();
            let target = x
                .targets
                .as_ref()
                .map(|t| t.get(&gid).copied().unwrap_or(0));
            if let Some(t) = target {
                let allowed = sync::may_enter(k, t);
                let known = x.targets.as_ref();
                if allowed
                    && x.coordinator.as_mut().is_none_or(|c| {
                        c.may_enter(gid, k, companion.as_ref()) && c.announce(known)
                    })
                {
                    return None;
                }
                if !allowed && !freeze && (x.pass || x.behind()) {
                    // It cannot catch up elsewhere, or somebody waits for
                    // what it does after this collective: it must pass.
                    x.pass = false;
                    raise(x, slot, gid, k);
                }
                if !told {
                    told = true;
                    if allowed {
                        log::debug!("leading: collective {k} on slot {slot} waits for its members");
                    } else {
                        log::debug!("stopped before collective {k} on slot {slot} (target {t})");
                    }
                }
            }
            Some(leading)
        });
        // (`None`: no synchronization any more, or it may enter)
        let Some(leading) = step else {
            break;
        };
        if freeze {
            now();
            regrouped = true;
            // `now` reset the status; this process is still in front of
            // the collective, and a next regroup may already be asked for.
            state().stop_slot.store(slot as u32, Ordering::Relaxed);
            state().set_status(Status::Stopped);
            told = false;
            continue;
        }
        idle.pause(leading);
    }
    if let Some(c) = &companion {
        state().supersteps[c.slot].store(c.k, Ordering::Relaxed);
    }
    state().supersteps[slot].swap(k, Ordering::SeqCst);
    state().set_status(Status::Running);
    regrouped
}

/// A group collective counted with a collective (see
/// `superstep::count_companion`): its slot, id, this call's count there,
/// and its members.
struct Companion {
    slot: usize,
    gid: Gid,
    k: u64,
    members: Vec<u32>,
}

/// The group collective this process published (`group_slot`), if it is
/// not `slot` itself: the companion of the collective on `slot`.
fn companion_of(slot: usize, size: c_int) -> Option<Companion> {
    let st = state();
    let g = st.group_slot.load(Ordering::Acquire) as usize;
    if g == 0 || g - 1 == slot {
        return None;
    }
    let gid = st.gids[g - 1].load(Ordering::Relaxed);
    Some(Companion {
        slot: g - 1,
        gid,
        k: st.supersteps[g - 1].load(Ordering::Relaxed),
        members: own_members(size),
    })
}

/// The members this process published for its group collective.
fn own_members(size: c_int) -> Vec<u32> {
    let words = (size.max(0) as usize)
        .div_ceil(64)
        .min(crate::core::state::GROUP_WORDS);
    let bits: Vec<u64> = state().group_members[..words]
        .iter()
        .map(|w| w.load(Ordering::Relaxed))
        .collect();
    sync::bitmap_ranks(&bits)
}

// ---------------------------------------------------------------------------
// Leading.

/// The leader's side of one regroup.
struct Coordinator {
    epoch: u64,
    started: Instant,
    notified: Option<Instant>,
    synced: Option<Instant>,
    targets: Targets,
    previous: Vec<View>,
    last_read: Option<Instant>,
    frozen: bool,
    readings: u64,
    releases: u64,
    /// Since when the readings show nobody able to move ([`sync::stuck`]).
    stuck_since: Option<Instant>,
    /// Messages on their way (Isend requests and their buffers).
    outbox: Vec<(MPI_Request, Box<[u64]>)>,
}

/// How long the leader waits in front of a collective its target allows
/// while nothing moves at all, before it enters anyway (a last resort:
/// [`sync::leader_may_enter`] covers the cases known to need it).
const LEADER_PATIENCE: Duration = Duration::from_secs(1);

impl Coordinator {
    /// Takes the targets the leader knows (its own raises, and those
    /// members asked for) as its own; whether any grew.
    fn adopt(&mut self, known: Option<&Targets>) -> bool {
        let mut grown = false;
        for (g, v) in known.into_iter().flatten() {
            let e = self.targets.entry(*g).or_insert(0);
            if *v > *e {
                *e = *v;
                grown = true;
            }
        }
        grown
    }

    /// Before the leader enters a collective: every target it knows has
    /// gone to the members, so that one stopped in front of the same
    /// collective comes too (a member's RAISE merged in this very round
    /// would otherwise be answered only after the leader's collective,
    /// which waits for that member: a deadlock seen in `migrate.c`, 1 run
    /// in ~70). False once the job is frozen: then nobody enters.
    fn announce(&mut self, known: Option<&Targets>) -> bool {
        if self.frozen {
            return false;
        }
        if self.adopt(known) {
            self.releases += 1;
            log::debug!(
                "regroup: targets raised to {:?} before the leader enters",
                self.targets
            );
            send_all(self, MSG_TARGETS);
        }
        true
    }

    /// Whether the leader may enter its `k`-th collective on `gid` now
    /// ([`sync::leader_may_enter`] on its latest reading).
    fn may_enter(&self, gid: Gid, k: u64, companion: Option<&Companion>) -> bool {
        let (me, size) = channel().map(|c| (c.2, c.3)).unwrap_or((0, 0));
        let me = me.max(0) as usize;
        // Entering commits the leader to the companion too: its other
        // members must be there (or it would wait inside for them).
        if let Some(c) = companion {
            if !sync::leader_may_enter_group(&self.previous, me, c.gid, c.k, &c.members) {
                return false;
            }
        }
        match own_group(gid, size) {
            // (no last resort here: alone inside, the leader would wait
            // for members that wait for its targets)
            Some(members) => sync::leader_may_enter_group(&self.previous, me, gid, k, &members),
            None => {
                sync::leader_may_enter(&self.previous, me, gid, k)
                    || self
                        .stuck_since
                        .is_some_and(|t| t.elapsed() >= LEADER_PATIENCE)
            }
        }
    }
}

/// The members (world ranks) of the group collective `gid`, if this
/// process stands at one (`core::comms::group_collective`).
fn own_group(gid: Gid, size: c_int) -> Option<Vec<u32>> {
    let st = state();
    let slot = st.group_slot.load(Ordering::Acquire) as usize;
    if slot == 0 || st.gids[slot - 1].load(Ordering::Relaxed) != gid {
        return None;
    }
    Some(own_members(size))
}

/// Compare-and-swap of world rank 0's `leader` from 0 to `me`; returns
/// what was there (`None`: MPI failed to tell). MPICH: a compare-and-swap in a shared epoch
/// (`MPI_Win_lock_all`, which on a node reaches the window without waiting
/// for rank 0 to make progress, unlike `MPI_Win_lock`).
#[cfg(ferry_mpi = "mpich")]
fn take_lead(win: MPI_Win, me: u64) -> Option<u64> {
    // (`leader` holds 0 or a world rank + 1, never u64::MAX)
    Epoch::all(win, LOCK_ALL_ASSERT).compare_and_swap(
        0,
        offsets::LEADER as MPI_Aint,
        me,
        0,
        u64::MAX,
    )
}

/// Open MPI: an exclusive lock epoch makes the read and the write one step
/// (not `MPI_Compare_and_swap`: Debian's Open MPI 4.1.4 crashes in its
/// emulated atomics when rank 0 targets itself,
/// `quirks::COMPARE_AND_SWAP_ON_SELF_CRASHES`; its locks are fast).
#[cfg(not(ferry_mpi = "mpich"))]
fn take_lead(win: MPI_Win, me: u64) -> Option<u64> {
    let mine = [me];
    let mut old = [u64::MAX];
    let mut epoch = Epoch::one(win, 0, true);
    epoch.get(0, offsets::LEADER as MPI_Aint, &mut old);
    let mut epoch = epoch.settle();
    if old[0] == 0 {
        epoch.put(0, offsets::LEADER as MPI_Aint, &mine);
    }
    // (u64::MAX: the read did not happen)
    (old[0] != u64::MAX).then_some(old[0])
}

/// Tries to take the lead (compare-and-swap on world rank 0's `leader`),
/// and on success notifies every process.
fn try_lead() -> bool {
    let Some((_, win, rank, size)) = channel() else {
        return false;
    };
    let Some(old) = take_lead(win, rank as u64 + 1) else {
        log::warn!("cannot read who leads (rank 0's window); the request stays queued");
        return false;
    };
    log::trace!("leader lock: found {old}");
    if old != 0 {
        log::debug!("regroup request queued: rank {} leads one", old as i64 - 1);
        return false;
    }
    let started = Instant::now();
    let epoch = completed() + 1;
    log::info!("regroup {epoch}: leading (rank {rank} of {size})");
    // MIG_CMD: command, leader and next_event in one put per process.
    let cmd: [u64; 3] = [epoch, rank as u64, 0];
    {
        let mut e = Epoch::all(win, LOCK_ALL_ASSERT);
        for r in 0..size {
            e.put(r, offsets::COMMAND as MPI_Aint, &cmd);
        }
    }
    std::sync::atomic::fence(Ordering::SeqCst);
    let mut c = Coordinator {
        epoch,
        started,
        notified: Some(Instant::now()),
        synced: None,
        targets: Targets::new(),
        previous: Vec::new(),
        last_read: None,
        frozen: false,
        readings: 0,
        releases: 0,
        stuck_since: None,
        outbox: Vec::new(),
    };
    let views = read_all();
    c.targets = sync::initial_targets(&views);
    c.previous = views;
    c.last_read = Some(Instant::now());
    c.readings = 1;
    send_all(&mut c, MSG_TARGETS);
    let mut x = Regroup::new(epoch, rank);
    x.targets = Some(c.targets.clone());
    x.coordinator = Some(c);
    with_sync(|sy| *sy = Some(x));
    true
}

/// One round of the leader's work, at most every 200 µs: read, decide, and
/// send new targets or FREEZE. A no-op in other processes.
pub fn coordinate() {
    with_sync(|sy| {
        if let Some(x) = sy.as_mut() {
            coordinate_in(x)
        }
    })
}

fn coordinate_in(x: &mut Regroup) {
    let known = x.targets.clone();
    let Some(c) = x.coordinator.as_mut() else {
        return;
    };
    flush(&mut c.outbox, false);
    // Targets members asked to raise to pass a collective count as the
    // leader's, and go to everyone at once (unless the job is frozen:
    // then the members that asked get FREEZE instead, and do not pass).
    if c.adopt(known.as_ref()) && !c.frozen {
        c.releases += 1;
        log::debug!("regroup: targets raised on request to {:?}", c.targets);
        send_all(c, MSG_TARGETS);
    }
    if c.frozen
        || c.last_read
            .is_some_and(|t| t.elapsed() < Duration::from_micros(200))
    {
        return;
    }
    let t_read = Instant::now();
    let views = read_all();
    log::trace!(
        "reading {} took {} us",
        c.readings + 1,
        t_read.elapsed().as_micros()
    );
    c.readings += 1;
    c.last_read = Some(Instant::now());
    let stuck = sync::stuck(&c.previous, &views);
    if !stuck {
        c.stuck_since = None;
    } else if c.stuck_since.is_none() {
        c.stuck_since = Some(Instant::now());
    }
    let mut raised: Option<Vec<u64>> = None;
    match sync::decide(&views, &c.targets, stuck) {
        Decision::Freeze => {
            c.synced = Some(Instant::now());
            c.frozen = true;
            log::debug!(
                "regroup: targets met after {} readings, {} releases: FREEZE",
                c.readings,
                c.releases
            );
            send_all(c, MSG_FREEZE);
        }
        Decision::Release(t) => {
            c.releases += 1;
            log::debug!("regroup: targets raised to {t:?}");
            c.targets = t;
            send_all(c, MSG_TARGETS);
            raised = Some(c.targets.iter().flat_map(|(g, v)| [*g, *v]).collect());
        }
        Decision::Wait => {}
    }
    c.previous = views;
    if let Some(pairs) = raised {
        // The leader knows its own targets at once.
        x.merge(&pairs);
    }
}

/// Sends the targets or FREEZE to every process (itself included).
fn send_all(c: &mut Coordinator, kind: u64) {
    let Some((_, _, _, size)) = channel() else {
        return;
    };
    let mut body = vec![kind, c.epoch];
    if kind == MSG_TARGETS {
        for (g, t) in &c.targets {
            body.push(*g);
            body.push(*t);
        }
    }
    for r in 0..size {
        post(&mut c.outbox, r, &body);
    }
}

/// Reads every process's window: header, then ids and supersteps of the
/// communicator slots it uses.
fn read_all() -> Vec<View> {
    let Some((_, win, _, size)) = channel() else {
        return Vec::new();
    };
    let hb = crate::core::state::HEADER_BYTES;
    let mut headers = vec![0u8; hb * size as usize];
    // (declared before the epoch, which borrows it)
    let mut tables: Vec<(Vec<u64>, Vec<u64>)>;
    let mut members: Vec<Vec<u64>>;
    let mut epoch = Epoch::all(win, LOCK_ALL_ASSERT);
    for (r, h) in headers.chunks_exact_mut(hb).enumerate() {
        epoch.get(r as c_int, 0, h);
    }
    let mut epoch = epoch.settle();
    let hs: Vec<crate::core::state::Header> = headers
        .chunks_exact(hb)
        .map(crate::core::state::Header::from_bytes)
        .collect();
    // Group collectives (`MPI_Comm_create_group`): a process inside one
    // names it in its header and its members in a bitmap, both written
    // before its superstep there. Entered before the command was set, they
    // are seen with the superstep; entered after, the process stopped at
    // the entry (`at_collective`) unless the targets, hence an earlier
    // reading of a member inside, already cover it.
    let words = (size as usize)
        .div_ceil(64)
        .min(crate::core::state::GROUP_WORDS);
    tables = hs
        .iter()
        .map(|h| {
            let u = (h.used_slots as usize).min(crate::core::state::MAX_COMMS);
            (vec![0u64; u], vec![0u64; u])
        })
        .collect();
    members = hs
        .iter()
        .map(|h| vec![0u64; if h.group_slot != 0 { words } else { 0 }])
        .collect();
    for (r, ((g, s), m)) in tables.iter_mut().zip(members.iter_mut()).enumerate() {
        epoch.get(r as c_int, offsets::GIDS as MPI_Aint, g);
        epoch.get(r as c_int, offsets::SUPERSTEPS as MPI_Aint, s);
        epoch.get(r as c_int, offsets::GROUP_MEMBERS as MPI_Aint, m);
    }
    drop(epoch);
    let mut views: Vec<View> = hs
        .iter()
        .zip(tables)
        .zip(members)
        .map(|((h, (g, s)), m)| {
            let status = Status::from_u32(h.status);
            let slot = h.group_slot as usize;
            let group = (slot != 0)
                .then(|| g.get(slot - 1).copied())
                .flatten()
                .filter(|&x| x != 0)
                .map(|x| (x, sync::bitmap_ranks(&m)));
            View {
                status: Some(status),
                stop_gid: (status == Status::Stopped)
                    .then(|| g.get(h.stop_slot as usize).copied())
                    .flatten(),
                blocked_world: h.blocked_world,
                in_collective: h.entering_comm != 0,
                calls: h.calls,
                steps: g
                    .iter()
                    .zip(s.iter())
                    .filter(|(gid, _)| **gid != 0)
                    .map(|(gid, st)| (*gid, *st))
                    .collect(),
                group,
            }
        })
        .collect();
    sync::count_group_members(&mut views);
    views
}

// ---------------------------------------------------------------------------
// The freeze: point-to-point synchronization done, drain and new group.
//
// One regroup, once FREEZE has arrived, is a sequence of phases over the
// value the freeze produced ([`Frozen`]): [`freeze`] (everyone arrives),
// [`Frozen::drain`] (the program's requests put aside, the channels
// drained), what the regroup is for (`ops::session`: a migration, a
// checkpoint, or nothing), [`Frozen::rebuild`] (the new group) and
// [`Frozen::thaw`] (the statistics, the state reset). `ops::session::run`
// runs them in this order.

/// Statistics every process contributes to the event line.
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Contribution {
    pub drained_messages: u64,
    pub drained_bytes: u64,
    pub p2p_sync_us: u64,
    pub drain_us: u64,
    pub group_us: u64,
    pub requests_moved: u64,
}

impl Contribution {
    /// As words, for a reduction.
    fn words(&self) -> [u64; 6] {
        [
            self.drained_messages,
            self.drained_bytes,
            self.p2p_sync_us,
            self.drain_us,
            self.group_us,
            self.requests_moved,
        ]
    }

    /// Back from [`Contribution::words`] (missing words read as 0).
    fn of_words(w: &[u64]) -> Contribution {
        let at = |i: usize| w.get(i).copied().unwrap_or(0);
        Contribution {
            drained_messages: at(0),
            drained_bytes: at(1),
            p2p_sync_us: at(2),
            drain_us: at(3),
            group_us: at(4),
            requests_moved: at(5),
        }
    }
}

/// What the leader's side of a regroup measured (none in the others).
#[derive(Clone, Copy)]
pub struct Led {
    pub started: Instant,
    pub notified: Option<Instant>,
    pub synced: Option<Instant>,
    pub readings: u64,
    pub releases: u64,
}

impl Led {
    /// Microseconds from the start to the notification, and of the
    /// collective synchronization.
    pub fn notify_and_collective_us(&self) -> (u64, u64) {
        let us = |d: Duration| d.as_micros() as u64;
        let notify = self.notified.map(|t| us(t - self.started)).unwrap_or(0);
        let collective = match (self.notified, self.synced) {
            (Some(a), Some(b)) => us(b - a),
            _ => 0,
        };
        (notify, collective)
    }
}

/// What the leader of the running regroup has measured so far (this
/// process leads it).
pub fn led() -> Option<Led> {
    with_sync(|sy| {
        sy.as_ref()
            .and_then(|x| x.coordinator.as_ref())
            .map(|c| Led {
                started: c.started,
                notified: c.notified,
                synced: c.synced,
                readings: c.readings,
                releases: c.releases,
            })
    })
}

/// What the freeze produced, carried through the phases of one regroup.
pub struct Frozen {
    /// The regroup's epoch (the command in the state window).
    pub epoch: u64,
    /// The control communicator, and this process's rank and the size
    /// there (a new one after a migration or a restart: see
    /// [`Frozen::rebuild`]).
    pub control: MPI_Comm,
    pub rank: c_int,
    pub size: c_int,
    /// The leader's rank.
    pub leader: c_int,
    /// How long the processes took to arrive (the point-to-point sync).
    pub p2p_sync: Duration,
    /// How long the drain took, and what it received.
    pub drain: Duration,
    pub drained: crate::protocol::drain::Stats,
    /// The program's requests put aside for the new group.
    pub parked: Vec<crate::protocol::pending::Parked>,
    /// How many were put aside.
    pub requests_moved: u64,
    /// Communicators some members freed and others still hold: kept as
    /// they are by a regroup, and a reason to refuse a migration or a
    /// checkpoint (a new process cannot make them again).
    pub orphans: std::collections::HashSet<usize>,
    /// How long the new group took.
    pub group: Duration,
}

/// Phase 1, the freeze: every process arrives (the leader's measure of
/// the point-to-point sync). Those that arrive first wait asleep: the
/// cores go to the ones still on their way. Called at a safe point (no
/// internal request of the library outstanding) once FREEZE has arrived;
/// `None` without a control channel.
pub fn freeze() -> Option<Frozen> {
    let (control, _, rank, size) = channel()?;
    let frozen_at = Instant::now();
    state().set_status(Status::Frozen);
    let epoch = state().command.load(Ordering::SeqCst);
    // SAFETY: every process of the job calls this once per regroup.
    unsafe { crate::sys::nap::barrier_napping(control, crate::sys::nap::SHORT_NAP) };
    Some(Frozen {
        epoch,
        control,
        rank,
        size,
        leader: with_sync(|sy| sy.as_ref().map(|x| x.leader).unwrap_or(0)),
        p2p_sync: frozen_at.elapsed(),
        drain: Duration::ZERO,
        drained: Default::default(),
        parked: Vec::new(),
        requests_moved: 0,
        orphans: Default::default(),
        group: Duration::ZERO,
    })
}

/// The library's own messages still on their way (the leader's and the
/// members'), delivered: before an image is taken.
pub fn flush_outboxes() {
    with_sync(|sy| {
        if let Some(x) = sy.as_mut() {
            flush(&mut x.outbox, true);
            if let Some(c) = x.coordinator.as_mut() {
                flush(&mut c.outbox, true);
            }
        }
    })
}

impl Frozen {
    /// Phase 2, the drain: pending `MPI_Comm_idup`s completed, the
    /// program's requests put aside, every channel drained, started
    /// persistent sends completed; then the communicators some members
    /// freed are found.
    pub fn drain(&mut self) {
        let t_drain = Instant::now();
        // SAFETY: every process is here (after the barrier); no request
        // of the library is pending.
        unsafe { crate::protocol::pending::complete_idups() };
        // SAFETY: as above.
        self.parked = unsafe { crate::protocol::pending::park() };
        self.requests_moved = self.parked.len() as u64;
        // SAFETY: collective over the control communicator, as above.
        self.drained = unsafe { crate::protocol::drain::drain_all(self.control) };
        // SAFETY: after the drain, every started persistent send was received.
        unsafe { crate::protocol::pending::complete_sends(&mut self.parked) };
        self.drain = t_drain.elapsed();
        // SAFETY: collective over the control communicator, after the drain.
        self.orphans = unsafe { crate::protocol::membership::orphans(self.control) };
    }

    /// The communicator slots of the requests put aside.
    pub fn slots(&self) -> Vec<usize> {
        self.parked.iter().map(|p| p.slot()).collect()
    }

    /// Phase 4, the new group: the new world (`migrated`: a migration's,
    /// and whether this process is the replacement; otherwise a split of
    /// the control communicator), every derived communicator made again on
    /// it, `after` run on it (what the operation of the regroup must redo
    /// there), and the requests put aside posted again. `fresh`: a new MPI
    /// (restart) or a new process (replacement), where nothing of the old
    /// real communicators is alive. Returns `false` when there is no
    /// control channel any more (the regroup ends here).
    pub fn rebuild(
        &mut self,
        migrated: Option<MPI_Comm>,
        fresh: bool,
        after: impl FnOnce(MPI_Comm),
    ) -> bool {
        let epoch = self.epoch;
        // After a restart or a migration the control communicator is a
        // new one (with or without a state window: the regroup finishes
        // either way).
        let Some((control, rank)) =
            crate::core::runtime::runtime().map(|r| (r.control, r.world_rank))
        else {
            return false;
        };
        self.control = control;
        self.rank = rank;
        let t_group = Instant::now();
        let mut new_world = k::MPI_COMM_NULL();
        let rc = match migrated {
            Some(w) => {
                new_world = w;
                k::MPI_SUCCESS()
            }
            None => {
                let key = if crate::sys::breaks::on("reorder") {
                    crate::sys::breaks::fired("reorder", "the new world's ranks are reversed");
                    self.size - 1 - rank
                } else {
                    rank
                };
                // SAFETY: collective over the control communicator.
                unsafe { PMPI_Comm_split(control, 0, key, &mut new_world) }
            }
        };
        let parked = std::mem::take(&mut self.parked);
        if rc != k::MPI_SUCCESS() {
            log::error!(
                "regroup {epoch}: cannot make the new world ({rc}); staying on the old one"
            );
            // SAFETY: the parked requests' communicators are unchanged.
            unsafe { crate::protocol::pending::repost(parked) };
        } else {
            let orphans = &self.orphans;
            if !orphans.is_empty() {
                log::debug!(
                    "regroup {epoch}: {} communicators freed by some members stay as they are",
                    orphans.len()
                );
            }
            if fresh && !orphans.is_empty() {
                log::error!(
                    "{} communicators some members had freed cannot be made again in a new process",
                    orphans.len()
                );
            }
            // SAFETY: collective over the members of each communicator,
            // every process in this phase.
            match unsafe {
                crate::protocol::membership::rebuild_all_from(
                    new_world,
                    &|i| orphans.contains(&i),
                    !fresh,
                )
            } {
                Ok(st) => log::debug!(
                    "regroup {epoch}: {} communicators rebuilt, {} kept",
                    st.communicators,
                    st.skipped
                ),
                Err(rc) => log::error!("regroup {epoch}: rebuilding failed ({rc})"),
            }
            after(new_world);
            // SAFETY: the communicators are rebuilt.
            unsafe { crate::protocol::pending::repost(parked) };
        }
        self.group = t_group.elapsed();
        true
    }

    /// Phase 5, the thaw: the statistics summed and maxed at the leader,
    /// the leader's messages delivered, the state reset, and, once
    /// everyone has reset, the program goes on. Returns what the leader
    /// measured (in the leader) and the statistics.
    pub fn thaw(self) -> Thawed {
        let mine = Contribution {
            drained_messages: self.drained.messages,
            drained_bytes: self.drained.bytes,
            p2p_sync_us: self.p2p_sync.as_micros() as u64,
            drain_us: self.drain.as_micros() as u64,
            group_us: self.group.as_micros() as u64,
            requests_moved: self.requests_moved,
        };
        use crate::sys::collective::{reduce, Op};
        // SAFETY: reductions of six words over the control communicator,
        // by every process.
        let (sums, maxs) = unsafe {
            (
                Contribution::of_words(&reduce(self.control, &mine.words(), Op::Sum, self.leader)),
                Contribution::of_words(&reduce(self.control, &mine.words(), Op::Max, self.leader)),
            )
        };
        let led = led();
        // Finish the leader's outstanding sends, then reset.
        let mut x = with_sync(|sy| sy.take());
        if let Some(x) = x.as_mut() {
            flush(&mut x.outbox, true);
        }
        if let Some(c) = x.and_then(|x| x.coordinator).as_mut() {
            flush(&mut c.outbox, true);
        }
        state().regroups.fetch_add(1, Ordering::SeqCst);
        state().command.store(0, Ordering::SeqCst);
        state().set_status(Status::Running);
        // The lead is free again. Rank 0 clears it in its own memory, now
        // that every process is here (nobody can be trying to take it),
        // before the barrier after which they may.
        if self.rank == 0 {
            state().leader.store(0, Ordering::SeqCst);
        }
        // Nobody may be told of a next regroup before everyone has reset.
        // SAFETY: collective over the control communicator.
        unsafe { PMPI_Barrier(self.control) };
        restore_next_event();
        Thawed {
            epoch: self.epoch,
            control: self.control,
            rank: self.rank,
            led,
            sums,
            maxs,
        }
    }
}

/// What a regroup leaves for its report.
pub struct Thawed {
    pub epoch: u64,
    pub control: MPI_Comm,
    pub rank: c_int,
    /// What the leader measured (in the leader only).
    pub led: Option<Led>,
    /// The processes' statistics, summed and maxed (at the leader).
    pub sums: Contribution,
    pub maxs: Contribution,
}

/// Runs the regroup this process is frozen for: its phases are the
/// operations layer's to sequence (`ops::session`), reached through
/// `core::upcalls`.
pub fn now() {
    crate::core::upcalls::upcalls().regroup_now();
}

/// `MPI_Finalize` begins: requests still queued here are led now (the
/// others take part from wherever they are, their own finalize included);
/// after this no request is taken.
pub fn closing() {
    CLOSED.store(true, Ordering::SeqCst);
    QUEUED.fetch_add(SIGNALLED.swap(0, Ordering::SeqCst), Ordering::SeqCst);
    if channel().is_none() {
        return;
    }
    state().set_status(Status::Finalizing);
    let mut idle = Backoff::default();
    loop {
        if state().command.load(Ordering::SeqCst) != 0 {
            if poll(true) {
                now();
                state().set_status(Status::Finalizing);
                idle = Backoff::default();
            }
            idle.pause(true);
            continue;
        }
        if QUEUED.load(Ordering::SeqCst) == 0 {
            break;
        }
        if try_lead() {
            QUEUED.fetch_sub(1, Ordering::SeqCst);
        } else {
            idle.pause(false);
        }
    }
}
