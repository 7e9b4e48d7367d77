/* ranks: 3 */
/* ferry-test-skip: swap one barrier on the world, at its end (the switch fires at the 2nd) */
/* A small "demo" program: a token goes around a ring of ranks and an
 * allreduce follows, 200 times; prints a checksum at the end. */
#include "common.h"

#define ITERS 200

int main(int argc, char **argv)
{
    CK(MPI_Init(&argc, &argv));
    need_ranks(3);
    int rank = world_rank(), size = world_size();
    int right = (rank + 1) % size, left = (rank + size - 1) % size;

    long long local = 1 + rank; /* integers only: the result must not depend on
                                 * the reduction order */
    unsigned long long checksum = 0;
    for (int it = 0; it < ITERS; it++) {
        long long token;
        if (rank == 0) {
            token = it;
            CK(MPI_Send(&token, 1, MPI_LONG_LONG, right, it, MPI_COMM_WORLD));
            CK(MPI_Recv(&token, 1, MPI_LONG_LONG, left, it, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
        } else {
            CK(MPI_Recv(&token, 1, MPI_LONG_LONG, left, it, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
            token = (token * 7 + rank) % 1000003;
            CK(MPI_Send(&token, 1, MPI_LONG_LONG, right, it, MPI_COMM_WORLD));
        }
        /* each rank mixes the token as it saw it into its local value; the
         * allreduce makes the sum known to all */
        local = (local * 3 + token % 97 + rank) % 1000003;
        long long sum;
        CK(MPI_Allreduce(&local, &sum, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD));
        checksum = checksum * 1000003ULL + (unsigned long long)sum;
    }
    unsigned long long all[3];
    CK(MPI_Gather(&checksum, 1, MPI_UNSIGNED_LONG_LONG, all, 1, MPI_UNSIGNED_LONG_LONG, 0,
                  MPI_COMM_WORLD));
    if (rank == 0)
        for (int r = 1; r < size; r++)
            CHECK(all[r] == all[0]);
    say("ring: %d iterations, checksum %llu", ITERS, checksum);
    return finish_ok();
}
