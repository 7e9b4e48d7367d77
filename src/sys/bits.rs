//! Handle bits: an MPI handle (an `int` under MPICH, a pointer under Open
//! MPI) as 64 bits and back, for the tables, the image and the window
//! that store handles of either kind in one format.

/// An MPI handle (an `int` or a pointer) as 64 bits.
pub fn handle_bits<T: Copy>(h: T) -> u64 {
    assert!(std::mem::size_of::<T>() <= 8);
    let mut v = 0u64;
    // SAFETY: copies the handle's bytes into a wider integer.
    unsafe {
        std::ptr::copy_nonoverlapping(
            &h as *const T as *const u8,
            &mut v as *mut u64 as *mut u8,
            std::mem::size_of::<T>(),
        )
    };
    v
}

/// The inverse of [`handle_bits`].
pub fn handle_from_bits<T: Copy>(v: u64) -> T {
    assert!(std::mem::size_of::<T>() <= 8);
    let mut h = std::mem::MaybeUninit::<T>::zeroed();
    // SAFETY: the bytes of a handle made by `handle_bits`.
    unsafe {
        std::ptr::copy_nonoverlapping(
            &v as *const u64 as *const u8,
            h.as_mut_ptr() as *mut u8,
            std::mem::size_of::<T>(),
        );
        h.assume_init()
    }
}
