//! The execution-context layer, written in C (`context.c`, built by
//! `build.rs` without stack protector): the save point, the jump into a
//! restored image, the canary, and a call on another stack. Thin safe
//! wrappers where a call cannot break anything by itself.

extern "C" {
    fn ferry_image_save(
        ctx: *mut libc::ucontext_t,
        resumed: *mut i32,
        write: extern "C" fn(*mut std::ffi::c_void) -> i32,
        arg: *mut std::ffi::c_void,
    ) -> i32;
    fn ferry_image_jump(ctx: *const libc::ucontext_t, resumed: *mut i32, canary: u64) -> !;
    fn ferry_image_canary() -> u64;
    fn ferry_image_on_stack(
        lo: *mut std::ffi::c_void,
        size: u64,
        f: extern "C" fn(*mut std::ffi::c_void) -> i64,
        arg: *mut std::ffi::c_void,
    ) -> i64;
}

/// Saves the context into `ctx`, then calls `write(arg)` with the save
/// point's frame alive. 0: written; -1: `write` failed; 1: resumed in a
/// new process through [`jump`].
///
/// # Safety
/// `ctx` and `resumed` must stay valid and at the same address until a
/// jump to them; `arg` must be what `write` expects.
pub unsafe fn save(
    ctx: *mut libc::ucontext_t,
    resumed: *mut i32,
    write: extern "C" fn(*mut std::ffi::c_void) -> i32,
    arg: *mut std::ffi::c_void,
) -> i32 {
    // SAFETY: contract of the function.
    unsafe { ferry_image_save(ctx, resumed, write, arg) }
}

/// Sets `*resumed`, installs `canary` and continues at `ctx`.
///
/// # Safety
/// `ctx` must be a context saved by [`save`] whose stack is in place.
pub unsafe fn jump(ctx: *const libc::ucontext_t, resumed: *mut i32, canary: u64) -> ! {
    // SAFETY: contract of the function.
    unsafe { ferry_image_jump(ctx, resumed, canary) }
}

/// The calling thread's stack-protector canary.
pub fn canary() -> u64 {
    // SAFETY: reads %fs:0x28 of the calling thread.
    unsafe { ferry_image_canary() }
}

/// Calls `f(arg)` on the stack `[lo, lo + size)`.
///
/// # Safety
/// The stack must be mapped, writable and unused; `arg` must be what `f`
/// expects.
pub unsafe fn on_stack(
    lo: usize,
    size: usize,
    f: extern "C" fn(*mut std::ffi::c_void) -> i64,
    arg: *mut std::ffi::c_void,
) -> i64 {
    // SAFETY: contract of the function.
    unsafe { ferry_image_on_stack(lo as *mut std::ffi::c_void, size as u64, f, arg) }
}
