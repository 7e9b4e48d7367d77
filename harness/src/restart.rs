//! Checkpoint and restart of the one-rank image programs at fixed calls,
//! and damaged checkpoints refused (formerly `scripts/image-tests.sh`).
//! Cases `restart::CHECK::MPI`, on MPICH and Open MPI:
//!
//! | check | run | passes when |
//! |---|---|---|
//! | `image_heap.run`, `image_cxx.run` | `ferry run`, no checkpoint | stdout and the file the program writes equal the plain run's |
//! | `image_heap.kK`, `image_cxx.kK` | `ferry run --checkpoint after=K`, then `ferry restart` from the same working directory | both exit 0; the checkpoint run stopped early; the images private; the two stdouts together, and the program's file, equal the plain run's; one `checkpoint` and one `restart` event |
//! | `corrupt.flip`, `corrupt.truncate`, `corrupt.foreign` | one checkpoint of `image_heap` at call 60, damaged (a byte in the middle of its largest file inverted; that file cut to half; the program replaced by its `-DVARIANT` build), then `ferry restart` | the restart fails cleanly (status 1..123), prints nothing of the program, and says why (`corrupt`/`checksum`, `truncated`/`corrupt`, `binary`/`foreign`/`does not match`) |
//! | `corrupt.control` | the same checkpoint undamaged | it restarts and completes as the plain run (so the refusals were the damage's) |
//! | `image_thread.refused` | `ferry run -n 2 --checkpoint after=50` of a program with a thread of its own | the checkpoint refused (a `refused` event for the thread, "refused" on stderr), the job runs to the end with the plain run's output, no image written |
//!
//! `image_heap` is run with a file argument (`image_heap.txt`, which it
//! keeps); `image_cxx.cpp` is built with the MPI's C++ wrapper.
use crate::job::{self, Launch, Run};
use crate::modes::{private, retrying, same_output};
use crate::mpi::Mpi;
use crate::program::Program;
use ferry_common::events::EventKind;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// The MPIs these cases run on (as the script did).
pub const MPIS: &[&str] = &["mpich", "openmpi"];

/// The call of `image_heap` at which the damaged checkpoint is taken.
const CORRUPT_K: u64 = 60;

/// One check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// `ferry run` without a checkpoint.
    Run(&'static str),
    /// A checkpoint after call K, then a restart.
    Checkpoint(&'static str, u64),
    /// The checkpoint of `image_heap` damaged so.
    Corrupt(Damage),
    /// The same checkpoint, undamaged.
    Control,
    /// A checkpoint after call K that must be refused.
    Refused(&'static str, u64),
}

/// How a checkpoint is damaged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Damage {
    Flip,
    Truncate,
    Foreign,
}

impl Damage {
    fn name(self) -> &'static str {
        match self {
            Damage::Flip => "flip",
            Damage::Truncate => "truncate",
            Damage::Foreign => "foreign",
        }
    }

    /// What the restart's stderr must say (one of, case-insensitive).
    fn says(self) -> &'static [&'static str] {
        match self {
            Damage::Flip => &["corrupt", "checksum"],
            Damage::Truncate => &["truncated", "corrupt"],
            Damage::Foreign => &["binary", "foreign", "does not match"],
        }
    }
}

/// Every check, in the order the cases are listed.
pub const CHECKS: &[Check] = &[
    Check::Run("image_heap"),
    Check::Run("image_cxx"),
    Check::Checkpoint("image_heap", 5),
    Check::Checkpoint("image_heap", 60),
    Check::Checkpoint("image_heap", 250),
    Check::Checkpoint("image_cxx", 5),
    Check::Checkpoint("image_cxx", 150),
    Check::Corrupt(Damage::Flip),
    Check::Corrupt(Damage::Truncate),
    Check::Corrupt(Damage::Foreign),
    Check::Control,
    Check::Refused("image_thread", 50),
];

impl Check {
    pub fn name(&self) -> String {
        match self {
            Check::Run(p) => format!("{p}.run"),
            Check::Checkpoint(p, k) => format!("{p}.k{k}"),
            Check::Corrupt(d) => format!("corrupt.{}", d.name()),
            Check::Control => "corrupt.control".into(),
            Check::Refused(p, _) => format!("{p}.refused"),
        }
    }
}

/// `restart::CHECK::MPI`.
pub fn case_name(check: &Check, mpi: &str) -> String {
    format!("restart::{}::{mpi}", check.name())
}

/// Runs one case (with retries). `Ok`: what passed.
pub fn run(mpi: &Mpi, check: Check, seed: u64) -> Result<String, String> {
    retrying(&case_name(&check, &mpi.name), seed, |_| once(mpi, check))
}

fn once(mpi: &Mpi, check: Check) -> Result<String, String> {
    let s = setup(mpi)?;
    let dir = out(mpi).join(check.name());
    match check {
        Check::Run(p) => {
            let r = s.reference(mpi, p)?;
            let run = s.ferry(mpi, p, &dir.join("run"), &dir.join("work"), &[])?;
            exits(&run)?;
            same_output(&r.stdout, &run.stdout, &run.dir)?;
            r.same_file(&dir.join("work"))?;
            Ok(format!(
                "{} lines, identical output under ferry",
                run.stdout.lines().count()
            ))
        }
        Check::Checkpoint(p, k) => checkpoint(mpi, &s, p, k, &dir),
        Check::Corrupt(d) => corrupt(mpi, &s, Some(d)),
        Check::Control => corrupt(mpi, &s, None),
        Check::Refused(p, k) => {
            let r = s.reference(mpi, p)?;
            let img = dir.join("img");
            let options = vec![
                "--checkpoint".to_string(),
                format!("after={k},dir={}", img.display()),
            ];
            let run = s.ferry(mpi, p, &dir.join("run"), &dir.join("work"), &options)?;
            exits(&run).map_err(|e| format!("a refused checkpoint must let the job end: {e}"))?;
            same_output(&r.stdout, &run.stdout, &run.dir)?;
            let Some((_, why)) = run
                .events_of(EventKind::Refused)
                .filter_map(|e| e.refusal())
                .find(|(op, _)| *op == "checkpoint")
            else {
                return Err(format!(
                    "no checkpoint refused in the event log ({})",
                    run.dir.display()
                ));
            };
            if !["thread", "task"].iter().any(|w| why.contains(w)) {
                return Err(format!("refused, but not for a thread: {why}"));
            }
            if !run.stderr.to_lowercase().contains("refused") {
                return Err(format!("no 'refused' on stderr\n{}", run.tails()));
            }
            let files = files_under(&img);
            if !files.is_empty() {
                return Err(format!(
                    "{} holds files after a refused checkpoint: {files:?}",
                    img.display()
                ));
            }
            Ok(format!("refused: {why}"))
        }
    }
}

/// The run exited 0 (`image_cxx` prints lines after its OK line, from
/// destructors and an atexit handler).
fn exits(run: &Run) -> Result<(), String> {
    match run.exit_failure() {
        Some(f) => Err(format!("{f}\n{}", run.tails())),
        None => Ok(()),
    }
}

/// `ferry run --checkpoint after=K` then `ferry restart`.
fn checkpoint(mpi: &Mpi, s: &Setup, p: &'static str, k: u64, dir: &Path) -> Result<String, String> {
    let r = s.reference(mpi, p)?;
    let (img, work) = (dir.join("img"), dir.join("work"));
    let _ = std::fs::remove_dir_all(&work);
    let _ = std::fs::remove_dir_all(&img);
    let options = vec![
        "--checkpoint".to_string(),
        format!("after={k},dir={}", img.display()),
    ];
    let run = s.ferry(mpi, p, &dir.join("run"), &work, &options)?;
    if let Some(f) = run.exit_failure() {
        return Err(format!("the checkpoint run {f}\n{}", run.tails()));
    }
    private(&img, 1).map_err(|e| format!("{e}\n{}", run.tails()))?;
    if run.stdout == r.stdout {
        return Err(format!(
            "the checkpoint run printed the whole output: it did not stop at the checkpoint\n{}",
            run.tails()
        ));
    }
    let size = bytes_under(&img);
    let restart = restart(mpi, s, p, &img, &dir.join("restart"), &work)?;
    if let Some(f) = restart.exit_failure() {
        return Err(format!("ferry restart {f}\n{}", restart.tails()));
    }
    let both = format!("{}{}", run.stdout, restart.stdout);
    same_output(&r.stdout, &both, dir).map_err(|e| format!("checkpoint + restart: {e}"))?;
    r.same_file(&work)?;
    let events = ferry_common::events::read_events(run.dir.join("events.jsonl"))
        .map_err(|e| e.to_string())?;
    let count = |k: EventKind| events.iter().filter(|e| e.event == k).count();
    if (count(EventKind::Checkpoint), count(EventKind::Restart)) != (1, 1) {
        return Err(format!(
            "{} checkpoint and {} restart events, expected 1 and 1 ({})",
            count(EventKind::Checkpoint),
            count(EventKind::Restart),
            run.dir.display()
        ));
    }
    let _ = std::fs::remove_dir_all(&img);
    Ok(format!(
        "image {:.1} MiB, split after line {} of {}",
        size as f64 / (1 << 20) as f64,
        run.stdout.lines().count(),
        r.stdout.lines().count()
    ))
}

/// A damaged checkpoint (`Some`) refused, or the undamaged one (`None`)
/// restarted.
fn corrupt(mpi: &Mpi, s: &Setup, damage: Option<Damage>) -> Result<String, String> {
    let c = s.corrupt(mpi)?;
    // One checkpoint for all: one case at a time on it.
    let _held = c.lock.lock().unwrap_or_else(|e| e.into_inner());
    c.restore(s)?;
    // (Directory names that hold none of the words the refusals are
    // recognized by: the restart's messages name its paths.)
    let name = match damage {
        None => "restart-0",
        Some(Damage::Flip) => "restart-1",
        Some(Damage::Truncate) => "restart-2",
        Some(Damage::Foreign) => "restart-3",
    };
    let Some(d) = damage else {
        let r = s.reference(mpi, "image_heap")?;
        let restart = restart(mpi, s, "image_heap", &c.img, &c.dir.join(name), &c.work)?;
        if let Some(f) = restart.exit_failure() {
            return Err(format!(
                "ferry restart of the undamaged checkpoint {f}\n{}",
                restart.tails()
            ));
        }
        let both = format!("{}{}", c.stdout, restart.stdout);
        same_output(&r.stdout, &both, &restart.dir)
            .map_err(|e| format!("checkpoint + restart: {e}"))?;
        r.same_file(&c.work)?;
        return Ok(format!(
            "image {:.1} MiB at call {CORRUPT_K} restarted",
            bytes_under(&c.img) as f64 / (1 << 20) as f64
        ));
    };
    let what = match d {
        Damage::Flip => {
            let f = largest_file(&c.img)?;
            let mut bytes = std::fs::read(&f).map_err(|e| format!("{}: {e}", f.display()))?;
            let at = bytes.len() / 2;
            let old = bytes[at];
            bytes[at] ^= 0xff;
            std::fs::write(&f, &bytes).map_err(|e| format!("{}: {e}", f.display()))?;
            format!(
                "byte {at} of {} ({} bytes): {old} -> {}",
                f.display(),
                bytes.len(),
                bytes[at]
            )
        }
        Damage::Truncate => {
            let f = largest_file(&c.img)?;
            let size = std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0);
            std::fs::OpenOptions::new()
                .write(true)
                .open(&f)
                .and_then(|h| h.set_len(size / 2))
                .map_err(|e| format!("{}: {e}", f.display()))?;
            format!("{} cut from {size} to {} bytes", f.display(), size / 2)
        }
        Damage::Foreign => {
            install(&s.bins["image_heap_variant"], &c.bin)?;
            "the program replaced by its -DVARIANT build".to_string()
        }
    };
    let restart = restart(mpi, s, "image_heap", &c.img, &c.dir.join(name), &c.work)?;
    let says = d.says();
    // Its paths left out: what it says about the checkpoint.
    let err = restart
        .stderr
        .replace(&crate::out_dir().display().to_string(), "")
        .to_lowercase();
    match restart.status {
        Some(0) => Err(format!(
            "ferry restart of a damaged checkpoint ({what}) exited 0\n{}",
            restart.tails()
        )),
        Some(rc) if (1..124).contains(&rc) => {
            if !says.iter().any(|w| err.contains(w)) {
                Err(format!(
                    "ferry restart exited {rc} but its stderr says none of {says:?} ({what})\n{}",
                    restart.tails()
                ))
            } else if !restart.stdout.is_empty() {
                Err(format!(
                    "ferry restart refused ({rc}) but the program printed {} lines first ({what})",
                    restart.stdout.lines().count()
                ))
            } else {
                let line = err
                    .lines()
                    .find(|l| says.iter().any(|w| l.contains(w)))
                    .unwrap_or("");
                Ok(format!("{what}; exit {rc}: {line}"))
            }
        }
        _ => Err(format!(
            "ferry restart of a damaged checkpoint ({what}) {}: expected a clean error exit (1..123)\n{}",
            restart.exit_failure().unwrap_or_default(),
            restart.tails()
        )),
    }
}

/// `ferry restart IMG` in the working directory `work`.
fn restart(
    mpi: &Mpi,
    s: &Setup,
    p: &str,
    img: &Path,
    dir: &Path,
    work: &Path,
) -> Result<Run, String> {
    job::run_in(
        mpi,
        &s.bins[p],
        &[],
        1,
        dir,
        work,
        Launch::Restart(img),
        &[],
    )
}

/// What one MPI's cases share: the programs built, their plain runs, the
/// checkpoint to damage.
struct Setup {
    bins: HashMap<&'static str, PathBuf>,
    programs: HashMap<&'static str, Program>,
    references: Mutex<HashMap<&'static str, Arc<Reference>>>,
    corrupt: Mutex<Option<Arc<Corrupt>>>,
}

/// A plain run: its stdout and the file the program wrote, if any.
struct Reference {
    stdout: String,
    file: Option<(PathBuf, Vec<u8>)>,
}

impl Reference {
    /// The program's file in `work` equals the plain run's.
    fn same_file(&self, work: &Path) -> Result<(), String> {
        let Some((name, want)) = &self.file else {
            return Ok(());
        };
        let got = std::fs::read(work.join(name))
            .map_err(|e| format!("the program's file {}: {e}", work.join(name).display()))?;
        if &got != want {
            return Err(format!(
                "{} differs from the plain run's ({} vs {} bytes)",
                work.join(name).display(),
                got.len(),
                want.len()
            ));
        }
        Ok(())
    }
}

/// The checkpoint the `corrupt.*` cases damage, and a pristine copy of it
/// and of the working directory.
struct Corrupt {
    lock: Mutex<()>,
    dir: PathBuf,
    img: PathBuf,
    work: PathBuf,
    /// The program the checkpoint ran (a copy, replaced by `foreign`).
    bin: PathBuf,
    /// The checkpoint run's stdout.
    stdout: String,
}

impl Corrupt {
    /// The checkpoint, the working directory and the program as they were
    /// after the checkpoint run.
    fn restore(&self, s: &Setup) -> Result<(), String> {
        for (what, at) in [("img", &self.img), ("work", &self.work)] {
            let _ = std::fs::remove_dir_all(at);
            copy_dir(&self.dir.join("pristine").join(what), at)?;
        }
        install(&s.bins["image_heap"], &self.bin)
    }
}

/// The program's arguments: `image_heap` writes and keeps a file.
fn args(p: &str) -> Vec<String> {
    match p {
        "image_heap" => vec!["image_heap.txt".into()],
        _ => vec![],
    }
}

impl Setup {
    fn reference(&self, mpi: &Mpi, p: &'static str) -> Result<Arc<Reference>, String> {
        let mut refs = self.references.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = refs.get(p) {
            return Ok(r.clone());
        }
        let dir = out(mpi).join("reference").join(p);
        let work = dir.join("work");
        let run = job::run_in(
            mpi,
            &self.bins[p],
            &args(p),
            self.programs[p].ranks,
            &dir,
            &work,
            Launch::Plain,
            &[],
        )?;
        exits(&run).map_err(|e| format!("the plain run {e}"))?;
        if !run.stdout.lines().any(|l| l == "OK") {
            return Err(format!("the plain run printed no OK line\n{}", run.tails()));
        }
        let file = args(p)
            .first()
            .map(|f| -> Result<_, String> {
                let bytes =
                    std::fs::read(work.join(f)).map_err(|e| format!("the plain run's {f}: {e}"))?;
                Ok((PathBuf::from(f), bytes))
            })
            .transpose()?;
        let r = Arc::new(Reference {
            stdout: run.stdout,
            file,
        });
        refs.insert(p, r.clone());
        Ok(r)
    }

    /// `ferry run` of `p` (with its arguments) in `work`.
    fn ferry(
        &self,
        mpi: &Mpi,
        p: &str,
        dir: &Path,
        work: &Path,
        options: &[String],
    ) -> Result<Run, String> {
        let _ = std::fs::remove_dir_all(work);
        job::run_in(
            mpi,
            &self.bins[p],
            &args(p),
            self.programs[p].ranks,
            dir,
            work,
            Launch::Ferry(options),
            &[("FERRY_LOG".into(), "info".into())],
        )
    }

    /// The checkpoint to damage (made again while it could not be made).
    fn corrupt(&self, mpi: &Mpi) -> Result<Arc<Corrupt>, String> {
        let mut c = self.corrupt.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = &*c {
            return Ok(c.clone());
        }
        let made = Arc::new(self.make_corrupt(mpi)?);
        *c = Some(made.clone());
        Ok(made)
    }

    /// One checkpoint of a copy of `image_heap` at [`CORRUPT_K`].
    fn make_corrupt(&self, mpi: &Mpi) -> Result<Corrupt, String> {
        let dir = out(mpi).join("damaged");
        let _ = std::fs::remove_dir_all(&dir);
        let c = Corrupt {
            lock: Mutex::new(()),
            img: dir.join("img"),
            work: dir.join("work"),
            bin: dir.join("bin").join("image_heap"),
            stdout: String::new(),
            dir,
        };
        install(&self.bins["image_heap"], &c.bin)?;
        let options = vec![
            "--checkpoint".to_string(),
            format!("after={CORRUPT_K},dir={}", c.img.display()),
        ];
        let run = job::run_in(
            mpi,
            &c.bin,
            &args("image_heap"),
            1,
            &c.dir.join("base"),
            &c.work,
            Launch::Ferry(&options),
            &[("FERRY_LOG".into(), "info".into())],
        )?;
        if let Some(f) = run.exit_failure() {
            return Err(format!(
                "no checkpoint to damage: the checkpoint run {f}\n{}",
                run.tails()
            ));
        }
        largest_file(&c.img).map_err(|e| format!("no checkpoint to damage: {e}"))?;
        for (what, at) in [("img", &c.img), ("work", &c.work)] {
            copy_dir(at, &c.dir.join("pristine").join(what))?;
        }
        Ok(Corrupt {
            stdout: run.stdout,
            ..c
        })
    }
}

/// `target/ferry-tests/MPI/restart/`.
fn out(mpi: &Mpi) -> PathBuf {
    crate::out_dir().join(&mpi.name).join("restart")
}

/// The programs of one MPI, built once per harness process.
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
    let tests = crate::root().join("c-tests");
    let bin = out(mpi).join("bin");
    let mut programs = HashMap::new();
    let mut bins = HashMap::new();
    for (name, file) in [
        ("image_heap", "image_heap.c"),
        ("image_cxx", "image_cxx.cpp"),
        ("image_thread", "image_thread.c"),
    ] {
        let source = tests.join(file);
        let text =
            std::fs::read_to_string(&source).map_err(|e| format!("{}: {e}", source.display()))?;
        let p = Program::parse(name, &source, &text)?;
        bins.insert(name, p.build(mpi, &bin)?);
        programs.insert(name, p);
    }
    // The same source with another global layout (-DVARIANT).
    let variant = Program {
        name: "image_heap_variant".into(),
        link: vec!["-DVARIANT".into()],
        ..programs["image_heap"].clone()
    };
    bins.insert("image_heap_variant", variant.build(mpi, &bin)?);
    Ok(Setup {
        bins,
        programs,
        references: Mutex::new(HashMap::new()),
        corrupt: Mutex::new(None),
    })
}

/// Copies the program `from` to `to` (replacing it whole: a running
/// binary is not written into).
fn install(from: &Path, to: &Path) -> Result<(), String> {
    if let Some(d) = to.parent() {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let tmp = to.with_extension("new");
    std::fs::copy(from, &tmp)
        .and_then(|_| std::fs::rename(&tmp, to))
        .map(|_| ())
        .map_err(|e| format!("copying {} to {}: {e}", from.display(), to.display()))
}

/// Copies a directory tree, modes kept (`cp -a`).
fn copy_dir(from: &Path, to: &Path) -> Result<(), String> {
    if let Some(d) = to.parent() {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .map_err(|e| format!("cannot run cp: {e}"))?;
    if !status.success() {
        return Err(format!("cp -a {} {} failed", from.display(), to.display()));
    }
    Ok(())
}

/// The regular files under `dir` (none if it does not exist).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else if p.is_file() {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn bytes_under(dir: &Path) -> u64 {
    files_under(dir)
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum()
}

/// The largest file under `dir`.
fn largest_file(dir: &Path) -> Result<PathBuf, String> {
    files_under(dir)
        .into_iter()
        .max_by_key(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .ok_or_else(|| format!("no file in {}", dir.display()))
}
