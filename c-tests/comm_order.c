/* ranks: 4 */
/* Communicators that the ranks make in different orders: even ranks
 * start MPI_Comm_idup of P then of Q, odd ranks of Q then of P (MPI lets
 * nonblocking collectives on different communicators start in any order),
 * so each rank's own creation order differs. Then many calls on both,
 * during which regroups and moves happen: a rebuild that followed each
 * rank's creation order would pair one rank's A with another's B (a
 * collective that never completes, or data on the wrong communicator).
 * MPICH's comm/idup_with_info found it. */
#include "common.h"

#define ROUNDS 60

int main(int argc, char **argv)
{
    CK(MPI_Init(&argc, &argv));
    need_ranks(4);
    int rank = world_rank(), size = world_size();
    MPI_Comm p, q, a, b;
    CK(MPI_Comm_dup(MPI_COMM_WORLD, &p));
    CK(MPI_Comm_dup(MPI_COMM_WORLD, &q));
    MPI_Request r[2];
    if (rank % 2 == 0) {
        CK(MPI_Comm_idup(p, &a, &r[0]));
        CK(MPI_Comm_idup(q, &b, &r[1]));
    } else {
        CK(MPI_Comm_idup(q, &b, &r[0]));
        CK(MPI_Comm_idup(p, &a, &r[1]));
    }
    CK(MPI_Waitall(2, r, MPI_STATUSES_IGNORE));
    CK(MPI_Comm_set_name(a, "order-a"));
    CK(MPI_Comm_set_name(b, "order-b"));

    /* A split whose colours reverse the ranks, made after the others:
     * its ranks differ from the world's. */
    MPI_Comm rev;
    CK(MPI_Comm_split(a, 0, size - 1 - rank, &rev));

    long total_a = 0, total_b = 0, total_ring = 0, total_rev = 0;
    for (int i = 0; i < ROUNDS; i++) {
        int mine = rank * 100 + i, sum = 0;
        CK(MPI_Allreduce(&mine, &sum, 1, MPI_INT, MPI_SUM, a));
        CHECK(sum == 100 * size * (size - 1) / 2 + size * i);
        total_a += sum;
        int biggest = 0;
        CK(MPI_Allreduce(&mine, &biggest, 1, MPI_INT, MPI_MAX, b));
        CHECK(biggest == (size - 1) * 100 + i);
        total_b += biggest;
        /* A ring on b, tagged by round: a message on the wrong
         * communicator would not match, or match the wrong round. */
        int right = (rank + 1) % size, left = (rank + size - 1) % size;
        int got = -1;
        CK(MPI_Sendrecv(&mine, 1, MPI_INT, right, i, &got, 1, MPI_INT, left, i, b,
                        MPI_STATUS_IGNORE));
        CHECK(got == left * 100 + i);
        total_ring += got;
        int rrank = -1;
        CK(MPI_Comm_rank(rev, &rrank));
        CHECK(rrank == size - 1 - rank);
        int who = rank;
        CK(MPI_Bcast(&who, 1, MPI_INT, 0, rev));
        CHECK(who == size - 1);
        total_rev += who;
        if (i % 10 == 9) {
            CK(MPI_Barrier(a));
            CK(MPI_Barrier(b));
            CK(MPI_Barrier(MPI_COMM_WORLD));
        }
    }
    char name[MPI_MAX_OBJECT_NAME];
    int len = 0;
    CK(MPI_Comm_get_name(a, name, &len));
    CHECK(strcmp(name, "order-a") == 0);
    CK(MPI_Comm_get_name(b, name, &len));
    CHECK(strcmp(name, "order-b") == 0);
    say_all("a %ld b %ld ring %ld rev %ld", total_a, total_b, total_ring,
            total_rev);
    CK(MPI_Comm_free(&rev));
    CK(MPI_Comm_free(&a));
    CK(MPI_Comm_free(&b));
    CK(MPI_Comm_free(&p));
    CK(MPI_Comm_free(&q));
    return finish_ok();
}
