/* ranks: 3 */
/* Persistent requests: Send_init/Recv_init/Ssend_init/Bsend_init, Start,
 * Startall, reuse over many iterations, Request_free (inactive and active). */
#include "common.h"

int main(int argc, char **argv)
{
    CK(MPI_Init(&argc, &argv));
    need_ranks(3);
    int rank = world_rank(), size = world_size();
    int right = (rank + 1) % size, left = (rank + size - 1) % size;
    MPI_Status sts[2];

    /* ring with Startall/Waitall, reused 20 times */
    int sbuf[2], rbuf[2];
    MPI_Request reqs[2];
    CK(MPI_Recv_init(rbuf, 2, MPI_INT, left, 1, MPI_COMM_WORLD, &reqs[0]));
    CK(MPI_Send_init(sbuf, 2, MPI_INT, right, 1, MPI_COMM_WORLD, &reqs[1]));
    long long acc = 0;
    for (int it = 0; it < 20; it++) {
        sbuf[0] = rank * 1000 + it;
        sbuf[1] = it * it;
        CK(MPI_Startall(2, reqs));
        CK(MPI_Waitall(2, reqs, sts));
        CHECK(reqs[0] != MPI_REQUEST_NULL && reqs[1] != MPI_REQUEST_NULL);
        CHECK(rbuf[0] == left * 1000 + it && rbuf[1] == it * it);
        CHECK(sts[0].MPI_SOURCE == left && sts[0].MPI_TAG == 1);
        acc += rbuf[0] + 3LL * rbuf[1];
    }
    CK(MPI_Request_free(&reqs[0]));
    CK(MPI_Request_free(&reqs[1]));
    CHECK(reqs[0] == MPI_REQUEST_NULL && reqs[1] == MPI_REQUEST_NULL);
    say("startall ring x20:");
    say_all("acc=%lld", acc);

    /* Start/Wait one at a time, Ssend_init 0 -> 1, reused 5 times, Test loop */
    MPI_Request r;
    int v = 0, sum = 0;
    if (rank == 0) {
        CK(MPI_Ssend_init(&v, 1, MPI_INT, 1, 2, MPI_COMM_WORLD, &r));
        for (int it = 0; it < 5; it++) {
            v = 7 * it + 1;
            CK(MPI_Start(&r));
            CK(MPI_Wait(&r, MPI_STATUS_IGNORE));
        }
        CK(MPI_Request_free(&r));
    } else if (rank == 1) {
        CK(MPI_Recv_init(&v, 1, MPI_INT, 0, 2, MPI_COMM_WORLD, &r));
        for (int it = 0; it < 5; it++) {
            int flag = 0;
            CK(MPI_Start(&r));
            while (!flag)
                CK(MPI_Test(&r, &flag, &sts[0]));
            CHECK(v == 7 * it + 1 && sts[0].MPI_SOURCE == 0);
            sum += v;
        }
        CK(MPI_Request_free(&r));
    }
    say("ssend_init/start x5:");
    say_all("sum=%d", sum);

    /* Bsend_init 2 -> 0 with an attached buffer */
    int psize;
    CK(MPI_Pack_size(3, MPI_INT, MPI_COMM_WORLD, &psize));
    int bsize = psize + MPI_BSEND_OVERHEAD;
    char *bbuf = malloc((size_t)bsize);
    CHECK(bbuf != NULL);
    CK(MPI_Buffer_attach(bbuf, bsize));
    int b3[3] = {0, 0, 0};
    if (rank == 2) {
        CK(MPI_Bsend_init(b3, 3, MPI_INT, 0, 3, MPI_COMM_WORLD, &r));
        for (int it = 0; it < 4; it++) {
            b3[0] = it;
            b3[1] = it + 10;
            b3[2] = it + 20;
            CK(MPI_Start(&r));
            CK(MPI_Wait(&r, MPI_STATUS_IGNORE));
        }
        CK(MPI_Request_free(&r));
    } else if (rank == 0) {
        for (int it = 0; it < 4; it++) {
            CK(MPI_Recv(b3, 3, MPI_INT, 2, 3, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
            CHECK(b3[0] == it && b3[1] == it + 10 && b3[2] == it + 20);
        }
        say("bsend_init x4: last %d %d %d", b3[0], b3[1], b3[2]);
    }
    void *det;
    int detsz;
    CK(MPI_Buffer_detach(&det, &detsz));
    free(bbuf);

    /* Request_free on an active send: the message still arrives */
    if (rank == 1) {
        static int payload[4] = {11, 22, 33, 44};
        CK(MPI_Isend(payload, 4, MPI_INT, 2, 4, MPI_COMM_WORLD, &r));
        CK(MPI_Request_free(&r));
        CHECK(r == MPI_REQUEST_NULL);
    } else if (rank == 2) {
        int p[4];
        CK(MPI_Recv(p, 4, MPI_INT, 1, 4, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
        CHECK(p[0] == 11 && p[3] == 44);
    }
    /* rank 2 has received the message before it enters the barrier */
    CK(MPI_Barrier(MPI_COMM_WORLD));
    say("request_free on active isend: delivered");

    /* Start on persistent requests to MPI_PROC_NULL */
    CK(MPI_Send_init(&v, 1, MPI_INT, MPI_PROC_NULL, 5, MPI_COMM_WORLD, &reqs[0]));
    CK(MPI_Recv_init(&v, 1, MPI_INT, MPI_PROC_NULL, 5, MPI_COMM_WORLD, &reqs[1]));
    CK(MPI_Startall(2, reqs));
    CK(MPI_Waitall(2, reqs, sts));
    CK(MPI_Request_free(&reqs[0]));
    CK(MPI_Request_free(&reqs[1]));
    say("persistent to PROC_NULL: done");

/* MPI 4's persistent collectives; not on MPICH 4.0.2, where this part
 * hangs without ferry too (persistent collectives started out of order,
 * next to point-to-point traffic). */
#if MPI_VERSION >= 4 && !(defined(MPICH_NUMVERSION) && MPICH_NUMVERSION < 40100000)
    /* Persistent collectives started in different orders on different
     * ranks, completed together with a point-to-point request by one
     * Waitall (MPICH's coll/p_order): MPICH's MPI_Testall, which the
     * library waits with, reports MPI_ERR_IN_STATUS once the collective
     * completed before the others. */
    {
        int a = -1, got = -1;
        MPI_Request pr[3];
        MPI_Status ps[3];
        for (int it = 0; it < 3; it++) {
            CK(MPI_Bcast_init(&a, 1, MPI_INT, 0, MPI_COMM_WORLD, MPI_INFO_NULL, &pr[0]));
            CK(MPI_Barrier_init(MPI_COMM_WORLD, MPI_INFO_NULL, &pr[1]));
            a = rank == 0 ? 40 + it : -1;
            CK(MPI_Irecv(&got, 1, MPI_INT, left, 6, MPI_COMM_WORLD, &pr[2]));
            if (rank == 0) {
                CK(MPI_Start(&pr[0]));
                CK(MPI_Start(&pr[1]));
            } else {
                CK(MPI_Start(&pr[1]));
                CK(MPI_Start(&pr[0]));
            }
            int out = rank * 10 + it;
            CK(MPI_Send(&out, 1, MPI_INT, right, 6, MPI_COMM_WORLD));
            if (it % 2 == 0)
                CK(MPI_Waitall(3, pr, ps));
            else
                CK(MPI_Waitall(3, pr, MPI_STATUSES_IGNORE));
            CHECK(a == 40 + it && got == left * 10 + it);
            if (it % 2 == 0)
                CHECK(ps[2].MPI_SOURCE == left && ps[2].MPI_TAG == 6);
            CK(MPI_Request_free(&pr[0]));
            CK(MPI_Request_free(&pr[1]));
        }
    }
#endif
    say("persistent collectives started out of order: done");

    return finish_ok();
}
