//! Phase 8: the old processes once their ranks live on in the
//! replacements: they leave the job ([`depart`]) or, with
//! `FERRY_OLD_PROCESS=stay`, sleep until the job finalizes ([`dormant`]);
//! and the hosts a first process left for good ([`closed_host`]).
use super::*;

/// Why a move onto `host` must be refused on an MPI whose daemon forgets
/// a job on a host all its first processes left
/// ([`crate::sys::quirks::LEFT_HOST_CLOSED`]): one of them left `host`,
/// none is there any more, and some still run elsewhere (then the new
/// process would connect to them through the daemon that forgot them).
///
/// # Safety
/// Collective over `control` (every process of the job calls it with the
/// same `host`).
pub(super) unsafe fn closed_host(control: MPI_Comm, host: &str) -> Option<String> {
    if !crate::sys::quirks::LEFT_HOST_CLOSED {
        return None;
    }
    if !links::left_by_first(host) {
        return None;
    }
    let first = first_process();
    // SAFETY: collective over `control` (contract of the function).
    let (there, anywhere) = unsafe {
        (
            any(control, first && hostname() == host),
            any(control, first),
        )
    };
    (!there && anywhere).then(|| {
        format!(
            "every process the job started on {host} has left it, and Open MPI 4.1.4 cannot \
             start a process there again while the job's first processes run elsewhere (its \
             daemon there forgot the job: ORTE state_orted.c:461); move it to a host where \
             one of them still runs, or to one none ever ran on"
        )
    })
}

/// Waits (at most 3 s) until the old process of the move `r` has exited,
/// where this process can tell: the old process left the job
/// ([`old_process_leaves`]) and ran on this host. Returns how long it
/// waited, `None` when it cannot tell.
pub fn await_old_process(r: &Report) -> Option<Duration> {
    let pid = r.old_pid as libc::pid_t;
    if !r.old_left || pid <= 0 || r.from_host != hostname() {
        return None;
    }
    let t = Instant::now();
    // A process is gone once it has ended: absent, or a zombie its
    // launcher's daemon has not reaped yet.
    let running = || ferry_common::job::process_running(pid as u32);
    while running() {
        if t.elapsed() > Duration::from_secs(3) {
            log::warn!(
                "process {pid}, which rank {} left, is still there after 3 s",
                r.rank
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Some(t.elapsed())
}

/// Whether the old process must stay (asleep until the job ends) for the
/// launcher's sake ([`crate::sys::quirks::HYDRA_NODE_CLOSED_WITH_FIRST_JOB`]):
/// it is the last of the job's first processes on its host, and other
/// processes of the job stay there (or its replacement goes there).
///
/// # Safety
/// Collective over `control`.
pub(super) unsafe fn stays_for_launcher(
    control: MPI_Comm,
    leaving: bool,
    from_host: &str,
    to_host: &str,
    from_first: bool,
) -> bool {
    if !crate::sys::quirks::HYDRA_NODE_CLOSED_WITH_FIRST_JOB {
        return false;
    }
    let here = hostname() == from_host;
    // SAFETY: collective over `control` (contract of the function).
    let (first_there, any_there) = unsafe {
        (
            any(control, !leaving && here && first_process()),
            any(control, !leaving && here),
        )
    };
    let stays = from_first && !first_there && (any_there || to_host == from_host);
    if stays && leaving {
        log::info!(
            "the last of the job's first processes on {from_host} stays asleep until the job ends \
             (MPICH's hydra would lose the host otherwise: docs/host-loss.md)"
        );
    }
    stays
}

/// Whether a moved rank's old process leaves the job at once
/// (`FERRY_OLD_PROCESS`, `leave` unless `stay`), read once: every process
/// of a job has the same environment.
pub(super) fn old_process_leaves() -> bool {
    static LEAVES: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *LEAVES.get_or_init(|| {
        ferry_common::env::var(ferry_common::env::FERRY_OLD_PROCESS).as_deref() != Some("stay")
    })
}

/// The old process of a moved rank leaves the job: its memory goes back
/// at once, it finalizes (quickly where the job was started with the
/// launcher settings of `ferry run`: no collective step in
/// `MPI_Finalize`), and exits. Never returns.
///
/// # Safety
/// The migration's communicators are released ([`release_link`]) and the
/// library's own objects over the old world freed (`control::leave`).
pub(super) unsafe fn depart() -> ! {
    let pid = std::process::id();
    let t = Instant::now();
    crate::core::bsend::detach_buffer_of_leaving();
    if std::env::var_os("FERRY_TEST_KEEP_HEAP").is_none() {
        give_back_memory();
    }
    if crate::sys::quirks::FINALIZE_COUNTS_FOREIGN_COMMS {
        crate::core::handles::free_all_comms();
    }
    // SAFETY: the end of this process: MPI's exit handlers run, the
    // program's do not (they run in the replacement). No stdio flush: the
    // program's streams were flushed at the capture and live in the
    // memory given back.
    unsafe {
        let mut ign: libc::sigaction = std::mem::zeroed();
        ign.sa_sigaction = libc::SIG_IGN;
        libc::sigaction(libc::SIGPIPE, &ign, std::ptr::null_mut());
        PMPI_Finalize();
        log::info!(
            "process {pid} left the job ({} ms in MPI_Finalize)",
            t.elapsed().as_millis()
        );
        crate::mem::process::run_library_exit_handlers();
        libc::_exit(0)
    }
}

/// The old process, once its rank lives on in the replacement: gives its
/// memory back, sleeps until the replacement finalizes, then finalizes
/// with the job. Never returns.
pub(super) unsafe fn dormant(merged: MPI_Comm, child: c_int, inter: MPI_Comm) -> ! {
    let pid = std::process::id();
    log::info!("process {pid} left its rank; asleep until the job ends");
    crate::core::bsend::detach_buffer_of_leaving();
    if std::env::var_os("FERRY_TEST_KEEP_HEAP").is_none() {
        give_back_memory();
    }
    // FINISH: the pid and host of the process that holds the rank now.
    let mut token = [0u64; 2];
    let mut req = k::MPI_REQUEST_NULL();
    // SAFETY: a receive of two integers into a local that outlives it.
    unsafe {
        PMPI_Irecv(
            token.as_mut_ptr() as *mut c_void,
            2,
            k::MPI_UINT64_T(),
            child,
            links::TAG_FINISH,
            merged,
            &mut req,
        )
    };
    let mut nap = Duration::from_millis(1);
    loop {
        let mut flag: c_int = 0;
        // SAFETY: the live request.
        unsafe { PMPI_Test(&mut req, &mut flag, k::MPI_STATUS_IGNORE()) };
        if flag != 0 {
            break;
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(200));
    }
    log::debug!("process {pid}: the job finalizes");
    links::finish_predecessor();
    links::disconnect_all();
    if crate::sys::quirks::FINALIZE_COUNTS_FOREIGN_COMMS {
        crate::core::handles::free_all_comms();
    }
    let _ = inter;
    // SAFETY: the end of this process, with the job: MPI's exit handlers
    // run, the program's do not (they run in the replacement). No stdio
    // flush: the program's streams were flushed at the capture and live in
    // the memory given back.
    unsafe {
        let mut ign: libc::sigaction = std::mem::zeroed();
        ign.sa_sigaction = libc::SIG_IGN;
        libc::sigaction(libc::SIGPIPE, &ign, std::ptr::null_mut());
        PMPI_Finalize();
        crate::mem::process::run_library_exit_handlers();
    }
    // This process belongs to the job the launcher started; the rank's
    // process may belong to a spawned one. Launchers end the job's output
    // forwarding when their first job ends (Open MPI: the rank's later
    // writes then die of SIGPIPE), so this process stays until the rank's
    // process has exited (on this host; at most ten minutes).
    let (rank_pid, rank_host) = (token[0] as libc::pid_t, token[1]);
    if rank_pid > 0 && rank_host == links::host_hash() {
        let until = std::time::Instant::now() + Duration::from_secs(600);
        // SAFETY: signal 0 only checks whether the process exists.
        while unsafe { libc::kill(rank_pid, 0) } == 0 && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // SAFETY: ends this process without the program's exit handlers.
    unsafe { libc::_exit(0) }
}

/// The program's heap of the old process is of no more use: its pages go
/// back to the system (the arena's header page stays, so that the
/// allocator would still read a valid arena).
pub(super) fn give_back_memory() {
    use crate::mem::layout::{page_up, APP_HEAP_BASE, PAGE};
    let hw = crate::mem::alloc::app().high_water();
    let lo = APP_HEAP_BASE + PAGE;
    if hw > lo {
        // SAFETY: memory of the program's arena, which no code of this
        // process touches any more (the program runs in the replacement).
        unsafe { libc::madvise(lo as *mut c_void, page_up(hw) - lo, libc::MADV_DONTNEED) };
    }
}
