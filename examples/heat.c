/* ferry's demo program: 1-D heat diffusion over the ranks of MPI_COMM_WORLD.
 * Each rank owns a slab of the rod, exchanges halo cells with its
 * neighbours (MPI_Sendrecv), and the ranks agree on the total heat
 * (MPI_Allreduce) and synchronize (MPI_Barrier) every step. A row
 * communicator made with MPI_Comm_split carries a second reduction, so the
 * program also depends on a derived communicator. Output is deterministic:
 * integer-scaled sums printed by rank 0 only.
 *
 *   mpicc -O1 -o heat examples/heat.c && mpiexec -n 4 ./heat [steps [pause-us]]
 *
 * pause-us (default 0) makes every rank sleep that many microseconds per
 * step: the run then lasts a known minimum of wall time whatever the
 * machine's speed (tests that act on a running job from outside use it).
 * The output does not depend on it.
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define CELLS 4096

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int steps = argc > 1 ? atoi(argv[1]) : 400;
    long pause_us = argc > 2 ? atol(argv[2]) : 0;
    struct timespec pause = {pause_us / 1000000, (pause_us % 1000000) * 1000};

    MPI_Comm pairs; /* ranks 0-1, 2-3, ... */
    MPI_Comm_split(MPI_COMM_WORLD, rank / 2, rank, &pairs);

    double *u = calloc(CELLS + 2, sizeof *u), *v = calloc(CELLS + 2, sizeof *v);
    if (rank == 0)
        for (int i = 1; i <= CELLS / 8; i++) u[i] = 1000.0; /* a hot end */
    int left = rank > 0 ? rank - 1 : MPI_PROC_NULL;
    int right = rank < size - 1 ? rank + 1 : MPI_PROC_NULL;

    for (int s = 1; s <= steps; s++) {
        MPI_Sendrecv(&u[1], 1, MPI_DOUBLE, left, 0, &u[CELLS + 1], 1, MPI_DOUBLE, right, 0,
                     MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        MPI_Sendrecv(&u[CELLS], 1, MPI_DOUBLE, right, 1, &u[0], 1, MPI_DOUBLE, left, 1,
                     MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        if (left == MPI_PROC_NULL) u[0] = u[1];
        if (right == MPI_PROC_NULL) u[CELLS + 1] = u[CELLS];
        for (int i = 1; i <= CELLS; i++) v[i] = u[i] + 0.25 * (u[i - 1] - 2 * u[i] + u[i + 1]);
        double *t = u; u = v; v = t;
        if (s % 50 == 0) {
            /* fixed-point sums: the result does not depend on reduction order */
            long long mine = 0, pair = 0, total = 0;
            for (int i = 1; i <= CELLS; i++) mine += (long long)(u[i] * 1000.0);
            MPI_Allreduce(&mine, &pair, 1, MPI_LONG_LONG, MPI_SUM, pairs);
            MPI_Allreduce(&mine, &total, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
            long long far = 0;
            MPI_Reduce(&pair, &far, 1, MPI_LONG_LONG, MPI_MAX, size - 1, MPI_COMM_WORLD);
            MPI_Bcast(&far, 1, MPI_LONG_LONG, size - 1, MPI_COMM_WORLD);
            if (rank == 0) printf("step %4d  total heat %lld  hottest pair %lld\n", s, total, far);
        }
        MPI_Barrier(MPI_COMM_WORLD);
        if (pause_us > 0) nanosleep(&pause, NULL);
    }
    MPI_Comm_free(&pairs);
    free(u);
    free(v);
    if (rank == 0) printf("done\n");
    MPI_Finalize();
    return 0;
}
