/*
 * pingpong: 2-rank ping-pong latency (MPI_Send / MPI_Recv) for a range of
 * message sizes.
 *
 * Per size: warm-up, then calibrate a batch length (number of round trips)
 * that takes about BATCH_SEC, then time NBATCH such batches back to back
 * and report the median batch.  Medians of many short batches hold up on a
 * shared, noisy machine far better than one long mean.
 *
 * After the timing of each size, one untimed round trip with a known
 * pattern checks that the data arrives intact both ways.
 *
 * Output, one line per size (rank 0), then VERIFY OK or VERIFY FAILED:
 *     pingpong SIZE usec_per_oneway
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "bench_util.h"

#define TAG 17
#define NBATCH 41          /* timed batches per size (odd: true median) */
#define BATCH_SEC 0.004    /* target length of one batch */
#define MAX_ITERS 1000000L

static const int sizes[] = {0, 8, 64, 1024, 8192, 65536, 1048576};
#define NSIZES ((int)(sizeof sizes / sizeof sizes[0]))

static void round_trips(int rank, char *buf, int size, long n)
{
    for (long i = 0; i < n; i++) {
        if (rank == 0) {
            MPI_Send(buf, size, MPI_BYTE, 1, TAG, MPI_COMM_WORLD);
            MPI_Recv(buf, size, MPI_BYTE, 1, TAG, MPI_COMM_WORLD,
                     MPI_STATUS_IGNORE);
        } else {
            MPI_Recv(buf, size, MPI_BYTE, 0, TAG, MPI_COMM_WORLD,
                     MPI_STATUS_IGNORE);
            MPI_Send(buf, size, MPI_BYTE, 0, TAG, MPI_COMM_WORLD);
        }
    }
}

static unsigned char pattern(int from, int size, int i)
{
    return (unsigned char)(i * 7 + size + from * 101);
}

/* One round trip of patterned data; returns the number of wrong bytes seen
 * by this rank. */
static long check_round_trip(int rank, char *buf, int size)
{
    long bad = 0;
    int peer = 1 - rank;
    if (rank == 0) {
        for (int i = 0; i < size; i++)
            buf[i] = (char)pattern(0, size, i);
        MPI_Send(buf, size, MPI_BYTE, peer, TAG, MPI_COMM_WORLD);
    }
    MPI_Status st;
    int count;
    memset(buf, 0, (size_t)size);
    MPI_Recv(buf, size, MPI_BYTE, peer, TAG, MPI_COMM_WORLD, &st);
    MPI_Get_count(&st, MPI_BYTE, &count);
    if (count != size)
        bad++;
    for (int i = 0; i < size; i++)
        bad += (unsigned char)buf[i] != pattern(peer, size, i);
    if (rank == 1) {
        for (int i = 0; i < size; i++)
            buf[i] = (char)pattern(1, size, i);
        MPI_Send(buf, size, MPI_BYTE, peer, TAG, MPI_COMM_WORLD);
    }
    return bad;
}

struct pp_ctx {
    int rank;
    char *buf;
    int size;
};

static void pp_run(long n, void *ctx)
{
    struct pp_ctx *c = ctx;
    round_trips(c->rank, c->buf, c->size, n);
}

int main(int argc, char **argv)
{
    int rank, nprocs;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nprocs);
    if (nprocs != 2)
        bench_die("pingpong needs exactly 2 ranks");

    int maxsize = sizes[NSIZES - 1];
    char *buf = malloc((size_t)maxsize);
    if (!buf)
        bench_die("out of memory");
    memset(buf, rank + 1, (size_t)maxsize);

    double times[NBATCH];
    long bad = 0;
    for (int s = 0; s < NSIZES; s++) {
        int size = sizes[s];
        round_trips(rank, buf, size, size >= 65536 ? 10 : 100); /* warm-up */
        struct pp_ctx ctx = {rank, buf, size};
        long iters = bench_calibrate(pp_run, &ctx, 1, BATCH_SEC, MAX_ITERS);

        MPI_Barrier(MPI_COMM_WORLD);
        for (int b = 0; b < NBATCH; b++) {
            double t0 = bench_now();
            round_trips(rank, buf, size, iters);
            times[b] = bench_now() - t0;
        }
        if (rank == 0) {
            double med = bench_median(times, NBATCH);
            printf("pingpong %d %.4f\n", size, med / (2.0 * (double)iters) * 1e6);
            printf("# pingpong size=%d iters_per_batch=%ld batches=%d\n",
                   size, iters, NBATCH);
            fflush(stdout);
        }
        bad += check_round_trip(rank, buf, size);
    }

    long bad_all = 0;
    MPI_Reduce(&bad, &bad_all, 1, MPI_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
    if (rank == 0) {
        if (bad_all)
            printf("VERIFY FAILED: %ld wrong bytes or counts\n", bad_all);
        else
            printf("VERIFY OK\n");
    }
    free(buf);
    MPI_Finalize();
    return bad_all ? 1 : 0;
}
