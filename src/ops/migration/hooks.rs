//! The program's callbacks around a move (`ferry_on_leave`,
//! `ferry_on_resume` in `include/ferry.h`).
use super::*;

/// A program's callback: `fn(arg)` (`ferry_on_leave`, `ferry_on_resume`).
pub type Callback = unsafe extern "C" fn(*mut std::ffi::c_void);

/// When a program's callback runs (see `include/ferry.h`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Hook {
    /// In the process about to leave its rank, before its image is taken.
    Leave,
    /// In the replacement, once the rank resumed there.
    Resume,
}

/// Most callbacks of each kind.
pub(super) const MAX_HOOKS: usize = 16;
/// The program's callbacks (in the library's memory: they travel with the
/// image, as the program's functions and arguments do).
pub(super) static HOOKS: Mutex<Vec<(Hook, Callback, usize)>> = Mutex::new(Vec::new());

/// Registers a callback; false when there are already [`MAX_HOOKS`].
pub fn add_hook(when: Hook, f: Callback, arg: usize) -> bool {
    let Ok(mut h) = HOOKS.lock() else {
        return false;
    };
    if h.iter().filter(|x| x.0 == when).count() >= MAX_HOOKS {
        return false;
    }
    h.push((when, f, arg));
    true
}

/// Runs the program's callbacks of one kind, in registration order, as
/// the program (what they allocate is the program's).
pub(super) fn run_hooks(when: Hook) {
    let list: Vec<(Callback, usize)> = HOOKS
        .lock()
        .map(|h| {
            h.iter()
                .filter(|x| x.0 == when)
                .map(|x| (x.1, x.2))
                .collect()
        })
        .unwrap_or_default();
    for (f, arg) in list {
        // SAFETY: a function the program registered, with its argument.
        crate::mem::as_program(|| unsafe { f(arg as *mut c_void) });
    }
}
