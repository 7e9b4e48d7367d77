//! The macro-only MPI constants, read from objects built by `constants.c`.
//!
//! Handles and sentinels are `static`s in C (a load each: Open MPI's are
//! addresses known only at load time); integer constants are Rust `const`s
//! generated at build time, so comparing with `MPI_SUCCESS` costs nothing.
use super::*;
use std::ffi::{c_char, c_int, c_void};

/// Integer constants, evaluated by build.rs with the MPI's own header.
mod ints {
    use std::ffi::c_int;
    include!(concat!(env!("OUT_DIR"), "/int_constants.rs"));
}

mod c {
    use super::*;
    extern "C" {
        pub static ferry_MPI_COMM_WORLD: MPI_Comm;
        pub static ferry_MPI_COMM_SELF: MPI_Comm;
        pub static ferry_MPI_COMM_NULL: MPI_Comm;
        pub static ferry_MPI_GROUP_NULL: MPI_Group;
        pub static ferry_MPI_GROUP_EMPTY: MPI_Group;
        pub static ferry_MPI_REQUEST_NULL: MPI_Request;
        pub static ferry_MPI_INFO_NULL: MPI_Info;
        pub static ferry_MPI_ERRHANDLER_NULL: MPI_Errhandler;
        pub static ferry_MPI_ERRORS_RETURN: MPI_Errhandler;
        pub static ferry_MPI_ERRORS_ARE_FATAL: MPI_Errhandler;
        pub static ferry_MPI_DATATYPE_NULL: MPI_Datatype;
        pub static ferry_MPI_BYTE: MPI_Datatype;
        pub static ferry_MPI_INT: MPI_Datatype;
        pub static ferry_MPI_UINT64_T: MPI_Datatype;
        pub static ferry_MPI_INT64_T: MPI_Datatype;
        pub static ferry_MPI_PACKED: MPI_Datatype;
        pub static ferry_MPI_OP_NULL: MPI_Op;
        pub static ferry_MPI_MAX: MPI_Op;
        pub static ferry_MPI_SUM: MPI_Op;
        pub static ferry_MPI_REPLACE: MPI_Op;
        pub static ferry_MPI_BOR: MPI_Op;
        pub static ferry_MPI_MESSAGE_NULL: MPI_Message;
        pub static ferry_MPI_MESSAGE_NO_PROC: MPI_Message;
        pub static ferry_MPI_WIN_NULL: MPI_Win;
        pub static ferry_MPI_STATUS_IGNORE: *mut MPI_Status;
        pub static ferry_MPI_STATUSES_IGNORE: *mut MPI_Status;
        pub static ferry_MPI_IN_PLACE: *mut c_void;
        pub static ferry_MPI_BOTTOM: *mut c_void;
        pub static ferry_MPI_ERRCODES_IGNORE: *mut c_int;
        pub static ferry_MPI_ARGV_NULL: *mut *mut c_char;
        pub static ferry_status_size: c_int;
    }
}

#[inline(always)]
#[allow(non_snake_case)]
pub fn MPI_COMM_WORLD() -> MPI_Comm {
    // SAFETY: an immutable object initialised at load time by constants.c.
    unsafe { c::ferry_MPI_COMM_WORLD }
}
#[inline(always)]
#[allow(non_snake_case)]
pub fn MPI_COMM_SELF() -> MPI_Comm {
    // SAFETY: an immutable object initialised at load time by constants.c.
    unsafe { c::ferry_MPI_COMM_SELF }
}
#[inline(always)]
#[allow(non_snake_case)]
pub fn MPI_COMM_NULL() -> MPI_Comm {
    // SAFETY: an immutable object initialised at load time by constants.c.
    unsafe { c::ferry_MPI_COMM_NULL }
}
#[inline(always)]
#[allow(non_snake_case)]
pub fn MPI_GROUP_NULL() -> MPI_Group {
    // SAFETY: an immutable object initialised at load time by constants.c.
    unsafe { c::ferry_MPI_GROUP_NULL }
}
#[inline(always)]
#[allow(non_snake_case)]
pub fn MPI_GROUP_EMPTY() -> MPI_Group {
    // SAFETY: an immutable object initialised at load time by constants.c.
    unsafe { c::ferry_MPI_GROUP_EMPTY }
}
#[inline(always)]
#[allow(non_snake_case)]
pub fn MPI_REQUEST_NULL() -> MPI_Request {
    // SAFETY: an immutable object initialised at load time by constants.c.
    unsafe { c::ferry_MPI_REQUEST_NULL }
}
#[inline(always)]
#[allow(non_snake_case)]
pub fn MPI_INFO_NULL() -> MPI_Info {
    // SAFETY: an immutable object initialised at load time by constants.c.
    unsafe { c::ferry_MPI_INFO_NULL }
}
#[inline(always)]
#[allow(non_snake_case)]
pub fn MPI_ERRHANDLER_NULL() -> MPI_Errhandler {
    // SAFETY: an immutable object initialised at load time by constants.c.
    unsafe { c::ferry_MPI_ERRHANDLER_NULL }
}
#[inline(always)]
#[allow(non_snake_case)]
pub fn MPI_ERRORS_RETURN() -> MPI_Errhandler {
    // SAFETY: an immutable object initialised at load time by constants.c.
    unsafe { c::ferry_MPI_ERRORS_RETURN }
}
#[inline(always)]
#[allow(non_snake_case)]
pub fn MPI_ERRORS_ARE_FATAL() -> MPI_Errhandler {
    // SAFETY: an immutable object initialised at load time by constants.c.
    unsafe { c::ferry_MPI_ERRORS_ARE_FATAL }
}
#[inline(always)]
#[allow(non_snake_case)]
pub fn MPI_DATATYPE_NULL() -> MPI_Datatype {
    // SAFETY: an immutable object initialised at load time by constants.c.
    unsafe { c::ferry_MPI_DATATYPE_NULL }
}
#[inline(always)]
#[allow(non_snake_case)]
pub fn MPI_BYTE() -> MPI_Datatype {
    // SAFETY: an immutable object initialised at load time by constants.c.
    unsafe { c::ferry_MPI_BYTE }
}
#[inline(always)]
#[allow(non_snake_case)]
pub fn MPI_INT() -> MPI_Datatype {
    // SAFETY: an immutable object initialised at load time by constants.c.
    unsafe { c::ferry_MPI_INT }
}
#[inline(always)]
#[allow(non_snake_case)]
pub fn MPI_UINT64_T() -> MPI_Datatype {
    // SAFETY: an immutable object initialised at load time by constants.c.
    unsafe { c::ferry_MPI_UINT64_T }
}
#[inline(always)]
#[allow(non_snake_case)]
pub fn MPI_INT64_T() -> MPI_Datatype {
    // SAFETY: an immutable object initialised at load time by constants.c.
    unsafe { c::ferry_MPI_INT64_T }
}
#[inline(always)]
#[allow(non_snake_case)]
pub fn MPI_PACKED() -> MPI_Datatype {
    // SAFETY: an immutable object initialised at load time by constants.c.
    unsafe { c::ferry_MPI_PACKED }
}
#[inline(always)]
#[allow(non_snake_case)]
pub fn MPI_OP_NULL() -> MPI_Op {
    // SAFETY: an immutable object initialised at load time by constants.c.
    unsafe { c::ferry_MPI_OP_NULL }
}
#[inline(always)]
#[allow(non_snake_case)]
pub fn MPI_MAX() -> MPI_Op {
    // SAFETY: an immutable object initialised at load time by constants.c.
    unsafe { c::ferry_MPI_MAX }
}
#[inline(always)]
#[allow(non_snake_case)]
pub fn MPI_SUM() -> MPI_Op {
    // SAFETY: an immutable object initialised at load time by constants.c.
    unsafe { c::ferry_MPI_SUM }
}
#[inline(always)]
#[allow(non_snake_case)]
pub fn MPI_REPLACE() -> MPI_Op {
    // SAFETY: an immutable object initialised at load time by constants.c.
    unsafe { c::ferry_MPI_REPLACE }
}
#[inline(always)]
#[allow(non_snake_case)]
pub fn MPI_BOR() -> MPI_Op {
    // SAFETY: an immutable object initialised at load time by constants.c.
    unsafe { c::ferry_MPI_BOR }
}
#[inline(always)]
#[allow(non_snake_case)]
pub fn MPI_MESSAGE_NULL() -> MPI_Message {
    // SAFETY: an immutable object initialised at load time by constants.c.
    unsafe { c::ferry_MPI_MESSAGE_NULL }
}
#[inline(always)]
#[allow(non_snake_case)]
pub fn MPI_MESSAGE_NO_PROC() -> MPI_Message {
    // SAFETY: an immutable object initialised at load time by constants.c.
    unsafe { c::ferry_MPI_MESSAGE_NO_PROC }
}
#[inline(always)]
#[allow(non_snake_case)]
pub fn MPI_WIN_NULL() -> MPI_Win {
    // SAFETY: an immutable object initialised at load time by constants.c.
    unsafe { c::ferry_MPI_WIN_NULL }
}
#[inline(always)]
#[allow(non_snake_case)]
pub fn MPI_STATUS_IGNORE() -> *mut MPI_Status {
    // SAFETY: an immutable object initialised at load time by constants.c.
    unsafe { c::ferry_MPI_STATUS_IGNORE }
}
#[inline(always)]
#[allow(non_snake_case)]
pub fn MPI_STATUSES_IGNORE() -> *mut MPI_Status {
    // SAFETY: an immutable object initialised at load time by constants.c.
    unsafe { c::ferry_MPI_STATUSES_IGNORE }
}
#[inline(always)]
#[allow(non_snake_case)]
pub fn MPI_IN_PLACE() -> *mut c_void {
    // SAFETY: an immutable object initialised at load time by constants.c.
    unsafe { c::ferry_MPI_IN_PLACE }
}
#[inline(always)]
#[allow(non_snake_case)]
pub fn MPI_BOTTOM() -> *mut c_void {
    // SAFETY: an immutable object initialised at load time by constants.c.
    unsafe { c::ferry_MPI_BOTTOM }
}
#[inline(always)]
#[allow(non_snake_case)]
pub fn MPI_ERRCODES_IGNORE() -> *mut c_int {
    // SAFETY: an immutable object initialised at load time by constants.c.
    unsafe { c::ferry_MPI_ERRCODES_IGNORE }
}
#[inline(always)]
#[allow(non_snake_case)]
pub fn MPI_ARGV_NULL() -> *mut *mut c_char {
    // SAFETY: an immutable object initialised at load time by constants.c.
    unsafe { c::ferry_MPI_ARGV_NULL }
}
#[inline(always)]
#[allow(non_snake_case)]
pub const fn MPI_ANY_SOURCE() -> c_int {
    ints::MPI_ANY_SOURCE
}
#[inline(always)]
#[allow(non_snake_case)]
pub const fn MPI_ANY_TAG() -> c_int {
    ints::MPI_ANY_TAG
}
#[inline(always)]
#[allow(non_snake_case)]
pub const fn MPI_PROC_NULL() -> c_int {
    ints::MPI_PROC_NULL
}
#[inline(always)]
#[allow(non_snake_case)]
pub const fn MPI_ROOT() -> c_int {
    ints::MPI_ROOT
}
#[inline(always)]
#[allow(non_snake_case)]
pub const fn MPI_UNDEFINED() -> c_int {
    ints::MPI_UNDEFINED
}
#[inline(always)]
#[allow(non_snake_case)]
pub const fn MPI_SUCCESS() -> c_int {
    ints::MPI_SUCCESS
}
#[inline(always)]
#[allow(non_snake_case)]
pub const fn MPI_ERR_COMM() -> c_int {
    ints::MPI_ERR_COMM
}
#[inline(always)]
#[allow(non_snake_case)]
pub const fn MPI_ERR_REQUEST() -> c_int {
    ints::MPI_ERR_REQUEST
}
#[inline(always)]
#[allow(non_snake_case)]
pub const fn MPI_ERR_ARG() -> c_int {
    ints::MPI_ERR_ARG
}
#[inline(always)]
#[allow(non_snake_case)]
pub const fn MPI_ERR_GROUP() -> c_int {
    ints::MPI_ERR_GROUP
}
#[inline(always)]
#[allow(non_snake_case)]
pub const fn MPI_ERR_INTERN() -> c_int {
    ints::MPI_ERR_INTERN
}
#[inline(always)]
#[allow(non_snake_case)]
pub const fn MPI_ERR_OTHER() -> c_int {
    ints::MPI_ERR_OTHER
}
#[inline(always)]
#[allow(non_snake_case)]
pub const fn MPI_ERR_COUNT() -> c_int {
    ints::MPI_ERR_COUNT
}
#[inline(always)]
#[allow(non_snake_case)]
pub const fn MPI_ERR_PENDING() -> c_int {
    ints::MPI_ERR_PENDING
}
#[inline(always)]
#[allow(non_snake_case)]
pub const fn MPI_ERR_IN_STATUS() -> c_int {
    ints::MPI_ERR_IN_STATUS
}
#[inline(always)]
#[allow(non_snake_case)]
pub const fn MPI_THREAD_SINGLE() -> c_int {
    ints::MPI_THREAD_SINGLE
}
#[inline(always)]
#[allow(non_snake_case)]
pub const fn MPI_THREAD_FUNNELED() -> c_int {
    ints::MPI_THREAD_FUNNELED
}
#[inline(always)]
#[allow(non_snake_case)]
pub const fn MPI_THREAD_SERIALIZED() -> c_int {
    ints::MPI_THREAD_SERIALIZED
}
#[inline(always)]
#[allow(non_snake_case)]
pub const fn MPI_THREAD_MULTIPLE() -> c_int {
    ints::MPI_THREAD_MULTIPLE
}
#[inline(always)]
#[allow(non_snake_case)]
pub const fn MPI_IDENT() -> c_int {
    ints::MPI_IDENT
}
#[inline(always)]
#[allow(non_snake_case)]
pub const fn MPI_CONGRUENT() -> c_int {
    ints::MPI_CONGRUENT
}
#[inline(always)]
#[allow(non_snake_case)]
pub const fn MPI_SIMILAR() -> c_int {
    ints::MPI_SIMILAR
}
#[inline(always)]
#[allow(non_snake_case)]
pub const fn MPI_UNEQUAL() -> c_int {
    ints::MPI_UNEQUAL
}
#[inline(always)]
#[allow(non_snake_case)]
pub const fn MPI_GRAPH() -> c_int {
    ints::MPI_GRAPH
}
#[inline(always)]
#[allow(non_snake_case)]
pub const fn MPI_CART() -> c_int {
    ints::MPI_CART
}
#[inline(always)]
#[allow(non_snake_case)]
pub const fn MPI_DIST_GRAPH() -> c_int {
    ints::MPI_DIST_GRAPH
}
#[inline(always)]
#[allow(non_snake_case)]
pub const fn MPI_TAG_UB() -> c_int {
    ints::MPI_TAG_UB
}
#[inline(always)]
#[allow(non_snake_case)]
pub const fn MPI_KEYVAL_INVALID() -> c_int {
    ints::MPI_KEYVAL_INVALID
}
#[inline(always)]
#[allow(non_snake_case)]
pub const fn MPI_MODE_NOCHECK() -> c_int {
    ints::MPI_MODE_NOCHECK
}
#[inline(always)]
#[allow(non_snake_case)]
pub const fn MPI_HOST() -> c_int {
    ints::MPI_HOST
}
#[inline(always)]
#[allow(non_snake_case)]
pub const fn MPI_IO() -> c_int {
    ints::MPI_IO
}
#[inline(always)]
#[allow(non_snake_case)]
pub const fn MPI_WTIME_IS_GLOBAL() -> c_int {
    ints::MPI_WTIME_IS_GLOBAL
}
#[inline(always)]
#[allow(non_snake_case)]
pub const fn MPI_APPNUM() -> c_int {
    ints::MPI_APPNUM
}
#[inline(always)]
#[allow(non_snake_case)]
pub const fn MPI_UNIVERSE_SIZE() -> c_int {
    ints::MPI_UNIVERSE_SIZE
}
#[inline(always)]
#[allow(non_snake_case)]
pub const fn MPI_LASTUSEDCODE() -> c_int {
    ints::MPI_LASTUSEDCODE
}
#[inline(always)]
#[allow(non_snake_case)]
pub const fn MPI_ERR_TRUNCATE() -> c_int {
    ints::MPI_ERR_TRUNCATE
}
#[inline(always)]
#[allow(non_snake_case)]
pub const fn MPI_LOCK_SHARED() -> c_int {
    ints::MPI_LOCK_SHARED
}
#[inline(always)]
#[allow(non_snake_case)]
pub const fn MPI_LOCK_EXCLUSIVE() -> c_int {
    ints::MPI_LOCK_EXCLUSIVE
}
#[inline(always)]
#[allow(non_snake_case)]
pub const fn MPI_MAX_ERROR_STRING() -> c_int {
    ints::MPI_MAX_ERROR_STRING
}
#[inline(always)]
#[allow(non_snake_case)]
pub const fn MPI_MAX_PROCESSOR_NAME() -> c_int {
    ints::MPI_MAX_PROCESSOR_NAME
}
#[inline(always)]
#[allow(non_snake_case)]
pub const fn MPI_MAX_OBJECT_NAME() -> c_int {
    ints::MPI_MAX_OBJECT_NAME
}
#[inline(always)]
#[allow(non_snake_case)]
pub const fn MPI_COMM_TYPE_SHARED() -> c_int {
    ints::MPI_COMM_TYPE_SHARED
}
/// `sizeof(MPI_Status)` as the C compiler sees it.
pub fn status_size() -> usize {
    // SAFETY: as above.
    unsafe { c::ferry_status_size as usize }
}

extern "C" {
    fn ferry_unweighted() -> *mut c_int;
}

/// `MPI_UNWEIGHTED`, an address of a library variable under MPICH.
pub fn MPI_UNWEIGHTED() -> *mut c_int {
    // SAFETY: a C function without arguments returning a constant address.
    unsafe { ferry_unweighted() }
}

/// The datatype combiners (`MPI_Type_get_envelope`), for re-creating a
/// derived datatype from its description.
pub mod combiners {
    pub use super::ints::{
        MPI_COMBINER_CONTIGUOUS, MPI_COMBINER_DARRAY, MPI_COMBINER_DUP, MPI_COMBINER_F90_COMPLEX,
        MPI_COMBINER_F90_INTEGER, MPI_COMBINER_F90_REAL, MPI_COMBINER_HINDEXED,
        MPI_COMBINER_HINDEXED_BLOCK, MPI_COMBINER_HVECTOR, MPI_COMBINER_INDEXED,
        MPI_COMBINER_INDEXED_BLOCK, MPI_COMBINER_NAMED, MPI_COMBINER_RESIZED, MPI_COMBINER_STRUCT,
        MPI_COMBINER_SUBARRAY, MPI_COMBINER_VECTOR,
    };
}
