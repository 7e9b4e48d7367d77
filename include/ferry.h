/* ferry.h -- the C API of ferry (https://.../ferry), for MPI programs that
 * want to ask for a regroup themselves or know how many they went through.
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

/* The library's entry points (weak: null when it is not loaded). */
int ferry_request_regroup(void) __attribute__((weak));
long ferry_regroup_count(void) __attribute__((weak));

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

#ifdef __cplusplus
}
#endif

#endif /* FERRY_H */
