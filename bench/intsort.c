/*
 * intsort: a bucketed parallel integer sort shaped like the NAS IS kernel
 * (our own code, not NAS's): the communication pattern and the mix of
 * local work and collectives are what matter for an overhead benchmark.
 *
 * Per iteration:
 *   1. generate this rank's keys (deterministic counter-based generator;
 *      each key is the mean of four uniform numbers, so the distribution is
 *      bell-shaped like NAS's)
 *   2. count keys per bucket; MPI_Allreduce the bucket counts and split the
 *      buckets into contiguous per-rank key ranges of about N/P keys each
 *   3. MPI_Alltoall of the per-destination counts, MPI_Alltoallv of the keys
 *   4. local ranking: counting sort of the received keys in the rank's key
 *      range (cumulative counts = rank of each key value)
 * After the timed iterations the last ranking is turned into a sorted array
 * and verified: locally sorted, in range, ordered across ranks, no key lost
 * (count and checksum).  Prints "VERIFY OK" or "VERIFY FAILED ...".
 *
 * Sizes default to NAS class W (2^20 keys, keys < 2^16); the iteration
 * count is raised so the timed part runs about a second on 2 ranks here.
 *
 * Usage: intsort [iterations [log2_keys [log2_maxkey]]]
 * Output (rank 0):
 *     intsort total_seconds
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "bench_util.h"

#define LOG_BUCKETS 10
#define NBUCKETS (1 << LOG_BUCKETS)
#define SEED 0x5eed1234abcdULL

static int rank, nprocs;
static int log_keys = 20, log_maxkey = 16, iterations = 130;
static long total_keys;      /* N */
static long my_nkeys, my_first;

static int *keys;            /* generated keys, my_nkeys */
static int *sendbuf;         /* keys packed by destination */
static int *recvbuf;         /* keys received (my key range) */
static long recv_cap;
static int *kcount;          /* per key value in my range, then cumulative */
static int lo, hi;           /* my key range [lo, hi) */
static long recv_n;          /* keys received in the last iteration */

static int bcount[NBUCKETS], gcount[NBUCKETS], bpos[NBUCKETS];
static int *sendcounts, *recvcounts, *sdispls, *rdispls, *range_lo;
static long long gen_sum;    /* checksum of the last generated keys */
static int failed;           /* per-iteration consistency check */

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        bench_die("out of memory");
    return p;
}

/* 64-bit mixing function (a bijective finalizer of xor-shifts and odd
 * multiplications): turns a counter into well-spread random bits. */
static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 31;
    x *= 0x7fb5d329728ea185ULL;
    x ^= x >> 27;
    x *= 0x81dadef4bc2dd44dULL;
    x ^= x >> 33;
    return x;
}

static void generate(int it)
{
    uint64_t base = SEED + ((uint64_t)it << 40) + (uint64_t)my_first;
    int shift = 18 - log_maxkey; /* sum of four 16-bit values is < 2^18 */
    long long sum = 0;
    for (long i = 0; i < my_nkeys; i++) {
        uint64_t h = mix64(base + (uint64_t)i);
        uint32_t s = (uint32_t)(h & 0xffff) + (uint32_t)((h >> 16) & 0xffff) +
                     (uint32_t)((h >> 32) & 0xffff) + (uint32_t)(h >> 48);
        int k = (int)(s >> shift);
        keys[i] = k;
        sum += k;
    }
    gen_sum = sum;
}

static void iteration(int it)
{
    int bshift = log_maxkey - LOG_BUCKETS;

    generate(it);

    /* bucket counts, local then global */
    memset(bcount, 0, sizeof bcount);
    for (long i = 0; i < my_nkeys; i++)
        bcount[keys[i] >> bshift]++;
    MPI_Allreduce(bcount, gcount, NBUCKETS, MPI_INT, MPI_SUM, MPI_COMM_WORLD);

    /* contiguous bucket ranges of ~N/P keys; identical on every rank */
    int b = 0;
    long cum = 0;
    long expect = 0; /* keys I should receive */
    for (int r = 0; r < nprocs; r++) {
        long target = total_keys * (r + 1) / nprocs;
        range_lo[r] = b << bshift;
        sendcounts[r] = 0;
        long got = 0;
        while (b < NBUCKETS && (r == nprocs - 1 || cum + gcount[b] / 2 < target)) {
            sendcounts[r] += bcount[b];
            got += gcount[b];
            cum += gcount[b];
            b++;
        }
        if (r == rank)
            expect = got;
    }
    lo = range_lo[rank];
    hi = (rank == nprocs - 1) ? (1 << log_maxkey) : range_lo[rank + 1];

    /* pack by bucket, which is also by destination */
    int pos = 0;
    for (int k = 0; k < NBUCKETS; k++) {
        bpos[k] = pos;
        pos += bcount[k];
    }
    for (long i = 0; i < my_nkeys; i++)
        sendbuf[bpos[keys[i] >> bshift]++] = keys[i];

    MPI_Alltoall(sendcounts, 1, MPI_INT, recvcounts, 1, MPI_INT, MPI_COMM_WORLD);
    long rtot = 0;
    for (int r = 0; r < nprocs; r++) {
        sdispls[r] = (r == 0) ? 0 : sdispls[r - 1] + sendcounts[r - 1];
        rdispls[r] = (int)rtot;
        rtot += recvcounts[r];
    }
    if (rtot > recv_cap) {
        free(recvbuf);
        recv_cap = rtot + rtot / 8;
        recvbuf = xmalloc((size_t)recv_cap * sizeof *recvbuf);
    }
    MPI_Alltoallv(sendbuf, sendcounts, sdispls, MPI_INT, recvbuf, recvcounts,
                  rdispls, MPI_INT, MPI_COMM_WORLD);
    recv_n = rtot;
    if (rtot != expect)
        failed = 1;

    /* local ranking: cumulative counts per key value in [lo, hi) */
    int width = hi - lo;
    memset(kcount, 0, (size_t)width * sizeof *kcount);
    for (long i = 0; i < rtot; i++) {
        int k = recvbuf[i] - lo;
        if (k < 0 || k >= width) {
            failed = 1;
            continue;
        }
        kcount[k]++;
    }
    for (int v = 1; v < width; v++)
        kcount[v] += kcount[v - 1];
    /* kcount[v] = number of my keys <= lo + v: the rank of that key value */
}

static int verify(void)
{
    int ok = !failed;
    int width = hi - lo;
    int *sorted = xmalloc((size_t)(recv_n ? recv_n : 1) * sizeof *sorted);
    long long recv_sum = 0;

    /* place every key at its rank (walking backwards keeps it stable) */
    for (long i = recv_n - 1; i >= 0; i--) {
        int k = recvbuf[i] - lo;
        if (k < 0 || k >= width) {
            ok = 0;
            continue;
        }
        sorted[--kcount[k]] = recvbuf[i];
        recv_sum += recvbuf[i];
    }
    for (long i = 1; i < recv_n; i++)
        if (sorted[i - 1] > sorted[i])
            ok = 0;

    /* across ranks: my smallest key >= largest key of all lower ranks */
    int mymax = recv_n ? sorted[recv_n - 1] : -1, prevmax = -1;
    MPI_Exscan(&mymax, &prevmax, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (rank == 0)
        prevmax = -1; /* Exscan leaves rank 0's result undefined */
    if (recv_n && sorted[0] < prevmax)
        ok = 0;

    /* nothing lost or invented */
    long long sums[3] = {recv_n, recv_sum, gen_sum}, tot[3];
    MPI_Allreduce(sums, tot, 3, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
    if (tot[0] != total_keys || tot[1] != tot[2])
        ok = 0;

    int all_ok;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    free(sorted);
    return all_ok;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nprocs);

    if (argc > 1)
        iterations = atoi(argv[1]);
    if (argc > 2)
        log_keys = atoi(argv[2]);
    if (argc > 3)
        log_maxkey = atoi(argv[3]);
    if (iterations < 1 || log_keys < 10 || log_keys > 28 ||
        log_maxkey < LOG_BUCKETS || log_maxkey > 18)
        bench_die("usage: intsort [iterations>=1 [log2_keys 10..28 "
                  "[log2_maxkey 10..18]]]");

    total_keys = 1L << log_keys;
    my_first = total_keys * rank / nprocs;
    my_nkeys = total_keys * (rank + 1) / nprocs - my_first;

    keys = xmalloc((size_t)my_nkeys * sizeof *keys);
    sendbuf = xmalloc((size_t)my_nkeys * sizeof *sendbuf);
    recv_cap = my_nkeys + my_nkeys / 4;
    recvbuf = xmalloc((size_t)recv_cap * sizeof *recvbuf);
    kcount = xmalloc(((size_t)1 << log_maxkey) * sizeof *kcount);
    sendcounts = xmalloc((size_t)nprocs * sizeof(int));
    recvcounts = xmalloc((size_t)nprocs * sizeof(int));
    sdispls = xmalloc((size_t)nprocs * sizeof(int));
    rdispls = xmalloc((size_t)nprocs * sizeof(int));
    range_lo = xmalloc((size_t)nprocs * sizeof(int));

    iteration(0); /* untimed warm-up, as in NAS IS */

    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = bench_now();
    for (int it = 1; it <= iterations; it++)
        iteration(it);
    double t = bench_now() - t0, tmax = 0.0;
    MPI_Reduce(&t, &tmax, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);

    int ok = verify();
    if (rank == 0) {
        printf("# intsort keys=2^%d maxkey=2^%d iterations=%d ranks=%d\n",
               log_keys, log_maxkey, iterations, nprocs);
        printf("intsort %.6f\n", tmax);
        printf(ok ? "VERIFY OK\n" : "VERIFY FAILED\n");
    }

    free(keys);
    free(sendbuf);
    free(recvbuf);
    free(kcount);
    free(sendcounts);
    free(recvcounts);
    free(sdispls);
    free(rdispls);
    free(range_lo);
    MPI_Finalize();
    return ok ? 0 : 1;
}
