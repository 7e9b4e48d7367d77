//! The next definition of a C library function the library interposes
//! (`malloc`, `open`, `mmap`, `sigaction`, ...): looked up once with
//! `dlsym(RTLD_NEXT)` and cached, through the [`next!`](crate::next) macro.

/// The next definition of `name` as a function pointer of type `F`.
/// Panics (caught at the boundary) if the C library has none.
pub fn resolve<F: Copy>(name: &std::ffi::CStr, cache: &std::sync::atomic::AtomicUsize) -> F {
    let mut p = cache.load(std::sync::atomic::Ordering::Relaxed);
    if p == 0 {
        // SAFETY: a symbol lookup.
        p = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) } as usize;
        assert!(p != 0, "no next definition of {name:?}");
        cache.store(p, std::sync::atomic::Ordering::Relaxed);
    }
    assert_eq!(std::mem::size_of::<F>(), std::mem::size_of::<usize>());
    // SAFETY: F is the function pointer type of `name` (the callers name
    // the C library's function and its prototype together).
    unsafe { std::mem::transmute_copy::<usize, F>(&p) }
}

/// `next!(Type, c"name")`: the next definition of `name`, of that
/// function pointer type, cached in a static of the call site.
#[macro_export]
macro_rules! next {
    ($ty:ty, $name:literal) => {{
        static CACHE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        $crate::mem::next::resolve::<$ty>($name, &CACHE)
    }};
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_the_c_library() {
        type Strlen = unsafe extern "C" fn(*const libc::c_char) -> usize;
        let f = crate::next!(Strlen, c"strlen");
        // SAFETY: the C library's strlen on a C string.
        assert_eq!(unsafe { f(c"ferry".as_ptr()) }, 5);
    }
}
