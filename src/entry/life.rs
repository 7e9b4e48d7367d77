//! The library's life in the process, from the entry side: at load (a
//! constructor of `libferry.so`, run by the dynamic linker before the
//! program's entry point), the layers below are given what they call up
//! into: the startup of layer `mem` what runs instead of the program's
//! `main` in a replacement and in a restart; `core::upcalls` the
//! operations layer's session; `core::keyvals` how an attribute of a
//! Fortran keyval is carried.
//! `MPI_Init` and `MPI_Finalize` themselves are in [`super::special`].

/// Run by the dynamic linker when the library is loaded.
#[used]
#[link_section = ".init_array"]
static AT_LOAD: extern "C" fn() = at_load;

extern "C" fn at_load() {
    // (Nothing here may unwind into the dynamic linker.)
    let _ = std::panic::catch_unwind(|| {
        crate::mem::startup::set_instead(crate::mem::startup::Instead {
            replacement: crate::ops::migration::replacement_main,
            restart: crate::ops::session::restart,
            restart_rank: crate::ops::image::restore::launcher_rank,
        });
        crate::core::upcalls::register(&crate::ops::session::UPCALLS);
        crate::mem::process::launcher_notices::install();
        crate::core::keyvals::set_fortran_carrier(
            crate::entry::wrappers::fortran_support::carry_fortran_attribute,
        );
    });
}
