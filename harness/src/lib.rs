//! ferry's test harness: the test programs, crossed with the MPIs and the
//! modes, each a named test (`MODE::PROGRAM::MPI`) run by
//! [`libtest_mimic`] from `tests/cases.rs`:
//!
//! ```sh
//! cargo test --release -p ferry-tests -- --list            # every case
//! cargo test --release -p ferry-tests -- migrate1::ring::mpich
//! FERRY_TEST_SEED=42 cargo test --release -p ferry-tests -- regroup20::
//! ```
//!
//! No MPI is linked here: the harness drives `mpicc`, `mpiexec` and
//! `ferry` as processes, and reads what the library leaves behind (the
//! event log, the job directory) through `ferry_common`'s own types.
//!
//! | module | what |
//! |---|---|
//! | [`mpi`] | the MPIs: their compilers, launchers and ferry builds (from `scripts/mpi-env.sh`) |
//! | [`program`] | the test programs (C and Fortran) and what their headers expect |
//! | [`job`] | one run of a program, plain or under `ferry run`, and what it left |
//! | [`draw`] | the seeded draws (SPECs, checkpoint points), replayable |
//! | [`modes`] | the modes and their checks |
//! | [`suite`] | MPICH's own test suite as cases |
//! | [`restart`], [`cli`], [`standalone`] | checkpoint/restart at fixed calls and damaged images; the `ferry` command's migrations and refusals; cases not crossed with the modes |
//! | [`broken`] | the harness against a deliberately broken library (`FERRY_TEST_BREAK`): a case must fail |
//! | [`apps`] | real applications from Debian's packages (GROMACS), plainly and with a rank moved (`apps::NAME::MPI`) |
//! | [`mpi4py`] | mpi4py's own test suite, without and with the library (`mpi4py::MODE::npN::MPI`) |
//! | [`hosts`] | migration between hosts on a cluster of network namespaces (`hosts::NAME::MPI`) |
pub mod apps;
pub mod broken;
pub mod cli;
pub mod draw;
pub mod hosts;
pub mod job;
pub mod modes;
pub mod mpi;
pub mod mpi4py;
pub mod program;
pub mod restart;
pub mod standalone;
pub mod suite;

use std::path::PathBuf;

/// The repository's root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the harness lives in the repository")
        .to_path_buf()
}

/// Where the harness writes: `target/ferry-tests/`.
pub fn out_dir() -> PathBuf {
    root().join("target").join("ferry-tests")
}
