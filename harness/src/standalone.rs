//! The cases that are not a program crossed with a mode: checkpoint and
//! restart at fixed calls with damaged images ([`crate::restart`]), the
//! `ferry` command's ways to migrate ([`crate::cli`]), and the regroup
//! `c-tests/signal.c` asks for with SIGUSR2 ([`Mode::Signal`]), and the
//! harness against a deliberately broken library ([`crate::broken`]), as
//! trials for `tests/cases.rs`.
use crate::modes::{Case, Mode};
use crate::mpi::Mpi;
use crate::{cli, program, restart};
use libtest_mimic::{Failed, Trial};
use std::collections::HashMap;
use std::sync::Arc;

/// The MPIs, loaded (or why not), by name, as `tests/cases.rs` has them.
pub type Mpis<'a> = HashMap<&'a str, Result<Arc<Mpi>, String>>;

/// What a case runs, on its MPI: `Ok`, what passed.
type Body = Box<dyn FnOnce(&Mpi) -> Result<String, String> + Send>;

/// Every standalone case on the MPIs of `mpis` that it applies to; all in
/// CI's matrix (`full` changes nothing).
pub fn trials(mpis: &Mpis, programs: &[program::Program], seed: u64) -> Vec<Trial> {
    let mut trials = Vec::new();
    let trial = |name: String, kind: &str, mpi: &Result<Arc<Mpi>, String>, run: Body| {
        let mpi = mpi.clone();
        Trial::test(name, move || {
            let mpi = mpi.map_err(Failed::from)?;
            let pass = run(&mpi).map_err(Failed::from)?;
            println!("    {pass}");
            Ok(())
        })
        .with_kind(kind)
    };
    for m in restart::MPIS {
        let Some(mpi) = mpis.get(m) else { continue };
        for check in restart::CHECKS {
            let check = *check;
            trials.push(trial(
                restart::case_name(&check, m),
                "restart",
                mpi,
                Box::new(move |mpi| restart::run(mpi, check, seed)),
            ));
        }
    }
    for m in cli::MPIS {
        let Some(mpi) = mpis.get(m) else { continue };
        for check in cli::CHECKS {
            trials.push(trial(
                cli::case_name(check, m),
                "cli",
                mpi,
                Box::new(move |mpi| cli::run(mpi, check, seed)),
            ));
        }
    }
    if let Some(signal) = programs.iter().find(|p| p.name == "signal") {
        for m in ["mpich", "openmpi"] {
            let Some(mpi) = mpis.get(m) else { continue };
            let case = Case {
                mode: Mode::Signal,
                program: signal.clone(),
                mpi: m.to_string(),
            };
            trials.push(trial(
                case.name(),
                "c",
                mpi,
                Box::new(move |mpi| case.run(mpi, seed)),
            ));
        }
    }
    for (app, m) in crate::apps::CASES {
        let Some(mpi) = mpis.get(m) else { continue };
        let app = *app;
        trials.push(trial(
            crate::apps::case_name(app, m),
            "app",
            mpi,
            Box::new(move |mpi| crate::apps::run(mpi, app)),
        ));
    }
    for m in crate::mpi4py::MPIS {
        let Some(mpi) = mpis.get(m) else { continue };
        for mode in crate::mpi4py::MODES {
            for np in crate::mpi4py::RANKS {
                let (mode, np) = (*mode, *np);
                trials.push(trial(
                    crate::mpi4py::case_name(mode, np, m),
                    "mpi4py",
                    mpi,
                    Box::new(move |mpi| crate::mpi4py::run(mpi, mode, np)),
                ));
            }
        }
    }
    for m in crate::broken::MPIS {
        let Some(mpi) = mpis.get(m) else { continue };
        for (brk, case) in crate::broken::CASES {
            trials.push(
                trial(
                    crate::broken::case_name(brk, case, m),
                    "broken",
                    mpi,
                    Box::new(move |mpi| crate::broken::run(mpi, brk, case, seed)),
                )
                .with_ignored_flag(!crate::broken::in_ci(m)),
            );
        }
    }
    trials
}
