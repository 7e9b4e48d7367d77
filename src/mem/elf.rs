//! The loaded objects of the process, as the dynamic linker lists them:
//! which of their writable data is the program's to carry, where their
//! thread-local blocks are, and where each was loaded (the layout an image
//! depends on).
//!
//! Which objects are carried is decided from the dependency graph read
//! here (`DT_NEEDED`, `DT_SONAME`, the symbol versions an object defines,
//! whether it defines MPI's entry points) by [`super::closure`].
//!
//! The executable's data holds objects of MPI too: a program that refers to
//! `ompi_mpi_comm_world` or `ompi_mpi_int` gets a copy of the object in its
//! own `.bss` (an `R_X86_64_COPY` relocation), which the live MPI library
//! then uses as the object. Those ranges are cut out ([`is_mpi_symbol`]).
use std::ffi::{c_int, c_void, CStr};

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_NOTE: u32 = 4;
const PT_TLS: u32 = 7;
/// A note's type for the linker's identity of a build.
const NT_GNU_BUILD_ID: u32 = 3;
const PT_GNU_RELRO: u32 = 0x6474_e552;
const PF_W: u32 = 2;
const DT_NULL: i64 = 0;
const DT_NEEDED: i64 = 1;
const DT_HASH: i64 = 4;
const DT_STRTAB: i64 = 5;
const DT_SYMTAB: i64 = 6;
const DT_RELA: i64 = 7;
const DT_RELASZ: i64 = 8;
const DT_SONAME: i64 = 14;
const DT_GNU_HASH: i64 = 0x6fff_fef5;
const DT_VERDEF: i64 = 0x6fff_fffc;
const DT_VERDEFNUM: i64 = 0x6fff_fffd;
const R_X86_64_COPY: u64 = 5;

#[repr(C)]
struct Dyn {
    tag: i64,
    val: u64,
}

#[repr(C)]
struct Rela {
    offset: u64,
    info: u64,
    addend: i64,
}

#[repr(C)]
struct Sym {
    name: u32,
    info: u8,
    other: u8,
    shndx: u16,
    value: u64,
    size: u64,
}

/// One loaded object.
#[derive(Clone, Debug, Default)]
pub struct Object {
    /// Path as the dynamic linker has it ("" for the executable).
    pub name: String,
    /// Load bias.
    pub base: usize,
    /// Writable ranges (page-aligned, RELRO removed).
    pub writable: Vec<(usize, usize)>,
    /// The calling thread's TLS block of this object, if it has one.
    pub tls: Option<(usize, usize)>,
    /// `R_X86_64_COPY` targets: (start, end, symbol name).
    pub copies: Vec<(usize, usize, String)>,
    /// The libraries it names itself (`DT_NEEDED`).
    pub needed: Vec<String>,
    /// Its `DT_SONAME`, the name other objects need it by.
    pub soname: Option<String>,
    /// It defines `GLIBC_2.*` symbol versions: a part of the C library
    /// (libc, the dynamic linker, libm, libpthread, ...).
    pub c_library: bool,
    /// It defines MPI's profiling entry points (`PMPI_*`, `pmpi_*`): the
    /// MPI library or one of its language bindings.
    pub mpi_entry: bool,
    /// The addresses its loadable segments span.
    pub extent: (usize, usize),
    /// Its module id for thread-local storage (0: none).
    pub tls_modid: usize,
    /// The linker's identity of the build (`NT_GNU_BUILD_ID`), as loaded.
    pub build_id: Option<Vec<u8>>,
}

impl Object {
    pub fn is_executable(&self) -> bool {
        self.name.is_empty()
    }

    pub fn file_name(&self) -> &str {
        self.name.rsplit('/').next().unwrap_or(&self.name)
    }

    /// Whether `addr` lies in one of its loadable segments' span.
    pub fn contains(&self, addr: usize) -> bool {
        (self.extent.0..self.extent.1).contains(&addr)
    }

    /// The vDSO the kernel maps into every process (no file).
    pub fn is_vdso(&self) -> bool {
        self.file_name().starts_with("linux-vdso") || self.file_name().starts_with("linux-gate")
    }
}

/// Whether a symbol copied into the executable belongs to MPI (or to
/// a library MPI brings: its transport, its process manager, its
/// hardware locality).
pub fn is_mpi_symbol(name: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "mpi", "pmpi", "ompi", "opal", "orte", "pmix", "prte", "ucs_", "ucp_", "uct_", "hwloc",
        "mpl_", "i_mpi", "mca_",
    ];
    let lower = name.to_ascii_lowercase();
    PREFIXES.iter().any(|p| lower.starts_with(p))
}

/// Every loaded object, in the dynamic linker's order.
pub fn objects() -> Vec<Object> {
    let mut out: Vec<Object> = Vec::new();
    // SAFETY: the callback only reads what the dynamic linker hands it,
    // during the call.
    unsafe {
        libc::dl_iterate_phdr(Some(collect), &mut out as *mut Vec<Object> as *mut c_void);
    }
    out
}

unsafe extern "C" fn collect(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    data: *mut c_void,
) -> c_int {
    // SAFETY: the dynamic linker's description of a loaded object and our
    // vector, both valid during the call.
    let (info, out) = unsafe { (&*info, &mut *(data as *mut Vec<Object>)) };
    let name = if info.dlpi_name.is_null() {
        String::new()
    } else {
        // SAFETY: a C string of the dynamic linker.
        unsafe { CStr::from_ptr(info.dlpi_name) }
            .to_string_lossy()
            .into_owned()
    };
    // The vdso has a name like "linux-vdso.so.1" and no file; keep it (its
    // address is part of the layout too).
    let base = info.dlpi_addr as usize;
    // SAFETY: dlpi_phnum program headers at dlpi_phdr.
    let phdrs = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
    let mut relro = None;
    let mut dynamic = None;
    let mut tls_size = 0usize;
    let mut build_id = None;
    for p in phdrs {
        match p.p_type {
            PT_NOTE if build_id.is_none() => {
                // SAFETY: a loaded note segment of the object (notes are
                // in a read-only PT_LOAD), p_memsz bytes.
                let notes = unsafe {
                    std::slice::from_raw_parts(
                        (base + p.p_vaddr as usize) as *const u8,
                        p.p_memsz as usize,
                    )
                };
                build_id = gnu_build_id(notes);
            }
            PT_GNU_RELRO => {
                let lo = base + p.p_vaddr as usize;
                relro = Some((lo, super::layout::page_up(lo + p.p_memsz as usize)));
            }
            PT_DYNAMIC => dynamic = Some(base + p.p_vaddr as usize),
            PT_TLS => tls_size = p.p_memsz as usize,
            _ => {}
        }
    }
    let mut writable = Vec::new();
    let mut extent = (usize::MAX, 0usize);
    for p in phdrs.iter().filter(|p| p.p_type == PT_LOAD) {
        extent.0 = extent
            .0
            .min(super::layout::page_down(base + p.p_vaddr as usize));
        extent.1 = extent.1.max(super::layout::page_up(
            base + (p.p_vaddr + p.p_memsz) as usize,
        ));
    }
    if extent.0 > extent.1 {
        extent = (0, 0);
    }
    for p in phdrs {
        if p.p_type != PT_LOAD || p.p_flags & PF_W == 0 {
            continue;
        }
        let mut lo = super::layout::page_down(base + p.p_vaddr as usize);
        let hi = super::layout::page_up(base + (p.p_vaddr + p.p_memsz) as usize);
        if let Some((rlo, rhi)) = relro {
            if rlo <= lo + super::layout::PAGE && rhi > lo && rhi <= hi {
                lo = rhi;
            }
        }
        if lo < hi {
            writable.push((lo, hi));
        }
    }
    let tls = (!info.dlpi_tls_data.is_null() && tls_size > 0).then(|| {
        (
            info.dlpi_tls_data as usize,
            info.dlpi_tls_data as usize + tls_size,
        )
    });
    let copies = match dynamic {
        // SAFETY: the executable's dynamic section, as loaded.
        Some(d) if name.is_empty() => unsafe { copy_relocations(base, d) },
        _ => Vec::new(),
    };
    let vdso = name.starts_with("linux-vdso") || name.starts_with("linux-gate");
    let dynamic_info = match dynamic {
        // SAFETY: the object's dynamic section, as loaded (the vDSO's is
        // not relocated and names nothing of interest).
        Some(d) if !vdso => unsafe { dynamic_info(base, d) },
        _ => DynamicInfo::default(),
    };
    out.push(Object {
        name,
        base,
        writable,
        tls,
        copies,
        needed: dynamic_info.needed,
        soname: dynamic_info.soname,
        c_library: dynamic_info.c_library,
        mpi_entry: dynamic_info.mpi_entry,
        extent,
        tls_modid: info.dlpi_tls_modid,
        build_id,
    });
    0
}

/// The GNU build id among an object's notes (`namesz, descsz, type`, the
/// name and the description, each padded to 4 bytes).
fn gnu_build_id(mut notes: &[u8]) -> Option<Vec<u8>> {
    let word = |b: &[u8], i: usize| -> Option<usize> {
        Some(u32::from_ne_bytes(b.get(i..i + 4)?.try_into().ok()?) as usize)
    };
    let pad = |n: usize| (n + 3) & !3;
    while notes.len() >= 12 {
        let (namesz, descsz, kind) = (word(notes, 0)?, word(notes, 4)?, word(notes, 8)?);
        let name = notes.get(12..12 + namesz)?;
        let at = 12 + pad(namesz);
        let desc = notes.get(at..at + descsz)?;
        if kind as u32 == NT_GNU_BUILD_ID && name == b"GNU\0" && !desc.is_empty() {
            return Some(desc.to_vec());
        }
        notes = notes.get(at + pad(descsz)..)?;
    }
    None
}

/// The `R_X86_64_COPY` relocations of an object.
///
/// # Safety
/// `dynamic` must be the object's loaded dynamic section.
unsafe fn copy_relocations(base: usize, dynamic: usize) -> Vec<(usize, usize, String)> {
    let (mut rela, mut relasz, mut symtab, mut strtab) = (0usize, 0usize, 0usize, 0usize);
    // The dynamic linker relocates these addresses in place on x86-64;
    // accept both forms.
    let abs = |v: u64| {
        let v = v as usize;
        if v < base {
            v + base
        } else {
            v
        }
    };
    let mut d = dynamic as *const Dyn;
    // SAFETY: the dynamic section ends with DT_NULL.
    unsafe {
        while (*d).tag != DT_NULL {
            match (*d).tag {
                DT_RELA => rela = abs((*d).val),
                DT_RELASZ => relasz = (*d).val as usize,
                DT_SYMTAB => symtab = abs((*d).val),
                DT_STRTAB => strtab = abs((*d).val),
                _ => {}
            }
            d = d.add(1);
        }
    }
    let mut out = Vec::new();
    if rela == 0 || symtab == 0 || strtab == 0 {
        return out;
    }
    let n = relasz / std::mem::size_of::<Rela>();
    for i in 0..n {
        // SAFETY: DT_RELASZ bytes of relocations at DT_RELA; symbols and
        // names from the object's own tables.
        unsafe {
            let r = &*(rela as *const Rela).add(i);
            if r.info & 0xffff_ffff != R_X86_64_COPY {
                continue;
            }
            let sym = &*(symtab as *const Sym).add((r.info >> 32) as usize);
            let name = CStr::from_ptr((strtab + sym.name as usize) as *const libc::c_char)
                .to_string_lossy()
                .into_owned();
            let lo = base + r.offset as usize;
            out.push((lo, lo + sym.size as usize, name));
        }
    }
    out.sort();
    out
}

/// What an object's dynamic section says about it.
#[derive(Default)]
struct DynamicInfo {
    needed: Vec<String>,
    soname: Option<String>,
    c_library: bool,
    mpi_entry: bool,
}

#[repr(C)]
struct Verdef {
    version: u16,
    flags: u16,
    ndx: u16,
    cnt: u16,
    hash: u32,
    aux: u32,
    next: u32,
}

/// Whether a symbol an object defines makes it part of MPI: the profiling
/// interface every MPI library and language binding exports.
pub fn is_mpi_entry(name: &[u8]) -> bool {
    name.len() > 5 && name[..5].eq_ignore_ascii_case(b"pmpi_")
}

/// Reads an object's dependencies, name, version definitions and whether
/// it defines MPI's entry points.
///
/// # Safety
/// `dynamic` must be the object's loaded dynamic section.
unsafe fn dynamic_info(base: usize, dynamic: usize) -> DynamicInfo {
    let abs = |v: u64| {
        let v = v as usize;
        if v < base {
            v + base
        } else {
            v
        }
    };
    let (mut strtab, mut symtab, mut hash, mut gnu_hash) = (0usize, 0usize, 0usize, 0usize);
    let (mut verdef, mut verdefnum, mut soname) = (0usize, 0usize, None);
    let mut offsets = Vec::new();
    let mut d = dynamic as *const Dyn;
    // SAFETY: the dynamic section ends with DT_NULL.
    unsafe {
        while (*d).tag != DT_NULL {
            let v = (*d).val;
            match (*d).tag {
                DT_STRTAB => strtab = abs(v),
                DT_SYMTAB => symtab = abs(v),
                DT_HASH => hash = abs(v),
                DT_GNU_HASH => gnu_hash = abs(v),
                DT_VERDEF => verdef = abs(v),
                DT_VERDEFNUM => verdefnum = v as usize,
                DT_SONAME => soname = Some(v as usize),
                DT_NEEDED => offsets.push(v as usize),
                _ => {}
            }
            d = d.add(1);
        }
    }
    let mut out = DynamicInfo::default();
    if strtab == 0 {
        return out;
    }
    // SAFETY: offsets into the object's own string table.
    let string = |o: usize| unsafe { CStr::from_ptr((strtab + o) as *const libc::c_char) };
    out.needed = offsets
        .into_iter()
        .map(|o| string(o).to_string_lossy().into_owned())
        .collect();
    out.soname = soname.map(|o| string(o).to_string_lossy().into_owned());
    // Version definitions: the C library's objects define GLIBC_2.x.
    let mut at = verdef;
    for _ in 0..verdefnum.min(1024) {
        if at == 0 {
            break;
        }
        // SAFETY: DT_VERDEFNUM entries chained from DT_VERDEF, each with
        // its auxiliary entries (the first names the version).
        unsafe {
            let v = &*(at as *const Verdef);
            if v.cnt > 0 {
                let name_off = *((at + v.aux as usize) as *const u32) as usize;
                if string(name_off).to_bytes().starts_with(b"GLIBC_2") {
                    out.c_library = true;
                }
            }
            at = if v.next == 0 { 0 } else { at + v.next as usize };
        }
    }
    if symtab != 0 {
        // SAFETY: the hash tables of the object, as loaded.
        let count = unsafe { symbol_count(hash, gnu_hash) };
        for i in 0..count {
            // SAFETY: `count` symbols at DT_SYMTAB, names in DT_STRTAB.
            let sym = unsafe { &*(symtab as *const Sym).add(i) };
            if sym.shndx != 0 && is_mpi_entry(string(sym.name as usize).to_bytes()) {
                out.mpi_entry = true;
                break;
            }
        }
    }
    out
}

/// How many dynamic symbols an object has: `nchain` of its SysV hash
/// table, or one past the last symbol its GNU hash table reaches.
///
/// # Safety
/// Each address is zero or the object's loaded table of that kind.
unsafe fn symbol_count(hash: usize, gnu_hash: usize) -> usize {
    if hash != 0 {
        // SAFETY: nbucket, nchain, ...
        return unsafe { *((hash + 4) as *const u32) } as usize;
    }
    if gnu_hash == 0 {
        return 0;
    }
    // SAFETY: nbuckets, symoffset, bloom_size, bloom_shift, the bloom
    // words, the buckets, then the chains (each ends with its low bit set).
    unsafe {
        let words = gnu_hash as *const u32;
        let (nbuckets, symoffset, bloom) = (
            *words as usize,
            *words.add(1) as usize,
            *words.add(2) as usize,
        );
        let buckets = (gnu_hash + 16 + bloom * 8) as *const u32;
        let chains = buckets.add(nbuckets);
        let mut last = 0usize;
        for b in 0..nbuckets {
            last = last.max(*buckets.add(b) as usize);
        }
        if last < symoffset {
            return symoffset;
        }
        while *chains.add(last - symoffset) & 1 == 0 {
            last += 1;
        }
        last + 1
    }
}

/// `[lo, hi)` minus the given sorted ranges.
pub fn subtract(lo: usize, hi: usize, holes: &[(usize, usize)], out: &mut Vec<(usize, usize)>) {
    let mut cur = lo;
    for &(a, b) in holes {
        if b <= cur || a >= hi {
            continue;
        }
        if a > cur {
            out.push((cur, a));
        }
        cur = cur.max(b);
    }
    if cur < hi {
        out.push((cur, hi));
    }
}

/// The load bias of libferry itself.
pub fn ferry_base() -> usize {
    // SAFETY: a plain C struct, for which all zeroes is a valid value.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr on one of our own functions; fills `info`.
    let ok = unsafe { libc::dladdr(ferry_base as *const c_void, &mut info) };
    if ok == 0 {
        0
    } else {
        info.dli_fbase as usize
    }
}

/// The path of libferry itself.
pub fn ferry_path() -> Option<String> {
    // SAFETY: a plain C struct, for which all zeroes is a valid value.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: as in `ferry_base`.
    let ok = unsafe { libc::dladdr(ferry_base as *const c_void, &mut info) };
    if ok == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: a C string of the dynamic linker.
    Some(
        unsafe { CStr::from_ptr(info.dli_fname) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// Identity of the running binary and library (hashes of the files),
/// computed once.
pub fn identity() -> (String, u64, String, u64) {
    static ID: std::sync::OnceLock<(String, u64, String, u64)> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let objs = objects();
        let fb = ferry_base();
        let id_of = |o: Option<&Object>, file: &str| {
            identity_hash(o.and_then(|o| o.build_id.as_deref()), file)
        };
        let exe = std::fs::read_link("/proc/self/exe")
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let ferry = ferry_path().unwrap_or_default();
        (
            exe.clone(),
            id_of(objs.iter().find(|o| o.is_executable()), "/proc/self/exe"),
            ferry.clone(),
            id_of(objs.iter().find(|o| o.base == fb), &ferry),
        )
    })
    .clone()
}

/// What identifies a build: the linker's build id of the object as
/// loaded, or (an object linked without one) the hash of its file. The
/// build id costs nothing to read, where hashing the file took 16 ms of
/// every migration's critical path (libferry is large).
fn identity_hash(build_id: Option<&[u8]>, file: &str) -> u64 {
    match build_id {
        Some(id) => {
            let mut h = xxhash_rust::xxh3::Xxh3::new();
            h.update(b"build-id:");
            h.update(id);
            h.digest()
        }
        None => std::fs::read(file)
            .map(|b| xxhash_rust::xxh3::xxh3_64(&b))
            .unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(name: &[u8], kind: u32, desc: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(name.len() as u32).to_ne_bytes());
        v.extend_from_slice(&(desc.len() as u32).to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        for part in [name, desc] {
            v.extend_from_slice(part);
            v.resize((v.len() + 3) & !3, 0);
        }
        v
    }

    #[test]
    fn build_id_among_notes() {
        let id = [
            0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
        ];
        let mut notes = note(b"GNU\0", 1, &[0; 16]); // ABI tag first
        notes.extend(note(b"GNU\0", NT_GNU_BUILD_ID, &id));
        assert_eq!(gnu_build_id(&notes).as_deref(), Some(&id[..]));
        // Another vendor's note of the same type is not it.
        assert_eq!(gnu_build_id(&note(b"XYZ\0", NT_GNU_BUILD_ID, &id)), None);
        // Truncated or empty: none, never a panic.
        assert_eq!(gnu_build_id(&notes[..notes.len() - 5]), None);
        assert_eq!(gnu_build_id(&[]), None);
        assert_eq!(gnu_build_id(&[1, 2, 3]), None);
    }

    #[test]
    fn this_test_binary_has_its_build_id() {
        // The test executable is linked like libferry (gcc passes
        // --build-id on Debian): its loaded notes give the id readelf shows.
        let exe = objects().into_iter().find(|o| o.is_executable());
        let id = exe.and_then(|o| o.build_id).expect("a build id");
        assert!(id.len() >= 8, "{id:?}");
    }

    #[test]
    fn subtracting_holes() {
        let mut out = Vec::new();
        subtract(0, 100, &[(10, 20), (15, 30), (90, 120)], &mut out);
        assert_eq!(out, vec![(0, 10), (30, 90)]);
        out.clear();
        subtract(0, 100, &[], &mut out);
        assert_eq!(out, vec![(0, 100)]);
        out.clear();
        subtract(50, 60, &[(0, 100)], &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn mpi_symbols() {
        assert!(is_mpi_symbol("ompi_mpi_comm_world"));
        assert!(is_mpi_symbol("ompi_mpi_int"));
        assert!(is_mpi_symbol("MPIR_F_NeedInit"));
        assert!(is_mpi_symbol("mpi_fortran_bottom_"));
        assert!(!is_mpi_symbol("environ"));
        assert!(!is_mpi_symbol("_ZSt4cout"));
        assert!(!is_mpi_symbol("stdout"));
    }

    #[test]
    fn this_process_lists_itself() {
        let objs = objects();
        assert!(objs[0].is_executable());
        assert!(objs.iter().any(|o| o.file_name().starts_with("libc.so")));
        assert!(objs[0].writable.iter().all(|(a, b)| a < b));
        assert!(objs[0].needed.iter().any(|n| n.starts_with("libc.so")));
    }
}
