//! Capture: the process's image written to a file, from inside an MPI call
//! of the program's main thread.
//!
//! The save point (`ferry_image_save` in `context.c`) records the thread's
//! context, then calls [`write_image`] with its own frame still alive, so
//! that the context is valid in the stack the image holds. In the new
//! process the restore jumps back to that context: the save point returns
//! a second time, now saying "resumed", and [`capture`] applies what lives
//! outside memory (files, signal handlers, working directory, stdio list,
//! exit handlers) before returning [`Outcome::Resumed`] to its caller.
//!
//! While the regions are written nothing allocates in the arenas: every
//! buffer is made beforehand.
use super::stream;
use crate::mem::carried;
use crate::mem::elf;
use crate::mem::format::{self, Header, Kind, Region};
use crate::mem::layout::{self, *};
use std::ffi::c_void;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;
use xxhash_rust::xxh3::Xxh3;

/// How a capture ended.
#[derive(Debug)]
pub enum Outcome {
    /// The image is written (this is still the old process).
    Written(Stats),
    /// This is the new process, resumed from the image.
    Resumed,
    /// Nothing usable was written.
    Failed(String),
}

#[derive(Debug, Clone)]
pub struct Stats {
    pub path: PathBuf,
    pub image_bytes: u64,
    pub file_bytes: u64,
    pub regions: usize,
    pub micros: u64,
}

/// What the process needs applied after a resume, captured with the image
/// (in the library's memory, so carried).
static EXTRAS: Mutex<Option<crate::mem::process::Extras>> = Mutex::new(None);

/// Where an image goes.
pub enum Destination<'a> {
    /// A file (written as `.partial`, then renamed), for a checkpoint.
    File(&'a Path),
    /// Straight to the replacement process, over MPI (see [`stream`]): the
    /// bytes of the same file format, each piece sent with its offset.
    Peer {
        comm: crate::sys::MPI_Comm,
        rank: std::ffi::c_int,
    },
}

/// The writer's output.
enum Out {
    File(std::fs::File),
    Peer(stream::Sender),
}

impl Out {
    /// `frozen`: `b` does not change while the image is written (the
    /// program's heap), so it is sent from where it is (otherwise from a
    /// copy made now).
    fn write_at(&mut self, b: &[u8], at: u64, frozen: bool) -> Result<(), String> {
        match self {
            Out::File(f) => write_at(f, b, at),
            // SAFETY: a live communicator of this process; `b` is readable
            // and, when `frozen`, stays so and unchanged until `finish`.
            Out::Peer(s) => unsafe { s.send(b, at, frozen) },
        }
    }
}

/// Everything the writer needs, made before the save point.
struct Job {
    out: Out,
    header: Header,
    /// Address ranges to write, with their kind (filled in the writer).
    ranges: Vec<(usize, usize, Kind)>,
    holes: Vec<(usize, usize)>,
    scratch: Vec<(usize, usize)>,
    /// `/proc/self/pagemap` entries, read a chunk at a time.
    pagemap: Vec<u64>,
    pagemap_file: Option<std::fs::File>,
    objects: Vec<elf::Object>,
    /// Whether each object's data is carried.
    carried: Vec<bool>,
    /// The objects the program opened (their thread-local blocks travel
    /// apart, see [`crate::mem::opened`]).
    opened: Vec<usize>,
    error: Option<String>,
    file_bytes: u64,
    fsync: bool,
}

/// Writes this process's image to `dest` (a file of mode 0600, or the
/// replacement process). Called on the program's main thread from inside
/// an MPI call.
pub fn capture(dest: Destination, world_rank: i32, world_size: i32, thread_level: i32) -> Outcome {
    if !crate::mem::on_app_stack() {
        return Outcome::Failed("the capture must run on the program's main thread".into());
    }
    let t0 = Instant::now();
    // What the program printed so far goes out before the image is taken.
    // SAFETY: flushes every stdio stream.
    unsafe { libc::fflush(std::ptr::null_mut()) };
    let files = match crate::mem::files::capture() {
        Ok(f) => f,
        Err(e) => return Outcome::Failed(e.0),
    };
    if let Ok(mut x) = EXTRAS.lock() {
        *x = Some(crate::mem::process::capture());
    }
    let (out, path, tmp) = match dest {
        Destination::File(path) => {
            let tmp = path.with_extension("img.partial");
            match std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
            {
                Ok(f) => (Out::File(f), path.to_path_buf(), Some(tmp)),
                Err(e) => return Outcome::Failed(format!("cannot create {}: {e}", tmp.display())),
            }
        }
        Destination::Peer { comm, rank } => match stream::Sender::new(comm, rank) {
            Ok(s) => (Out::Peer(s), PathBuf::new(), None),
            Err(e) => return Outcome::Failed(e),
        },
    };
    let objects = elf::objects();
    let plan = carried::plan(&objects);
    let reopen = crate::mem::opened::reopens(&objects);
    crate::mem::opened::save_tls(&objects, &reopen);
    let (exe_path, exe_hash, ferry_path, ferry_hash) = crate::mem::elf::identity();
    let header = Header {
        world_rank,
        world_size,
        pid: std::process::id(),
        host: hostname(),
        exe_path,
        exe_hash,
        ferry_path,
        ferry_hash,
        objects: crate::mem::carried::loaded_objects(&objects, &plan.carried, &reopen),
        thread_level,
        canary: crate::mem::context::canary(),
        context: Vec::with_capacity(std::mem::size_of::<libc::ucontext_t>()),
        files,
        signals: crate::mem::process::program_handlers()
            .iter()
            .filter(|h| h.before_init)
            .map(|h| (h.signo, crate::mem::process::handler_bytes(h)))
            .collect(),
        regions: Vec::with_capacity(MAX_REGIONS),
        created_unix_ms: ferry_common::time::unix_ms(),
    };
    let fsync = matches!(out, Out::File(_))
        && ferry_common::env::var("FERRY_IMAGE_FSYNC").as_deref() != Some("0");
    let mut job = Job {
        out,
        header,
        ranges: Vec::with_capacity(MAX_REGIONS),
        holes: Vec::with_capacity(1 << 12),
        scratch: Vec::with_capacity(1 << 16),
        pagemap: vec![0u64; PAGEMAP_CHUNK],
        pagemap_file: std::fs::File::open("/proc/self/pagemap").ok(),
        carried: plan.carried,
        opened: reopen.iter().map(|(i, _)| *i).collect(),
        objects,
        error: None,
        file_bytes: 0,
        fsync,
    };
    // The library's protocol state lives in MPI's window memory, which is
    // not carried: its home copy (carried) is brought up to date.
    crate::core::state::copy_home();
    let h = layout::handover();
    // SAFETY: the handover page is mapped (the image layer is on); the
    // writer gets our job for the duration of the call.
    let rc = unsafe {
        crate::mem::context::save(
            std::ptr::addr_of_mut!((*h).ctx),
            std::ptr::addr_of_mut!((*h).resumed),
            write_image,
            &mut job as *mut Job as *mut c_void,
        )
    };
    match rc {
        1 => {
            // The new process. The job's file descriptors and its sender
            // are the old process's (a number may be the program's here,
            // the sender's handles are of the old MPI): never closed nor
            // dropped. Its buffers are the library's heap, carried: given
            // back (forgotten, they added some 600 KiB to every later
            // image of the rank).
            let Job {
                out, pagemap_file, ..
            } = job;
            std::mem::forget((out, pagemap_file));
            resumed();
            Outcome::Resumed
        }
        0 => {
            let image_bytes = job.header.image_bytes();
            let regions = job.header.regions.len();
            if let Some(tmp) = &tmp {
                if let Err(e) = std::fs::rename(tmp, &path) {
                    return Outcome::Failed(format!("cannot rename {}: {e}", tmp.display()));
                }
            }
            Outcome::Written(Stats {
                path,
                image_bytes,
                file_bytes: job.file_bytes,
                regions,
                micros: t0.elapsed().as_micros() as u64,
            })
        }
        _ => {
            if let Some(tmp) = &tmp {
                let _ = std::fs::remove_file(tmp);
            }
            Outcome::Failed(
                job.error
                    .unwrap_or_else(|| "the image could not be written".into()),
            )
        }
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most the buffer's length.
    unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    let n = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// The writer, called by the save point.
extern "C" fn write_image(arg: *mut c_void) -> i32 {
    // SAFETY: the job handed to ferry_image_save by `capture`.
    let job = unsafe { &mut *(arg as *mut Job) };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| write_all(job))) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            job.error = Some(e);
            -1
        }
        Err(_) => {
            job.error = Some("internal error while writing the image".into());
            -1
        }
    }
}

fn write_all(job: &mut Job) -> Result<(), String> {
    let h = layout::handover();
    // SAFETY: the context was just saved in the handover page.
    let ctx = unsafe { &(*h).ctx };
    let rsp = ctx.uc_mcontext.gregs[libc::REG_RSP as usize] as usize;
    // SAFETY: the saved context, as bytes.
    job.header.context.extend_from_slice(unsafe {
        std::slice::from_raw_parts(
            ctx as *const _ as *const u8,
            std::mem::size_of::<libc::ucontext_t>(),
        )
    });
    collect_ranges(job, rsp);
    // Write each range at a page-aligned offset, hashing as it goes.
    let mut offset: u64 = 0;
    for i in 0..job.ranges.len() {
        let (lo, hi, kind) = job.ranges[i];
        let len = hi - lo;
        // SAFETY: mapped, readable memory of this process (the ranges come
        // from the loader's tables and our own arenas).
        let bytes = unsafe { std::slice::from_raw_parts(lo as *const u8, len) };
        // In chunks: each is hashed while it is in the cache, written, and
        // its writeback started at once, so that dirty pages do not pile
        // up for the final sync.
        let mut hasher = Xxh3::new();
        for (i, chunk) in bytes.chunks(WRITE_CHUNK).enumerate() {
            let at = offset + (i * WRITE_CHUNK) as u64;
            hasher.update(chunk);
            job.out.write_at(chunk, at, kind == Kind::ProgramHeap)?;
            if let (true, Out::File(f)) = (job.fsync, &job.out) {
                use std::os::fd::AsRawFd;
                // SAFETY: a hint to the kernel on our own file.
                unsafe {
                    libc::sync_file_range(
                        f.as_raw_fd(),
                        at as i64,
                        chunk.len() as i64,
                        libc::SYNC_FILE_RANGE_WRITE,
                    )
                };
            }
        }
        job.header.regions.push(Region {
            addr: lo as u64,
            len: len as u64,
            offset,
            hash: hasher.digest(),
            kind,
        });
        offset = page_up((offset + len as u64) as usize) as u64;
    }
    let hb = job.header.encode();
    job.out.write_at(&hb, offset, false)?;
    let t = format::trailer(offset, &hb);
    job.out.write_at(&t, offset + hb.len() as u64, false)?;
    job.file_bytes = offset + (hb.len() + t.len()) as u64;
    match &mut job.out {
        Out::File(f) => {
            if job.fsync {
                f.sync_data()
                    .map_err(|e| format!("cannot sync the image: {e}"))?;
            }
            f.flush().ok();
        }
        // SAFETY: as every piece before it; every message is delivered
        // before the writer returns (and the memory may change again).
        Out::Peer(s) => unsafe { s.finish(job.file_bytes)? },
    }
    // What each kind of memory weighs (logged once written: nothing may
    // allocate while the library's heap is being written).
    if log::log_enabled!(log::Level::Debug) {
        let mut by_kind = [0u64; 7];
        for &(lo, hi, kind) in &job.ranges {
            by_kind[kind as usize] += (hi - lo) as u64;
        }
        let kib = |k: Kind| by_kind[k as usize] >> 10;
        log::debug!(
            "image: program heap {} KiB, stack {} KiB, data {} KiB, TLS {} KiB; library data {} KiB, heap {} KiB",
            kib(Kind::ProgramHeap),
            kib(Kind::ProgramStack),
            kib(Kind::ProgramData),
            kib(Kind::Tls),
            kib(Kind::LibraryData),
            kib(Kind::LibraryHeap)
        );
    }
    Ok(())
}

fn write_at(f: &std::fs::File, b: &[u8], at: u64) -> Result<(), String> {
    use std::os::unix::fs::FileExt;
    f.write_all_at(b, at)
        .map_err(|e| format!("cannot write the image: {e}"))
}

/// Every range to carry, in address order of kind.
fn collect_ranges(job: &mut Job, rsp: usize) {
    let fb = elf::ferry_base();
    // The program's heap: the pages of its used ranges that hold data.
    job.scratch.clear();
    crate::mem::alloc::app().used_ranges(&mut job.scratch);
    for i in 0..job.scratch.len() {
        let (a, b) = job.scratch[i];
        touched(job, a, b, Kind::ProgramHeap);
    }
    // The main thread's stack, from the saved frame to its top. Below it
    // run the writer's own frames, which change while they write (the save
    // point calls no function with a red zone in use, so nothing of the
    // interrupted call lies below the saved stack pointer).
    job.ranges.push((rsp, APP_STACK_TOP, Kind::ProgramStack));
    // Writable data of the program's closure (minus MPI's objects copied
    // into the executable) and of libferry; their thread-local blocks for
    // this thread (those of opened objects travel apart).
    for (i, o) in job.objects.iter().enumerate() {
        if !job.carried[i] {
            continue;
        }
        let kind = if o.base == fb {
            Kind::LibraryData
        } else {
            Kind::ProgramData
        };
        job.holes.clear();
        for (a, b, name) in &o.copies {
            if elf::is_mpi_symbol(name) {
                job.holes.push((*a, *b));
            }
        }
        for &(lo, hi) in &o.writable {
            job.scratch.clear();
            elf::subtract(lo, hi, &job.holes, &mut job.scratch);
            for &(a, b) in &job.scratch {
                job.ranges.push((a, b, kind));
            }
        }
        if let Some((a, b)) = o.tls.filter(|_| !job.opened.contains(&i)) {
            job.ranges.push((a, b, Kind::Tls));
        }
    }
    // The library's heap, last: nothing allocates while it is written.
    job.scratch.clear();
    crate::mem::alloc::lib().used_ranges(&mut job.scratch);
    for i in 0..job.scratch.len() {
        let (a, b) = job.scratch[i];
        touched(job, a, b, Kind::LibraryHeap);
    }
}

/// Bytes hashed and written at a time.
const WRITE_CHUNK: usize = 8 << 20;

/// Pagemap entries read at a time.
const PAGEMAP_CHUNK: usize = 1 << 16;
/// Untouched gaps shorter than this many pages are written anyway (fewer,
/// longer regions).
const GAP_PAGES: usize = 16;

/// Adds the parts of `[lo, hi)` whose pages were ever touched: present in
/// memory or swapped out, per `/proc/self/pagemap`. A page never touched
/// (or given back with `MADV_DONTNEED`) reads as zero, which is what the
/// restore leaves there. Without the pagemap, the whole range.
fn touched(job: &mut Job, lo: usize, hi: usize, kind: Kind) {
    use std::os::unix::fs::FileExt;
    const PRESENT: u64 = 1 << 63;
    const SWAPPED: u64 = 1 << 62;
    let room = job.ranges.capacity() - job.ranges.len();
    let Some(f) = job.pagemap_file.as_ref().filter(|_| room > 1024) else {
        job.ranges.push((lo, hi, kind));
        return;
    };
    let (first, last) = (lo / PAGE, page_up(hi) / PAGE);
    let mut run: Option<(usize, usize)> = None; // (start page, end page)
    let mut page = first;
    while page < last {
        let n = (last - page).min(PAGEMAP_CHUNK);
        // SAFETY: the buffer is `PAGEMAP_CHUNK` u64s, viewed as bytes.
        let buf =
            unsafe { std::slice::from_raw_parts_mut(job.pagemap.as_mut_ptr() as *mut u8, n * 8) };
        if f.read_exact_at(buf, (page * 8) as u64).is_err() {
            job.ranges.push((page * PAGE, hi, kind));
            return;
        }
        for i in 0..n {
            let p = page + i;
            if job.pagemap[i] & (PRESENT | SWAPPED) == 0 {
                continue;
            }
            run = match run {
                Some((s, e)) if p - e <= GAP_PAGES => Some((s, p + 1)),
                Some((s, e)) => {
                    if job.ranges.len() + 2 >= job.ranges.capacity() {
                        // Too fragmented: the rest in one piece.
                        job.ranges.push(((s * PAGE).max(lo), hi, kind));
                        return;
                    }
                    job.ranges
                        .push(((s * PAGE).max(lo), (e * PAGE).min(hi), kind));
                    Some((p, p + 1))
                }
                None => Some((p, p + 1)),
            };
        }
        page += n;
    }
    if let Some((s, e)) = run {
        job.ranges
            .push(((s * PAGE).max(lo), (e * PAGE).min(hi), kind));
    }
}

/// In the new process, right after the jump: what lives outside memory.
fn resumed() {
    crate::mem::opened::after_resume();
    if let Err(e) = crate::mem::opened::restore_tls() {
        log::error!("after the restore: {e}");
    }
    let extras = EXTRAS.lock().ok().and_then(|x| x.clone());
    if let Some(x) = extras {
        if let Err(e) = crate::mem::process::apply(&x) {
            log::error!("after the restore: {e}");
        }
    }
}
