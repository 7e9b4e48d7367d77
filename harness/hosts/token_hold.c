/* A token goes around a ring of ranks; each rank holds it HOLD_MS
 * milliseconds (outside MPI) before passing it on, so that at any moment
 * every rank but one is blocked in MPI_Recv from its left neighbour. The
 * `hosts::evacuate-blocked` case evacuates a host while its neighbours wait
 * so. Arguments: laps, hold in ms. Rank 0 prints the token every 50 laps,
 * then "done". */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int laps = argc > 1 ? atoi(argv[1]) : 400;
    int hold_ms = argc > 2 ? atoi(argv[2]) : 10;
    int right = (rank + 1) % size, left = (rank + size - 1) % size;
    struct timespec hold = {hold_ms / 1000, (long)(hold_ms % 1000) * 1000000L};
    long long token = 1;
    for (int lap = 0; lap < laps; lap++) {
        if (rank != 0 || lap > 0) {
            MPI_Recv(&token, 1, MPI_LONG_LONG, left, lap, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        }
        nanosleep(&hold, NULL);
        token = (token * 31 + rank + lap) % 1000000007LL;
        int tag = rank == size - 1 ? lap + 1 : lap;
        if (lap < laps - 1 || rank != size - 1) {
            MPI_Send(&token, 1, MPI_LONG_LONG, right, tag, MPI_COMM_WORLD);
        }
        if (rank == 0 && lap % 50 == 0) {
            printf("lap %d token %lld\n", lap, token);
            fflush(stdout);
        }
    }
    /* Every rank ends with the same token. */
    MPI_Bcast(&token, 1, MPI_LONG_LONG, size - 1, MPI_COMM_WORLD);
    if (rank == 0) {
        printf("done: token %lld\n", token);
    }
    MPI_Finalize();
    return 0;
}
