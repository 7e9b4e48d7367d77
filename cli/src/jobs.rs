//! `ferry status`, `ferry migrate` and `ferry restart`.

use crate::table::{self, Align};
use crate::Failure;
use ferry_common::job::{JobDir, JobMeta, MigrateRequest, RankStatus};
use ferry_common::time::{format_age, format_utc, unix_ms};
use std::path::Path;

/// Finds the job named on the command line; a missing job is a usage error.
fn find_job(job: &str) -> Result<JobDir, Failure> {
    JobDir::find(job).map_err(|e| {
        if e.is_not_found() {
            Failure::usage(e.to_string())
        } else {
            Failure::other(e.to_string())
        }
    })
}

/// Whether the job still runs, as far as job.json and /proc tell.
pub fn job_state(meta: &JobMeta, now: u64) -> String {
    if let Some(end) = meta.ended_at {
        let how = match (meta.exit_code, meta.exit_signal) {
            (Some(c), _) => format!("exit status {c}"),
            (None, Some(s)) => format!("killed by signal {s}"),
            _ => "exit status unknown".into(),
        };
        return format!(
            "ended {} ago ({}), {how}",
            format_age(end, now),
            format_utc(end)
        );
    }
    match meta.launcher_pid {
        Some(pid) if Path::new(&format!("/proc/{pid}")).exists() => {
            format!("running (launcher pid {pid})")
        }
        Some(pid) => format!(
            "not running (launcher pid {pid} is gone; ferry run ended without recording it)"
        ),
        None if Path::new(&format!("/proc/{}", meta.ferry_pid)).exists() => "starting".into(),
        None => "never started (ferry run ended before the launcher ran)".into(),
    }
}

/// The rank table of `ferry status`.
pub fn render_ranks(ranks: &[RankStatus], now: u64) -> String {
    let headers = [
        ("rank", Align::Right),
        ("host", Align::Left),
        ("pid", Align::Right),
        ("migrations", Align::Right),
        ("calls", Align::Right),
        ("state", Align::Left),
        ("updated", Align::Left),
    ];
    let rows: Vec<Vec<String>> = ranks
        .iter()
        .map(|r| {
            vec![
                r.rank.to_string(),
                r.host.clone(),
                r.pid.to_string(),
                r.migrations.to_string(),
                r.calls.to_string(),
                r.state.clone().unwrap_or_else(|| "-".into()),
                format!("{} ago", format_age(r.updated_at, now)),
            ]
        })
        .collect();
    table::render(&headers, &rows)
}

pub fn status(job: &str) -> Result<i32, Failure> {
    let dir = find_job(job)?;
    let meta = dir.read_meta()?;
    let now = unix_ms();
    println!("job      {}", meta.job);
    println!("dir      {}", dir.path().display());
    println!("mpi      {} ({} ranks)", meta.mpi, meta.n);
    println!("command  {}", meta.argv.join(" "));
    println!(
        "started  {} ({} ago)",
        format_utc(meta.started_at),
        format_age(meta.started_at, now)
    );
    println!("state    {}", job_state(&meta, now));
    if let Some(e) = &meta.events {
        println!("events   {e}");
    }
    let ranks = dir.rank_statuses()?;
    println!();
    if ranks.is_empty() {
        println!(
            "no rank has reported yet (the library writes {}/rank-<R>.json)",
            dir.path().display()
        );
    } else {
        print!("{}", render_ranks(&ranks, now));
        if ranks.len() < meta.n as usize {
            println!("{} of {} ranks have reported", ranks.len(), meta.n);
        }
    }
    let events_path = meta
        .events
        .as_ref()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.events_jsonl());
    let moves: Vec<ferry_common::events::Event> = events_from(&events_path, 0)
        .into_iter()
        .filter(|e| e.event == ferry_common::events::EventKind::Migrate)
        .collect();
    if !moves.is_empty() {
        println!();
        println!("migrations ({}):", moves.len());
        for e in &moves {
            println!(
                "  rank {}: pid {} on {} -> pid {} on {}, {:.1} ms (spawn {:.1} ms, image {:.1} MiB)",
                e.rank.unwrap_or(0),
                e.old_pid.unwrap_or(0),
                e.from_host.as_deref().unwrap_or("?"),
                e.new_pid.unwrap_or(0),
                e.to_host.as_deref().unwrap_or("?"),
                e.phases_us.total.unwrap_or(0) as f64 / 1e3,
                e.phases_us.spawn.unwrap_or(0) as f64 / 1e3,
                e.image_bytes.unwrap_or(0) as f64 / (1u64 << 20) as f64
            );
        }
    }
    let evacuations = crate::evacuate::past(&dir);
    if !evacuations.is_empty() {
        println!();
        println!("evacuations ({}):", evacuations.len());
        for e in &evacuations {
            let get = |k: &str| e.get(k).and_then(|v| v.as_str()).unwrap_or("?").to_string();
            let moved: Vec<String> = e
                .get("ranks")
                .and_then(|v| v.as_array())
                .map(|a| {
                    a.iter()
                        .map(|m| {
                            let rank = m.get("rank").and_then(|v| v.as_u64()).unwrap_or(0);
                            match m.get("refused").and_then(|v| v.as_str()) {
                                None => format!(
                                    "{rank} -> {}",
                                    m.get("to_host").and_then(|v| v.as_str()).unwrap_or("?")
                                ),
                                Some(_) => format!("{rank} stayed"),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            let at = e
                .get("started_unix_ms")
                .and_then(|v| v.as_u64())
                .unwrap_or(0);
            println!(
                "  host {} evacuated {} ({}): ranks {}",
                get("host"),
                format_utc(at),
                get("outcome"),
                moved.join(", ")
            );
        }
    }
    Ok(0)
}

/// Whether a process is alive (and ours to signal).
fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

/// The events of the job's log, from line `from` on.
fn events_from(path: &Path, from: usize) -> Vec<ferry_common::events::Event> {
    std::fs::read_to_string(path)
        .map(|t| {
            t.lines()
                .skip(from)
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The process to hand a request of `rank` to: the rank's own (as its
/// status file says now), or, should it be gone, any other live rank's.
fn taker(dir: &JobDir, rank: u32) -> Result<RankStatus, Failure> {
    let ranks = dir.rank_statuses()?;
    let mut targets: Vec<RankStatus> = ranks
        .into_iter()
        .filter(|r| r.state.as_deref() != Some("finalized"))
        .collect();
    targets.sort_by_key(|r| r.rank != rank);
    targets.into_iter().find(|r| alive(r.pid)).ok_or_else(|| {
        Failure::other(
            "no rank has a live process to take the request (has MPI_Init run?)".to_string(),
        )
    })
}

/// Signals `to` that a request waits in the job directory.
fn deliver(to: &RankStatus) -> Result<(), Failure> {
    // SAFETY: a signal to a process of the job (same owner: the job
    // directory is private to its owner, and the kernel checks too).
    if unsafe { libc::kill(to.pid as libc::pid_t, libc::SIGUSR2) } != 0 {
        return Err(Failure::other(format!(
            "cannot signal rank {} (pid {}): {}",
            to.rank,
            to.pid,
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

pub fn migrate(
    job: &str,
    ranks: &[u32],
    to: Option<String>,
    wait: bool,
    timeout: u64,
) -> Result<i32, Failure> {
    let dir = find_job(job)?;
    let meta = dir.read_meta()?;
    for &rank in ranks {
        if rank >= meta.n {
            return Err(Failure::usage(format!(
                "job {} has {} ranks (0..{}): there is no rank {rank}",
                meta.job,
                meta.n,
                meta.n.saturating_sub(1)
            )));
        }
        if ranks.iter().filter(|&&r| r == rank).count() > 1 {
            return Err(Failure::usage(format!(
                "rank {rank} is given twice: a rank moves once per synchronization"
            )));
        }
    }
    if meta.ended_at.is_some() {
        return Err(Failure::other(format!(
            "job {} has ended ({}): nothing to migrate",
            meta.job,
            job_state(&meta, unix_ms())
        )));
    }
    if let Some(h) = &to {
        use std::net::ToSocketAddrs;
        if (h.as_str(), 0)
            .to_socket_addrs()
            .map_or(true, |mut a| a.next().is_none())
        {
            return Err(Failure::usage(format!(
                "unknown host {h:?}: it does not resolve from here"
            )));
        }
    }
    let moves: Vec<(u32, Option<String>)> = ranks.iter().map(|&r| (r, to.clone())).collect();
    let out = request_moves(&dir, &meta, &moves, wait, timeout, true)?;
    let refused: Vec<String> = out
        .iter()
        .filter_map(|(r, m)| match m {
            Moved::Refused(why) => Some(format!("rank {r}: {why}")),
            _ => None,
        })
        .collect();
    if refused.is_empty() {
        Ok(0)
    } else {
        Err(Failure::other(format!(
            "the migration of {} was refused; the job goes on",
            refused.join("; ")
        )))
    }
}

/// How a request to move a rank ended.
#[derive(Debug, Clone)]
pub enum Moved {
    /// Its `migrate` event.
    Yes(Box<ferry_common::events::Event>),
    /// Refused: why (from the event log, if it says).
    Refused(String),
    /// Delivered, not waited for.
    Asked,
}

/// The event log a job writes to.
pub fn events_path(dir: &JobDir, meta: &JobMeta) -> std::path::PathBuf {
    meta.events
        .as_ref()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.events_jsonl())
}

/// Queues one request to move every rank of `moves` (each to its host,
/// else its own) in one synchronization, hands it to the first rank's
/// process and, when `wait`, waits at most `timeout` s for each rank's
/// outcome (in the order of `moves`). A rank whose outcome did not come
/// in time is an error only when none came: the others are `Asked`.
pub fn request_moves(
    dir: &JobDir,
    meta: &JobMeta,
    moves: &[(u32, Option<String>)],
    wait: bool,
    timeout: u64,
    say: bool,
) -> Result<Vec<(u32, Moved)>, Failure> {
    let Some(((rank, to), rest)) = moves.split_first() else {
        return Ok(Vec::new());
    };
    let rank = *rank;
    let events_path = events_path(dir, meta);
    let seen = std::fs::read_to_string(&events_path)
        .map(|t| t.lines().count())
        .unwrap_or(0);
    // The process to signal must exist before the request is queued.
    let first = taker(dir, rank)?;
    let req = MigrateRequest {
        rank,
        to: to.clone(),
        requested_at: unix_ms(),
        requester_pid: std::process::id(),
        with: rest
            .iter()
            .map(|(rank, to)| ferry_common::job::MoveTo {
                rank: *rank,
                to: to.clone(),
            })
            .collect(),
    };
    let (n, path) = dir.queue_request(&req)?;
    if let Err(e) = deliver(&first) {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    let what = |r: u32, to: &Option<String>| {
        format!(
            "rank {r}{}",
            to.as_ref().map(|h| format!(" to {h}")).unwrap_or_default()
        )
    };
    if say {
        println!(
            "ferry: migration of {} asked of job {} (request {n}, delivered to rank {} pid {})",
            moves
                .iter()
                .map(|(r, to)| what(*r, to))
                .collect::<Vec<_>>()
                .join(", "),
            meta.job,
            first.rank,
            first.pid
        );
    }
    let taken = path.with_extension("taken");
    // The process signalled may stop taking requests before it sees this
    // one: it may be the old process of a rank that is moving (asleep
    // until the job ends), or finalizing. While the request waits, it is
    // delivered again to whichever process now holds the rank (or
    // another live one), each time that changes.
    let mut delivered = first.pid;
    let mut redeliver = |taken_now: bool| -> Result<(), Failure> {
        if taken_now {
            return Ok(());
        }
        if let Ok(now) = taker(dir, rank) {
            if now.pid != delivered {
                deliver(&now)?;
                delivered = now.pid;
                if say {
                    println!(
                        "ferry: request {n} not taken yet; delivered again to rank {} pid {}",
                        now.rank, now.pid
                    );
                }
            }
        }
        Ok(())
    };
    let asked = || moves.iter().map(|(r, _)| (*r, Moved::Asked)).collect();
    if !wait {
        // At least until it is taken (briefly): a request left with a
        // process that will never take it would be lost.
        let until = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while !taken.exists() && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(100));
            redeliver(taken.exists())?;
        }
        if !taken.exists() && say {
            println!("ferry: request {n} not taken yet (the ranks have made no MPI call since)");
        }
        return Ok(asked());
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(timeout);
    let mut said_taken = false;
    let mut polls = 0u64;
    let mut outcome: Vec<Option<Moved>> = vec![None; moves.len()];
    while std::time::Instant::now() < deadline {
        if !said_taken && taken.exists() {
            said_taken = true;
            if say {
                println!("ferry: request {n} taken; the job synchronizes");
            }
        }
        polls += 1;
        if polls % 10 == 0 {
            redeliver(said_taken)?;
        }
        let events = events_from(&events_path, seen);
        for ev in &events {
            use ferry_common::events::EventKind;
            // This request's outcome: a second request for the same rank
            // is a second move, with its own line.
            if ev.extra.get("request").and_then(|v| v.as_u64()) != Some(n) {
                continue;
            }
            let refused: Vec<u64> = match ev.extra.get("migrations_refused") {
                Some(serde_json::Value::Array(v)) => v.iter().filter_map(|x| x.as_u64()).collect(),
                _ => ev
                    .extra
                    .get("migration_refused")
                    .and_then(|v| v.as_u64())
                    .into_iter()
                    .collect(),
            };
            for (k, (r, _)) in moves.iter().enumerate() {
                if outcome[k].is_some() {
                    continue;
                }
                if ev.event == EventKind::Migrate && ev.rank == Some(*r) {
                    if say {
                        println!(
                            "ferry: rank {r} moved: pid {} on {} -> pid {} on {}, in {:.1} ms",
                            ev.old_pid.unwrap_or(0),
                            ev.from_host.as_deref().unwrap_or("?"),
                            ev.new_pid.unwrap_or(0),
                            ev.to_host.as_deref().unwrap_or("?"),
                            ev.phases_us.total.unwrap_or(0) as f64 / 1e3
                        );
                    }
                    outcome[k] = Some(Moved::Yes(Box::new(ev.clone())));
                } else if refused.contains(&(*r as u64)) {
                    // The reason, from the refusal line the job wrote for it.
                    let why = events
                        .iter()
                        .filter(|e| e.rank == Some(*r))
                        .filter_map(|e| e.refusal())
                        .filter(|(op, _)| *op == "migration")
                        .map(|(_, why)| why.to_string())
                        .next_back()
                        .unwrap_or_else(|| "the job's stderr says why".into());
                    outcome[k] = Some(Moved::Refused(why));
                }
            }
        }
        if outcome.iter().all(Option::is_some) {
            return Ok(moves
                .iter()
                .zip(outcome)
                .map(|((r, _), m)| (*r, m.unwrap_or(Moved::Asked)))
                .collect());
        }
        let m = dir.read_meta()?;
        if m.ended_at.is_some() {
            return Err(Failure::other(format!(
                "job {} ended before {} moved",
                m.job,
                moves
                    .iter()
                    .zip(&outcome)
                    .filter(|(_, o)| o.is_none())
                    .map(|((r, _), _)| format!("rank {r}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let state = if taken.exists() {
        "taken"
    } else {
        "not taken yet: the rank has made no MPI call since"
    };
    if outcome.iter().all(Option::is_none) {
        return Err(Failure::other(format!(
            "{} not moved within {timeout} s (request {n}: {state}); {} may still move",
            if moves.len() == 1 {
                format!("rank {rank} has")
            } else {
                "the ranks have".to_string()
            },
            if moves.len() == 1 { "it" } else { "they" }
        )));
    }
    Ok(moves
        .iter()
        .zip(outcome)
        .map(|((r, _), m)| {
            (
                *r,
                m.unwrap_or_else(|| {
                    Moved::Refused(format!(
                        "not moved within {timeout} s (request {n}: {state}); it may still move"
                    ))
                }),
            )
        })
        .collect())
}

/// What `checkpoint.json` (written by rank 0 of a checkpointed job) says.
#[derive(serde::Deserialize, Debug)]
pub struct CheckpointMeta {
    pub ranks: u32,
    pub program: String,
    #[serde(default)]
    pub argv: Vec<String>,
    pub cwd: Option<String>,
    pub mpi: String,
    pub events: Option<String>,
    #[serde(default)]
    pub image_bytes: u64,
}

/// Reads and checks a checkpoint directory.
pub fn read_checkpoint(dir: &Path) -> Result<CheckpointMeta, Failure> {
    if !dir.is_dir() {
        return Err(Failure::usage(format!(
            "{}: no such checkpoint directory",
            dir.display()
        )));
    }
    let path = dir.join("checkpoint.json");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Failure::usage(format!(
            "{}: not a complete checkpoint ({}: {e})",
            dir.display(),
            path.display()
        ))
    })?;
    let meta: CheckpointMeta = serde_json::from_str(&text)
        .map_err(|e| Failure::usage(format!("{}: corrupt: {e}", path.display())))?;
    for r in 0..meta.ranks {
        let img = dir.join(format!("rank-{r}.img"));
        if !img.is_file() {
            return Err(Failure::usage(format!(
                "{}: the image of rank {r} is missing ({})",
                dir.display(),
                img.display()
            )));
        }
    }
    if !Path::new(&meta.program).is_file() {
        return Err(Failure::usage(format!(
            "the checkpointed program {} is gone",
            meta.program
        )));
    }
    Ok(meta)
}

/// `ferry restart DIR`: the same program, on as many ranks, under the same
/// MPI, each rank resuming from its image.
pub fn restart(dir: &Path) -> Result<i32, Failure> {
    let dir = std::fs::canonicalize(dir).map_err(|e| {
        Failure::usage(format!(
            "{}: no such checkpoint directory ({e})",
            dir.display()
        ))
    })?;
    let meta = read_checkpoint(&dir)?;
    let mpi = match crate::Mpi::parse(&meta.mpi) {
        Some(m) => m,
        None => {
            let other = &meta.mpi;
            return Err(Failure::usage(format!(
                "the checkpoint was taken under an unknown MPI '{other}'"
            )));
        }
    };
    if let Some(cwd) = &meta.cwd {
        if let Err(e) = std::env::set_current_dir(cwd) {
            log::warn!("cannot go to the checkpoint's working directory {cwd}: {e}");
        }
    }
    let mut command: Vec<std::ffi::OsString> = vec![meta.program.clone().into()];
    command.extend(meta.argv.iter().skip(1).map(|a| a.into()));
    eprintln!(
        "ferry: restarting {} ranks of {} from {} ({:.1} MiB of images)",
        meta.ranks,
        meta.program,
        dir.display(),
        meta.image_bytes as f64 / (1u64 << 20) as f64
    );
    crate::run::run(crate::RunArgs {
        mpi: Some(mpi),
        n: meta.ranks,
        hosts: None,
        migrate: Vec::new(),
        regroup: Vec::new(),
        events: meta.events.map(std::path::PathBuf::from),
        checkpoint: None,
        command,
        restart: Some(dir),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> JobMeta {
        JobMeta {
            job: "h-1-0000".into(),
            mpi: "mpich".into(),
            program: "p".into(),
            argv: vec!["p".into()],
            n: 2,
            launcher: "l".into(),
            lib: "x".into(),
            ferry_pid: u32::MAX - 1,
            launcher_pid: None,
            started_at: 0,
            cwd: None,
            hosts: None,
            spare_hosts: Vec::new(),
            old_processes_stay: false,
            events: None,
            migrate: None,
            regroup: None,
            checkpoint: None,
            ended_at: None,
            exit_code: None,
            exit_signal: None,
        }
    }

    #[test]
    fn states() {
        let mut m = meta();
        assert!(job_state(&m, 0).starts_with("never started"));
        m.launcher_pid = Some(std::process::id());
        assert_eq!(
            job_state(&m, 0),
            format!("running (launcher pid {})", std::process::id())
        );
        m.launcher_pid = Some(u32::MAX - 1);
        assert!(job_state(&m, 0).starts_with("not running"));
        m.ended_at = Some(1000);
        m.exit_code = Some(3);
        assert_eq!(
            job_state(&m, 3000),
            "ended 2s ago (1970-01-01 00:00:01.000Z), exit status 3"
        );
        m.exit_code = None;
        m.exit_signal = Some(9);
        assert!(job_state(&m, 3000).ends_with("killed by signal 9"));
    }

    #[test]
    fn rank_table() {
        let mut r = RankStatus::new(1, "node1", 42, 1, 1000);
        r.updated_at = 5000;
        r.state = Some("running".into());
        let t = render_ranks(&[r], 7000);
        assert_eq!(
            t,
            "rank  host   pid  migrations  calls  state    updated\n   1  node1   42           1   1000  running  2s ago\n"
        );
    }
}
