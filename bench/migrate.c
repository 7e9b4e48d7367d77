/*
 * migrate: a job whose rank 1 moves, for migration time against the number
 * of ranks and the size of the moving process's memory.  Every rank
 * allocates MIB MiB of heap and writes a pattern into every word (every
 * page resident and distinct), then runs STEPS steps of a ring exchange
 * (MPI_Sendrecv) and an MPI_Allreduce, then checks its pattern.  The
 * driver (scripts/bench-migration.sh) moves rank 1 part-way through with
 * `ferry run --migrate rank=1,after=K`; the phases come from the library's
 * event log, not from this program.
 *
 *   migrate [MIB] [STEPS]       (defaults 64, 400)
 *
 * Output (rank 0): "checksum C", "verified MIB MiB on N ranks", "OK".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <mpi.h>

static uint64_t pattern(size_t i, uint64_t seed)
{
    uint64_t x = (uint64_t)i * 0x9e3779b97f4a7c15ULL + seed;
    return x ^ (x >> 29);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    long mib = argc > 1 ? atol(argv[1]) : 64;
    int steps = argc > 2 ? atoi(argv[2]) : 400;
    size_t words = (size_t)mib * (1 << 20) / sizeof(uint64_t);
    uint64_t *mem = malloc(words * sizeof *mem);
    if (!mem) {
        fprintf(stderr, "cannot allocate %ld MiB\n", mib);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    for (size_t i = 0; i < words; i++)
        mem[i] = pattern(i, (uint64_t)rank);
    int right = (rank + 1) % size, left = (rank + size - 1) % size;
    uint64_t acc = (uint64_t)rank;
    for (int s = 0; s < steps; s++) {
        uint64_t out = acc + (uint64_t)s, in = 0, sum = 0;
        MPI_Sendrecv(&out, 1, MPI_UINT64_T, right, 0, &in, 1, MPI_UINT64_T, left, 0,
                     MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        MPI_Allreduce(&in, &sum, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
        acc = acc * 31 + sum;
    }
    size_t bad = 0;
    for (size_t i = 0; i < words; i++)
        bad += mem[i] != pattern(i, (uint64_t)rank);
    long all_bad = 0, mine = (long)bad;
    MPI_Reduce(&mine, &all_bad, 1, MPI_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
    uint64_t total = 0;
    MPI_Reduce(&acc, &total, 1, MPI_UINT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
    if (rank == 0) {
        printf("checksum %llu\n", (unsigned long long)total);
        if (all_bad) {
            fprintf(stderr, "%ld words differ\n", all_bad);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        printf("verified %ld MiB on %d ranks\nOK\n", mib, size);
    }
    free(mem);
    MPI_Finalize();
    return 0;
}
