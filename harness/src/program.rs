//! The test programs of `c-tests/` (C) and `c-tests/fortran/` (Fortran,
//! named `fortran/NAME`) and what their header comments say:
//!
//! ```c
//! /* ranks: 3 */                                   (first line: how many ranks)
//! /* ferry-test-lib: libstate.so lib/state.c -DX */ (a shared library built first)
//! /* ferry-test-link: -lstate */                   (link flags)
//! /* ferry-test-refuses: attribute keyval|info */  (a move or checkpoint may be refused for this)
//! /* ferry-test-asks: yes */                       (it asks for regroups or moves itself)
//! /* ferry-test-skip: checkpoint why */            (a mode that does not apply, and why;
//!                                                  MODE@MPI: on that MPI only)
//! /* ferry-test-calls: yes */                      (it checks its calls are counted once, see below)
//! ```
//!
//! A Fortran program says the same with `!` comments (`! ranks: 2`,
//! `! ferry-test-refuses: attribute keyval`); `NAME.c` next to `NAME.f90`,
//! if there is one, is compiled with the MPI's C compiler and linked in.
//! A program with `ferry-test-calls` prints, in every rank at its end,
//! `fortran-calls: rank R checked N calls, M miscounted` on stderr (the
//! library's call counter compared after each MPI call): under the
//! library every rank must have checked calls (N > 0) and miscounted none.
use crate::mpi::Mpi;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A shared library a program needs built first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lib {
    pub file: String,
    pub source: String,
    pub flags: Vec<String>,
}

/// The language a program is written in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Lang {
    /// C (or C++), built with `mpicc`; it prints `ctest-pids:` lines
    /// (`c-tests/common.h`).
    #[default]
    C,
    /// Fortran, built with `mpif90`.
    Fortran,
}

/// One test program.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Program {
    pub name: String,
    pub lang: Lang,
    pub source: PathBuf,
    pub ranks: u32,
    pub libs: Vec<Lib>,
    pub link: Vec<String>,
    /// Substrings one of which a refusal's reason must contain to be
    /// expected (empty: no refusal is).
    pub refuses: Vec<String>,
    /// It asks for regroups or migrations itself (C API, signal).
    pub asks: bool,
    /// Modes that do not apply, with why.
    pub skip: Vec<(String, String)>,
    /// It prints per-rank `fortran-calls:` lines to be checked.
    pub checks_calls: bool,
}

/// What a program says of its calls being counted (`ferry-test-calls`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallsChecked {
    pub rank: u32,
    pub checked: u64,
    pub miscounted: u64,
}

impl Program {
    /// Parses the header comments of a program's source.
    pub fn parse(name: &str, source: &Path, text: &str) -> Result<Program, String> {
        let mut p = Program {
            name: name.to_string(),
            source: source.to_path_buf(),
            ..Program::default()
        };
        for line in text.lines() {
            let line = line.trim();
            let Some(body) = line
                .strip_prefix("/*")
                .and_then(|l| l.strip_suffix("*/"))
                .or_else(|| line.strip_prefix('!'))
            else {
                continue;
            };
            let Some((key, value)) = body.trim().split_once(':') else {
                continue;
            };
            let value = value.trim();
            let words = || value.split_whitespace().map(String::from);
            match key.trim() {
                "ranks" if p.ranks == 0 => {
                    p.ranks = value
                        .parse()
                        .map_err(|_| format!("{name}: bad ranks header {value:?}"))?
                }
                "ferry-test-lib" => {
                    let mut w = words();
                    let (Some(file), Some(source)) = (w.next(), w.next()) else {
                        return Err(format!("{name}: ferry-test-lib wants FILE SOURCE [FLAGS]"));
                    };
                    p.libs.push(Lib {
                        file,
                        source,
                        flags: w.collect(),
                    });
                }
                "ferry-test-link" => p.link.extend(words()),
                "ferry-test-refuses" => p
                    .refuses
                    .extend(value.split('|').map(|s| s.trim().to_string())),
                "ferry-test-asks" => p.asks = true,
                "ferry-test-calls" => p.checks_calls = true,
                "ferry-test-skip" => {
                    let (mode, why) = value.split_once(' ').unwrap_or((value, ""));
                    p.skip.push((mode.to_string(), why.trim().to_string()));
                }
                _ => {}
            }
        }
        if p.ranks == 0 {
            return Err(format!("{name}: no /* ranks: N */ header"));
        }
        Ok(p)
    }

    /// Whether a refusal for `reason` is one this program expects.
    pub fn expects_refusal(&self, reason: &str) -> bool {
        self.refuses.iter().any(|r| reason.contains(r.as_str()))
    }

    /// Why the program has no cases on `mpi`, if it has none.
    pub fn not_on(&self, mpi: &str) -> Option<&'static str> {
        (self.lang == Lang::Fortran && !crate::mpi::has_fortran(mpi)).then_some(
            "this MPI has no Fortran bindings (the pip MPICH 5.0.2; Fortran on MPICH: mpich-deb)",
        )
    }

    /// Why `mode` does not apply on `mpi`, if it does not: the MPI has no
    /// Fortran, or a `ferry-test-skip: MODE[@MPI] why` header names it.
    pub fn skipped_on(&self, mode: &str, mpi: &str) -> Option<String> {
        self.not_on(mpi).map(String::from).or_else(|| {
            self.skip
                .iter()
                .find(|(m, _)| match m.split_once('@') {
                    Some((m, on)) => on == mpi && mode.starts_with(m),
                    None => mode.starts_with(m.as_str()),
                })
                .map(|(_, why)| why.clone())
        })
    }

    /// Checks the `fortran-calls:` lines of a program that prints them
    /// (`ferry-test-calls`) in `stderr`: every rank checked calls, none
    /// miscounted. `Ok`: rank 0's line, for the report.
    pub fn check_calls(&self, stderr: &str) -> Result<Option<CallsChecked>, String> {
        if !self.checks_calls {
            return Ok(None);
        }
        let lines = calls_checked(stderr);
        if let Some(bad) = lines.iter().find(|c| c.miscounted > 0) {
            return Err(format!(
                "per-call counts: rank {} miscounted {} of {} calls",
                bad.rank, bad.miscounted, bad.checked
            ));
        }
        for rank in 0..self.ranks {
            if !lines.iter().any(|c| c.rank == rank && c.checked > 0) {
                return Err(format!(
                    "per-call counts: rank {rank} printed no 'fortran-calls: ... checked N calls' line with N > 0"
                ));
            }
        }
        Ok(lines.into_iter().find(|c| c.rank == 0))
    }

    /// Why `mode` does not apply, if it does not.
    pub fn skipped(&self, mode: &str) -> Option<&str> {
        self.skip
            .iter()
            .find(|(m, _)| !m.contains('@') && mode.starts_with(m.as_str()))
            .map(|(_, why)| why.as_str())
    }

    /// Builds the program (and its libraries first) with `mpi`'s compiler
    /// into `dir`; returns the binary.
    pub fn build(&self, mpi: &Mpi, dir: &Path) -> Result<PathBuf, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if self.lang == Lang::Fortran {
            return self.build_fortran(mpi, dir);
        }
        let tests = self.source.parent().unwrap_or(Path::new("."));
        // C++ sources (`.cpp`) with the MPI's C++ wrapper.
        let compile = |source: &Path, args: Vec<String>, what: &str| -> Result<(), String> {
            let compiler = match source.extension().and_then(|x| x.to_str()) {
                Some("cpp") => mpi.mpicxx(),
                _ => mpi.mpicc(),
            };
            compile(mpi, &compiler, &args, dir, what)
        };
        for lib in &self.libs {
            let mut args: Vec<String> = ["-O1", "-g", "-Wall", "-shared", "-fPIC"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            args.extend(lib.flags.iter().cloned());
            args.push("-o".into());
            args.push(dir.join(&lib.file).display().to_string());
            let source = tests.join(&lib.source);
            args.push(source.display().to_string());
            compile(&source, args, &lib.file)?;
        }
        let bin = dir.join(&self.name);
        let include = crate::root().join("include");
        let mut args: Vec<String> = vec![
            "-O1".into(),
            "-g".into(),
            "-Wall".into(),
            "-Wextra".into(),
            format!("-I{}", include.display()),
            format!("-I{}", tests.display()),
            "-o".into(),
            bin.display().to_string(),
            self.source.display().to_string(),
            format!("-L{}", dir.display()),
            format!("-Wl,-rpath,{}", dir.display()),
        ];
        args.extend(self.link.iter().cloned());
        compile(&self.source, args, &self.name)?;
        Ok(bin)
    }

    /// A Fortran program: `NAME.c` (if any) with `mpicc`, then `NAME.f90`
    /// with `mpif90` in `dir` (where its modules go), into `dir/fortran/NAME`.
    fn build_fortran(&self, mpi: &Mpi, dir: &Path) -> Result<PathBuf, String> {
        let fc = mpi
            .mpif90()
            .ok_or_else(|| format!("{} has no Fortran compiler", mpi.name))?;
        let bin = dir.join(&self.name);
        let out = bin.parent().unwrap_or(dir);
        std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
        let mut objs = Vec::new();
        let c = self.source.with_extension("c");
        if c.is_file() {
            let obj = bin.with_extension("c.o");
            let args: Vec<String> = vec![
                "-O1".into(),
                "-g".into(),
                "-Wall".into(),
                "-Wextra".into(),
                format!("-I{}", crate::root().join("include").display()),
                "-c".into(),
                "-o".into(),
                obj.display().to_string(),
                c.display().to_string(),
            ];
            compile(mpi, &mpi.mpicc(), &args, out, &format!("{}.c", self.name))?;
            objs.push(obj.display().to_string());
        }
        // (mpif.h programs pass buffers of different types to one routine)
        let mut args: Vec<String> = ["-O1", "-g", "-Wall", "-fallow-argument-mismatch", "-o"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.push(bin.display().to_string());
        args.push(self.source.display().to_string());
        args.extend(objs);
        // Each program's modules in a folder of its own.
        let modules = bin.with_extension("mod.d");
        std::fs::create_dir_all(&modules).map_err(|e| format!("{}: {e}", modules.display()))?;
        compile(mpi, &fc, &args, &modules, &self.name)?;
        Ok(bin)
    }
}

/// Runs a compiler in `cwd`.
fn compile(
    mpi: &Mpi,
    compiler: &Path,
    args: &[String],
    cwd: &Path,
    what: &str,
) -> Result<(), String> {
    let out = Command::new(compiler)
        .args(args)
        .envs(&mpi.env)
        .current_dir(cwd)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", compiler.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "building {what} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The `fortran-calls: rank R checked N calls, M miscounted` lines.
pub fn calls_checked(stderr: &str) -> Vec<CallsChecked> {
    stderr
        .lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("fortran-calls: rank ")?;
            let (rank, rest) = rest.split_once(" checked ")?;
            let (n, rest) = rest.split_once(" calls, ")?;
            let m = rest.strip_suffix(" miscounted")?;
            Some(CallsChecked {
                rank: rank.parse().ok()?,
                checked: n.parse().ok()?,
                miscounted: m.parse().ok()?,
            })
        })
        .collect()
}

/// Every program of `c-tests/`, by name.
pub fn c_programs() -> Result<Vec<Program>, String> {
    programs_in("c-tests", "c", "", Lang::C)
}

/// Every program of `c-tests/fortran/`, named `fortran/NAME`.
pub fn fortran_programs() -> Result<Vec<Program>, String> {
    programs_in("c-tests/fortran", "f90", "fortran/", Lang::Fortran)
}

/// Every program, C then Fortran.
pub fn all() -> Result<Vec<Program>, String> {
    let mut all = c_programs()?;
    all.extend(fortran_programs()?);
    Ok(all)
}

fn programs_in(folder: &str, ext: &str, prefix: &str, lang: Lang) -> Result<Vec<Program>, String> {
    let dir = crate::root().join(folder);
    let mut out = Vec::new();
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().and_then(|x| x.to_str()) != Some(ext) {
            continue;
        }
        let name = format!(
            "{prefix}{}",
            path.file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
        );
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{name}: {e}"))?;
        let mut p = Program::parse(&name, &path, &text)?;
        p.lang = lang;
        out.push(p);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        let p = Program::parse(
            "x",
            Path::new("c-tests/x.c"),
            "/* ranks: 3 */\n/* ferry-test-lib: libs.so lib/s.c -DTLS -O2 */\n\
             /* ferry-test-link: -ls -ldl */\n/* ferry-test-refuses: attribute keyval | info object */\n\
             /* ferry-test-skip: checkpoint moves itself */\n/* ranks: 9 */\nint main;\n",
        )
        .unwrap();
        assert_eq!(p.ranks, 3);
        assert_eq!(
            p.libs,
            vec![Lib {
                file: "libs.so".into(),
                source: "lib/s.c".into(),
                flags: vec!["-DTLS".into(), "-O2".into()]
            }]
        );
        assert_eq!(p.link, ["-ls", "-ldl"]);
        assert!(p.expects_refusal("the program made 2 attribute keyval(s)"));
        assert!(p.expects_refusal("1 info object"));
        assert!(!p.expects_refusal("threads"));
        assert_eq!(p.skipped("checkpoint"), Some("moves itself"));
        assert_eq!(p.skipped("migrate1"), None);
        assert!(!p.asks);
        assert!(Program::parse("y", Path::new("y.c"), "int main;").is_err());
    }

    #[test]
    fn a_skip_may_name_one_mpi() {
        let text = "/* ranks: 2 */\n/* ferry-test-skip: regroup20@mpich-deb hangs */\n/* ferry-test-skip: swap no barriers */\n";
        let p = Program::parse("x", Path::new("x.c"), text).unwrap();
        assert_eq!(
            p.skipped_on("regroup20", "mpich-deb").as_deref(),
            Some("hangs")
        );
        assert_eq!(p.skipped_on("regroup20", "mpich"), None);
        assert_eq!(p.skipped_on("regroup3", "mpich-deb"), None);
        assert_eq!(
            p.skipped_on("swap", "openmpi").as_deref(),
            Some("no barriers")
        );
        assert_eq!(p.skipped("regroup20"), None);
    }

    #[test]
    fn every_program_parses() {
        let all = c_programs().unwrap();
        assert!(all.len() > 20);
        assert!(all.iter().any(|p| p.name == "ring" && p.ranks == 3));
        let f = fortran_programs().unwrap();
        assert!(f.len() >= 9);
        let calls = f.iter().find(|p| p.name == "fortran/calls").unwrap();
        assert_eq!(
            (calls.ranks, calls.lang, calls.checks_calls),
            (2, Lang::Fortran, true)
        );
        assert!(f
            .iter()
            .all(|p| p.not_on("mpich").is_some() && p.not_on("openmpi").is_none()));
    }

    #[test]
    fn calls_lines() {
        let p = Program {
            ranks: 2,
            checks_calls: true,
            ..Program::default()
        };
        let ok = "x\nfortran-calls: rank 1 checked 40 calls, 0 miscounted\nfortran-calls: rank 0 checked 41 calls, 0 miscounted\n";
        assert_eq!(p.check_calls(ok).unwrap().map(|c| c.checked), Some(41));
        assert!(p
            .check_calls("fortran-calls: rank 0 checked 41 calls, 0 miscounted\n")
            .is_err());
        assert!(p
            .check_calls(&format!(
                "{ok}fortran-calls: rank 1 checked 40 calls, 2 miscounted\n"
            ))
            .is_err());
        assert!(p
            .check_calls("fortran-calls: rank 0 checked 0 calls, 0 miscounted\nfortran-calls: rank 1 checked 3 calls, 0 miscounted\n")
            .is_err());
        let plain = Program {
            ranks: 2,
            ..Program::default()
        };
        assert_eq!(plain.check_calls(""), Ok(None));
    }
}
