/* Regroup time (bench/regroup.sh): every rank keeps MSGS small messages in
 * flight to its right neighbour, unreceived, and rank 0 asks for a regroup
 * through the C API; after it the messages are received (from the drain
 * queue) and checked. Repeated ROUNDS times; the phases come from the
 * event log that the library writes.
 *
 *   regroup MSGS ROUNDS */
#include <ferry.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int msgs = argc > 1 ? atoi(argv[1]) : 0;
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    int right = (rank + 1) % size, left = (rank + size - 1) % size;
    int *out = malloc(sizeof(int) * (msgs + 1));
    MPI_Request *req = malloc(sizeof(MPI_Request) * (msgs + 1));
    int bad = 0;
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < msgs; i++) {
            out[i] = r * 1000003 + i;
            MPI_Isend(&out[i], 1, MPI_INT, right, i % 7, MPI_COMM_WORLD, &req[i]);
        }
        long before = ferry_regroups();
        if (rank == 0 && ferry_regroup() != FERRY_OK) {
            fprintf(stderr, "regroup: libferry.so is not loaded\n");
            MPI_Abort(MPI_COMM_WORLD, 2);
        }
        /* the regroup runs here: everybody stops at the second barrier,
         * or the third (a rank may enter one more collective before the
         * command reaches it) */
        MPI_Barrier(MPI_COMM_WORLD);
        MPI_Barrier(MPI_COMM_WORLD);
        MPI_Barrier(MPI_COMM_WORLD);
        if (ferry_regroups() != before + 1)
            bad++;
        for (int i = 0; i < msgs; i++) {
            int v;
            MPI_Recv(&v, 1, MPI_INT, left, i % 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            bad += v != r * 1000003 + i;
        }
        MPI_Waitall(msgs, req, MPI_STATUSES_IGNORE);
        MPI_Barrier(MPI_COMM_WORLD);
    }
    int total;
    MPI_Allreduce(&bad, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0)
        printf(total ? "VERIFY FAILED (%d)\n" : "VERIFY OK\n", total);
    free(out);
    free(req);
    MPI_Finalize();
    return total != 0;
}
