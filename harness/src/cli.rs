//! The ways to ask for a migration with the `ferry` command and the ways
//! one must be refused, end to end on one host (formerly
//! `scripts/migration-tests.sh`). Cases `cli::CHECK::MPI`, on MPICH and Open
//! MPI, on `examples/heat.c` (4 ranks) unless said; the job's output must
//! always equal the plain run's:
//!
//! | check | run | passes when |
//! |---|---|---|
//! | `spec-to-host` | `--migrate rank=1,after=200,to=$(hostname)` | one `migrate` event, of rank 1, to this host, into a new pid |
//! | `two-at-once` | `--migrate rank=0,after=250 --migrate rank=2,after=250` | both move (queued, not lost): two `migrate` events, ranks 0 and 2 |
//! | `external` | `ferry migrate --job J --rank 2` on a running job (`heat 2000 2000`, at least 4 s) | it exits 0 saying `rank 2 moved`; one `migrate` event; `ferry status` shows rank 2 with 1 migration; the job ends as the plain run |
//! | `migrate-unknown-rank` | `ferry migrate --rank 9` on that job | a usage error (exit 2) saying `there is no rank 9`; the job goes on (`external`) |
//! | `migrate-unknown-host` | `ferry migrate --rank 1 --to no-such-host.invalid` on that job | exit 2 saying `unknown host` |
//! | `spec-unknown-host` | `--migrate rank=1,after=200,to=no-such-host.invalid` | no move; the migration of rank 1 refused (event and stderr): the host is unknown |
//! | `image-off` | `FERRY_IMAGE=0`, `--migrate rank=3,after=200` | no move; refused: its process image is off |
//! | `threads` | `c-tests/image_thread.c` (2 ranks), `--migrate rank=1,after=20` | no move; the migration of rank 1 refused for a thread |
//! | `old-leaves` | the long heat job (below), `--migrate` ranks 1, 2, 1; each `migrate` event, as it appears, answered by `kill -9` of its old pid | the old process was gone already at each event; three moves; exit 0, output equal |
//! | `together` | `ferry migrate --job J --rank 1,2,3` on a running job (the long heat job), its ranks exchanging halos meanwhile | it exits 0 saying each rank moved; three `migrate` events of the same regroup (one epoch: one freeze and drain, one spawn, one new group), each naming the batch `[1, 2, 3]`; every old pid gone; exit 0, output equal |
//! | `fifty-moves` | the long heat job with 50 `--migrate` SPECs (ranks 0-3 in turn) | 50 moves; no old process alive at the end; exit 0, output equal; the 50th move's state transfer against the first's is reported (not judged: timing belongs in `bench/`) |
//!
//! The three `external` checks share one job per MPI (a retry of
//! `external` starts its own).
use crate::job::{self, Launch, Run};
use crate::modes::{fails, retrying, same_output};
use crate::mpi::Mpi;
use crate::program::Program;
use ferry_common::events::EventKind;
use ferry_common::job::JobDir;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The MPIs these cases run on (as the script did; Debian's MPICH 4.0.2
/// cannot spawn).
pub const MPIS: &[&str] = &["mpich", "openmpi"];

/// Every check, in the order the cases are listed.
pub const CHECKS: &[&str] = &[
    "spec-to-host",
    "two-at-once",
    "external",
    "migrate-unknown-rank",
    "migrate-unknown-host",
    "spec-unknown-host",
    "image-off",
    "threads",
    "old-leaves",
    "together",
    "fifty-moves",
];

/// A host name that does not resolve.
const NO_HOST: &str = "no-such-host.invalid";

/// `cli::CHECK::MPI`.
pub fn case_name(check: &str, mpi: &str) -> String {
    format!("cli::{check}::{mpi}")
}

/// Runs one case (with retries). `Ok`: what passed.
pub fn run(mpi: &Mpi, check: &str, seed: u64) -> Result<String, String> {
    retrying(&case_name(check, &mpi.name), seed, |attempt| {
        once(mpi, check, attempt)
    })
}

fn once(mpi: &Mpi, check: &str, attempt: usize) -> Result<String, String> {
    let s = setup(mpi)?;
    let dir = out(mpi).join(check);
    let heat = |options: &[&str], env: &[(&str, &str)]| -> Result<Run, String> {
        s.ferry(mpi, "heat", &[], &dir, options, env)
    };
    match check {
        "spec-to-host" => {
            let host = ferry_common::job::hostname();
            let run = heat(&["--migrate", &format!("rank=1,after=200,to={host}")], &[])?;
            s.same_as_plain(mpi, &run, "heat")?;
            let moves = moves(&run);
            let [m] = moves.as_slice() else {
                return Err(format!(
                    "{} moves, expected 1 ({})",
                    moves.len(),
                    run.dir.display()
                ));
            };
            if m.rank != Some(1) || m.to_host.as_deref() != Some(host.as_str()) {
                return Err(format!(
                    "the move was of rank {:?} to {:?}, expected rank 1 to {host:?}",
                    m.rank, m.to_host
                ));
            }
            if m.old_pid.is_none() || m.old_pid == m.new_pid {
                return Err(format!(
                    "the move kept its pid ({:?} -> {:?})",
                    m.old_pid, m.new_pid
                ));
            }
            Ok(format!(
                "rank 1 moved to {host}: pid {} -> {}",
                m.old_pid.unwrap_or(0),
                m.new_pid.unwrap_or(0)
            ))
        }
        "two-at-once" => {
            let run = heat(
                &[
                    "--migrate",
                    "rank=0,after=250",
                    "--migrate",
                    "rank=2,after=250",
                ],
                &[],
            )?;
            s.same_as_plain(mpi, &run, "heat")?;
            let mut ranks: Vec<Option<u32>> = moves(&run).iter().map(|e| e.rank).collect();
            ranks.sort();
            if ranks != [Some(0), Some(2)] {
                return Err(format!(
                    "moves of ranks {ranks:?}, expected 0 and 2 ({})",
                    run.dir.display()
                ));
            }
            Ok("ranks 0 and 2 moved, one after the other".into())
        }
        "external" | "migrate-unknown-rank" | "migrate-unknown-host" => {
            let e = if check == "external" && attempt > 0 {
                Arc::new(external(mpi, &s, &format!("external.{attempt}"))?)
            } else {
                s.external(mpi)?
            };
            match check {
                "external" => e.check(mpi, &s),
                "migrate-unknown-rank" => {
                    let (rc, out) = &e.unknown_rank;
                    if *rc != Some(2) || !out.contains("there is no rank 9") {
                        return Err(format!(
                            "ferry migrate --rank 9 exited {rc:?}, expected 2 with `there is no rank 9`:\n{out}"
                        ));
                    }
                    Ok(out.lines().next().unwrap_or("").to_string())
                }
                _ => {
                    let (rc, out) = &e.unknown_host;
                    if *rc != Some(2) || !out.contains("unknown host") {
                        return Err(format!(
                            "ferry migrate --to {NO_HOST} exited {rc:?}, expected 2 with `unknown host`:\n{out}"
                        ));
                    }
                    Ok(out.lines().next().unwrap_or("").to_string())
                }
            }
        }
        "spec-unknown-host" => {
            let run = heat(
                &["--migrate", &format!("rank=1,after=200,to={NO_HOST}")],
                &[],
            )?;
            s.same_as_plain(mpi, &run, "heat")?;
            refused(&run, 1, &format!("the host \"{NO_HOST}\" is unknown"))
        }
        "image-off" => {
            let run = heat(&["--migrate", "rank=3,after=200"], &[("FERRY_IMAGE", "0")])?;
            s.same_as_plain(mpi, &run, "heat")?;
            refused(&run, 3, "its process image is off")
        }
        "threads" => {
            let run = s.ferry(
                mpi,
                "image_thread",
                &[],
                &dir,
                &["--migrate", "rank=1,after=20"],
                &[],
            )?;
            s.same_as_plain(mpi, &run, "image_thread")?;
            refused(&run, 1, "thread")
        }
        "old-leaves" => old_leaves(mpi, &s, &dir),
        "together" => together(mpi, &s, &dir),
        "fifty-moves" => fifty_moves(mpi, &s, &dir),
        other => Err(format!("no such check {other}")),
    }
}

/// `old-leaves`: each move's old process is gone when its event appears;
/// a `kill -9` of it then cannot harm the job.
fn old_leaves(mpi: &Mpi, s: &Setup, dir: &Path) -> Result<String, String> {
    let specs = [
        "rank=1,after=1000",
        "rank=2,after=2500",
        "rank=1,after=4000",
    ];
    let mut options = Vec::new();
    for sp in specs {
        options.push("--migrate".to_string());
        options.push(sp.to_string());
    }
    let mut started = job::start_in(
        mpi,
        &s.bins["heat"],
        &long(),
        4,
        dir,
        &dir.join("work"),
        Launch::Ferry(&options),
        &[("FERRY_LOG".into(), "info".into())],
    )?;
    let mut killed: Vec<(u32, bool)> = Vec::new();
    loop {
        let going = started.running();
        for e in started.events_so_far() {
            if e.event != EventKind::Migrate {
                continue;
            }
            let Some(pid) = e.old_pid else { continue };
            if killed.iter().any(|(p, _)| *p == pid) {
                continue;
            }
            let was_alive = job::alive(pid);
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(std::process::Stdio::null())
                .status();
            killed.push((pid, was_alive));
        }
        if !going {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let run = started.wait()?;
    s.same_as_plain_with(mpi, &run, "heat", &long())?;
    if moves(&run).len() != specs.len() {
        return Err(format!(
            "{} moves, expected {} ({})",
            moves(&run).len(),
            specs.len(),
            run.dir.display()
        ));
    }
    if let Some((pid, _)) = killed.iter().find(|(_, alive)| *alive) {
        return Err(format!(
            "the old process {pid} was still alive when its migrate event appeared ({})",
            run.dir.display()
        ));
    }
    let waited: Vec<String> = moves(&run)
        .iter()
        .map(|e| {
            e.extra
                .get("old_process_gone_us")
                .and_then(|v| v.as_u64())
                .map_or("?".into(), |us| format!("{:.1}", us as f64 / 1e3))
        })
        .collect();
    Ok(format!(
        "3 moves; old pids {:?} gone at each event (the leader waited {} ms), kill -9 of each: exit 0, output identical",
        killed.iter().map(|k| k.0).collect::<Vec<_>>(),
        waited.join(", ")
    ))
}

/// `together`: three ranks moved by one `ferry migrate` move in one
/// synchronization.
fn together(mpi: &Mpi, s: &Setup, dir: &Path) -> Result<String, String> {
    let (started, job) = start_long_heat(mpi, s, dir)?;
    let out = Command::new(mpi.ferry())
        .args([
            "migrate",
            "--job",
            &job,
            "--rank",
            "1,2,3",
            "--timeout",
            "90",
        ])
        .envs(&mpi.env)
        .env(ferry_common::env::FERRY_JOB_ROOT, started.jobs())
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", mpi.ferry().display()))?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::write(dir.join("ferry-migrate.out"), &said);
    let run = started.wait()?;
    if out.status.code() != Some(0) || (1..=3).any(|r| !said.contains(&format!("rank {r} moved"))) {
        return Err(format!(
            "ferry migrate --rank 1,2,3 exited {:?} without each `rank R moved`:
{said}",
            out.status.code()
        ));
    }
    s.same_as_plain_with(mpi, &run, "heat", &long())?;
    let moved = moves(&run);
    let mut ranks: Vec<Option<u32>> = moved.iter().map(|e| e.rank).collect();
    ranks.sort();
    if ranks != [Some(1), Some(2), Some(3)] {
        return Err(format!(
            "moves of ranks {ranks:?}, expected 1, 2 and 3 ({})",
            run.dir.display()
        ));
    }
    let epochs: Vec<Option<u64>> = moved
        .iter()
        .map(|e| e.extra.get("epoch").and_then(|v| v.as_u64()))
        .collect();
    if epochs.iter().any(|e| e.is_none() || *e != epochs[0]) {
        return Err(format!(
            "the moves were of regroups {epochs:?}, expected one ({})",
            run.dir.display()
        ));
    }
    for e in &moved {
        let batch = e.extra.get("batch").cloned().unwrap_or_default();
        if batch != serde_json::json!([1, 2, 3]) {
            return Err(format!(
                "rank {:?}'s event names the batch {batch}, expected [1, 2, 3] ({})",
                e.rank,
                run.dir.display()
            ));
        }
    }
    let old: Vec<u32> = moved.iter().filter_map(|e| e.old_pid).collect();
    let new: Vec<u32> = moved.iter().filter_map(|e| e.new_pid).collect();
    if old.len() != 3 || new.len() != 3 || old.iter().any(|p| new.contains(p)) {
        return Err(format!(
            "old pids {old:?}, new pids {new:?}: expected three moves into new processes"
        ));
    }
    if let Some(p) = old.iter().find(|&&p| job::alive(p)) {
        return Err(format!("the old process {p} is still alive after the job"));
    }
    let m = moved[0];
    Ok(format!(
        "ranks 1, 2, 3 moved in regroup {}: pids {old:?} -> {new:?}; spawn {:.1} ms, transfer {:.1} ms, total {:.1} ms",
        epochs[0].unwrap_or(0),
        m.phases_us.spawn.unwrap_or(0) as f64 / 1e3,
        m.phases_us.state_transfer.unwrap_or(0) as f64 / 1e3,
        m.phases_us.total.unwrap_or(0) as f64 / 1e3
    ))
}

/// `fifty-moves`: 50 moves in one job leave no old process behind.
fn fifty_moves(mpi: &Mpi, s: &Setup, dir: &Path) -> Result<String, String> {
    const MOVES: u64 = 50;
    let mut options = Vec::new();
    for i in 0..MOVES {
        options.push("--migrate".to_string());
        options.push(format!("rank={},after={}", i % 4, 200 + (i / 4) * 400));
    }
    let run = job::run_in(
        mpi,
        &s.bins["heat"],
        &long(),
        4,
        dir,
        &dir.join("work"),
        Launch::Ferry(&options),
        &[("FERRY_LOG".into(), "info".into())],
    )?;
    s.same_as_plain_with(mpi, &run, "heat", &long())?;
    let moved = moves(&run);
    if moved.len() as u64 != MOVES {
        return Err(format!(
            "{} moves, expected {MOVES} ({})",
            moved.len(),
            run.dir.display()
        ));
    }
    let old: Vec<u32> = moved.iter().filter_map(|e| e.old_pid).collect();
    let left: Vec<u32> = old.iter().copied().filter(|&p| job::alive(p)).collect();
    if !left.is_empty() {
        return Err(format!(
            "old processes still alive after the job: {left:?} ({})",
            run.dir.display()
        ));
    }
    let transfer = |e: &ferry_common::events::Event| e.phases_us.state_transfer.unwrap_or(0);
    let (first, last) = (transfer(moved[0]), transfer(moved[moved.len() - 1]));
    Ok(format!(
        "{MOVES} moves, none of the {} old pids alive; state transfer of the 50th {:.1} ms against the first's {:.1} ms (x{:.2})",
        old.len(),
        last as f64 / 1e3,
        first as f64 / 1e3,
        last as f64 / first.max(1) as f64
    ))
}

/// The `migrate` events of a run.
fn moves(run: &Run) -> Vec<&ferry_common::events::Event> {
    run.events_of(EventKind::Migrate).collect()
}

/// No move, and the migration of `rank` refused for a reason containing
/// `why`, in the event log and on stderr.
fn refused(run: &Run, rank: u32, why: &str) -> Result<String, String> {
    if !moves(run).is_empty() {
        return Err(format!(
            "{} moves, expected none ({})",
            moves(run).len(),
            run.dir.display()
        ));
    }
    let reasons: Vec<&str> = run
        .events_of(EventKind::Refused)
        .filter(|e| e.rank == Some(rank))
        .filter_map(|e| e.refusal())
        .filter(|(op, _)| *op == "migration")
        .map(|(_, r)| r)
        .collect();
    let Some(reason) = reasons.iter().find(|r| r.contains(why)) else {
        return Err(format!(
            "no refusal of rank {rank}'s migration for `{why}` in the event log (refusals: {reasons:?}; {})",
            run.dir.display()
        ));
    };
    let said = format!("migration of rank {rank} refused: {reason}");
    if !run.stderr.contains(&said) {
        return Err(format!("stderr does not say `{said}`\n{}", run.tails()));
    }
    Ok(said)
}

/// What one MPI's cases share: the programs built and their plain runs.
struct Setup {
    bins: HashMap<&'static str, PathBuf>,
    ranks: HashMap<&'static str, u32>,
    /// The plain runs' stdout, by program and arguments.
    plain: Mutex<HashMap<(String, Vec<String>), String>>,
    external: Mutex<Option<Arc<External>>>,
}

impl Setup {
    /// `ferry run` of a program, with `FERRY_LOG=info`.
    fn ferry(
        &self,
        mpi: &Mpi,
        p: &str,
        args: &[String],
        dir: &Path,
        options: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Run, String> {
        let options: Vec<String> = options.iter().map(|s| s.to_string()).collect();
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.push(("FERRY_LOG".into(), "info".into()));
        job::run_in(
            mpi,
            &self.bins[p],
            args,
            self.ranks[p],
            dir,
            &dir.join("work"),
            Launch::Ferry(&options),
            &env,
        )
    }

    /// The run exited 0 and printed what the plain run of `p` (with the
    /// same arguments) prints.
    fn same_as_plain(&self, mpi: &Mpi, run: &Run, p: &str) -> Result<(), String> {
        self.same_as_plain_with(mpi, run, p, &[])
    }

    fn same_as_plain_with(
        &self,
        mpi: &Mpi,
        run: &Run,
        p: &str,
        args: &[String],
    ) -> Result<(), String> {
        if let Some(f) = run.exit_failure() {
            return Err(format!("{f}\n{}", run.tails()));
        }
        same_output(&self.plain(mpi, p, args)?, &run.stdout, &run.dir)
    }

    /// The shared external job (made again while it could not be made).
    fn external(&self, mpi: &Mpi) -> Result<Arc<External>, String> {
        let mut e = self.external.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = &*e {
            return Ok(e.clone());
        }
        let made = Arc::new(external(mpi, self, "external")?);
        *e = Some(made.clone());
        Ok(made)
    }

    /// The plain run of `p` with `args` (made once).
    fn plain(&self, mpi: &Mpi, p: &str, args: &[String]) -> Result<String, String> {
        let key = (p.to_string(), args.to_vec());
        let mut plain = self.plain.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(out) = plain.get(&key) {
            return Ok(out.clone());
        }
        let dir = out(mpi)
            .join("plain")
            .join(format!("{p}{}", args.join("-")));
        let run = job::run_in(
            mpi,
            &self.bins[p],
            args,
            self.ranks[p],
            &dir,
            &dir.join("work"),
            Launch::Plain,
            &[],
        )?;
        // (heat prints no OK line)
        let failed = if p == "heat" {
            run.exit_failure()
        } else {
            fails(&run).err()
        };
        if let Some(f) = failed {
            return Err(format!(
                "the plain run of {p} {args:?}: {f}\n{}",
                run.tails()
            ));
        }
        plain.insert(key, run.stdout.clone());
        Ok(run.stdout)
    }
}

/// The long heat job acted on from outside, and what the commands said.
struct External {
    run: Run,
    /// `ferry migrate --rank 2`: exit status and output.
    migrate: (Option<i32>, String),
    status: (Option<i32>, String),
    unknown_rank: (Option<i32>, String),
    unknown_host: (Option<i32>, String),
}

/// The arguments of the long heat run: 2000 steps, 2 ms asleep in each
/// (at least 4 s, as the script's 4000 steps of 1 ms, with half the
/// steps to synchronize on a loaded machine).
fn long() -> Vec<String> {
    vec!["2000".into(), "2000".into()]
}

/// Starts the long heat job, waits until its 4 ranks have reported, asks
/// `ferry migrate` (rank 9, rank 1 to an unknown host, rank 2) and `ferry
/// status`, and waits for the job's end.
fn external(mpi: &Mpi, s: &Setup, name: &str) -> Result<External, String> {
    let dir = out(mpi).join(name);
    let (started, job) = start_long_heat(mpi, s, &dir)?;
    let ferry = |args: &[&str]| -> (Option<i32>, String) {
        let out = Command::new(mpi.ferry())
            .args(args)
            .envs(&mpi.env)
            .env(ferry_common::env::FERRY_JOB_ROOT, started.jobs())
            .stdin(std::process::Stdio::null())
            .output();
        match out {
            Ok(o) => (
                o.status.code(),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                ),
            ),
            Err(e) => (None, format!("cannot run {}: {e}", mpi.ferry().display())),
        }
    };
    let unknown_rank = ferry(&["migrate", "--job", &job, "--rank", "9"]);
    let unknown_host = ferry(&["migrate", "--job", &job, "--rank", "1", "--to", NO_HOST]);
    let migrate = ferry(&["migrate", "--job", &job, "--rank", "2", "--timeout", "60"]);
    let status = ferry(&["status", "--job", &job]);
    let run = started.wait()?;
    for (what, (_, out)) in [
        ("migrate-unknown-rank", &unknown_rank),
        ("migrate-unknown-host", &unknown_host),
        ("migrate", &migrate),
        ("status", &status),
    ] {
        let _ = std::fs::write(dir.join(format!("ferry-{what}.out")), out);
    }
    Ok(External {
        run,
        migrate,
        status,
        unknown_rank,
        unknown_host,
    })
}

impl External {
    fn check(&self, mpi: &Mpi, s: &Setup) -> Result<String, String> {
        let (rc, out) = &self.migrate;
        let said = out.lines().find(|l| l.contains("rank 2 moved"));
        let Some(said) = said.filter(|_| *rc == Some(0)) else {
            return Err(format!(
                "ferry migrate --rank 2 exited {rc:?} without `rank 2 moved`:\n{out}"
            ));
        };
        s.same_as_plain_with(mpi, &self.run, "heat", &long())?;
        let moves = moves(&self.run);
        if moves.len() != 1 || moves[0].rank != Some(2) {
            return Err(format!(
                "{} moves in the event log, expected 1 of rank 2 ({})",
                moves.len(),
                self.run.dir.display()
            ));
        }
        // `ferry status`'s table: rank, host, pid, migrations, ...
        let (rc, out) = &self.status;
        let row = out.lines().find(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.first() == Some(&"2") && w.get(3) == Some(&"1")
        });
        if *rc != Some(0) || row.is_none() {
            return Err(format!(
                "ferry status exited {rc:?} without rank 2 at 1 migration:\n{out}"
            ));
        }
        Ok(said.trim().to_string())
    }
}

/// Starts the long heat job under `ferry run` in `dir` and waits (at most
/// 60 s) until its 4 ranks have reported: the run and its job id.
fn start_long_heat(mpi: &Mpi, s: &Setup, dir: &Path) -> Result<(job::Started, String), String> {
    let started = job::start_in(
        mpi,
        &s.bins["heat"],
        &long(),
        4,
        dir,
        &dir.join("work"),
        Launch::Ferry(&[]),
        &[("FERRY_LOG".into(), "info".into())],
    )?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(j) = running_job(started.jobs(), 4) {
            return Ok((started, j));
        }
        if Instant::now() > deadline {
            let _ = started.wait();
            return Err(format!(
                "the job's 4 ranks did not report within 60 s ({})",
                dir.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The id of the job under `jobs` once `ranks` ranks have reported.
fn running_job(jobs: &Path, ranks: usize) -> Option<String> {
    for e in std::fs::read_dir(jobs).ok()?.flatten() {
        let Ok(dir) = JobDir::at(&e.path()) else {
            continue;
        };
        if dir.rank_statuses().is_ok_and(|s| s.len() == ranks) {
            return dir.read_meta().ok().map(|m| m.job);
        }
    }
    None
}

/// `target/ferry-tests/MPI/cli/`.
fn out(mpi: &Mpi) -> PathBuf {
    crate::out_dir().join(&mpi.name).join("cli")
}

/// The programs of one MPI built, once per harness process.
fn setup(mpi: &Mpi) -> Result<Arc<Setup>, String> {
    // (A failure is not kept: a retry of the case tries again.)
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Setup>>>> = OnceLock::new();
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(s) = cache.get(&mpi.name) {
        return Ok(s.clone());
    }
    let s = Arc::new(make_setup(mpi)?);
    cache.insert(mpi.name.clone(), s.clone());
    Ok(s)
}

fn make_setup(mpi: &Mpi) -> Result<Setup, String> {
    if let Some(m) = mpi.missing() {
        return Err(m);
    }
    let root = crate::root();
    let bin = out(mpi).join("bin");
    let heat = Program {
        name: "heat".into(),
        source: root.join("examples/heat.c"),
        ranks: 4,
        ..Program::default()
    };
    let thread_src = root.join("c-tests/image_thread.c");
    let thread = Program::parse(
        "image_thread",
        &thread_src,
        &std::fs::read_to_string(&thread_src)
            .map_err(|e| format!("{}: {e}", thread_src.display()))?,
    )?;
    let mut bins = HashMap::new();
    let mut ranks = HashMap::new();
    for (name, p) in [("heat", &heat), ("image_thread", &thread)] {
        bins.insert(name, p.build(mpi, &bin)?);
        ranks.insert(name, p.ranks);
    }
    Ok(Setup {
        bins,
        ranks,
        plain: Mutex::new(HashMap::new()),
        external: Mutex::new(None),
    })
}
