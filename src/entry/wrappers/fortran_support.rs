//! What the generated Fortran entry points (`fortran.rs` under Open MPI,
//! `fortran_mpich.rs` under MPICH) need: Fortran's sentinels recognized,
//! statuses and strings converted, and the boundary of an entry point
//! (panics caught, the error code written to `ierror`).
//!
//! Fortran passes every argument by reference. `INTEGER` is `MPI_Fint`
//! (`int` here), so integer scalars and arrays pass through as they are;
//! handles are converted with the library's own `f2c`/`c2f` (virtual Fortran
//! integers, see `special::fortran`); `LOGICAL` is an `int` whose `.TRUE.`
//! is 1 with gfortran, the value Open MPI is configured with, so logicals
//! pass through too. A Fortran `CHARACTER` argument comes with its length
//! as a hidden `size_t` after the other arguments.
use crate::sys::constants as k;
use crate::sys::{MPI_Fint, MPI_Status};
use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::OnceLock;

/// The addresses of one Fortran sentinel (a variable of a common block of
/// the MPI's Fortran library, or the program's own copy of it), under each
/// name mangling a Fortran compiler may give it (Open MPI), and MPICH's
/// `use mpi_f08` ones (C variables bound by name: `MPIR_F08_MPI_BOTTOM`,
/// `MPIR_F08_MPI_STATUS_IGNORE_OBJ`). 0 where there is none.
struct Sentinel([usize; 6]);

impl Sentinel {
    fn lookup(stem: &str) -> Sentinel {
        let upper = stem.to_ascii_uppercase();
        let names = [
            format!("mpi_fortran_{stem}_\0"),
            format!("mpi_fortran_{stem}\0"),
            format!("mpi_fortran_{stem}__\0"),
            format!("MPI_FORTRAN_{upper}\0"),
            format!("MPIR_F08_MPI_{upper}\0"),
            format!("MPIR_F08_MPI_{upper}_OBJ\0"),
        ];
        let mut a = [0usize; 6];
        for (slot, name) in a.iter_mut().zip(names.iter()) {
            // SAFETY: a NUL-terminated name; RTLD_DEFAULT looks it up the
            // way the program's and the MPI's own references were bound
            // (the executable's copy of a common block first).
            *slot =
                unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr() as *const c_char) } as usize;
        }
        Sentinel(a)
    }

    #[inline(always)]
    fn is(&self, p: *const c_void) -> bool {
        let p = p as usize;
        p != 0 && self.0.contains(&p)
    }
}

struct Sentinels {
    bottom: Sentinel,
    in_place: Sentinel,
    status_ignore: Sentinel,
    statuses_ignore: Sentinel,
}

static SENTINELS: OnceLock<Sentinels> = OnceLock::new();

#[inline(always)]
fn sentinels() -> &'static Sentinels {
    SENTINELS.get_or_init(|| Sentinels {
        bottom: Sentinel::lookup("bottom"),
        in_place: Sentinel::lookup("in_place"),
        status_ignore: Sentinel::lookup("status_ignore"),
        statuses_ignore: Sentinel::lookup("statuses_ignore"),
    })
}

/// A choice buffer from Fortran: `MPI_BOTTOM` and `MPI_IN_PLACE` become C's.
#[cfg_attr(ferry_mpi = "mpich", allow(dead_code))] // no MPICH entry point takes a buffer
#[inline(always)]
pub fn buf(p: *const c_void) -> *mut c_void {
    let s = sentinels();
    if s.in_place.is(p) {
        k::MPI_IN_PLACE()
    } else if s.bottom.is(p) {
        k::MPI_BOTTOM()
    } else {
        p as *mut c_void
    }
}

/// Whether a Fortran status argument is `MPI_STATUS_IGNORE`.
#[inline(always)]
pub fn status_ignored(p: *const MPI_Fint) -> bool {
    p.is_null() || sentinels().status_ignore.is(p as *const c_void)
}

/// Whether a Fortran array of statuses is `MPI_STATUSES_IGNORE`.
#[inline(always)]
pub fn statuses_ignored(p: *const MPI_Fint) -> bool {
    p.is_null() || sentinels().statuses_ignore.is(p as *const c_void)
}

/// `MPI_STATUS_SIZE`: the integers of one Fortran status.
#[inline(always)]
pub fn status_size() -> usize {
    std::mem::size_of::<MPI_Status>() / std::mem::size_of::<MPI_Fint>()
}

/// A zeroed C status.
#[inline(always)]
pub fn status_new() -> MPI_Status {
    // SAFETY: MPI_Status is plain integers: all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}

/// Copies a C status into the Fortran one at `f` (not an ignore sentinel).
///
/// # Safety
/// `f` points to `MPI_STATUS_SIZE` writable integers.
#[inline(always)]
pub unsafe fn status_c2f(c: &MPI_Status, f: *mut MPI_Fint) {
    // SAFETY: the caller's contract; MPI copies the fields.
    unsafe { crate::sys::PMPI_Status_c2f(c, f) };
}

/// The C status of a Fortran one given as input.
///
/// # Safety
/// `f` points to `MPI_STATUS_SIZE` integers.
#[inline(always)]
pub unsafe fn status_f2c(f: *const MPI_Fint) -> MPI_Status {
    let mut c = status_new();
    // SAFETY: the caller's contract.
    unsafe { crate::sys::PMPI_Status_f2c(f, &mut c) };
    c
}

/// Copies `n` C statuses into a Fortran array of statuses.
///
/// # Safety
/// `f` points to `n * MPI_STATUS_SIZE` writable integers.
pub unsafe fn statuses_c2f(c: &[MPI_Status], n: usize, f: *mut MPI_Fint) {
    let size = status_size();
    for (i, s) in c.iter().take(n).enumerate() {
        // SAFETY: the caller's contract.
        unsafe { status_c2f(s, f.add(i * size)) };
    }
}

/// A Fortran string argument as a C string: leading and trailing blanks
/// dropped (as Open MPI's own Fortran layer does).
///
/// # Safety
/// `p` points to `len` readable bytes (or is null).
pub unsafe fn string_in(p: *const c_char, len: usize) -> Vec<u8> {
    if p.is_null() {
        return vec![0];
    }
    // SAFETY: the caller's contract.
    let bytes = unsafe { std::slice::from_raw_parts(p as *const u8, len) };
    let end = bytes.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
    let start = bytes[..end].iter().position(|&b| b != b' ').unwrap_or(end);
    let mut v: Vec<u8> = bytes[start..end]
        .iter()
        .copied()
        .take_while(|&b| b != 0)
        .collect();
    v.push(0);
    v
}

/// A buffer for a string MPI writes (at most its own `MPI_MAX_*` limit,
/// all of which are below 4096 here, plus the NUL).
pub fn string_buffer(len: usize) -> Vec<u8> {
    vec![0u8; len.max(4096) + 1]
}

/// Copies a string MPI wrote into a Fortran `CHARACTER` of `len`, padded
/// with blanks (as Fortran's assignment does).
///
/// # Safety
/// `f` points to `len` writable bytes (or is null).
pub unsafe fn string_out(c: &[u8], f: *mut c_char, len: usize) {
    if f.is_null() {
        return;
    }
    let s = CStr::from_bytes_until_nul(c).map_or(&[][..], |s| s.to_bytes());
    // SAFETY: the caller's contract.
    let out = unsafe { std::slice::from_raw_parts_mut(f as *mut u8, len) };
    let n = s.len().min(len);
    out[..n].copy_from_slice(&s[..n]);
    out[n..].fill(b' ');
}

/// 0-based indices MPI wrote become Fortran's 1-based ones
/// (`MPI_UNDEFINED` stays).
///
/// # Safety
/// `p` points to `n` writable integers.
pub unsafe fn indices_to_fortran(p: *mut c_int, n: c_int) {
    if p.is_null() || n <= 0 || n == k::MPI_UNDEFINED() {
        return;
    }
    for i in 0..n as usize {
        // SAFETY: the caller's contract.
        unsafe {
            let v = p.add(i);
            if *v >= 0 {
                *v += 1;
            }
        }
    }
}

/// The length of an array argument (a Fortran integer read by reference:
/// an `INTEGER`, or an `INTEGER(KIND=MPI_COUNT_KIND)` of a large-count form).
///
/// # Safety
/// `p` is readable (or null: 0).
#[inline(always)]
pub unsafe fn len<T: Copy + Into<i64>>(p: *const T) -> usize {
    if p.is_null() {
        0
    } else {
        // SAFETY: the caller's contract.
        let n: i64 = (unsafe { *p }).into();
        n.max(0) as usize
    }
}

/// Runs a Fortran entry point's body: the body calls the library's C
/// wrapper, which counts the call (this boundary does not), and panics of
/// ours are caught here too. The body's error code goes to `ierror`.
#[inline(always)]
pub fn entry(name: &'static str, ierror: *mut MPI_Fint, body: impl FnOnce() -> c_int) {
    let rc = crate::calls::boundary::guard_uncounted(
        name,
        crate::calls::boundary::internal_error(),
        body,
    );
    if !ierror.is_null() {
        // SAFETY: Fortran passed `ierror` by reference.
        unsafe { *ierror = rc };
    }
}

// --- Forwarding to Open MPI's own Fortran functions ---------------------------

/// A function of the MPI's Fortran library, looked up once after this
/// library (`dlsym(RTLD_NEXT)`): the one the program would have called.
pub struct Next {
    name: &'static str,
    addr: OnceLock<usize>,
}

impl Next {
    /// `name` ends with a NUL.
    pub const fn new(name: &'static str) -> Next {
        Next {
            name,
            addr: OnceLock::new(),
        }
    }

    /// The function's address, if the MPI has it.
    pub fn get(&self) -> Option<*mut c_void> {
        let a = *self.addr.get_or_init(|| {
            // SAFETY: a NUL-terminated name (generated).
            unsafe { libc::dlsym(libc::RTLD_NEXT, self.name.as_ptr() as *const c_char) as usize }
        });
        (a != 0).then_some(a as *mut c_void)
    }
}

#[cfg_attr(ferry_mpi = "openmpi", allow(unused_imports))]
// Open MPI's Fortran layer never calls a C wrapper
pub use crate::calls::boundary::forwarding;

/// Runs a forwarding entry point: counted here (the library's C wrapper is
/// not involved, or does not count while [`forwarding`]), panics caught.
/// `body` returns the error code the MPI wrote; it is written back to
/// `ierror` only if ours differs (a panic).
pub fn forward(name: &'static str, ierror: *mut MPI_Fint, body: impl FnOnce() -> c_int) {
    // Counted first, then the flag is up while the MPI's function runs.
    let rc = crate::calls::boundary::guard(name, crate::calls::boundary::internal_error(), || {
        crate::calls::boundary::while_forwarding(body)
    });
    if !ierror.is_null() {
        // SAFETY: Fortran passed `ierror` by reference.
        unsafe { *ierror = rc };
    }
}

/// The MPI has no such Fortran function (an error, said once per call).
pub fn missing(name: &str) -> c_int {
    log::error!("{name}: not in the MPI's Fortran library; the call returns MPI_ERR_INTERN");
    crate::calls::boundary::internal_error()
}

#[cfg(ferry_mpi = "openmpi")]
use crate::core::fortran;

/// The real Fortran integer of a program's communicator (an integer that is
/// not one of the library's is MPI's own, passed as it is).
#[cfg(ferry_mpi = "openmpi")]
pub fn real_fint_comm(f: MPI_Fint) -> MPI_Fint {
    if !fortran::ours(f) {
        return f;
    }
    let real = crate::core::handles::comm_real(fortran::comm_f2c(f));
    // SAFETY: a real (or foreign) handle: MPI converts it.
    unsafe { crate::sys::PMPI_Comm_c2f(real) }
}
#[cfg(ferry_mpi = "openmpi")]
#[allow(dead_code)] // for the generated code: no forwarded function of this spec needs it
pub fn real_fint_group(f: MPI_Fint) -> MPI_Fint {
    if !fortran::ours(f) {
        return f;
    }
    let real = crate::core::handles::group_real(fortran::group_f2c(f));
    // SAFETY: as above.
    unsafe { crate::sys::PMPI_Group_c2f(real) }
}
#[cfg(ferry_mpi = "openmpi")]
#[allow(dead_code)] // for the generated code: no forwarded function of this spec needs it
pub fn real_fint_request(f: MPI_Fint) -> MPI_Fint {
    if !fortran::ours(f) {
        return f;
    }
    let real = crate::core::handles::request_real(fortran::request_f2c(f));
    // SAFETY: as above.
    unsafe { crate::sys::PMPI_Request_c2f(real) }
}
#[cfg(ferry_mpi = "openmpi")]
pub fn real_fint_datatype(f: MPI_Fint) -> MPI_Fint {
    if !fortran::ours(f) {
        return f;
    }
    let real = crate::core::handles::datatype_real(fortran::datatype_f2c(f));
    // SAFETY: as above.
    unsafe { crate::sys::PMPI_Type_c2f(real) }
}
#[cfg(ferry_mpi = "openmpi")]
#[allow(dead_code)] // for the generated code: no forwarded function of this spec needs it
pub fn real_fint_op(f: MPI_Fint) -> MPI_Fint {
    if !fortran::ours(f) {
        return f;
    }
    let real = crate::core::ops::op_real(fortran::op_f2c(f));
    // SAFETY: as above.
    unsafe { crate::sys::PMPI_Op_c2f(real) }
}

/// The program's Fortran integer of a handle MPI handed back as its own
/// (the virtual one if the library knows the real handle).
#[cfg(ferry_mpi = "openmpi")]
#[allow(dead_code)] // for the generated code: no forwarded function of this spec needs it
pub fn program_fint_comm(f: MPI_Fint) -> MPI_Fint {
    fortran::comm_c2f(fortran::comm_f2c(f))
}
#[cfg(ferry_mpi = "openmpi")]
#[allow(dead_code)] // for the generated code: no forwarded function of this spec needs it
pub fn program_fint_group(f: MPI_Fint) -> MPI_Fint {
    fortran::group_c2f(fortran::group_f2c(f))
}
#[cfg(ferry_mpi = "openmpi")]
#[allow(dead_code)] // for the generated code: no forwarded function of this spec needs it
pub fn program_fint_request(f: MPI_Fint) -> MPI_Fint {
    // SAFETY: MPI's own integer.
    let real = unsafe { crate::sys::PMPI_Request_f2c(f) };
    fortran::request_c2f(crate::core::handles::request_of_real(real).unwrap_or(real))
}
#[cfg(ferry_mpi = "openmpi")]
#[allow(dead_code)] // for the generated code: no forwarded function of this spec needs it
pub fn program_fint_datatype(f: MPI_Fint) -> MPI_Fint {
    // SAFETY: MPI's own integer.
    let real = unsafe { crate::sys::PMPI_Type_f2c(f) };
    fortran::datatype_c2f(crate::core::handles::datatype_of_real(real))
}
#[cfg(ferry_mpi = "openmpi")]
#[allow(dead_code)] // for the generated code: no forwarded function of this spec needs it
pub fn program_fint_op(f: MPI_Fint) -> MPI_Fint {
    // SAFETY: MPI's own integer.
    let real = unsafe { crate::sys::PMPI_Op_f2c(f) };
    fortran::op_c2f(crate::core::ops::op_of_real(real))
}

/// The lengths of the per-peer arrays of an `alltoallw`-like call (send,
/// receive) on a program's communicator.
#[cfg(ferry_mpi = "openmpi")]
pub fn peers(comm: MPI_Fint, neighbor: bool) -> (usize, usize) {
    crate::core::handles::alltoallw_lens(
        crate::core::handles::comm_real(fortran::comm_f2c(comm)),
        neighbor,
    )
}

// Under MPICH a Fortran integer is the C handle: a virtual one of ours, or
// MPICH's own.

/// The real handle of a program's communicator (MPICH).
#[cfg(ferry_mpi = "mpich")]
pub fn real_fint_comm(f: MPI_Fint) -> MPI_Fint {
    crate::core::handles::comm_real(crate::sys::MPI_Comm(f)).0
}
#[cfg(ferry_mpi = "mpich")]
#[allow(dead_code)] // for the generated code: its users are MPI-4.1 functions MPICH 4.0.2 lacks
pub fn real_fint_request(f: MPI_Fint) -> MPI_Fint {
    crate::core::handles::request_real(crate::sys::MPI_Request(f)).0
}
#[cfg(ferry_mpi = "mpich")]
pub fn real_fint_datatype(f: MPI_Fint) -> MPI_Fint {
    crate::core::handles::datatype_real(crate::sys::MPI_Datatype(f)).0
}

/// The MPI's own Fortran `MPI_COMM_GET_ATTR` / `MPI_COMM_SET_ATTR` (an
/// `INTEGER(KIND=MPI_ADDRESS_KIND)` value): Open MPI's `ompi_x_f`, MPICH's
/// `pmpi_x_`.
#[cfg(ferry_mpi = "openmpi")]
static ATTR_GET: Next = Next::new("ompi_comm_get_attr_f\0");
#[cfg(ferry_mpi = "openmpi")]
static ATTR_SET: Next = Next::new("ompi_comm_set_attr_f\0");
#[cfg(ferry_mpi = "mpich")]
static ATTR_GET: Next = Next::new("pmpi_comm_get_attr_\0");
#[cfg(ferry_mpi = "mpich")]
static ATTR_SET: Next = Next::new("pmpi_comm_set_attr_\0");

/// The Fortran integer of a real communicator.
#[cfg(ferry_mpi = "openmpi")]
fn comm_fint(c: crate::sys::MPI_Comm) -> MPI_Fint {
    // SAFETY: a real handle: MPI converts it.
    unsafe { crate::sys::PMPI_Comm_c2f(c) }
}
#[cfg(ferry_mpi = "mpich")]
fn comm_fint(c: crate::sys::MPI_Comm) -> MPI_Fint {
    // MPICH's Fortran integer is the C handle (its MPI_Comm_c2f is a macro).
    c.0
}

/// Carries the attribute of keyval `kv` (made from Fortran) from `old` to
/// `new`, real communicators, through the MPI's own Fortran calls: the
/// value keeps its Fortran form (read and set from C, MPI would hand over
/// the address of its copy instead, and Fortran would read that address
/// back). No copy function runs. Returns whether there was one to carry.
///
/// # Safety
/// `old` and `new` are live communicators of this process.
pub unsafe fn carry_fortran_attribute(
    old: crate::sys::MPI_Comm,
    new: crate::sys::MPI_Comm,
    kv: c_int,
) -> bool {
    type Get =
        unsafe extern "C" fn(*mut MPI_Fint, *mut MPI_Fint, *mut i64, *mut MPI_Fint, *mut MPI_Fint);
    type Set = unsafe extern "C" fn(*mut MPI_Fint, *mut MPI_Fint, *mut i64, *mut MPI_Fint);
    let (Some(get), Some(set)) = (ATTR_GET.get(), ATTR_SET.get()) else {
        return false;
    };
    // SAFETY: the MPI's Fortran functions of these signatures (found by
    // their names); every argument is a local passed by reference, as
    // Fortran does.
    unsafe {
        let get: Get = std::mem::transmute(get);
        let set: Set = std::mem::transmute(set);
        let (mut from, mut to) = (comm_fint(old), comm_fint(new));
        let (mut key, mut val, mut flag, mut err): (MPI_Fint, i64, MPI_Fint, MPI_Fint) =
            (kv as MPI_Fint, 0, 0, 0);
        get(&mut from, &mut key, &mut val, &mut flag, &mut err);
        if err != k::MPI_SUCCESS() as MPI_Fint || flag == 0 {
            return false;
        }
        set(&mut to, &mut key, &mut val, &mut err);
        err == k::MPI_SUCCESS() as MPI_Fint
    }
}

/// The library's slot of a program's communicator given as a Fortran
/// integer (none for one of MPI's own it does not know).
#[cfg(ferry_mpi = "openmpi")]
pub fn comm_slot(f: MPI_Fint) -> crate::core::handles::CommRef {
    crate::core::handles::comm_in(fortran::comm_f2c(f)).1
}
#[cfg(ferry_mpi = "mpich")]
#[allow(dead_code)] // for the generated code: mpich-deb's f08 collectives; the pip MPICH has none
pub fn comm_slot(f: MPI_Fint) -> crate::core::handles::CommRef {
    crate::core::handles::comm_in(crate::sys::MPI_Comm(f)).1
}
