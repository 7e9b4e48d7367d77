//! MPICH's own test suite (`test/mpi` of Debian's MPICH source, built by
//! `scripts/mpich-suite.sh`) as cases: each test of its manifest, run as
//! the suite's own runner judges it (exit 0 and a " No Errors" line, or
//! the failure its `resultTest` asks for), without the library first, then
//! under `ferry run`, with a regroup, and with a migration at seeded calls.
//! A test that fails without ferry is not a case of ours (said, passed).
//! Known failures under ferry are listed with their reason in
//! `harness/suite-expected.txt`; a listed case that passes fails, so that
//! the list only shrinks.
use crate::draw::{Draw, Spec};
use crate::job::{self, Launch, Run};
use crate::modes::Mode;
use crate::mpi::Mpi;
use ferry_common::events::EventKind;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// One test of the suite's manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Test {
    /// `dir/name` (or `dir/name:K` for the K-th line of the same program).
    pub key: String,
    pub dir: String,
    pub name: String,
    pub np: u32,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// `resultTest=`, if any.
    pub result: Option<String>,
    /// Launcher arguments the test wants (`mpiexecarg=`).
    pub launcher_args: Vec<String>,
}

/// Where the suite is built for `mpi`.
pub fn prefix(mpi: &str) -> PathBuf {
    PathBuf::from(
        std::env::var("FERRY_MPICH_SUITE_PREFIX")
            .unwrap_or_else(|_| "/opt/ferry/mpich-suite".into()),
    )
    .join(mpi)
}

/// Parses the manifest (`dir name np args env flags`, tab-separated, `-`
/// for an empty field).
pub fn parse_manifest(text: &str) -> Vec<Test> {
    let mut seen: HashMap<String, u32> = HashMap::new();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            if f.len() < 6 {
                return None;
            }
            let field = |s: &str| if s == "-" { "" } else { s }.to_string();
            let words = |s: &str| {
                field(s)
                    .split_whitespace()
                    .map(String::from)
                    .collect::<Vec<_>>()
            };
            let (dir, name) = (field(f[0]), field(f[1]));
            let n = seen.entry(format!("{dir}/{name}")).or_insert(0);
            *n += 1;
            let key = if *n == 1 {
                format!("{dir}/{name}")
            } else {
                format!("{dir}/{name}:{n}")
            };
            let flags = words(f[5]);
            let flag = |k: &str| {
                flags
                    .iter()
                    .filter_map(|w| w.strip_prefix(k).map(String::from))
                    .collect::<Vec<_>>()
            };
            Some(Test {
                key,
                dir,
                name,
                np: f[2].parse().ok()?,
                args: words(f[3]),
                env: words(f[4])
                    .iter()
                    .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.into(), v.into())))
                    .collect(),
                result: flag("resultTest=").into_iter().next(),
                launcher_args: flag("mpiexecarg="),
            })
        })
        .collect()
}

/// The tests built for `mpi` (empty when the suite is not built).
pub fn tests(mpi: &str) -> Vec<Test> {
    std::fs::read_to_string(prefix(mpi).join("manifest.tsv"))
        .map(|t| parse_manifest(&t))
        .unwrap_or_default()
}

/// Whether a run passed as the suite's runner judges it.
pub fn passed(t: &Test, run: &Run) -> Result<(), String> {
    let no_errors = run.stdout.lines().any(|l| l.trim() == "No Errors")
        || run.stderr.lines().any(|l| l.trim() == "No Errors");
    let status = run.status;
    if run.timed_out {
        return Err(format!("timed out (see {})", run.dir.display()));
    }
    let ok = match t.result.as_deref() {
        Some("TestStatus") | Some("TestErrFatal") => status.is_some_and(|s| s != 0),
        Some("TestStatusNoErrors") => status.is_some_and(|s| s != 0) && no_errors,
        _ => status == Some(0) && no_errors,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "exit {status:?}, {}\n{}",
            if no_errors {
                "\"No Errors\" printed"
            } else {
                "no \"No Errors\""
            },
            run.tails()
        ))
    }
}

/// The expected failures: (case pattern, reason); `*` stands for any mode
/// or MPI in a pattern `MODE::suite/DIR/NAME::MPI`.
pub fn expected() -> Vec<(String, String)> {
    let path = crate::root().join("harness/suite-expected.txt");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (p, why) = l.split_once(char::is_whitespace)?;
            Some((p.to_string(), why.trim().to_string()))
        })
        .collect()
}

/// Whether `case` matches `pattern` (`*` one whole `::` part).
pub fn matches(pattern: &str, case: &str) -> bool {
    let (p, c): (Vec<&str>, Vec<&str>) =
        (pattern.split("::").collect(), case.split("::").collect());
    p.len() == c.len() && p.iter().zip(&c).all(|(a, b)| *a == "*" || a == b)
}

/// How many tests of each directory (in the manifest's order, which is
/// the suite's own) CI runs under the library, and with a regroup and a
/// migration.
pub const CI_LIB: usize = 5;
pub const CI_OPS: usize = 3;

/// Whether a suite case runs in CI: on MPICH, the first [`CI_LIB`] tests
/// of each directory under the library and the first [`CI_OPS`] with a
/// regroup and with a migration (a fixed set, each known to pass or
/// listed as an expected failure). Every case runs with `FERRY_TEST_FULL=1`.
pub fn in_ci(mode: Mode, mpi: &str, index_in_dir: usize) -> bool {
    mpi == "mpich"
        && match mode {
            Mode::Lib => index_in_dir < CI_LIB,
            Mode::Regroup(1) | Mode::Migrate(1) => index_in_dir < CI_OPS,
            _ => false,
        }
}

/// Each test's position among the tests of its directory.
pub fn index_in_dir(tests: &[Test]) -> Vec<usize> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    tests
        .iter()
        .map(|t| {
            let n = seen.entry(t.dir.as_str()).or_insert(0);
            *n += 1;
            *n - 1
        })
        .collect()
}

/// The modes suite tests run in.
pub const MODES: &[Mode] = &[Mode::Lib, Mode::Regroup(1), Mode::Migrate(1)];

/// The name of a case.
pub fn case_name(mode: Mode, t: &Test, mpi: &str) -> String {
    format!("{}::suite/{}::{mpi}", mode.name(), t.key)
}

struct Baseline {
    plain: Result<(), String>,
    /// Each rank's calls under the library (empty if that run failed).
    calls: Vec<u64>,
    lib: Result<String, String>,
}

fn run_test(
    mpi: &Mpi,
    t: &Test,
    dir: &Path,
    launch: Launch,
    env: &[(String, String)],
) -> Result<Run, String> {
    let work = prefix(&mpi.name).join(&t.dir);
    let bin = work.join(&t.name);
    let mut all_env = t.env.clone();
    all_env.extend(env.iter().cloned());
    job::run_in(mpi, &bin, &t.args, t.np, dir, &work, launch, &all_env)
}

fn baseline(mpi: &Mpi, t: &Test) -> Arc<Baseline> {
    type Slot = Arc<OnceLock<Arc<Baseline>>>;
    static CACHE: OnceLock<Mutex<HashMap<(String, String), Slot>>> = OnceLock::new();
    let slot = CACHE
        .get_or_init(Default::default)
        .lock()
        .map(|mut m| {
            m.entry((mpi.name.clone(), t.key.clone()))
                .or_default()
                .clone()
        })
        .unwrap_or_default();
    slot.get_or_init(|| {
        let dir = crate::out_dir()
            .join(&mpi.name)
            .join("suite")
            .join(t.key.replace('/', "."));
        let plain =
            run_test(mpi, t, &dir.join("plain"), Launch::Plain, &[]).and_then(|r| passed(t, &r));
        if plain.is_err() {
            return Arc::new(Baseline {
                plain,
                calls: Vec::new(),
                lib: Err("not run".into()),
            });
        }
        let lib = run_test(mpi, t, &dir.join("lib"), Launch::Ferry(&[]), &[]);
        let (lib, calls) = match lib {
            Ok(r) => (
                passed(t, &r).map(|_| "passes under ferry".to_string()),
                r.calls(),
            ),
            Err(e) => (Err(e), Vec::new()),
        };
        Arc::new(Baseline { plain, calls, lib })
    })
    .clone()
}

/// Runs one suite case. `Ok`: what passed.
pub fn run(mpi: &Mpi, t: &Test, mode: Mode, seed: u64) -> Result<String, String> {
    if let Some(m) = mpi.missing() {
        return Err(m);
    }
    let name = case_name(mode, t, &mpi.name);
    let b = baseline(mpi, t);
    if let Err(e) = &b.plain {
        return Ok(format!(
            "fails without ferry too, not a case of ours: {}",
            first_line(e)
        ));
    }
    let outcome = match mode {
        Mode::Lib => b.lib.clone(),
        Mode::Regroup(_) | Mode::Migrate(_) => operation(mpi, t, mode, &b, &name, seed),
        _ => Err(format!("mode {} does not apply to the suite", mode.name())),
    };
    let expected = expected().into_iter().find(|(p, _)| matches(p, &name));
    match (outcome, expected) {
        (Ok(pass), None) => Ok(pass),
        (Err(e), None) => Err(e),
        (Err(e), Some((_, why))) => Ok(format!("expected failure ({why}): {}", first_line(&e))),
        (Ok(_), Some((p, _))) => Err(format!(
            "passes now: remove '{p}' from harness/suite-expected.txt"
        )),
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

fn operation(
    mpi: &Mpi,
    t: &Test,
    mode: Mode,
    b: &Baseline,
    name: &str,
    seed: u64,
) -> Result<String, String> {
    b.lib
        .as_ref()
        .map_err(|e| format!("the library run fails: {}", first_line(e)))?;
    if b.calls.len() != t.np as usize {
        return Err(format!(
            "{} of {} ranks reported their calls",
            b.calls.len(),
            t.np
        ));
    }
    let migrate = matches!(mode, Mode::Migrate(_));
    let var = if migrate {
        "FERRY_MIGRATE"
    } else {
        "FERRY_REGROUP"
    };
    let mut draw = Draw::new(seed, name);
    let rank = draw.below(t.np as u64) as u32;
    let mut spec = Spec {
        rank,
        after: draw.below((b.calls[rank as usize] / 2).max(1)) + 1,
    };
    let dir = crate::out_dir()
        .join(&mpi.name)
        .join("suite")
        .join(t.key.replace('/', "."))
        .join(mode.name());
    for _ in 0..4 {
        let env = vec![
            (var.to_string(), spec.to_string()),
            ("FERRY_LOG".into(), "info".into()),
        ];
        let run = run_test(mpi, t, &dir, Launch::Ferry(&[]), &env)?;
        let spec_text = format!("{var}=\"{spec}\"");
        passed(t, &run).map_err(|e| format!("{e}; {spec_text}"))?;
        let fired = run
            .calls()
            .get(rank as usize)
            .is_some_and(|&c| c >= spec.after);
        let done = run
            .events_of(if migrate {
                EventKind::Migrate
            } else {
                EventKind::Regroup
            })
            .count();
        let refusals: Vec<String> = run
            .events_of(EventKind::Refused)
            .filter_map(|e| e.refusal().map(|(_, why)| why.to_string()))
            .collect();
        if !fired {
            spec.after = spec.after / 4 + 1;
            continue;
        }
        if done == 0 && refusals.is_empty() {
            if t.result.is_some() {
                // A test that ends by an error on purpose (resultTest=)
                // may end before the operation completes.
                return Ok(format!(
                    "passes; it ends by an error by design before the {} completed ({spec_text})",
                    if migrate { "migration" } else { "regroup" }
                ));
            }
            return Err(format!(
                "no {} event and no refusal; {spec_text} ({})",
                mode.name(),
                run.dir.display()
            ));
        }
        return Ok(if refusals.is_empty() {
            format!(
                "passes with {done} {} ({spec_text})",
                if migrate { "migration" } else { "regroup" }
            )
        } else {
            format!(
                "passes, the migration refused: {} ({spec_text})",
                refusals.join("; ")
            )
        });
    }
    Ok(format!(
        "the test made too few calls for {var} to fire (the library run made {:?})",
        b.calls
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_lines() {
        let m = "coll\tallred\t4\t-\t-\t-\ncoll\tallred\t7\t-count=10\tMPIR_CVAR_X=1\tresultTest=TestStatus mpiexecarg=-l\nbad line\n";
        let t = parse_manifest(m);
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].key, "coll/allred");
        assert_eq!(t[1].key, "coll/allred:2");
        assert_eq!(t[1].np, 7);
        assert_eq!(t[1].args, ["-count=10"]);
        assert_eq!(t[1].env, [("MPIR_CVAR_X".to_string(), "1".to_string())]);
        assert_eq!(t[1].result.as_deref(), Some("TestStatus"));
        assert_eq!(t[1].launcher_args, ["-l"]);
    }

    #[test]
    fn patterns() {
        assert!(matches(
            "*::suite/attr/attrerr::*",
            "lib::suite/attr/attrerr::mpich"
        ));
        assert!(matches(
            "migrate1::suite/comm/icm::mpich",
            "migrate1::suite/comm/icm::mpich"
        ));
        assert!(!matches(
            "lib::suite/comm/icm::*",
            "migrate1::suite/comm/icm::mpich"
        ));
        assert!(!matches("*::suite/comm::*", "lib::suite/comm/icm::mpich"));
    }
}
