//! MPI objects the program makes that are not (yet) virtual handles:
//! reduction operations, error handlers, info objects, files and sessions
//! (derived datatypes are virtual: see [`crate::core::datatypes`]). The program holds the real handles, which a new
//! MPI would not know, so a process image refuses to carry a process that
//! holds one (the generated wrappers count them made and freed).
//! Predefined objects (`MPI_INT`, `MPI_SUM`, `MPI_ERRORS_RETURN`, ...) are
//! the same in every process and are not counted.
use std::collections::HashSet;
use std::sync::Mutex;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Op,
    Errhandler,
    Info,
    File,
    Session,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Op => "reduction operation",
            Kind::Errhandler => "error handler",
            Kind::Info => "info object",
            Kind::File => "open MPI file",
            Kind::Session => "session",
        }
    }
}

static LIVE: Mutex<Option<HashSet<(Kind, u64)>>> = Mutex::new(None);

/// Objects made by Fortran calls the library forwards to the MPI's own
/// Fortran layer (an operation of `MPI_Op_create`, a communicator of
/// `MPI_Comm_spawn` or `MPI_Comm_idup`, ...): the MPI function each came
/// from. The library never sees their handles (nor their release): once
/// one was made, a process image refuses to carry the process.
static FORWARDED: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

/// A forwarded Fortran call made an object (the generated entry points
/// call this).
pub fn forwarded_made(function: &'static str) {
    if let Ok(mut f) = FORWARDED.lock() {
        f.push(function);
    }
}

/// Whether a real datatype is predefined (MPI's own account).
///
/// Where the MPI has it, the large-count query: MPICH refuses
/// `MPI_Type_get_envelope` on a datatype whose counts exceed an `int`
/// (fatal under `MPI_ERRORS_ARE_FATAL`: MPICH's suite,
/// `datatype/type_large`), and the combiner is all that is asked here.
pub fn is_named(real: crate::sys::MPI_Datatype) -> bool {
    let mut comb = 0;
    #[cfg(ferry_has = "MPI_Type_get_envelope_c")]
    let rc = {
        let (mut ni, mut na, mut nc, mut nd): (crate::sys::MPI_Count, _, _, _) = (0, 0, 0, 0);
        // SAFETY: a query on a live datatype into locals.
        unsafe {
            crate::sys::PMPI_Type_get_envelope_c(
                real, &mut ni, &mut na, &mut nc, &mut nd, &mut comb,
            )
        }
    };
    #[cfg(not(ferry_has = "MPI_Type_get_envelope_c"))]
    let rc = {
        let (mut ni, mut na, mut nd) = (0, 0, 0);
        // SAFETY: a query on a live datatype into locals.
        unsafe { crate::sys::PMPI_Type_get_envelope(real, &mut ni, &mut na, &mut nd, &mut comb) }
    };
    rc == crate::sys::constants::MPI_SUCCESS()
        && comb == crate::sys::constants::combiners::MPI_COMBINER_NAMED
}

/// Whether a handle names a predefined object.
pub fn predefined(bits: u64) -> bool {
    #[cfg(ferry_mpi = "mpich")]
    {
        // MPICH: handle kind in bits 30-31, 1 = builtin.
        (bits as u32) >> 30 == 1 || bits == 0
    }
    #[cfg(not(ferry_mpi = "mpich"))]
    {
        // Open MPI: predefined objects are statics of libmpi, or the
        // program's copies of them (`R_X86_64_COPY`).
        let (lo, hi) = libmpi_range();
        bits == 0 || (lo <= bits && bits < hi) || copied_from_mpi(bits)
    }
}

/// Whether an address is inside an object of MPI copied into the
/// executable.
#[cfg(not(ferry_mpi = "mpich"))]
fn copied_from_mpi(bits: u64) -> bool {
    static COPIES: std::sync::OnceLock<Vec<(u64, u64)>> = std::sync::OnceLock::new();
    COPIES
        .get_or_init(|| {
            crate::mem::elf::objects()
                .into_iter()
                .next()
                .map(|exe| {
                    exe.copies
                        .iter()
                        .filter(|(_, _, name)| crate::mem::elf::is_mpi_symbol(name))
                        .map(|&(a, b, _)| (a as u64, b as u64))
                        .collect()
                })
                .unwrap_or_default()
        })
        .iter()
        .any(|&(a, b)| a <= bits && bits < b)
}

#[cfg(not(ferry_mpi = "mpich"))]
fn libmpi_range() -> (u64, u64) {
    static RANGE: std::sync::OnceLock<(u64, u64)> = std::sync::OnceLock::new();
    *RANGE.get_or_init(|| {
        let mut range = (0u64, 0u64);
        for o in crate::mem::elf::objects() {
            if o.file_name().starts_with("libmpi.so") {
                let lo = o.base as u64;
                let hi = o.writable.iter().map(|w| w.1 as u64).max().unwrap_or(lo);
                range = (lo, hi);
            }
        }
        range
    })
}

/// The program got a new handle of this kind.
pub fn made<T: Copy>(kind: Kind, h: T) {
    let bits = crate::sys::bits::handle_bits(h);
    if predefined(bits) {
        return;
    }
    if let Ok(mut l) = LIVE.lock() {
        l.get_or_insert_with(HashSet::new).insert((kind, bits));
    }
}

/// The program released a handle of this kind.
pub fn freed<T: Copy>(kind: Kind, h: T) {
    let bits = crate::sys::bits::handle_bits(h);
    if let Ok(mut l) = LIVE.lock() {
        if let Some(s) = l.as_mut() {
            s.remove(&(kind, bits));
        }
    }
}

/// What the program holds, in words ("" when nothing).
pub fn live() -> String {
    let Ok(l) = LIVE.lock() else {
        return String::new();
    };
    let empty = HashSet::new();
    let s = l.as_ref().unwrap_or(&empty);
    let mut counts: Vec<(Kind, usize)> = Vec::new();
    for (k, _) in s.iter() {
        match counts.iter_mut().find(|c| c.0 == *k) {
            Some(c) => c.1 += 1,
            None => counts.push((*k, 1)),
        }
    }
    counts.sort_by_key(|c| c.0 as u8);
    let mut words: Vec<String> = counts
        .iter()
        .map(|(k, n)| format!("{n} {}{}", k.noun(), if *n == 1 { "" } else { "s" }))
        .collect();
    if let Some(w) = forwarded_words() {
        words.push(w);
    }
    words.join(", ")
}

/// The objects forwarded Fortran calls made, in words.
fn forwarded_words() -> Option<String> {
    let f = FORWARDED.lock().ok()?;
    if f.is_empty() {
        return None;
    }
    let mut names: Vec<&str> = f.clone();
    names.sort_unstable();
    names.dedup();
    Some(format!(
        "{} object{} made from Fortran by {} (forwarded to the MPI's own Fortran layer)",
        f.len(),
        if f.len() == 1 { "" } else { "s" },
        names.join(", ")
    ))
}
