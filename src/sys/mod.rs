//! Layer `sys`, the lowest: the raw MPI layer, bindgen's view of `mpi.h`
//! (types and `PMPI_*` functions) and the macro-only constants. Nothing
//! here has behaviour; it is the `-sys` layer every other module calls the
//! real MPI through. With it, the leaf utilities every layer uses: the
//! slot tables ([`slab`]), the logger ([`logging`]), handles as bits
//! ([`bits`]), where the process is in its life ([`life`]), the library's
//! napping waits ([`nap`]), every workaround of an MPI bug ([`quirks`]),
//! and the breaks the test harness may ask for ([`breaks`]).
//!
//! May use `sys` only.
#![allow(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    dead_code,
    clippy::all,
    clippy::undocumented_unsafe_blocks,
    improper_ctypes
)]

include!(concat!(env!("OUT_DIR"), "/mpi_sys.rs"));

pub mod constants;

// The lints allowed above are for bindgen's output and the constants; the
// library's own modules here are held to the usual ones.
#[warn(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    dead_code,
    clippy::all,
    clippy::undocumented_unsafe_blocks,
    improper_ctypes
)]
pub mod bits;
#[warn(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    dead_code,
    clippy::all,
    clippy::undocumented_unsafe_blocks,
    improper_ctypes
)]
pub mod breaks;
#[warn(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    dead_code,
    clippy::all,
    clippy::undocumented_unsafe_blocks,
    improper_ctypes
)]
pub mod life;
#[warn(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    dead_code,
    clippy::all,
    clippy::undocumented_unsafe_blocks,
    improper_ctypes
)]
pub mod logging;
#[warn(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    dead_code,
    clippy::all,
    clippy::undocumented_unsafe_blocks,
    improper_ctypes
)]
pub mod nap;
#[warn(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    dead_code,
    clippy::all,
    clippy::undocumented_unsafe_blocks,
    improper_ctypes
)]
pub mod quirks;
#[warn(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    dead_code,
    clippy::all,
    clippy::undocumented_unsafe_blocks,
    improper_ctypes
)]
pub mod slab;

/// Open MPI spells `MPI_Fint` as a macro, which bindgen does not turn into
/// a type.
#[cfg(ferry_mpi = "openmpi")]
pub type MPI_Fint = ::std::os::raw::c_int;
