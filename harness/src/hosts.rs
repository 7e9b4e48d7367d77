//! Migration between hosts: cases `hosts::NAME::MPI` on a cluster of 4
//! hosts made of network namespaces on this machine (`scripts/cluster.sh`:
//! ferry-h1..h4, 10.77.0.11-14; infrastructure the harness calls, the
//! checks are here). Each case sets the cluster up and tears it down
//! (killing what still runs on it), holding a lock so that two harnesses
//! on one machine do not share it.
//!
//! | case | what | passes when |
//! |---|---|---|
//! | `ring`, `p2p_blocking`, `coll_blocking` | the C program on hosts 1-3 (round-robin), plainly, then under `ferry run --hosts` with rank 1 moved to ferry-h4 after a quarter of its calls (counted in a ferry run without a move) and back to ferry-h2 after half (Open MPI: to ferry-h1, since it cannot start a process again on a host all the job's first processes left) | exit 0; stdout the plain run's; two `migrate` events, rank 1 ferry-h2 → ferry-h4 → ferry-h2 (ferry-h1), each to a new pid; rank 1 in a new process at the end and every other in its own (`ctest-pids` lines, and the job directory's migration counts); every rank on its start host at the end, rank 1 on the one it went back to (job directory, and `ferry status` lists every rank). On Open MPI a program of more ranks than hosts is refused by `ferry run` (exit 2, "not supported": Open MPI 4.1.4 loses ranks then, docs/hosts.md) |
//! | `heat-external` | `examples/heat.c` on hosts 1-3 with ferry-h4 in the job but no rank on it; `ferry migrate --rank 2 --to ferry-h4`, then `--to ferry-h3` (Open MPI: `ferry-h1`) | rank 2 on ferry-h4 in the job directory; its pid's TCP connections in ferry-h4 (`ss`) all from 10.77.0.14 (or 127.0.0.1) and some to 10.77.0.11 or .13; back on ferry-h3 (ferry-h1) at the end; exit 0, stdout the plain run's |
//! | `host-down` | ferry-h4's link cut, `ferry migrate --rank 1 --to ferry-h4` | the command fails saying `refused`; the job's stderr says the host does not answer; rank 1 keeps its pid; with the link back the same request moves it (one `migrate` event ferry-h2 → ferry-h4); exit 0, output equal |
//! | `same-rank-twice` | `ferry migrate --rank 1 --to ferry-h4`, and once the job has taken it, `--to ferry-h2` | both commands succeed, each reporting its own move; events ferry-h2 → ferry-h4 → ferry-h2; exit 0, output equal. Open MPI: the second is refused, saying Open MPI 4.1.4 cannot start a process there again; one event |
//! | `host-dies` | the heat job; `ferry migrate --rank 1 --to ferry-h4`, then every process in ferry-h2 killed (SIGKILL: the launcher's daemon if one is left there) and ferry-h2's link cut | exit 0, output equal; one `migrate` event ferry-h2 → ferry-h4 |
//! | `evacuate` | the heat job (MPICH: 5 ranks, 2 on ferry-h2; Open MPI: 3); `ferry evacuate --host ferry-h4` and `--host no-such-host.invalid`, then `ferry evacuate --host ferry-h2 --json`; then every process in ferry-h2 killed and its link cut | the first two exit 2 (`runs no rank`, `unknown host`); the evacuation exits 0, its report `complete` with every rank of ferry-h2 moved and `host_may_go_down`; their `migrate` events of one regroup, each naming the batch; no program process left in ferry-h2; exit 0, output equal; one `evacuate` event; `ferry status` shows the host evacuated |
//! | `evacuate-blocked` | as `evacuate`, on a token ring (`harness/hosts/token_hold.c`, 5 ranks on MPICH, 3 on Open MPI) where each rank holds the token 10 ms outside MPI: the evacuation comes while the ranks next to ferry-h2's wait in `MPI_Recv` from them | as `evacuate` |
//! | `evacuate-fault` | the job of `evacuate`, ferry-h4's link slowed, `FERRY_TRANSFER_TIMEOUT_MS=3000`; `ferry evacuate --host ferry-h2 --to ferry-h4,ferry-h3 --json`, the replacement of the first rank on ferry-h4 killed once a mebibyte crossed ferry-h4's link after the spawn (the link's `tx_bytes`) | exit 3; the report `partial`, that rank refused (why) and still in its pid on ferry-h2, the other rank (MPICH) moved or (MPICH: hydra's proxy kills the others it started there) refused with it, `host_may_go_down` false; exit 0, output equal |
//! | `replacement-killed`, `link-cut` | ferry-h4's link slowed (tbf 10 Mbit/s), `FERRY_TRANSFER_TIMEOUT_MS=3000`; `ferry migrate --rank 1 --to ferry-h4` and, once a mebibyte crossed ferry-h4's link after the spawn, the replacement killed (SIGKILL) or ferry-h4's link cut (back up 3 s after the refusal) | the command fails saying `refused`; the job's stderr says why; rank 1 keeps its pid; a `regroup` event with `"migration_refused": 1` and no `migrate` event; exit 0, output equal |
//!
//! MPICH's UCX warns on stdout when a spawned process finalizes over TCP
//! ("UCX  WARN ... was not returned to mpool ucp_requests", also without
//! ferry): such lines are left out of the comparisons and counted.
//!
//! The cluster needs root (network namespaces, `/etc/hosts`): where it
//! cannot be made, the cases fail saying so (as a missing MPI fails its
//! cases): CI must not lose them silently. Debian's MPICH 4.0.2 cannot
//! spawn: its cases are listed as not applying.
use crate::job;
use crate::mpi::Mpi;
use crate::program;
use ferry_common::events::{read_events, Event, EventKind};
use ferry_common::job::{JobDir, RankStatus};
use libtest_mimic::{Failed, Trial};
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The hosts the ranks start on.
pub const HOSTS: &str = "ferry-h1,ferry-h2,ferry-h3";
/// The host ranks move to.
pub const SPARE: &str = "ferry-h4";

/// The cases, in the order they are listed.
pub const CASES: &[&str] = &[
    "ring",
    "p2p_blocking",
    "coll_blocking",
    "heat-external",
    "host-down",
    "same-rank-twice",
    "replacement-killed",
    "link-cut",
    "host-dies",
    "evacuate",
    "evacuate-fault",
    "evacuate-blocked",
];

/// `hosts::NAME::MPI`.
pub fn case_name(name: &str, mpi: &str) -> String {
    format!("hosts::{name}::{mpi}")
}

/// Why the hosts cases do not apply on `mpi`, if they do not.
pub fn not_on(mpi: &str) -> Option<&'static str> {
    (mpi == "mpich-deb").then_some("Debian's MPICH 4.0.2 cannot spawn: no rank moves there")
}

/// Whether the case runs in CI (all of them, on MPICH and Open MPI).
pub fn in_ci(mpi: &str) -> bool {
    not_on(mpi).is_none()
}

/// The cases as trials of `tests/cases.rs` (each MPI's environment, or why
/// it has none, in `mpis`).
pub fn trials(mpis: &HashMap<&str, Result<Arc<Mpi>, String>>, full: bool) -> Vec<Trial> {
    let mut out = Vec::new();
    for m in crate::mpi::ALL {
        for name in CASES {
            let skip = not_on(m);
            let ignored = skip.is_some() || !(full || in_ci(m));
            let (mpi, name) = (mpis[m].clone(), name.to_string());
            let trial = Trial::test(case_name(&name, m), move || {
                if let Some(why) = skip {
                    println!("    (does not apply: {why})");
                    return Ok(());
                }
                let mpi = mpi.map_err(Failed::from)?;
                run(&mpi, &name)
                    .map(|pass| println!("    {pass}"))
                    .map_err(Failed::from)
            });
            out.push(trial.with_kind("hosts").with_ignored_flag(ignored));
        }
    }
    out
}

const UCX_MPOOL: (&str, &str) = ("UCX  WARN ", "was not returned to mpool ucp_requests");

/// `text` without MPICH's UCX mpool warnings, and how many there were.
fn clean(text: &str) -> (String, usize) {
    let mut n = 0;
    let kept: String = text
        .lines()
        .filter(|l| {
            let warn = l.contains(UCX_MPOOL.0) && l.contains(UCX_MPOOL.1);
            n += warn as usize;
            !warn
        })
        .map(|l| format!("{l}\n"))
        .collect();
    (kept, n)
}

/// The cluster, up while this lives (torn down on drop), with a lock on
/// it for this process.
struct Cluster {
    script: PathBuf,
    /// The launcher variables of `cluster.sh env`.
    env: Vec<(String, String)>,
    _lock: File,
}

impl Cluster {
    fn up() -> Result<Cluster, String> {
        let lock_path = std::env::temp_dir().join("ferry-cluster.lock");
        let lock = File::create(&lock_path).map_err(|e| format!("{}: {e}", lock_path.display()))?;
        lock.lock()
            .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
        let script = crate::root().join("scripts/cluster.sh");
        let c = Cluster {
            script,
            env: Vec::new(),
            _lock: lock,
        };
        let uid = Command::new("id")
            .arg("-u")
            .output()
            .map_err(|e| e.to_string())?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return Err(
                "the hosts cases need root (network namespaces): scripts/cluster.sh cannot make the cluster"
                    .into(),
            );
        }
        let _ = c.script(&["down"]);
        c.script(&["up", "4"])
            .map_err(|e| format!("scripts/cluster.sh up 4 failed (network namespaces): {e}"))?;
        c.script(&["status"])
            .map_err(|e| format!("the cluster's hosts do not answer: {e}"))?;
        let env = c.script(&["env"])?;
        let mut c = c;
        // `export A=x B=y` lines, values quoted by printf %q (paths
        // without spaces here)
        c.env = env
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .flat_map(|l| l.split_whitespace())
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if c.env.is_empty() {
            return Err("scripts/cluster.sh env printed no variable".into());
        }
        Ok(c)
    }

    fn script(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("bash")
            .arg(&self.script)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.script.display()))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(text)
        } else {
            Err(format!(
                "{text}{}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.script(&["down"]);
    }
}

/// Runs a command in host `ns`'s network namespace.
fn in_ns(ns: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run ip netns exec: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ip netns exec {ns} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `SPARE`'s link up or down.
fn link(up: bool) -> Result<(), String> {
    in_ns(
        SPARE,
        &["ip", "link", "set", "eth0", if up { "up" } else { "down" }],
    )
    .map(|_| ())
}

/// Waits (at most 10 s) until `SPARE` answers a TCP connection from
/// ferry-h2 (a refusal is an answer), as the library's knock before a move
/// asks: a link just brought up may not route yet ("No route to host").
fn wait_answers() -> Result<(), String> {
    let t0 = Instant::now();
    loop {
        let out = Command::new("ip")
            .args(["netns", "exec", "ferry-h2", "timeout", "3", "bash", "-c"])
            .arg("exec 3<>/dev/tcp/10.77.0.14/22")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run ip netns exec: {e}"))?;
        if out.status.success() || String::from_utf8_lossy(&out.stderr).contains("refused") {
            return Ok(());
        }
        if t0.elapsed() > Duration::from_secs(10) {
            return Err(format!(
                "{SPARE} does not answer from ferry-h2 10 s after its link came back up"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Slows `SPARE`'s link while this lives (so that an image takes ~2 s to
/// cross); puts the link back up and removes the shaping on drop.
struct Slowed;

impl Slowed {
    fn new() -> Result<Slowed, String> {
        let dev = format!("{SPARE}-v");
        let ok = Command::new("tc")
            .args(["qdisc", "replace", "dev", &dev, "root", "tbf"])
            .args(["rate", "10mbit", "burst", "32kbit", "latency", "400ms"])
            .status()
            .map_err(|e| format!("cannot run tc: {e}"))?;
        if !ok.success() {
            return Err(format!("tc qdisc replace dev {dev} failed"));
        }
        Ok(Slowed)
    }
}

impl Drop for Slowed {
    fn drop(&mut self) {
        let _ = link(true);
        let _ = Command::new("tc")
            .args(["qdisc", "del", "dev", &format!("{SPARE}-v"), "root"])
            .stderr(Stdio::null())
            .status();
    }
}

/// One case's setting: the MPI, its output folder, the environment of
/// its commands.
struct Ctx<'a> {
    mpi: &'a Mpi,
    out: PathBuf,
    env: Vec<(String, String)>,
}

/// A `ferry run` (or another command) running in the background, in a
/// process group of its own (killed on drop if still running).
struct Bg {
    child: Child,
    dir: PathBuf,
    done: Option<Option<i32>>,
}

impl Drop for Bg {
    fn drop(&mut self) {
        if self.done.is_none() {
            // the process group this harness started for it
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.child.id())])
                .status();
            let _ = self.child.wait();
        }
    }
}

impl Bg {
    fn wait(&mut self) -> Option<i32> {
        if let Some(s) = self.done {
            return s;
        }
        let s = self.child.wait().ok().and_then(|s| s.code());
        self.done = Some(s);
        s
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.join("stdout")).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
    }

    fn events(&self) -> Result<Vec<Event>, String> {
        let p = self.dir.join("events.jsonl");
        if !p.exists() {
            return Ok(Vec::new());
        }
        read_events(&p).map_err(|e| format!("{}: {e}", p.display()))
    }
}

impl Ctx<'_> {
    /// Starts `cmd` (the words, the first the program) with `dir` (made
    /// anew) for its `stdout`, `stderr`, `cmd` and `events.jsonl`, limited
    /// by the harness's timeout.
    fn start(&self, dir: &Path, words: &[String], env: &[(String, String)]) -> Result<Bg, String> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let f = |n: &str| File::create(dir.join(n)).map_err(|e| format!("{n}: {e}"));
        let mut cmd = Command::new("timeout");
        cmd.arg("-k")
            .arg("5")
            .arg(job::timeout().as_secs().to_string())
            .args(words)
            .current_dir(&self.out)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            // one job directory root per run
            .env(ferry_common::env::FERRY_JOB_ROOT, dir.join("jobs"))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(f("stdout")?)
            .stderr(f("stderr")?);
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        let _ = std::fs::write(dir.join("cmd"), format!("{cmd:?}\n"));
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", words.join(" ")))?;
        Ok(Bg {
            child,
            dir: dir.to_path_buf(),
            done: None,
        })
    }

    /// [`Ctx::start`] and waits.
    fn run(&self, dir: &Path, words: &[String], env: &[(String, String)]) -> Result<Bg, String> {
        let mut bg = self.start(dir, words, env)?;
        bg.wait();
        Ok(bg)
    }

    fn ferry(&self) -> String {
        self.mpi.ferry().display().to_string()
    }

    /// `ferry run --mpi M --hosts HOSTS -n R --events DIR/events.jsonl ARGS`.
    fn ferry_run(&self, dir: &Path, hosts: &str, ranks: u32, args: &[String]) -> Vec<String> {
        let mut w: Vec<String> = vec![
            self.ferry(),
            "run".into(),
            "--mpi".into(),
            self.mpi.name.clone(),
            "--hosts".into(),
            hosts.into(),
            "-n".into(),
            ranks.to_string(),
            "--events".into(),
            dir.join("events.jsonl").display().to_string(),
        ];
        w.extend(args.iter().cloned());
        w
    }

    /// The program's words run plainly on hosts 1-3 (MPICH: `-hosts`;
    /// Open MPI: slots per host, mapped by node: round-robin as `ferry run
    /// --hosts` places ranks).
    fn plain(&self, ranks: u32, program: &[String]) -> Vec<String> {
        let mut w = vec![self.mpi.mpiexec().display().to_string()];
        if self.mpi.name == "openmpi" {
            let hosts: Vec<&str> = HOSTS.split(',').collect();
            let k = hosts.len() as u32;
            let slots: Vec<String> = hosts
                .iter()
                .enumerate()
                .map(|(i, h)| format!("{h}:{}", ranks / k + u32::from((i as u32) < ranks % k)))
                .collect();
            w.extend(self.mpi.mpiexec_flags());
            w.extend([
                "--host".into(),
                slots.join(","),
                "--map-by".into(),
                "node".into(),
            ]);
        } else {
            w.extend(["-hosts".into(), HOSTS.into()]);
        }
        w.extend(["-n".into(), ranks.to_string()]);
        w.extend(program.iter().cloned());
        w
    }

    /// The job directory of a run (one job per run's folder).
    fn job(&self, dir: &Path) -> Option<JobDir> {
        std::fs::read_dir(dir.join("jobs"))
            .ok()?
            .flatten()
            .find_map(|e| JobDir::at(&e.path()).ok())
    }

    /// Runs `ferry ARGS` (migrate, status) on `job` to its end: (success,
    /// output).
    fn command(&self, job: &JobDir, args: &[&str]) -> Result<(bool, String), String> {
        self.command_status(job, args)
            .map(|(code, said)| (code == Some(0), said))
    }

    /// As [`Ctx::command`], with the exit status.
    fn command_status(&self, job: &JobDir, args: &[&str]) -> Result<(Option<i32>, String), String> {
        let out = Command::new(self.mpi.ferry())
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .envs(job_root(job))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run ferry {}: {e}", args.join(" ")))?;
        Ok((
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        ))
    }
}

/// The job root of `job`, for the commands that act on it by id.
fn job_root(job: &JobDir) -> Vec<(String, String)> {
    vec![(
        ferry_common::env::FERRY_JOB_ROOT.to_string(),
        job.path()
            .parent()
            .unwrap_or(Path::new("."))
            .display()
            .to_string(),
    )]
}

/// Each rank's status in a job directory, by rank.
fn statuses(job: &JobDir) -> Vec<RankStatus> {
    let mut st = job.rank_statuses().unwrap_or_default();
    st.sort_by_key(|s| s.rank);
    st
}

fn pid_of(job: &JobDir, rank: u32) -> Option<u32> {
    statuses(job).iter().find(|s| s.rank == rank).map(|s| s.pid)
}

/// The moves in an event log, `FROM->TO`, checking each goes to a new pid.
fn moves(events: &[Event]) -> Result<Vec<String>, String> {
    events
        .iter()
        .filter(|e| e.event == EventKind::Migrate)
        .map(|e| {
            if e.new_pid.is_none() || e.new_pid == e.old_pid {
                return Err(format!(
                    "a migrate event of rank {:?} from pid {:?} to {:?}: not a new process",
                    e.rank, e.old_pid, e.new_pid
                ));
            }
            Ok(format!(
                "{}:{}->{}",
                e.rank.map(|r| r.to_string()).unwrap_or_default(),
                e.from_host.as_deref().unwrap_or("?"),
                e.to_host.as_deref().unwrap_or("?")
            ))
        })
        .collect()
}

/// Fails unless the run exited 0 with the plain run's stdout (UCX's mpool
/// warnings left out). `Ok`: how many such warnings there were.
fn same_as(plain: &str, run: &mut Bg) -> Result<usize, String> {
    let status = run.wait();
    if status != Some(0) {
        return Err(format!(
            "ferry run exited with status {status:?} (see {})",
            run.dir.display()
        ));
    }
    let (want, _) = clean(plain);
    let (got, n) = clean(&run.stdout());
    if want != got {
        let _ = std::fs::write(run.dir.join("stdout.clean"), &got);
        return Err(format!(
            "stdout differs from the plain run's ({} lines, plain {}; see {})",
            got.lines().count(),
            want.lines().count(),
            run.dir.display()
        ));
    }
    Ok(n)
}

/// Runs one case (and again up to `FERRY_TEST_RETRIES` times, a pass on a
/// retry said and listed, as [`crate::modes::Case::run`] does).
pub fn run(mpi: &Mpi, name: &str) -> Result<String, String> {
    let case = case_name(name, &mpi.name);
    crate::modes::with_retries(&case, None, || once(mpi, name))
}

fn once(mpi: &Mpi, name: &str) -> Result<String, String> {
    if let Some(m) = mpi.missing() {
        return Err(m);
    }
    let _cluster_and_env = Cluster::up()?;
    let out = crate::out_dir().join(&mpi.name).join("hosts").join(name);
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut env: Vec<(String, String)> = mpi.env.clone().into_iter().collect();
    env.extend(_cluster_and_env.env.iter().cloned());
    let ctx = Ctx { mpi, out, env };
    match name {
        "heat-external" | "host-down" | "same-rank-twice" | "replacement-killed" | "link-cut"
        | "host-dies" | "evacuate" | "evacuate-fault" | "evacuate-blocked" => heat_case(&ctx, name),
        _ => program_case(&ctx, name),
    }
}

/// Where a rank that left `start` for the spare host goes back to: its
/// start host, except on Open MPI 4.1.4, which cannot start a process
/// again on a host every first process of the job left (the library
/// refuses it: `sys::quirks::LEFT_HOST_CLOSED`, docs/host-loss.md O12);
/// there, ferry-h1, where rank 0 still runs.
fn back_host<'a>(ctx: &Ctx, start: &'a str) -> &'a str {
    if ctx.mpi.name == "openmpi" {
        "ferry-h1"
    } else {
        start
    }
}

/// A C program on hosts 1-3, rank 1 moved to the spare host and back.
fn program_case(ctx: &Ctx, name: &str) -> Result<String, String> {
    let p = program::c_programs()?
        .into_iter()
        .find(|p| p.name == name)
        .ok_or_else(|| format!("no program c-tests/{name}.c"))?;
    let bin = p.build(ctx.mpi, &ctx.out.join("bin"))?;
    let r = p.ranks;
    let prog = vec![bin.display().to_string()];
    let plain = ctx.run(&ctx.out.join("plain"), &ctx.plain(r, &prog), &[])?;
    let plain_out = plain.stdout();
    if plain.done != Some(Some(0)) || plain_out.lines().last() != Some("OK") {
        return Err(format!(
            "the plain run on {HOSTS} exited {:?} (see {})",
            plain.done.flatten(),
            plain.dir.display()
        ));
    }
    let w = |dir: &Path, args: Vec<String>| {
        let mut a = args;
        a.push("--".into());
        a.extend(prog.iter().cloned());
        ctx.ferry_run(dir, HOSTS, r, &a)
    };
    if ctx.mpi.name == "openmpi" && r > 3 {
        // More ranks than hosts, with a host to move to: refused (Open MPI
        // 4.1.4's mapper loses ranks then; docs/hosts.md).
        let dir = ctx.out.join("refused");
        let run = ctx.run(
            &dir,
            &w(
                &dir,
                vec!["--migrate".into(), format!("rank=1,after=1,to={SPARE}")],
            ),
            &[],
        )?;
        let err = run.stderr();
        let why = err
            .find("Open MPI 4.1.4 loses ranks")
            .map(|i| err[i..].lines().next().unwrap_or_default().to_string());
        return match (run.done.flatten(), err.contains("not supported"), why) {
            (Some(2), true, Some(why)) => Ok(format!(
                "{r} ranks on 3 hosts + {SPARE}: refused as documented ({why})"
            )),
            (rc, ..) => Err(format!(
                "{r} ranks on 3 hosts + {SPARE}: expected the refusal (exit 2, 'not supported', 'Open MPI 4.1.4 loses ranks'), got exit {rc:?} (see {})",
                dir.display()
            )),
        };
    }
    // Rank 1's calls, from a ferry run without a move.
    let count_dir = ctx.out.join("count");
    let count = ctx.run(&count_dir, &w(&count_dir, vec![]), &[])?;
    let calls = ctx
        .job(&count_dir)
        .and_then(|j| statuses(&j).into_iter().find(|s| s.rank == 1))
        .map(|s| s.calls)
        .filter(|_| count.done == Some(Some(0)))
        .ok_or_else(|| {
            format!(
                "no call count of rank 1 from a ferry run on {HOSTS} (see {})",
                count_dir.display()
            )
        })?;
    let (k1, k2) = (calls / 4 + 1, calls / 2 + 1);
    let back = back_host(ctx, "ferry-h2");
    let specs = vec![
        "--migrate".to_string(),
        format!("rank=1,after={k1},to={SPARE}"),
        "--migrate".into(),
        format!("rank=1,after={k2},to={back}"),
    ];
    let replay = format!(
        "replay: ferry run --hosts {HOSTS} -n {r} {} -- {}",
        specs.join(" "),
        bin.display()
    );
    let dir = ctx.out.join("hosts");
    let mut run = ctx.run(&dir, &w(&dir, specs), &[])?;
    let fail = |e: String| format!("{e}; {replay}");
    let warnings = same_as(&plain_out, &mut run).map_err(fail)?;
    let want = vec![format!("1:ferry-h2->{SPARE}"), format!("1:{SPARE}->{back}")];
    let moved = moves(&run.events()?).map_err(fail)?;
    if moved != want {
        return Err(fail(format!(
            "the moves were {moved:?}, not {want:?} (see {})",
            dir.display()
        )));
    }
    let job = ctx
        .job(&dir)
        .ok_or_else(|| fail(format!("no job directory in {}", dir.display())))?;
    let st = statuses(&job);
    if st.len() != r as usize {
        return Err(fail(format!(
            "{} of {r} ranks in the job directory {}",
            st.len(),
            job.path().display()
        )));
    }
    // Rank 1 in a new process, the others in their own: the library's
    // count of each rank's migrations, and the program's own pids.
    for s in &st {
        let want = if s.rank == 1 { 2 } else { 0 };
        if s.migrations != want {
            return Err(fail(format!(
                "rank {} went through {} migrations, not {want} (job directory)",
                s.rank, s.migrations
            )));
        }
    }
    let pids = job::pids(&run.stderr());
    let mut lost = Vec::new();
    for rank in 0..r {
        match pids.iter().find(|p| p.0 == rank) {
            Some(&(_, a, b)) if rank == 1 && a == b => {
                return Err(fail(format!("rank 1 ends in the pid it started in ({a})")))
            }
            Some(&(_, a, b)) if rank != 1 && a != b => {
                return Err(fail(format!("rank {rank} moved ({a} -> {b})")))
            }
            Some(_) => {}
            // MPICH's hydra, dying of SIGPIPE at the job's end (docs/
            // hosts.md), can lose the end of a rank's stderr: a missing
            // line is said; the job directory's count above stands for it.
            None if ctx.mpi.name == "mpich" => lost.push(rank),
            None => return Err(fail(format!("no ctest-pids line of rank {rank}"))),
        }
    }
    // Every rank on the host it started on (round-robin over 1-3), rank 1
    // on the one it went back to.
    let mut at_end = Vec::new();
    for s in &st {
        let start = match s.rank {
            1 => back.to_string(),
            r => format!("ferry-h{}", r % 3 + 1),
        };
        if s.host != start {
            return Err(fail(format!(
                "rank {} is on {} at the end, not {start} (job directory)",
                s.rank, s.host
            )));
        }
        at_end.push(format!("{}@{}:{}", s.rank, s.host, s.pid));
    }
    let (ok, status) = ctx.command(&job, &["status", "--job", job.id()])?;
    let listed = status
        .lines()
        .filter(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.len() >= 3
                && st
                    .iter()
                    .any(|s| w[0] == s.rank.to_string() && w[1] == s.host)
        })
        .count();
    if !ok || listed < r as usize {
        return Err(fail(format!(
            "ferry status --job {} lists {listed} of {r} ranks on their hosts:\n{status}",
            job.id()
        )));
    }
    Ok(format!(
        "{r} ranks on {HOSTS}, rank 1 moved {} at calls {k1}, {k2} of {calls}; at the end (rank@host:pid) {}; UCX pool warnings left out: {warnings}{}",
        moved.join(" "),
        at_end.join(" "),
        if lost.is_empty() {
            String::new()
        } else {
            format!("; ctest-pids lines of ranks {lost:?} lost by hydra at the job's end (migration counts checked in the job directory)")
        }
    ))
}

/// heat.c's steps and pause (µs): a job that lasts a few seconds.
const HEAT: [&str; 2] = ["1200", "3000"];

/// A heat job running on hosts 1-3 with the spare host in it (no rank on
/// it: Open MPI spawns only on the job's hosts).
struct Heat {
    bg: Bg,
    job: JobDir,
}

fn heat_start(ctx: &Ctx, bin: &Path, name: &str, env: &[(String, String)]) -> Result<Heat, String> {
    heat_start_n(ctx, bin, name, env, 3)
}

/// [`heat_start`] on `n` ranks.
fn heat_start_n(
    ctx: &Ctx,
    bin: &Path,
    name: &str,
    env: &[(String, String)],
    n: u32,
) -> Result<Heat, String> {
    let dir = ctx.out.join(name);
    let mut args = vec!["--".to_string(), bin.display().to_string()];
    args.extend(program_args(name).iter().map(|s| s.to_string()));
    let words = ctx.ferry_run(&dir, &format!("{HOSTS},{SPARE}:0"), n, &args);
    let mut bg = ctx.start(&dir, &words, env)?;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(20) {
        if let Some(job) = ctx.job(&dir) {
            if statuses(&job).len() >= n as usize {
                return Ok(Heat { bg, job });
            }
        }
        if let Ok(Some(_)) = bg.child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bg.wait();
    Err(format!(
        "the heat job did not start its {n} ranks (see {})",
        dir.display()
    ))
}

fn heat_case(ctx: &Ctx, name: &str) -> Result<String, String> {
    let (source, bin) = if name == "evacuate-blocked" {
        ("harness/hosts/token_hold.c", ctx.out.join("token_hold"))
    } else {
        ("examples/heat.c", ctx.out.join("heat"))
    };
    let cc = Command::new(ctx.mpi.mpicc())
        .args(["-O1", "-o"])
        .arg(&bin)
        .arg(crate::root().join(source))
        .envs(&ctx.mpi.env)
        .output()
        .map_err(|e| format!("cannot run mpicc: {e}"))?;
    if !cc.status.success() {
        return Err(format!(
            "building {source} failed:\n{}",
            String::from_utf8_lossy(&cc.stderr)
        ));
    }
    let mut prog = vec![bin.display().to_string()];
    prog.extend(program_args(name).iter().map(|s| s.to_string()));
    let plain = ctx.run(
        &ctx.out.join("plain"),
        &ctx.plain(heat_ranks(ctx, name), &prog),
        &[],
    )?;
    if plain.done != Some(Some(0)) {
        return Err(format!(
            "the plain run on {HOSTS} failed (see {})",
            plain.dir.display()
        ));
    }
    let plain = plain.stdout();
    match name {
        "heat-external" => heat_external(ctx, &bin, &plain),
        "host-down" => host_down(ctx, &bin, &plain),
        "same-rank-twice" => same_rank_twice(ctx, &bin, &plain),
        "host-dies" => host_dies(ctx, &bin, &plain),
        "evacuate" | "evacuate-blocked" => evacuate(ctx, &bin, &plain, name),
        "evacuate-fault" => evacuate_fault(ctx, &bin, &plain),
        _ => fault(ctx, &bin, &plain, name == "link-cut"),
    }
}

/// `ferry migrate --job J --rank R --to HOST`.
fn migrate_words(ctx: &Ctx, job: &JobDir, rank: u32, to: &str) -> Vec<String> {
    vec![
        ctx.ferry(),
        "migrate".into(),
        "--job".into(),
        job.id().into(),
        "--rank".into(),
        rank.to_string(),
        "--to".into(),
        to.into(),
    ]
}

fn migrate(ctx: &Ctx, job: &JobDir, rank: u32, to: &str) -> Result<(bool, String), String> {
    ctx.command(
        job,
        &[
            "migrate",
            "--job",
            job.id(),
            "--rank",
            &rank.to_string(),
            "--to",
            to,
        ],
    )
}

fn heat_external(ctx: &Ctx, bin: &Path, plain: &str) -> Result<String, String> {
    let mut h = heat_start(ctx, bin, "heat-external", &[])?;
    let (ok, said) = migrate(ctx, &h.job, 2, SPARE)?;
    if !ok {
        return Err(format!(
            "ferry migrate --rank 2 --to {SPARE} failed: {said}"
        ));
    }
    let st = statuses(&h.job);
    let s2 = st
        .iter()
        .find(|s| s.rank == 2)
        .ok_or("no status of rank 2")?;
    if s2.host != SPARE {
        return Err(format!(
            "rank 2 is on '{}' after the move to {SPARE} (job directory)",
            s2.host
        ));
    }
    let pid = s2.pid;
    let ss = in_ns(SPARE, &["ss", "-tnp"])?;
    let _ = std::fs::write(ctx.out.join("heat-external/ss"), &ss);
    // pid's established connections: (local address, peer address)
    let key = format!("pid={pid},");
    let conns: Vec<(String, String)> = ss
        .lines()
        .filter(|l| l.contains(&key) && l.starts_with("ESTAB"))
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            Some((w.get(3)?.to_string(), w.get(4)?.to_string()))
        })
        .collect();
    let addr = |a: &str| {
        a.rsplit_once(':')
            .map(|(h, _)| h.to_string())
            .unwrap_or_default()
    };
    if conns.is_empty() {
        return Err(format!("no TCP connection of pid {pid} in {SPARE}:\n{ss}"));
    }
    // (127.0.0.1: Open MPI's rank to its local daemon)
    if let Some((l, _)) = conns
        .iter()
        .find(|(l, _)| addr(l) != "10.77.0.14" && addr(l) != "127.0.0.1")
    {
        return Err(format!(
            "pid {pid} has a connection from {l}, not 10.77.0.14: {conns:?}"
        ));
    }
    let mut peers: Vec<String> = conns
        .iter()
        .map(|(_, p)| addr(p))
        .filter(|p| p.starts_with("10.77.0.1") && p.len() == 10 && p != "10.77.0.14")
        .collect();
    peers.sort();
    peers.dedup();
    if !peers.iter().any(|p| p == "10.77.0.11" || p == "10.77.0.13") {
        return Err(format!(
            "pid {pid} has no connection to the other hosts: {conns:?}"
        ));
    }
    let back = back_host(ctx, "ferry-h3");
    let (ok, said) = migrate(ctx, &h.job, 2, back)?;
    if !ok {
        return Err(format!("ferry migrate back to {back} failed: {said}"));
    }
    same_as(plain, &mut h.bg)?;
    let end = statuses(&h.job);
    if !end.iter().any(|s| s.rank == 2 && s.host == back) {
        return Err(format!(
            "rank 2 is not back on {back} at the end: {:?}",
            end.iter().map(|s| (s.rank, &s.host)).collect::<Vec<_>>()
        ));
    }
    Ok(format!(
        "rank 2 on {SPARE} as pid {pid}, TCP connections from 10.77.0.14 to the other hosts {}; back on {back}; output identical",
        peers.join(" ")
    ))
}

fn host_down(ctx: &Ctx, bin: &Path, plain: &str) -> Result<String, String> {
    let mut h = heat_start(ctx, bin, "host-down", &[])?;
    let before = pid_of(&h.job, 1);
    let guard = LinkBack::of(SPARE);
    link(false)?;
    let t0 = Instant::now();
    let first = migrate(ctx, &h.job, 1, SPARE);
    let waited = t0.elapsed();
    link(true)?;
    drop(guard);
    wait_answers()?;
    let (ok, said) = first?;
    if ok {
        return Err(format!(
            "ferry migrate to {SPARE} with its link down succeeded: {said}"
        ));
    }
    if !said.contains("refused") {
        return Err(format!("ferry migrate did not report a refusal: {said}"));
    }
    let err = h.bg.stderr();
    let want = format!("migration of rank 1 refused: the host \"{SPARE}\" does not answer");
    let Some(line) = err.lines().find(|l| l.contains(&want)) else {
        return Err(format!(
            "the job's stderr does not say that {SPARE} does not answer (see {})",
            h.bg.dir.display()
        ));
    };
    let after = pid_of(&h.job, 1);
    if before.is_none() || before != after {
        return Err(format!(
            "rank 1 changed process ({before:?} -> {after:?}) although the migration was refused"
        ));
    }
    let (ok, said) = migrate(ctx, &h.job, 1, SPARE)?;
    if !ok {
        return Err(format!(
            "with the link back, ferry migrate to {SPARE} failed: {said}"
        ));
    }
    same_as(plain, &mut h.bg)?;
    let moved = moves(&h.bg.events()?)?;
    if moved != [format!("1:ferry-h2->{SPARE}")] {
        return Err(format!(
            "the moves were {moved:?}, not rank 1 ferry-h2 -> {SPARE}"
        ));
    }
    let why = line
        .find("does not answer")
        .map(|i| &line[i..])
        .unwrap_or(line);
    Ok(format!(
        "link of {SPARE} down: refused after {} ms ({why}), rank 1 kept pid {}; link up: moved to {SPARE}; output identical",
        waited.as_millis(),
        before.unwrap_or(0)
    ))
}

fn same_rank_twice(ctx: &Ctx, bin: &Path, plain: &str) -> Result<String, String> {
    let mut h = heat_start(ctx, bin, "same-rank-twice", &[])?;
    let taken = h.job.requests_dir().join("1.taken");
    let mut first = ctx.start(
        &ctx.out.join("same-rank-twice/migrate1"),
        &migrate_words(ctx, &h.job, 1, SPARE),
        &job_root(&h.job),
    )?;
    let t0 = Instant::now();
    while !taken.exists() && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    if !taken.exists() {
        return Err(format!(
            "the first request was not taken ({})",
            taken.display()
        ));
    }
    let (ok, second) = migrate(ctx, &h.job, 1, "ferry-h2")?;
    let first_ok = first.wait() == Some(0);
    let first_said = format!("{}{}", first.stdout(), first.stderr());
    if !first_ok {
        return Err(format!("the first ferry migrate failed: {first_said}"));
    }
    if ctx.mpi.name == "openmpi" {
        // Back onto the host its old process left, which Open MPI 4.1.4
        // cannot start a process on again (`back_host`): refused, with
        // the reason, and the job goes on.
        let why = "Open MPI 4.1.4 cannot start a process there again";
        if ok || !second.contains("refused") || !h.bg.stderr().contains(why) {
            return Err(format!(
                "the move back to ferry-h2 was not refused with '{why}' (exit ok: {ok}): {second}"
            ));
        }
        same_as(plain, &mut h.bg)?;
        let moved = moves(&h.bg.events()?)?;
        if moved != [format!("1:ferry-h2->{SPARE}")] {
            return Err(format!("the moves were {moved:?}, not 1:ferry-h2->{SPARE}"));
        }
        return Ok(format!(
            "second request while the first ran: {} then back to ferry-h2 refused ({why}); output identical",
            moved.join(" ")
        ));
    }
    if !ok {
        return Err(format!("the second ferry migrate failed: {second}"));
    }
    same_as(plain, &mut h.bg)?;
    let moved = moves(&h.bg.events()?)?;
    let want = [
        format!("1:ferry-h2->{SPARE}"),
        format!("1:{SPARE}->ferry-h2"),
    ];
    if moved != want {
        return Err(format!("the moves were {moved:?}, not {want:?}"));
    }
    let reports = |said: &str, from: &str, to: &str| {
        said.lines().any(|l| {
            l.split_once("moved: ")
                .and_then(|(_, m)| m.split_once(" -> "))
                .is_some_and(|(a, b)| {
                    a.ends_with(&format!(" on {from}")) && b.contains(&format!(" on {to}"))
                })
        })
    };
    if !reports(&first_said, "ferry-h2", SPARE) {
        return Err(format!(
            "the first command did not report its own move: {first_said}"
        ));
    }
    if !reports(&second, SPARE, "ferry-h2") {
        return Err(format!(
            "the second command did not report its own move: {second}"
        ));
    }
    Ok(format!(
        "second request while the first ran: {} (requests 1, 2), each command reported its own; output identical",
        moved.join(" ")
    ))
}

/// The replacement processes on the spare host once `want` of them run
/// there (or as many as ran when `within` passed): each pid with its
/// `from=` argument (where its image comes from), lowest `from` first.
fn replacements(want: usize, within: Duration) -> Vec<(String, u32)> {
    let t0 = Instant::now();
    let mut found = Vec::new();
    while t0.elapsed() < within {
        let pids = Command::new("ip")
            .args(["netns", "pids", SPARE])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        found = pids
            .split_whitespace()
            .filter_map(|p| {
                let c = std::fs::read(format!("/proc/{p}/cmdline")).ok()?;
                let c = String::from_utf8_lossy(&c).into_owned();
                let mut words = c.split('\0');
                words.nth(1).filter(|w| *w == "--ferry-replacement")?;
                let from = c
                    .split('\0')
                    .find_map(|w| w.strip_prefix("from="))
                    .and_then(|v| v.parse().ok())?;
                Some((p.to_string(), from))
            })
            .collect();
        if found.len() >= want {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    found.sort_by_key(|r| r.1);
    found
}

/// Waits until a mebibyte more than now crossed the spare host's link
/// towards it (the image of a replacement there: the bytes the host side
/// of its link sent, `/sys/class/net/DEV/statistics/tx_bytes`), at most
/// `within`; how long that took. (Neither a replacement's address space,
/// reserved at once, nor its reads, which do not count socket receives,
/// tell when its image crosses.)
fn receiving(within: Duration) -> Option<Duration> {
    let sent = || -> Option<u64> {
        std::fs::read_to_string(format!("/sys/class/net/{SPARE}-v/statistics/tx_bytes"))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    let t0 = Instant::now();
    let start = sent()?;
    while t0.elapsed() < within {
        if sent()? > start + (1 << 20) {
            return Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

/// The replacement of the first leaving process on the spare host, once
/// its image crosses (`want`: how many replacements the spawn starts):
/// its pid, and how long after it appeared a mebibyte had crossed to its host.
fn victim(want: usize) -> Result<(String, Duration), String> {
    let found = replacements(want, Duration::from_secs(10));
    let Some((pid, _)) = found.first() else {
        return Err(format!("no replacement process appeared on {SPARE}"));
    };
    let began = receiving(Duration::from_secs(10))
        .ok_or_else(|| format!("not a mebibyte crossed to {SPARE} within 10 s of the spawn"))?;
    Ok((pid.clone(), began))
}

/// `replacement-killed` (`cut` false) and `link-cut`: `ferry run` has the
/// launcher keep the job when a spawned process dies or is lost (hydra
/// `-disable-auto-cleanup`, mpirun `--enable-recovery`).
fn fault(ctx: &Ctx, bin: &Path, plain: &str, cut: bool) -> Result<String, String> {
    let name = if cut {
        "link-cut"
    } else {
        "replacement-killed"
    };
    let slowed = Slowed::new()?;
    let mut h = heat_start(
        ctx,
        bin,
        name,
        &[("FERRY_TRANSFER_TIMEOUT_MS".into(), "3000".into())],
    )?;
    let before = pid_of(&h.job, 1);
    let mut cmd = ctx.start(
        &ctx.out.join(name).join("migrate"),
        &migrate_words(ctx, &h.job, 1, SPARE),
        &job_root(&h.job),
    )?;
    // Once a mebibyte of its image crossed (of ~4, ~3 s over the slowed link).
    let (victim, _) = victim(1)?;
    if cut {
        link(false)?;
    } else {
        let _ = Command::new("kill").args(["-KILL", &victim]).status();
    }
    let ok = cmd.wait() == Some(0);
    let said = format!("{}{}", cmd.stdout(), cmd.stderr());
    if cut {
        std::thread::sleep(Duration::from_secs(3));
        link(true)?;
    }
    let after = pid_of(&h.job, 1);
    if ok {
        return Err(format!(
            "ferry migrate succeeded although the replacement was {}: {said}",
            if cut { "cut off" } else { "killed" }
        ));
    }
    if !said.contains("refused") {
        return Err(format!("ferry migrate did not report a refusal: {said}"));
    }
    let err = h.bg.stderr();
    let line = err
        .lines()
        .find(|l| l.contains("migration of rank 1 to ") && l.contains(" refused"))
        .map(String::from)
        .ok_or_else(|| {
            format!(
                "the job's stderr does not say why the migration was refused (see {})",
                h.bg.dir.display()
            )
        })?;
    if before.is_none() || before != after {
        return Err(format!(
            "rank 1 changed process ({before:?} -> {after:?}) although the migration was refused"
        ));
    }
    same_as(plain, &mut h.bg)?;
    drop(slowed);
    let events = h.bg.events()?;
    let refused = events.iter().any(|e| {
        e.event == EventKind::Regroup
            && e.extra.get("migration_refused").and_then(|v| v.as_u64()) == Some(1)
    });
    if !refused {
        return Err(format!(
            "no regroup event with \"migration_refused\": 1 (see {})",
            h.bg.dir.display()
        ));
    }
    let moved = moves(&events)?;
    if !moved.is_empty() {
        return Err(format!(
            "migrate events {moved:?} although the migration was refused"
        ));
    }
    let why = line.split_once(": ").map(|(_, w)| w).unwrap_or(&line);
    Ok(format!(
        "replacement pid {victim} on {SPARE} {} during the transfer: {why}; rank 1 kept pid {}; output identical, exit 0",
        if cut {
            "cut off (link down, up again 3 s after the refusal)"
        } else {
            "killed"
        },
        before.unwrap_or(0)
    ))
}

/// Puts the spare host's link back up on drop.
/// `host-dies`: rank 1 leaves ferry-h2 for the spare host; then ferry-h2
/// dies as a node does: every process in it killed (SIGKILL), its link
/// cut. The job must not notice.
fn host_dies(ctx: &Ctx, bin: &Path, plain: &str) -> Result<String, String> {
    const GONE: &str = "ferry-h2";
    let mut h = heat_start(ctx, bin, "host-dies", &[])?;
    let (ok, said) = migrate(ctx, &h.job, 1, SPARE)?;
    if !ok {
        return Err(format!(
            "ferry migrate --rank 1 --to {SPARE} failed: {said}"
        ));
    }
    // What still runs there (the launcher's daemon, on Open MPI; on MPICH
    // hydra's proxy leaves with the host's last process), then the kill.
    let (there, _back) = kill_host(GONE)?;
    let killed_at = Instant::now();
    same_as(plain, &mut h.bg)?;
    let lasted = killed_at.elapsed();
    let moved = moves(&h.bg.events()?)?;
    if moved != [format!("1:{GONE}->{SPARE}")] {
        return Err(format!("the moves were {moved:?}, not 1:{GONE}->{SPARE}"));
    }
    Ok(format!(
        "rank 1 moved {GONE} -> {SPARE}; then in {GONE} killed [{}] and its link cut; the job ran {:.1} s more: exit 0, output identical",
        there.join(" "),
        lasted.as_secs_f64()
    ))
}

/// The heat job's ranks in case `name`: 3 (one per host), or for
/// `evacuate` on MPICH 5 (two of them on ferry-h2; Open MPI 4.1.4 cannot
/// start more ranks than hosts with a spare host in the job).
/// The arguments of a case's program: the heat job's, or for
/// `evacuate-blocked` the token ring's (laps, ms each rank holds it: about
/// 20 s, every rank but one blocked in `MPI_Recv` at any moment).
fn program_args(name: &str) -> &'static [&'static str] {
    if name == "evacuate-blocked" {
        &["320", "10"]
    } else {
        &HEAT
    }
}

fn heat_ranks(ctx: &Ctx, name: &str) -> u32 {
    if name.starts_with("evacuate") && ctx.mpi.name == "mpich" {
        5
    } else {
        3
    }
}

/// Kills every process in host `h`'s network namespace and cuts its link,
/// as when the node dies; says what ran there.
fn kill_host(h: &'static str) -> Result<(Vec<String>, LinkBack), String> {
    let listed = Command::new("ip")
        .args(["netns", "pids", h])
        .output()
        .map_err(|e| format!("cannot run ip netns pids: {e}"))?;
    let pids: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .split_whitespace()
        .map(String::from)
        .collect();
    let there: Vec<String> = pids
        .iter()
        .filter_map(|p| {
            let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).ok()?;
            Some(format!("{}({p})", comm.trim()))
        })
        .collect();
    let back = LinkBack::of(h);
    if !pids.is_empty() {
        let _ = Command::new("kill").arg("-KILL").args(&pids).status();
    }
    Command::new("ip")
        .args(["link", "set", &format!("{h}-v"), "down"])
        .status()
        .map_err(|e| format!("cannot cut {h}'s link: {e}"))?;
    Ok((there, back))
}

/// `evacuate`: `ferry evacuate` refuses a host with no rank and an unknown
/// one, then empties ferry-h2 (its ranks to the other hosts, spread
/// evenly); then ferry-h2 dies. The job must not notice.
fn evacuate(ctx: &Ctx, bin: &Path, plain: &str, name: &str) -> Result<String, String> {
    const GONE: &str = "ferry-h2";
    let n = heat_ranks(ctx, name);
    let mut h = heat_start_n(ctx, bin, name, &[], n)?;
    let id = h.job.id().to_string();
    for (host, why) in [
        (SPARE, "runs no rank"),
        ("no-such-host.invalid", "unknown host"),
    ] {
        let (code, said) =
            ctx.command_status(&h.job, &["evacuate", "--job", &id, "--host", host])?;
        if code != Some(2) || !said.contains(why) {
            return Err(format!(
                "ferry evacuate --host {host}: exit {code:?}, expected 2 saying '{why}': {said}"
            ));
        }
    }
    let on_gone: Vec<u32> = statuses(&h.job)
        .iter()
        .filter(|s| s.host == GONE)
        .map(|s| s.rank)
        .collect();
    let (code, said) = ctx.command_status(
        &h.job,
        &["evacuate", "--job", &id, "--host", GONE, "--json"],
    )?;
    let _ = std::fs::write(ctx.out.join(name).join("evacuate.json"), &said);
    let report: serde_json::Value = serde_json::from_str(&said)
        .map_err(|e| format!("ferry evacuate --json printed no JSON ({e}): {said}"))?;
    if code != Some(0) || report["outcome"] != "complete" || report["host_may_go_down"] != true {
        return Err(format!(
            "ferry evacuate --host {GONE}: exit {code:?}: {said}"
        ));
    }
    let moved: Vec<String> = report["ranks"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| {
                    format!(
                        "{}:{}->{}",
                        m["rank"],
                        m["from_host"].as_str().unwrap_or("?"),
                        m["to_host"].as_str().unwrap_or("?")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if moved.len() != on_gone.len() || on_gone.len() != (n as usize).div_ceil(3).min(2) {
        return Err(format!(
            "ranks {on_gone:?} ran on {GONE}, the report moved {moved:?}"
        ));
    }
    // Nothing of the job's program left there (MPICH's proxy leaves with
    // the host's last process; Open MPI's daemon stays, of no more use).
    let (there, _back) = kill_host(GONE)?;
    let program: String = bin
        .file_name()
        .map(|f| f.to_string_lossy().chars().take(15).collect())
        .unwrap_or_default();
    if let Some(p) = there.iter().find(|p| p.starts_with(&program)) {
        return Err(format!("{p} still ran on {GONE} after the evacuation"));
    }
    let killed_at = Instant::now();
    same_as(plain, &mut h.bg)?;
    let lasted = killed_at.elapsed();
    let ev = h.bg.events()?;
    let evacuations: Vec<&Event> = ev
        .iter()
        .filter(|e| e.event == ferry_common::events::EventKind::Evacuate)
        .collect();
    if evacuations.len() != 1 || evacuations[0].from_host.as_deref() != Some(GONE) {
        return Err(format!(
            "{} evacuate events of {GONE} in the event log, expected 1",
            evacuations.len()
        ));
    }
    // One synchronization for all of them: their `migrate` lines are of
    // one regroup, each naming the whole batch.
    let moves: Vec<&Event> = ev
        .iter()
        .filter(|e| e.event == ferry_common::events::EventKind::Migrate)
        .collect();
    let epochs: Vec<Option<u64>> = moves
        .iter()
        .map(|e| e.extra.get("epoch").and_then(|v| v.as_u64()))
        .collect();
    if moves.len() != on_gone.len() || epochs.iter().any(|e| e.is_none() || *e != epochs[0]) {
        return Err(format!(
            "{} migrate events of regroups {epochs:?}: expected {} of one",
            moves.len(),
            on_gone.len()
        ));
    }
    if on_gone.len() > 1 {
        let batch = serde_json::json!(on_gone);
        if let Some(e) = moves.iter().find(|e| e.extra.get("batch") != Some(&batch)) {
            return Err(format!(
                "rank {:?}'s migrate event names the batch {:?}, expected {batch}",
                e.rank,
                e.extra.get("batch")
            ));
        }
    }
    let (ok, status) = ctx.command(&h.job, &["status", "--job", &id])?;
    if !ok || !status.contains(&format!("host {GONE} evacuated")) {
        return Err(format!(
            "ferry status does not show {GONE} evacuated:\n{status}"
        ));
    }
    Ok(format!(
        "refusals (no rank, unknown host) exit 2; evacuated {GONE}: {} in {:.1} s, one synchronization (regroup {}); then killed [{}] there and cut its link; the job ran {:.1} s more: exit 0, output identical; ferry status shows it",
        moved.join(" "),
        report["total_ms"].as_f64().unwrap_or(0.0) / 1e3,
        epochs[0].unwrap_or(0),
        there.join(" "),
        lasted.as_secs_f64()
    ))
}

/// `evacuate-fault`: `ferry evacuate --host ferry-h2 --to ferry-h4,ferry-h3`
/// while ferry-h4's link is slow, and the first replacement started on
/// ferry-h4 killed during its transfer: that rank stays where it was, the
/// others move, the report says so (exit 3), and the job goes on.
fn evacuate_fault(ctx: &Ctx, bin: &Path, plain: &str) -> Result<String, String> {
    const FROM: &str = "ferry-h2";
    let n = heat_ranks(ctx, "evacuate-fault");
    let slowed = Slowed::new()?;
    let mut h = heat_start_n(
        ctx,
        bin,
        "evacuate-fault",
        &[("FERRY_TRANSFER_TIMEOUT_MS".into(), "3000".into())],
        n,
    )?;
    let id = h.job.id().to_string();
    let on_from: Vec<(u32, u32)> = statuses(&h.job)
        .iter()
        .filter(|s| s.host == FROM)
        .map(|s| (s.rank, s.pid))
        .collect();
    let words: Vec<String> = [
        "evacuate",
        "--job",
        &id,
        "--host",
        FROM,
        "--to",
        &format!("{SPARE},ferry-h3"),
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut cmd_words = vec![ctx.ferry()];
    cmd_words.extend(words);
    let mut cmd = ctx.start(
        &ctx.out.join("evacuate-fault/evacuate"),
        &cmd_words,
        &job_root(&h.job),
    )?;
    // Once a mebibyte of the images crossed (of ~8, ~6 s over the slowed link
    // shared by two transfers).
    let (victim, began) = victim(on_from.len())?;
    let _ = Command::new("kill").args(["-KILL", &victim]).status();
    let code = cmd.wait();
    let said = cmd.stdout();
    let report: serde_json::Value = serde_json::from_str(&said).map_err(|e| {
        format!(
            "ferry evacuate --json printed no JSON ({e}): {said}{}",
            cmd.stderr()
        )
    })?;
    let ranks = report["ranks"].as_array().cloned().unwrap_or_default();
    let stayed: Vec<u64> = ranks
        .iter()
        .filter(|m| m.get("refused").is_some())
        .filter_map(|m| m["rank"].as_u64())
        .collect();
    let moved: Vec<u64> = ranks
        .iter()
        .filter(|m| m.get("refused").is_none())
        .filter_map(|m| m["rank"].as_u64())
        .collect();
    let first = on_from.first().map(|r| r.0 as u64);
    // The others of the batch move, or are refused with it (MPICH:
    // hydra's proxy kills every process it started on the host when one
    // dies of a signal; docs/migration.md).
    if code != Some(3)
        || report["outcome"] != "partial"
        || report["host_may_go_down"] != false
        || first.is_none_or(|f| !stayed.contains(&f))
        || moved.len() + stayed.len() != on_from.len()
    {
        return Err(format!(
            "expected exit 3, a partial report with rank {first:?} stayed and the other(s) of {on_from:?} moved; got exit {code:?} (replacement {victim} killed {} ms after it appeared): {said}", began.as_millis()
        ));
    }
    let kept = statuses(&h.job)
        .iter()
        .find(|s| Some(s.rank as u64) == first)
        .map(|s| (s.host.clone(), s.pid));
    if kept != on_from.first().map(|r| (FROM.to_string(), r.1)) {
        return Err(format!(
            "rank {first:?} is {kept:?} after its move was refused, not on {FROM} in pid {:?}",
            on_from.first().map(|r| r.1)
        ));
    }
    same_as(plain, &mut h.bg)?;
    drop(slowed);
    let why = ranks
        .iter()
        .find_map(|m| m.get("refused").and_then(|v| v.as_str()))
        .unwrap_or("?")
        .to_string();
    Ok(format!(
        "replacement {victim} on {SPARE} killed during its transfer (a mebibyte of images through the link, {} ms after it appeared): rank {} stayed on {FROM} ({why}); moved {moved:?}, stayed {stayed:?}; exit 3, partial report; the job's output identical, exit 0",
        began.as_millis(),
        first.unwrap_or(0)
    ))
}

/// Puts a host's link back up on drop (the spare host's unless said).
struct LinkBack(&'static str);

impl LinkBack {
    fn of(host: &'static str) -> LinkBack {
        LinkBack(host)
    }
}

impl Drop for LinkBack {
    fn drop(&mut self) {
        if self.0 == SPARE {
            let _ = link(true);
        } else {
            let _ = Command::new("ip")
                .args(["link", "set", &format!("{}-v", self.0), "up"])
                .status();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ucx_warnings_left_out() {
        let (t, n) =
            clean("a\n[1] UCX  WARN  object 0x1 was not returned to mpool ucp_requests\nOK\n");
        assert_eq!((t.as_str(), n), ("a\nOK\n", 1));
    }

    #[test]
    fn names() {
        assert_eq!(case_name("ring", "mpich"), "hosts::ring::mpich");
        assert!(not_on("mpich-deb").is_some() && in_ci("openmpi"));
    }
}
