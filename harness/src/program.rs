//! The test programs of `c-tests/` and what their header comments say:
//!
//! ```c
//! /* ranks: 3 */                                   (first line: how many ranks)
//! /* ferry-test-lib: libstate.so lib/state.c -DX */ (a shared library built first)
//! /* ferry-test-link: -lstate */                   (link flags)
//! /* ferry-test-refuses: attribute keyval|info */  (a move or checkpoint may be refused for this)
//! /* ferry-test-asks: yes */                       (it asks for regroups or moves itself)
//! /* ferry-test-skip: checkpoint why */            (a mode that does not apply, and why)
//! ```
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

/// One test program.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Program {
    pub name: String,
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
            let Some(body) = line
                .trim()
                .strip_prefix("/*")
                .and_then(|l| l.strip_suffix("*/"))
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

    /// Why `mode` does not apply, if it does not.
    pub fn skipped(&self, mode: &str) -> Option<&str> {
        self.skip
            .iter()
            .find(|(m, _)| mode.starts_with(m.as_str()))
            .map(|(_, why)| why.as_str())
    }

    /// Builds the program (and its libraries first) with `mpi`'s compiler
    /// into `dir`; returns the binary.
    pub fn build(&self, mpi: &Mpi, dir: &Path) -> Result<PathBuf, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let tests = self.source.parent().unwrap_or(Path::new("."));
        // C++ sources (`.cpp`) with the MPI's C++ wrapper.
        let compile = |source: &Path, args: Vec<String>, what: &str| -> Result<(), String> {
            let compiler = match source.extension().and_then(|x| x.to_str()) {
                Some("cpp") => mpi.mpicxx(),
                _ => mpi.mpicc(),
            };
            let out = Command::new(&compiler)
                .args(&args)
                .envs(&mpi.env)
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
}

/// Every program of `c-tests/`, by name.
pub fn c_programs() -> Result<Vec<Program>, String> {
    let dir = crate::root().join("c-tests");
    let mut out = Vec::new();
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().and_then(|x| x.to_str()) != Some("c") {
            continue;
        }
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{name}: {e}"))?;
        out.push(Program::parse(&name, &path, &text)?);
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
    fn every_program_parses() {
        let all = c_programs().unwrap();
        assert!(all.len() > 20);
        assert!(all.iter().any(|p| p.name == "ring" && p.ranks == 3));
    }
}
