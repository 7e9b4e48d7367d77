/* Instructions per MPI call, for scripts/bench-instructions.sh: runs one
 * kind of call N times in a single process (MPI singleton, no mpiexec), so
 * that callgrind's instruction count for N2 - N1 iterations, divided by the
 * difference, is the cost of one iteration. Instruction counts do not
 * depend on the machine's load: the same binary, input and environment
 * give the same count, which makes the library's per-call cost measurable
 * to the instruction on a shared 2-core machine.
 *
 *   percall KIND N      KIND: rank test iprobe selfmsg allreduce barrier
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    if (argc < 3) {
        fprintf(stderr, "usage: percall KIND N\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    const char *kind = argv[1];
    long n = atol(argv[2]);
    int k = !strcmp(kind, "rank") ? 0 : !strcmp(kind, "test") ? 1 : !strcmp(kind, "iprobe") ? 2
          : !strcmp(kind, "selfmsg") ? 3 : !strcmp(kind, "allreduce") ? 4 : !strcmp(kind, "barrier") ? 5 : -1;
    if (k < 0) {
        fprintf(stderr, "percall: unknown kind %s\n", kind);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    int r, flag, x = 1, y = 0;
    MPI_Request q = MPI_REQUEST_NULL, rq;
    for (long i = 0; i < n; i++) {
        switch (k) {
        case 0: MPI_Comm_rank(MPI_COMM_WORLD, &r); break;
        case 1: MPI_Test(&q, &flag, MPI_STATUS_IGNORE); break;
        case 2: MPI_Iprobe(0, 0, MPI_COMM_SELF, &flag, MPI_STATUS_IGNORE); break;
        case 3:
            MPI_Irecv(&y, 1, MPI_INT, 0, 0, MPI_COMM_SELF, &rq);
            MPI_Send(&x, 1, MPI_INT, 0, 0, MPI_COMM_SELF);
            MPI_Wait(&rq, MPI_STATUS_IGNORE);
            break;
        case 4: MPI_Allreduce(&x, &y, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD); break;
        case 5: MPI_Barrier(MPI_COMM_WORLD); break;
        }
    }
    MPI_Finalize();
    return 0;
}
