/* ranks: 3 */
/* ferry-test-asks: yes (ferry_regroup through ferry.h) */
/* Regroups at chosen points (asked through the C API, include/ferry.h),
 * each with a situation the drain and the point-to-point synchronization
 * must get right. Without the library ferry_regroup() does nothing and the
 * output is the same.
 *   1. a regroup led at the start while a rank computes without calling
 *      MPI: the leader reads the window of a rank that makes no progress,
 *      and must wait for what it reads to land;
 *   2. 1000 small messages in flight and unreceived (tags 0..9, received
 *      later by tag, by MPI_ANY_TAG and by MPI_ANY_SOURCE), a probe after
 *      the regroup that must see a drained message, an Mprobe/Mrecv of one;
 *   3. Irecvs posted before the regroup, matched after it (Waitany and
 *      Testsome indices must stay right);
 *   4. a rank blocked in MPI_Recv on a rank that has stopped for the
 *      synchronization (it sends only after a sub-communicator collective);
 *   5. traffic on a sub-communicator only, in flight at the regroup;
 *   6. persistent receives started after a regroup drained their messages
 *      (served from the drained queue): one freed at once, one carried
 *      through a second regroup before the program waits on it, then
 *      started again on the rebuilt communicator;
 *   7. a persistent receive from MPI_PROC_NULL started before a regroup and
 *      completed after it (complete at once: never to be cancelled).
 * With the library each section checks that its regroup happened. */
#include "asked.h"
#include <time.h>

#define N_MSGS 1000

int main(int argc, char **argv)
{
    CK(MPI_Init(&argc, &argv));
    need_ranks(3);
    int rank = world_rank();
    const MPI_Comm W = MPI_COMM_WORLD;

    /* 1. rank 1 computes (no MPI call) while rank 0 leads a regroup, before
     * any two ranks have talked */
    long spins = 0;
    if (rank == 0)
        CHECK(ferry_regroup() == FERRY_OK || !ferry_is_loaded());
    if (rank == 1) {
        /* (not MPI_Wtime: the library may make progress in any MPI call) */
        struct timespec t0, t;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        do {
            spins++;
            clock_gettime(CLOCK_MONOTONIC, &t);
        } while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < 300000000L);
    }
    int one = 1, total = 0;
    CK(MPI_Allreduce(&one, &total, 1, MPI_INT, MPI_SUM, W));
    settle();
    regrouped("a rank computing while the leader reads it");
    say("1. regroup while a rank computes:");
    say_all("total=%d computed=%d", total, rank == 1 ? spins > 0 : 1);

    /* 2. messages in flight: ranks 0 and 2 send to 1, who reads them only
     * after the regroup */
    static int payload[N_MSGS];
    MPI_Request sreq[N_MSGS];
    if (rank != 1) {
        for (int i = 0; i < N_MSGS; i++) {
            payload[i] = rank * 100000 + i;
            CK(MPI_Isend(&payload[i], 1, MPI_INT, 1, i % 10, W, &sreq[i]));
        }
    }
    if (rank == 2)
        CHECK(ferry_regroup() == FERRY_OK || !ferry_is_loaded());
    CK(MPI_Barrier(W));
    CK(MPI_Barrier(W));
    CK(MPI_Barrier(W));
    if (rank != 1)
        CK(MPI_Waitall(N_MSGS, sreq, MPI_STATUSES_IGNORE));
    long sum = 0;
    int ok_order = 1;
    if (rank == 1) {
        /* a probe sees the first message from rank 0 with tag 0 */
        MPI_Status st;
        CK(MPI_Probe(0, 0, W, &st));
        int cnt;
        CK(MPI_Get_count(&st, MPI_INT, &cnt));
        CHECK(st.MPI_SOURCE == 0 && st.MPI_TAG == 0 && cnt == 1);
        int flag = 0;
        while (!flag)
            CK(MPI_Iprobe(2, 3, W, &flag, &st));
        CHECK(st.MPI_SOURCE == 2 && st.MPI_TAG == 3);
        /* Mprobe + Mrecv of rank 2's first tag-5 message */
        MPI_Message m;
        int v;
        CK(MPI_Mprobe(2, 5, W, &m, &st));
        CK(MPI_Mrecv(&v, 1, MPI_INT, &m, &st));
        CHECK(v == 200000 + 5 && st.MPI_TAG == 5);
        sum += v;
        /* rank 0's messages by tag: per tag, in the order they were sent */
        for (int t = 0; t < 10; t++)
            for (int i = t; i < N_MSGS; i += 10) {
                CK(MPI_Recv(&v, 1, MPI_INT, 0, t, W, &st));
                ok_order &= v == i;
                sum += v;
            }
        /* rank 2's by MPI_ANY_TAG, then MPI_ANY_SOURCE: in send order */
        int last = -1;
        for (int i = 0; i < N_MSGS - 1; i++) {
            CK(MPI_Recv(&v, 1, MPI_INT, i % 2 ? MPI_ANY_SOURCE : 2, MPI_ANY_TAG, W, &st));
            CHECK(st.MPI_SOURCE == 2);
            ok_order &= v - 200000 > last && st.MPI_TAG == (v - 200000) % 10;
            last = v - 200000;
            sum += v;
        }
    }
    regrouped("messages in flight");
    say("2. messages in flight:");
    say_all("sum=%ld in_order=%d", sum, ok_order);

    /* 3. Irecvs posted before, matched after */
    int got[4] = {-1, -1, -1, -1};
    MPI_Request r[4];
    if (rank == 0)
        for (int i = 0; i < 4; i++)
            CK(MPI_Irecv(&got[i], 1, MPI_INT, i % 2 ? 1 : 2, 20 + i, W, &r[i]));
    if (rank == 1)
        CHECK(ferry_regroup() == FERRY_OK || !ferry_is_loaded());
    settle();
    if (rank == 1 || rank == 2)
        for (int i = 0; i < 4; i++)
            if ((i % 2 ? 1 : 2) == rank) {
                int v = 1000 * rank + i;
                CK(MPI_Send(&v, 1, MPI_INT, 0, 20 + i, W));
            }
    if (rank == 0) {
        int idx, outcount, indices[4], n = 0;
        CK(MPI_Waitany(4, r, &idx, MPI_STATUS_IGNORE));
        CHECK(idx >= 0 && idx < 4 && r[idx] == MPI_REQUEST_NULL);
        n++;
        while (n < 4) {
            CK(MPI_Testsome(4, r, &outcount, indices, MPI_STATUSES_IGNORE));
            for (int j = 0; j < outcount; j++) {
                CHECK(r[indices[j]] == MPI_REQUEST_NULL);
                n++;
            }
        }
        for (int i = 0; i < 4; i++)
            CHECK(got[i] == 1000 * (i % 2 ? 1 : 2) + i);
    }
    regrouped("irecvs across");
    say("3. irecvs posted before the regroup:");
    say_all("got %d %d %d %d", got[0], got[1], got[2], got[3]);

    /* 4. rank 1 blocked receiving from rank 2, which stops before a
     * collective on {0, 2} and sends only after it */
    MPI_Comm pair;
    CK(MPI_Comm_split(W, rank == 1 ? MPI_UNDEFINED : 0, rank, &pair));
    int x = -1;
    if (rank == 2) {
        CHECK(ferry_regroup() == FERRY_OK || !ferry_is_loaded());
        int one = 1, s = 0;
        CK(MPI_Allreduce(&one, &s, 1, MPI_INT, MPI_SUM, pair));
        x = 77 + s;
        CK(MPI_Send(&x, 1, MPI_INT, 1, 30, W));
    } else if (rank == 0) {
        int one = 1, s = 0;
        CK(MPI_Allreduce(&one, &s, 1, MPI_INT, MPI_SUM, pair));
        x = s;
    } else {
        CK(MPI_Recv(&x, 1, MPI_INT, 2, 30, W, MPI_STATUS_IGNORE));
    }
    settle();
    regrouped("blocked receive");
    say("4. blocked receive on a stopped rank:");
    say_all("x=%d", x);
    if (pair != MPI_COMM_NULL)
        CK(MPI_Comm_free(&pair));

    /* 5. traffic on a sub-communicator only, in flight at the regroup */
    MPI_Comm sub;
    CK(MPI_Comm_split(W, rank == 0 ? 0 : 1, -rank, &sub));
    int srank, ssize;
    CK(MPI_Comm_rank(sub, &srank));
    CK(MPI_Comm_size(sub, &ssize));
    unsigned long subsum = 0;
    if (ssize == 2) {
        int vals[50];
        if (srank == 0)
            for (int i = 0; i < 50; i++) {
                vals[i] = i * i + rank;
                CK(MPI_Send(&vals[i], 1, MPI_INT, 1, i, sub));
            }
        if (rank == 0 || srank == 0)
            CHECK(ferry_regroup() == FERRY_OK || !ferry_is_loaded());
        CK(MPI_Barrier(sub));
        CK(MPI_Barrier(sub));
        if (srank == 1)
            for (int i = 49; i >= 0; i--) {
                int v;
                CK(MPI_Recv(&v, 1, MPI_INT, 0, i, sub, MPI_STATUS_IGNORE));
                subsum = subsum * 7 + (unsigned long)v;
            }
    } else {
        CHECK(ferry_regroup() == FERRY_OK || !ferry_is_loaded());
    }
    settle();
    regrouped("sub-communicator traffic");
    say("5. sub-communicator traffic:");
    say_all("sub rank %d of %d: %lu", srank, ssize, subsum);
    CK(MPI_Comm_free(&sub));

    /* 6. persistent receives whose messages a regroup drained */
    MPI_Request pr = MPI_REQUEST_NULL, pfree = MPI_REQUEST_NULL;
    int pv = -1, pv2 = -1, pgot[3] = {-1, -1, -1};
    if (rank == 1) {
        CK(MPI_Recv_init(&pv, 1, MPI_INT, 0, 50, W, &pr));
        CK(MPI_Recv_init(&pv2, 1, MPI_INT, 0, 51, W, &pfree));
    }
    if (rank == 0) {
        int v = 500, w = 510;
        CK(MPI_Send(&v, 1, MPI_INT, 1, 50, W));
        CK(MPI_Send(&w, 1, MPI_INT, 1, 51, W));
        CHECK(ferry_regroup() == FERRY_OK || !ferry_is_loaded());
    }
    settle();
    regrouped("persistent receives, messages drained");
    if (rank == 1) {
        CK(MPI_Start(&pr));
        /* freeing an active receive is allowed: its message is consumed */
        CK(MPI_Start(&pfree));
        CK(MPI_Request_free(&pfree));
        CHECK(pfree == MPI_REQUEST_NULL);
    }
    if (rank == 2)
        CHECK(ferry_regroup() == FERRY_OK || !ferry_is_loaded());
    settle();
    regrouped("persistent receive started, not yet completed");
    if (rank == 1) {
        MPI_Status st;
        CK(MPI_Wait(&pr, &st));
        CHECK(pr != MPI_REQUEST_NULL && st.MPI_SOURCE == 0 && st.MPI_TAG == 50);
        pgot[0] = pv;
    }
    for (int it = 1; it < 3; it++) {
        if (rank == 0) {
            int v = 500 + it;
            CK(MPI_Send(&v, 1, MPI_INT, 1, 50, W));
        }
        if (rank == 1) {
            CK(MPI_Start(&pr));
            CK(MPI_Wait(&pr, MPI_STATUS_IGNORE));
            pgot[it] = pv;
        }
    }
    if (rank == 1) {
        CK(MPI_Request_free(&pr));
        CHECK(pr == MPI_REQUEST_NULL);
    }
    say("6. persistent receives served across regroups:");
    say_all("got %d %d %d", pgot[0], pgot[1], pgot[2]);

    /* 7. a started persistent receive from MPI_PROC_NULL across a regroup */
    MPI_Request nr;
    int nv = 7;
    MPI_Status nst;
    CK(MPI_Recv_init(&nv, 1, MPI_INT, MPI_PROC_NULL, 60, W, &nr));
    CK(MPI_Start(&nr));
    if (rank == 0)
        CHECK(ferry_regroup() == FERRY_OK || !ferry_is_loaded());
    settle();
    regrouped("persistent receive from MPI_PROC_NULL started");
    /* (the status is not checked: MPICH's for a persistent receive from
     * MPI_PROC_NULL is not the standard's, with or without ferry) */
    CK(MPI_Wait(&nr, &nst));
    CHECK(nr != MPI_REQUEST_NULL && nv == 7);
    CK(MPI_Request_free(&nr));
    say("7. persistent receive from MPI_PROC_NULL across a regroup: done");

    finish_ok();
    return 0;
}
