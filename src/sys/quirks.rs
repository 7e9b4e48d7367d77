//! Every workaround of a bug of an MPI, in one place: each constant says
//! whether the MPI this library is built for needs the workaround, what
//! the bug is, where it was seen and its reference. The code that works
//! around it tests the constant (`if quirks::X`), so a reader finds every
//! workaround from here, and a fixed MPI is one line to change.
//!
//! Differences that are not bugs (the two ABIs' handle types, the
//! Fortran entry points each MPI has) stay `cfg(ferry_mpi)` where they
//! are; so do the workarounds here that must change a type or a
//! signature, which name their constant in a comment.

/// Open MPI 4.1.4 (Debian): the library's own collectives must be blocking
/// ones. Each nonblocking collective there takes the next of a
/// communicator's tags, counting down from the nonblocking range's start,
/// and after enough of them on one communicator they meet tags Open MPI's
/// other internal traffic uses: the communicator id agreement of a later
/// `MPI_Comm_split` then never converges (every process spins in
/// `ompi_comm_nextcid`; fixed upstream after 4.1.4, open-mpi/ompi PR
/// 14211). Seen with three nonblocking collectives per regroup on the
/// control communicator: `comms` hung at its second regroup. When false,
/// the library's collectives are nonblocking ones waited for asleep
/// ([`super::nap::wait_napping`]).
pub const NONBLOCKING_COLLECTIVES: bool = cfg!(ferry_mpi = "mpich");

/// MPICH 5.0.2 loses posted `MPI_ANY_SOURCE` receives on a communicator
/// that holds a spawned process: a ring of `MPI_Irecv(MPI_ANY_SOURCE)` +
/// `MPI_Send` hangs within a few rounds, without ferry too (matched
/// probes work). After a migration every communicator holds one, so such
/// receives are made of `MPI_Improbe` + `MPI_Mrecv` (`calls::anysource`).
pub const ANY_SOURCE_LOST_WITH_SPAWNED: bool = cfg!(ferry_mpi = "mpich");

/// MPICH 5.0.2's `MPI_Dist_graph_create` never returns on a communicator
/// that holds a spawned process (it hangs without ferry too): after a
/// migration it is made with `MPI_Dist_graph_create_adjacent`
/// (`membership::dist_graph_create`).
pub const DIST_GRAPH_HANGS_WITH_SPAWNED: bool = cfg!(ferry_mpi = "mpich");

/// Open MPI 4.1.4 picks the one-sided component of a window in each
/// process from what it believes of its peers' nodes, beliefs that come
/// from the spawns it took part in; a window whose processes picked
/// differently hangs in its creation (`control::window_possible`). Its
/// `MPI_Comm_split_type(MPI_COMM_TYPE_SHARED)` crashes
/// (`MPI_ERR_TRUNCATE`) or hangs where the beliefs differ, so after a
/// migration ferry makes that split from the processes' hosts
/// (`membership::split_by_host`). And for the same reason the leaving
/// process spawns its replacement with every process rather than alone
/// (`migration::SPAWN_ALONE`): only the processes of a spawn learn that
/// the new process shares their node.
pub const NODE_BELIEFS_FROM_SPAWNS: bool = cfg!(ferry_mpi = "openmpi");

/// Open MPI 4.1.4 crashes in its emulated atomics when rank 0 makes
/// `MPI_Compare_and_swap` target itself: the lead of a regroup is taken
/// under an exclusive lock there (`regroup::take_lead`, chosen with
/// `cfg`), and its shared epochs keep the lock check (`MPI_MODE_NOCHECK`
/// only on MPICH).
pub const COMPARE_AND_SWAP_ON_SELF_CRASHES: bool = cfg!(ferry_mpi = "openmpi");

/// Open MPI 4.1.4 releases the error handler of the communicators of a
/// spawn once more than it took it: a replacement that took part in
/// later spawns freed the static `MPI_ERRORS_RETURN` at `MPI_Finalize`
/// (`free(): invalid pointer` in `ompi_comm_finalize`, 1 run in 2 of 5
/// migrations of `errhandler`). A reference of ours, never given back,
/// keeps the count above zero (`migration`, freeing the merged and
/// spawn communicators).
pub const SPAWN_ERRHANDLER_OVER_RELEASED: bool = cfg!(ferry_mpi = "openmpi");

/// Open MPI 4.1.4's `MPI_Finalize` disconnects every communicator still
/// alive that holds processes of other jobs, in an array sized by its own
/// count of them, which the communicators a migration makes do not
/// always match (a heap overflow: `free(): invalid next size`). After a
/// migration every communicator is freed right before `MPI_Finalize`
/// (`handles::free_all_comms`).
pub const FINALIZE_COUNTS_FOREIGN_COMMS: bool = cfg!(ferry_mpi = "openmpi");

/// Open MPI 4.1.4 cannot start a process again on a host every one of
/// the job's first processes has left while others of them still run
/// elsewhere: the host's daemon forgot the job's PMIx namespace when its
/// last local process of the job ended (ORTE `state_orted.c:416-462`,
/// `server_deregister_nspace`), and the new process dies in `MPI_Init`
/// connecting to its parents (`dpm.c:397-405`, "Not supported"), the
/// job then hanging. Seen on the cluster of network namespaces moving a
/// rank back onto the host it left (docs/host-loss.md, O12). A move onto
/// such a host is refused before it starts (`migration::closed_host`).
pub const LEFT_HOST_CLOSED: bool = cfg!(ferry_mpi = "openmpi");

/// MPICH's hydra (5.0.2, and its `main` at 6a79bf65) run with
/// `-disable-auto-cleanup` (which `ferry run` passes, so that a replacement
/// that dies before it took over does not take the job with it) forgets a
/// process's PMI connection at its `PMI_Finalize` only under auto-cleanup
/// (`pmip_pmi.c`, `fn_finalize`): when a process that has finalized exits,
/// its proxy takes the closed connection for a failure, sends SIGUSR1 to
/// every process it runs and tells mpiexec, which lists the process as
/// dead and has every other proxy send SIGUSR1 too (`pmip_cb.c:297-346`,
/// `pmiserv_cb.c:389-460`). MPICH's handler then marks it failed
/// (`ch4_progress.h`, `MPIDI_check_for_failed_procs`), and a program
/// handling SIGUSR1 itself sees the signal. At the end of a job this is
/// harmless; the old process of a moved rank exits mid-job. So SIGUSR1
/// sent by the process's parent (the proxy) is dropped before MPICH's or
/// the program's handler (`mem::process::launcher_notices`); every other
/// SIGUSR1 goes where the program and MPICH asked.
pub const LAUNCHER_SIGNALS_FINALIZED_EXIT: bool = cfg!(ferry_mpi = "mpich");

/// MPICH 5.0.2's hydra loses its link to a host's proxy once every process
/// of the job's first process group on that host has ended while spawned
/// ones still run there: the next `MPI_Comm_spawn` onto that host fails in
/// mpiexec ("HYD_send_exec_info ... unable to write data to proxy: Bad
/// file descriptor", `pmiserv_spawn.c:97`) and the job ends (exit 255).
/// Seen in CI with the MPICH suite's `spawn1` under a migration of its one
/// rank on one host. A host the job leaves entirely is not hit (its proxy
/// leaves, a later spawn there starts a new one: docs/host-loss.md, M15).
/// So the last first process on a host stays asleep until the job ends
/// when other processes of the job stay there or its replacement goes
/// there (`migration::stays_for_launcher`).
pub const HYDRA_NODE_CLOSED_WITH_FIRST_JOB: bool = cfg!(ferry_mpi = "mpich");

/// MPICH (4.0.2 and 5.0.2): `MPI_Testall` over requests that include a
/// persistent collective (`MPI_Bcast_init`, `MPI_Barrier_init`, ...)
/// returns `MPI_ERR_IN_STATUS` as soon as that collective has completed
/// while another request has not, each status saying `MPI_SUCCESS`
/// (completed, and made inactive or freed) or `MPI_ERR_PENDING`, where
/// `MPI_Waitall` over the same requests succeeds. A `MPI_Testall` loop in
/// place of the `MPI_Waitall` fails so without ferry too; the library waits
/// that way (to stay wakeable), and MPICH's own test `coll/p_order` failed
/// under it (the error is fatal under `MPI_ERRORS_ARE_FATAL`, inside the
/// call). `MPI_Testsome`, `MPI_Testany` and `MPI_Test` are not affected.
/// Where true, the library polls each request with
/// `MPI_Request_get_status` and completes them with one `MPI_Waitall`
/// once all are done (`calls::completion::wait_all_by_get_status`),
/// keeping the statuses `MPI_Request_get_status` gave: after it, MPICH
/// 5.0.2's `MPI_Waitall` reports a persistent request's status empty
/// (source `MPI_ANY_SOURCE`, tag `MPI_ANY_TAG`), without ferry too.
pub const TESTALL_ERR_IN_STATUS_PERSISTENT_COLL: bool = cfg!(ferry_mpi = "mpich");
