//! `ferry`: run MPI jobs under libferry.so, ask a running job to migrate a
//! rank, show a job's status and report its event log.

mod evacuate;
mod jobs;
mod report;
mod run;
mod svg;
mod table;

use clap::{Parser, Subcommand, ValueEnum};
use ferry_common::spec::{check_host, parse_checkpoint_spec, parse_spec, CheckpointSpec, OpSpec};
use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

/// Exit status of `ferry` for a usage error (bad SPEC, bad option value).
pub const EXIT_USAGE: i32 = 2;
/// Exit status of `ferry` for any other failure of its own.
pub const EXIT_FAILURE: i32 = 1;

/// A failure of `ferry` itself: printed as `ferry: error: <message>`.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Self {
        Failure {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }

    pub fn other(message: impl Into<String>) -> Self {
        Failure {
            code: EXIT_FAILURE,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<ferry_common::job::JobError> for Failure {
    fn from(e: ferry_common::job::JobError) -> Self {
        Failure::other(e.to_string())
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "ferry",
    version,
    about = "Live migration of MPI ranks: run jobs under libferry.so, migrate ranks, report events",
    after_help = "SPEC is rank=R,after=K[,to=HOST]: rank R starts the operation right after its K-th MPI call."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run PROGRAM under the MPI's mpiexec with libferry.so preloaded in every rank
    Run(RunArgs),
    /// Restart a job from a checkpoint directory
    Restart {
        /// Checkpoint directory written by `ferry run --checkpoint`
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Ask a running job to migrate one of its ranks (or several, in one
    /// synchronization)
    Migrate {
        /// Job id printed by `ferry run` (or the job directory's path)
        #[arg(long, value_name = "JOB")]
        job: String,
        /// Rank (in MPI_COMM_WORLD) to migrate; several (`1,3` or the
        /// option repeated) move together: one freeze, one spawn, one new
        /// group
        #[arg(long, value_name = "R", value_delimiter = ',', required = true)]
        rank: Vec<u32>,
        /// Target host (default: the rank's own host)
        #[arg(long, value_name = "HOST", value_parser = parse_host)]
        to: Option<String>,
        /// Return once the request is delivered, without waiting for the
        /// migration to finish
        #[arg(long)]
        no_wait: bool,
        /// Seconds to wait for the migration to finish
        #[arg(long, value_name = "S", default_value_t = 120)]
        timeout: u64,
    },
    /// Move every rank of a host to other hosts, so that the host can be
    /// taken down while the job goes on. Exit status: 0 every rank moved,
    /// 3 some could not (the report says why), 2 refused before anything
    /// moved.
    Evacuate {
        /// Job id printed by `ferry run` (or the job directory's path)
        #[arg(long, value_name = "JOB")]
        job: String,
        /// The host to empty
        #[arg(long, value_name = "H", value_parser = parse_host)]
        host: String,
        /// Hosts to move the ranks to, spread evenly (default: the job's
        /// other hosts, spare ones included)
        #[arg(long, value_name = "H2,H3..", value_delimiter = ',', value_parser = parse_host)]
        to: Vec<String>,
        /// Seconds for the whole evacuation
        #[arg(long, value_name = "S", default_value_t = 300)]
        timeout: u64,
        /// Print where each rank would go, move nothing
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
    },
    /// Show a job's ranks as reported by the library
    Status {
        /// Job id printed by `ferry run` (or the job directory's path)
        #[arg(long, value_name = "JOB")]
        job: String,
    },
    /// Print a table of an event log and optionally draw a timeline SVG
    Report {
        /// Event log (JSON lines) written by the library
        #[arg(value_name = "EVENTS.jsonl")]
        events: PathBuf,
        /// Write a timeline of the events' phases to this SVG file
        #[arg(long, value_name = "OUT.svg")]
        svg: Option<PathBuf>,
    },
}

/// The MPI implementations ferry is built for.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mpi {
    /// MPICH 5.0.2 of the pip wheel under $FERRY_PREFIX/mpich
    Mpich,
    /// Debian's Open MPI 4.1.4
    Openmpi,
    /// Debian's MPICH 4.0.2 (/usr/bin/mpiexec.mpich; its spawn fails: no migration)
    MpichDeb,
}

impl Mpi {
    pub fn as_str(self) -> &'static str {
        match self {
            Mpi::Mpich => "mpich",
            Mpi::Openmpi => "openmpi",
            Mpi::MpichDeb => "mpich-deb",
        }
    }

    /// Whether a job on this MPI can move ranks, and so must outlive a
    /// replacement process lost during a migration (the launcher is told
    /// not to end the job when one of its processes dies; `ferry run`
    /// watches the ranks instead). Debian's MPICH 4.0.2 cannot spawn.
    pub fn survives_lost_processes(self) -> bool {
        !matches!(self, Mpi::MpichDeb)
    }

    pub fn parse(s: &str) -> Option<Mpi> {
        match s.trim() {
            "mpich" => Some(Mpi::Mpich),
            "openmpi" => Some(Mpi::Openmpi),
            "mpich-deb" => Some(Mpi::MpichDeb),
            _ => None,
        }
    }
}

/// A `--hosts H1,H2,..` list: the hosts the ranks start on, and the spare
/// hosts (`H:0`) where no rank starts but ranks may move to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostList {
    pub ranks: Vec<String>,
    pub spare: Vec<String>,
}

#[derive(clap::Args, Debug)]
#[command(
    override_usage = "ferry run [OPTIONS] -- PROGRAM [ARGS]...",
    after_help = "Examples:\n  ferry run -n 4 --migrate rank=2,after=1000 -- ./solver input.dat\n  ferry run --mpi openmpi --regroup rank=0,after=50 --events ev.jsonl -- ./a.out"
)]
pub struct RunArgs {
    /// MPI to run under (default: $FERRY_MPI, else mpich)
    #[arg(long, value_enum, value_name = "MPI")]
    pub mpi: Option<Mpi>,
    /// Number of ranks
    #[arg(short = 'n', value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub n: u32,
    /// Hosts to spread the ranks over, round-robin (H:0: no rank starts
    /// there, ranks may move to it; needed by Open MPI for `ferry migrate
    /// --to H`)
    #[arg(long, value_name = "H1,H2,..", value_parser = parse_hosts)]
    pub hosts: Option<HostList>,
    /// Migrate a rank: rank=R,after=K[,to=HOST] (repeatable)
    #[arg(long = "migrate", value_name = "SPEC", value_parser = parse_migrate_spec)]
    pub migrate: Vec<OpSpec>,
    /// Regroup without moving: rank=R,after=K (repeatable)
    #[arg(long = "regroup", value_name = "SPEC", value_parser = parse_regroup_spec)]
    pub regroup: Vec<OpSpec>,
    /// Append the event log here (default: events.jsonl in the job directory)
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,
    /// Checkpoint the job: after=K,dir=DIR
    #[arg(long, value_name = "after=K,dir=DIR", value_parser = parse_checkpoint)]
    pub checkpoint: Option<CheckpointSpec>,
    /// The MPI program and its arguments (after `--`)
    #[arg(value_name = "PROGRAM", required = true, num_args = 1.., trailing_var_arg = true)]
    pub command: Vec<OsString>,
    /// Set by `ferry restart`: the checkpoint directory the ranks resume from.
    #[arg(skip)]
    pub restart: Option<PathBuf>,
}

fn parse_migrate_spec(s: &str) -> Result<OpSpec, String> {
    parse_spec(s).map_err(|e| e.to_string())
}

fn parse_regroup_spec(s: &str) -> Result<OpSpec, String> {
    let spec = parse_spec(s).map_err(|e| e.to_string())?;
    if spec.to.is_some() {
        return Err(format!(
            "invalid SPEC {s:?}: to= does not apply to a regroup (expected rank=R,after=K)"
        ));
    }
    Ok(spec)
}

fn parse_checkpoint(s: &str) -> Result<CheckpointSpec, String> {
    parse_checkpoint_spec(s).map_err(|e| e.to_string())
}

fn parse_host(s: &str) -> Result<String, String> {
    let h = s.trim();
    check_host(h)?;
    Ok(h.to_string())
}

fn parse_hosts(s: &str) -> Result<HostList, String> {
    let mut list = HostList {
        ranks: Vec::new(),
        spare: Vec::new(),
    };
    for h in s.split(',').map(str::trim).filter(|h| !h.is_empty()) {
        match h.strip_suffix(":0") {
            Some(spare) => {
                check_host(spare)?;
                list.spare.push(spare.to_string());
            }
            None => {
                check_host(h)?;
                list.ranks.push(h.to_string());
            }
        }
    }
    if list.ranks.is_empty() {
        return Err(format!(
            "no host for the ranks in {s:?} (expected H1,H2,.., spare hosts as H:0)"
        ));
    }
    Ok(list)
}

fn main() {
    ferry_common::logging::init("ferry", log::LevelFilter::Warn);
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Restart { dir } => jobs::restart(&dir),
        Command::Migrate {
            job,
            rank,
            to,
            no_wait,
            timeout,
        } => jobs::migrate(&job, &rank, to, !no_wait, timeout),
        Command::Evacuate {
            job,
            host,
            to,
            timeout,
            dry_run,
            json,
        } => evacuate::evacuate(&evacuate::Request {
            job,
            host,
            to,
            timeout,
            dry_run,
            json,
        }),
        Command::Status { job } => jobs::status(&job),
        Command::Report { events, svg } => report::report(&events, svg.as_deref()),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(f) => {
            eprintln!("ferry: error: {f}");
            std::process::exit(f.code);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("ferry").chain(args.iter().copied()))
    }

    #[test]
    fn run_arguments() {
        let cli = parse(&[
            "run",
            "--mpi",
            "openmpi",
            "-n",
            "4",
            "--hosts",
            "a, b",
            "--migrate",
            "rank=1,after=2",
            "--migrate",
            "rank=3,after=9,to=b",
            "--regroup",
            "rank=0,after=1",
            "--events",
            "e.jsonl",
            "--checkpoint",
            "after=5,dir=/ck",
            "--",
            "./prog",
            "-x",
            "--y",
        ])
        .unwrap();
        let Command::Run(r) = cli.command else {
            panic!()
        };
        assert_eq!(r.mpi, Some(Mpi::Openmpi));
        assert_eq!(r.n, 4);
        assert_eq!(
            r.hosts,
            Some(HostList {
                ranks: vec!["a".into(), "b".into()],
                spare: vec![]
            })
        );
        assert_eq!(
            parse_hosts("a, c:0,b"),
            Ok(HostList {
                ranks: vec!["a".into(), "b".into()],
                spare: vec!["c".into()]
            })
        );
        assert_eq!(r.migrate.len(), 2);
        assert_eq!(r.migrate[1].to.as_deref(), Some("b"));
        assert_eq!(r.regroup[0].after, 1);
        assert_eq!(r.checkpoint.unwrap().dir, "/ck");
        assert_eq!(r.command, vec!["./prog", "-x", "--y"]);
    }

    #[test]
    fn run_defaults_and_program_without_dashes() {
        let cli = parse(&["run", "./prog", "-n", "3"]).unwrap();
        let Command::Run(r) = cli.command else {
            panic!()
        };
        assert_eq!(r.n, 2);
        assert_eq!(r.mpi, None);
        assert_eq!(r.command, vec!["./prog", "-n", "3"]);
    }

    #[test]
    fn run_refusals() {
        let e = parse(&["run", "--migrate", "rank=1", "--", "p"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.to_string()
                .contains("invalid SPEC \"rank=1\": after= is missing"),
            "{e}"
        );
        let e = parse(&["run", "--regroup", "rank=1,after=2,to=h", "--", "p"]).unwrap_err();
        assert!(
            e.to_string().contains("to= does not apply to a regroup"),
            "{e}"
        );
        assert!(parse(&["run", "-n", "0", "--", "p"]).is_err());
        assert!(parse(&["run", "--mpi", "lam", "--", "p"]).is_err());
        assert!(parse(&["run", "--hosts", ",", "--", "p"]).is_err());
        assert!(parse(&["run", "--hosts", "a:0", "--", "p"]).is_err());
        assert!(parse(&["run", "--hosts", "a,b:1", "--", "p"]).is_err());
        assert!(parse(&["run", "--checkpoint", "after=1", "--", "p"]).is_err());
        assert!(parse(&["run", "-n", "2"]).is_err(), "PROGRAM is required");
    }

    #[test]
    fn other_subcommands() {
        let cli = parse(&["migrate", "--job", "j-1-ab", "--rank", "3", "--to", "h2"]).unwrap();
        assert!(matches!(cli.command, Command::Migrate { ref rank, .. } if rank == &[3]));
        assert!(parse(&["migrate", "--job", "j", "--rank", "-1"]).is_err());
        assert!(parse(&["migrate", "--job", "j", "--rank", "1", "--to", "a b"]).is_err());
        assert!(parse(&["status", "--job", "j"]).is_ok());
        assert!(parse(&["status"]).is_err());
        assert!(parse(&["report", "ev.jsonl", "--svg", "o.svg"]).is_ok());
        assert!(parse(&["restart", "/ck"]).is_ok());
    }
}
