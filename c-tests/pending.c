/* ranks: 2 */
/* Requests that stay pending across MPI_Barrier on MPI_COMM_WORLD: an Irecv
 * on the world and one on a dup posted before the barrier and matched after
 * it, an Issend started before the barrier and received after it, and a
 * persistent receive started before and completed after. This is the
 * smallest case for ferry's world-swap test switch
 * (FERRY_TEST_DUP_WORLD_AT_BARRIER=1): the pending operations must survive
 * the swap. */
#include "common.h"

int main(int argc, char **argv)
{
    CK(MPI_Init(&argc, &argv));
    need_ranks(2);
    int rank = world_rank();
    const MPI_Comm W = MPI_COMM_WORLD;
    MPI_Comm dup;
    CK(MPI_Comm_dup(W, &dup));

    /* 1. Irecv on the world before the barrier, Send after */
    int x = -1;
    MPI_Request r = MPI_REQUEST_NULL;
    if (rank == 1)
        CK(MPI_Irecv(&x, 1, MPI_INT, 0, 7, W, &r));
    CK(MPI_Barrier(W));
    if (rank == 0) {
        int y = 42;
        CK(MPI_Send(&y, 1, MPI_INT, 1, 7, W));
    }
    CK(MPI_Wait(&r, MPI_STATUS_IGNORE));
    say("irecv on world across a barrier:");
    say_all("got %d", x);

    /* 2. the same on a dup, with ANY_SOURCE */
    MPI_Status st;
    x = -1;
    if (rank == 0)
        CK(MPI_Irecv(&x, 1, MPI_INT, MPI_ANY_SOURCE, 8, dup, &r));
    CK(MPI_Barrier(W));
    if (rank == 1) {
        int y = 43;
        CK(MPI_Send(&y, 1, MPI_INT, 0, 8, dup));
    }
    CK(MPI_Wait(&r, &st));
    if (rank == 0)
        CHECK(x == 43 && st.MPI_SOURCE == 1 && st.MPI_TAG == 8);
    say("irecv any_source on dup across a barrier:");
    say_all("got %d", x);

    /* 3. Issend before the barrier, matching Recv after it */
    int big[1000];
    for (int i = 0; i < 1000; i++)
        big[i] = rank == 0 ? i : -1;
    if (rank == 0)
        CK(MPI_Issend(big, 1000, MPI_INT, 1, 9, dup, &r));
    CK(MPI_Barrier(W));
    if (rank == 1) {
        CK(MPI_Recv(big, 1000, MPI_INT, 0, 9, dup, MPI_STATUS_IGNORE));
        CHECK(big[999] == 999);
    }
    CK(MPI_Wait(&r, MPI_STATUS_IGNORE));
    say("issend across a barrier:");
    say_all("last element %d", big[999]);

    /* 4. persistent receive started before, completed after */
    MPI_Request pr;
    int pv = -1;
    CK(MPI_Recv_init(&pv, 1, MPI_INT, 1 - rank, 10, dup, &pr));
    CK(MPI_Start(&pr));
    CK(MPI_Barrier(W));
    int mine = 100 + rank;
    CK(MPI_Send(&mine, 1, MPI_INT, 1 - rank, 10, dup));
    CK(MPI_Wait(&pr, MPI_STATUS_IGNORE));
    CHECK(pv == 100 + (1 - rank));
    /* and again, reusing the request after the barrier */
    CK(MPI_Start(&pr));
    mine += 10;
    CK(MPI_Send(&mine, 1, MPI_INT, 1 - rank, 10, dup));
    CK(MPI_Wait(&pr, MPI_STATUS_IGNORE));
    CK(MPI_Request_free(&pr));
    say("persistent recv across a barrier, then reused:");
    say_all("got %d", pv);

    CK(MPI_Comm_free(&dup));
    return finish_ok();
}
