//! Integration tests of the `ferry` binary. `run` is exercised with a fake
//! launcher (a shell script that prints its arguments and environment),
//! plus, where the MPIs are installed, a few short runs of the real ones.

use ferry_common::job::{ensure_private_dir, JobDir, JobMeta, MigrateRequest, RankStatus};
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

/// A temporary directory holding a job root, a dummy library and fake
/// launchers; removed on drop.
struct Sandbox {
    dir: PathBuf,
}

impl Sandbox {
    fn new() -> Sandbox {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ferry-cli-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let dir = dir.canonicalize().unwrap();
        fs::write(dir.join("libferry.so"), b"").unwrap();
        Sandbox { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    fn jobs(&self) -> PathBuf {
        self.path("jobs")
    }

    /// Writes an executable shell script.
    fn script(&self, name: &str, body: &str) -> PathBuf {
        let p = self.path(name);
        fs::write(&p, format!("#!/bin/sh\n{body}")).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    /// A launcher that prints `ARG <arg>` per argument, `ENV K=V` for the
    /// FERRY_* variables, `LENV K=V` for OMPI_* and LD_PRELOAD, exits 3.
    fn fake_launcher(&self) -> PathBuf {
        self.script(
            "fake-mpiexec",
            r#"for a in "$@"; do printf 'ARG %s\n' "$a"; done
env | grep '^FERRY_' | sort | sed 's/^/ENV /'
env | grep '^OMPI_' | sort | sed 's/^/LENV /'
printf 'LENV LD_PRELOAD=%s\n' "${LD_PRELOAD-unset}"
exit 3
"#,
        )
    }

    /// `ferry` with a clean FERRY_* environment, this sandbox's job root
    /// and dummy library, run in the sandbox.
    fn ferry(&self) -> Command {
        self.ferry_at(Path::new(FERRY))
    }

    /// Like [`Sandbox::ferry`] with another copy of the executable.
    fn ferry_at(&self, exe: &Path) -> Command {
        let mut c = Command::new(exe);
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("FERRY_") || k.starts_with("OMPI_") || k == "LD_PRELOAD" {
                c.env_remove(&k);
            }
        }
        c.env("FERRY_JOB_ROOT", self.jobs())
            .env("FERRY_LIB", self.path("libferry.so"))
            .current_dir(&self.dir)
            .stdin(Stdio::null());
        c
    }

    /// The job directories created so far.
    fn job_dirs(&self) -> Vec<PathBuf> {
        match fs::read_dir(self.jobs()) {
            Ok(rd) => rd.flatten().map(|e| e.path()).collect(),
            Err(_) => Vec::new(),
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Lines of `out`'s stdout starting with `prefix`, prefix removed.
fn lines_with(out: &Output, prefix: &str) -> Vec<String> {
    text(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix(prefix).map(str::to_string))
        .collect()
}

fn job_id_from_banner(stderr: &str) -> String {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("ferry: job "))
        .unwrap_or_else(|| panic!("no banner in {stderr}"));
    line["ferry: job ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .to_string()
}

// ---------------------------------------------------------------- refusals

#[test]
fn bad_spec_is_refused_before_anything_starts() {
    let sb = Sandbox::new();
    let marker = sb.path("launched");
    let launcher = sb.script("marker-mpiexec", &format!("touch {}\n", marker.display()));
    for (flag, spec, msg) in [
        (
            "--migrate",
            "rank=x,after=1",
            "invalid SPEC \"rank=x,after=1\": rank=x is not a non-negative integer (expected rank=R,after=K[,to=HOST])",
        ),
        ("--migrate", "rank=1", "invalid SPEC \"rank=1\": after= is missing"),
        ("--migrate", "rank=1,after=2,where=h", "unknown key \"where\" (keys are rank, after, to)"),
        ("--migrate", "rank=1,after=2,rank=1", "key \"rank\" is given more than once"),
        ("--regroup", "rank=0,after=1,to=h", "to= does not apply to a regroup"),
        ("--checkpoint", "after=1", "invalid SPEC \"after=1\": dir= is missing (expected after=K,dir=DIR)"),
    ] {
        let out = sb
            .ferry()
            .env("FERRY_MPIEXEC", &launcher)
            .args(["run", flag, spec, "--", "/bin/true"])
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {spec}: {err}");
        assert!(err.contains(msg), "{flag} {spec}: expected {msg:?} in {err}");
        assert!(!err.contains("ferry: job "), "{err}");
    }
    assert!(!marker.exists(), "the launcher must not have run");
    assert!(sb.job_dirs().is_empty(), "no job directory may be created");
}

#[test]
fn bad_spec_from_environment_and_out_of_range_rank_are_refused() {
    let sb = Sandbox::new();
    let launcher = sb.fake_launcher();
    let out = sb
        .ferry()
        .env("FERRY_MPIEXEC", &launcher)
        .env("FERRY_MIGRATE", "rank=1,after=2;rank=1,after=oops")
        .args(["run", "--", "/bin/true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains(
        "FERRY_MIGRATE (from the environment): invalid SPEC \"rank=1,after=oops\": after=oops is not a non-negative integer"
    ));

    let out = sb
        .ferry()
        .env("FERRY_MPIEXEC", &launcher)
        .args([
            "run",
            "-n",
            "2",
            "--migrate",
            "rank=2,after=5",
            "--",
            "/bin/true",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr)
        .contains("--migrate rank=2,after=5: rank 2 does not exist (the job has 2 ranks: 0..1)"));

    let out = sb
        .ferry()
        .env("FERRY_MPIEXEC", &launcher)
        .env("FERRY_MPI", "lam")
        .args(["run", "--", "/bin/true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains(
        "FERRY_MPI=\"lam\" (from the environment): expected mpich, openmpi or mpich-deb"
    ));

    let out = sb
        .ferry()
        .env("FERRY_MPIEXEC", &launcher)
        .args(["run", "--", "./no-such-program"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("PROGRAM ./no-such-program: no such file"));
    assert!(sb.job_dirs().is_empty());
}

#[test]
fn missing_library_and_launcher_are_reported() {
    let sb = Sandbox::new();
    let launcher = sb.fake_launcher();
    let out = sb
        .ferry()
        .env("FERRY_MPIEXEC", &launcher)
        .env("FERRY_LIB", sb.path("nope/libferry.so"))
        .args(["run", "--", "/bin/true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "FERRY_LIB={} is not a file",
            sb.path("nope/libferry.so").display()
        )),
        "{err}"
    );
    assert!(lines_with(&out, "ARG ").is_empty(), "launcher must not run");

    let out = sb
        .ferry()
        .env("FERRY_MPIEXEC", sb.path("no-mpiexec"))
        .args(["run", "--", "/bin/true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("cannot find the mpich launcher") && err.contains("from FERRY_MPIEXEC"),
        "{err}"
    );
    assert!(sb.job_dirs().is_empty());
}

// ------------------------------------------------------- run: command lines

#[test]
fn run_mpich_command_line_environment_and_exit_status() {
    let sb = Sandbox::new();
    let launcher = sb.fake_launcher();
    let out = sb
        .ferry()
        .env("FERRY_MPIEXEC", &launcher)
        .env("FERRY_TEST_SWITCH", "on")
        .env("FERRY_LOG", "debug")
        .env("FERRY_MIGRATE", "rank=0,after=1")
        .args([
            "run",
            "-n",
            "3",
            "--hosts",
            "nodeA,nodeB",
            "--migrate",
            "rank=1,after=10",
            "--migrate",
            "rank=2,after=5,to=nodeB",
            "--regroup",
            "rank=0,after=3",
            "--events",
            "ev.jsonl",
            "--",
            "/bin/echo",
            "hello world",
            "-x",
        ])
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(3),
        "exit status of the launcher: {err}"
    );
    let job = job_id_from_banner(&err);
    let jobdir = sb.jobs().join(&job);
    assert!(
        err.contains(&format!(
            "ferry: job {job} (mpich, 3 ranks) — dir {}",
            jobdir.display()
        )),
        "{err}"
    );
    let lib = sb.path("libferry.so");
    let genv = |k: &str, v: &str| vec!["-genv".to_string(), k.to_string(), v.to_string()];
    let mut want: Vec<String> = vec![
        "-disable-auto-cleanup".into(),
        "-hosts".into(),
        "nodeA,nodeB".into(),
    ];
    want.extend(genv("MPIR_CVAR_NO_COLLECTIVE_FINALIZE", "1"));
    want.extend(genv("MPIR_CVAR_CH4_NETMOD", "ofi"));
    want.extend(genv("LD_PRELOAD", &lib.display().to_string()));
    want.extend(genv("FERRY_JOB", &job));
    want.extend(genv("FERRY_JOB_DIR", &jobdir.display().to_string()));
    want.extend(genv("FERRY_MPI", "mpich"));
    want.extend(genv("FERRY_LIB", &lib.display().to_string()));
    want.extend(genv(
        "FERRY_EVENTS",
        &sb.path("ev.jsonl").display().to_string(),
    ));
    want.extend(genv(
        "FERRY_MIGRATE",
        "rank=0,after=1;rank=1,after=10;rank=2,after=5,to=nodeB",
    ));
    want.extend(genv("FERRY_REGROUP", "rank=0,after=3"));
    want.extend(genv("FERRY_HOSTS", "nodeA,nodeB"));
    want.extend(genv("FERRY_IMAGE", "1"));
    want.extend(genv("FERRY_JOB_ROOT", &sb.jobs().display().to_string()));
    want.extend(genv("FERRY_LOG", "debug"));
    want.extend(genv("FERRY_MPIEXEC", &launcher.display().to_string()));
    want.extend(genv("FERRY_TEST_SWITCH", "on"));
    want.extend(["-n", "3", "/bin/echo", "hello world", "-x"].map(String::from));
    assert_eq!(lines_with(&out, "ARG "), want);
    // The library is preloaded only in the ranks, never into the launcher.
    assert_eq!(
        lines_with(&out, "LENV "),
        vec!["LD_PRELOAD=unset".to_string()]
    );
    // The debug log shows the whole command.
    assert!(
        err.contains("launching: ") && err.contains("-genv FERRY_TEST_SWITCH on"),
        "{err}"
    );

    // job.json records the job, the launcher's pid and its end.
    let meta: JobMeta =
        serde_json::from_str(&fs::read_to_string(jobdir.join("job.json")).unwrap()).unwrap();
    assert_eq!(meta.job, job);
    assert_eq!(meta.mpi, "mpich");
    assert_eq!(meta.n, 3);
    assert_eq!(meta.argv, ["/bin/echo", "hello world", "-x"]);
    assert!(meta.launcher_pid.is_some());
    assert!(meta.ended_at.is_some());
    assert_eq!(meta.exit_code, Some(3));
    assert_eq!(meta.exit_signal, None);
    assert_eq!(
        meta.hosts,
        Some(vec!["nodeA".to_string(), "nodeB".to_string()])
    );
    let mode = fs::metadata(&jobdir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
}

#[test]
fn run_openmpi_command_line() {
    let sb = Sandbox::new();
    let launcher = sb.fake_launcher();
    let out = sb
        .ferry()
        .env("FERRY_MPIEXEC", &launcher)
        .env("FERRY_TEST_X", "1")
        .args([
            "run",
            "--mpi",
            "openmpi",
            "--hosts",
            "h1,h2",
            "--migrate",
            "rank=1,after=4,to=h3",
            "--",
            "/bin/echo",
            "a",
        ])
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    let job = job_id_from_banner(&err);
    assert!(
        err.contains(&format!("ferry: job {job} (openmpi, 2 ranks)")),
        "{err}"
    );
    let jobdir = sb.jobs().join(&job);
    let lib = sb.path("libferry.so").display().to_string();
    // One slot per rank, round-robin; the migration target in the
    // allocation with none.
    let mut want: Vec<String> = [
        "--oversubscribe",
        "--enable-recovery",
        "--host",
        "h1:1,h2:1,h3:0",
        "--map-by",
        "node",
    ]
    .map(String::from)
    .to_vec();
    for kv in [
        format!("LD_PRELOAD={lib}"),
        format!("FERRY_JOB={job}"),
        format!("FERRY_JOB_DIR={}", jobdir.display()),
        "FERRY_MPI=openmpi".to_string(),
        format!("FERRY_LIB={lib}"),
        format!("FERRY_EVENTS={}", jobdir.join("events.jsonl").display()),
        "FERRY_MIGRATE=rank=1,after=4,to=h3".to_string(),
        "FERRY_HOSTS=h1,h2".to_string(),
        "FERRY_IMAGE=1".to_string(),
        format!("FERRY_JOB_ROOT={}", sb.jobs().display()),
        format!("FERRY_MPIEXEC={}", launcher.display()),
        "FERRY_TEST_X=1".to_string(),
    ] {
        want.push("-x".into());
        want.push(kv);
    }
    want.extend(["-n", "2", "/bin/echo", "a"].map(String::from));
    assert_eq!(lines_with(&out, "ARG "), want);
    let lenv = lines_with(&out, "LENV ");
    assert!(
        lenv.contains(&"OMPI_MCA_rmaps_base_oversubscribe=1".to_string()),
        "{lenv:?}"
    );
    assert!(lenv.contains(&"LD_PRELOAD=unset".to_string()), "{lenv:?}");
    // One-sided windows through osc pt2pt (docs/migration.md).
    assert!(lenv.contains(&"OMPI_MCA_osc=pt2pt".to_string()), "{lenv:?}");
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    assert_eq!(
        lenv.contains(&"OMPI_ALLOW_RUN_AS_ROOT=1".to_string()),
        root,
        "{lenv:?}"
    );
    assert_eq!(
        lenv.contains(&"OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1".to_string()),
        root,
        "{lenv:?}"
    );
}

#[test]
fn mpi_choice_flag_then_environment_then_default() {
    let sb = Sandbox::new();
    let launcher = sb.fake_launcher();
    let first_arg = |mpi_env: Option<&str>, flag: Option<&str>| {
        let mut c = sb.ferry();
        c.env("FERRY_MPIEXEC", &launcher);
        if let Some(m) = mpi_env {
            c.env("FERRY_MPI", m);
        }
        c.arg("run");
        if let Some(f) = flag {
            c.args(["--mpi", f]);
        }
        let out = c.args(["--", "/bin/true"]).output().unwrap();
        assert_eq!(out.status.code(), Some(3));
        lines_with(&out, "ARG ")[0].clone()
    };
    assert_eq!(first_arg(None, None), "-disable-auto-cleanup");
    assert_eq!(first_arg(Some("openmpi"), None), "--oversubscribe");
    assert_eq!(
        first_arg(Some("openmpi"), Some("mpich")),
        "-disable-auto-cleanup"
    );
    assert_eq!(first_arg(None, Some("openmpi")), "--oversubscribe");
}

#[test]
fn user_preload_is_kept_for_ranks_and_libferry_kept_out_of_launcher() {
    let sb = Sandbox::new();
    let launcher = sb.fake_launcher();
    let out = sb
        .ferry()
        .env("FERRY_MPIEXEC", &launcher)
        .env("LD_PRELOAD", "/somewhere/libferry.so")
        .args(["run", "--", "/bin/true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let args = lines_with(&out, "ARG ");
    assert_eq!(
        args[..7],
        [
            "-disable-auto-cleanup",
            "-genv",
            "MPIR_CVAR_NO_COLLECTIVE_FINALIZE",
            "1",
            "-genv",
            "LD_PRELOAD",
            &sb.path("libferry.so").display().to_string()
        ]
    );
    assert_eq!(
        lines_with(&out, "LENV "),
        vec!["LD_PRELOAD=unset".to_string()]
    );
}

#[test]
fn library_found_from_the_build_layout() {
    let sb = Sandbox::new();
    let launcher = sb.fake_launcher();
    let bin_dir = sb.path("target/mpich/release");
    fs::create_dir_all(&bin_dir).unwrap();
    fs::create_dir_all(sb.path("target/openmpi/release")).unwrap();
    let copy = bin_dir.join("ferry");
    // A hard link keeps its own path in /proc/self/exe; a copy is the
    // fallback across file systems.
    if fs::hard_link(FERRY, &copy).is_err() {
        fs::copy(FERRY, &copy).unwrap();
    }
    let lib = sb.path("target/openmpi/release/libferry.so");
    fs::write(&lib, b"").unwrap();
    let run = |mpi: &str| {
        let mut tries = 0;
        loop {
            let mut c = sb.ferry_at(&copy);
            c.env_remove("FERRY_LIB")
                .env("FERRY_MPIEXEC", &launcher)
                .args(["run", "--mpi", mpi, "--", "/bin/true"]);
            match c.output() {
                // A copy just written can be "busy" while another test
                // thread forks with its descriptor still open: retry.
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 100 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                r => break r.unwrap(),
            }
        }
    };
    let out = run("openmpi");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(lines_with(&out, "ARG ").contains(&format!("LD_PRELOAD={}", lib.display())));

    let out = run("mpich");
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("cannot find libferry.so for mpich; looked in:")
            && err.contains(&bin_dir.join("libferry.so").display().to_string())
            && err.contains("FERRY_LIB"),
        "{err}"
    );
}

// ----------------------------------------------------- run: signals, status

#[test]
fn launcher_killed_by_signal_gives_128_plus_signal() {
    let sb = Sandbox::new();
    let launcher = sb.script("self-kill", "kill -TERM $$\nsleep 5\n");
    let out = sb
        .ferry()
        .env("FERRY_MPIEXEC", &launcher)
        .args(["run", "--", "/bin/true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(128 + 15), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("launcher killed by signal 15"));
    let dirs = sb.job_dirs();
    let meta: JobMeta =
        serde_json::from_str(&fs::read_to_string(dirs[0].join("job.json")).unwrap()).unwrap();
    assert_eq!((meta.exit_code, meta.exit_signal), (None, Some(15)));
}

#[test]
fn sigterm_to_ferry_is_forwarded_to_the_launcher() {
    let sb = Sandbox::new();
    let launcher = sb.script(
        "trap-mpiexec",
        "trap 'echo got TERM; exit 7' TERM\necho ready\nwhile :; do sleep 0.05; done\n",
    );
    let mut child = sb
        .ferry()
        .env("FERRY_MPIEXEC", &launcher)
        .args(["run", "--", "/bin/true"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill(2) takes plain integers; pid is our live child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(
        rest.contains("got TERM"),
        "launcher did not get SIGTERM: {rest:?}"
    );
    assert_eq!(status.code(), Some(7));
}

fn make_job(sb: &Sandbox, id: &str, running: bool) -> JobDir {
    ensure_private_dir(&sb.jobs()).unwrap();
    let dir = JobDir::create(&sb.jobs(), id).unwrap();
    let meta = JobMeta {
        job: id.into(),
        mpi: "mpich".into(),
        program: "./solver".into(),
        argv: vec!["./solver".into(), "in.dat".into()],
        n: 2,
        launcher: "/opt/ferry/mpich/bin/mpiexec".into(),
        lib: "/x/libferry.so".into(),
        ferry_pid: std::process::id(),
        launcher_pid: Some(std::process::id()),
        started_at: ferry_common::time::unix_ms() - 5000,
        cwd: None,
        hosts: None,
        spare_hosts: Vec::new(),
        old_processes_stay: false,
        events: Some(dir.events_jsonl().display().to_string()),
        migrate: None,
        regroup: None,
        checkpoint: None,
        ended_at: (!running).then(ferry_common::time::unix_ms),
        exit_code: (!running).then_some(0),
        exit_signal: None,
    };
    dir.write_meta(&meta).unwrap();
    dir
}

#[test]
fn status_of_a_job() {
    let sb = Sandbox::new();
    let dir = make_job(&sb, "node-1-abcd", true);
    let out = sb
        .ferry()
        .args(["status", "--job", "node-1-abcd"])
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(stdout.contains("job      node-1-abcd"), "{stdout}");
    assert!(stdout.contains("mpi      mpich (2 ranks)"), "{stdout}");
    assert!(stdout.contains("command  ./solver in.dat"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "state    running (launcher pid {})",
            std::process::id()
        )),
        "{stdout}"
    );
    assert!(stdout.contains("no rank has reported yet"), "{stdout}");

    let mut r0 = RankStatus::new(0, "node", 1234, 0, 5000);
    r0.state = Some("running".into());
    dir.write_rank_status(&r0).unwrap();
    dir.write_rank_status(&RankStatus::new(1, "node", 1299, 1, 4990))
        .unwrap();
    let out = sb
        .ferry()
        .args(["status", "--job", "node-1-abcd"])
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    let table: Vec<Vec<&str>> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("rank"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        table[0],
        [
            "rank",
            "host",
            "pid",
            "migrations",
            "calls",
            "state",
            "updated"
        ]
    );
    assert_eq!(table[1][..6], ["0", "node", "1234", "0", "5000", "running"]);
    assert_eq!(table[2][..6], ["1", "node", "1299", "1", "4990", "-"]);

    // The job directory's path works too.
    let out = sb
        .ferry()
        .args(["status", "--job"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));

    let out = sb
        .ferry()
        .args(["status", "--job", "node-9-ffff"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no job node-9-ffff"));
    let out = sb
        .ferry()
        .args(["status", "--job", "../etc"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
}

#[test]
fn job_root_open_to_others_is_refused() {
    let sb = Sandbox::new();
    make_job(&sb, "node-1-abcd", true);
    fs::set_permissions(sb.jobs(), fs::Permissions::from_mode(0o755)).unwrap();
    let out = sb
        .ferry()
        .args(["status", "--job", "node-1-abcd"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("group/others have access (mode 0755)"),
        "{err}"
    );
    let launcher = sb.fake_launcher();
    let out = sb
        .ferry()
        .env("FERRY_MPIEXEC", &launcher)
        .args(["run", "--", "/bin/true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(lines_with(&out, "ARG ").is_empty());
}

#[test]
fn migrate_queues_a_request() {
    let sb = Sandbox::new();
    let dir = make_job(&sb, "node-1-abcd", true);
    // No rank has reported a live process yet: nothing to deliver to.
    let out = sb
        .ferry()
        .args([
            "migrate",
            "--job",
            "node-1-abcd",
            "--rank",
            "1",
            "--no-wait",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("no rank has a live process"));
    assert_eq!(dir.pending_requests().unwrap().len(), 0);
    // A host that does not resolve is refused before anything is queued.
    let out = sb
        .ferry()
        .args([
            "migrate",
            "--job",
            "node-1-abcd",
            "--rank",
            "1",
            "--to",
            "no-such-host.invalid",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown host"));
    // Rank 1's process (a child of the test that SIGUSR2 ends) takes it.
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let st = ferry_common::job::RankStatus::new(1, "localhost", child.id(), 0, 10);
    dir.write_rank_status(&st).unwrap();
    let out = sb
        .ferry()
        .args([
            "migrate",
            "--job",
            "node-1-abcd",
            "--rank",
            "1",
            "--to",
            "localhost",
            "--no-wait",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&format!(
        "migration of rank 1 to localhost asked of job node-1-abcd (request 1, delivered to rank 1 pid {})",
        child.id()
    )));
    let req: MigrateRequest =
        serde_json::from_str(&fs::read_to_string(dir.requests_dir().join("1.json")).unwrap())
            .unwrap();
    assert_eq!((req.rank, req.to.as_deref()), (1, Some("localhost")));
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGUSR2));

    let out = sb
        .ferry()
        .args(["migrate", "--job", "node-1-abcd", "--rank", "2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("job node-1-abcd has 2 ranks (0..1): there is no rank 2"));

    let out = sb
        .ferry()
        .args([
            "migrate",
            "--job",
            "node-1-abcd",
            "--rank",
            "1",
            "--to",
            "bad host",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

    make_job(&sb, "node-2-abcd", false);
    let out = sb
        .ferry()
        .args(["migrate", "--job", "node-2-abcd", "--rank", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("job node-2-abcd has ended"));

    let out = sb
        .ferry()
        .args(["migrate", "--job", "nope-1-0000", "--rank", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no job nope-1-0000"));
}

#[test]
fn restart_refuses_what_is_not_a_checkpoint() {
    let sb = Sandbox::new();
    let restart = |dir: &std::path::Path| sb.ferry().arg("restart").arg(dir).output().unwrap();
    let out = sb
        .ferry()
        .args(["restart", "no-such-dir"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no-such-dir: no such checkpoint directory"));
    // A directory that is not a checkpoint.
    let ck = sb.path("ck");
    fs::create_dir_all(&ck).unwrap();
    let out = restart(&ck);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("not a complete checkpoint"),
        "{}",
        text(&out.stderr)
    );
    // A record that does not parse.
    fs::write(ck.join("checkpoint.json"), "{ not json").unwrap();
    let out = restart(&ck);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("corrupt"),
        "{}",
        text(&out.stderr)
    );
    // A record whose images are missing.
    fs::write(
        ck.join("checkpoint.json"),
        r#"{"ranks": 2, "program": "/bin/true", "argv": ["true"], "mpi": "mpich"}"#,
    )
    .unwrap();
    fs::write(ck.join("rank-0.img"), "x").unwrap();
    let out = restart(&ck);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("the image of rank 1 is missing"),
        "{}",
        text(&out.stderr)
    );
}

// ------------------------------------------------------------------ report

const SAMPLE_EVENTS: &str = r#"{"event":"migrate","rank":2,"from_host":"n1","to_host":"n2","old_pid":100,"new_pid":200,"global_superstep":17,"drained_messages":3,"drained_bytes":4096,"image_bytes":1234567,"phases_us":{"notify":50,"collective_sync":400,"p2p_sync":120,"drain":300,"spawn":90000,"group":800,"state_transfer":20000,"restore":3000,"total":115000}}

{"event":"regroup","rank":0,"from_host":"n1","global_superstep":40,"phases_us":{"notify":20,"collective_sync":100,"p2p_sync":80,"drain":10,"group":700,"total":950}}
"#;

#[test]
fn report_prints_a_table_and_writes_an_svg() {
    let sb = Sandbox::new();
    let ev = sb.path("events.jsonl");
    fs::write(&ev, SAMPLE_EVENTS).unwrap();
    let svg = sb.path("out.svg");
    let out = sb
        .ferry()
        .arg("report")
        .arg(&ev)
        .arg("--svg")
        .arg(&svg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        [
            "#",
            "event",
            "rank",
            "hosts",
            "pids",
            "superstep",
            "drained",
            "image",
            "notify",
            "coll_sync",
            "p2p_sync",
            "drain",
            "spawn",
            "group",
            "state_xfer",
            "restore",
            "total"
        ]
    );
    assert_eq!(rows[1][..5], ["1", "migrate", "2", "n1->n2", "100->200"]);
    assert_eq!(rows[1].last(), Some(&"115.000"));
    assert!(
        rows[1].contains(&"90.000") && rows[1].contains(&"17"),
        "{stdout}"
    );
    assert_eq!(rows[2][..4], ["2", "regroup", "0", "n1"]);
    assert_eq!(rows[2].last(), Some(&"0.950"));
    assert!(
        stdout.contains(
            "2 events: 1 migrate (mean total 115.000 ms), 1 regroup (mean total 0.950 ms)"
        ),
        "{stdout}"
    );
    assert!(text(&out.stderr).contains(&format!("wrote timeline {}", svg.display())));

    let doc_text = fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&doc_text).expect("well-formed SVG");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let segs = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("seg"))
        .count();
    assert_eq!(
        segs,
        (8 + 1) + (5 + 1),
        "phases + the unaccounted rest of each total"
    );
}

#[test]
fn report_errors() {
    let sb = Sandbox::new();
    let ev = sb.path("bad.jsonl");
    fs::write(&ev, "{\"event\":\"migrate\"}\n{\"event\":\"fly\"}\n").unwrap();
    let out = sb.ferry().arg("report").arg(&ev).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:2: invalid event: unknown variant `fly`",
            ev.display()
        )),
        "{err}"
    );

    let out = sb
        .ferry()
        .args(["report", "missing.jsonl"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot read event log missing.jsonl"));

    let empty = sb.path("empty.jsonl");
    fs::write(&empty, "\n").unwrap();
    let out = sb.ferry().arg("report").arg(&empty).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("no events in"));
}

// ------------------------------------------------------- the real launchers

/// Runs `sh -c 'echo "$FERRY_JOB $LD_PRELOAD"'` in every rank under a real
/// launcher, with an empty file as the library (the dynamic loader only
/// warns about it).
fn real_run(mpi: &str, launcher: &Path) {
    if !launcher.exists() {
        eprintln!("skipping: {} not installed", launcher.display());
        return;
    }
    let sb = Sandbox::new();
    let out = sb
        .ferry()
        .args([
            "run",
            "--mpi",
            mpi,
            "-n",
            "2",
            "--",
            "/bin/sh",
            "-c",
            "echo \"rank-env $FERRY_JOB $LD_PRELOAD\"",
        ])
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let job = job_id_from_banner(&err);
    let want = format!("{job} {}", sb.path("libferry.so").display());
    assert_eq!(
        lines_with(&out, "rank-env "),
        vec![want.clone(), want],
        "{err}"
    );
}

#[test]
fn real_mpich_missing_library_fails_before_launching() {
    let mpiexec = Path::new("/opt/ferry/mpich/bin/mpiexec");
    if !mpiexec.exists() {
        eprintln!("skipping: {} not installed", mpiexec.display());
        return;
    }
    let sb = Sandbox::new();
    let out = sb
        .ferry()
        .env("FERRY_LIB", sb.path("does-not-exist/libferry.so"))
        .args(["run", "--mpi", "mpich", "-n", "2", "--", "/bin/true"])
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("FERRY_LIB=") && err.contains("does-not-exist/libferry.so is not a file"),
        "{err}"
    );
    assert!(
        !err.contains("ferry: job "),
        "must fail before creating a job: {err}"
    );
    assert!(sb.job_dirs().is_empty());
}

#[test]
fn real_mpich_runs_ranks_with_the_environment() {
    real_run("mpich", Path::new("/opt/ferry/mpich/bin/mpiexec"));
}

#[test]
fn real_openmpi_runs_ranks_with_the_environment() {
    real_run("openmpi", Path::new("/usr/bin/mpiexec.openmpi"));
}

/// `ferry evacuate`'s refusals before anything moves, its dry run, and a
/// second evacuation while one runs (on a job directory with no MPI job
/// behind it: nothing may be asked of the ranks).
#[test]
fn evacuate_refusals_and_dry_run() {
    let sb = Sandbox::new();
    let dir = make_job(&sb, "node-1-evac", true);
    let mut meta = dir.read_meta().unwrap();
    meta.n = 3;
    meta.hosts = Some(vec!["h1".into(), "h2".into(), "h3".into()]);
    meta.spare_hosts = vec!["h4".into()];
    dir.write_meta(&meta).unwrap();
    for (rank, host) in [(0, "h1"), (1, "h2"), (2, "h3")] {
        dir.write_rank_status(&RankStatus::new(rank, host, 999_000 + rank, 0, 10))
            .unwrap();
    }
    let evacuate = |args: &[&str]| {
        let out = sb
            .ferry()
            .args(["evacuate", "--job", "node-1-evac"])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            format!("{}{}", text(&out.stdout), text(&out.stderr)),
        )
    };
    // A host with no rank, an unknown one, the host itself as a target.
    let (code, said) = evacuate(&["--host", "localhost"]);
    assert_eq!(code, Some(2), "{said}");
    assert!(said.contains("runs no rank of job node-1-evac"), "{said}");
    let (code, said) = evacuate(&["--host", "no-such-host.invalid"]);
    assert_eq!(code, Some(2), "{said}");
    assert!(said.contains("unknown host"), "{said}");
    let (code, said) = evacuate(&["--host", "h2", "--to", "h2"]);
    assert_eq!(code, Some(2), "{said}");
    assert!(said.contains("the host being evacuated"), "{said}");
    // The plan: rank 1 to the spare host (no rank there yet).
    let (code, said) = evacuate(&["--host", "h2", "--dry-run"]);
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains("rank 1: pid 999001 on h2 -> h4 (planned)"),
        "{said}"
    );
    assert!(said.contains("nothing moved"), "{said}");
    let (code, said) = evacuate(&["--host", "h2", "--dry-run", "--json"]);
    assert_eq!(code, Some(0), "{said}");
    let v: serde_json::Value = serde_json::from_str(&said).unwrap();
    assert_eq!(v["outcome"], "planned");
    assert_eq!(v["ranks"][0]["to_host"], "h4");
    // Another evacuation of the job runs (its lock names a live process).
    std::fs::write(
        dir.path().join("evacuate.lock"),
        format!("{} h3\n", std::process::id()),
    )
    .unwrap();
    let (code, said) = evacuate(&["--host", "h2"]);
    assert_eq!(code, Some(2), "{said}");
    assert!(
        said.contains("an evacuation of h3 is already running"),
        "{said}"
    );
    // Old processes that stay: no host can be emptied.
    meta.old_processes_stay = true;
    dir.write_meta(&meta).unwrap();
    let (code, said) = evacuate(&["--host", "h2"]);
    assert_eq!(code, Some(2), "{said}");
    assert!(said.contains("FERRY_OLD_PROCESS=stay"), "{said}");
    // An ended job.
    let ended = make_job(&sb, "node-1-done", false);
    let out = sb
        .ferry()
        .args(["evacuate", "--job", "node-1-done", "--host", "h2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("has ended"),
        "{}",
        text(&out.stderr)
    );
    drop(ended);
}
