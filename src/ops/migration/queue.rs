//! The requests to move and how a regroup agrees on them: the queue of
//! batches of targets (`ferry migrate`, `ferry evacuate`, the program's
//! own `ferry_migrate`), their checks against the job, and [`agree`], the
//! leader's word on what a regroup does.
use super::*;

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
pub(super) static QUEUE: Mutex<VecDeque<Vec<Target>>> = Mutex::new(VecDeque::new());

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
pub(super) fn requeue_first(batch: Vec<Target>) {
    let ranks: Vec<c_int> = batch.iter().map(|t| t.rank).collect();
    if let Ok(mut q) = QUEUE.lock() {
        q.push_front(batch);
    }
    log::info!("migration of rank(s) {ranks:?} tried again without the others");
    crate::protocol::regroup::request();
}

pub(super) fn refuse(rank: c_int, why: &str) {
    refused(
        rank,
        &format!("regroups and migrations are disabled in this job ({why})"),
        "",
    );
}

/// Says that the migration of `rank` was refused (`to`: " to HOST", or
/// nothing) and why, on stderr and as a `refused` event.
pub(super) fn refused(rank: c_int, why: &str, to: &str) {
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

pub(super) fn next_queued() -> Option<Vec<Target>> {
    QUEUE.lock().ok().and_then(|mut q| q.pop_front())
}

/// The moves of a batch that can be tried, sorted by rank, and those
/// refused at once with the reason (no such rank, or a rank asked twice).
pub(super) fn validate(batch: Vec<Target>, size: c_int) -> (Vec<Target>, Vec<(c_int, String)>) {
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
pub(super) const HEAD_WORDS: usize = 2;
pub(super) const TARGET_WORDS: usize = 36;
pub(super) const HOST_BYTES: usize = (TARGET_WORDS - 3) * 8;
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

pub(super) fn encode(op: &Operation) -> Vec<u64> {
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

pub(super) fn decode(buf: &[u64]) -> Operation {
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
pub(super) fn words_of(bytes: &[u8], len: usize) -> Vec<u64> {
    let mut padded = bytes[..bytes.len().min(len)].to_vec();
    padded.resize(len.div_ceil(8) * 8, 0);
    padded
        .chunks_exact(8)
        .map(|w| u64::from_le_bytes(w.try_into().unwrap_or([0; 8])))
        .collect()
}

/// The first `n` bytes of `words` (as [`words_of`] wrote them), read as
/// text; `n` at most their length.
pub(super) fn string_of(words: &[u64], n: usize) -> String {
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    String::from_utf8_lossy(&bytes[..n.min(bytes.len())]).into_owned()
}
