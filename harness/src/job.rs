//! One run of a test program: plainly under its MPI's launcher, or under
//! `ferry run` (the library preloaded, as a user runs it), or `ferry
//! restart`; with its output and what the library left (the event log, the
//! job directory's rank statuses) read back through `ferry_common`.
use crate::mpi::Mpi;
use ferry_common::events::{read_events, Event, EventKind};
use ferry_common::job::{JobDir, RankStatus};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// How the program is started.
pub enum Launch<'a> {
    /// `mpiexec -n R PROGRAM`, no library.
    Plain,
    /// `ferry run --mpi M -n R --events EV OPTIONS -- PROGRAM`.
    Ferry(&'a [String]),
    /// `ferry restart DIR --events EV`.
    Restart(&'a Path),
}

/// What one run did and left.
#[derive(Debug)]
pub struct Run {
    /// The exit status (`None`: killed by a signal).
    pub status: Option<i32>,
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
    /// Where the run's files are (`stdout`, `stderr`, `cmd`, `events.jsonl`,
    /// `jobs/`, `work/`).
    pub dir: PathBuf,
    pub events: Vec<Event>,
    /// Each rank's last status (ferry runs), by rank.
    pub ranks: Vec<RankStatus>,
}

impl Run {
    /// Why the run failed as a process, if it did.
    pub fn failure(&self) -> Option<String> {
        if let Some(f) = self.exit_failure() {
            return Some(f);
        }
        if self.stdout.lines().last() != Some("OK") {
            return Some(format!(
                "exited 0 without the final OK line ({})",
                self.where_()
            ));
        }
        None
    }

    /// Why the run did not exit 0, if it did not (for programs without
    /// the final OK line).
    pub fn exit_failure(&self) -> Option<String> {
        if self.timed_out {
            return Some(format!("timed out ({})", self.where_()));
        }
        match self.status {
            Some(0) => None,
            Some(s) => Some(format!("exited with status {s} ({})", self.where_())),
            None => Some(format!("killed by a signal ({})", self.where_())),
        }
    }

    fn where_(&self) -> String {
        format!("see {}", self.dir.display())
    }

    /// The events of one kind.
    pub fn events_of(&self, kind: EventKind) -> impl Iterator<Item = &Event> {
        self.events.iter().filter(move |e| e.event == kind)
    }

    /// Each rank's MPI calls, from the job directory.
    pub fn calls(&self) -> Vec<u64> {
        self.ranks.iter().map(|r| r.calls).collect()
    }

    /// The last lines of the output, for a failure message.
    pub fn tails(&self) -> String {
        let tail = |s: &str| {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(15)..]
                .iter()
                .map(|l| format!("    | {l}\n"))
                .collect::<String>()
        };
        format!(
            "  stdout ({}):\n{}  stderr ({}):\n{}",
            self.dir.join("stdout").display(),
            tail(&self.stdout),
            self.dir.join("stderr").display(),
            tail(&self.stderr)
        )
    }
}

/// The per-run limit: `FERRY_TEST_TIMEOUT` seconds, else 90.
pub fn timeout() -> Duration {
    Duration::from_secs(
        std::env::var("FERRY_TEST_TIMEOUT")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(90),
    )
}

/// Runs `bin` on `ranks` ranks of `mpi`, with `dir` (made anew) for its
/// files and `dir/work` as its working directory, with `env` added to the
/// ranks' environment.
pub fn run(
    mpi: &Mpi,
    bin: &Path,
    ranks: u32,
    dir: &Path,
    launch: Launch,
    env: &[(String, String)],
) -> Result<Run, String> {
    run_in(mpi, bin, &[], ranks, dir, &dir.join("work"), launch, env)
}

/// [`run`] with the program's arguments and another working directory.
#[allow(clippy::too_many_arguments)]
pub fn run_in(
    mpi: &Mpi,
    bin: &Path,
    args: &[String],
    ranks: u32,
    dir: &Path,
    work: &Path,
    launch: Launch,
    env: &[(String, String)],
) -> Result<Run, String> {
    start_in(mpi, bin, args, ranks, dir, work, launch, env)?.wait()
}

/// A run started and not waited for yet (see [`start_in`]).
pub struct Started {
    child: std::process::Child,
    shown: String,
    dir: PathBuf,
    events: PathBuf,
    jobs: PathBuf,
}

/// [`run_in`] without waiting: the run goes on in the background (its
/// output to `dir/stdout` and `dir/stderr`) until [`Started::wait`].
#[allow(clippy::too_many_arguments)]
pub fn start_in(
    mpi: &Mpi,
    bin: &Path,
    args: &[String],
    ranks: u32,
    dir: &Path,
    work: &Path,
    launch: Launch,
    env: &[(String, String)],
) -> Result<Started, String> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::create_dir_all(work).map_err(|e| format!("{}: {e}", work.display()))?;
    let events = dir.join("events.jsonl");
    let jobs = dir.join("jobs");
    let limit = timeout();
    let mut cmd = Command::new("timeout");
    cmd.arg("-k").arg("10").arg(limit.as_secs().to_string());
    match launch {
        Launch::Plain => {
            cmd.arg(mpi.mpiexec())
                .args(mpi.mpiexec_flags())
                .arg("-n")
                .arg(ranks.to_string())
                .arg(bin)
                .args(args);
        }
        Launch::Ferry(options) => {
            cmd.arg(mpi.ferry())
                .arg("run")
                .arg("--mpi")
                .arg(&mpi.name)
                .arg("-n")
                .arg(ranks.to_string())
                .arg("--events")
                .arg(&events)
                .args(options)
                .arg("--")
                .arg(bin)
                .args(args);
        }
        Launch::Restart(ckpt) => {
            cmd.arg(mpi.ferry()).arg("restart").arg(ckpt);
            cmd.env(ferry_common::env::FERRY_EVENTS, &events);
        }
    }
    let file = |name: &str| {
        std::fs::File::create(dir.join(name)).map_err(|e| format!("{}: {e}", dir.display()))
    };
    cmd.current_dir(work)
        .envs(&mpi.env)
        .env(ferry_common::env::FERRY_JOB_ROOT, &jobs)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .stdout(file("stdout")?)
        .stderr(file("stderr")?);
    let shown = format!("{cmd:?}");
    let _ = std::fs::write(dir.join("cmd"), format!("{shown}\n"));
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {shown}: {e}"))?;
    Ok(Started {
        child,
        shown,
        dir: dir.to_path_buf(),
        events,
        jobs,
    })
}

impl Started {
    /// The directory under which the run's job directory appears
    /// (`FERRY_JOB_ROOT`).
    pub fn jobs(&self) -> &Path {
        &self.jobs
    }

    /// The events the run has written so far.
    pub fn events_so_far(&self) -> Vec<Event> {
        read_events(&self.events).unwrap_or_default()
    }

    /// Whether the run is still going.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the run to end; what it did and left.
    pub fn wait(mut self) -> Result<Run, String> {
        let out = self
            .child
            .wait()
            .map_err(|e| format!("waiting for {}: {e}", self.shown))?;
        let read = |name: &str| {
            std::fs::read(self.dir.join(name))
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        let (stdout, stderr) = (read("stdout"), read("stderr"));
        let status = out.code();
        let events = if self.events.exists() {
            read_events(&self.events).map_err(|e| format!("{}: {e}", self.events.display()))?
        } else {
            Vec::new()
        };
        let ranks = job_statuses(&self.jobs);
        Ok(Run {
            status,
            timed_out: matches!(status, Some(124 | 137)),
            stdout,
            stderr,
            dir: self.dir,
            events,
            ranks,
        })
    }
}

/// The rank statuses of the job directory under `jobs` (one job per run).
fn job_statuses(jobs: &Path) -> Vec<RankStatus> {
    let Ok(entries) = std::fs::read_dir(jobs) else {
        return Vec::new();
    };
    for e in entries.flatten() {
        if let Ok(dir) = JobDir::at(&e.path()) {
            if let Ok(mut st) = dir.rank_statuses() {
                st.sort_by_key(|s| s.rank);
                return st;
            }
        }
    }
    Vec::new()
}

/// Whether process `pid` exists and has not ended (a zombie has).
pub fn alive(pid: u32) -> bool {
    ferry_common::job::process_running(pid)
}

/// The `ctest-pids:` lines every test program prints on stderr (common.h):
/// for each rank, the pid it started in and the pid it ends in.
pub fn pids(stderr: &str) -> Vec<(u32, u32, u32)> {
    stderr
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("ctest-pids: rank ")?;
            let (rank, rest) = rest.split_once(" started in pid ")?;
            let (a, b) = rest.split_once(", ends in pid ")?;
            Some((rank.parse().ok()?, a.parse().ok()?, b.trim().parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_lines() {
        let err = "x\nctest-pids: rank 1 started in pid 10, ends in pid 12\nctest-pids: rank 0 started in pid 9, ends in pid 9\n";
        assert_eq!(pids(err), vec![(1, 10, 12), (0, 9, 9)]);
    }
}
