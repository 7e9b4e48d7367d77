//! Pieces shared by the `ferry` command-line tool and `libferry.so`.
//!
//! Pure Rust, no MPI, no threads, few dependencies: this crate is linked
//! into the interposition library that is preloaded into every MPI rank.
//!
//! - [`spec`]: `rank=R,after=K[,to=HOST]` and `after=K,dir=DIR` SPECs.
//! - [`events`]: the JSON-lines event log (record, writer, reader).
//! - [`job`]: the job directory (`job.json`, `rank-<R>.json`, requests).
//! - [`env`](mod@env): names of the environment variables between CLI and library.
//! - [`logging`]: a small stderr backend for the `log` crate (`FERRY_LOG`).
//! - [`time`]: Unix-millisecond clock and UTC formatting.

pub mod env;
pub mod events;
pub mod job;
pub mod logging;
pub mod spec;
pub mod time;

pub use events::{Event, EventKind, Phases};
pub use job::{JobDir, JobMeta, MigrateRequest, RankStatus};
pub use spec::{CheckpointSpec, OpKind, OpSpec, Operation, SpecError};
