/*
 * image: a process image of a chosen size, for checkpoint/restart
 * throughput.  Each rank (normally one) allocates MIB MiB of heap and
 * writes a pattern into every word (so every page is resident and
 * distinct), makes BARRIERS MPI_Barrier calls, then reads the whole buffer
 * back and checks the pattern.  The driver checkpoints it part-way through
 * the barriers (`--checkpoint after=10,...`) and restarts it; capture and
 * restore times come from the library's event log, not from this program.
 *
 *   image [MIB]        (default 64)
 *
 * Output (rank 0): "verified MIB MiB", then "OK".  A pattern mismatch
 * prints the number of bad words to stderr and exits 1.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <mpi.h>

#define BARRIERS 20

static uint64_t pattern(size_t i, uint64_t seed)
{
    uint64_t x = (uint64_t)i * 0x9e3779b97f4a7c15ULL + seed;
    return x ^ (x >> 29);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);

    long mib = 64;
    if (argc > 1) {
        char *end;
        errno = 0;
        mib = strtol(argv[1], &end, 10);
        if (errno || *end || mib <= 0 || mib > (1L << 20)) {
            if (rank == 0)
                fprintf(stderr, "image: MIB must be a positive number of MiB, got '%s'\n",
                        argv[1]);
            MPI_Abort(MPI_COMM_WORLD, 2);
        }
    }
    size_t words = (size_t)mib * ((size_t)1 << 20) / sizeof(uint64_t);
    uint64_t seed = 0x5eed0000ULL + (uint64_t)rank;
    uint64_t *buf = malloc(words * sizeof *buf);
    if (!buf) {
        fprintf(stderr, "image: rank %d: cannot allocate %ld MiB\n", rank, mib);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    for (size_t i = 0; i < words; i++)
        buf[i] = pattern(i, seed);

    for (int b = 0; b < BARRIERS; b++)
        MPI_Barrier(MPI_COMM_WORLD);

    long bad = 0;
    for (size_t i = 0; i < words; i++)
        bad += buf[i] != pattern(i, seed);
    free(buf);
    long all_bad = 0;
    MPI_Allreduce(&bad, &all_bad, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
    if (bad)
        fprintf(stderr, "image: rank %d: %ld of %zu words differ from the pattern\n", rank,
                bad, words);
    if (rank == 0 && all_bad == 0) {
        printf("verified %ld MiB\n", mib);
        printf("OK\n");
        fflush(stdout);
    }
    MPI_Finalize();
    return all_bad ? 1 : 0;
}
