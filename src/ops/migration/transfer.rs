//! Phase 5: the state transfer between each leaving process and its
//! replacement, and the verdict every process learns (GO, NOGO, LOST).
use super::*;

/// The leaving process's image went to its replacement (this is the old
/// process), or the replacement resumed here.
pub(super) enum Transferred {
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
pub(super) unsafe fn transfer(
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
pub(super) static RETRIED: Mutex<Vec<c_int>> = Mutex::new(Vec::new());

/// The ranks the last migration queued again (see [`transfer`]).
pub fn retried() -> Vec<c_int> {
    RETRIED.lock().map(|r| r.clone()).unwrap_or_default()
}

/// How a batch's transfers went, from each one's: it goes on only if
/// every replacement has its image; a replacement lost makes them all
/// given up without a word (the spawn's communicator cannot be
/// disconnected without it); otherwise they are disconnected cleanly.
pub(super) fn batch_verdict(each: &[Verdict]) -> Verdict {
    if each.iter().all(|v| *v == Verdict::Go) {
        Verdict::Go
    } else if each.contains(&Verdict::Lost) {
        Verdict::Lost
    } else {
        Verdict::NoGo
    }
}

/// How the transfer to the replacement ended, as the leaving process saw
/// it (told to every old process, and to the replacement unless lost).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub(super) enum Verdict {
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
    pub(super) fn from_word(w: u64) -> Verdict {
        match w {
            0 => Verdict::Go,
            1 => Verdict::NoGo,
            _ => Verdict::Lost,
        }
    }
}

/// The replacement's answer once it has the image (see `join`).
pub(super) const ACK_OK: u64 = 1;
pub(super) const ACK_FAILED: u64 = 2;

/// What the answer `word` of the replacement means.
pub(super) fn verdict_of_ack(word: u64) -> Verdict {
    match word {
        ACK_OK => Verdict::Go,
        ACK_FAILED => Verdict::NoGo,
        _ => Verdict::Lost,
    }
}

/// The leaving process waits for the answer of its replacement (`peer`
/// on `spawned`), at most `timeout`.
pub(super) unsafe fn await_ack(
    spawned: MPI_Comm,
    peer: c_int,
    timeout: Duration,
) -> Result<Verdict, String> {
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
pub(super) unsafe fn drop_spawned(spawned: &mut MPI_Comm, verdict: Verdict) {
    // SAFETY: a live communicator of this process.
    unsafe {
        if verdict == Verdict::NoGo {
            PMPI_Comm_disconnect(spawned);
        } else {
            PMPI_Comm_free(spawned);
        }
    }
}
