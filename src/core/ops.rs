//! The program's reduction operations (`MPI_Op_create`): virtual handles,
//! so that a process image can make them again on another MPI, and a
//! trampoline between MPI and the program's function, so that the function
//! sees the program's own (virtual) datatype handle, not MPI's.
//!
//! MPI gives a user function no word of its own to find the program's
//! function with, so each live operation gets one of a fixed set of
//! trampolines ([`POOL`] per kind of function); the trampoline's index is
//! its slot in the table. When every trampoline is taken, the operation
//! gets the program's function directly (it then sees MPI's datatype
//! handles, and is not carried by a process image).
//!
//! `MPI_Op_free` only marks an operation for deallocation: a nonblocking
//! reduction started with it may still call it afterwards (MPICH's
//! `coll/nonblocking2` frees the operation before waiting). So a freed
//! slot keeps the program's function for its trampoline, and slots are
//! handed out again oldest-freed last: first those never used, then the
//! one freed longest ago.
use crate::sys::constants as k;
use crate::sys::*;
use std::ffi::{c_int, c_void};
use std::sync::Mutex;

/// Trampolines per kind of user function.
pub const POOL: usize = 64;

/// A live operation of the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpSlot {
    /// The real operation of the moment.
    pub real: u64,
    /// The program's function.
    pub user_fn: usize,
    pub commute: c_int,
    /// The large-count form (`MPI_Op_create_c`).
    pub large: bool,
    /// 0 while the program holds it; after `MPI_Op_free`, the order of the
    /// free (the function stays for reductions still in flight).
    pub freed: u64,
}

impl OpSlot {
    fn live(&self) -> bool {
        self.freed == 0
    }
}

/// How many operations were freed so far (orders the reuse of slots).
static FREES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The operations, by slot: `[0, POOL)` for `MPI_Op_create`, `[POOL,
/// 2 POOL)` for `MPI_Op_create_c`.
static OPS: Mutex<[Option<OpSlot>; 2 * POOL]> = Mutex::new([None; 2 * POOL]);

type UserFn = unsafe extern "C" fn(*mut c_void, *mut c_void, *mut c_int, *mut MPI_Datatype);
type UserFnC = unsafe extern "C" fn(*mut c_void, *mut c_void, *mut MPI_Count, *mut MPI_Datatype);

/// The slot `i`, live or freed (a trampoline still calls a freed one).
fn slot(i: usize) -> Option<OpSlot> {
    OPS.lock().ok().and_then(|o| o[i])
}

/// The slot `i` while the program holds it.
fn live_slot(i: usize) -> Option<OpSlot> {
    slot(i).filter(OpSlot::live)
}

/// A slot for a new operation among `range`: one never used, else the one
/// freed longest ago (reductions started with it have had the most time
/// to end).
fn free_slot(o: &[Option<OpSlot>], range: std::ops::Range<usize>) -> Option<usize> {
    range.clone().find(|&i| o[i].is_none()).or_else(|| {
        range
            .filter_map(|i| o[i].filter(|s| !s.live()).map(|s| (s.freed, i)))
            .min()
            .map(|(_, i)| i)
    })
}

/// Calls the program's function of slot `i` with the program's handle of
/// the datatype MPI passes.
unsafe fn call(i: usize, a: *mut c_void, b: *mut c_void, len: *mut c_void, dt: *mut MPI_Datatype) {
    let Some(s) = slot(i) else {
        log::error!("reduction called through a trampoline that no operation holds");
        return;
    };
    // SAFETY: MPI passes a valid datatype pointer.
    let mut v = crate::core::handles::datatype_of_real(unsafe { *dt });
    crate::mem::as_program(|| {
        // SAFETY: the program's function, with MPI's arguments (the
        // datatype as the program knows it).
        unsafe {
            if s.large {
                std::mem::transmute::<usize, UserFnC>(s.user_fn)(
                    a,
                    b,
                    len as *mut MPI_Count,
                    &mut v,
                )
            } else {
                std::mem::transmute::<usize, UserFn>(s.user_fn)(a, b, len as *mut c_int, &mut v)
            }
        }
    });
}

macro_rules! trampolines {
    ($($i:literal)*) => {
        /// The trampolines for `MPI_Op_create`, by slot.
        const SMALL: [UserFn; POOL] = [$({
            unsafe extern "C" fn t(a: *mut c_void, b: *mut c_void, n: *mut c_int, d: *mut MPI_Datatype) {
                // SAFETY: MPI's arguments, forwarded.
                unsafe { call($i, a, b, n as *mut c_void, d) }
            }
            t
        }),*];
        /// The trampolines for `MPI_Op_create_c`, by slot minus `POOL`.
        const LARGE: [UserFnC; POOL] = [$({
            unsafe extern "C" fn t(a: *mut c_void, b: *mut c_void, n: *mut MPI_Count, d: *mut MPI_Datatype) {
                // SAFETY: MPI's arguments, forwarded.
                unsafe { call(POOL + $i, a, b, n as *mut c_void, d) }
            }
            t
        }),*];
    };
}

trampolines!(
    0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31
    32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63
);

/// Virtual operation handles: their own range, told from MPI's.
mod codec {
    use super::POOL;
    #[cfg(ferry_mpi = "mpich")]
    pub fn encode(i: usize) -> crate::sys::MPI_Op {
        // MPICH: kind 0 (never a real handle), object type of ops.
        crate::sys::bits::handle_from_bits((0x1800_0000u32 | (i as u32 + 1)) as u64)
    }
    #[cfg(ferry_mpi = "mpich")]
    pub fn decode(h: crate::sys::MPI_Op) -> Option<usize> {
        let h = crate::sys::bits::handle_bits(h) as u32;
        let i = (h & 0x03FF_FFFF) as usize;
        (h & 0xFC00_0000 == 0x1800_0000 && i != 0 && i <= 2 * POOL).then(|| i - 1)
    }
    #[cfg(not(ferry_mpi = "mpich"))]
    pub fn encode(i: usize) -> crate::sys::MPI_Op {
        // Open MPI: addresses in the reserved region, after the handles'
        // five spans.
        (crate::mem::layout::HANDLE_BASE + 5 * (1 << 24) + i) as crate::sys::MPI_Op
    }
    #[cfg(not(ferry_mpi = "mpich"))]
    pub fn decode(h: crate::sys::MPI_Op) -> Option<usize> {
        let lo = crate::mem::layout::HANDLE_BASE + 5 * (1 << 24);
        let a = h as usize;
        (a >= lo && a < lo + 2 * POOL).then(|| a - lo)
    }
}

/// The slot of a virtual operation (for its Fortran integer).
#[inline(always)]
pub fn op_index(v: MPI_Op) -> Option<usize> {
    codec::decode(v)
}

/// The program's handle of an operation slot.
#[inline(always)]
pub fn op_virtual(i: usize) -> MPI_Op {
    codec::encode(i)
}

/// The real operation of a handle the program gave.
#[inline(always)]
pub fn op_real(v: MPI_Op) -> MPI_Op {
    match codec::decode(v) {
        Some(i) => live_slot(i)
            .map(|s| crate::sys::bits::handle_from_bits(s.real))
            .unwrap_or(v),
        None => v,
    }
}

/// The program's handle of a real operation (for conversions that give a
/// handle back), or the real one.
pub fn op_of_real(real: MPI_Op) -> MPI_Op {
    let bits = crate::sys::bits::handle_bits(real);
    OPS.lock()
        .ok()
        .and_then(|o| {
            o.iter()
                .position(|s| s.is_some_and(|s| s.live() && s.real == bits))
        })
        .map(codec::encode)
        .unwrap_or(real)
}

/// `MPI_Op_create` / `MPI_Op_create_c`: the real operation with a
/// trampoline, a virtual handle for the program.
///
/// # Safety
/// `op` must be writable; `user_fn` the program's function of the kind
/// `large` says.
pub unsafe fn create(user_fn: usize, commute: c_int, large: bool, op: *mut MPI_Op) -> c_int {
    if op.is_null() {
        return k::MPI_ERR_ARG();
    }
    let base = if large { POOL } else { 0 };
    let free = OPS
        .lock()
        .ok()
        .and_then(|o| free_slot(&o[..], base..base + POOL));
    let Some(i) = free else {
        log::warn!(
            "more than {POOL} reduction operations of the program: this one sees MPI's datatype handles and cannot be carried by a process image"
        );
        // SAFETY: the program's function given to MPI as it is.
        let rc = unsafe {
            if large {
                create_large(std::mem::transmute::<usize, UserFnC>(user_fn), commute, op)
            } else {
                PMPI_Op_create(
                    Some(std::mem::transmute::<usize, UserFn>(user_fn)),
                    commute,
                    op,
                )
            }
        };
        if rc == k::MPI_SUCCESS() {
            // SAFETY: MPI wrote it.
            crate::core::objects::made(crate::core::objects::Kind::Op, unsafe { *op });
        }
        return rc;
    };
    let mut real = k::MPI_OP_NULL();
    // SAFETY: our trampoline for slot i, of the matching kind.
    let rc = unsafe { make(i, large, commute, &mut real) };
    if rc == k::MPI_SUCCESS() {
        if let Ok(mut o) = OPS.lock() {
            o[i] = Some(OpSlot {
                real: crate::sys::bits::handle_bits(real),
                user_fn,
                commute,
                large,
                freed: 0,
            });
        }
        // SAFETY: the caller's out-parameter.
        unsafe { *op = codec::encode(i) };
    }
    rc
}

unsafe fn make(i: usize, large: bool, commute: c_int, real: &mut MPI_Op) -> c_int {
    // SAFETY: the trampolines have MPI's user-function signatures.
    unsafe {
        if large {
            create_large(LARGE[i - POOL], commute, real)
        } else {
            PMPI_Op_create(Some(SMALL[i]), commute, real)
        }
    }
}

/// `MPI_Op_create_c`, where the MPI has it (MPI 4.0).
unsafe fn create_large(f: UserFnC, commute: c_int, op: *mut MPI_Op) -> c_int {
    #[cfg(ferry_has = "MPI_Op_create_c")]
    {
        // SAFETY: forwarded.
        unsafe { PMPI_Op_create_c(Some(f), commute, op) }
    }
    #[cfg(not(ferry_has = "MPI_Op_create_c"))]
    {
        let _ = (f, commute, op);
        k::MPI_ERR_INTERN()
    }
}

/// After `MPI_Op_free`: the slot is the program's no more, and its
/// trampoline may be handed out again, last (see the module's notes).
pub fn released(v: MPI_Op, real_after: MPI_Op) -> MPI_Op {
    match codec::decode(v) {
        Some(i) if real_after == k::MPI_OP_NULL() => {
            let n = FREES.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if let Ok(mut o) = OPS.lock() {
                if let Some(s) = o[i].as_mut() {
                    s.freed = n;
                }
            }
        }
        Some(_) => return v,
        None => crate::core::objects::freed(crate::core::objects::Kind::Op, v),
    }
    real_after
}

/// After a restart: every operation made again on the new MPI, with the
/// same trampoline.
pub fn remake_all() -> Result<(), String> {
    let ops: Vec<(usize, OpSlot)> = OPS
        .lock()
        .map(|o| {
            o.iter()
                .enumerate()
                .filter_map(|(i, s)| s.filter(OpSlot::live).map(|s| (i, s)))
                .collect()
        })
        .unwrap_or_default();
    for (i, s) in ops {
        let mut real = k::MPI_OP_NULL();
        // SAFETY: the slot's own trampoline.
        let rc = unsafe { make(i, s.large, s.commute, &mut real) };
        if rc != k::MPI_SUCCESS() {
            return Err(format!(
                "cannot make a reduction operation again (error {rc})"
            ));
        }
        if let Ok(mut o) = OPS.lock() {
            if let Some(x) = o[i].as_mut() {
                x.real = crate::sys::bits::handle_bits(real);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_round_trip() {
        for i in [0, 1, POOL - 1, POOL, 2 * POOL - 1] {
            assert_eq!(codec::decode(codec::encode(i)), Some(i));
        }
        assert_eq!(codec::decode(k::MPI_OP_NULL()), None);
        assert_eq!(codec::decode(k::MPI_SUM()), None);
    }

    #[test]
    fn slots_are_reused_oldest_freed_last() {
        let op = |freed| {
            Some(OpSlot {
                real: 1,
                user_fn: 2,
                commute: 1,
                large: false,
                freed,
            })
        };
        // A never-used slot first, even after freed ones.
        let o = [op(0), op(5), None, op(3)];
        assert_eq!(free_slot(&o, 0..4), Some(2));
        // Else the one freed longest ago; live ones never.
        let o = [op(0), op(5), op(0), op(3)];
        assert_eq!(free_slot(&o, 0..4), Some(3));
        let o = [op(0), op(0)];
        assert_eq!(free_slot(&o, 0..2), None);
        // Within the range asked for only.
        let o = [op(1), None, op(0)];
        assert_eq!(free_slot(&o, 2..3), None);
    }
}
