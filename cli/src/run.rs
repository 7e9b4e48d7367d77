//! `ferry run`: start PROGRAM under the MPI's launcher with libferry.so
//! preloaded in the ranks (never in the launcher itself).

use crate::{Failure, HostList, Mpi, RunArgs};
use ferry_common::env::{self as fenv, var};
use ferry_common::job::{current_uid, JobDir, JobMeta, RankStatus};
use ferry_common::spec::{format_spec_list, parse_checkpoint_spec, parse_spec_list, OpSpec};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

/// Everything needed to start the launcher, computed before anything runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchPlan {
    pub launcher: PathBuf,
    pub args: Vec<OsString>,
    /// Set in the launcher's own environment (not only the ranks').
    pub launcher_env: Vec<(String, OsString)>,
    /// Removed from the launcher's own environment.
    pub launcher_env_remove: Vec<String>,
}

/// Variables `ferry run` sets itself for the ranks; inherited values of
/// these names are not passed on a second time.
const SET_BY_FERRY: &[&str] = &[
    fenv::FERRY_JOB,
    fenv::FERRY_JOB_DIR,
    fenv::FERRY_MPI,
    fenv::FERRY_LIB,
    fenv::FERRY_EVENTS,
    fenv::FERRY_MIGRATE,
    fenv::FERRY_REGROUP,
    fenv::FERRY_CHECKPOINT,
    fenv::FERRY_HOSTS,
    fenv::FERRY_RESTART,
];

/// The environment of the ranks: `LD_PRELOAD`, the variables ferry sets
/// (`fixed`, in order), then every other inherited `FERRY_*` (sorted).
pub fn rank_env(
    lib: &Path,
    user_preload: Option<&OsStr>,
    fixed: &[(&str, OsString)],
    inherited: impl IntoIterator<Item = (OsString, OsString)>,
) -> Vec<(String, OsString)> {
    let mut preload = lib.as_os_str().to_os_string();
    if let Some(user) = user_preload.filter(|u| !u.is_empty()) {
        preload.push(":");
        preload.push(user);
    }
    let mut out = vec![("LD_PRELOAD".to_string(), preload)];
    out.extend(fixed.iter().map(|(k, v)| (k.to_string(), v.clone())));
    let mut rest: Vec<(String, OsString)> = inherited
        .into_iter()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v)))
        .filter(|(k, _)| k.starts_with("FERRY_") && !SET_BY_FERRY.contains(&k.as_str()))
        .collect();
    rest.sort();
    out.extend(rest);
    out
}

/// What the launcher command line is built from.
#[derive(Debug, Clone)]
pub struct PlanInput<'a> {
    pub mpi: Mpi,
    pub launcher: &'a Path,
    pub n: u32,
    pub hosts: Option<&'a [String]>,
    /// Hosts the ranks may move to that are not in `hosts` (the `to=` of
    /// the `--migrate` SPECs): no rank starts there.
    pub spare_hosts: &'a [String],
    /// The ranks' environment, from [`rank_env`].
    pub rank_env: &'a [(String, OsString)],
    /// PROGRAM and its arguments.
    pub command: &'a [OsString],
    /// Whether ferry runs as root (Open MPI refuses root unless told).
    pub is_root: bool,
}

/// The launcher command line and its own environment. `launcher_var`
/// reads ferry's environment (variables already set are not overridden).
pub fn build_plan(
    input: &PlanInput<'_>,
    launcher_var: impl Fn(&str) -> Option<OsString>,
) -> LaunchPlan {
    let PlanInput {
        mpi,
        launcher,
        n,
        hosts,
        spare_hosts,
        rank_env,
        command,
        is_root,
    } = *input;
    let mut args: Vec<OsString> = Vec::new();
    let mut launcher_env = Vec::new();
    match mpi {
        Mpi::Mpich | Mpi::MpichDeb => {
            if mpi.survives_lost_processes() {
                // As `--enable-recovery` below.
                args.push("-disable-auto-cleanup".into());
            }
            if let Some(h) = hosts {
                args.push("-hosts".into());
                args.push(h.join(",").into());
            }
            // A moved rank's old process finalizes and leaves at once:
            // MPI_Finalize without its collective step (a PMI barrier
            // over the launched processes), else it would wait there for
            // the whole job (docs/host-loss.md, M1 and M4).
            let k = "MPIR_CVAR_NO_COLLECTIVE_FINALIZE";
            let set = launcher_var(k).is_some() || rank_env.iter().any(|(n, _)| n == k);
            if mpi.survives_lost_processes() && !set {
                args.extend(["-genv", k, "1"].map(OsString::from));
            }
            // Between hosts, the OFI network layer: UCX's MPI_Finalize
            // fails on the endpoint of a process that left, OFI's does not
            // (docs/host-loss.md, M5 and M10).
            let k = "MPIR_CVAR_CH4_NETMOD";
            let set = launcher_var(k).is_some() || rank_env.iter().any(|(n, _)| n == k);
            if mpi.survives_lost_processes() && hosts.is_some() && !set {
                args.extend(["-genv", k, "ofi"].map(OsString::from));
            }
            for (k, v) in rank_env {
                args.push("-genv".into());
                args.push(k.into());
                args.push(v.clone());
            }
        }
        Mpi::Openmpi => {
            args.push("--oversubscribe".into());
            // A replacement that dies before it took over (killed, its
            // host lost) must not take the job with it: the library gives
            // the migration up and the rank stays. `ferry run` stops the
            // job itself when a rank dies (`watch_ranks`).
            args.push("--enable-recovery".into());
            if let Some(h) = hosts {
                args.push("--host".into());
                args.push(openmpi_hosts(h, spare_hosts, n).into());
                // Round-robin over the hosts, as MPICH's hydra places them.
                args.push("--map-by".into());
                args.push("node".into());
            }
            for (k, v) in rank_env {
                let mut kv = OsString::from(k);
                kv.push("=");
                kv.push(v);
                args.push("-x".into());
                args.push(kv);
            }
            let mut defaults: Vec<(&str, &str)> = Vec::new();
            if is_root {
                defaults.push(("OMPI_ALLOW_RUN_AS_ROOT", "1"));
                defaults.push(("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1"));
            }
            // MPI_Comm_spawn of a replacement needs oversubscription allowed.
            defaults.push(("OMPI_MCA_rmaps_base_oversubscribe", "1"));
            // No InfiniBand here: keep Open MPI from probing for it noisily.
            defaults.push(("OMPI_MCA_btl", "^openib,ofi"));
            // One-sided windows through osc pt2pt, in every process: Open
            // MPI 4.1 picks a window's component in each process from what
            // it believes of its peers' nodes, beliefs that spawned
            // processes do not share (docs/migration.md); after a second
            // migration the processes picked different ones (sm, rdma) and
            // the library's state window could not be made again. pt2pt
            // works between any two processes (and between hosts over TCP,
            // where osc rdma fails: no remote atomics, and osc ucx hangs in
            // MPI_Win_lock). It needs the target's progress, which the
            // library's protocol has at its call boundaries.
            defaults.push(("OMPI_MCA_osc", "pt2pt"));
            // A moved rank's old process finalizes and leaves at once:
            // MPI_Finalize without its barrier over the job, else it would
            // wait there for the whole job (docs/host-loss.md, O2 and O3).
            defaults.push(("OMPI_MCA_async_mpi_finalize", "1"));
            if hosts.is_some() {
                // Every daemon started by mpirun itself, detached from its
                // ssh: a host lost once its ranks left is then a daemon
                // lost, which `--enable-recovery` survives, not a launch
                // failure, which aborts (docs/host-loss.md, O6 and O7).
                defaults.push(("OMPI_MCA_plm_rsh_no_tree_spawn", "1"));
                // A host that dies says nothing: mpirun learns that its
                // daemon is gone from TCP keepalives, after 10 s of silence
                // and 3 unanswered probes 5 s apart (not 8 minutes).
                defaults.push(("OMPI_MCA_oob_tcp_keepalive_time", "10"));
                defaults.push(("OMPI_MCA_oob_tcp_keepalive_intvl", "5"));
                defaults.push(("OMPI_MCA_oob_tcp_keepalive_probes", "3"));
            }
            for (k, v) in defaults {
                if launcher_var(k).is_none() {
                    launcher_env.push((k.to_string(), OsString::from(v)));
                }
            }
        }
    }
    args.push("-n".into());
    args.push(n.to_string().into());
    args.extend(command.iter().cloned());
    LaunchPlan {
        launcher: launcher.to_path_buf(),
        args,
        launcher_env,
        launcher_env_remove: Vec::new(),
    }
}

/// Open MPI's `--host` value for `n` ranks spread round-robin over `hosts`
/// (`H:SLOTS`, each host as many slots as ranks it gets), then the spare
/// hosts with no slot (`H:0`): Open MPI's `MPI_Comm_spawn` places a process
/// only on a host of the job's allocation, so a host a rank may move to
/// must be in it from the start.
pub fn openmpi_hosts(hosts: &[String], spare: &[String], n: u32) -> String {
    let mut slots: Vec<(&str, u32)> = Vec::new();
    for (i, h) in hosts.iter().enumerate() {
        let count = n / hosts.len() as u32 + u32::from((i as u32) < n % hosts.len() as u32);
        match slots.iter_mut().find(|(name, _)| name == h) {
            Some((_, c)) => *c += count,
            None => slots.push((h, count)),
        }
    }
    for h in spare {
        if !slots.iter().any(|(name, _)| name == h) {
            slots.push((h, 0));
        }
    }
    slots
        .iter()
        .map(|(h, c)| format!("{h}:{c}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether Open MPI can start `n` ranks on `hosts` with `spare` hosts in
/// the job: Open MPI 4.1.4's mapper loses ranks (`PMIX ERROR: BAD-PARAM`,
/// the job never starts) when a host has more than one rank while a host
/// with no slot is in the job and oversubscription is allowed, which a
/// spawn needs.
pub fn openmpi_hosts_supported(hosts: &[String], spare: &[String], n: u32) -> Result<(), String> {
    let mut distinct: Vec<&String> = hosts.iter().collect();
    distinct.sort();
    distinct.dedup();
    let spare: Vec<&String> = spare.iter().filter(|h| !hosts.contains(h)).collect();
    if spare.is_empty() || n as usize <= distinct.len() {
        return Ok(());
    }
    Err(format!(
        "Open MPI: {n} ranks on {} host(s) with a host that has none at the start ({}): \
         not supported (Open MPI 4.1.4 loses ranks when a host has more than one while a \
         host with no slot is in the job); give at least as many hosts as ranks, or use MPICH",
        distinct.len(),
        spare
            .iter()
            .map(|h| h.as_str())
            .collect::<Vec<_>>()
            .join(",")
    ))
}

/// Splits an inherited `LD_PRELOAD` into what the user preloads himself,
/// dropping any libferry.so (it must not be preloaded into the launcher).
pub fn user_preload(ld_preload: Option<&OsStr>) -> Option<OsString> {
    let value = ld_preload?;
    let kept: Vec<&[u8]> = value
        .as_bytes()
        .split(|&b| b == b':' || b == b' ')
        .filter(|e| !e.is_empty())
        .filter(|e| Path::new(OsStr::from_bytes(e)).file_name() != Some(OsStr::new("libferry.so")))
        .collect();
    if kept.is_empty() {
        None
    } else {
        Some(OsStr::from_bytes(&kept.join(&b':')).to_os_string())
    }
}

fn is_executable_file(p: &Path) -> bool {
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn search_path(name: &OsStr) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable_file(p))
}

/// The launcher: `$FERRY_MPIEXEC`, else the MPI's default.
pub fn find_launcher(mpi: Mpi) -> Result<PathBuf, Failure> {
    let (path, origin) = match std::env::var_os(fenv::FERRY_MPIEXEC).filter(|v| !v.is_empty()) {
        Some(p) => (PathBuf::from(p), format!("from {}", fenv::FERRY_MPIEXEC)),
        None => match mpi {
            Mpi::Mpich => {
                let prefix = var(fenv::FERRY_PREFIX).unwrap_or_else(|| fenv::DEFAULT_PREFIX.into());
                (
                    Path::new(&prefix).join("mpich/bin/mpiexec"),
                    format!("MPICH's launcher under {}={prefix}", fenv::FERRY_PREFIX),
                )
            }
            Mpi::Openmpi => (
                PathBuf::from("/usr/bin/mpiexec.openmpi"),
                "Debian's Open MPI".into(),
            ),
            Mpi::MpichDeb => (
                PathBuf::from("/usr/bin/mpiexec.mpich"),
                "Debian's MPICH".into(),
            ),
        },
    };
    let found = if path.as_os_str().as_bytes().contains(&b'/') {
        is_executable_file(&path).then(|| path.clone())
    } else {
        search_path(path.as_os_str())
    };
    found.ok_or_else(|| {
        Failure::other(format!(
            "cannot find the {} launcher: {} ({origin}) is not an executable file; set {} to the mpiexec to use",
            mpi.as_str(),
            path.display(),
            fenv::FERRY_MPIEXEC
        ))
    })
}

/// Where the library is looked for when `FERRY_LIB` is not set: next to
/// the build layout `target/<mpi>/release/`, then beside the executable.
pub fn lib_candidates(exe_dir: &Path, mpi: Mpi) -> Vec<PathBuf> {
    // <exe dir>/../../<mpi>/release, resolved lexically (exe_dir comes
    // from current_exe(), which has no symlinks or `..` in it).
    let layout = match exe_dir.parent().and_then(Path::parent) {
        Some(target) => target.join(mpi.as_str()).join("release/libferry.so"),
        None => exe_dir
            .join("../..")
            .join(mpi.as_str())
            .join("release/libferry.so"),
    };
    let beside = exe_dir.join("libferry.so");
    if layout == beside {
        vec![layout]
    } else {
        vec![layout, beside]
    }
}

/// The library to preload: `$FERRY_LIB`, else the first existing candidate.
pub fn find_lib(mpi: Mpi) -> Result<PathBuf, Failure> {
    if let Some(lib) = std::env::var_os(fenv::FERRY_LIB).filter(|v| !v.is_empty()) {
        let lib = PathBuf::from(lib);
        return if lib.is_file() {
            Ok(absolute(&lib))
        } else {
            Err(Failure::other(format!(
                "{}={} is not a file: build the library (cargo build --release with CARGO_TARGET_DIR=target/{}) or fix {}",
                fenv::FERRY_LIB,
                lib.display(),
                mpi.as_str(),
                fenv::FERRY_LIB
            )))
        };
    }
    let exe = std::env::current_exe()
        .map_err(|e| Failure::other(format!("cannot locate the ferry executable: {e}")))?;
    let exe_dir = exe.parent().unwrap_or(Path::new("/"));
    let candidates = lib_candidates(exe_dir, mpi);
    for c in &candidates {
        if c.is_file() {
            return Ok(absolute(c));
        }
    }
    let looked: Vec<String> = candidates
        .iter()
        .map(|c| format!("  {}", c.display()))
        .collect();
    Err(Failure::other(format!(
        "cannot find libferry.so for {}; looked in:\n{}\nbuild it (. scripts/mpi-env.sh {}; cargo build --release) or set {}",
        mpi.as_str(),
        looked.join("\n"),
        mpi.as_str(),
        fenv::FERRY_LIB
    )))
}

/// `p` made absolute and normalized when possible.
fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    })
}

/// Checks a local PROGRAM before launching (skipped for multi-host runs,
/// where it may exist only on the other hosts).
fn check_program(program: &OsStr) -> Result<(), Failure> {
    let p = Path::new(program);
    if program.as_bytes().contains(&b'/') {
        if !p.exists() {
            return Err(Failure::usage(format!(
                "PROGRAM {}: no such file",
                p.display()
            )));
        }
        if !is_executable_file(p) {
            return Err(Failure::usage(format!(
                "PROGRAM {}: not an executable file",
                p.display()
            )));
        }
    } else if search_path(program).is_none() {
        let hint = if is_executable_file(p) {
            format!(" (did you mean ./{}?)", p.display())
        } else {
            String::new()
        };
        return Err(Failure::usage(format!(
            "PROGRAM {}: not found in PATH{hint}",
            p.display()
        )));
    }
    Ok(())
}

/// Validated SPEC lists: those of the environment first, then the CLI's.
fn merged_specs(
    env_name: &str,
    cli: &[OpSpec],
    allow_to: bool,
    n: u32,
) -> Result<Vec<OpSpec>, Failure> {
    let mut all = Vec::new();
    if let Some(v) = var(env_name) {
        let specs = parse_spec_list(&v)
            .map_err(|e| Failure::usage(format!("{env_name} (from the environment): {e}")))?;
        all.extend(specs);
    }
    all.extend(cli.iter().cloned());
    let flag = if env_name == fenv::FERRY_MIGRATE {
        "--migrate"
    } else {
        "--regroup"
    };
    for s in &all {
        if !allow_to && s.to.is_some() {
            return Err(Failure::usage(format!(
                "{flag} {s}: to= does not apply to a regroup (expected rank=R,after=K)"
            )));
        }
        if s.rank >= n {
            return Err(Failure::usage(format!(
                "{flag} {s}: rank {} does not exist (the job has {n} ranks: 0..{})",
                s.rank,
                n - 1
            )));
        }
    }
    Ok(all)
}

/// Quotes a word for display as a shell command line.
fn shell_quote(s: &OsStr) -> String {
    let s = s.to_string_lossy();
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=/.,:+@%^".contains(c))
    {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The exit status `ferry run` reports for the launcher's status.
pub fn exit_code(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(sig)) => 128 + sig,
        (None, None) => crate::EXIT_FAILURE,
    }
}

pub fn run(args: RunArgs) -> Result<i32, Failure> {
    // 1. Everything is validated before anything is created or started.
    let mpi = match args.mpi {
        Some(m) => m,
        None => match var(fenv::FERRY_MPI) {
            Some(v) => Mpi::parse(&v).ok_or_else(|| {
                Failure::usage(format!(
                    "{}={v:?} (from the environment): expected mpich, openmpi or mpich-deb",
                    fenv::FERRY_MPI
                ))
            })?,
            None => Mpi::Mpich,
        },
    };
    let n = args.n;
    let migrate = merged_specs(fenv::FERRY_MIGRATE, &args.migrate, true, n)?;
    let regroup = merged_specs(fenv::FERRY_REGROUP, &args.regroup, false, n)?;
    let checkpoint = match args.checkpoint {
        Some(c) => Some(c),
        None => var(fenv::FERRY_CHECKPOINT)
            .map(|v| {
                parse_checkpoint_spec(&v).map_err(|e| {
                    Failure::usage(format!(
                        "{} (from the environment): {e}",
                        fenv::FERRY_CHECKPOINT
                    ))
                })
            })
            .transpose()?,
    };
    // The checkpoint directory is the same for every rank, wherever it runs.
    let checkpoint = checkpoint.map(|mut c| {
        c.dir = absolute_new(Path::new(&c.dir)).display().to_string();
        c
    });
    let (hosts, mut spare_hosts) = match args.hosts {
        Some(HostList { ranks, spare }) => (Some(ranks), spare),
        None => (None, Vec::new()),
    };
    let program = args.command[0].clone();
    if hosts.is_none() {
        check_program(&program)?;
    }
    spare_hosts.extend(migrate.iter().filter_map(|s| s.to.clone()));
    if let (Mpi::Openmpi, Some(h)) = (mpi, &hosts) {
        openmpi_hosts_supported(h, &spare_hosts, n).map_err(Failure::usage)?;
    }
    let launcher = find_launcher(mpi)?;
    let lib = find_lib(mpi)?;

    // 2. The job directory and job.json.
    let job = JobDir::create_new()?;
    let events = match (
        &args.events,
        std::env::var_os(fenv::FERRY_EVENTS).filter(|v| !v.is_empty()),
    ) {
        (Some(e), _) => absolute_new(e),
        (None, Some(e)) => absolute_new(Path::new(&e)),
        (None, None) => job.events_jsonl(),
    };
    let lossy = |s: &OsStr| s.to_string_lossy().into_owned();
    let mut meta = JobMeta {
        job: job.id().to_string(),
        mpi: mpi.as_str().to_string(),
        program: lossy(&program),
        argv: args.command.iter().map(|a| lossy(a)).collect(),
        n,
        launcher: launcher.display().to_string(),
        lib: lib.display().to_string(),
        ferry_pid: std::process::id(),
        launcher_pid: None,
        started_at: ferry_common::time::unix_ms(),
        cwd: std::env::current_dir()
            .ok()
            .map(|d| d.display().to_string()),
        hosts: hosts.clone(),
        spare_hosts: spare_hosts.clone(),
        old_processes_stay: fenv::var(fenv::FERRY_OLD_PROCESS).as_deref() == Some("stay"),
        events: Some(events.display().to_string()),
        migrate: (!migrate.is_empty()).then(|| format_spec_list(&migrate)),
        regroup: (!regroup.is_empty()).then(|| format_spec_list(&regroup)),
        checkpoint: checkpoint.as_ref().map(|c| c.to_string()),
        ended_at: None,
        exit_code: None,
        exit_signal: None,
    };
    job.write_meta(&meta)?;

    // 3. The launcher's command line.
    let mut fixed: Vec<(&str, OsString)> = vec![
        (fenv::FERRY_JOB, job.id().into()),
        (fenv::FERRY_JOB_DIR, job.path().as_os_str().to_os_string()),
        (fenv::FERRY_MPI, mpi.as_str().into()),
        (fenv::FERRY_LIB, lib.as_os_str().to_os_string()),
        (fenv::FERRY_EVENTS, events.as_os_str().to_os_string()),
    ];
    if let Some(m) = &meta.migrate {
        fixed.push((fenv::FERRY_MIGRATE, m.into()));
    }
    if let Some(r) = &meta.regroup {
        fixed.push((fenv::FERRY_REGROUP, r.into()));
    }
    if let Some(c) = &meta.checkpoint {
        fixed.push((fenv::FERRY_CHECKPOINT, c.into()));
    }
    if let Some(h) = &hosts {
        fixed.push((fenv::FERRY_HOSTS, h.join(",").into()));
    }
    if let Some(d) = &args.restart {
        fixed.push((fenv::FERRY_RESTART, d.as_os_str().to_os_string()));
    }
    // Every rank of a job started here can be moved (`--migrate`, `ferry
    // migrate`), checkpointed or restarted: the process image is on unless
    // the user turned it off (FERRY_IMAGE=0).
    if std::env::var_os(fenv::FERRY_IMAGE).is_none() {
        fixed.push((fenv::FERRY_IMAGE, "1".into()));
    }
    let image_on = std::env::var_os(fenv::FERRY_IMAGE).map_or(true, |v| v != "0");
    let inherited_preload = std::env::var_os("LD_PRELOAD");
    let user = user_preload(inherited_preload.as_deref());
    let renv = rank_env(&lib, user.as_deref(), &fixed, std::env::vars_os());
    let mut plan = build_plan(
        &PlanInput {
            mpi,
            launcher: &launcher,
            n,
            hosts: hosts.as_deref(),
            spare_hosts: &spare_hosts,
            rank_env: &renv,
            command: &args.command,
            is_root: current_uid() == 0,
        },
        |k: &str| std::env::var_os(k),
    );
    if inherited_preload.is_some() && user.as_deref() != inherited_preload.as_deref() {
        // libferry.so was preloaded into ferry itself: keep it out of the launcher.
        match &user {
            Some(u) => plan.launcher_env.push(("LD_PRELOAD".into(), u.clone())),
            None => plan.launcher_env_remove.push("LD_PRELOAD".into()),
        }
    }

    eprintln!(
        "ferry: job {} ({}, {} ranks) — dir {}",
        job.id(),
        mpi.as_str(),
        n,
        job.path().display()
    );
    let words: Vec<String> = std::iter::once(plan.launcher.as_os_str())
        .chain(plan.args.iter().map(|a| a.as_os_str()))
        .map(shell_quote)
        .collect();
    log::info!("launching: {}", words.join(" "));

    // 4. Run it, forwarding SIGINT/SIGTERM, and record the outcome.
    let watched = mpi.survives_lost_processes().then(|| (job.clone(), n));
    let status = launch(&plan, image_on, watched, |pid| {
        meta.launcher_pid = Some(pid);
        if let Err(e) = job.write_meta(&meta) {
            log::warn!(
                "cannot record the launcher's pid in {}: {e}",
                job.job_json().display()
            );
        }
    })?;
    let mut code = exit_code(status);
    if code == 0 {
        // A launcher told to keep the job when a process dies (Open MPI's
        // --enable-recovery) exits 0 whatever its ranks' exit statuses:
        // the ranks record them (`rank-R.exit`), the first non-zero one is
        // the job's, as the launcher would have had it.
        if let Some((rank, c)) = first_failed_rank(job.path()) {
            eprintln!(
                "ferry: job {}: rank {rank} exited with status {c}",
                job.id()
            );
            code = c;
        }
    }
    meta.ended_at = Some(ferry_common::time::unix_ms());
    meta.exit_code = status.code();
    meta.exit_signal = status.signal();
    if let Err(e) = job.write_meta(&meta) {
        log::warn!(
            "cannot record the job's end in {}: {e}",
            job.job_json().display()
        );
    }
    if LINGERED.load(std::sync::atomic::Ordering::SeqCst) && every_rank_succeeded(job.path(), n) {
        // Stopped by `watch_ranks` once every rank had ended: the job is
        // over, the launcher was only waiting for a daemon of a host that
        // died.
        code = 0;
    } else if status.signal() == Some(libc::SIGPIPE) && every_rank_succeeded(job.path(), meta.n) {
        // MPICH's hydra can die writing to the proxy of a replacement that
        // has already ended (seen across hosts): the job itself is over,
        // every rank finished with status 0 and its output is complete.
        eprintln!(
            "ferry: job {}: the launcher died of SIGPIPE after every rank had ended with status 0 (docs/hosts.md); the job succeeded",
            job.id()
        );
        code = 0;
    } else if let Some(sig) = status.signal() {
        eprintln!("ferry: job {}: launcher killed by signal {sig}", job.id());
    } else if code != 0 {
        log::info!("job {}: launcher exited with status {code}", job.id());
    }
    Ok(code)
}

/// Whether each of the job's `n` ranks recorded the exit status 0 in the
/// job directory (`rank-R.exit`, written by the process holding the rank
/// when it exits; ranks on other machines record none, and the answer is
/// then no).
pub fn every_rank_succeeded(dir: &Path, n: u32) -> bool {
    n > 0
        && (0..n).all(|r| {
            std::fs::read_to_string(dir.join(format!("rank-{r}.exit")))
                .is_ok_and(|s| s.trim() == "0")
        })
}

/// The lowest rank whose process recorded a non-zero exit status in the
/// job directory, and that status.
pub fn first_failed_rank(dir: &Path) -> Option<(u32, i32)> {
    let mut failed: Vec<(u32, i32)> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let rank = name
                .strip_prefix("rank-")?
                .strip_suffix(".exit")?
                .parse()
                .ok()?;
            let code: i32 = std::fs::read_to_string(e.path())
                .ok()?
                .trim()
                .parse()
                .ok()?;
            (code != 0).then_some((rank, code))
        })
        .collect();
    failed.sort();
    failed.first().copied()
}

/// An absolute version of a path that may not exist yet.
fn absolute_new(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

/// Starts the launcher and waits for it. SIGINT and SIGTERM sent to ferry
/// by another process (`kill`, `timeout`, a batch system) are forwarded to
/// the launcher; those a terminal sends to the whole foreground process
/// group reach the launcher directly and are not sent twice.
///
/// With the process image on, the launcher starts without address-space
/// randomization (`personality(ADDR_NO_RANDOMIZE)`, what `setarch -R`
/// does), and so do all it starts: the ranks, and the replacements a
/// migration spawns through the launcher's daemons. The library would
/// otherwise re-execute each of them once to get the fixed layout the
/// image needs (see the library's `image::startup`), loading the MPI
/// twice: about 45 ms more for each replacement's start here (MPICH with
/// UCX), inside the migration's spawn phase.
///
/// `watch`: the job whose ranks to watch while the launcher runs (see
/// [`watch_ranks`]).
fn launch(
    plan: &LaunchPlan,
    fixed_layout: bool,
    watch: Option<(JobDir, u32)>,
    on_spawn: impl FnOnce(u32),
) -> Result<ExitStatus, Failure> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::iterator::exfiltrator::origin::WithOrigin;
    use signal_hook::iterator::SignalsInfo;
    use signal_hook::low_level::siginfo::Cause;

    let mut signals = SignalsInfo::<WithOrigin>::new([SIGINT, SIGTERM])
        .map_err(|e| Failure::other(format!("cannot install signal handlers: {e}")))?;
    let handle = signals.handle();

    let mut cmd = Command::new(&plan.launcher);
    cmd.args(&plan.args);
    for (k, v) in &plan.launcher_env {
        cmd.env(k, v);
    }
    for k in &plan.launcher_env_remove {
        cmd.env_remove(k);
    }
    if fixed_layout {
        use std::os::unix::process::CommandExt;
        // SAFETY: runs in the child between fork and exec, where only
        // async-signal-safe calls are allowed: `personality` is one system
        // call, and its failure only leaves randomization on (the library
        // then re-executes each rank as before).
        unsafe {
            cmd.pre_exec(|| {
                let current = libc::personality(0xffff_ffff);
                if current >= 0 {
                    libc::personality(
                        (current as libc::c_ulong) | libc::ADDR_NO_RANDOMIZE as libc::c_ulong,
                    );
                }
                Ok(())
            });
        }
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| Failure::other(format!("cannot start {}: {e}", plan.launcher.display())))?;
    let pid = child.id();
    on_spawn(pid);

    let forwarder = std::thread::spawn(move || {
        for origin in signals.forever() {
            if matches!(origin.cause, Cause::Kernel) {
                log::debug!(
                    "signal {} came from the terminal; the launcher got it too",
                    origin.signal
                );
                continue;
            }
            log::info!(
                "forwarding signal {} to the launcher (pid {pid})",
                origin.signal
            );
            let Ok(target) = libc::pid_t::try_from(pid) else {
                continue;
            };
            // SAFETY: kill(2) only takes integers; target is our own child,
            // which we have not reaped yet (the main thread is in wait()).
            unsafe {
                libc::kill(target, origin.signal);
            }
        }
    });
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = watch.map(|(job, n)| {
        let done = done.clone();
        std::thread::spawn(move || watch_ranks(&job, n, pid, &done))
    });
    let status = child
        .wait()
        .map_err(|e| Failure::other(format!("cannot wait for {}: {e}", plan.launcher.display())));
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    handle.close();
    let _ = forwarder.join();
    if let Some(w) = watcher {
        let _ = w.join();
    }
    status
}

/// States a rank's process ends in normally.
const ENDED: [&str; 2] = ["finalized", "checkpointed"];

/// The ranks whose process has gone without ending normally: on this
/// machine (`machine`, where their pids can be checked), not finalized,
/// and their pid no longer alive.
pub fn lost_ranks<'a>(
    ranks: &'a [RankStatus],
    machine: &str,
    alive: impl Fn(u32) -> bool,
) -> Vec<&'a RankStatus> {
    ranks
        .iter()
        .filter(|r| r.machine.as_deref() == Some(machine))
        .filter(|r| !r.state.as_deref().is_some_and(|s| ENDED.contains(&s)))
        .filter(|r| !alive(r.pid))
        .collect()
}

/// How often the ranks are looked at, and how many looks in a row a rank
/// must be lost before the job is stopped (its status file may be in the
/// middle of being rewritten by a process that takes the rank over).
const WATCH_EVERY: std::time::Duration = std::time::Duration::from_millis(250);
const WATCH_LOOKS: u32 = 3;

/// The launcher is told to keep the job running when one of its processes
/// dies (so that a migration can lose its replacement and go on). A rank
/// whose process dies is another matter: its peers would wait for it
/// forever. So while the launcher runs, `ferry run` looks at the ranks'
/// status files; a rank on this machine whose process has gone without
/// finalizing stops the job (SIGTERM to the launcher, SIGKILL 5 s later),
/// as the launcher would have by itself. Ranks on other machines are left
/// to the launcher's own detection.
///
/// And once every rank has recorded its exit status (`rank-R.exit`), the
/// launcher has [`LINGER`] to end too: Open MPI 4.1.4's mpirun waits for
/// ever for the daemon of a host that died without a word (its link cut
/// before the daemon's connection could close), although that host had
/// no rank left. It is then stopped, and the ranks' statuses are the job's
/// ([`LINGERED`]).
fn watch_ranks(job: &JobDir, n: u32, launcher: u32, done: &std::sync::atomic::AtomicBool) {
    use std::sync::atomic::Ordering;
    let Some(machine) = ferry_common::job::machine_id() else {
        return;
    };
    let alive = |pid: u32| {
        // SAFETY: signal 0 only checks that the process exists.
        unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
    };
    let stop = |why: String| {
        if done.load(Ordering::SeqCst) {
            return;
        }
        eprintln!("{why}");
        let Ok(target) = libc::pid_t::try_from(launcher) else {
            return;
        };
        // SAFETY: kill(2) on our own child, not reaped yet (the main
        // thread is in wait() until `done`).
        unsafe { libc::kill(target, libc::SIGTERM) };
        let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !done.load(Ordering::SeqCst) && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        if !done.load(Ordering::SeqCst) {
            // SAFETY: as above.
            unsafe { libc::kill(target, libc::SIGKILL) };
        }
    };
    let mut looks: std::collections::HashMap<(u32, u32), u32> = Default::default();
    let mut all_ended: Option<std::time::Instant> = None;
    while !done.load(Ordering::SeqCst) {
        std::thread::sleep(WATCH_EVERY);
        let ended = n > 0 && (0..n).all(|r| job.path().join(format!("rank-{r}.exit")).exists());
        match (ended, all_ended) {
            (false, _) => all_ended = None,
            (true, None) => all_ended = Some(std::time::Instant::now()),
            (true, Some(at)) if at.elapsed() >= LINGER => {
                LINGERED.store(true, Ordering::SeqCst);
                stop(format!(
                    "ferry: job {}: every rank ended {} s ago, the launcher has not (waiting for a \
                     daemon on a host that died: docs/host-loss.md); stopping it",
                    job.id(),
                    LINGER.as_secs()
                ));
                return;
            }
            (true, Some(_)) => {}
        }
        let Ok(ranks) = job.rank_statuses() else {
            continue;
        };
        let lost = lost_ranks(&ranks, &machine, alive);
        looks.retain(|k, _| lost.iter().any(|r| (r.rank, r.pid) == *k));
        let Some(gone) = lost.iter().find(|r| {
            let n = looks.entry((r.rank, r.pid)).or_insert(0);
            *n += 1;
            *n >= WATCH_LOOKS
        }) else {
            continue;
        };
        stop(format!(
            "ferry: rank {} (pid {} on {}) ended without MPI_Finalize; stopping job {}",
            gone.rank,
            gone.pid,
            gone.host,
            job.id()
        ));
        return;
    }
}

/// How long the launcher may outlive the last rank (see [`watch_ranks`]).
const LINGER: std::time::Duration = std::time::Duration::from_secs(10);

/// Set when [`watch_ranks`] stopped a launcher that outlived every rank.
static LINGERED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    fn env_of(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    #[test]
    fn rank_environment() {
        let fixed = [
            (fenv::FERRY_JOB, OsString::from("j-1-0")),
            (fenv::FERRY_MIGRATE, OsString::from("rank=1,after=2")),
        ];
        let inherited = env_of(&[
            ("PATH", "/bin"),
            ("FERRY_TEST_B", "2"),
            ("FERRY_MIGRATE", "stale"),
            ("FERRY_LOG", "debug"),
            ("FERRY_TEST_A", "1"),
        ]);
        let e = rank_env(
            Path::new("/l/libferry.so"),
            Some(OsStr::new("/u/x.so")),
            &fixed,
            inherited,
        );
        let keys: Vec<&str> = e.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "LD_PRELOAD",
                "FERRY_JOB",
                "FERRY_MIGRATE",
                "FERRY_LOG",
                "FERRY_TEST_A",
                "FERRY_TEST_B"
            ]
        );
        assert_eq!(e[0].1, "/l/libferry.so:/u/x.so");
        assert_eq!(e[2].1, "rank=1,after=2");
        let e = rank_env(Path::new("/l/libferry.so"), None, &[], Vec::new());
        assert_eq!(
            e,
            vec![("LD_PRELOAD".to_string(), OsString::from("/l/libferry.so"))]
        );
    }

    #[test]
    fn preload_of_the_user() {
        assert_eq!(user_preload(None), None);
        assert_eq!(
            user_preload(Some(OsStr::new("/t/release/libferry.so"))),
            None
        );
        assert_eq!(
            user_preload(Some(OsStr::new("/a/libx.so:/t/libferry.so /b/liby.so"))),
            Some(OsString::from("/a/libx.so:/b/liby.so"))
        );
    }

    fn plan(mpi: Mpi, hosts: Option<&[String]>, is_root: bool, set: &[&str]) -> LaunchPlan {
        let renv = vec![
            ("LD_PRELOAD".to_string(), OsString::from("/l/libferry.so")),
            ("FERRY_JOB".to_string(), OsString::from("j")),
        ];
        let cmd = os(&["./prog", "-v"]);
        let set: Vec<String> = set.iter().map(|s| s.to_string()).collect();
        build_plan(
            &PlanInput {
                mpi,
                launcher: Path::new("/bin/mpiexec"),
                n: 3,
                hosts,
                spare_hosts: &["d".to_string()],
                rank_env: &renv,
                command: &cmd,
                is_root,
            },
            move |k| set.iter().any(|s| s == k).then(|| OsString::from("user")),
        )
    }

    #[test]
    fn mpich_command_line() {
        let p = plan(Mpi::Mpich, None, true, &[]);
        assert_eq!(
            p.args,
            os(&[
                "-disable-auto-cleanup",
                "-genv",
                "MPIR_CVAR_NO_COLLECTIVE_FINALIZE",
                "1",
                "-genv",
                "LD_PRELOAD",
                "/l/libferry.so",
                "-genv",
                "FERRY_JOB",
                "j",
                "-n",
                "3",
                "./prog",
                "-v"
            ])
        );
        assert!(p.launcher_env.is_empty());
        // The user's own setting wins.
        let p = plan(
            Mpi::Mpich,
            None,
            true,
            &["MPIR_CVAR_NO_COLLECTIVE_FINALIZE"],
        );
        assert_eq!(
            p.args[..3],
            os(&["-disable-auto-cleanup", "-genv", "LD_PRELOAD"])[..]
        );
        let hosts = vec!["a".to_string(), "b".to_string()];
        let p = plan(Mpi::Mpich, Some(&hosts), false, &[]);
        assert_eq!(
            p.args[..9],
            os(&[
                "-disable-auto-cleanup",
                "-hosts",
                "a,b",
                "-genv",
                "MPIR_CVAR_NO_COLLECTIVE_FINALIZE",
                "1",
                "-genv",
                "MPIR_CVAR_CH4_NETMOD",
                "ofi"
            ])[..]
        );
        // Debian's MPICH 4.0.2 moves no rank: the launcher's default.
        let p = plan(Mpi::MpichDeb, Some(&hosts), false, &[]);
        assert_eq!(p.args[..2], os(&["-hosts", "a,b"])[..]);
    }

    #[test]
    fn the_first_failed_rank_gives_the_status() {
        let dir = std::env::temp_dir().join(format!("ferry-exit-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(first_failed_rank(&dir), None);
        std::fs::write(dir.join("rank-0.exit"), "0\n").unwrap();
        assert_eq!(first_failed_rank(&dir), None);
        std::fs::write(dir.join("rank-3.exit"), "3\n").unwrap();
        std::fs::write(dir.join("rank-2.exit"), "7\n").unwrap();
        std::fs::write(dir.join("rank-1.json"), "{}").unwrap();
        assert_eq!(first_failed_rank(&dir), Some((2, 7)));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn every_rank_must_have_succeeded() {
        let dir = std::env::temp_dir().join(format!("ferry-ok-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(!every_rank_succeeded(&dir, 0));
        assert!(!every_rank_succeeded(&dir, 2));
        std::fs::write(dir.join("rank-0.exit"), "0\n").unwrap();
        assert!(!every_rank_succeeded(&dir, 2)); // rank 1 recorded nothing
        std::fs::write(dir.join("rank-1.exit"), "3\n").unwrap();
        assert!(!every_rank_succeeded(&dir, 2));
        std::fs::write(dir.join("rank-1.exit"), "0\n").unwrap();
        assert!(every_rank_succeeded(&dir, 2));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn lost_ranks_are_those_gone_here_unfinished() {
        let st = |rank: u32, pid: u32, state: &str, machine: Option<&str>| {
            let mut s = RankStatus::new(rank, "h", pid, 0, 0);
            s.state = Some(state.to_string());
            s.machine = machine.map(str::to_string);
            s
        };
        let ranks = [
            st(0, 10, "running", Some("m")),      // alive
            st(1, 11, "running", Some("m")),      // gone: lost
            st(2, 12, "finalized", Some("m")),    // gone, but ended normally
            st(3, 13, "checkpointed", Some("m")), // likewise
            st(4, 14, "running", Some("other")),  // another machine: not ours to check
            st(5, 15, "running", None),           // machine unknown
        ];
        let lost = lost_ranks(&ranks, "m", |pid| pid == 10);
        assert_eq!(lost.iter().map(|r| r.rank).collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn openmpi_command_line() {
        let hosts = vec!["a".to_string(), "b".to_string()];
        let p = plan(Mpi::Openmpi, Some(&hosts), true, &["OMPI_MCA_btl"]);
        assert_eq!(
            p.args,
            os(&[
                "--oversubscribe",
                "--enable-recovery",
                "--host",
                "a:2,b:1,d:0",
                "--map-by",
                "node",
                "-x",
                "LD_PRELOAD=/l/libferry.so",
                "-x",
                "FERRY_JOB=j",
                "-n",
                "3",
                "./prog",
                "-v"
            ])
        );
        let keys: Vec<&str> = p.launcher_env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "OMPI_ALLOW_RUN_AS_ROOT",
                "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM",
                "OMPI_MCA_rmaps_base_oversubscribe",
                "OMPI_MCA_osc",
                "OMPI_MCA_async_mpi_finalize",
                "OMPI_MCA_plm_rsh_no_tree_spawn",
                "OMPI_MCA_oob_tcp_keepalive_time",
                "OMPI_MCA_oob_tcp_keepalive_intvl",
                "OMPI_MCA_oob_tcp_keepalive_probes"
            ]
        );
        let p = plan(Mpi::Openmpi, None, false, &[]);
        let keys: Vec<&str> = p.launcher_env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "OMPI_MCA_rmaps_base_oversubscribe",
                "OMPI_MCA_btl",
                "OMPI_MCA_osc",
                "OMPI_MCA_async_mpi_finalize"
            ]
        );
    }

    #[test]
    fn openmpi_host_slots() {
        let s = |v: &[&str]| v.iter().map(|h| h.to_string()).collect::<Vec<_>>();
        assert_eq!(openmpi_hosts(&s(&["a", "b", "c"]), &[], 3), "a:1,b:1,c:1");
        assert_eq!(openmpi_hosts(&s(&["a", "b", "c"]), &[], 2), "a:1,b:1,c:0");
        assert_eq!(
            openmpi_hosts(&s(&["a", "b", "a"]), &s(&["b", "d"]), 5),
            "a:3,b:2,d:0"
        );
    }

    #[test]
    fn openmpi_spare_hosts_need_a_host_per_rank() {
        let s = |v: &[&str]| v.iter().map(|h| h.to_string()).collect::<Vec<_>>();
        assert!(openmpi_hosts_supported(&s(&["a", "b"]), &s(&["c"]), 2).is_ok());
        assert!(openmpi_hosts_supported(&s(&["a", "b"]), &s(&["a"]), 3).is_ok());
        assert!(openmpi_hosts_supported(&s(&["a", "b"]), &[], 3).is_ok());
        let e = openmpi_hosts_supported(&s(&["a", "b"]), &s(&["c"]), 3).unwrap_err();
        assert!(
            e.contains("3 ranks on 2 host(s)") && e.contains("(c)"),
            "{e}"
        );
    }

    #[test]
    fn library_candidates() {
        let c = lib_candidates(Path::new("/r/target/openmpi/release"), Mpi::Mpich);
        assert_eq!(c[0], Path::new("/r/target/mpich/release/libferry.so"));
        assert_eq!(c[1], Path::new("/r/target/openmpi/release/libferry.so"));
        let c = lib_candidates(Path::new("/r/target/mpich/release"), Mpi::Mpich);
        assert_eq!(c, [Path::new("/r/target/mpich/release/libferry.so")]);
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote(OsStr::new("-genv")), "-genv");
        assert_eq!(
            shell_quote(OsStr::new("rank=1,after=2;rank=0,after=1")),
            "'rank=1,after=2;rank=0,after=1'"
        );
        assert_eq!(shell_quote(OsStr::new("it's")), "'it'\\''s'");
        assert_eq!(shell_quote(OsStr::new("")), "''");
    }
}
