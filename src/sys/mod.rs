//! Layer `sys`, the lowest: the raw MPI layer, bindgen's view of `mpi.h`
//! (types and `PMPI_*` functions) and the macro-only constants. Nothing
//! here has behaviour; it is the `-sys` layer every other module calls the
//! real MPI through. With it, the leaf utilities every layer uses: the
//! slot tables ([`slab`]), the logger ([`logging`]), handles as bits
//! ([`bits`]), where the process is in its life ([`life`]), the library's
//! napping waits ([`nap`]), the library's own collectives, typed
//! ([`collective`]), requests that are already complete ([`grequest`]), every workaround of an MPI bug ([`quirks`]),
//! and the breaks the test harness may ask for ([`breaks`]).
//!
//! Each kind of handle is its own type, under both MPIs (Open MPI's are
//! pointers to distinct structs; MPICH's `int`s are wrapped, one
//! `#[repr(transparent)]` type per kind, by bindgen's `new_type_alias` in
//! `build.rs`): a group passed where a communicator is expected does not
//! compile.
//!
//! ```compile_fail
//! fn takes_a_communicator(_: ferry::sys::MPI_Comm) {}
//! takes_a_communicator(ferry::sys::constants::MPI_GROUP_NULL());
//! ```
//!
//! ```
//! fn takes_a_communicator(_: ferry::sys::MPI_Comm) {}
//! takes_a_communicator(ferry::sys::constants::MPI_COMM_NULL());
//! ```
//!
//! May use `sys` only.
// Bindgen's output and the constants keep C's names and shapes: their own
// lints are relaxed; the library's modules here are held to the usual ones.
#[allow(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    dead_code,
    clippy::all,
    clippy::undocumented_unsafe_blocks,
    improper_ctypes
)]
mod ffi {
    include!(concat!(env!("OUT_DIR"), "/mpi_sys.rs"));

    /// Open MPI spells `MPI_Fint` as a macro, which bindgen does not turn
    /// into a type.
    #[cfg(ferry_mpi = "openmpi")]
    pub type MPI_Fint = ::std::os::raw::c_int;
}
pub use ffi::*;

#[allow(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    dead_code,
    clippy::all,
    clippy::undocumented_unsafe_blocks
)]
pub mod constants;

pub mod bits;
pub mod breaks;
pub mod collective;
pub mod grequest;
pub mod life;
pub mod logging;
pub mod nap;
pub mod quirks;
pub mod slab;
