//! The raw MPI layer: bindgen's view of `mpi.h` (types and `PMPI_*`
//! functions) and the macro-only constants. Nothing here has behaviour; it
//! is the `-sys` layer every other module calls the real MPI through.
#![allow(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    dead_code,
    clippy::all,
    improper_ctypes
)]

include!(concat!(env!("OUT_DIR"), "/mpi_sys.rs"));

pub mod constants;

/// Open MPI spells `MPI_Fint` as a macro, which bindgen does not turn into
/// a type.
#[cfg(ferry_mpi = "openmpi")]
pub type MPI_Fint = ::std::os::raw::c_int;
