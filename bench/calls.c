/*
 * calls: cost of cheap MPI calls, to see the interposition library's
 * per-call overhead directly (ns per call).
 *
 *   comm_rank     MPI_Comm_rank(MPI_COMM_WORLD)
 *   iprobe        MPI_Iprobe(ANY_SOURCE, ANY_TAG) with nothing pending
 *   test_null     MPI_Test on MPI_REQUEST_NULL
 *   test_inactive MPI_Test on an inactive (never started) persistent
 *                 request: a valid, already-complete request handle
 *
 * Every rank runs the loops on its own (no messages are ever sent); rank 0
 * reports.  Median of NBATCH batches of a calibrated length.
 *
 * Output (rank 0), one line per call:
 *     calls NAME ns_per_call
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "bench_util.h"

#define NBATCH 31
#define BATCH_SEC 0.002
#define MAX_ITERS 100000000L

enum call { C_COMM_RANK, C_IPROBE, C_TEST_NULL, C_TEST_INACTIVE, NCALLS };
static const char *call_names[NCALLS] = {
    "comm_rank", "iprobe", "test_null", "test_inactive"};

static MPI_Request inactive_req; /* persistent, never started */
static long bad;                 /* results that contradict the setup */

static void loop(enum call c, long n)
{
    int v = 0, flag = 0;
    MPI_Request req;
    switch (c) {
    case C_COMM_RANK:
        for (long i = 0; i < n; i++)
            MPI_Comm_rank(MPI_COMM_WORLD, &v);
        break;
    case C_IPROBE:
        for (long i = 0; i < n; i++) {
            MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag,
                       MPI_STATUS_IGNORE);
            bad += flag; /* nothing is ever sent */
        }
        break;
    case C_TEST_NULL:
        for (long i = 0; i < n; i++) {
            req = MPI_REQUEST_NULL;
            MPI_Test(&req, &flag, MPI_STATUS_IGNORE);
            bad += !flag;
        }
        break;
    case C_TEST_INACTIVE:
        for (long i = 0; i < n; i++) {
            MPI_Test(&inactive_req, &flag, MPI_STATUS_IGNORE);
            bad += !flag;
        }
        break;
    default:
        break;
    }
    (void)v;
}

static void calls_run(long n, void *ctx)
{
    loop(*(enum call *)ctx, n);
}

int main(int argc, char **argv)
{
    int rank, nprocs, dummy = 0;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nprocs);

    MPI_Send_init(&dummy, 1, MPI_INT, rank, 99, MPI_COMM_WORLD, &inactive_req);

    double times[NBATCH];
    for (int c = 0; c < NCALLS; c++) {
        MPI_Barrier(MPI_COMM_WORLD);
        enum call which = (enum call)c;
        /* per rank (no messages involved); doubles as the warm-up */
        long iters = bench_calibrate(calls_run, &which, 0, BATCH_SEC, MAX_ITERS);
        for (int b = 0; b < NBATCH; b++) {
            double t0 = bench_now();
            loop((enum call)c, iters);
            times[b] = bench_now() - t0;
        }
        if (rank == 0) {
            double med = bench_median(times, NBATCH);
            printf("calls %s %.2f\n", call_names[c], med / (double)iters * 1e9);
            printf("# calls %s iters_per_batch=%ld batches=%d\n",
                   call_names[c], iters, NBATCH);
            fflush(stdout);
        }
    }

    MPI_Request_free(&inactive_req);

    long bad_all = 0;
    MPI_Reduce(&bad, &bad_all, 1, MPI_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
    if (rank == 0) {
        if (bad_all)
            printf("VERIFY FAILED: %ld unexpected flag values\n", bad_all);
        else
            printf("VERIFY OK\n");
    }
    MPI_Finalize();
    return bad_all ? 1 : 0;
}
