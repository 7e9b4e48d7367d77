//! mpi4py's own test suite (a suite nobody here wrote), run without and
//! with the library: cases `mpi4py::MODE::npN::MPI`, on MPICH and Open
//! MPI, 1 and 2 ranks (formerly `scripts/mpi4py-suite.sh`).
//!
//! | mode | the run with the library | passes when |
//! |---|---|---|
//! | `lib` | `LD_PRELOAD=libferry.so`, given to the ranks by the launcher (`-genv` / `-x`) | every rank finished the suite in both runs, the plain run passed tests, and every rank has the same counts and the same outcome for every test as in the plain run |
//! | `image` | the same with the process image on (`FERRY_IMAGE=1`) | the same |
//!
//! The suite is the one `scripts/setup.sh` unpacked in
//! `$FERRY_PREFIX/mpi4py-tests` (mpi4py 4.1.2's `test/`), run by each
//! MPI's venv (`$FERRY_PY`) through `harness/mpi4py/rank_runner.py`, which
//! gives each rank its own log and records each test's outcome. The plain
//! run of an (MPI, rank count) is made once per harness process and shared
//! by its cases. Each run is limited to `FERRY_SUITE_TIMEOUT` seconds (300
//! by default). On a difference, the tests whose outcome changed are
//! listed with the first line of the exception of the run with the
//! library. Logs: `target/ferry-tests/MPI/mpi4py/npN/{plain,lib,image}/`.
//!
//! Tests are left out only for problems of an MPI without the library,
//! each with the reason seen ([`known_problems`]).
use crate::modes::with_retries;
use crate::mpi::Mpi;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The MPIs the suite runs on (Debian's MPICH 4.0.2 has no mpi4py venv).
pub const MPIS: &[&str] = &["mpich", "openmpi"];
/// The runs with the library.
pub const MODES: &[&str] = &["lib", "image"];
/// The rank counts.
pub const RANKS: &[u32] = &[1, 2];

/// `mpi4py::MODE::npN::MPI`.
pub fn case_name(mode: &str, np: u32, mpi: &str) -> String {
    format!("mpi4py::{mode}::np{np}::{mpi}")
}

/// Environment the ranks get for problems of the MPI itself, seen without
/// the library (mpi4py's own switches: the tests show as skipped, with a
/// reason).
fn known_problems(mpi: &str) -> Vec<(&'static str, &'static str)> {
    match mpi {
        // Debian's Open MPI 4.1.4: MPI_Comm_spawn / Spawn_multiple hang now
        // and then WITHOUT the library (a spawned child stuck in PMIx_Init,
        // the parents in ompi_dpm_connect_accept; 2 of 6 plain runs of
        // test_spawn at 2 ranks, and both full runs, hung). mpi4py itself
        // skips spawn on Open MPI 4.1 in its CI for the same reason.
        // MPI4PY_TEST_SPAWN=0 skips test_spawn and the spawning part of
        // test_util_pool ("skipped 'mpi-spawn'").
        "openmpi" => vec![("MPI4PY_TEST_SPAWN", "0")],
        _ => Vec::new(),
    }
}

/// Runs one case (with retries). `Ok`: what passed.
pub fn run(mpi: &Mpi, mode: &str, np: u32) -> Result<String, String> {
    with_retries(&case_name(mode, np, &mpi.name), None, || {
        once(mpi, mode, np)
    })
}

fn once(mpi: &Mpi, mode: &str, np: u32) -> Result<String, String> {
    let plain = plain(mpi, np)?;
    let dir = out(mpi, np).join(mode);
    let ferry = run_suite(mpi, np, &dir, Some(mode))?;
    if let Some(why) = &ferry.unfinished {
        return Err(format!(
            "{why}\n{}{}",
            compare(&plain.dir, &dir, np).err().unwrap_or_default(),
            tails(&dir)
        ));
    }
    compare(&plain.dir, &dir, np).map_err(|d| {
        let _ = std::fs::write(dir.join("differences"), &d);
        format!("outcomes differ from the plain run's:\n{d}")
    })?;
    Ok(format!(
        "{} tests on {np} rank(s), same outcomes as without ferry (rank 0: {}); {:.0} s plain, {:.0} s with ferry",
        plain.ran,
        counts(&plain.dir, 0).unwrap_or_default(),
        plain.secs,
        ferry.secs
    ))
}

/// What one run of the suite gave.
struct SuiteRun {
    dir: PathBuf,
    /// Why not every rank finished the suite (`None`: they all did).
    unfinished: Option<String>,
    /// Tests rank 0 ran.
    ran: u64,
    secs: f64,
}

/// The plain run of `np` ranks on `mpi`, once per harness process (a
/// failure is not kept: a retry tries again).
fn plain(mpi: &Mpi, np: u32) -> Result<Arc<SuiteRun>, String> {
    type Cache = Mutex<HashMap<(String, u32), Arc<SuiteRun>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let key = (mpi.name.clone(), np);
    let cache = CACHE.get_or_init(Default::default);
    if let Some(r) = cache.lock().map_err(|_| "poisoned")?.get(&key) {
        return Ok(r.clone());
    }
    let dir = out(mpi, np).join("plain");
    let r = run_suite(mpi, np, &dir, None)?;
    if let Some(why) = &r.unfinished {
        return Err(format!(
            "the plain run (without ferry) failed: {why}\n{}",
            tails(&dir)
        ));
    }
    if r.ran == 0 || counts(&dir, 0).is_some_and(|c| c.starts_with("0 passed")) {
        return Err(format!("the plain run passed no test ({})", dir.display()));
    }
    let r = Arc::new(r);
    cache.lock().map_err(|_| "poisoned")?.insert(key, r.clone());
    Ok(r)
}

/// `target/ferry-tests/MPI/mpi4py/npN/`.
fn out(mpi: &Mpi, np: u32) -> PathBuf {
    crate::out_dir()
        .join(&mpi.name)
        .join("mpi4py")
        .join(format!("np{np}"))
}

/// The per-run limit: `FERRY_SUITE_TIMEOUT` seconds, else 300.
fn timeout() -> Duration {
    Duration::from_secs(
        std::env::var("FERRY_SUITE_TIMEOUT")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(300),
    )
}

/// One run of the suite on `np` ranks into `dir` (made anew): plainly
/// (`mode` `None`) or with the library in `mode`.
fn run_suite(mpi: &Mpi, np: u32, dir: &Path, mode: Option<&str>) -> Result<SuiteRun, String> {
    let py = PathBuf::from(mpi.env.get("FERRY_PY").cloned().unwrap_or_default());
    let prefix = mpi
        .env
        .get("FERRY_PREFIX")
        .cloned()
        .unwrap_or_else(|| "/opt/ferry".into());
    let tests = Path::new(&prefix).join("mpi4py-tests");
    if !py.is_file() || !tests.join("main.py").is_file() {
        return Err(format!(
            "mpi4py is not installed for {} ({}, {}): run scripts/setup.sh",
            mpi.name,
            py.display(),
            tests.display()
        ));
    }
    if mode.is_some() {
        if let Some(m) = mpi.missing() {
            return Err(m);
        }
    }
    let _ = std::fs::remove_dir_all(dir);
    let cwd = dir.join("cwd");
    std::fs::create_dir_all(&cwd).map_err(|e| format!("{}: {e}", cwd.display()))?;
    let mut env: Vec<(String, String)> = vec![
        // mpi4py.futures' workers (test_util_pool) import test modules by
        // name, as under `python test/main.py`, whose directory is
        // sys.path[0].
        ("PYTHONPATH".into(), tests.display().to_string()),
    ];
    env.extend(
        known_problems(&mpi.name)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    if let Some(mode) = mode {
        env.push(("LD_PRELOAD".into(), mpi.lib().display().to_string()));
        if mode == "image" {
            env.push(("FERRY_IMAGE".into(), "1".into()));
        }
    }
    let limit = timeout();
    // Bounded by coreutils' timeout, which kills the launcher (and MPI
    // then its ranks) when the time is up.
    let mut cmd = Command::new("timeout");
    cmd.args(["-k", "10", &limit.as_secs().to_string()])
        .arg(mpi.mpiexec())
        .args(mpi.mpiexec_flags())
        .args(["-n", &np.to_string()]);
    for (k, v) in &env {
        // Given by the launcher, so that the processes the ranks spawn
        // have them too.
        if mpi.name == "openmpi" {
            cmd.args(["-x", &format!("{k}={v}")]);
        } else {
            cmd.args(["-genv", k, v]);
        }
    }
    cmd.arg(&py)
        .arg(crate::root().join("harness/mpi4py/rank_runner.py"))
        .arg(dir)
        .arg(&tests)
        .arg("-v")
        .envs(&mpi.env)
        .current_dir(&cwd)
        .stdin(Stdio::null());
    let _ = std::fs::write(dir.join("command"), format!("{cmd:?}\n"));
    let log = std::fs::File::create(dir.join("launcher.log")).map_err(|e| e.to_string())?;
    cmd.stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log);
    let t0 = Instant::now();
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {}: {e}", mpi.mpiexec().display()))?;
    // (124: timed out; 137: killed after the grace period)
    let status = (!matches!(status.code(), Some(124) | Some(137))).then_some(status);
    let secs = t0.elapsed().as_secs_f64();
    let label = mode.unwrap_or("plain");
    let missing: Vec<u32> = (0..np)
        .filter(|r| !dir.join(format!("rank{r}.summary")).is_file())
        .collect();
    let unfinished = match status {
        None => Some(format!(
            "the {label} run timed out after {} s",
            limit.as_secs()
        )),
        Some(s) if !missing.is_empty() => Some(format!(
            "the {label} run: rank(s) {missing:?} did not finish the suite ({s})"
        )),
        // A non-zero exit with every rank finished means tests failed:
        // the comparison judges it.
        Some(_) => None,
    };
    let ran = summary(dir, 0).map(|s| s.ran).unwrap_or(0);
    Ok(SuiteRun {
        dir: dir.to_path_buf(),
        unfinished,
        ran,
        secs,
    })
}

/// unittest's counts of one rank (`rankR.summary`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Summary {
    ran: u64,
    failures: u64,
    errors: u64,
    skipped: u64,
    xfail: u64,
    xpass: u64,
}

fn summary(dir: &Path, rank: u32) -> Option<Summary> {
    let text = std::fs::read_to_string(dir.join(format!("rank{rank}.summary"))).ok()?;
    parse_summary(&text)
}

fn parse_summary(text: &str) -> Option<Summary> {
    let mut s = Summary::default();
    let line = text.lines().next()?;
    for kv in line.split_whitespace() {
        let (k, v) = kv.split_once('=')?;
        let v: u64 = v.parse().ok()?;
        match k {
            "ran" => s.ran = v,
            "failures" => s.failures = v,
            "errors" => s.errors = v,
            "skipped" => s.skipped = v,
            "xfail" => s.xfail = v,
            "xpass" => s.xpass = v,
            _ => {}
        }
    }
    Some(s)
}

/// "P passed, F failed, E errors, S skipped" of one rank (expected
/// failures count as passed, unexpected successes as failed).
fn counts(dir: &Path, rank: u32) -> Option<String> {
    summary(dir, rank).map(|c| describe(&c))
}

fn describe(c: &Summary) -> String {
    let passed = c
        .ran
        .saturating_sub(c.failures + c.errors + c.skipped + c.xpass);
    format!(
        "{passed} passed, {} failed, {} errors, {} skipped",
        c.failures + c.xpass,
        c.errors,
        c.skipped
    )
}

/// Each test's outcome(s) in one rank, in the order they ran.
fn outcomes(dir: &Path, rank: u32) -> Vec<(String, String)> {
    let text =
        std::fs::read_to_string(dir.join(format!("rank{rank}.outcomes"))).unwrap_or_default();
    parse_outcomes(&text)
}

fn parse_outcomes(text: &str) -> Vec<(String, String)> {
    let mut order: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let (test, outcome) = line.split_once('\t').unwrap_or((line, ""));
        match order.iter_mut().find(|(t, _)| t == test) {
            Some((_, o)) => {
                o.push('+');
                o.push_str(outcome);
            }
            None => order.push((test.to_string(), outcome.to_string())),
        }
    }
    order
}

/// The first line of the exception unittest reported for each failed
/// test, from a rank's verbose log.
fn reasons(log: &str) -> HashMap<String, String> {
    let mut found = HashMap::new();
    let (mut test, mut why, mut more): (Option<String>, Option<String>, bool) = (None, None, false);
    for line in log.lines() {
        let header = ["ERROR: ", "FAIL: "]
            .iter()
            .find_map(|p| line.strip_prefix(p))
            .and_then(|rest| {
                let open = rest.find(" (")?;
                let close = rest[open..].find(')')?;
                Some(rest[open + 2..open + close].to_string())
            });
        if let Some(t) = header {
            test = Some(t);
            why = None;
        } else if test.is_none() {
            continue;
        } else if !line.is_empty() && line.chars().all(|c| c == '=' || c == '-') {
            // (the dashes under the header open the block; a rule after
            // the traceback ends it)
            if let Some(w) = why.take() {
                if let Some(t) = test.take() {
                    found.entry(t).or_insert(w);
                }
            }
        } else if line.starts_with("Traceback (") {
            why = Some(String::new());
            more = false;
        } else if why.as_deref() == Some("")
            && !line.is_empty()
            && !line.starts_with(char::is_whitespace)
        {
            let w = line.trim().to_string();
            more = w.ends_with(':');
            why = Some(w);
        } else if more && !line.trim().is_empty() {
            why = why.map(|w| format!("{w} {}", line.trim()));
            more = false;
        }
    }
    found
}

/// The runs in `plain` and `ferry` compared rank by rank: unittest's
/// counts, every test whose outcome changed (with the first line of its
/// exception with ferry), the tests that ran in one run only. `Err`: the
/// differences.
fn compare(plain: &Path, ferry: &Path, np: u32) -> Result<(), String> {
    const LIMIT: usize = 40;
    let mut out = String::new();
    for r in 0..np {
        let (cp, cf) = (summary(plain, r), summary(ferry, r));
        if cp != cf {
            out += &format!(
                "    rank {r} counts: plain {}; ferry {}\n",
                cp.map_or("did not finish".into(), |c| describe(&c)),
                cf.map_or("did not finish".into(), |c| describe(&c))
            );
        }
        let (op, of) = (outcomes(plain, r), outcomes(ferry, r));
        let of_map: HashMap<&str, &str> =
            of.iter().map(|(t, o)| (t.as_str(), o.as_str())).collect();
        let op_map: HashMap<&str, &str> =
            op.iter().map(|(t, o)| (t.as_str(), o.as_str())).collect();
        let changed: Vec<&(String, String)> = op
            .iter()
            .filter(|(t, o)| of_map.get(t.as_str()).is_some_and(|f| f != o))
            .collect();
        if !changed.is_empty() {
            let why = reasons(
                &std::fs::read_to_string(ferry.join(format!("rank{r}.log"))).unwrap_or_default(),
            );
            out += &format!(
                "    rank {r}: {} test(s) changed outcome (plain -> ferry):\n",
                changed.len()
            );
            for (t, o) in changed.iter().take(LIMIT) {
                let note = why
                    .get(t)
                    .map(|w| format!("  [{}]", w.chars().take(200).collect::<String>()))
                    .unwrap_or_default();
                out += &format!("      {t}  {o} -> {}{note}\n", of_map[t.as_str()]);
            }
            if changed.len() > LIMIT {
                out += &format!("      ... and {} more\n", changed.len() - LIMIT);
            }
        }
        for (label, only) in [
            (
                "plain",
                op.iter()
                    .filter(|(t, _)| !of_map.contains_key(t.as_str()))
                    .collect::<Vec<_>>(),
            ),
            (
                "ferry",
                of.iter()
                    .filter(|(t, _)| !op_map.contains_key(t.as_str()))
                    .collect::<Vec<_>>(),
            ),
        ] {
            if let Some((first, _)) = only.first() {
                out += &format!(
                    "    rank {r}: {} test(s) ran only in the {label} run (the first: {first})\n",
                    only.len()
                );
            }
        }
    }
    if out.is_empty() {
        Ok(())
    } else {
        Err(out)
    }
}

/// The last lines of rank 0's log and of the launcher's, indented.
fn tails(dir: &Path) -> String {
    let mut s = String::new();
    for f in ["rank0.log", "launcher.log"] {
        let p = dir.join(f);
        let Ok(text) = std::fs::read_to_string(&p) else {
            continue;
        };
        let lines: Vec<&str> = text.lines().collect();
        s += &format!("  {} (last 15 lines):\n", p.display());
        for l in &lines[lines.len().saturating_sub(15)..] {
            s += &format!("    | {l}\n");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_count_as_unittest_does() {
        let s = parse_summary("ran=10 failures=1 errors=2 skipped=3 xfail=1 xpass=1\n").unwrap();
        assert_eq!(describe(&s), "3 passed, 2 failed, 2 errors, 3 skipped");
        assert_eq!(parse_summary(""), None);
        assert_eq!(parse_summary("ran=x"), None);
    }

    #[test]
    fn outcomes_keep_their_order_and_repeats() {
        let o = parse_outcomes("a.T.x\tok\nb.T.y\tskip\na.T.x\tFAIL\n");
        assert_eq!(
            o,
            vec![
                ("a.T.x".to_string(), "ok+FAIL".to_string()),
                ("b.T.y".to_string(), "skip".to_string())
            ]
        );
    }

    #[test]
    fn reasons_are_the_exceptions_first_line() {
        let log = "\
test_a (test_x.TestX.test_a) ... ERROR
======================================================================
ERROR: test_a (test_x.TestX.test_a)
----------------------------------------------------------------------
Traceback (most recent call last):
  File \"x.py\", line 3, in test_a
    f()
mpi4py.MPI.Exception: MPI_ERR_OTHER: error stack:
PMPI_Send(1): failed
======================================================================
";
        let r = reasons(log);
        assert_eq!(
            r.get("test_x.TestX.test_a").map(String::as_str),
            Some("mpi4py.MPI.Exception: MPI_ERR_OTHER: error stack: PMPI_Send(1): failed")
        );
    }

    #[test]
    fn a_changed_outcome_is_a_difference() {
        let t = std::env::temp_dir().join(format!("ferry-mpi4py-{}", std::process::id()));
        let (p, f) = (t.join("plain"), t.join("ferry"));
        for (d, out) in [(&p, "a\tok\nb\tok\n"), (&f, "a\tok\nb\tFAIL\n")] {
            std::fs::create_dir_all(d).unwrap();
            std::fs::write(d.join("rank0.outcomes"), out).unwrap();
            std::fs::write(
                d.join("rank0.summary"),
                "ran=2 failures=0 errors=0 skipped=0 xfail=0 xpass=0\n",
            )
            .unwrap();
        }
        let d = compare(&p, &f, 1).unwrap_err();
        assert!(d.contains("b  ok -> FAIL"), "{d}");
        std::fs::write(f.join("rank0.outcomes"), "a\tok\nb\tok\n").unwrap();
        assert_eq!(compare(&p, &f, 1), Ok(()));
        let _ = std::fs::remove_dir_all(&t);
    }
}
