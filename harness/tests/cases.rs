//! Every test program × MPI × mode a named test (see the crate's docs):
//! `cargo test --release -p ferry-tests -- [FILTER] [--list] [--exact]`.
//!
//! Cases outside CI's matrix ([`Case::in_ci`]) and modes that do not apply
//! to a program or an MPI are listed as ignored; `FERRY_TEST_FULL=1` runs
//! the whole matrix. `FERRY_TEST_SEED` fixes the draws, `FERRY_TEST_RETRIES`
//! runs a failed case again (a pass on a retry is said and listed in
//! `target/ferry-tests/flaky.txt`), `FERRY_TEST_TIMEOUT` limits each run.
use ferry_tests::modes::{Case, Mode};
use ferry_tests::{draw, mpi, program, suite};
use libtest_mimic::{Arguments, Failed, Trial};
use std::collections::HashMap;
use std::sync::Arc;

fn main() {
    let mut args = Arguments::from_args();
    // MPI jobs on a small machine: one at a time unless asked.
    if args.test_threads.is_none() {
        args.test_threads = Some(1);
    }
    let seed = draw::seed();
    let full = std::env::var("FERRY_TEST_FULL").is_ok_and(|v| v == "1");
    let programs = match program::all() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("ferry-tests: {e}");
            std::process::exit(2);
        }
    };
    let mpis: HashMap<&str, Result<Arc<mpi::Mpi>, String>> = mpi::ALL
        .iter()
        .map(|m| (*m, mpi::Mpi::load(m).map(Arc::new)))
        .collect();
    if !args.list {
        println!("ferry-tests: seed {seed} (FERRY_TEST_SEED={seed} replays this run's draws)");
    }
    let mut trials = Vec::new();
    for mode in Mode::ALL {
        for p in &programs {
            for m in mpi::ALL {
                let case = Case {
                    mode: *mode,
                    program: p.clone(),
                    mpi: m.to_string(),
                };
                let name = case.name();
                let (skip, in_ci) = (case.skip(), case.in_ci());
                let ignored = skip.is_some() || !(full || in_ci);
                let mpi = mpis[m].clone();
                let kind = if p.lang == program::Lang::C {
                    "c"
                } else {
                    "fortran"
                };
                let trial = Trial::test(name, move || {
                    if let Some(why) = skip {
                        println!("    (does not apply: {why})");
                        return Ok(());
                    }
                    let mpi = mpi.map_err(Failed::from)?;
                    match case.run(&mpi, seed) {
                        Ok(pass) => {
                            println!("    {pass}");
                            Ok(())
                        }
                        Err(e) => Err(Failed::from(e)),
                    }
                });
                trials.push(trial.with_kind(kind).with_ignored_flag(ignored));
            }
        }
    }
    trials.extend(ferry_tests::standalone::trials(&mpis, &programs, seed));
    // MPICH's own test suite, where it is built (scripts/mpich-suite.sh).
    for m in mpi::ALL {
        let tests = suite::tests(m);
        let index = suite::index_in_dir(&tests);
        for mode in suite::MODES {
            for (t, &i) in tests.iter().zip(&index) {
                let name = suite::case_name(*mode, t, m);
                let ignored = !t.launcher_args.is_empty()
                    || !(full || suite::in_ci(*mode, m, i))
                    || mode.not_on(m).is_some();
                let (mpi, t, mode) = (mpis[m].clone(), t.clone(), *mode);
                let trial = Trial::test(name, move || {
                    if !t.launcher_args.is_empty() {
                        println!("    (does not apply: it needs launcher arguments)");
                        return Ok(());
                    }
                    let mpi = mpi.map_err(Failed::from)?;
                    match suite::run(&mpi, &t, mode, seed) {
                        Ok(pass) => {
                            println!("    {pass}");
                            Ok(())
                        }
                        Err(e) => Err(Failed::from(e)),
                    }
                });
                trials.push(trial.with_kind("suite").with_ignored_flag(ignored));
            }
        }
    }
    trials.extend(ferry_tests::hosts::trials(&mpis, full));
    libtest_mimic::run(&args, trials).exit();
}
