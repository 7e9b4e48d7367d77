//! Real applications from Debian's packages under ferry (formerly
//! `scripts/app-gromacs.sh`): cases `apps::NAME::MPI`.
//!
//! | case | run | passes when |
//! |---|---|---|
//! | `gromacs` (Open MPI) | Debian's GROMACS 2022.5 (`gmx_mpi`) on a 3 nm box of SPC water (884 molecules, energy-minimized), 1,000 MD steps with PME, `mdrun -ntomp 1 -reprod -dlb no -npme 0`, 4 ranks; plainly, then under `ferry run --migrate rank=1,after=5000` | one `migrate` event; both runs finished; the energies printed at step 1,000 identical (`-reprod` makes them reproducible) |
//!
//! The system is prepared once (`gmx solvate`, `grompp`, a one-thread
//! energy minimization) in `target/ferry-tests/MPI/apps/gromacs/`, and the
//! plain run is kept there once it finished; `scripts/setup.sh` installs
//! the package.
use crate::job::{self, Launch};
use crate::modes::with_retries;
use crate::mpi::Mpi;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The applications, and the MPI each runs on (Debian builds them against
/// Open MPI).
pub const CASES: &[(&str, &str)] = &[("gromacs", "openmpi")];

/// `apps::NAME::MPI`.
pub fn case_name(app: &str, mpi: &str) -> String {
    format!("apps::{app}::{mpi}")
}

/// Runs one case (with retries). `Ok`: what passed.
pub fn run(mpi: &Mpi, app: &str) -> Result<String, String> {
    with_retries(&case_name(app, &mpi.name), None, || match app {
        "gromacs" => gromacs(mpi),
        other => Err(format!("no application {other}")),
    })
}

const STEPS: u32 = 1000;
const RANKS: u32 = 4;
/// When rank 1 moves (its MPI calls): about half-way through the steps.
const MIGRATE: &str = "rank=1,after=5000";

/// The environment of every `gmx` command.
fn gmx_env() -> [(String, String); 2] {
    [
        ("GMX_MAXBACKUP".into(), "-1".into()),
        ("OMP_NUM_THREADS".into(), "1".into()),
    ]
}

/// Runs `gmx ARGS` in `dir` (its output to `dir/LOG`); fails with the
/// output's end.
fn gmx(dir: &Path, log: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new("gmx")
        .args(args)
        .envs(gmx_env())
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run gmx (scripts/setup.sh installs gromacs): {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::write(dir.join(log), &text);
    if out.status.success() {
        Ok(())
    } else {
        let tail: Vec<&str> = text.lines().rev().take(12).collect();
        Err(format!(
            "gmx {} failed ({}):\n{}",
            args.first().unwrap_or(&""),
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ))
    }
}

/// The system and its run input, made once: `md-STEPS.tpr` in `dir`.
fn prepare(dir: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !dir.join("em.gro").is_file() {
        std::fs::write(
            dir.join("topol.top"),
            "#include \"oplsaa.ff/forcefield.itp\"\n#include \"oplsaa.ff/spc.itp\"\n[ system ]\nwater\n[ molecules ]\n",
        )
        .map_err(|e| e.to_string())?;
        gmx(
            dir,
            "solvate.out",
            &[
                "solvate",
                "-cs",
                "spc216.gro",
                "-box",
                "3",
                "3",
                "3",
                "-o",
                "conf.gro",
                "-p",
                "topol.top",
            ],
        )?;
        std::fs::write(
            dir.join("em.mdp"),
            "integrator=steep\nnsteps=500\ncutoff-scheme=Verlet\ncoulombtype=PME\nrcoulomb=1.0\nrvdw=1.0\n",
        )
        .map_err(|e| e.to_string())?;
        gmx(
            dir,
            "grompp-em.out",
            &[
                "grompp",
                "-f",
                "em.mdp",
                "-c",
                "conf.gro",
                "-p",
                "topol.top",
                "-o",
                "em.tpr",
                "-maxwarn",
                "5",
            ],
        )?;
        gmx(
            dir,
            "mdrun-em.out",
            &["mdrun", "-s", "em.tpr", "-deffnm", "em", "-nt", "1"],
        )?;
    }
    let tpr = dir.join(format!("md-{STEPS}.tpr"));
    if !tpr.is_file() {
        let mdp = format!("md-{STEPS}.mdp");
        std::fs::write(
            dir.join(&mdp),
            format!(
                "integrator = md\ndt = 0.002\nnsteps = {STEPS}\nnstlog = 200\nnstenergy = 200\n\
                 nstcalcenergy = 100\ncutoff-scheme = Verlet\ncoulombtype = PME\nrcoulomb = 1.0\n\
                 rvdw = 1.0\ntcoupl = v-rescale\ntc-grps = System\ntau-t = 0.1\nref-t = 300\n\
                 constraints = h-bonds\ngen-vel = yes\ngen-temp = 300\ngen-seed = 42\n"
            ),
        )
        .map_err(|e| e.to_string())?;
        let tmp = format!("md-{STEPS}.tmp.tpr");
        gmx(
            dir,
            "grompp-md.out",
            &[
                "grompp",
                "-f",
                &mdp,
                "-c",
                "em.gro",
                "-p",
                "topol.top",
                "-o",
                &tmp,
                "-maxwarn",
                "5",
            ],
        )?;
        std::fs::rename(dir.join(&tmp), &tpr).map_err(|e| e.to_string())?;
    }
    Ok(tpr)
}

/// The energy block an mdrun log prints at step `step` (empty if none).
fn energies(log: &str, step: u32) -> String {
    let mut lines = log.lines();
    let mut at = false;
    let mut block = Vec::new();
    while let Some(l) = lines.next() {
        let words: Vec<&str> = l.split_whitespace().collect();
        if words == ["Step", "Time"] {
            at = lines
                .next()
                .and_then(|n| n.split_whitespace().next())
                .is_some_and(|s| s == step.to_string());
            continue;
        }
        if at && l.trim() == "Energies (kJ/mol)" {
            for e in lines.by_ref() {
                if e.trim().is_empty() {
                    break;
                }
                block.push(e);
            }
            break;
        }
    }
    block.join("\n")
}

fn gromacs(mpi: &Mpi) -> Result<String, String> {
    let gmx_mpi = Path::new("/usr/bin/gmx_mpi");
    if !gmx_mpi.is_file() {
        return Err(
            "Debian's gromacs package is not installed (scripts/setup.sh installs it)".into(),
        );
    }
    let dir = crate::out_dir()
        .join(&mpi.name)
        .join("apps")
        .join("gromacs");
    let tpr = prepare(&dir)?;
    let mdrun = |name: &str| -> Vec<String> {
        [
            "mdrun",
            "-s",
            &tpr.display().to_string(),
            "-ntomp",
            "1",
            "-reprod",
            "-dlb",
            "no",
            "-npme",
            "0",
            "-deffnm",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([dir.join(name).display().to_string()])
        .collect()
    };
    let env: Vec<(String, String)> = gmx_env().to_vec();
    let read =
        |name: &str| std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
    let finished = |log: &str| log.contains("Finished mdrun") && !energies(log, STEPS).is_empty();
    if !finished(&read("plain")) {
        let run = job::run_in(
            mpi,
            gmx_mpi,
            &mdrun("plain"),
            RANKS,
            &dir.join("plain-run"),
            &dir,
            Launch::Plain,
            &env,
        )?;
        if let Some(f) = run.exit_failure() {
            return Err(format!("the plain run failed: {f}\n{}", run.tails()));
        }
    }
    let plain = energies(&read("plain"), STEPS);
    if plain.is_empty() {
        return Err(format!(
            "the plain run printed no energies at step {STEPS} ({})",
            dir.display()
        ));
    }
    let _ = std::fs::remove_file(dir.join("ferry.log"));
    let options = vec!["--migrate".to_string(), MIGRATE.to_string()];
    let run = job::run_in(
        mpi,
        gmx_mpi,
        &mdrun("ferry"),
        RANKS,
        &dir.join("ferry-run"),
        &dir,
        Launch::Ferry(&options),
        &env,
    )?;
    if let Some(f) = run.exit_failure() {
        return Err(format!("the run under ferry failed: {f}\n{}", run.tails()));
    }
    let moves: Vec<_> = run
        .events_of(ferry_common::events::EventKind::Migrate)
        .collect();
    if moves.len() != 1 {
        return Err(format!(
            "{} migrate events, expected 1 ({})\n{}",
            moves.len(),
            run.dir.display(),
            run.tails()
        ));
    }
    let ferried = energies(&read("ferry"), STEPS);
    if ferried != plain {
        return Err(format!(
            "the energies at step {STEPS} differ:\n--- plain\n{plain}\n--- under ferry, rank 1 moved\n{}",
            if ferried.is_empty() { "(none)" } else { &ferried }
        ));
    }
    let m = moves[0];
    Ok(format!(
        "{RANKS} ranks, {STEPS} steps: energies at the last step identical; rank 1 moved (pid {} -> {}, image {:.1} MiB, {:.0} ms)",
        m.old_pid.unwrap_or(0),
        m.new_pid.unwrap_or(0),
        m.image_bytes.unwrap_or(0) as f64 / (1 << 20) as f64,
        m.phases_us.total.unwrap_or(0) as f64 / 1e3
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_energies_of_the_last_step_are_found() {
        let log = "\
           Step           Time
            800        1.60000

   Energies (kJ/mol)
            LJ (SR)   Coulomb (SR)
    5.1e+03   -4.3e+04

           Step           Time
           1000        2.00000

   Energies (kJ/mol)
            LJ (SR)   Coulomb (SR)
    5.2e+03   -4.4e+04

";
        assert_eq!(
            energies(log, 1000),
            "            LJ (SR)   Coulomb (SR)\n    5.2e+03   -4.4e+04"
        );
        assert_eq!(energies(log, 1200), "");
    }
}
