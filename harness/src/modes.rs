//! The modes a program runs in, and what each checks:
//!
//! | mode | run | passes when |
//! |---|---|---|
//! | `lib` | `ferry run` (library preloaded, nothing asked) | output identical to the plain run's; every rank reported its calls, with no internal error |
//! | `image` | the same with the process image on | the same, and every rank says its image was on |
//! | `regroupN` | N regroups by seeded ranks at seeded calls | output identical; one `regroup` event per SPEC that could fire |
//! | `migrateN` | N migrations likewise | output identical; one `migrate` event (or an expected refusal) per SPEC that could fire; each `migrate` event from a pid to another; each moved rank ends in a new process, every other in its own (C programs' `ctest-pids` lines); on an MPI that cannot spawn, no `migrate` event and every SPEC that fired refused for that reason |
//! | `checkpoint` | a checkpoint at a seeded call of rank 0, then `ferry restart` | the two outputs together identical to the plain run's; the images private; one `checkpoint` and one `restart` event; or a refusal the program expects |
//! | `swap` | the world swapped underneath at world barriers 2 and 5 (`FERRY_TEST_DUP_WORLD_AT_BARRIER=2,5`) | output identical; every rank's status says the switch fired once per such barrier the program reached (at least once: a program with fewer than 2 world barriers skips the mode) |
//! | `signal` | (only `signal::signal::MPI`, see [`crate::standalone`]) the program raises SIGUSR2 | output identical; at least one `regroup` event, every rank in a regroup |
//!
//! In every mode, a program that checks its own call counts
//! (`ferry-test-calls`) must say that every rank's calls were counted once;
//! no rank may report an internal error of the library (job directory).
//!
//! The plain run and the library run of each program and MPI are made once
//! per harness process and shared by its cases ([`reference`]).
use crate::draw::{self, Draw, Spec};
use crate::job::{self, Launch, Run};
use crate::mpi::Mpi;
use crate::program::{Lang, Program};
use ferry_common::events::EventKind;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// A mode of running a program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Lib,
    Image,
    Regroup(usize),
    Migrate(usize),
    Checkpoint,
    Swap,
    /// A regroup asked for with SIGUSR2 by the program itself (not in
    /// [`Mode::ALL`]: it applies to `c-tests/signal.c` only).
    Signal,
}

impl Mode {
    /// Every mode, in the order cases are listed.
    pub const ALL: &'static [Mode] = &[
        Mode::Lib,
        Mode::Image,
        Mode::Regroup(1),
        Mode::Regroup(3),
        Mode::Regroup(20),
        Mode::Migrate(1),
        Mode::Migrate(5),
        Mode::Checkpoint,
        Mode::Swap,
    ];

    /// The world barriers at which `swap` swaps the world.
    pub const SWAP_AT: [u64; 2] = [2, 5];

    pub fn name(&self) -> String {
        match self {
            Mode::Lib => "lib".into(),
            Mode::Image => "image".into(),
            Mode::Regroup(n) => format!("regroup{n}"),
            Mode::Migrate(n) => format!("migrate{n}"),
            Mode::Checkpoint => "checkpoint".into(),
            Mode::Swap => "swap".into(),
            Mode::Signal => "signal".into(),
        }
    }

    /// Whether the case is in the matrix CI runs (every mode on MPICH and
    /// Open MPI; on Debian's MPICH 4.0.2 the library run and twenty
    /// regroups); the rest runs with `FERRY_TEST_FULL=1` or
    /// `--include-ignored`.
    pub fn in_ci(&self, mpi: &str) -> bool {
        mpi != "mpich-deb" || matches!(self, Mode::Lib | Mode::Regroup(20))
    }

    /// Whether the mode applies on `mpi`, and if not why. (Every mode
    /// does: on Debian's MPICH 4.0.2, which cannot spawn, a `migrateN`
    /// case checks that each migration is refused for that reason and the
    /// job goes on.)
    pub fn not_on(&self, _mpi: &str) -> Option<&'static str> {
        None
    }
}

/// What the plain and the library runs of a program gave.
pub struct Reference {
    pub bin: PathBuf,
    pub plain: String,
    /// Each rank's MPI calls under the library.
    pub calls: Vec<u64>,
}

type Slot = Arc<OnceLock<Result<Arc<Reference>, String>>>;

/// The reference of `program` on `mpi`: built, run plainly and under the
/// library (checked against each other), once per harness process.
pub fn reference(mpi: &Mpi, program: &Program) -> Result<Arc<Reference>, String> {
    static CACHE: OnceLock<Mutex<HashMap<(String, String), Slot>>> = OnceLock::new();
    let slot = CACHE
        .get_or_init(Default::default)
        .lock()
        .map_err(|_| "the reference cache is poisoned".to_string())?
        .entry((mpi.name.clone(), program.name.clone()))
        .or_default()
        .clone();
    slot.get_or_init(|| make_reference(mpi, program).map(Arc::new))
        .clone()
}

fn case_dir(mpi: &Mpi, program: &Program, what: &str) -> PathBuf {
    crate::out_dir()
        .join(&mpi.name)
        .join(&program.name)
        .join(what)
}

fn make_reference(mpi: &Mpi, program: &Program) -> Result<Reference, String> {
    if let Some(m) = mpi.missing() {
        return Err(m);
    }
    let bin = program.build(mpi, &crate::out_dir().join(&mpi.name).join("bin"))?;
    let plain = job::run(
        mpi,
        &bin,
        program.ranks,
        &case_dir(mpi, program, "plain"),
        Launch::Plain,
        &[],
    )?;
    if let Some(f) = plain.failure() {
        return Err(format!("the plain run {f}\n{}", plain.tails()));
    }
    let lib = job::run(
        mpi,
        &bin,
        program.ranks,
        &case_dir(mpi, program, "lib"),
        Launch::Ferry(&[]),
        &[],
    )?;
    if let Some(f) = lib.failure() {
        return Err(format!("the run under ferry {f}\n{}", lib.tails()));
    }
    same_output(&plain.stdout, &lib.stdout, &lib.dir)?;
    let calls = lib.calls();
    if calls.len() != program.ranks as usize {
        return Err(format!(
            "{} of {} ranks reported their calls in the job directory ({})",
            calls.len(),
            program.ranks,
            lib.dir.display()
        ));
    }
    if let Some(r) = lib
        .ranks
        .iter()
        .find(|r| r.extra.get("internal_errors").is_none())
    {
        return Err(format!(
            "rank {} reported no internal_errors count in the job directory (a library older than the harness? {})",
            r.rank,
            lib.dir.display()
        ));
    }
    program
        .check_calls(&lib.stderr)
        .map_err(|e| format!("the run under ferry: {e} ({})", lib.dir.display()))?;
    Ok(Reference {
        bin,
        plain: plain.stdout,
        calls,
    })
}

/// Fails with a diff-like excerpt when `got` is not `want`.
pub(crate) fn same_output(want: &str, got: &str, dir: &Path) -> Result<(), String> {
    if want == got {
        return Ok(());
    }
    let (w, g): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
    let first = w
        .iter()
        .zip(&g)
        .position(|(a, b)| a != b)
        .unwrap_or(w.len().min(g.len()));
    let show = |v: &[&str]| {
        v.iter()
            .skip(first)
            .take(5)
            .map(|l| format!("    | {l}\n"))
            .collect::<String>()
    };
    Err(format!(
        "stdout differs from the plain run's at line {} ({} lines, plain {}; see {}):\n  plain:\n{}  this run:\n{}",
        first + 1,
        g.len(),
        w.len(),
        dir.display(),
        show(&w),
        show(&g)
    ))
}

/// One case: a program, an MPI, a mode.
pub struct Case {
    pub mode: Mode,
    pub program: Program,
    pub mpi: String,
}

impl Case {
    /// `MODE::PROGRAM::MPI`.
    pub fn name(&self) -> String {
        format!("{}::{}::{}", self.mode.name(), self.program.name, self.mpi)
    }

    /// Why the case does not apply, if it does not.
    pub fn skip(&self) -> Option<String> {
        self.mode
            .not_on(&self.mpi)
            .map(String::from)
            .or_else(|| self.program.skipped_on(&self.mode.name(), &self.mpi))
    }

    /// Whether the case is in the matrix CI runs: for C programs see
    /// [`Mode::in_ci`]; the Fortran programs (as `scripts/fortran-tests.sh`
    /// ran them) under the library, with 3 regroups, 5 migrations (refused
    /// on Debian's MPICH 4.0.2) and a checkpoint, on Open MPI and Debian's
    /// MPICH 4.0.2.
    pub fn in_ci(&self) -> bool {
        match self.program.lang {
            Lang::C => self.mode.in_ci(&self.mpi),
            Lang::Fortran => matches!(
                self.mode,
                Mode::Lib | Mode::Regroup(3) | Mode::Migrate(5) | Mode::Checkpoint
            ),
        }
    }

    /// Runs the case (and again up to `FERRY_TEST_RETRIES` times if it
    /// fails; see [`retrying`]). `Ok`: what passed.
    pub fn run(&self, mpi: &Mpi, seed: u64) -> Result<String, String> {
        retrying(&self.name(), seed, |_| self.once(mpi, seed))
    }

    fn once(&self, mpi: &Mpi, seed: u64) -> Result<String, String> {
        let r = reference(mpi, &self.program)?;
        let dir = case_dir(mpi, &self.program, &self.mode.name());
        let mut draw = Draw::new(seed, &self.name());
        match self.mode {
            Mode::Lib => Ok(format!(
                "{} ranks, identical output with the library",
                self.program.ranks
            )),
            Mode::Image => {
                let run = job::run(
                    mpi,
                    &r.bin,
                    self.program.ranks,
                    &dir,
                    Launch::Ferry(&[]),
                    &[("FERRY_IMAGE".into(), "1".into())],
                )?;
                fails(&run)?;
                same_output(&r.plain, &run.stdout, &run.dir)?;
                let on = run
                    .ranks
                    .iter()
                    .filter(|s| s.extra.get("image") == Some(&serde_json::Value::Bool(true)))
                    .count();
                if on != self.program.ranks as usize {
                    return Err(format!(
                        "the process image was on in {on} of {} ranks ({})",
                        self.program.ranks,
                        run.dir.display()
                    ));
                }
                self.program.check_calls(&run.stderr)?;
                Ok(format!("{on} ranks, identical output with the image on"))
            }
            Mode::Regroup(n) | Mode::Migrate(n) => self.operations(mpi, &r, &dir, &mut draw, n),
            Mode::Checkpoint => self.checkpoint(mpi, &r, &dir, &mut draw),
            Mode::Swap => self.swap(mpi, &r, &dir),
            Mode::Signal => self.signal(mpi, &r, &dir),
        }
    }

    /// `regroupN` and `migrateN`.
    fn operations(
        &self,
        mpi: &Mpi,
        r: &Reference,
        dir: &Path,
        draw: &mut Draw,
        n: usize,
    ) -> Result<String, String> {
        let migrate = matches!(self.mode, Mode::Migrate(_));
        let var = if migrate {
            "FERRY_MIGRATE"
        } else {
            "FERRY_REGROUP"
        };
        let mut specs = draw::specs(draw, n, &r.calls);
        // A program that polls may make far fewer calls in this run than
        // in the one counted: if no SPEC could fire, the call counts are
        // quartered and it runs again (at most four times).
        let mut attempt = 0;
        let (run, fired) = loop {
            let env = vec![
                (var.to_string(), draw::joined(&specs)),
                ("FERRY_LOG".to_string(), "info".to_string()),
            ];
            let run = job::run(
                mpi,
                &r.bin,
                self.program.ranks,
                dir,
                Launch::Ferry(&[]),
                &env,
            )?;
            let calls = run.calls();
            let fired = specs
                .iter()
                .filter(|s| calls.get(s.rank as usize).is_some_and(|&c| c >= s.after))
                .count();
            attempt += 1;
            if fired > 0 || run.failure().is_some() || attempt == 5 {
                break (run, fired);
            }
            for s in &mut specs {
                s.after = s.after / 4 + 1;
            }
        };
        let spec_text = format!("{var}=\"{}\"", draw::joined(&specs));
        fails(&run).map_err(|e| format!("{e}; {spec_text}"))?;
        same_output(&r.plain, &run.stdout, &run.dir).map_err(|e| format!("{e}; {spec_text}"))?;
        self.program
            .check_calls(&run.stderr)
            .map_err(|e| format!("{e}; {spec_text} ({})", run.dir.display()))?;
        // Refusals: each must be one the program expects.
        let mut disabled = 0;
        for ev in run.events_of(EventKind::Refused) {
            let Some((op, why)) = ev.refusal() else {
                continue;
            };
            // An MPI that cannot spawn refuses every migration, which a
            // program that asks for them itself gets in any mode.
            if !mpi.can_spawn() && why.contains("cannot spawn") {
                continue;
            }
            if why.starts_with("regroups and migrations are disabled") {
                disabled += 1;
                if mpi.name == "openmpi" {
                    continue;
                }
            }
            if !self.program.expects_refusal(why) {
                return Err(format!(
                    "a {op} of rank {:?} was refused, which {} does not expect: {why}; {spec_text}",
                    ev.rank, self.program.name
                ));
            }
        }
        let (done, refused) = if migrate {
            let refused = run
                .events_of(EventKind::Regroup)
                .filter(|e| e.extra.contains_key("migration_refused"))
                .count()
                + disabled;
            (run.events_of(EventKind::Migrate).count(), refused)
        } else {
            (run.events_of(EventKind::Regroup).count(), 0)
        };
        let what = if migrate { "migrations" } else { "regroups" };
        let matches = if self.program.asks {
            done + refused >= fired
        } else {
            done + refused == fired
        };
        if fired == 0 || !matches {
            return Err(format!(
                "{done} {what} and {refused} refused in the event log, {fired} of {n} SPECs could fire; {spec_text} ({})",
                run.dir.display()
            ));
        }
        if !migrate {
            return Ok(format!(
                "{} ranks, identical output with {done} regroups ({spec_text})",
                self.program.ranks
            ));
        }
        let moved: Vec<u32> = run
            .events_of(EventKind::Migrate)
            .filter_map(|e| e.rank)
            .collect();
        for ev in run.events_of(EventKind::Migrate) {
            if ev.new_pid.is_none() || ev.new_pid == ev.old_pid {
                return Err(format!(
                    "a migrate event of rank {:?} from pid {:?} to pid {:?}: not a new process; {spec_text} ({})",
                    ev.rank,
                    ev.old_pid,
                    ev.new_pid,
                    run.dir.display()
                ));
            }
        }
        if !mpi.can_spawn() {
            // Every migration refused for want of spawn, the job going on.
            let nospawn = run
                .events_of(EventKind::Refused)
                .filter(|e| {
                    e.refusal()
                        .is_some_and(|(_, why)| why.contains("cannot spawn"))
                })
                .count();
            if done > 0 || nospawn == 0 {
                return Err(format!(
                    "{done} migrations and {nospawn} refusals for want of spawn in the event log; {} cannot spawn: every migration must be refused so; {spec_text} ({})",
                    mpi.name,
                    run.dir.display()
                ));
            }
        }
        if self.program.lang != Lang::C {
            // (only the C programs print where each rank started and ended)
            return Ok(format!(
                "{} ranks, identical output with {done} migrations ({refused} refused; ranks moved {moved:?}, each to a new pid; {spec_text})",
                self.program.ranks
            ));
        }
        let pids = job::pids(&run.stderr);
        for rank in 0..self.program.ranks {
            let Some(&(_, a, b)) = pids.iter().find(|p| p.0 == rank) else {
                return Err(format!(
                    "rank {rank} printed no ctest-pids line; {spec_text}"
                ));
            };
            let did = moved.contains(&rank);
            if did && a == b {
                return Err(format!(
                    "rank {rank} moved but ends in the process that started it (pid {a}); {spec_text}"
                ));
            }
            if !did && a != b {
                return Err(format!(
                    "rank {rank} did not move but ends in pid {b}, started in {a}; {spec_text}"
                ));
            }
        }
        Ok(format!(
            "{} ranks, identical output with {done} migrations ({refused} refused; ranks moved {moved:?}; {spec_text})",
            self.program.ranks
        ))
    }

    /// `swap`: the world swapped underneath at [`Mode::SWAP_AT`]; how
    /// often it fired is read from each rank's status (`world_swaps` and
    /// `world_barriers`, written while the switch is set).
    fn swap(&self, mpi: &Mpi, r: &Reference, dir: &Path) -> Result<String, String> {
        let at = Mode::SWAP_AT.map(|b| b.to_string()).join(",");
        let run = job::run(
            mpi,
            &r.bin,
            self.program.ranks,
            dir,
            Launch::Ferry(&[]),
            &[
                ("FERRY_TEST_DUP_WORLD_AT_BARRIER".into(), at.clone()),
                ("FERRY_LOG".into(), "info".into()),
            ],
        )?;
        fails(&run)?;
        same_output(&r.plain, &run.stdout, &run.dir)?;
        if run.ranks.len() != self.program.ranks as usize {
            return Err(format!(
                "{} of {} ranks reported their status ({})",
                run.ranks.len(),
                self.program.ranks,
                run.dir.display()
            ));
        }
        let count = |s: &ferry_common::job::RankStatus, k: &str| {
            s.extra.get(k).and_then(|v| v.as_u64()).ok_or_else(|| {
                format!(
                    "rank {}'s status has no {k} ({})",
                    s.rank,
                    run.dir.display()
                )
            })
        };
        let mut swaps = 0;
        for s in &run.ranks {
            let (barriers, swapped) = (count(s, "world_barriers")?, count(s, "world_swaps")?);
            let want = Mode::SWAP_AT.iter().filter(|&&b| b <= barriers).count() as u64;
            if want == 0 {
                return Err(format!(
                    "rank {} made {barriers} barriers on the world: the switch (at {at}) cannot fire \
                     (a program with fewer than 2 says `ferry-test-skip: swap` in its header)",
                    s.rank
                ));
            }
            if swapped != want {
                return Err(format!(
                    "rank {}: the world was swapped {swapped} times in {barriers} world barriers, \
                     expected {want} (at {at}; {})",
                    s.rank,
                    run.dir.display()
                ));
            }
            swaps = swapped;
        }
        Ok(format!(
            "{} ranks, identical output with the world swapped {swaps} times underneath (barriers {at})",
            self.program.ranks
        ))
    }

    /// `signal`: the program asks for a regroup with SIGUSR2.
    fn signal(&self, mpi: &Mpi, r: &Reference, dir: &Path) -> Result<String, String> {
        let run = job::run(
            mpi,
            &r.bin,
            self.program.ranks,
            dir,
            Launch::Ferry(&[]),
            &[("FERRY_LOG".into(), "info".into())],
        )?;
        fails(&run)?;
        same_output(&r.plain, &run.stdout, &run.dir)?;
        let done = run.events_of(EventKind::Regroup).count();
        if done == 0 {
            return Err(format!(
                "no regroup event after SIGUSR2 ({})",
                run.dir.display()
            ));
        }
        let without: Vec<u32> = run
            .ranks
            .iter()
            .filter(|s| s.regroups.unwrap_or(0) == 0)
            .map(|s| s.rank)
            .collect();
        if run.ranks.len() != self.program.ranks as usize || !without.is_empty() {
            return Err(format!(
                "{} of {} ranks reported, ranks {without:?} took part in no regroup ({})",
                run.ranks.len(),
                self.program.ranks,
                run.dir.display()
            ));
        }
        Ok(format!(
            "{} ranks, identical output, {done} regroup(s) after SIGUSR2",
            self.program.ranks
        ))
    }

    /// `checkpoint`.
    fn checkpoint(
        &self,
        mpi: &Mpi,
        r: &Reference,
        dir: &Path,
        draw: &mut Draw,
    ) -> Result<String, String> {
        let img = dir.join("img");
        let mut k = draw.below((r.calls[0] * 9 / 10).max(1)) + 1;
        let mut tried = Vec::new();
        let run = loop {
            tried.push(k);
            let _ = std::fs::remove_dir_all(&img);
            let options = vec![
                "--checkpoint".to_string(),
                format!("after={k},dir={}", img.display()),
            ];
            let run = job::run(
                mpi,
                &r.bin,
                self.program.ranks,
                &dir.join("run"),
                Launch::Ferry(&options),
                &[("FERRY_LOG".into(), "info".into())],
            )?;
            let happened = run.events_of(EventKind::Checkpoint).count() > 0
                || run.events_of(EventKind::Refused).count() > 0
                || run.stderr.contains("checkpoint failed");
            if happened || run.status != Some(0) || tried.len() == 6 {
                break run;
            }
            // Rank 0 never reached K this time (a program that polls: its
            // calls vary from run to run); at most six tries, as
            // fortran-tests.sh made.
            k = k / 4 + 1;
        };
        let at = format!("checkpoint at {}", Spec { rank: 0, after: k });
        if let Some(ev) = run.events_of(EventKind::Refused).next() {
            let (_, why) = ev.refusal().unwrap_or(("", ""));
            if !self.program.expects_refusal(why) {
                return Err(format!("{at}: refused, not expected: {why}"));
            }
            fails(&run)?;
            same_output(&r.plain, &run.stdout, &run.dir)?;
            self.program
                .check_calls(&run.stderr)
                .map_err(|e| format!("{at}: {e}"))?;
            if img.join("rank-0.img").exists() {
                return Err(format!(
                    "{at}: refused, but {} holds an image",
                    img.display()
                ));
            }
            return Ok(format!("{at}: refused as expected ({why})"));
        }
        if run.events_of(EventKind::Checkpoint).count() != 1 {
            return Err(format!(
                "{at} (K {tried:?} tried in turn): no checkpoint{}\n{}",
                if run.stderr.contains("checkpoint failed") {
                    " (it failed)"
                } else {
                    ""
                },
                run.tails()
            ));
        }
        if run.status != Some(0) {
            return Err(format!(
                "{at}: written, but the run exited {:?}\n{}",
                run.status,
                run.tails()
            ));
        }
        private(&img, self.program.ranks).map_err(|e| format!("{at}: {e}"))?;
        let restart = job::run(
            mpi,
            &r.bin,
            self.program.ranks,
            &dir.join("restart"),
            Launch::Restart(&img),
            &[],
        )?;
        // (A checkpoint taken at the end of the run, at MPI_Finalize, leaves
        // the restart nothing to print: the OK line may be the first run's.)
        if restart.timed_out || restart.status != Some(0) {
            return Err(format!(
                "{at}: the restart {}\n{}",
                restart.failure().unwrap_or_default(),
                restart.tails()
            ));
        }
        let both = format!("{}{}", run.stdout, restart.stdout);
        same_output(&r.plain, &both, dir)
            .map_err(|e| format!("{at}: checkpoint + restart: {e}"))?;
        if let Some(e) = internal_errors(&restart) {
            return Err(format!("{at}: the restart: {e}"));
        }
        self.program
            .check_calls(&format!("{}{}", run.stderr, restart.stderr))
            .map_err(|e| format!("{at}: checkpoint + restart: {e}"))?;
        let events = ferry_common::events::read_events(run.dir.join("events.jsonl"))
            .map_err(|e| format!("{at}: {e}"))?;
        let count = |k: EventKind| events.iter().filter(|e| e.event == k).count();
        if (count(EventKind::Checkpoint), count(EventKind::Restart)) != (1, 1) {
            return Err(format!(
                "{at}: {} checkpoint and {} restart events, expected 1 and 1",
                count(EventKind::Checkpoint),
                count(EventKind::Restart)
            ));
        }
        let size: u64 = std::fs::read_dir(&img)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        let _ = std::fs::remove_dir_all(&img);
        Ok(format!(
            "{at} (images {:.1} MiB), restarted",
            size as f64 / (1 << 20) as f64
        ))
    }
}

/// Runs the case `name` (`once(attempt)`), and again up to
/// `FERRY_TEST_RETRIES` times if it fails; a pass on a retry is said and
/// listed in `target/ferry-tests/flaky.txt`. `Ok`: what passed; a failure
/// ends with the command that replays it.
pub fn retrying(
    name: &str,
    seed: u64,
    once: impl FnMut(usize) -> Result<String, String>,
) -> Result<String, String> {
    retry_loop(name, Some(seed), once)
}

/// As [`retrying`], for a case that draws nothing (`seed`: `None`) or
/// does not need to know its attempt.
pub fn with_retries(
    name: &str,
    seed: Option<u64>,
    mut once: impl FnMut() -> Result<String, String>,
) -> Result<String, String> {
    retry_loop(name, seed, |_| once())
}

/// The loop of [`retrying`] and [`with_retries`]: the replay command
/// names the seed of the case's draws, if it draws.
fn retry_loop(
    name: &str,
    seed: Option<u64>,
    mut once: impl FnMut(usize) -> Result<String, String>,
) -> Result<String, String> {
    let retries: usize = std::env::var("FERRY_TEST_RETRIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let replay = format!(
        "replay: {}cargo test --release -p ferry-tests -- --exact {name}",
        seed.map(|s| format!("FERRY_TEST_SEED={s} "))
            .unwrap_or_default()
    );
    let mut first = None;
    for attempt in 0..=retries {
        match once(attempt) {
            Ok(pass) => {
                if let Some(f) = first {
                    let line = format!("{name}: passed on retry {attempt}; first: {f}");
                    println!("{line}");
                    let _ = std::fs::create_dir_all(crate::out_dir());
                    use std::io::Write;
                    if let Ok(mut f) = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(crate::out_dir().join("flaky.txt"))
                    {
                        let _ = writeln!(f, "{line}");
                    }
                }
                return Ok(pass);
            }
            Err(e) => {
                if attempt < retries {
                    // The whole message (a retry's pass would hide it).
                    println!("{name}: failed, tried again: {}", first_line(&e));
                    for l in e.lines().skip(1).take(60) {
                        println!("    | {l}");
                    }
                }
                first.get_or_insert(first_line(&e).to_string());
                if attempt == retries {
                    return Err(format!("{e}\n{replay}"));
                }
            }
        }
    }
    unreachable!("the loop returns")
}

pub(crate) fn fails(run: &Run) -> Result<(), String> {
    match run.failure().or_else(|| internal_errors(run)) {
        Some(f) => Err(format!("{f}\n{}", run.tails())),
        None => Ok(()),
    }
}

/// A rank that reported internal errors of the library (panics caught at
/// its boundary) in the job directory, if one did.
fn internal_errors(run: &Run) -> Option<String> {
    run.ranks.iter().find_map(|r| {
        let n = r.extra.get("internal_errors")?.as_u64()?;
        (n > 0).then(|| {
            format!(
                "rank {} reported {n} internal errors of the library ({})",
                r.rank,
                run.dir.display()
            )
        })
    })
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// The checkpoint directory is private: mode 0700, holding
/// `checkpoint.json` and one image per rank, each a file of mode 0600.
pub(crate) fn private(img: &Path, ranks: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).map(|m| m.permissions().mode() & 0o777);
    if mode(img).ok() != Some(0o700) {
        return Err(format!("{} is not of mode 700", img.display()));
    }
    let mut want: Vec<String> = (0..ranks).map(|r| format!("rank-{r}.img")).collect();
    want.push("checkpoint.json".into());
    for w in &want {
        if !img.join(w).is_file() {
            return Err(format!("{} has no {w}", img.display()));
        }
    }
    for e in std::fs::read_dir(img).map_err(|e| e.to_string())?.flatten() {
        let p = e.path();
        if !p.is_file() || mode(&p).ok() != Some(0o600) {
            return Err(format!("{} is not a file of mode 600", p.display()));
        }
    }
    Ok(())
}
