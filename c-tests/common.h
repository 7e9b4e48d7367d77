/* Shared helpers for ferry's C test programs.
 *
 * Rules every test follows: stdout is printed by world rank 0 only, and only
 * things that depend on the computation (no timings, pids, host names).
 * Per-rank results are gathered to rank 0 and printed in rank order (say_all).
 * A failed self-check prints to stderr and aborts the job (non-zero exit).
 * The last stdout line of a passing program is "OK" (finish_ok).
 */
#ifndef FERRY_CTEST_COMMON_H
#define FERRY_CTEST_COMMON_H

#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LINE_MAX_LEN 256

/* The pid this process had when the program started, in a global: a rank
 * that migrated ends in another process than the one that started it
 * (the global travels with the process image), which report_pids shows. */
static pid_t ctest_start_pid;
__attribute__((constructor)) static void ctest_record_pid(void)
{
    ctest_start_pid = getpid();
}

/* On stderr (stdout must not depend on where a rank ran): "ctest-pids:
 * rank R started in pid A, ends in pid B". The migration tests compare A
 * and B for every rank. */
static inline void report_pids(int rank)
{
    fprintf(stderr, "ctest-pids: rank %d started in pid %d, ends in pid %d\n", rank,
            (int)ctest_start_pid, (int)getpid());
    fflush(stderr);
}

static inline void check_failed(const char *file, int line, const char *what)
{
    int rank = -1, inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (inited && !finalized)
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    fprintf(stderr, "rank %d: CHECK FAILED at %s:%d: %s\n", rank, file, line, what);
    fflush(stderr);
    if (inited && !finalized)
        MPI_Abort(MPI_COMM_WORLD, 1);
    exit(1);
}

static inline void check_failed_mpi(const char *file, int line, const char *what, int rc)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    msg[0] = '\0';
    MPI_Error_string(rc, msg, &len);
    fprintf(stderr, "MPI call failed (%s): ", msg);
    check_failed(file, line, what);
}

/* CHECK(cond): abort the job if cond is false. */
#define CHECK(cond)                                                      \
    do {                                                                 \
        if (!(cond))                                                     \
            check_failed(__FILE__, __LINE__, #cond);                     \
    } while (0)

/* CK(call): abort the job if call does not return MPI_SUCCESS. */
#define CK(call)                                                        \
    do {                                                                 \
        int rc_ = (call);                                                \
        if (rc_ != MPI_SUCCESS)                                          \
            check_failed_mpi(__FILE__, __LINE__, #call, rc_);            \
    } while (0)

static inline int world_rank(void)
{
    int r;
    MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r;
}

static inline int world_size(void)
{
    int s;
    MPI_Comm_size(MPI_COMM_WORLD, &s);
    return s;
}

/* Print one line from world rank 0 only (other ranks do nothing). */
static inline void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void say(const char *fmt, ...)
{
    if (world_rank() != 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

/* Collective over MPI_COMM_WORLD: every rank formats one line, world rank 0
 * prints them all in rank order, each prefixed with "  rank R: ". */
static inline void say_all(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void say_all(const char *fmt, ...)
{
    char line[LINE_MAX_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    int rank = world_rank(), size = world_size();
    char *all = NULL;
    if (rank == 0) {
        all = malloc((size_t)size * LINE_MAX_LEN);
        CHECK(all != NULL);
    }
    CK(MPI_Gather(line, LINE_MAX_LEN, MPI_CHAR, all, LINE_MAX_LEN, MPI_CHAR, 0,
                   MPI_COMM_WORLD));
    if (rank == 0) {
        for (int r = 0; r < size; r++)
            printf("  rank %d: %s\n", r, all + (size_t)r * LINE_MAX_LEN);
        fflush(stdout);
        free(all);
    }
}

/* Format an int array as "a b c" into buf (for say/say_all). */
static inline const char *fmt_ints(char *buf, size_t cap, const int *v, int n)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && used < cap; i++) {
        int w = snprintf(buf + used, cap - used, "%s%d", i ? " " : "", v[i]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    return buf;
}

static inline int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* All self-checks passed on every rank: world rank 0 prints "OK", then
 * MPI_Finalize. Returns the exit code for main. */
static inline int finish_ok(void)
{
    CK(MPI_Barrier(MPI_COMM_WORLD));
    int rank = world_rank();
    say("OK");
    CK(MPI_Finalize());
    /* after MPI_Finalize: a migration may still happen inside it */
    report_pids(rank);
    return 0;
}

/* Abort unless the job runs with exactly `want` ranks. */
static inline void need_ranks(int want)
{
    if (world_size() != want) {
        if (world_rank() == 0)
            fprintf(stderr, "this test needs exactly %d ranks, got %d\n", want, world_size());
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
}

#endif
