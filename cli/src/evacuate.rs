//! `ferry evacuate`: every rank of a host moves to other hosts, so that the
//! host can be taken down while the job goes on.
//!
//! The ranks move one after the other (each a migration of its own: a
//! freeze, a drain, a spawn and a new group per rank; one synchronization
//! for all of them is not there yet). Before anything moves, the request
//! is checked: the job runs, the host runs ranks of it, it is not the
//! launcher's host, no other evacuation of the job runs. Each rank's old
//! process leaves the job once its rank has moved (the library's default),
//! so once every rank has moved nothing of the job depends on the host.
//!
//! Exit status: 0 every rank moved; 3 some could not (the report says
//! why, the job goes on with them where they were); 2 refused before
//! anything moved (unknown job or host, no rank there, another evacuation
//! running, `--to` naming the host itself); 1 other failures.

use crate::jobs::{request_moves, Moved};
use crate::Failure;
use ferry_common::events::{Event, EventKind};
use ferry_common::job::{JobDir, JobMeta, RankStatus};
use ferry_common::time::unix_ms;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Exit status of an evacuation some of whose ranks could not move.
pub const EXIT_PARTIAL: i32 = 3;

/// What `ferry evacuate` was asked.
#[derive(Debug, Clone)]
pub struct Request {
    pub job: String,
    pub host: String,
    /// Hosts to move the ranks to (empty: the job's other hosts).
    pub to: Vec<String>,
    /// Seconds for the whole evacuation.
    pub timeout: u64,
    pub dry_run: bool,
    pub json: bool,
}

/// One rank's move in the report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RankMove {
    pub rank: u32,
    pub from_host: String,
    pub old_pid: u32,
    pub to_host: String,
    /// Once moved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_pid: Option<u32>,
    /// Whether the old process was seen gone (`None`: it runs on a machine
    /// this command cannot look at).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_process_exited: Option<bool>,
    /// Why it did not move.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    pub ms: f64,
}

/// The report of an evacuation (`--json` prints it; one line of it goes
/// to the job directory's `evacuations.jsonl`).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub job: String,
    pub host: String,
    /// `complete`, `partial` or `planned` (`--dry-run`).
    pub outcome: String,
    pub ranks: Vec<RankMove>,
    pub started_unix_ms: u64,
    pub total_ms: f64,
    /// Whether the host may now be taken down (every rank moved and every
    /// old process that could be checked has exited).
    pub host_may_go_down: bool,
}

/// Places the ranks of the evacuated host on `targets`, each on the
/// target with the fewest ranks so far (`load`: the ranks each runs now;
/// ties go to the earlier target in the list).
pub fn place(
    ranks: &[u32],
    targets: &[String],
    load: &BTreeMap<String, u32>,
) -> Vec<(u32, String)> {
    let mut load: Vec<(String, u32)> = targets
        .iter()
        .map(|t| (t.clone(), load.get(t).copied().unwrap_or(0)))
        .collect();
    let mut out = Vec::new();
    for &r in ranks {
        let Some(i) = (0..load.len()).min_by_key(|&i| (load[i].1, i)) else {
            break;
        };
        load[i].1 += 1;
        out.push((r, load[i].0.clone()));
    }
    out
}

/// The hosts the ranks may go to when `--to` is not given: the job's
/// hosts (those it started on, its spare hosts, those ranks run on now)
/// but `host` and the hosts evacuated before. On Open MPI 4.1.4, a host
/// that every rank the job started there has left cannot take a process
/// again (its daemon forgot the job): left out too.
pub fn default_targets(
    meta: &JobMeta,
    ranks: &[RankStatus],
    host: &str,
    evacuated: &[String],
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let started = meta.hosts.clone().unwrap_or_default();
    let now: Vec<String> = ranks.iter().map(|r| r.host.clone()).collect();
    for h in started.iter().chain(&meta.spare_hosts).chain(&now) {
        if h == host || evacuated.contains(h) || out.contains(h) {
            continue;
        }
        if meta.mpi == "openmpi" && started.contains(h) && !now.contains(h) {
            continue;
        }
        out.push(h.clone());
    }
    out
}

/// The job directory's record of past evacuations.
fn record_path(dir: &JobDir) -> PathBuf {
    dir.path().join("evacuations.jsonl")
}

/// The hosts evacuated before in this job, with every rank moved.
pub fn evacuated_hosts(dir: &JobDir) -> Vec<String> {
    past(dir)
        .into_iter()
        .filter(|r| r.get("outcome").and_then(|v| v.as_str()) == Some("complete"))
        .filter_map(|r| r.get("host").and_then(|v| v.as_str()).map(String::from))
        .collect()
}

/// The evacuations recorded in the job directory (JSON objects).
pub fn past(dir: &JobDir) -> Vec<serde_json::Map<String, serde_json::Value>> {
    std::fs::read_to_string(record_path(dir))
        .map(|t| {
            t.lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Held while an evacuation runs (`evacuate.lock` in the job directory,
/// holding the pid): a second one is refused.
struct Lock(PathBuf);

impl Lock {
    fn take(dir: &JobDir, host: &str) -> Result<Lock, Failure> {
        let path = dir.path().join("evacuate.lock");
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    use std::io::Write;
                    let _ = writeln!(f, "{} {host}", std::process::id());
                    return Ok(Lock(path));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    let mut w = text.split_whitespace();
                    let pid: u32 = w.next().and_then(|p| p.parse().ok()).unwrap_or(0);
                    let other = w.next().unwrap_or("?").to_string();
                    if pid != 0 && std::path::Path::new(&format!("/proc/{pid}")).exists() {
                        return Err(Failure::usage(format!(
                            "an evacuation of {other} is already running in job {} (ferry pid {pid}); \
                             wait for it to end",
                            dir.id()
                        )));
                    }
                    // Left by an evacuation that died: taken over.
                    let _ = std::fs::remove_file(&path);
                }
                Err(e) => {
                    return Err(Failure::other(format!("{}: {e}", path.display())));
                }
            }
        }
        Err(Failure::other(format!("cannot take {}", path.display())))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `ferry evacuate`.
pub fn evacuate(req: &Request) -> Result<i32, Failure> {
    let dir = JobDir::find(&req.job).map_err(|e| {
        if e.is_not_found() {
            Failure::usage(e.to_string())
        } else {
            Failure::other(e.to_string())
        }
    })?;
    let meta = dir.read_meta()?;
    if meta.ended_at.is_some() {
        return Err(Failure::usage(format!(
            "job {} has ended: nothing to evacuate",
            meta.job
        )));
    }
    if meta.mpi == "mpich-deb" {
        return Err(Failure::usage(
            "Debian's MPICH 4.0.2 cannot start a process in a running job (MPI_Comm_spawn fails): \
             no rank can leave a host"
                .to_string(),
        ));
    }
    if meta.old_processes_stay {
        return Err(Failure::usage(format!(
            "job {} was started with FERRY_OLD_PROCESS=stay: the old processes of moved ranks \
             stay on their host until the job ends, so no host can be emptied",
            meta.job
        )));
    }
    let ranks = dir.rank_statuses()?;
    let host = req.host.clone();
    let on_host: Vec<&RankStatus> = ranks
        .iter()
        .filter(|r| r.host == host && r.state.as_deref() != Some("finalized"))
        .collect();
    if on_host.is_empty() {
        let mut hosts: Vec<&str> = ranks.iter().map(|r| r.host.as_str()).collect();
        hosts.sort();
        hosts.dedup();
        let known = meta
            .hosts
            .iter()
            .flatten()
            .chain(&meta.spare_hosts)
            .any(|h| *h == host)
            || resolves(&host);
        return Err(Failure::usage(if known {
            format!(
                "host {host} runs no rank of job {} (its ranks run on {})",
                meta.job,
                hosts.join(", ")
            )
        } else {
            format!("unknown host {host:?}: it does not resolve from here")
        }));
    }
    if host == ferry_common::job::hostname() && meta.hosts.is_some() {
        return Err(Failure::usage(format!(
            "{host} runs the job's launcher ({}): no launcher survives the loss of its own host",
            meta.launcher
        )));
    }
    for t in &req.to {
        if *t == host {
            return Err(Failure::usage(format!(
                "--to names {host}, the host being evacuated"
            )));
        }
        if !resolves(t) {
            return Err(Failure::usage(format!(
                "unknown host {t:?} in --to: it does not resolve from here"
            )));
        }
    }
    let evacuated = evacuated_hosts(&dir);
    let targets = if req.to.is_empty() {
        default_targets(&meta, &ranks, &host, &evacuated)
    } else {
        req.to.clone()
    };
    if targets.is_empty() {
        return Err(Failure::usage(format!(
            "no host to move the ranks of {host} to: give some with --to (the job's hosts are {})",
            meta.hosts.clone().unwrap_or_default().join(", ")
        )));
    }
    let mut load: BTreeMap<String, u32> = BTreeMap::new();
    for r in &ranks {
        *load.entry(r.host.clone()).or_default() += 1;
    }
    let mut moving: Vec<u32> = on_host.iter().map(|r| r.rank).collect();
    moving.sort_unstable();
    let plan = place(&moving, &targets, &load);
    let started = unix_ms();
    let t0 = Instant::now();
    let mut report = Report {
        job: meta.job.clone(),
        host: host.clone(),
        outcome: "planned".into(),
        ranks: plan
            .iter()
            .map(|(rank, to)| {
                let r = on_host
                    .iter()
                    .find(|s| s.rank == *rank)
                    .expect("a rank of the host");
                RankMove {
                    rank: *rank,
                    from_host: host.clone(),
                    old_pid: r.pid,
                    to_host: to.clone(),
                    new_pid: None,
                    old_process_exited: None,
                    refused: None,
                    ms: 0.0,
                }
            })
            .collect(),
        started_unix_ms: started,
        total_ms: 0.0,
        host_may_go_down: false,
    };
    if req.dry_run {
        print_report(&report, req.json);
        return Ok(0);
    }
    let _lock = Lock::take(&dir, &host)?;
    if !req.json {
        println!(
            "ferry: evacuating {host} in job {}: {} rank(s) to {}",
            meta.job,
            plan.len(),
            targets.join(", ")
        );
    }
    // Every rank in one request: one synchronization of the job, one
    // spawn of every replacement, one new group.
    let machine = ferry_common::job::machine_id();
    let moves: Vec<(u32, Option<String>)> = report
        .ranks
        .iter()
        .map(|m| (m.rank, Some(m.to_host.clone())))
        .collect();
    let outcome = request_moves(&dir, &meta, &moves, true, req.timeout, false);
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    for m in report.ranks.iter_mut() {
        m.ms = ms;
        let moved = match &outcome {
            Ok(list) => list
                .iter()
                .find(|(r, _)| *r == m.rank)
                .map(|(_, x)| x.clone())
                .unwrap_or(Moved::Asked),
            Err(e) => Moved::Refused(e.message.clone()),
        };
        match moved {
            Moved::Yes(ev) => {
                m.new_pid = ev.new_pid;
                m.to_host = ev.to_host.clone().unwrap_or_else(|| m.to_host.clone());
                m.old_pid = ev.old_pid.unwrap_or(m.old_pid);
                m.ms = ev.phases_us.total.unwrap_or(0) as f64 / 1e3;
                let here = on_host
                    .iter()
                    .find(|s| s.rank == m.rank)
                    .is_some_and(|s| s.machine.is_some() && s.machine == machine);
                m.old_process_exited = here.then(|| gone_within(m.old_pid, Duration::from_secs(5)));
            }
            Moved::Refused(why) => m.refused = Some(why),
            Moved::Asked => m.refused = Some("not waited for".into()),
        }
        if !req.json {
            print_move(m);
        }
    }
    let all = report.ranks.iter().all(|m| m.refused.is_none());
    report.outcome = if all { "complete" } else { "partial" }.into();
    report.total_ms = t0.elapsed().as_secs_f64() * 1e3;
    report.host_may_go_down = all
        && report
            .ranks
            .iter()
            .all(|m| m.old_process_exited != Some(false));
    record(&dir, &meta, &report);
    print_report(&report, req.json);
    Ok(if all { 0 } else { EXIT_PARTIAL })
}

/// Whether `host` resolves from here.
fn resolves(host: &str) -> bool {
    use std::net::ToSocketAddrs;
    (host, 0)
        .to_socket_addrs()
        .is_ok_and(|mut a| a.next().is_some())
}

/// Waits at most `within` for process `pid` to be gone (a zombie counts
/// as gone: it holds nothing).
fn gone_within(pid: u32, within: Duration) -> bool {
    let t = Instant::now();
    loop {
        if !ferry_common::job::process_running(pid) {
            return true;
        }
        if t.elapsed() >= within {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn print_move(m: &RankMove) {
    match (&m.refused, m.new_pid) {
        (None, Some(p)) => println!(
            "rank {}: pid {} on {} -> pid {p} on {} ({:.0} ms){}",
            m.rank,
            m.old_pid,
            m.from_host,
            m.to_host,
            m.ms,
            match m.old_process_exited {
                Some(true) => "; old process exited",
                Some(false) => "; old process STILL RUNS",
                None => "",
            }
        ),
        (Some(why), _) => println!(
            "rank {}: stays on {} (pid {}): {why}",
            m.rank, m.from_host, m.old_pid
        ),
        (None, None) => println!(
            "rank {}: pid {} on {} -> {} (planned)",
            m.rank, m.old_pid, m.from_host, m.to_host
        ),
    }
}

fn print_report(r: &Report, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(r).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
        );
        return;
    }
    if r.outcome == "planned" {
        for m in &r.ranks {
            print_move(m);
        }
        println!("ferry: dry run: nothing moved");
        return;
    }
    let moved = r.ranks.iter().filter(|m| m.refused.is_none()).count();
    println!(
        "ferry: evacuation of {} {}: {moved} of {} rank(s) moved in {:.1} s; {}",
        r.host,
        r.outcome,
        r.ranks.len(),
        r.total_ms / 1e3,
        if r.host_may_go_down {
            format!("{} may now be taken down", r.host)
        } else {
            format!(
                "{} still holds ranks of the job: do not take it down",
                r.host
            )
        }
    );
}

/// The evacuation's line in the job directory and in the event log.
fn record(dir: &JobDir, meta: &JobMeta, r: &Report) {
    if let Ok(line) = serde_json::to_string(r) {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(record_path(dir))
        {
            let _ = writeln!(f, "{line}");
        }
    }
    let mut ev = Event::new(EventKind::Evacuate);
    ev.from_host = Some(r.host.clone());
    ev.phases_us.total = Some((r.total_ms * 1e3) as u64);
    let ranks = |moved: bool| -> serde_json::Value {
        r.ranks
            .iter()
            .filter(|m| m.refused.is_none() == moved)
            .map(|m| m.rank)
            .collect::<Vec<u32>>()
            .into()
    };
    ev.extra.insert("outcome".into(), r.outcome.clone().into());
    ev.extra.insert("ranks_moved".into(), ranks(true));
    ev.extra.insert("ranks_stayed".into(), ranks(false));
    ev.extra.insert(
        "to_hosts".into(),
        r.ranks
            .iter()
            .filter(|m| m.refused.is_none())
            .map(|m| m.to_host.clone())
            .collect::<Vec<String>>()
            .into(),
    );
    let path = crate::jobs::events_path(dir, meta);
    if let Err(e) = ferry_common::events::append_event(path.display().to_string(), &ev) {
        log::warn!("cannot append to the event log {}: {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
        pairs.iter().map(|(h, n)| (h.to_string(), *n)).collect()
    }

    fn hosts(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn ranks_go_to_the_least_loaded_hosts_in_turn() {
        let p = place(
            &[1, 4],
            &hosts(&["h1", "h3", "h4"]),
            &load(&[("h1", 2), ("h2", 2), ("h3", 1)]),
        );
        assert_eq!(p, [(1, "h4".to_string()), (4, "h3".to_string())]);
        // Ties: the earlier host in the list.
        let p = place(&[0, 1, 2, 3], &hosts(&["a", "b"]), &load(&[]));
        let to: Vec<&str> = p.iter().map(|x| x.1.as_str()).collect();
        assert_eq!(to, ["a", "b", "a", "b"]);
        assert!(place(&[1], &[], &load(&[])).is_empty());
    }

    fn meta(mpi: &str, hosts_: &[&str], spare: &[&str]) -> JobMeta {
        JobMeta {
            job: "j".into(),
            mpi: mpi.into(),
            program: "p".into(),
            argv: vec!["p".into()],
            n: 3,
            launcher: "mpiexec".into(),
            lib: "l".into(),
            ferry_pid: 1,
            launcher_pid: None,
            started_at: 0,
            cwd: None,
            hosts: Some(hosts(hosts_)),
            spare_hosts: hosts(spare),
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

    fn at(rank: u32, host: &str) -> RankStatus {
        RankStatus::new(rank, host, 10 + rank, 0, 0)
    }

    #[test]
    fn targets_are_the_jobs_other_hosts() {
        let ranks = [at(0, "h1"), at(1, "h2"), at(2, "h3")];
        let m = meta("mpich", &["h1", "h2", "h3"], &["h4"]);
        assert_eq!(
            default_targets(&m, &ranks, "h2", &[]),
            hosts(&["h1", "h3", "h4"])
        );
        // Evacuated before: not a target.
        assert_eq!(
            default_targets(&m, &ranks, "h2", &hosts(&["h4"])),
            hosts(&["h1", "h3"])
        );
        // Open MPI: a start host no rank runs on any more is closed.
        let ranks = [at(0, "h1"), at(1, "h4"), at(2, "h3")];
        let o = meta("openmpi", &["h1", "h2", "h3"], &["h4"]);
        assert_eq!(default_targets(&o, &ranks, "h3", &[]), hosts(&["h1", "h4"]));
        let m = meta("mpich", &["h1", "h2", "h3"], &["h4"]);
        assert_eq!(
            default_targets(&m, &ranks, "h3", &[]),
            hosts(&["h1", "h2", "h4"])
        );
    }

    #[test]
    fn the_report_says_what_moved_and_what_stayed() {
        let mv = |rank, refused: Option<&str>| RankMove {
            rank,
            from_host: "h2".into(),
            old_pid: 5,
            to_host: "h4".into(),
            new_pid: refused.is_none().then_some(7),
            old_process_exited: refused.is_none().then_some(true),
            refused: refused.map(String::from),
            ms: 1.0,
        };
        let r = Report {
            job: "j".into(),
            host: "h2".into(),
            outcome: "partial".into(),
            ranks: vec![mv(1, None), mv(4, Some("the host \"h4\" does not answer"))],
            started_unix_ms: 0,
            total_ms: 2.0,
            host_may_go_down: false,
        };
        let v: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert_eq!(v["ranks"][0]["new_pid"], 7);
        assert!(v["ranks"][0].get("refused").is_none());
        assert_eq!(v["ranks"][1]["refused"], "the host \"h4\" does not answer");
        assert_eq!(v["host_may_go_down"], false);
    }
}
