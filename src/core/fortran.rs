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

    /// The identity conversions of the families named.
    macro_rules! identity {
        ($($c2f:ident, $f2c:ident, $t:ident;)*) => {$(
            pub fn $c2f(v: $t) -> MPI_Fint {
                v.0
            }
            pub fn $f2c(f: MPI_Fint) -> $t {
                $t(f)
            }
        )*};
    }

    identity! {
        comm_c2f, comm_f2c, MPI_Comm;
        group_c2f, group_f2c, MPI_Group;
        request_c2f, request_f2c, MPI_Request;
        datatype_c2f, datatype_f2c, MPI_Datatype;
        op_c2f, op_f2c, MPI_Op;
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
    /// The families whose only integers of MPI's own are its predefined
    /// and foreign handles: ours for a slot of the library's table, MPI's
    /// otherwise (`MPI_REQUEST_NULL`, a request made out of the library's
    /// sight, a predefined datatype or operation).
    macro_rules! slotted {
        ($($c2f:ident, $f2c:ident, $t:ident, $fam:ident, $index:path, $virt:path, $pc2f:ident, $pf2c:ident;)*) => {$(
            pub fn $c2f(v: $t) -> MPI_Fint {
                match $index(v) {
                    Some(i) => encode($fam, i),
                    // SAFETY: a predefined or foreign handle: MPI validates it.
                    None => unsafe { $pc2f(v) },
                }
            }
            pub fn $f2c(f: MPI_Fint) -> $t {
                match decode($fam, f) {
                    Some(i) => $virt(i),
                    // SAFETY: MPI validates the integer.
                    None => unsafe { $pf2c(f) },
                }
            }
        )*};
    }

    slotted! {
        request_c2f, request_f2c, MPI_Request, REQUEST, handles::request_index,
            handles::request_virtual, PMPI_Request_c2f, PMPI_Request_f2c;
        datatype_c2f, datatype_f2c, MPI_Datatype, DATATYPE, handles::datatype_index,
            handles::datatype_virtual, PMPI_Type_c2f, PMPI_Type_f2c;
        op_c2f, op_f2c, MPI_Op, OP, crate::core::ops::op_index,
            crate::core::ops::op_virtual, PMPI_Op_c2f, PMPI_Op_f2c;
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
