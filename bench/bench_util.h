/*
 * Small helpers shared by ferry's overhead benchmarks.
 *
 * Timing uses clock_gettime(CLOCK_MONOTONIC) rather than MPI_Wtime so the
 * clock itself never goes through the library under test.  Every program
 * that includes this file must define _POSIX_C_SOURCE before any header.
 */
#ifndef FERRY_BENCH_UTIL_H
#define FERRY_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <mpi.h>

/* Seconds on a monotonic clock. */
static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of v[0..n-1]; sorts v in place. */
static inline double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return (n % 2) ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/*
 * Choose how many repetitions make one timed batch of about batch_sec.
 * run(n, ctx) performs n repetitions.  Trials double in length until one
 * takes batch_sec/8; then the fastest of three more trials of that length
 * sets the rate (one descheduled trial on a shared machine must not shrink
 * the batch to nothing).  With collective != 0 the operation involves all
 * ranks of MPI_COMM_WORLD: rank 0 decides and broadcasts, so every rank runs
 * the same counts; otherwise each rank calibrates on its own.
 */
static inline long bench_calibrate(void (*run)(long n, void *ctx), void *ctx,
                                   int collective, double batch_sec,
                                   long max_iters)
{
    long n = 4;
    double t;
    for (;;) {
        if (collective)
            MPI_Barrier(MPI_COMM_WORLD);
        double t0 = bench_now();
        run(n, ctx);
        t = bench_now() - t0;
        int done = (t >= batch_sec / 8 || n >= max_iters);
        if (collective)
            MPI_Bcast(&done, 1, MPI_INT, 0, MPI_COMM_WORLD);
        if (done)
            break;
        n *= 2;
    }
    for (int k = 0; k < 3; k++) {
        if (collective)
            MPI_Barrier(MPI_COMM_WORLD);
        double t0 = bench_now();
        run(n, ctx);
        double tk = bench_now() - t0;
        if (tk < t)
            t = tk;
    }
    long iters = (t > 0) ? (long)(batch_sec / (t / (double)n)) : max_iters;
    if (iters < 1)
        iters = 1;
    if (iters > max_iters)
        iters = max_iters;
    if (collective)
        MPI_Bcast(&iters, 1, MPI_LONG, 0, MPI_COMM_WORLD);
    return iters;
}

/* Stop the whole job with a message (used for wrong rank counts etc.). */
static inline void bench_die(const char *msg)
{
    fprintf(stderr, "bench: %s\n", msg);
    MPI_Abort(MPI_COMM_WORLD, 2);
    exit(2); /* not reached */
}

#endif
