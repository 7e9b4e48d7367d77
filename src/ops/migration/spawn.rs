//! Phase 4: one `MPI_Comm_spawn_multiple` of every replacement of a
//! batch, each on its host, with the arguments of a replacement.
use super::*;

/// What the spawn of a batch made: the intercommunicator to the
/// replacements (in the order of the targets), and the communicator of
/// the processes that spawned them (MPICH: the leaving ones alone; Open
/// MPI: every process, the control communicator).
pub(super) struct Spawned {
    pub(super) inter: MPI_Comm,
    /// The leaving processes' own communicator (MPICH), freed with the
    /// spawn; null where the spawn was over the control communicator.
    pub(super) leavers: MPI_Comm,
}

impl Spawned {
    /// After a batch that does not move: the intercommunicator
    /// disconnected (with replacements that all answered, which do the
    /// same) or freed (one is lost: a disconnect would wait for it).
    ///
    /// # Safety
    /// Every member of the spawn calls it, with the same verdict.
    pub(super) unsafe fn drop_all(&mut self, verdict: Verdict) {
        // SAFETY: contract of the function.
        unsafe {
            if self.inter != k::MPI_COMM_NULL() {
                drop_spawned(&mut self.inter, verdict);
            }
            if self.leavers != k::MPI_COMM_NULL() {
                PMPI_Comm_free(&mut self.leavers);
            }
        }
    }
}

/// Phase 4: one `MPI_Comm_spawn_multiple` of every replacement, each on
/// its host. MPICH: by the leaving processes alone (the others wait
/// asleep, leaving the cores to the new processes while they start);
/// Open MPI: by every process ([`SPAWN_ALONE`]). `None`: it failed (said
/// by the leaving processes), and nothing moves.
///
/// # Safety
/// Collective over the control communicator.
pub(super) unsafe fn spawn_all(b: &Batch) -> Option<Spawned> {
    let leaving = b.leaving();
    let mut leavers = k::MPI_COMM_NULL();
    // SAFETY: collective over the control communicator (a split keyed by
    // rank: the leaving processes in the order of the targets).
    let (comm, root) = unsafe {
        if SPAWN_ALONE {
            PMPI_Comm_split(
                b.control,
                if leaving { 0 } else { k::MPI_UNDEFINED() },
                b.rank,
                &mut leavers,
            );
            (leavers, 0)
        } else {
            (b.control, b.targets[0].rank)
        }
    };
    let mut inter = k::MPI_COMM_NULL();
    let mut failure = String::new();
    if comm != k::MPI_COMM_NULL() {
        let mut me_in_comm: c_int = 0;
        // SAFETY: a live communicator of this process.
        unsafe { PMPI_Comm_rank(comm, &mut me_in_comm) };
        // SAFETY: collective over `comm` (every process of the spawn).
        let (c, e) = unsafe { spawn(b, comm, root, me_in_comm) };
        inter = c;
        failure = e.unwrap_or_default();
    }
    // SAFETY: collective over the control communicator (those outside
    // the spawn wait here asleep).
    let failed = unsafe { share_words(b.control, vec![(!failure.is_empty()) as u64]) }[0] != 0;
    let mut s = Spawned { inter, leavers };
    if failed {
        if let Some(i) = b.mine() {
            if failure.is_empty() {
                failure = "MPI_Comm_spawn_multiple failed on another rank".into();
            }
            say(&format!(
                "migration of rank {} to {} failed: {failure}; the job goes on",
                b.rank,
                b.host_of(i)
            ));
        }
        // SAFETY: what this process holds of the spawn (freed: nothing
        // answers on it).
        unsafe { s.drop_all(Verdict::Lost) };
        return None;
    }
    Some(s)
}

/// Whether the leaving process spawns its replacement alone (on
/// `MPI_COMM_SELF`, the others waiting asleep: they leave the cores to the
/// new process while it starts) rather than with every process (on the
/// control communicator). MPICH: alone. Open MPI: with everyone, because
/// only the processes of a spawn learn that the new process shares their
/// node, which its one-sided windows need (see `control::window_possible`).
pub(super) const SPAWN_ALONE: bool = !crate::sys::quirks::NODE_BELIEFS_FROM_SPAWNS;

/// The spawn of every replacement of `b`, over `comm` rooted at `root`
/// (`me`: this process's rank in `comm`): each leaving process gives its
/// command (its program, the arguments of a replacement and its host) to
/// the root, which starts them all with one `MPI_Comm_spawn_multiple`.
/// What it made (maybe null) and what went wrong here, if anything (the
/// caller frees what was made when the spawn failed anywhere).
///
/// # Safety
/// Collective over `comm`; the leaving processes are in it.
pub(super) unsafe fn spawn(
    b: &Batch,
    comm: MPI_Comm,
    root: c_int,
    me: c_int,
) -> (MPI_Comm, Option<String>) {
    let n = b.targets.len();
    // This process's command: NUL-separated program, arguments, and the
    // host last (empty unless it leaves).
    let mut mine: Vec<u8> = Vec::new();
    if let Some(i) = b.mine() {
        let exe = std::fs::read_link("/proc/self/exe")
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let fds: Vec<String> = crate::mem::files::capture()
            .map(|v| v.iter().map(|r| r.fd.to_string()).collect())
            .unwrap_or_default();
        let words: Vec<String> = [
            exe,
            MARKER.to_string(),
            format!("level={}", crate::sys::life::thread_level()),
            format!("fds={}", fds.join(",")),
            format!(
                "root={}",
                if started_as_replacement() {
                    "replacement"
                } else {
                    "original"
                }
            ),
            // Where its hello and image come from: this process.
            format!("from={me}"),
        ]
        .into_iter()
        // The libraries the program opened: the replacement opens them
        // again before its MPI_Init, while their places are still free.
        .chain(crate::mem::opened::spawn_arguments())
        .chain(std::iter::once(b.host_of(i)))
        .collect();
        for w in words {
            mine.extend(w.bytes().filter(|&c| c != 0));
            mine.push(0);
        }
    }
    let is_root = me == root;
    // SAFETY: collective over `comm` (contract of the function).
    let gathered = match unsafe { collective::gatherv_bytes(comm, &mine, root) } {
        Ok(g) => g,
        Err(rc) => {
            return (
                k::MPI_COMM_NULL(),
                Some(format!(
                    "gathering the commands failed: {}",
                    error_string(rc)
                )),
            )
        }
    };
    // At the root: each command, in the order of the ranks in `comm` (the
    // leaving processes' order: the targets').
    let commands: Vec<Vec<CString>> = gathered
        .iter()
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            piece
                .strip_suffix(&[0])
                .unwrap_or(piece)
                .split(|&c| c == 0)
                .filter_map(|w| CString::new(w).ok())
                .collect()
        })
        .collect();
    let mut inter = k::MPI_COMM_NULL();
    let mut errcodes = vec![k::MPI_SUCCESS(); n];
    let rc = if is_root {
        if commands.len() != n || commands.iter().any(|c| c.len() < 3) {
            return (
                inter,
                Some(format!(
                    "the spawn's root got {} commands for {n} ranks",
                    commands.len()
                )),
            );
        }
        // Program, argument vector (NULL-ended) and info (its host) of
        // each replacement.
        let mut programs: Vec<*mut c_char> = Vec::with_capacity(n);
        let mut argvs: Vec<Vec<*mut c_char>> = Vec::with_capacity(n);
        let mut infos = Vec::with_capacity(n);
        for c in &commands {
            let (host, rest) = c.split_last().expect("at least three words");
            programs.push(rest[0].as_ptr() as *mut c_char);
            let mut argv: Vec<*mut c_char> = rest[1..]
                .iter()
                .map(|a| a.as_ptr() as *mut c_char)
                .collect();
            argv.push(std::ptr::null_mut());
            argvs.push(argv);
            let mut info = k::MPI_INFO_NULL();
            // SAFETY: an info object of ours, freed below.
            unsafe {
                PMPI_Info_create(&mut info);
                PMPI_Info_set(info, c"host".as_ptr(), host.as_ptr());
            }
            infos.push(info);
        }
        let mut argv_ptrs: Vec<*mut *mut c_char> =
            argvs.iter_mut().map(|a| a.as_mut_ptr()).collect();
        let maxprocs = vec![1 as c_int; n];
        // SAFETY: every pointer lives until the call returns.
        let rc = unsafe {
            PMPI_Comm_spawn_multiple(
                n as c_int,
                programs.as_mut_ptr(),
                argv_ptrs.as_mut_ptr(),
                maxprocs.as_ptr(),
                infos.as_ptr(),
                root,
                comm,
                &mut inter,
                errcodes.as_mut_ptr(),
            )
        };
        for mut info in infos {
            // SAFETY: ours, from above.
            unsafe { PMPI_Info_free(&mut info) };
        }
        rc
    } else {
        // SAFETY: the arguments of processes other than the root are
        // ignored by MPI.
        unsafe {
            PMPI_Comm_spawn_multiple(
                n as c_int,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
                root,
                comm,
                &mut inter,
                errcodes.as_mut_ptr(),
            )
        }
    };
    let rc = if rc == k::MPI_SUCCESS() && is_root {
        errcodes
            .iter()
            .copied()
            .find(|&e| e != k::MPI_SUCCESS())
            .unwrap_or(rc)
    } else {
        rc
    };
    let failure = (rc != k::MPI_SUCCESS() || inter == k::MPI_COMM_NULL())
        .then(|| format!("MPI_Comm_spawn_multiple failed: {}", error_string(rc)));
    (inter, failure)
}

pub(super) fn error_string(rc: c_int) -> String {
    if rc == k::MPI_SUCCESS() {
        return "on another rank".into();
    }
    let mut buf = [0 as c_char; 1024];
    let mut len: c_int = 0;
    // SAFETY: the buffer exceeds MPI_MAX_ERROR_STRING.
    unsafe { PMPI_Error_string(rc, buf.as_mut_ptr(), &mut len) };
    let bytes: Vec<u8> = buf[..len.max(0) as usize]
        .iter()
        .map(|&c| c as u8)
        .collect();
    format!(
        "{} (MPI error {rc})",
        String::from_utf8_lossy(&bytes).trim()
    )
}
