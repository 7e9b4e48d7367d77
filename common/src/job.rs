//! The job directory shared by `ferry run`, `ferry status`, `ferry migrate`
//! and the library running inside the ranks.
//!
//! ```text
//! <job root>/                 $FERRY_JOB_ROOT or ${XDG_RUNTIME_DIR:-/tmp}/ferry-<uid>, mode 0700
//!   <job id>/                 $FERRY_JOB_DIR, mode 0700
//!     job.json                JobMeta, written by `ferry run`
//!     rank-<R>.json           RankStatus, written by the library
//!     events.jsonl            default event log
//!     requests/<n>.json       MigrateRequest, written by `ferry migrate`
//! ```
//! Every JSON file is replaced atomically (written to a temporary file in
//! the same directory, then renamed), so readers never see half a file.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::hash_map::RandomState;
use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::env;

/// An error about the job root, a job directory or one of its files.
#[derive(Debug)]
pub struct JobError {
    message: String,
    source: Option<io::Error>,
}

impl JobError {
    fn new(message: impl Into<String>) -> Self {
        JobError {
            message: message.into(),
            source: None,
        }
    }

    fn io(message: impl Into<String>, source: io::Error) -> Self {
        JobError {
            message: message.into(),
            source: Some(source),
        }
    }

    /// True if the error is "file or directory not found".
    pub fn is_not_found(&self) -> bool {
        matches!(&self.source, Some(e) if e.kind() == io::ErrorKind::NotFound)
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(e) => write!(f, "{}: {e}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for JobError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

/// Metadata of a job, `job.json`. Written by `ferry run` before the
/// launcher starts, again with the launcher's pid, and at the end with
/// the exit status. Times are Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobMeta {
    pub job: String,
    /// `mpich` or `openmpi`.
    pub mpi: String,
    pub program: String,
    /// The program's full command line, `argv[0]` (= `program`) included.
    pub argv: Vec<String>,
    /// Number of ranks.
    pub n: u32,
    /// The launcher executable (`mpiexec`).
    pub launcher: String,
    /// The preloaded library.
    pub lib: String,
    /// Pid of the `ferry run` process.
    pub ferry_pid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launcher_pid: Option<u32>,
    pub started_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    /// Hosts in the job with no rank at its start (ranks may move there).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spare_hosts: Vec<String>,
    /// Whether a moved rank's old process stays until the job ends
    /// (`FERRY_OLD_PROCESS=stay` when the job started) instead of leaving.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub old_processes_stay: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<String>,
    /// `FERRY_MIGRATE` as given to the ranks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrate: Option<String>,
    /// `FERRY_REGROUP` as given to the ranks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regroup: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<u64>,
    /// Exit code of the launcher, if it exited normally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Signal that killed the launcher, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_signal: Option<i32>,
}

/// What one rank reports about itself, `rank-<R>.json` (written by the
/// library; the process replacing a migrated rank keeps writing it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankStatus {
    pub rank: u32,
    pub host: String,
    pub pid: u32,
    /// Migrations this rank has gone through.
    pub migrations: u32,
    /// MPI calls counted so far.
    pub calls: u64,
    /// Unix milliseconds of this report.
    pub updated_at: u64,
    /// Free-form state, e.g. `running`, `migrating`, `finalized`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Collective superstep (MPI_COMM_WORLD) reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superstep: Option<u64>,
    /// Regroups this rank took part in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regroups: Option<u32>,
    /// The MPI function the rank is in or last called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_call: Option<String>,
    /// The machine the process runs on ([`machine_id`]): where its pid
    /// means something (host names differ between the network-namespace
    /// hosts of one machine, which share pids).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// Fields this version does not know, kept as read.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl RankStatus {
    /// A status with the required fields and every optional one absent.
    pub fn new(rank: u32, host: impl Into<String>, pid: u32, migrations: u32, calls: u64) -> Self {
        RankStatus {
            rank,
            host: host.into(),
            pid,
            migrations,
            calls,
            updated_at: crate::time::unix_ms(),
            state: None,
            superstep: None,
            regroups: None,
            last_call: None,
            machine: machine_id(),
            extra: serde_json::Map::new(),
        }
    }
}

/// Whether process `pid` (of this machine) is running: it exists and has
/// not ended (a zombie not reaped yet has: it holds no memory, file or
/// connection any more).
pub fn process_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|st| {
            let state = st
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .next()?
                .to_string();
            Some(state != "Z" && state != "X")
        })
        .unwrap_or(false)
}

/// This machine's identity for as long as it runs: the kernel's boot id
/// (the same in every namespace of one machine, different on another).
pub fn machine_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// A migration asked for from outside the job (`ferry migrate`),
/// `requests/<n>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrateRequest {
    pub rank: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Unix milliseconds.
    pub requested_at: u64,
    pub requester_pid: u32,
    /// Further ranks to move in the same synchronization (one freeze,
    /// one spawn, one new group: `ferry evacuate`, `ferry migrate --rank
    /// 1,2`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub with: Vec<MoveTo>,
}

/// One more rank of a [`MigrateRequest`], and where it goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveTo {
    pub rank: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// The effective user id of this process.
pub fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions, cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

/// This machine's host name (`localhost` if it cannot be read).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for writes of buf.len() bytes; gethostname writes
    // at most that many and we only read up to the first NUL below.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..end]) {
        Ok(s) if !s.is_empty() => s.to_string(),
        _ => "localhost".into(),
    }
}

/// 64 random bits (the standard library seeds its hasher keys from the
/// OS), mixed with a per-process counter so that two calls never collide.
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.finish()
}

/// Where job directories live, from the given variable values:
/// `FERRY_JOB_ROOT`, else `${XDG_RUNTIME_DIR:-/tmp}/ferry-<uid>`.
pub fn job_root_from(
    ferry_job_root: Option<OsString>,
    xdg_runtime_dir: Option<OsString>,
    uid: u32,
) -> PathBuf {
    if let Some(root) = ferry_job_root.filter(|s| !s.is_empty()) {
        return PathBuf::from(root);
    }
    let base = xdg_runtime_dir
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    base.join(format!("ferry-{uid}"))
}

/// The job root of this process's environment, created (mode 0700) if
/// needed and checked with [`check_private_dir`].
pub fn job_root() -> Result<PathBuf, JobError> {
    let root = job_root_from(
        std::env::var_os(env::FERRY_JOB_ROOT),
        std::env::var_os("XDG_RUNTIME_DIR"),
        current_uid(),
    );
    ensure_private_dir(&root)?;
    Ok(root)
}

/// Creates `dir` (and missing parents) with mode 0700 if it does not exist,
/// then checks it with [`check_private_dir`].
pub fn ensure_private_dir(dir: &Path) -> Result<(), JobError> {
    if fs::symlink_metadata(dir).is_err() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| JobError::io(format!("cannot create directory {}", dir.display()), e))?;
    }
    check_private_dir(dir)
}

/// Refuses `dir` unless it is a real directory (not a symlink), owned by
/// the current user, with no access for group or others.
pub fn check_private_dir(dir: &Path) -> Result<(), JobError> {
    let md = fs::symlink_metadata(dir)
        .map_err(|e| JobError::io(format!("cannot stat {}", dir.display()), e))?;
    if md.file_type().is_symlink() {
        return Err(JobError::new(format!(
            "refusing {}: it is a symbolic link (set {} to a real directory)",
            dir.display(),
            env::FERRY_JOB_ROOT
        )));
    }
    if !md.is_dir() {
        return Err(JobError::new(format!(
            "refusing {}: not a directory",
            dir.display()
        )));
    }
    let uid = current_uid();
    if md.uid() != uid {
        return Err(JobError::new(format!(
            "refusing {}: owned by uid {}, not by you (uid {uid}); set {} to a directory of yours",
            dir.display(),
            md.uid(),
            env::FERRY_JOB_ROOT
        )));
    }
    let mode = md.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(JobError::new(format!(
            "refusing {}: group/others have access (mode {mode:04o}); run `chmod 700 {}`",
            dir.display(),
            dir.display()
        )));
    }
    Ok(())
}

/// A new job id: `<host>-<pid>-<4 hex digits>`, only `[A-Za-z0-9-]`,
/// e.g. `node7-48213-a3f9`.
pub fn new_job_id() -> String {
    let host = hostname();
    let first = host.split('.').next().unwrap_or("");
    let mut short: String = first
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(12)
        .collect();
    short = short.trim_matches('-').to_string();
    if short.is_empty() {
        short = "job".into();
    }
    format!(
        "{short}-{}-{:04x}",
        std::process::id(),
        random_u64() & 0xffff
    )
}

/// Checks that `id` can name a job directory: 1–64 characters of
/// `[A-Za-z0-9-]`, not starting with `-`.
pub fn validate_job_id(id: &str) -> Result<(), JobError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('-')
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(JobError::new(format!(
            "invalid job id {id:?} (expected letters, digits and '-', as printed by `ferry run`)"
        )))
    }
}

/// Writes `value` as pretty JSON to `path` atomically: a temporary file in
/// the same directory (mode 0600), then `rename`.
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), JobError> {
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|e| JobError::new(format!("cannot serialize {}: {e}", path.display())))?;
    text.push('\n');
    let tmp = temp_sibling(path);
    write_new_file(&tmp, text.as_bytes())
        .map_err(|e| JobError::io(format!("cannot write {}", tmp.display()), e))?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        JobError::io(
            format!("cannot rename {} to {}", tmp.display(), path.display()),
            e,
        )
    })
}

/// Reads a JSON file written by [`write_json_atomic`].
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, JobError> {
    let text = fs::read_to_string(path)
        .map_err(|e| JobError::io(format!("cannot read {}", path.display()), e))?;
    serde_json::from_str(&text)
        .map_err(|e| JobError::new(format!("invalid {}: {e}", path.display())))
}

fn temp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(
        ".{name}.tmp-{}-{:08x}",
        std::process::id(),
        random_u64() as u32
    ))
}

fn write_new_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

/// One job's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobDir {
    id: String,
    path: PathBuf,
}

impl JobDir {
    /// Creates the directory of a new job `id` under `root` (mode 0700,
    /// with its `requests/` subdirectory). Fails if it already exists.
    pub fn create(root: &Path, id: &str) -> Result<JobDir, JobError> {
        validate_job_id(id)?;
        let path = root.join(id);
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| {
                JobError::io(format!("cannot create job directory {}", path.display()), e)
            })?;
        let dir = JobDir {
            id: id.to_string(),
            path,
        };
        fs::DirBuilder::new()
            .mode(0o700)
            .create(dir.requests_dir())
            .map_err(|e| {
                JobError::io(format!("cannot create {}", dir.requests_dir().display()), e)
            })?;
        Ok(dir)
    }

    /// Creates a new job directory with a fresh id under [`job_root`].
    pub fn create_new() -> Result<JobDir, JobError> {
        let root = job_root()?;
        let mut last = None;
        for _ in 0..16 {
            match JobDir::create(&root, &new_job_id()) {
                Ok(d) => return Ok(d),
                Err(e) if matches!(&e.source, Some(s) if s.kind() == io::ErrorKind::AlreadyExists) => {
                    last = Some(e)
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| JobError::new("cannot find a free job id")))
    }

    /// Opens the existing job `id` under `root`, checking that the directory
    /// is private to the current user.
    pub fn open(root: &Path, id: &str) -> Result<JobDir, JobError> {
        validate_job_id(id)?;
        let path = root.join(id);
        if !path.exists() {
            return Err(JobError::io(
                format!("no job {id} (looked for {})", path.display()),
                io::Error::from(io::ErrorKind::NotFound),
            ));
        }
        check_private_dir(&path)?;
        Ok(JobDir {
            id: id.to_string(),
            path,
        })
    }

    /// Opens an existing job directory given by its path (its id is the
    /// last path component).
    pub fn at(path: &Path) -> Result<JobDir, JobError> {
        let id = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !path.exists() {
            return Err(JobError::io(
                format!("no job directory {}", path.display()),
                io::Error::from(io::ErrorKind::NotFound),
            ));
        }
        check_private_dir(path)?;
        Ok(JobDir {
            id,
            path: path.to_path_buf(),
        })
    }

    /// Finds a job as named on the command line: a job id (looked up under
    /// [`job_root`]) or, if it contains a `/`, the path of its directory.
    pub fn find(job: &str) -> Result<JobDir, JobError> {
        if job.contains('/') {
            JobDir::at(Path::new(job))
        } else {
            JobDir::open(&job_root()?, job)
        }
    }

    /// The job directory named by `FERRY_JOB_DIR` (inside a rank), if set.
    /// Not re-checked: the CLI created it.
    pub fn from_env() -> Option<JobDir> {
        let path = PathBuf::from(std::env::var_os(env::FERRY_JOB_DIR).filter(|v| !v.is_empty())?);
        let id = env::var(env::FERRY_JOB).unwrap_or_else(|| {
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        Some(JobDir { id, path })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `job.json`.
    pub fn job_json(&self) -> PathBuf {
        self.path.join("job.json")
    }

    /// `rank-<R>.json`.
    pub fn rank_file(&self, rank: u32) -> PathBuf {
        self.path.join(format!("rank-{rank}.json"))
    }

    /// `events.jsonl`: where events go when no `--events` was given.
    pub fn events_jsonl(&self) -> PathBuf {
        self.path.join("events.jsonl")
    }

    /// `requests/`.
    pub fn requests_dir(&self) -> PathBuf {
        self.path.join("requests")
    }

    pub fn write_meta(&self, meta: &JobMeta) -> Result<(), JobError> {
        write_json_atomic(&self.job_json(), meta)
    }

    pub fn read_meta(&self) -> Result<JobMeta, JobError> {
        read_json(&self.job_json())
    }

    /// Replaces `rank-<R>.json` atomically.
    pub fn write_rank_status(&self, status: &RankStatus) -> Result<(), JobError> {
        write_json_atomic(&self.rank_file(status.rank), status)
    }

    pub fn read_rank_status(&self, rank: u32) -> Result<RankStatus, JobError> {
        read_json(&self.rank_file(rank))
    }

    /// Every `rank-<R>.json` present, sorted by rank.
    pub fn rank_statuses(&self) -> Result<Vec<RankStatus>, JobError> {
        let mut out = Vec::new();
        for (_, path) in numbered_files(&self.path, "rank-", ".json")? {
            out.push(read_json::<RankStatus>(&path)?);
        }
        out.sort_by_key(|s| s.rank);
        Ok(out)
    }

    /// Queues a migration request as `requests/<n>.json` (n = one more than
    /// the largest number in use), atomically and safe against concurrent
    /// writers: the file is written under a temporary name, then hard-linked
    /// to its final name, which fails if that name is taken.
    pub fn queue_request(&self, req: &MigrateRequest) -> Result<(u64, PathBuf), JobError> {
        let dir = self.requests_dir();
        if !dir.exists() {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(&dir)
                .map_err(|e| JobError::io(format!("cannot create {}", dir.display()), e))?;
        }
        let mut text = serde_json::to_string_pretty(req)
            .map_err(|e| JobError::new(format!("cannot serialize request: {e}")))?;
        text.push('\n');
        let tmp = temp_sibling(&dir.join("request"));
        write_new_file(&tmp, text.as_bytes())
            .map_err(|e| JobError::io(format!("cannot write {}", tmp.display()), e))?;
        let result = (|| {
            for _ in 0..100 {
                let n = self.highest_request_number()? + 1;
                let path = dir.join(format!("{n}.json"));
                match fs::hard_link(&tmp, &path) {
                    Ok(()) => return Ok((n, path)),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                    Err(e) => {
                        return Err(JobError::io(format!("cannot create {}", path.display()), e))
                    }
                }
            }
            Err(JobError::new(format!(
                "cannot queue a request in {}: too much contention",
                dir.display()
            )))
        })();
        let _ = fs::remove_file(&tmp);
        result
    }

    /// Largest `<n>` of any `requests/<n>.*` file (0 if none).
    fn highest_request_number(&self) -> Result<u64, JobError> {
        let dir = self.requests_dir();
        let entries = fs::read_dir(&dir)
            .map_err(|e| JobError::io(format!("cannot list {}", dir.display()), e))?;
        let mut max = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let stem = name.split('.').next().unwrap_or("");
            if let Ok(n) = stem.parse::<u64>() {
                max = max.max(n);
            }
        }
        Ok(max)
    }

    /// Queued requests `requests/<n>.json`, oldest first.
    pub fn pending_requests(&self) -> Result<Vec<(u64, PathBuf)>, JobError> {
        let dir = self.requests_dir();
        if !dir.exists() {
            return Ok(Vec::new());
        }
        numbered_files(&dir, "", ".json")
    }
}

/// Files `<prefix><n><suffix>` in `dir`, sorted by n.
fn numbered_files(dir: &Path, prefix: &str, suffix: &str) -> Result<Vec<(u64, PathBuf)>, JobError> {
    let entries =
        fs::read_dir(dir).map_err(|e| JobError::io(format!("cannot list {}", dir.display()), e))?;
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(num) = name
            .strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(suffix))
        else {
            continue;
        };
        if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(n) = num.parse::<u64>() {
            out.push((n, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_running_process_and_one_that_is_not() {
        assert!(super::process_running(std::process::id()));
        // A child that has ended and is not reaped yet: a zombie.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(!super::process_running(pid));
        child.wait().unwrap();
        assert!(!super::process_running(pid));
    }

    use super::*;

    /// A fresh private temporary directory, removed on drop.
    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let p = std::env::temp_dir().join(format!(
                "ferry-job-test-{tag}-{}-{:x}",
                std::process::id(),
                random_u64()
            ));
            fs::DirBuilder::new().mode(0o700).create(&p).unwrap();
            TempDir(p)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn job_root_selection() {
        let r = job_root_from(Some("/x/y".into()), Some("/run/user/5".into()), 5);
        assert_eq!(r, PathBuf::from("/x/y"));
        let r = job_root_from(None, Some("/run/user/5".into()), 5);
        assert_eq!(r, PathBuf::from("/run/user/5/ferry-5"));
        let r = job_root_from(Some("".into()), Some("".into()), 7);
        assert_eq!(r, PathBuf::from("/tmp/ferry-7"));
        let r = job_root_from(None, None, 0);
        assert_eq!(r, PathBuf::from("/tmp/ferry-0"));
    }

    #[test]
    fn private_dir_checks() {
        let t = TempDir::new("priv");
        let root = t.0.join("a/b/root");
        ensure_private_dir(&root).unwrap();
        assert_eq!(
            fs::metadata(&root).unwrap().permissions().mode() & 0o777,
            0o700
        );
        // Idempotent.
        ensure_private_dir(&root).unwrap();

        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        let e = ensure_private_dir(&root).unwrap_err().to_string();
        assert!(e.contains("group/others have access (mode 0755)"), "{e}");
        assert!(e.contains("chmod 700"), "{e}");

        let link = t.0.join("link");
        std::os::unix::fs::symlink(&root, &link).unwrap();
        let e = check_private_dir(&link).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");

        let file = t.0.join("file");
        fs::write(&file, "x").unwrap();
        let e = check_private_dir(&file).unwrap_err().to_string();
        assert!(e.contains("not a directory"), "{e}");
    }

    #[test]
    fn job_ids() {
        let a = new_job_id();
        let b = new_job_id();
        assert_ne!(a, b);
        for id in [&a, &b] {
            validate_job_id(id).unwrap();
            assert!(id.len() <= 32, "{id}");
            assert!(id.contains(&format!("-{}-", std::process::id())), "{id}");
        }
        assert!(validate_job_id("../etc").is_err());
        assert!(validate_job_id("").is_err());
        assert!(validate_job_id("-x").is_err());
        assert!(validate_job_id("a/b").is_err());
        assert!(validate_job_id("node1-123-ab12").is_ok());
    }

    #[test]
    fn job_dir_files() {
        let t = TempDir::new("dir");
        let d = JobDir::create(&t.0, "h-1-abcd").unwrap();
        assert!(JobDir::create(&t.0, "h-1-abcd").is_err());
        assert!(JobDir::create(&t.0, "bad/id").is_err());
        assert_eq!(d.id(), "h-1-abcd");
        assert_eq!(d.job_json(), t.0.join("h-1-abcd/job.json"));
        assert_eq!(d.rank_file(3), t.0.join("h-1-abcd/rank-3.json"));
        assert_eq!(d.events_jsonl(), t.0.join("h-1-abcd/events.jsonl"));
        assert_eq!(
            fs::metadata(d.path()).unwrap().permissions().mode() & 0o777,
            0o700
        );

        let meta = JobMeta {
            job: "h-1-abcd".into(),
            mpi: "mpich".into(),
            program: "./a.out".into(),
            argv: vec!["./a.out".into(), "x".into()],
            n: 2,
            launcher: "/bin/mpiexec".into(),
            lib: "/lib/libferry.so".into(),
            ferry_pid: 1,
            launcher_pid: None,
            started_at: 5,
            cwd: None,
            hosts: None,
            spare_hosts: Vec::new(),
            old_processes_stay: false,
            events: None,
            migrate: Some("rank=1,after=2".into()),
            regroup: None,
            checkpoint: None,
            ended_at: None,
            exit_code: None,
            exit_signal: None,
        };
        d.write_meta(&meta).unwrap();
        assert_eq!(d.read_meta().unwrap(), meta);
        let text = fs::read_to_string(d.job_json()).unwrap();
        assert!(
            !text.contains("launcher_pid"),
            "absent fields are omitted: {text}"
        );
        assert_eq!(
            fs::metadata(d.job_json()).unwrap().permissions().mode() & 0o777,
            0o600
        );

        assert!(d.rank_statuses().unwrap().is_empty());
        for r in [10, 2, 0] {
            let mut s = RankStatus::new(r, "h", 100 + r, 0, 42);
            s.state = Some("running".into());
            d.write_rank_status(&s).unwrap();
        }
        let st = d.rank_statuses().unwrap();
        assert_eq!(
            st.iter().map(|s| s.rank).collect::<Vec<_>>(),
            vec![0, 2, 10]
        );
        assert_eq!(d.read_rank_status(2).unwrap().pid, 102);
        // Unknown fields written by a newer library are kept.
        fs::write(
            d.rank_file(5),
            r#"{"rank":5,"host":"h","pid":1,"migrations":1,"calls":9,"updated_at":3,"window":7}"#,
        )
        .unwrap();
        assert_eq!(d.read_rank_status(5).unwrap().extra["window"], 7);
        // No temporary files are left behind.
        let leftovers: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty());

        let opened = JobDir::open(&t.0, "h-1-abcd").unwrap();
        assert_eq!(opened, d);
        let e = JobDir::open(&t.0, "nope").unwrap_err();
        assert!(e.is_not_found(), "{e}");
        assert!(e.to_string().contains("no job nope"), "{e}");
        assert_eq!(JobDir::at(d.path()).unwrap(), d);
    }

    #[test]
    fn requests_queue() {
        let t = TempDir::new("req");
        let d = JobDir::create(&t.0, "j-1-0000").unwrap();
        assert!(d.pending_requests().unwrap().is_empty());
        let req = MigrateRequest {
            rank: 1,
            to: Some("h2".into()),
            requested_at: 9,
            requester_pid: 4,
            with: vec![MoveTo { rank: 2, to: None }],
        };
        let (n1, p1) = d.queue_request(&req).unwrap();
        // A request of one rank reads as before (no `with` written).
        let one = MigrateRequest {
            with: Vec::new(),
            ..req.clone()
        };
        let text = serde_json::to_string(&one).unwrap();
        assert!(!text.contains("with"), "{text}");
        assert_eq!(serde_json::from_str::<MigrateRequest>(&text).unwrap(), one);
        let (n2, _) = d.queue_request(&req).unwrap();
        assert_eq!((n1, n2), (1, 2));
        assert_eq!(read_json::<MigrateRequest>(&p1).unwrap(), req);
        // A consumer renaming 2.json -> 2.done does not make 2 reusable.
        fs::rename(
            d.requests_dir().join("2.json"),
            d.requests_dir().join("2.done"),
        )
        .unwrap();
        let (n3, _) = d.queue_request(&req).unwrap();
        assert_eq!(n3, 3);
        let pending: Vec<u64> = d
            .pending_requests()
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(pending, vec![1, 3]);
        let names: Vec<String> = fs::read_dir(d.requests_dir())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.contains("tmp")), "{names:?}");
    }

    #[test]
    fn host_name_is_nonempty() {
        assert!(!hostname().is_empty());
    }
}
