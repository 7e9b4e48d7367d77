//! The program's open files: which descriptors are the program's (and not
//! MPI's), so that they can be opened again, at the same number and
//! offset, in the new process.
//!
//! `/proc/self/fd` cannot tell the program's descriptors from MPI's (shared
//! memory segments, sockets to the process manager), so the calls that
//! open files are interposed: a descriptor opened by the program's main
//! thread outside an MPI call is recorded with the identity of the file
//! (device, inode). A record is checked against the descriptor at capture
//! time, so one closed behind our back (`fclose` closes inside the C
//! library) and reused by MPI is not mistaken for the program's.
// The interposed C functions are not built into unit tests (whose harness
// keeps libc's): their helpers are unused there.
#![cfg_attr(test, allow(dead_code, unused_macros))]
use serde_like::Record;
use std::collections::BTreeMap;
use std::ffi::{c_char, c_int, c_uint};
use std::sync::Mutex;

/// What is kept of one descriptor while the program runs.
#[derive(Clone, Debug)]
struct Opened {
    path: String,
    dev: u64,
    ino: u64,
}

static OPENED: Mutex<BTreeMap<c_int, Opened>> = Mutex::new(BTreeMap::new());

/// Plain records, written into an image (see [`super::format`]).
pub mod serde_like {
    /// A descriptor to open again in the new process.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Record {
        pub fd: i32,
        pub path: String,
        /// `fcntl(F_GETFL)`: access mode and status flags (append, ...).
        pub flags: i32,
        /// `fcntl(F_GETFD)`: close-on-exec.
        pub fd_flags: i32,
        pub offset: i64,
        pub dev: u64,
        pub ino: u64,
    }
}

fn fstat_id(fd: c_int) -> Option<(u64, u64, u32)> {
    // SAFETY: a plain C struct, for which all zeroes is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes into `st`.
    (unsafe { libc::fstat(fd, &mut st) } == 0).then_some((st.st_dev, st.st_ino, st.st_mode))
}

fn path_of(fd: c_int) -> Option<String> {
    std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// Records a descriptor the program just opened (if it is the program's).
fn opened(fd: c_int) {
    if fd < 0 || !super::program_allocates() {
        return;
    }
    // What follows allocates: it is the library's, not the program's.
    let counted = super::enter_mpi();
    if let (Some((dev, ino, _)), Some(path)) = (fstat_id(fd), path_of(fd)) {
        if let Ok(mut t) = OPENED.lock() {
            t.insert(fd, Opened { path, dev, ino });
        }
    }
    super::leave_mpi(counted);
}

fn closed(fd: c_int) {
    if !super::active() {
        return;
    }
    let counted = super::enter_mpi();
    if let Ok(mut t) = OPENED.lock() {
        t.remove(&fd);
    }
    super::leave_mpi(counted);
}

fn duplicated(old: c_int, new: c_int) {
    if new < 0 || !super::active() {
        return;
    }
    let counted = super::enter_mpi();
    if let Ok(mut t) = OPENED.lock() {
        match t.get(&old).cloned() {
            Some(o) => {
                t.insert(new, o);
            }
            None => {
                t.remove(&new);
            }
        }
    }
    super::leave_mpi(counted);
}

/// Why a descriptor cannot be carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotCarried(pub String);

/// The program's open descriptors, as records to open again; or why one
/// of them cannot be carried.
pub fn capture() -> Result<Vec<Record>, NotCarried> {
    let t = OPENED.lock().map(|t| t.clone()).unwrap_or_default();
    let mut out = Vec::new();
    for (fd, o) in t {
        let Some((dev, ino, mode)) = fstat_id(fd) else {
            continue; // closed since
        };
        if (dev, ino) != (o.dev, o.ino) {
            continue; // closed and the number reused (by MPI)
        }
        let kind = mode & libc::S_IFMT;
        if kind != libc::S_IFREG && kind != libc::S_IFCHR && kind != libc::S_IFDIR {
            return Err(NotCarried(format!(
                "descriptor {fd} ({}) is not a regular file, device or directory",
                o.path
            )));
        }
        match std::fs::metadata(&o.path) {
            Ok(m) if std::os::unix::fs::MetadataExt::ino(&m) == ino => {}
            _ => {
                return Err(NotCarried(format!(
                    "the file {} (descriptor {fd}) no longer exists under that name",
                    o.path
                )))
            }
        }
        // SAFETY: queries on a live descriptor.
        let (flags, fd_flags, offset) = unsafe {
            (
                libc::fcntl(fd, libc::F_GETFL),
                libc::fcntl(fd, libc::F_GETFD),
                if kind == libc::S_IFREG {
                    libc::lseek(fd, 0, libc::SEEK_CUR)
                } else {
                    0
                },
            )
        };
        out.push(Record {
            fd,
            path: o.path,
            flags,
            fd_flags,
            offset,
            dev,
            ino,
        });
    }
    Ok(out)
}

/// Descriptors opened again, not yet in place: (record, temporary fd).
pub struct Reopened(Vec<(Record, c_int)>);

/// Opens every recorded file again (at temporary numbers), or says which
/// one cannot be.
pub fn reopen(records: &[Record]) -> Result<Reopened, String> {
    let mut out = Vec::new();
    for r in records {
        let path = std::ffi::CString::new(r.path.clone()).map_err(|_| "bad path".to_string())?;
        let flags = r.flags & !(libc::O_CREAT | libc::O_TRUNC | libc::O_EXCL) | libc::O_CLOEXEC;
        // SAFETY: a plain open of a path we own.
        let fd = unsafe { libc::open(path.as_ptr(), flags) };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            for (_, f) in &out {
                // SAFETY: descriptors we opened above.
                unsafe { libc::close(*f) };
            }
            return Err(format!(
                "the program had {} open (descriptor {}): cannot open it again: {e}",
                r.path, r.fd
            ));
        }
        out.push((r.clone(), fd));
    }
    Ok(Reopened(out))
}

impl Reopened {
    /// The descriptor numbers the records need.
    pub fn numbers(&self) -> Vec<c_int> {
        self.0.iter().map(|(r, _)| r.fd).collect()
    }

    /// How each descriptor moves into place (done by the restore, with
    /// plain system calls, once the memory is back).
    pub fn moves(&self) -> Vec<super::layout::FileMove> {
        self.0
            .iter()
            .map(|(r, tmp)| super::layout::FileMove {
                tmp: *tmp,
                target: r.fd,
                fd_flags: r.fd_flags,
                _pad: 0,
                offset: r.offset,
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------
// The interposed calls (not in unit-test builds).

type OpenFn = unsafe extern "C" fn(*const c_char, c_int, c_uint) -> c_int;
type OpenAtFn = unsafe extern "C" fn(c_int, *const c_char, c_int, c_uint) -> c_int;
type CreatFn = unsafe extern "C" fn(*const c_char, libc::mode_t) -> c_int;
type FopenFn = unsafe extern "C" fn(*const c_char, *const c_char) -> *mut libc::FILE;
type FreopenFn =
    unsafe extern "C" fn(*const c_char, *const c_char, *mut libc::FILE) -> *mut libc::FILE;
type Dup2Fn = unsafe extern "C" fn(c_int, c_int) -> c_int;
type Dup3Fn = unsafe extern "C" fn(c_int, c_int, c_int) -> c_int;
type DupFn = unsafe extern "C" fn(c_int) -> c_int;
type CloseFn = unsafe extern "C" fn(c_int) -> c_int;

#[cfg(not(test))]
mod exported {
    use super::*;

    // `open` and `openat` are variadic in C; on x86-64 the optional mode
    // arrives in the register of a plain third (fourth) argument, and is
    // read only when the flags ask for it.

    #[no_mangle]
    pub unsafe extern "C" fn open(path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
        // SAFETY: forwarded.
        let fd = unsafe { crate::next!(OpenFn, c"open")(path, flags, mode) };
        opened(fd);
        fd
    }

    #[no_mangle]
    pub unsafe extern "C" fn open64(path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
        // SAFETY: forwarded.
        let fd = unsafe { crate::next!(OpenFn, c"open64")(path, flags, mode) };
        opened(fd);
        fd
    }

    #[no_mangle]
    pub unsafe extern "C" fn openat(
        dir: c_int,
        path: *const c_char,
        flags: c_int,
        mode: c_uint,
    ) -> c_int {
        // SAFETY: forwarded.
        let fd = unsafe { crate::next!(OpenAtFn, c"openat")(dir, path, flags, mode) };
        opened(fd);
        fd
    }

    #[no_mangle]
    pub unsafe extern "C" fn openat64(
        dir: c_int,
        path: *const c_char,
        flags: c_int,
        mode: c_uint,
    ) -> c_int {
        // SAFETY: forwarded.
        let fd = unsafe { crate::next!(OpenAtFn, c"openat64")(dir, path, flags, mode) };
        opened(fd);
        fd
    }

    #[no_mangle]
    pub unsafe extern "C" fn creat(path: *const c_char, mode: libc::mode_t) -> c_int {
        // SAFETY: forwarded.
        let fd = unsafe { crate::next!(CreatFn, c"creat")(path, mode) };
        opened(fd);
        fd
    }

    #[no_mangle]
    pub unsafe extern "C" fn creat64(path: *const c_char, mode: libc::mode_t) -> c_int {
        // SAFETY: forwarded.
        let fd = unsafe { crate::next!(CreatFn, c"creat64")(path, mode) };
        opened(fd);
        fd
    }

    unsafe fn file_opened(f: *mut libc::FILE) {
        if !f.is_null() {
            // SAFETY: a stream the C library just opened.
            opened(unsafe { libc::fileno(f) });
        }
    }

    #[no_mangle]
    pub unsafe extern "C" fn fopen(path: *const c_char, mode: *const c_char) -> *mut libc::FILE {
        // SAFETY: forwarded; the result checked.
        unsafe {
            let f = crate::next!(FopenFn, c"fopen")(path, mode);
            file_opened(f);
            f
        }
    }

    #[no_mangle]
    pub unsafe extern "C" fn fopen64(path: *const c_char, mode: *const c_char) -> *mut libc::FILE {
        // SAFETY: forwarded; the result checked.
        unsafe {
            let f = crate::next!(FopenFn, c"fopen64")(path, mode);
            file_opened(f);
            f
        }
    }

    #[no_mangle]
    pub unsafe extern "C" fn freopen(
        path: *const c_char,
        mode: *const c_char,
        stream: *mut libc::FILE,
    ) -> *mut libc::FILE {
        // SAFETY: forwarded; the result checked.
        unsafe {
            let f = crate::next!(FreopenFn, c"freopen")(path, mode, stream);
            file_opened(f);
            f
        }
    }

    #[no_mangle]
    pub unsafe extern "C" fn freopen64(
        path: *const c_char,
        mode: *const c_char,
        stream: *mut libc::FILE,
    ) -> *mut libc::FILE {
        // SAFETY: forwarded; the result checked.
        unsafe {
            let f = crate::next!(FreopenFn, c"freopen64")(path, mode, stream);
            file_opened(f);
            f
        }
    }

    #[no_mangle]
    pub unsafe extern "C" fn dup(fd: c_int) -> c_int {
        // SAFETY: forwarded.
        let n = unsafe { crate::next!(DupFn, c"dup")(fd) };
        duplicated(fd, n);
        n
    }

    #[no_mangle]
    pub unsafe extern "C" fn dup2(fd: c_int, to: c_int) -> c_int {
        // SAFETY: forwarded.
        let n = unsafe { crate::next!(Dup2Fn, c"dup2")(fd, to) };
        if n >= 0 && fd != to {
            duplicated(fd, n);
        }
        n
    }

    #[no_mangle]
    pub unsafe extern "C" fn dup3(fd: c_int, to: c_int, flags: c_int) -> c_int {
        // SAFETY: forwarded.
        let n = unsafe { crate::next!(Dup3Fn, c"dup3")(fd, to, flags) };
        duplicated(fd, n);
        n
    }

    #[no_mangle]
    pub unsafe extern "C" fn close(fd: c_int) -> c_int {
        closed(fd);
        // SAFETY: forwarded.
        unsafe { crate::next!(CloseFn, c"close")(fd) }
    }
}
