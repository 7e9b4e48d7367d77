/* ferry.h -- the C API of ferry, for MPI programs that want to move a rank
 * or ask for a regroup themselves, know how many they went through, or run
 * code of their own when a rank leaves its process and resumes in a new one.
 *
 * Nothing to link: the entry points are weak symbols that libferry.so
 * provides when it is preloaded (LD_PRELOAD, or `ferry run`). Without the
 * library the program still links and runs; the inline helpers below then
 * report FERRY_ENOTLOADED, and ferry_is_loaded() returns 0.
 *
 *     #include <ferry.h>
 *     ...
 *     if (ferry_regroup() == FERRY_OK) { ... }   // asynchronous request
 *
 * Compile with -I<ferry>/include. C and C++. */
#ifndef FERRY_H
#define FERRY_H

#ifdef __cplusplus
extern "C" {
#endif

/* Return codes. */
#define FERRY_OK 0
#define FERRY_ENOTLOADED (-1) /* libferry.so is not preloaded */
#define FERRY_ENOTREADY (-2)  /* before MPI_Init, or the library could not set up */
#define FERRY_EFINISHED (-3)  /* MPI_Finalize has begun */
#define FERRY_EINVAL (-4)     /* a rank outside the job, a bad host name, a null callback */
#define FERRY_EFULL (-5)      /* 16 callbacks of that kind are registered already */

/* The library's entry points (weak: null when it is not loaded). */
int ferry_request_regroup(void) __attribute__((weak));
long ferry_regroup_count(void) __attribute__((weak));
int ferry_request_migration(int rank, const char *host) __attribute__((weak));
long ferry_migration_count(void) __attribute__((weak));
int ferry_on_leave(void (*fn)(void *), void *arg) __attribute__((weak));
int ferry_on_resume(void (*fn)(void *), void *arg) __attribute__((weak));
/* MPI calls this process made so far, as the library counts them (the K of
 * `after=K`): each call of the program once, from C or Fortran. */
long ferry_call_count(void) __attribute__((weak));

/* Whether libferry.so is loaded into this process. */
static inline int ferry_is_loaded(void)
{
    return ferry_request_regroup != 0;
}

/* Asks for a regroup of the whole job, started by this rank: the
 * synchronization, drain and rebuild of every communicator, with the same
 * processes. Returns at once; the regroup starts at this rank's next MPI
 * call (queued if another one is running) and the program goes on as if
 * nothing happened. */
static inline int ferry_regroup(void)
{
    return ferry_request_regroup ? ferry_request_regroup() : FERRY_ENOTLOADED;
}

/* Regroups this process has gone through (0 without the library). */
static inline long ferry_regroups(void)
{
    return ferry_regroup_count ? ferry_regroup_count() : 0;
}

/* Asks for the migration of `rank` (any rank of MPI_COMM_WORLD, this one
 * included) to a new process on `host` (NULL: the host the rank is on).
 * Returns at once; the migration starts at this process's next MPI call
 * (queued behind one already running). The rank goes on in the new
 * process, from the MPI call at which it stopped, with all its memory,
 * open files and messages; the program notices nothing. A rank that
 * cannot move (it runs threads of its own, holds RMA windows, ...) is not
 * moved: the reason goes to stderr and the job goes on. */
static inline int ferry_migrate(int rank, const char *host)
{
    return ferry_request_migration ? ferry_request_migration(rank, host) : FERRY_ENOTLOADED;
}

/* Migrations this rank has gone through (0 without the library). */
static inline long ferry_migrations(void)
{
    return ferry_migration_count ? ferry_migration_count() : 0;
}

/* Callbacks: fn(arg) runs in the process that is about to leave its rank
 * (before its memory is taken: what it changes travels), or in the new
 * process once the rank resumed there. They run inside the library, in
 * the middle of an MPI call of the program: they must not call MPI. Up to
 * 16 of each kind, run in registration order. */
static inline int ferry_at_leave(void (*fn)(void *), void *arg)
{
    return ferry_on_leave ? ferry_on_leave(fn, arg) : FERRY_ENOTLOADED;
}

static inline int ferry_at_resume(void (*fn)(void *), void *arg)
{
    return ferry_on_resume ? ferry_on_resume(fn, arg) : FERRY_ENOTLOADED;
}

#ifdef __cplusplus
}
#endif

#endif /* FERRY_H */
