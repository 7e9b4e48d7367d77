//! Restore: a new process of the same binary becomes the old one.
//!
//! Runs in place of `main` (see [`crate::mem::startup`]) when `FERRY_RESTART`
//! names a checkpoint directory:
//!
//! 1. finds its image (`rank-R.img`, R from the launcher's environment),
//!    maps it and checks everything: trailer, header, every region's
//!    checksum, the binary, libferry and the address layout; a failure is
//!    reported and the process exits with status 1, nothing jumped into;
//! 2. reserves the descriptor numbers of the program's files (so that MPI
//!    cannot take them) and opens the files again;
//! 3. starts MPI (`MPI_Init_thread` at the old thread level) and the
//!    library, whose fresh MPI objects are put aside in the handover page;
//! 4. on a stack of its own, zeroes what the old arenas did not use, puts
//!    the regions into place (an image received from a migrating process
//!    has its pages moved there by `mremap`, without a copy; a file's are
//!    copied), moves the files to their numbers and jumps into the old
//!    process's interrupted call (`context.c`).
use super::mapped::Mapped;
use crate::mem::format::{self, Header, Kind};
use crate::mem::layout::{self, *};
use layout::Fresh;
use std::ffi::c_void;

/// Wall clock in microseconds (the same clock in the old and the new
/// process, unlike `Instant`, whose value lives in the replaced memory).
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Index of the restore's start time among the fresh values.
const STARTED_AT: usize = 15;
/// Index of the time `MPI_Init` took (not part of the restore proper).
const INIT_US: usize = 14;
/// Index of the bytes of memory the image held.
pub const IMAGE_BYTES: usize = 13;
/// Index of the pid of the process the image was taken of.
pub const OLD_PID: usize = 12;
/// The launcher's rank for this process, known before `MPI_Init`.
pub(crate) fn launcher_rank() -> Option<i32> {
    [
        "PMI_RANK",
        "OMPI_COMM_WORLD_RANK",
        "PMIX_RANK",
        "MPI_LOCALRANKID",
    ]
    .iter()
    .find_map(|v| std::env::var(v).ok()?.parse().ok())
}

/// The image file of a rank in a checkpoint directory.
pub fn image_path(dir: &std::path::Path, rank: i32) -> std::path::PathBuf {
    dir.join(format!("rank-{rank}.img"))
}

fn fail(msg: &str) -> i32 {
    crate::mem::startup::early_warn(&format!("restart refused: {msg}"));
    1
}

/// Restarts this process from its image in `dir`, starting the library
/// with `start` once MPI is up (`ops::session::start`, given by the
/// session: see `ops::session::restart`). Returns an exit status when it
/// cannot (after saying why); does not return otherwise.
pub fn restart(dir: &str, start: fn(std::ffi::c_int)) -> i32 {
    let started = now_us();
    let Some(rank) = launcher_rank() else {
        return fail(
            "cannot tell this process's rank before MPI_Init (no PMI_RANK or OMPI_COMM_WORLD_RANK)",
        );
    };
    let path = image_path(std::path::Path::new(dir), rank);
    let map = match Mapped::open(&path) {
        Ok(m) => m,
        Err(e) => return fail(&format!("{}: {e}", path.display())),
    };
    let header = match check(&map) {
        Ok(h) => h,
        Err(e) => return fail(&format!("{}: {e}", path.display())),
    };
    // The program's descriptors: numbers reserved, files opened again.
    for f in &header.files {
        // SAFETY: probing and reserving descriptor numbers of this process.
        unsafe {
            if libc::fcntl(f.fd, libc::F_GETFD) != -1 {
                return fail(&format!(
                    "descriptor {} (the program's {}) is already taken in the new process",
                    f.fd, f.path
                ));
            }
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            if null != f.fd {
                libc::dup2(null, f.fd);
                libc::close(null);
            }
        }
    }
    let reopened = match crate::mem::files::reopen(&header.files) {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    // The program's signal handlers set before MPI_Init, in place before
    // MPI_Init again (MPI may install its own on top and chain to them).
    let early: Vec<crate::mem::process::Handler> = header
        .signals
        .iter()
        .filter_map(|(signo, b)| crate::mem::process::handler_from(*signo, b, true))
        .collect();
    if early.len() != header.signals.len() {
        return fail("a signal disposition of the image is malformed (corrupt)");
    }
    crate::mem::process::install_handlers(&early, true);
    // MPI, at the thread level the program had.
    let init_started = now_us();
    let mut provided = 0;
    // SAFETY: the first MPI call of this process.
    let rc = unsafe {
        crate::sys::PMPI_Init_thread(
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            header.thread_level,
            &mut provided,
        )
    };
    if rc != crate::sys::constants::MPI_SUCCESS() {
        return fail(&format!("MPI_Init_thread failed ({rc})"));
    }
    start(provided);
    let init_us = now_us().saturating_sub(init_started);
    let (rank_now, size_now) = crate::core::runtime::runtime()
        .map(|r| (r.world_rank, r.world_size))
        .unwrap_or((-1, -1));
    if (rank_now, size_now) != (header.world_rank, header.world_size) {
        let msg = format!(
            "the image is of rank {} of {}, this process is rank {rank_now} of {size_now}",
            header.world_rank, header.world_size
        );
        fail(&msg);
        // SAFETY: MPI is up; the job cannot go on.
        unsafe { crate::sys::PMPI_Abort(crate::sys::constants::MPI_COMM_WORLD(), 1) };
        return 1;
    }
    let mut fresh = crate::core::runtime::fresh();
    fresh[STARTED_AT] = started;
    fresh[INIT_US] = init_us;
    let e = jump(map, &header, reopened, fresh);
    fail(&e)
}

/// An image received by a replacement, checked, with the program's files
/// opened again: ready to jump into (see [`Prepared::jump`]).
pub struct Prepared {
    map: Mapped,
    header: Header,
    reopened: crate::mem::files::Reopened,
}

/// The replacement of a migrating process (see `crate::ops::migration`), once
/// MPI is up and the image has arrived in `map`: checks it, opens the
/// program's files again (their numbers were reserved before `MPI_Init`)
/// and installs the signal handlers the program set before `MPI_Init`.
pub fn prepare(map: Mapped) -> Result<Prepared, String> {
    let header = check(&map).map_err(|e| format!("the image received is not usable: {e}"))?;
    let reopened = crate::mem::files::reopen(&header.files)?;
    let early: Vec<crate::mem::process::Handler> = header
        .signals
        .iter()
        .filter_map(|(signo, b)| crate::mem::process::handler_from(*signo, b, true))
        .collect();
    crate::mem::process::install_handlers(&early, true);
    Ok(Prepared {
        map,
        header,
        reopened,
    })
}

impl Prepared {
    /// Copies the image into place and jumps into the old process's
    /// interrupted call with `fresh`, the new process's own values.
    /// Returns only if the jump did, with why.
    pub fn jump(self, mut fresh: Fresh, started: u64, init_us: u64) -> String {
        fresh[STARTED_AT] = started;
        fresh[INIT_US] = init_us;
        jump(self.map, &self.header, self.reopened, fresh)
    }
}

/// Puts everything that crosses the copy into the handover page, then
/// copies the image into place on the restore stack and jumps. Returns
/// only if the jump did.
fn jump(
    map: Mapped,
    header: &Header,
    reopened: crate::mem::files::Reopened,
    mut fresh: Fresh,
) -> String {
    fresh[IMAGE_BYTES] = header.image_bytes();
    fresh[OLD_PID] = header.pid as u64;
    let h = layout::handover();
    // SAFETY: the handover page is ours; nothing else uses it now.
    unsafe {
        let hv = &mut *h;
        hv.fresh = fresh;
        hv.canary = header.canary;
        std::ptr::copy_nonoverlapping(
            header.context.as_ptr(),
            std::ptr::addr_of_mut!(hv.ctx) as *mut u8,
            std::mem::size_of::<libc::ucontext_t>().min(header.context.len()),
        );
        let moves = reopened.moves();
        hv.nfiles = moves.len() as u32;
        for (i, m) in moves.iter().enumerate() {
            hv.files[i] = *m;
        }
        hv.ncopies = 0;
        for r in &header.regions {
            let src = map.base as u64 + r.offset;
            hv.copies[hv.ncopies as usize] = layout::Copy {
                dst: r.addr,
                src,
                len: r.len,
                moved: movable(&map, src, r.addr, r.len),
            };
            hv.ncopies += 1;
        }
        hv.nzero = 0;
        for (lo, hi) in zero_ranges(header) {
            hv.zero[hv.nzero as usize] = (lo as u64, hi as u64);
            hv.nzero += 1;
        }
    }
    std::mem::forget(reopened);
    std::mem::forget(map);
    log::debug!(
        "restoring {} bytes in {} regions",
        header.image_bytes(),
        header.regions.len(),
    );
    // SAFETY: switches to the restore stack (mapped, never carried); the
    // copy and the jump do not return.
    unsafe {
        crate::mem::context::on_stack(
            RESTORE_STACK_BASE,
            RESTORE_STACK_LEN,
            copy_and_jump,
            std::ptr::null_mut(),
        );
    }
    "the jump into the image returned".into()
}

/// Smallest region whose pages are moved rather than copied (below it a
/// copy costs less than the system call and the split mappings).
const MOVE_AT_LEAST: u64 = 256 << 10;

/// How many leading bytes of a region at `src` in the image are moved into
/// place at `dst` (see [`layout::Copy`]): its whole pages, when the image
/// is anonymous memory of this process (received, not a mapped file) and
/// both addresses are page-aligned; otherwise none.
fn movable(map: &Mapped, src: u64, dst: u64, len: u64) -> u64 {
    let page = PAGE as u64;
    let aligned = (src | dst) & (page - 1) == 0;
    if map.anonymous && aligned && len >= MOVE_AT_LEAST {
        len & !(page - 1)
    } else {
        0
    }
}

/// The image checked against this process.
fn check(map: &Mapped) -> Result<Header, String> {
    let file = map.bytes();
    let header = format::read_header(file).map_err(|e| e.0)?;
    if header.regions.len() > MAX_REGIONS || header.files.len() > MAX_FILES {
        return Err("the image has more regions or files than this ferry restores".into());
    }
    if header.context.len() != std::mem::size_of::<libc::ucontext_t>() {
        return Err("the image's saved context has the wrong size (corrupt or foreign)".into());
    }
    for r in &header.regions {
        if !allowed(r.addr as usize, r.len as usize, r.kind) {
            return Err(format!(
                "region at {:#x} ({} bytes) is outside what an image may hold (corrupt or foreign)",
                r.addr, r.len
            ));
        }
    }
    format::verify_regions(file, &header).map_err(|e| e.0)?;
    crate::mem::opened::reopen_all(&header.objects)
        .map_err(|e| format!("the address layout differs: {e}"))?;
    let objs = crate::mem::elf::objects();
    let carried = crate::mem::carried::plan(&objs).carried;
    let (exe_path, exe_hash, ferry_path, ferry_hash) = crate::mem::elf::identity();
    let now = Header {
        exe_path,
        exe_hash,
        ferry_path,
        ferry_hash,
        objects: crate::mem::carried::loaded_objects(&objs, &carried, &[]),
        ..Header::default()
    };
    format::check_identity(&header, &now).map_err(|e| e.0)?;
    // Every data region must lie in a writable segment of this process.
    let writable: Vec<(usize, usize)> = objs
        .iter()
        .flat_map(|o| o.writable.iter().copied().chain(o.tls))
        .collect();
    for r in header
        .regions
        .iter()
        .filter(|r| matches!(r.kind, Kind::ProgramData | Kind::LibraryData | Kind::Tls))
    {
        let (lo, hi) = (r.addr as usize, (r.addr + r.len) as usize);
        if !writable.iter().any(|&(a, b)| a <= lo && hi <= b) {
            return Err(format!(
                "region at {lo:#x} is not writable data of this process (foreign layout)"
            ));
        }
    }
    Ok(header)
}

/// Whether a region of this kind may be at this place.
fn allowed(addr: usize, len: usize, kind: Kind) -> bool {
    let inside = |base: usize, l: usize| {
        addr >= base && addr.checked_add(len).is_some_and(|e| e <= base + l)
    };
    match kind {
        Kind::ProgramHeap => inside(APP_HEAP_BASE, APP_HEAP_LEN),
        Kind::ProgramStack => inside(APP_STACK_BASE, APP_STACK_LEN),
        Kind::LibraryHeap => inside(LIB_HEAP_BASE, LIB_HEAP_LEN),
        Kind::ProgramData | Kind::LibraryData | Kind::Tls => {
            // Checked against this process's writable segments in `check`;
            // never inside the regions the restore itself uses.
            !inside(HANDOVER_BASE, HANDOVER_LEN) && !inside(RESTORE_STACK_BASE, RESTORE_STACK_LEN)
        }
    }
}

/// The arenas up to the further of the old and the new high-water mark:
/// zeroed before the copy, so that what the image does not hold (pages
/// the old process never touched or gave back) reads as zero, as the old
/// allocator left it, and nothing of the new process's startup remains.
fn zero_ranges(h: &Header) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for (arena, kind, base) in [
        (crate::mem::alloc::app(), Kind::ProgramHeap, APP_HEAP_BASE),
        (crate::mem::alloc::lib(), Kind::LibraryHeap, LIB_HEAP_BASE),
    ] {
        let old_end = h
            .regions
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| (r.addr + r.len) as usize)
            .max()
            .unwrap_or(base);
        let end = page_up(arena.high_water().max(old_end));
        if end > base {
            out.push((base, end));
        }
    }
    out
}

/// On the restore stack: the copy, then the jump. Touches nothing but the
/// handover page, the mapped image and the destination memory.
extern "C" fn copy_and_jump(_: *mut c_void) -> i64 {
    let h = layout::handover();
    // SAFETY: the handover page was filled by `restart`; every copy was
    // checked (inside an arena, the stack, or a writable segment of this
    // process; source inside the mapped image); nothing else runs.
    unsafe {
        let hv = &mut *h;
        for i in 0..hv.nzero as usize {
            let (lo, hi) = hv.zero[i];
            libc::madvise(lo as *mut c_void, (hi - lo) as usize, libc::MADV_DONTNEED);
        }
        for i in 0..hv.ncopies as usize {
            let c = hv.copies[i];
            let mut done = 0;
            if c.moved > 0 {
                // The pages change places, without a copy: the image's
                // mapping loses them, the destination's are replaced.
                let to = libc::syscall(
                    libc::SYS_mremap,
                    c.src,
                    c.moved,
                    c.moved,
                    libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                    c.dst,
                );
                if to as u64 == c.dst {
                    done = c.moved;
                }
            }
            libc::memcpy(
                (c.dst + done) as *mut c_void,
                (c.src + done) as *const c_void,
                (c.len - done) as usize,
            );
        }
        for i in 0..hv.nfiles as usize {
            let f = hv.files[i];
            libc::syscall(libc::SYS_dup3, f.tmp, f.target, 0);
            libc::syscall(libc::SYS_close, f.tmp);
            libc::syscall(libc::SYS_fcntl, f.target, libc::F_SETFD, f.fd_flags);
            if f.offset > 0 {
                libc::syscall(libc::SYS_lseek, f.target, f.offset, libc::SEEK_SET);
            }
        }
        crate::mem::context::jump(
            std::ptr::addr_of!(hv.ctx),
            std::ptr::addr_of_mut!(hv.resumed),
            hv.canary,
        )
    }
}

/// The new process's own values, put aside by the restore (valid in a
/// restored process, right after the jump).
pub fn fresh_values() -> crate::mem::layout::Fresh {
    // SAFETY: the handover page, filled by `restart` before the jump.
    unsafe { (*layout::handover()).fresh }
}

/// Microseconds since the restore of this process began, without the
/// time `MPI_Init` took: checking, mapping and copying the image.
pub fn elapsed_us(fresh: &crate::mem::layout::Fresh) -> u64 {
    now_us()
        .saturating_sub(fresh[STARTED_AT])
        .saturating_sub(fresh[INIT_US])
}
