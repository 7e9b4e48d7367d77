//! Fortran integers of virtual handles (`MPI_Comm_c2f`, `MPI_Comm_f2c`,
//! ... and the Fortran wrappers).
//!
//! MPICH's handles are integers and its conversions are the identity (macros
//! in its mpi.h), so a virtual handle converts to itself: a Fortran program
//! holds the virtual handle, and MPICH's Fortran layer hands it to our C
//! wrappers as it is.
//!
//! Open MPI's Fortran integers are indices into its own tables of real
//! objects. A virtual handle of ours gets a Fortran integer of ours instead:
//! `FORTRAN_BASE` + family * 2^24 + the slot index, far above any index
//! Open MPI hands out. It names the slot, not the real handle of the moment,
//! so it stays valid when a regroup or a migration makes the real handle
//! anew (a Fortran program keeps it in its own memory, which a process image
//! carries). Predefined handles (`MPI_COMM_WORLD` is 0 in Fortran) and
//! handles the library does not know keep Open MPI's integers. The Fortran
//! wrappers (`wrappers::fortran`) and the C conversion functions use the same
//! functions, so mixed C and Fortran programs see one integer per handle.
#[cfg(ferry_mpi = "openmpi")]
use crate::core::handles;
#[cfg(ferry_mpi = "openmpi")]
use crate::sys::constants as k;
use crate::sys::*;

pub use imp::*;

#[cfg(ferry_mpi = "mpich")]
mod imp {
    use super::*;
    pub fn comm_c2f(v: MPI_Comm) -> MPI_Fint {
        v.0
    }
    pub fn comm_f2c(f: MPI_Fint) -> MPI_Comm {
        MPI_Comm(f)
    }
    pub fn group_c2f(v: MPI_Group) -> MPI_Fint {
        v.0
    }
    pub fn group_f2c(f: MPI_Fint) -> MPI_Group {
        MPI_Group(f)
    }
    pub fn request_c2f(v: MPI_Request) -> MPI_Fint {
        v.0
    }
    pub fn request_f2c(f: MPI_Fint) -> MPI_Request {
        MPI_Request(f)
    }
    pub fn datatype_c2f(v: MPI_Datatype) -> MPI_Fint {
        v.0
    }
    pub fn datatype_f2c(f: MPI_Fint) -> MPI_Datatype {
        MPI_Datatype(f)
    }
    pub fn op_c2f(v: MPI_Op) -> MPI_Fint {
        v.0
    }
    pub fn op_f2c(f: MPI_Fint) -> MPI_Op {
        MPI_Op(f)
    }
}

#[cfg(ferry_mpi = "openmpi")]
mod imp {
    use super::*;

    /// The first Fortran integer of ours.
    pub const FORTRAN_BASE: MPI_Fint = 0x4000_0000;
    const SPAN: MPI_Fint = 1 << 24;
    const COMM: MPI_Fint = 0;
    const GROUP: MPI_Fint = 1;
    const REQUEST: MPI_Fint = 2;
    const DATATYPE: MPI_Fint = 3;
    const OP: MPI_Fint = 4;

    /// Whether a Fortran integer is one of ours (of any family).
    #[inline(always)]
    pub fn ours(f: MPI_Fint) -> bool {
        (FORTRAN_BASE..FORTRAN_BASE + 5 * SPAN).contains(&f)
    }

    #[inline(always)]
    fn encode(family: MPI_Fint, index: usize) -> MPI_Fint {
        FORTRAN_BASE + family * SPAN + index as MPI_Fint
    }
    #[inline(always)]
    fn decode(family: MPI_Fint, f: MPI_Fint) -> Option<usize> {
        let lo = FORTRAN_BASE + family * SPAN;
        (f >= lo && f < lo + SPAN).then(|| (f - lo) as usize)
    }

    pub fn comm_c2f(v: MPI_Comm) -> MPI_Fint {
        match handles::comm_index(v) {
            Some(i) => encode(COMM, i),
            // World and self convert as MPI's own (their slots 0 and 1).
            // SAFETY: a predefined or foreign handle: MPI validates it.
            None => unsafe { PMPI_Comm_c2f(v) },
        }
    }
    pub fn comm_f2c(f: MPI_Fint) -> MPI_Comm {
        if let Some(i) = decode(COMM, f) {
            return handles::comm_virtual(i);
        }
        // SAFETY: MPI validates the integer.
        let real = unsafe { PMPI_Comm_f2c(f) };
        if real == k::MPI_COMM_WORLD() || real == k::MPI_COMM_SELF() || real == k::MPI_COMM_NULL() {
            return real;
        }
        handles::comm_of_real(real).unwrap_or(real)
    }
    pub fn group_c2f(v: MPI_Group) -> MPI_Fint {
        match handles::group_index(v) {
            Some(i) => encode(GROUP, i),
            // SAFETY: as above.
            None => unsafe { PMPI_Group_c2f(v) },
        }
    }
    pub fn group_f2c(f: MPI_Fint) -> MPI_Group {
        if let Some(i) = decode(GROUP, f) {
            return handles::group_virtual(i);
        }
        // SAFETY: as above.
        let real = unsafe { PMPI_Group_f2c(f) };
        if real == k::MPI_GROUP_NULL() || real == k::MPI_GROUP_EMPTY() {
            return real;
        }
        handles::group_of_real(real).unwrap_or(real)
    }
    pub fn request_c2f(v: MPI_Request) -> MPI_Fint {
        match handles::request_index(v) {
            Some(i) => encode(REQUEST, i),
            // SAFETY: as above.
            None => unsafe { PMPI_Request_c2f(v) },
        }
    }
    pub fn request_f2c(f: MPI_Fint) -> MPI_Request {
        match decode(REQUEST, f) {
            Some(i) => handles::request_virtual(i),
            // `MPI_REQUEST_NULL`, or a request made out of the library's
            // sight: MPI's own.
            // SAFETY: as above.
            None => unsafe { PMPI_Request_f2c(f) },
        }
    }
    pub fn datatype_c2f(v: MPI_Datatype) -> MPI_Fint {
        match handles::datatype_index(v) {
            Some(i) => encode(DATATYPE, i),
            // SAFETY: as above.
            None => unsafe { PMPI_Type_c2f(v) },
        }
    }
    pub fn datatype_f2c(f: MPI_Fint) -> MPI_Datatype {
        match decode(DATATYPE, f) {
            Some(i) => handles::datatype_virtual(i),
            // Predefined datatypes are not virtual.
            // SAFETY: as above.
            None => unsafe { PMPI_Type_f2c(f) },
        }
    }
    pub fn op_c2f(v: MPI_Op) -> MPI_Fint {
        match crate::core::ops::op_index(v) {
            Some(i) => encode(OP, i),
            // SAFETY: as above.
            None => unsafe { PMPI_Op_c2f(v) },
        }
    }
    pub fn op_f2c(f: MPI_Fint) -> MPI_Op {
        match decode(OP, f) {
            Some(i) => crate::core::ops::op_virtual(i),
            // SAFETY: as above.
            None => unsafe { PMPI_Op_f2c(f) },
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        #[test]
        fn fortran_integers_round_trip() {
            for fam in [COMM, GROUP, REQUEST, DATATYPE, OP] {
                for i in [0usize, 1, 77, (1 << 24) - 1] {
                    let f = encode(fam, i);
                    assert!(f >= FORTRAN_BASE);
                    assert_eq!(decode(fam, f), Some(i));
                    for other in [COMM, GROUP, REQUEST, DATATYPE, OP] {
                        if other != fam {
                            assert_eq!(decode(other, f), None);
                        }
                    }
                }
            }
            assert_eq!(decode(COMM, 0), None);
            assert_eq!(decode(REQUEST, -1), None);
        }
    }
}
