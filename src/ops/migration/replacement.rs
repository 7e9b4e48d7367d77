//! The replacement process's side: started in place of `main`, it brings
//! MPI up, takes the handshake and its image from the leaving process,
//! awaits the verdict, joins the new group and jumps into the image.
use super::*;

/// The start of a replacement process (in place of `main`, see
/// [`crate::mem::startup`]): MPI, the handshake with the migrating
/// rank, the new world, the image, the jump. Returns an exit status when
/// it cannot go on (the migration is then undone by everyone).
pub fn replacement_main(args: &[String]) -> i32 {
    let started = crate::ops::image::restore::now_us();
    let mut level = 0;
    let mut fds: Vec<c_int> = Vec::new();
    let mut from: c_int = 0;
    for a in args {
        if let Some(v) = a.strip_prefix("level=") {
            level = v.parse().unwrap_or(0);
        } else if let Some(v) = a.strip_prefix("fds=") {
            fds = v.split(',').filter_map(|f| f.parse().ok()).collect();
        } else if let Some(v) = a.strip_prefix("from=") {
            from = v.parse().unwrap_or(0);
        }
    }
    // The program's opened libraries, at their places before MPI takes
    // any (what fails here is tried again, and said, once the image is in).
    if let Err(e) = crate::mem::opened::reopen_from_arguments(args) {
        log::debug!("replacement: before MPI_Init: {e}");
    }
    // The program's descriptor numbers stay free for its files.
    for &fd in &fds {
        // SAFETY: probing and reserving descriptor numbers of this process.
        unsafe {
            if libc::fcntl(fd, libc::F_GETFD) == -1 {
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                if null >= 0 && null != fd {
                    libc::dup2(null, fd);
                    libc::close(null);
                }
            }
        }
    }
    let init_started = crate::ops::image::restore::now_us();
    let mut provided = 0;
    // SAFETY: the first MPI call of this process.
    let rc = unsafe {
        PMPI_Init_thread(
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            level,
            &mut provided,
        )
    };
    if rc != k::MPI_SUCCESS() {
        crate::mem::startup::early_warn("replacement: MPI_Init_thread failed");
        return 1;
    }
    crate::sys::logging::init();
    let init_us = crate::ops::image::restore::now_us().saturating_sub(init_started);
    // SAFETY: MPI is up; collectives with the parents, in their order.
    match unsafe { join(started, init_us, from) } {
        Ok(never) => match never {},
        Err(e) => {
            crate::mem::startup::early_warn(&format!("replacement: {e}"));
            // SAFETY: MPI is up; the parents undid the migration.
            unsafe { PMPI_Finalize() };
            0
        }
    }
}

/// The replacement's side of the handshake, transfer, verdict and group;
/// `leaving`: the leaving process's rank among the spawning ones (its
/// `from=` argument). `Err`: the migration was refused and this process
/// is disconnected from the job (it finalizes); a replacement cut off
/// from the leaving process, or given up with the others of its batch,
/// ends on its own ([`cut_off`]).
pub(super) unsafe fn join(
    started: u64,
    init_us: u64,
    leaving: c_int,
) -> Result<std::convert::Infallible, String> {
    let mut spawned = k::MPI_COMM_NULL();
    let timeout = crate::ops::image::stream::timeout();
    // SAFETY: MPI is up.
    unsafe { PMPI_Comm_get_parent(&mut spawned) };
    if spawned == k::MPI_COMM_NULL() {
        return Err("started without a parent job (not by ferry)".into());
    }
    // SAFETY: the parent intercommunicator.
    unsafe { PMPI_Comm_set_errhandler(spawned, k::MPI_ERRORS_RETURN()) };
    let mut hello: [c_int; 2] = [0; 2];
    // SAFETY: a bounded receive of two integers into a local that outlives
    // it unless it is given up, and then this process ends.
    if let Err(e) = unsafe {
        crate::ops::image::stream::receive_bounded(
            spawned,
            hello.as_mut_ptr() as *mut c_void,
            2,
            k::MPI_INT(),
            leaving,
            TAG_HELLO,
            timeout,
        )
    } {
        cut_off(&format!("no word from the leaving process ({e})"));
    }
    let [rank, _size] = hello;
    crate::sys::logging::set_rank(rank);
    let t_transfer = Instant::now();
    // SAFETY: the leaving process sends its image on the spawn's
    // communicator.
    let received = unsafe { crate::ops::image::stream::receive(spawned, leaving, timeout) };
    let transfer_us = t_transfer.elapsed().as_micros() as u64;
    let received = match received {
        Ok(r) => r,
        Err(e) => cut_off(&e),
    };
    // The restore proper is measured from here: check, copy, jump.
    let restore_started = crate::ops::image::restore::now_us();
    let prepared = crate::ops::image::restore::prepare(received);
    let ack: u64 = if prepared.is_ok() { ACK_OK } else { ACK_FAILED };
    let mut verdict: u64 = u64::MAX;
    // SAFETY: one integer each way with the leaving process, bounded; the
    // buffers are locals that outlive the calls unless given up, and then
    // this process ends.
    unsafe {
        if let Err(e) = send_bounded(spawned, &ack, leaving, TAG_ACK, timeout) {
            cut_off(&format!("cannot answer the leaving process ({e})"));
        }
        // The leaving process waits for the answer at most `timeout`, then
        // tells the job and this process.
        if let Err(e) = crate::ops::image::stream::receive_bounded(
            spawned,
            &mut verdict as *mut u64 as *mut c_void,
            1,
            k::MPI_UINT64_T(),
            leaving,
            TAG_VERDICT,
            timeout * 2 + Duration::from_secs(1),
        ) {
            cut_off(&format!("no verdict from the leaving process ({e})"));
        }
    }
    let prepared = match (prepared, Verdict::from_word(verdict)) {
        (Ok(p), Verdict::Go) => p,
        // Another replacement of the batch is lost: the spawn's
        // communicator cannot be disconnected; the parents free it.
        (_, Verdict::Lost) => cut_off("the migration was given up by the job"),
        (outcome, _) => {
            // SAFETY: the leaving process disconnects too (NoGo).
            unsafe { PMPI_Comm_disconnect(&mut spawned) };
            return Err(match outcome {
                Err(e) => e,
                Ok(_) => "the migration was given up by the job".into(),
            });
        }
    };
    let t_group = Instant::now();
    let mut parent = k::MPI_COMM_NULL();
    let mut merged = k::MPI_COMM_NULL();
    let mut world = k::MPI_COMM_NULL();
    // SAFETY: collectives with the parents, in their order (`run`).
    unsafe {
        if SPAWN_ALONE {
            // Through the leaving processes (see `new_group`): the
            // replacements of the batch are this process's world.
            let mut pair = k::MPI_COMM_NULL();
            PMPI_Intercomm_merge(spawned, 1, &mut pair);
            PMPI_Intercomm_create(k::MPI_COMM_WORLD(), 0, pair, 0, TAG_JOIN, &mut parent);
            PMPI_Comm_free(&mut pair);
            PMPI_Comm_disconnect(&mut spawned);
        } else {
            parent = spawned;
        }
        PMPI_Intercomm_merge(parent, 1, &mut merged);
        PMPI_Comm_set_errhandler(merged, k::MPI_ERRORS_RETURN());
        PMPI_Comm_split(merged, 0, rank, &mut world);
    }
    // The library's objects on the new world, made with the others.
    crate::core::moves::set_joining();
    // SAFETY: collective over the new world.
    let ch = unsafe { crate::protocol::control::open(world) };
    let mut fresh = ch.fresh();
    fresh[F_REPLACEMENT] = 1;
    fresh[F_MERGED] = crate::sys::bits::handle_bits(merged);
    fresh[F_PARENT] = crate::sys::bits::handle_bits(parent);
    fresh[F_WORLD] = crate::sys::bits::handle_bits(world);
    fresh[F_TRANSFER_US] = transfer_us;
    fresh[F_SPAWNED_AT] = started;
    fresh[F_GROUP_US] = t_group.elapsed().as_micros() as u64;
    let _ = (started, init_us);
    Err(prepared.jump(fresh, restore_started, 0))
}

/// A bounded send of one integer.
///
/// # Safety
/// `word` outlives the send unless it is given up (and then the process
/// ends without returning to its owner).
pub(super) unsafe fn send_bounded(
    comm: MPI_Comm,
    word: &u64,
    dest: c_int,
    tag: c_int,
    timeout: Duration,
) -> Result<(), crate::ops::image::stream::Stall> {
    let mut req = k::MPI_REQUEST_NULL();
    // SAFETY: contract of the function.
    let rc = unsafe {
        PMPI_Isend(
            word as *const u64 as *const c_void,
            1,
            k::MPI_UINT64_T(),
            dest,
            tag,
            comm,
            &mut req,
        )
    };
    if rc != k::MPI_SUCCESS() {
        return Err(crate::ops::image::stream::Stall::Error(rc));
    }
    // SAFETY: the request just made.
    unsafe { crate::ops::image::stream::wait_bounded(&mut req, timeout, false) }
}

/// A replacement cut off from the leaving process (its host unreachable,
/// or the leaving process gave it up): the job has gone on without it, so
/// it ends on its own, at once and with status 0, without `MPI_Finalize`
/// (which would wait for processes it cannot reach). See docs/migration.md
/// for what each launcher then does.
pub(super) fn cut_off(why: &str) -> ! {
    crate::mem::startup::early_warn(&format!(
        "replacement: {why}; the migration is given up, this process ends"
    ));
    // SAFETY: ends this process; nothing of the program runs here.
    unsafe { libc::_exit(0) }
}
