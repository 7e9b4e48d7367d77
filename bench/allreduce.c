/*
 * allreduce: latency of an 8-byte MPI_Allreduce (one double, MPI_SUM) on
 * MPI_COMM_WORLD, as the median of many short timed batches.
 *
 * An untimed MPI_Allreduce of rank-dependent values then checks the sum.
 *
 * Output (rank 0), then VERIFY OK or VERIFY FAILED:
 *     allreduce 8 usec_per_call
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>

#include <mpi.h>

#include "bench_util.h"

#define NBATCH 61
#define BATCH_SEC 0.005
#define MAX_ITERS 1000000L

static double sink; /* keeps the reduced value observable */

static void allreduces(long n)
{
    double in = 1.0, out = 0.0;
    for (long i = 0; i < n; i++) {
        MPI_Allreduce(&in, &out, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        in = out * 0.5;
    }
    sink += out;
}

static void ar_run(long n, void *ctx)
{
    (void)ctx;
    allreduces(n);
}

int main(int argc, char **argv)
{
    int rank, nprocs;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nprocs);
    if (nprocs < 2)
        bench_die("allreduce needs at least 2 ranks");

    allreduces(1000); /* warm-up */
    long iters = bench_calibrate(ar_run, NULL, 1, BATCH_SEC, MAX_ITERS);

    double times[NBATCH];
    MPI_Barrier(MPI_COMM_WORLD);
    for (int b = 0; b < NBATCH; b++) {
        double t0 = bench_now();
        allreduces(iters);
        times[b] = bench_now() - t0;
    }
    if (rank == 0) {
        double med = bench_median(times, NBATCH);
        printf("allreduce 8 %.4f\n", med / (double)iters * 1e6);
        printf("# allreduce ranks=%d iters_per_batch=%ld batches=%d sink=%g\n",
               nprocs, iters, NBATCH, sink);
    }

    /* sum of (rank + 1) over all ranks, exact in a double */
    double mine = rank + 1.0, sum = 0.0;
    MPI_Allreduce(&mine, &sum, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    int ok = sum == 0.5 * nprocs * (nprocs + 1.0), all_ok = 0;
    MPI_Reduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, 0, MPI_COMM_WORLD);
    if (rank == 0)
        printf(all_ok ? "VERIFY OK\n" : "VERIFY FAILED: wrong allreduce sum\n");

    MPI_Finalize();
    return (rank == 0 && !all_ok) ? 1 : 0;
}
