//! The objects the program opened with `dlopen`: who opened what, and the
//! same objects opened again, at the same addresses, in a new process
//! before its image is restored.
//!
//! * **Who opened what.** `dlopen` is interposed by a stub that notes the
//!   call and jumps on to the C library's (a jump, so that the dynamic
//!   linker still sees the program's code as the caller: its `RUNPATH` and
//!   `$ORIGIN` are the ones searched). The objects that appear in the link
//!   map after a note belong to that call: the program's when its main
//!   thread made it outside MPI, MPI's otherwise (MPI's plugins and
//!   transports are opened inside `MPI_Init`). Objects that appear without
//!   a note were opened by the C library itself (its name-service modules).
//! * **Opened again.** The image names each object the program opened
//!   with its flags and the addresses it spanned. The new process opens
//!   them (dependencies first) with the kernel steered to the same place:
//!   every free gap above the object's old place that could hold it is
//!   covered for the moment of the `dlopen`, so that the highest place the
//!   kernel finds for it is its old one. The restore then checks every
//!   address as for any object.
//! * **Thread-local blocks** of opened objects are made on demand by the
//!   dynamic linker, wherever its allocator puts them: their bytes travel
//!   with the library's memory and are written into the new process's
//!   block after the jump.
use super::closure::Opener;
use super::elf::Object;
use super::format::{Loaded, Reopen};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::Mutex;

/// One object opened after the start (by a `dlopen` that was noted).
#[derive(Clone, Debug)]
struct Record {
    name: String,
    base: usize,
    flags: c_int,
    opener: Opener,
}

/// The `dlopen` noted last, whose objects have not been looked for yet.
#[derive(Clone, Copy)]
struct Pending {
    flags: c_int,
    opener: Opener,
}

struct State {
    /// The objects seen so far: (load bias, path).
    known: Vec<(usize, String)>,
    records: Vec<Record>,
    pending: Option<Pending>,
}

/// Lives in the library's memory (carried): a replacement knows what its
/// predecessor opened.
static STATE: Mutex<State> = Mutex::new(State {
    known: Vec::new(),
    records: Vec::new(),
    pending: None,
});

/// The `dlopen` of the program: notes the call (with the caller's return
/// address), then jumps to the C library's `dlopen` with the arguments and
/// the stack as the caller left them.
///
/// # Safety
/// As the C library's `dlopen`.
#[cfg(not(test))]
#[no_mangle]
#[unsafe(naked)]
pub unsafe extern "C" fn dlopen(_path: *const c_char, _flags: c_int) -> *mut c_void {
    std::arch::naked_asm!(
        "mov rdx, [rsp]",
        "push rdi",
        "push rsi",
        "sub rsp, 8",
        "call {note}",
        "add rsp, 8",
        "pop rsi",
        "pop rdi",
        "jmp rax",
        note = sym note,
    )
}

type DlopenFn = unsafe extern "C" fn(*const c_char, c_int) -> *mut c_void;

/// The C library's `dlopen`.
fn real_dlopen() -> DlopenFn {
    crate::next!(DlopenFn, c"dlopen")
}

/// Notes a `dlopen` about to happen; returns the C library's `dlopen`.
/// Never fails: whatever goes wrong here only loses the note.
#[cfg_attr(test, allow(dead_code))]
extern "C" fn note(path: *const c_char, flags: c_int, caller: usize) -> usize {
    let _ = std::panic::catch_unwind(|| {
        if path.is_null() || !super::alloc::lib_ready() {
            return;
        }
        let opener = if super::program_allocates()
            || (!super::main_started() && super::alloc::premain_program_code(caller))
        {
            Opener::Program
        } else {
            Opener::Mpi
        };
        let counted = super::enter_mpi();
        if let Ok(mut s) = STATE.lock() {
            look(&mut s);
            s.pending = Some(Pending { flags, opener });
        }
        super::leave_mpi(counted);
    });
    real_dlopen() as usize
}

/// Attributes the objects that appeared since the last look to the
/// pending `dlopen` (the first look takes the start's objects as they
/// are), and forgets the ones that are gone.
fn look(s: &mut State) {
    let objs = super::elf::objects();
    let first = s.known.is_empty();
    s.known
        .retain(|(b, n)| objs.iter().any(|o| o.base == *b && &o.name == n));
    s.records
        .retain(|r| objs.iter().any(|o| o.base == r.base && o.name == r.name));
    for o in &objs {
        if s.known.iter().any(|(b, n)| *b == o.base && *n == o.name) {
            continue;
        }
        s.known.push((o.base, o.name.clone()));
        if first {
            continue;
        }
        // Opened without a note: by the C library itself (every other
        // `dlopen` goes through the stub).
        let p = s.pending.unwrap_or(Pending {
            flags: 0,
            opener: Opener::CLibrary,
        });
        s.records.push(Record {
            name: o.name.clone(),
            base: o.base,
            flags: p.flags,
            opener: p.opener,
        });
    }
    s.pending = None;
}

/// Who opened this object, if it was opened after the start.
pub fn opener_of(o: &Object) -> Option<Opener> {
    if !super::alloc::lib_ready() {
        return None;
    }
    let mut s = STATE.lock().ok()?;
    if s.known.is_empty() || s.pending.is_some() {
        look(&mut s);
    }
    s.records
        .iter()
        .find(|r| r.base == o.base && r.name == o.name)
        .map(|r| r.opener)
}

/// Takes stock now (called at the start, so that what is loaded then
/// counts as the start's).
pub fn start() {
    if let Ok(mut s) = STATE.lock() {
        look(&mut s);
    }
}

/// In a process resumed from an image: what this process loaded itself
/// (its start, its MPI's plugins, the objects opened again) is known; the
/// objects it did not open again are MPI's.
pub fn after_resume() {
    if let Ok(mut s) = STATE.lock() {
        let objs = super::elf::objects();
        s.pending = Some(Pending {
            flags: 0,
            opener: Opener::Mpi,
        });
        s.known
            .retain(|(b, n)| objs.iter().any(|o| o.base == *b && &o.name == n));
        look(&mut s);
    }
}

/// The program's opened objects among `objs`, as the image records them
/// (dependencies before the objects that need them).
pub fn reopens(objs: &[Object]) -> Vec<(usize, Reopen)> {
    let Ok(mut s) = STATE.lock() else {
        return Vec::new();
    };
    look(&mut s);
    let program: Vec<(usize, &Record)> = objs
        .iter()
        .enumerate()
        .filter_map(|(i, o)| {
            s.records
                .iter()
                .find(|r| r.base == o.base && r.name == o.name && r.opener == Opener::Program)
                .map(|r| (i, r))
        })
        .collect();
    // Depth first, dependencies first.
    let mut order: Vec<usize> = Vec::new();
    fn visit(i: usize, objs: &[Object], program: &[(usize, &Record)], order: &mut Vec<usize>) {
        if order.contains(&i) {
            return;
        }
        order.push(usize::MAX); // in progress (cycles end here)
        let mark = order.len() - 1;
        for d in &objs[i].needed {
            if let Some(&(j, _)) = program.iter().find(|(j, _)| {
                objs[*j].soname.as_deref() == Some(d.as_str()) || objs[*j].file_name() == d
            }) {
                visit(j, objs, program, order);
            }
        }
        order[mark] = i;
    }
    for &(i, _) in &program {
        visit(i, objs, &program, &mut order);
    }
    order.dedup();
    order
        .into_iter()
        .filter(|&i| i != usize::MAX)
        .filter_map(|i| {
            let (_, r) = program.iter().find(|(j, _)| *j == i)?;
            Some((
                i,
                Reopen {
                    flags: r.flags,
                    start: objs[i].extent.0 as u64,
                    end: objs[i].extent.1 as u64,
                },
            ))
        })
        .collect()
}

/// The spawn arguments that name the program's opened objects, for
/// [`reopen_from_arguments`]: `opened=FLAGS,START,END,BASE,PATH` each.
pub fn spawn_arguments() -> Vec<String> {
    let objs = super::elf::objects();
    reopens(&objs)
        .into_iter()
        .map(|(i, r)| {
            format!(
                "opened={},{:#x},{:#x},{:#x},{}",
                r.flags, r.start, r.end, objs[i].base, objs[i].name
            )
        })
        .collect()
}

/// Parses one `opened=` argument of [`spawn_arguments`].
fn parse_argument(a: &str) -> Option<Loaded> {
    let v = a.strip_prefix("opened=")?;
    let mut it = v.splitn(5, ',');
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok();
    let flags = it.next()?.parse().ok()?;
    let (start, end, base) = (hex(it.next()?)?, hex(it.next()?)?, hex(it.next()?)?);
    Some(Loaded {
        name: it.next()?.to_string(),
        base,
        pinned: true,
        reopen: Some(Reopen { flags, start, end }),
    })
}

/// In a replacement, before `MPI_Init`: opens the objects its spawn
/// arguments name at their places.
pub fn reopen_from_arguments(args: &[String]) -> Result<(), String> {
    let list: Vec<Loaded> = args.iter().filter_map(|a| parse_argument(a)).collect();
    reopen_all(&list)
}

/// Opens again, at their old places, the objects the program had opened
/// (in the image's order). Called in a new process before the image is
/// checked (a replacement tries first before its `MPI_Init`); what cannot
/// be placed is said, and the image is then not used.
pub fn reopen_all(objects: &[Loaded]) -> Result<(), String> {
    for o in objects {
        let Some(r) = o.reopen else { continue };
        let loaded = super::elf::objects();
        if let Some(now) = loaded.iter().find(|n| n.name == o.name) {
            if now.base as u64 == o.base {
                continue;
            }
            return Err(format!(
                "{} is already loaded at {:#x} in this process, the image needs it at {:#x}",
                o.name, now.base, o.base
            ));
        }
        let path = CString::new(o.name.clone())
            .map_err(|_| format!("{}: a path with a NUL byte", o.name))?;
        let cover = steer(r.start as usize, r.end as usize, &loaded)
            .map_err(|e| format!("cannot open {} again at {:#x}: {e}", o.name, o.base))?;
        // SAFETY: the C library's dlopen on a path the program opened.
        let h = unsafe { real_dlopen()(path.as_ptr(), r.flags) };
        uncover(&cover);
        if h.is_null() {
            // SAFETY: dlerror's message, copied at once.
            let why = unsafe {
                let e = libc::dlerror();
                if e.is_null() {
                    String::new()
                } else {
                    CStr::from_ptr(e).to_string_lossy().into_owned()
                }
            };
            return Err(format!("cannot open {} again: {why}", o.name));
        }
        let base = super::elf::objects()
            .iter()
            .find(|n| n.name == o.name)
            .map(|n| n.base);
        if base != Some(o.base as usize) {
            return Err(format!(
                "{} opened again at {:#x}, the image needs {:#x}",
                o.name,
                base.unwrap_or(0),
                o.base
            ));
        }
    }
    Ok(())
}

/// Covers, with inaccessible reservations, every free gap above `[lo, hi)`
/// and below the highest loaded object (the part of the address space the
/// kernel searches first, from the top), and the free space right above
/// `hi`, so that the next mapping of `hi - lo` bytes without an address
/// lands at `lo`. Fails if `[lo, hi)` is not free.
fn steer(lo: usize, hi: usize, objs: &[Object]) -> Result<Vec<(usize, usize)>, String> {
    let maps = std::fs::read_to_string("/proc/self/maps").map_err(|e| e.to_string())?;
    let mut used: Vec<(usize, usize)> = maps
        .lines()
        .filter_map(|l| {
            let (a, b) = l.split_whitespace().next()?.split_once('-')?;
            Some((
                usize::from_str_radix(a, 16).ok()?,
                usize::from_str_radix(b, 16).ok()?,
            ))
        })
        .collect();
    used.sort();
    if used.iter().any(|&(a, b)| a < hi && lo < b) {
        return Err(format!("{lo:#x}..{hi:#x} is taken in this process"));
    }
    // The top of the area the kernel places libraries in: the highest
    // loaded object's end (below the stack).
    let top = objs
        .iter()
        .filter(|o| !o.is_vdso())
        .map(|o| o.extent.1)
        .max()
        .unwrap_or(hi)
        .max(hi);
    let mut cover = Vec::new();
    let mut at = hi;
    for &(a, b) in used.iter().filter(|&&(_, b)| b > hi) {
        if a > at && at < top {
            let end = a.min(top);
            if end > at {
                cover.push((at, end));
            }
        }
        at = at.max(b);
    }
    let mut made = Vec::new();
    for (a, b) in cover {
        // SAFETY: a reservation of free address space (never replacing
        // anything), removed again by `uncover`.
        let p = unsafe {
            libc::mmap(
                a as *mut c_void,
                b - a,
                libc::PROT_NONE,
                libc::MAP_PRIVATE
                    | libc::MAP_ANONYMOUS
                    | libc::MAP_NORESERVE
                    | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED || p as usize != a {
            if p != libc::MAP_FAILED {
                // SAFETY: the mapping just made elsewhere.
                unsafe { libc::munmap(p, b - a) };
            }
            uncover(&made);
            return Err(format!("cannot reserve {a:#x}..{b:#x}"));
        }
        made.push((a, b));
    }
    Ok(made)
}

fn uncover(cover: &[(usize, usize)]) {
    for &(a, b) in cover {
        // SAFETY: our own reservations, made by `steer`.
        unsafe { libc::munmap(a as *mut c_void, b - a) };
    }
}

/// The thread-local blocks of the program's opened objects, for this
/// thread: (object, bytes), kept in the library's memory across the jump.
static TLS: Mutex<Vec<(String, usize, Vec<u8>)>> = Mutex::new(Vec::new());

/// Before the save point: the bytes of this thread's block of every
/// opened object of the program that has one.
pub fn save_tls(objs: &[Object], opened: &[(usize, Reopen)]) {
    let Ok(mut t) = TLS.lock() else { return };
    t.clear();
    for &(i, _) in opened {
        let o = &objs[i];
        if let Some((a, b)) = o.tls {
            // SAFETY: this thread's block of the object, as the dynamic
            // linker reports it.
            let bytes = unsafe { std::slice::from_raw_parts(a as *const u8, b - a) }.to_vec();
            t.push((o.name.clone(), o.base, bytes));
        }
    }
}

#[repr(C)]
struct TlsIndex {
    module: usize,
    offset: usize,
}

extern "C" {
    fn __tls_get_addr(ti: *const TlsIndex) -> *mut c_void;
}

/// After the jump: the saved blocks written into this thread's blocks of
/// the same objects (made now if the dynamic linker has not yet).
pub fn restore_tls() -> Result<(), String> {
    let saved = TLS.lock().map(|t| t.clone()).unwrap_or_default();
    if saved.is_empty() {
        return Ok(());
    }
    let objs = super::elf::objects();
    for (name, base, bytes) in saved {
        let Some(o) = objs.iter().find(|o| o.name == name && o.base == base) else {
            return Err(format!("{name} is not loaded after the restore"));
        };
        if o.tls_modid == 0 {
            return Err(format!("{name} has no thread-local storage here"));
        }
        let ti = TlsIndex {
            module: o.tls_modid,
            offset: 0,
        };
        // SAFETY: the dynamic linker's own lookup of this thread's block
        // of a loaded module (allocated now if it was not).
        let p = unsafe { __tls_get_addr(&ti) } as *mut u8;
        if p.is_null() {
            return Err(format!("no thread-local block for {name}"));
        }
        // SAFETY: the block holds the module's TLS size, the length saved.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len()) };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawn_arguments_round_trip() {
        let a = format!(
            "opened={},{:#x},{:#x},{:#x},{}",
            258, 0x7fff_f000_0000u64, 0x7fff_f001_0000u64, 0x7fff_f000_0000u64, "/a,b/libx.so"
        );
        let l = parse_argument(&a).expect("parsed");
        assert_eq!(l.name, "/a,b/libx.so");
        assert_eq!(l.base, 0x7fff_f000_0000);
        assert_eq!(
            l.reopen,
            Some(Reopen {
                flags: 258,
                start: 0x7fff_f000_0000,
                end: 0x7fff_f001_0000
            })
        );
        assert!(parse_argument("fds=1,2").is_none());
        assert!(parse_argument("opened=x,1,2,3,/p").is_none());
    }
}
