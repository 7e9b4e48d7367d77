//! Whose state is whose: the loaded objects split into the program's
//! closure (carried by an image) and the rest (the C library, MPI and what
//! MPI loads, libferry), from the dependency graph, never from names.
//!
//! * **The C library**: every object that defines `GLIBC_2.*` symbol
//!   versions (libc, the dynamic linker, libm, libpthread, ...), the vDSO,
//!   and what the C library opened itself (name-service modules, `iconv`
//!   converters: opened after the start, but not through `dlopen`). Never
//!   carried: the new process's own is live.
//! * **MPI**: every object that defines MPI's profiling entry points
//!   (`PMPI_*`, `pmpi_*`: the MPI library and its Fortran and C++
//!   bindings), everything those need (`DT_NEEDED`, transitively), and
//!   everything loaded by `dlopen` inside an MPI call or by a thread that
//!   is not the program's main thread (MPI's plugins and transports).
//! * **libferry** and what it needs.
//! * **The program**: the executable and everything it needs, and every
//!   object the program opened with `dlopen` and everything that one
//!   needs, transitively, without going through an MPI object or the C
//!   library. An object both sides need (libgfortran, which Open MPI's
//!   Fortran binding needs too; libgcc_s; libhwloc) is carried as the
//!   program's when its data points only into carried memory (Fortran
//!   units, the C++ runtime), and is MPI's otherwise
//!   ([`crate::mem::carried`]).
//!
//! An object none of these reach (preloaded by someone else, or opened in
//! a way the library did not see) cannot be classified, and a move or
//! checkpoint is refused naming it.
use super::elf::Object;

/// Whose an object's state is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The program's alone: carried.
    Program,
    /// Needed by the program and by MPI or libferry (libgfortran, libgcc_s,
    /// libhwloc): carried, unless its data points into memory an image does
    /// not carry; its state is then MPI's, and the new process keeps its
    /// own (see [`crate::mem::carried`]).
    Shared,
    /// MPI's: the new process's own is used.
    Mpi,
    /// libferry's (libferry itself is carried by its own rules).
    Ferry,
    /// The C library's or the kernel's: the new process's own is used.
    CLibrary,
}

/// Who opened an object with `dlopen`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opener {
    Program,
    Mpi,
    /// Nobody through `dlopen`: the C library itself (its name-service
    /// modules, `iconv`'s converters), which opens with an internal call.
    CLibrary,
}

/// One object as the classification sees it.
#[derive(Clone, Debug, Default)]
pub struct Node {
    /// Its file name (the last part of its path).
    pub file: String,
    pub soname: Option<String>,
    pub needed: Vec<String>,
    pub executable: bool,
    pub ferry: bool,
    pub c_library: bool,
    pub mpi_entry: bool,
    pub opened_by: Option<Opener>,
}

impl Node {
    /// The classification's view of a loaded object.
    pub fn of(o: &Object, ferry_base: usize, opened_by: Option<Opener>) -> Node {
        Node {
            file: o.file_name().to_string(),
            soname: o.soname.clone(),
            needed: o.needed.clone(),
            executable: o.is_executable(),
            ferry: o.base == ferry_base,
            c_library: o.c_library || o.is_vdso() || opened_by == Some(Opener::CLibrary),
            mpi_entry: o.mpi_entry && o.base != ferry_base && !o.is_executable(),
            opened_by,
        }
    }
}

/// The side of each node (`None`: nothing reaches it).
pub fn classify(nodes: &[Node]) -> Vec<Option<Side>> {
    let index = |name: &str| -> Option<usize> {
        nodes
            .iter()
            .position(|n| n.soname.as_deref() == Some(name))
            .or_else(|| nodes.iter().position(|n| n.file == name))
    };
    let edges: Vec<Vec<usize>> = nodes
        .iter()
        .map(|n| n.needed.iter().filter_map(|d| index(d)).collect())
        .collect();
    // Everything reachable from `roots`, not entering nodes `stop` holds
    // (a root itself is always taken).
    let reach = |roots: &[usize], stop: &dyn Fn(usize) -> bool| -> Vec<bool> {
        let mut seen = vec![false; nodes.len()];
        let mut todo: Vec<usize> = roots.to_vec();
        for &r in roots {
            seen[r] = true;
        }
        while let Some(i) = todo.pop() {
            for &j in &edges[i] {
                if !seen[j] && !stop(j) {
                    seen[j] = true;
                    todo.push(j);
                }
            }
        }
        seen
    };
    let c_library = |i: usize| nodes[i].c_library || nodes[i].opened_by == Some(Opener::CLibrary);
    let roots_where = |f: &dyn Fn(&Node) -> bool| -> Vec<usize> {
        (0..nodes.len())
            .filter(|&i| f(&nodes[i]) && !c_library(i))
            .collect()
    };
    let mpi = reach(
        &roots_where(&|n| n.mpi_entry || n.opened_by == Some(Opener::Mpi)),
        &c_library,
    );
    let ferry = reach(&roots_where(&|n| n.ferry), &|i| {
        c_library(i) || nodes[i].mpi_entry
    });
    let program = reach(
        &roots_where(&|n| {
            !n.ferry && !n.mpi_entry && (n.executable || n.opened_by == Some(Opener::Program))
        }),
        &|i| c_library(i) || nodes[i].mpi_entry || nodes[i].ferry,
    );
    (0..nodes.len())
        .map(|i| {
            if c_library(i) {
                Some(Side::CLibrary)
            } else if nodes[i].ferry {
                Some(Side::Ferry)
            } else if program[i] && (mpi[i] || ferry[i]) {
                Some(Side::Shared)
            } else if program[i] {
                Some(Side::Program)
            } else if mpi[i] {
                Some(Side::Mpi)
            } else if ferry[i] {
                Some(Side::Ferry)
            } else {
                None
            }
        })
        .collect()
}

/// The sides of loaded objects, with `opener` telling who opened what
/// (`carried::sides` asks libferry's dlopen records).
pub fn sides_with(
    objs: &[Object],
    opener: impl Fn(&Object) -> Option<Opener>,
) -> Vec<Option<Side>> {
    let fb = super::elf::ferry_base();
    let nodes: Vec<Node> = objs.iter().map(|o| Node::of(o, fb, opener(o))).collect();
    classify(&nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(file: &str, needed: &[&str]) -> Node {
        Node {
            file: file.into(),
            soname: Some(file.into()),
            needed: needed.iter().map(|s| s.to_string()).collect(),
            ..Node::default()
        }
    }

    /// A Fortran program on Open MPI with its own library (which needs MPI
    /// itself), OpenMP, an MPI plugin and a preloaded stranger.
    fn graph() -> Vec<Node> {
        let mut exe = node(
            "prog",
            &[
                "libapp.so",
                "libmpi_mpifh.so.40",
                "libgfortran.so.5",
                "libc.so.6",
            ],
        );
        exe.executable = true;
        exe.soname = None;
        let mut mpifh = node("libmpi_mpifh.so.40", &["libmpi.so.40", "libgfortran.so.5"]);
        mpifh.mpi_entry = true;
        let mut mpi = node(
            "libmpi.so.40",
            &["libopen-pal.so.40", "libm.so.6", "libc.so.6"],
        );
        mpi.mpi_entry = true;
        let mut libc = node("libc.so.6", &["ld-linux-x86-64.so.2"]);
        libc.c_library = true;
        let mut libm = node("libm.so.6", &["libc.so.6"]);
        libm.c_library = true;
        let mut ld = node("ld-linux-x86-64.so.2", &[]);
        ld.c_library = true;
        let mut ferry = node(
            "libferry.so",
            &["libgcc_s.so.1", "libmpi.so.40", "libc.so.6"],
        );
        ferry.ferry = true;
        let mut plugin = node("mca_btl_tcp.so", &["libopen-pal.so.40"]);
        plugin.opened_by = Some(Opener::Mpi);
        let mut opened = node("libplug.so", &["libzstate.so"]);
        opened.opened_by = Some(Opener::Program);
        let mut nss = node("libnss_systemd.so.2", &["libc.so.6"]);
        nss.opened_by = Some(Opener::CLibrary);
        vec![
            exe,
            ferry,
            node("libapp.so", &["libgomp.so.1", "libmpi.so.40"]),
            mpifh,
            mpi,
            node("libopen-pal.so.40", &["libc.so.6"]),
            node(
                "libgfortran.so.5",
                &["libquadmath.so.0", "libgcc_s.so.1", "libm.so.6"],
            ),
            node("libquadmath.so.0", &["libc.so.6"]),
            node("libgcc_s.so.1", &["libc.so.6"]),
            node("libgomp.so.1", &["libc.so.6"]),
            libc,
            libm,
            ld,
            plugin,
            opened,
            node("libzstate.so", &[]),
            node("libstranger.so", &["libc.so.6"]),
            nss,
        ]
    }

    fn side_of(nodes: &[Node], sides: &[Option<Side>], file: &str) -> Option<Side> {
        sides[nodes.iter().position(|n| n.file == file).unwrap()]
    }

    /// A word found in a library's data that a new process reads the same:
    /// an address in a carried region, a virtual handle (a library's own
    /// communicator, Open MPI), or a number that only looks like an address
    /// in ferry's own pages (CI saw `0x2500_0000_001d`: two `int`s).
    #[test]
    fn the_program_closure_stops_at_mpi_and_the_c_library() {
        let g = graph();
        let s = classify(&g);
        let of = |f: &str| side_of(&g, &s, f);
        assert_eq!(of("prog"), Some(Side::Program));
        // The program's own library needs MPI: still the program's.
        assert_eq!(of("libapp.so"), Some(Side::Program));
        assert_eq!(of("libgomp.so.1"), Some(Side::Program));
        // Needed by the program and by MPI's Fortran binding: shared.
        assert_eq!(of("libgfortran.so.5"), Some(Side::Shared));
        assert_eq!(of("libquadmath.so.0"), Some(Side::Shared));
        // Needed by libferry and (through libgfortran) by the program.
        assert_eq!(of("libgcc_s.so.1"), Some(Side::Shared));
        assert_eq!(of("libmpi_mpifh.so.40"), Some(Side::Mpi));
        assert_eq!(of("libmpi.so.40"), Some(Side::Mpi));
        assert_eq!(of("libopen-pal.so.40"), Some(Side::Mpi));
        assert_eq!(of("mca_btl_tcp.so"), Some(Side::Mpi));
        assert_eq!(of("libc.so.6"), Some(Side::CLibrary));
        assert_eq!(of("libm.so.6"), Some(Side::CLibrary));
        assert_eq!(of("ld-linux-x86-64.so.2"), Some(Side::CLibrary));
        assert_eq!(of("libferry.so"), Some(Side::Ferry));
        // Opened by the program, and what that one needs.
        assert_eq!(of("libplug.so"), Some(Side::Program));
        assert_eq!(of("libzstate.so"), Some(Side::Program));
        // Nothing reaches it.
        assert_eq!(of("libstranger.so"), None);
        // Opened by the C library itself.
        assert_eq!(of("libnss_systemd.so.2"), Some(Side::CLibrary));
    }

    #[test]
    fn libferrys_own_dependencies_are_not_the_programs() {
        let mut g = graph();
        // A C program: it needs MPI and libc only.
        g[0].needed = vec!["libmpi.so.40".into(), "libc.so.6".into()];
        let s = classify(&g);
        // Reached by libferry, and by MPI through libgfortran: not carried.
        assert!(matches!(
            side_of(&g, &s, "libgcc_s.so.1"),
            Some(Side::Mpi | Side::Ferry)
        ));
        assert_eq!(side_of(&g, &s, "libgfortran.so.5"), Some(Side::Mpi));
        assert_eq!(side_of(&g, &s, "libapp.so"), None);
        // Without MPI's Fortran binding, libgcc_s is libferry's alone.
        g[3].mpi_entry = false;
        g[3].needed.clear();
        let s = classify(&g);
        assert_eq!(side_of(&g, &s, "libgcc_s.so.1"), Some(Side::Ferry));
    }

    #[test]
    fn dependencies_are_found_by_soname_then_file_name() {
        let mut exe = node("prog", &["libx.so.1"]);
        exe.executable = true;
        let mut lib = node("libx.so.1.2.3", &[]);
        lib.soname = Some("libx.so.1".into());
        let g = vec![exe, lib];
        assert_eq!(classify(&g)[1], Some(Side::Program));
    }
}
