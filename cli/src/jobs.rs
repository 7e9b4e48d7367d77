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
    Ok(0)
}

pub fn migrate(job: &str, rank: u32, to: Option<String>) -> Result<i32, Failure> {
    let dir = find_job(job)?;
    let meta = dir.read_meta()?;
    if rank >= meta.n {
        return Err(Failure::usage(format!(
            "job {} has {} ranks (0..{}): there is no rank {rank}",
            meta.job,
            meta.n,
            meta.n.saturating_sub(1)
        )));
    }
    if meta.ended_at.is_some() {
        return Err(Failure::other(format!(
            "job {} has ended ({}): nothing to migrate",
            meta.job,
            job_state(&meta, unix_ms())
        )));
    }
    let req = MigrateRequest {
        rank,
        to: to.clone(),
        requested_at: unix_ms(),
        requester_pid: std::process::id(),
    };
    let (n, path) = dir.queue_request(&req)?;
    let target = to.map(|h| format!(" to {h}")).unwrap_or_default();
    println!(
        "ferry: migration of rank {rank}{target} queued for job {} as request {n} ({})",
        meta.job,
        path.display()
    );
    Ok(0)
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
    let mpi = match meta.mpi.as_str() {
        "mpich" => crate::Mpi::Mpich,
        "openmpi" => crate::Mpi::Openmpi,
        other => {
            return Err(Failure::usage(format!(
                "the checkpoint was taken under an unknown MPI '{other}'"
            )))
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
