//! Build script: binds libferry to the MPI the user has.
//!
//! 1. Finds the MPI C compiler wrapper (`MPICC`, else `mpicc` on `PATH`) and
//!    asks it for include and library paths; tells MPICH from Open MPI.
//! 2. Runs bindgen on `mpi.h`, keeping the types and the `PMPI_*` functions
//!    only: the library exports the `MPI_*` names itself and calls the real
//!    library through the profiling names.
//! 3. Builds `src/sys/constants.c`, which turns the macro-only handles and
//!    sentinels (`MPI_COMM_WORLD`, `MPI_STATUS_IGNORE`, ...) into linkable
//!    objects, and evaluates the integer constants (`MPI_SUCCESS`,
//!    `MPI_ANY_SOURCE`, ...) into Rust `const`s with a tiny C program.
//! 4. Emits `cfg(ferry_mpi = "mpich" | "openmpi")` and one
//!    `cfg(ferry_has = "MPI_X")` per function the header declares and the
//!    library defines (a probe looks each `PMPI_X` up), so the generated
//!    wrappers compile and load against either library.
//! 5. Links libmpi with an rpath, so the preloaded library finds its MPI
//!    even under a launcher that sets no library path.
use std::collections::BTreeSet;
use std::env;
use std::path::PathBuf;
use std::process::Command;

/// The integer constants of `mpi.h` the library uses, evaluated at build time.
const INT_CONSTANTS: &[&str] = &[
    "MPI_ANY_SOURCE",
    "MPI_ANY_TAG",
    "MPI_PROC_NULL",
    "MPI_ROOT",
    "MPI_UNDEFINED",
    "MPI_SUCCESS",
    "MPI_ERR_COMM",
    "MPI_ERR_REQUEST",
    "MPI_ERR_ARG",
    "MPI_ERR_GROUP",
    "MPI_ERR_INTERN",
    "MPI_ERR_OTHER",
    "MPI_ERR_COUNT",
    "MPI_ERR_PENDING",
    "MPI_ERR_IN_STATUS",
    "MPI_ERR_TRUNCATE",
    "MPI_THREAD_SINGLE",
    "MPI_THREAD_FUNNELED",
    "MPI_THREAD_SERIALIZED",
    "MPI_THREAD_MULTIPLE",
    "MPI_IDENT",
    "MPI_CONGRUENT",
    "MPI_SIMILAR",
    "MPI_UNEQUAL",
    "MPI_GRAPH",
    "MPI_CART",
    "MPI_DIST_GRAPH",
    "MPI_TAG_UB",
    "MPI_HOST",
    "MPI_IO",
    "MPI_WTIME_IS_GLOBAL",
    "MPI_APPNUM",
    "MPI_UNIVERSE_SIZE",
    "MPI_LASTUSEDCODE",
    "MPI_KEYVAL_INVALID",
    "MPI_MODE_NOCHECK",
    "MPI_LOCK_SHARED",
    "MPI_LOCK_EXCLUSIVE",
    "MPI_MAX_ERROR_STRING",
    "MPI_MAX_PROCESSOR_NAME",
    "MPI_MAX_OBJECT_NAME",
    "MPI_COMM_TYPE_SHARED",
    "MPI_COMBINER_NAMED",
    "MPI_COMBINER_DUP",
    "MPI_COMBINER_CONTIGUOUS",
    "MPI_COMBINER_VECTOR",
    "MPI_COMBINER_HVECTOR",
    "MPI_COMBINER_INDEXED",
    "MPI_COMBINER_HINDEXED",
    "MPI_COMBINER_INDEXED_BLOCK",
    "MPI_COMBINER_HINDEXED_BLOCK",
    "MPI_COMBINER_STRUCT",
    "MPI_COMBINER_SUBARRAY",
    "MPI_COMBINER_DARRAY",
    "MPI_COMBINER_F90_REAL",
    "MPI_COMBINER_F90_COMPLEX",
    "MPI_COMBINER_F90_INTEGER",
    "MPI_COMBINER_RESIZED",
];

struct Mpi {
    flavour: &'static str,
    include_dirs: Vec<String>,
    lib_dirs: Vec<String>,
    libs: Vec<String>,
}

fn run(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn find_mpi() -> Mpi {
    let mpicc = env::var("MPICC").unwrap_or_else(|_| "mpicc".to_string());
    // Open MPI's wrapper answers --showme; MPICH's answers -show.
    let (flavour, flags) = if let Some(f) = run(&mpicc, &["--showme"]) {
        ("openmpi", f)
    } else if let Some(f) = run(&mpicc, &["-show"]) {
        ("mpich", f)
    } else {
        panic!(
            "ferry: cannot run the MPI compiler wrapper '{mpicc}'. Set MPICC to the mpicc \
             of the MPI to build against (see scripts/mpi-env.sh)."
        );
    };
    let mut mpi = Mpi {
        flavour,
        include_dirs: vec![],
        lib_dirs: vec![],
        libs: vec![],
    };
    for tok in flags.split_whitespace() {
        if let Some(d) = tok.strip_prefix("-I") {
            mpi.include_dirs.push(d.to_string());
        } else if let Some(d) = tok.strip_prefix("-L") {
            mpi.lib_dirs.push(d.to_string());
        } else if let Some(l) = tok.strip_prefix("-l") {
            mpi.libs.push(l.to_string());
        }
    }
    if mpi.libs.is_empty() {
        mpi.libs.push("mpi".into());
    }
    // Debian's Open MPI wrapper prints no -I for the default include dir.
    if mpi.include_dirs.is_empty() {
        if let Some(inc) = run(&mpicc, &["--showme:incdirs"]) {
            mpi.include_dirs
                .extend(inc.split_whitespace().map(String::from));
        }
    }
    if mpi.lib_dirs.is_empty() {
        if let Some(l) = run(&mpicc, &["--showme:libdirs"]) {
            mpi.lib_dirs.extend(l.split_whitespace().map(String::from));
        }
    }
    mpi
}

/// The functions of `declared` (`MPI_X`, `MPIX_X`) whose `PMPI_*` name
/// the MPI library does not define: a probe linked like libferry.so looks
/// each up with `dlsym`. If the probe cannot be built or run, none (every
/// declared function is taken as defined, as before the probe existed).
fn undefined_in_library(
    mpi: &Mpi,
    out: &std::path::Path,
    declared: &BTreeSet<String>,
) -> Vec<String> {
    let mut prog = String::from(
        "#define _GNU_SOURCE\n#include <dlfcn.h>\n#include <stdio.h>\n\
         static const char *names[] = {\n",
    );
    for f in declared {
        prog.push_str(&format!("  \"P{f}\",\n"));
    }
    prog.push_str(
        "  0 };\nint main(void) {\n  for (int i = 0; names[i]; i++)\n    \
         if (!dlsym(RTLD_DEFAULT, names[i])) puts(names[i] + 1);\n  return 0;\n}\n",
    );
    let src = out.join("defined_probe.c");
    let exe = out.join("defined_probe");
    if std::fs::write(&src, prog).is_err() {
        return vec![];
    }
    let compiler = cc::Build::new().get_compiler();
    let mut cmd = compiler.to_command();
    cmd.arg(&src).arg("-o").arg(&exe);
    for d in &mpi.lib_dirs {
        cmd.arg(format!("-L{d}")).arg(format!("-Wl,-rpath,{d}"));
    }
    // --no-as-needed: the probe calls nothing of libmpi, which must still
    // be loaded for dlsym to see it.
    cmd.arg("-Wl,--no-as-needed");
    for l in &mpi.libs {
        cmd.arg(format!("-l{l}"));
    }
    cmd.arg("-ldl");
    if !cmd.status().map(|s| s.success()).unwrap_or(false) {
        println!("cargo:warning=ferry: cannot build the defined-function probe; taking every declared MPI function as defined");
        return vec![];
    }
    match Command::new(&exe).output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(String::from)
            .collect(),
        _ => {
            println!("cargo:warning=ferry: the defined-function probe failed; taking every declared MPI function as defined");
            vec![]
        }
    }
}

/// MPICH's integer handle types, made distinct (`new_type_alias`).
const HANDLE_TYPES: &str =
    "MPI_(Comm|Group|Datatype|Request|Op|Info|Errhandler|Win|Message|Session|File)";

/// The traits a handle type needs (compared, printed, hashed, ordered as
/// the integer it wraps).
#[derive(Debug)]
struct HandleDerives;

impl bindgen::callbacks::ParseCallbacks for HandleDerives {
    fn add_derives(&self, info: &bindgen::callbacks::DeriveInfo<'_>) -> Vec<String> {
        let handle = info.name.strip_prefix("MPI_").is_some_and(|rest| {
            HANDLE_TYPES[5..HANDLE_TYPES.len() - 1]
                .split('|')
                .any(|k| k == rest)
        });
        if handle {
            ["Debug", "PartialEq", "Eq", "Hash", "PartialOrd", "Ord"]
                .map(String::from)
                .to_vec()
        } else {
            Vec::new()
        }
    }
}

fn main() {
    println!("cargo:rerun-if-env-changed=MPICC");
    println!("cargo:rerun-if-changed=src/sys/constants.c");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo::rustc-check-cfg=cfg(ferry_mpi, values(\"mpich\", \"openmpi\"))");
    println!("cargo::rustc-check-cfg=cfg(ferry_has, values(any()))");

    let mpi = find_mpi();
    println!("cargo:rustc-cfg=ferry_mpi=\"{}\"", mpi.flavour);
    println!("cargo:rustc-env=FERRY_MPI_FLAVOUR={}", mpi.flavour);

    let out = PathBuf::from(env::var("OUT_DIR").unwrap());

    // bindgen: types, constants bindgen can evaluate, and PMPI_* functions.
    let mut builder = bindgen::Builder::default()
        .header_contents("ferry_mpi.h", "#include <mpi.h>\n")
        .allowlist_function("PMPI_.*")
        .allowlist_function("PMPIX_.*")
        .allowlist_type("MPI_.*")
        .allowlist_type("MPIX_.*")
        .allowlist_type("ompi_.*")
        .allowlist_var("MPI_.*")
        .derive_default(true)
        .derive_debug(false)
        .layout_tests(false)
        .generate_comments(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for d in &mpi.include_dirs {
        builder = builder.clang_arg(format!("-I{d}"));
    }
    if mpi.flavour == "mpich" {
        // MPICH's handles are all `int`: each kind its own type (a group
        // passed as a communicator does not compile), same ABI.
        builder = builder
            .new_type_alias(HANDLE_TYPES)
            .parse_callbacks(Box::new(HandleDerives));
    }
    let bindings = builder.generate().expect("ferry: bindgen failed on mpi.h");
    let text = bindings.to_string();
    bindings
        .write_to_file(out.join("mpi_sys.rs"))
        .expect("ferry: cannot write bindings");

    // One cfg per declared function: `ferry_has = "MPI_Send"`.
    let mut declared = BTreeSet::new();
    for line in text.lines() {
        for (prefix, family) in [("pub fn PMPI_", "MPI_"), ("pub fn PMPIX_", "MPIX_")] {
            if let Some(rest) = line.trim().strip_prefix(prefix) {
                if let Some(name) = rest.split('(').next() {
                    declared.insert(format!("{family}{name}"));
                }
            }
        }
    }
    // A function the header declares but the library does not define
    // (MPICH 4.0.2 declares `MPI_Status_f082c` & co., which only its Fortran
    // library has) gets no cfg: a wrapper calling it would leave an
    // undefined `PMPI_*` in libferry.so.
    for f in undefined_in_library(&mpi, &out, &declared) {
        declared.remove(&f);
    }
    for f in &declared {
        println!("cargo:rustc-cfg=ferry_has=\"{f}\"");
    }

    // Macro-only constants.
    let mut cc = cc::Build::new();
    cc.file("src/sys/constants.c").warnings(true);
    for d in &mpi.include_dirs {
        cc.include(d);
    }
    cc.compile("ferry_mpi_constants");
    println!("cargo:rerun-if-changed=src/mem/context.c");
    cc::Build::new()
        .file("src/mem/context.c")
        .flag("-fno-stack-protector")
        .warnings(true)
        .compile("ferry_image_context");

    // Integer constants, as Rust consts: a tiny C program prints them.
    let mut prog = String::from("#include <mpi.h>\n#include <stdio.h>\nint main(void) {\n");
    for n in INT_CONSTANTS {
        prog.push_str(&format!(
            "  printf(\"pub const {n}: c_int = %d;\\n\", (int)({n}));\n"
        ));
    }
    prog.push_str("  return 0;\n}\n");
    let src = out.join("int_constants.c");
    let exe = out.join("int_constants");
    std::fs::write(&src, prog).expect("ferry: cannot write int_constants.c");
    let compiler = cc::Build::new().get_compiler();
    let mut cmd = compiler.to_command();
    for d in &mpi.include_dirs {
        cmd.arg(format!("-I{d}"));
    }
    let status = cmd
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .status()
        .expect("ferry: cannot run the C compiler");
    assert!(
        status.success(),
        "ferry: cannot compile the integer-constant probe"
    );
    let printed = Command::new(&exe)
        .output()
        .expect("ferry: cannot run the integer-constant probe");
    assert!(
        printed.status.success(),
        "ferry: the integer-constant probe failed"
    );
    std::fs::write(out.join("int_constants.rs"), printed.stdout)
        .expect("ferry: cannot write int_constants.rs");

    for d in &mpi.lib_dirs {
        println!("cargo:rustc-link-search=native={d}");
        println!("cargo:rustc-cdylib-link-arg=-Wl,-rpath,{d}");
    }
    for l in &mpi.libs {
        println!("cargo:rustc-link-lib=dylib={l}");
    }
    // Test binaries linking the rlib also need the rpath.
    for d in &mpi.lib_dirs {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{d}");
    }
}
