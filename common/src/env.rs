//! Environment variables shared by the `ferry` CLI and `libferry.so`.
//!
//! The CLI sets the first group in every rank's environment; the library
//! reads them. All names live here so the two sides cannot drift apart.

use crate::spec::{
    parse_checkpoint_spec, parse_spec_list, CheckpointSpec, OpKind, Operation, SpecError,
};

/// Id of the job (the name of its directory under the job root).
pub const FERRY_JOB: &str = "FERRY_JOB";
/// Absolute path of the job directory (`job.json`, `rank-<R>.json`, ...).
pub const FERRY_JOB_DIR: &str = "FERRY_JOB_DIR";
/// File the event log is appended to (JSON lines).
pub const FERRY_EVENTS: &str = "FERRY_EVENTS";
/// `;`-separated migrate SPECs `rank=R,after=K[,to=HOST]`.
pub const FERRY_MIGRATE: &str = "FERRY_MIGRATE";
/// `;`-separated regroup SPECs `rank=R,after=K`.
pub const FERRY_REGROUP: &str = "FERRY_REGROUP";
/// Checkpoint SPEC `after=K,dir=DIR`.
pub const FERRY_CHECKPOINT: &str = "FERRY_CHECKPOINT";
/// `1` turns the process image on (the program's memory at fixed
/// addresses, so that it can be checkpointed or moved).
pub const FERRY_IMAGE: &str = "FERRY_IMAGE";
/// What a moved rank's old process does once the rank lives on in its
/// replacement: `leave` (the default: it finalizes and exits at once, so
/// that its host may be taken down) or `stay` (it sleeps until the job
/// ends, as ferry did before it could leave).
pub const FERRY_OLD_PROCESS: &str = "FERRY_OLD_PROCESS";
/// Set by `ferry restart`: the checkpoint directory each rank resumes from.
pub const FERRY_RESTART: &str = "FERRY_RESTART";
/// Log level: `error`, `warn`, `info`, `debug` or `trace` (also `off`).
pub const FERRY_LOG: &str = "FERRY_LOG";
/// Comma-separated host list given to `ferry run --hosts`.
pub const FERRY_HOSTS: &str = "FERRY_HOSTS";

/// CLI side only: which MPI `ferry run` uses when `--mpi` is not given.
pub const FERRY_MPI: &str = "FERRY_MPI";
/// CLI side only: the launcher (`mpiexec`) to run instead of the default.
pub const FERRY_MPIEXEC: &str = "FERRY_MPIEXEC";
/// CLI side only: the `libferry.so` to preload instead of the default.
pub const FERRY_LIB: &str = "FERRY_LIB";
/// CLI side only: install prefix of the MPICH venv etc. (default `/opt/ferry`).
pub const FERRY_PREFIX: &str = "FERRY_PREFIX";
/// Where job directories are created (default `${XDG_RUNTIME_DIR:-/tmp}/ferry-<uid>`).
pub const FERRY_JOB_ROOT: &str = "FERRY_JOB_ROOT";

/// Default of [`FERRY_PREFIX`].
pub const DEFAULT_PREFIX: &str = "/opt/ferry";

/// Reads a variable; unset, empty and non-UTF-8 values count as absent.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Every migrate and regroup operation asked for through
/// `FERRY_MIGRATE` / `FERRY_REGROUP`, migrations first.
pub fn operations_from_env() -> Result<Vec<Operation>, SpecError> {
    operations_from(var)
}

/// Same as [`operations_from_env`] with a custom lookup (for tests).
pub fn operations_from(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Vec<Operation>, SpecError> {
    let mut ops = Vec::new();
    for kind in OpKind::ALL {
        if let Some(list) = lookup(kind.env_var()) {
            for spec in parse_spec_list(&list)? {
                ops.push(Operation { kind, spec });
            }
        }
    }
    Ok(ops)
}

/// The checkpoint asked for through `FERRY_CHECKPOINT`, if any.
pub fn checkpoint_from_env() -> Result<Option<CheckpointSpec>, SpecError> {
    var(FERRY_CHECKPOINT)
        .map(|s| parse_checkpoint_spec(&s))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::OpSpec;

    #[test]
    fn operations_from_lookup() {
        let ops = operations_from(|n| match n {
            "FERRY_MIGRATE" => Some("rank=1,after=5;rank=0,after=9,to=h".into()),
            "FERRY_REGROUP" => Some("rank=1,after=2".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            ops,
            vec![
                Operation {
                    kind: OpKind::Migrate,
                    spec: OpSpec {
                        rank: 1,
                        after: 5,
                        to: None
                    }
                },
                Operation {
                    kind: OpKind::Migrate,
                    spec: OpSpec {
                        rank: 0,
                        after: 9,
                        to: Some("h".into())
                    }
                },
                Operation {
                    kind: OpKind::Regroup,
                    spec: OpSpec {
                        rank: 1,
                        after: 2,
                        to: None
                    }
                },
            ]
        );
        assert!(operations_from(|_| None).unwrap().is_empty());
        assert!(operations_from(|n| (n == "FERRY_REGROUP").then(|| "rank=1".to_string())).is_err());
    }
}
