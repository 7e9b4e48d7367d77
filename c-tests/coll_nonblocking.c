/* ranks: 3 */
/* ferry-test-skip: swap one barrier on the world, at its end (the switch fires at the 2nd) */
/* Nonblocking collectives completed with Wait, Test loops and Waitall:
 * Ibarrier, Ibcast, Ireduce, Iallreduce (also in place), Igather(v),
 * Iscatter(v), Iallgather(v), Ialltoall(v/w), Ireduce_scatter(_block),
 * Iscan, Iexscan; several outstanding at once. */
#include "common.h"

static void test_loop(MPI_Request *r)
{
    int flag = 0;
    while (!flag)
        CK(MPI_Test(r, &flag, MPI_STATUS_IGNORE));
    CHECK(*r == MPI_REQUEST_NULL);
}

static void add_ints(void *in, void *inout, int *len, MPI_Datatype *dt)
{
    (void)dt;
    for (int i = 0; i < *len; i++)
        ((int *)inout)[i] += ((int *)in)[i];
}

int main(int argc, char **argv)
{
    CK(MPI_Init(&argc, &argv));
    need_ranks(3);
    int rank = world_rank(), size = world_size();
    const MPI_Comm W = MPI_COMM_WORLD;
    MPI_Request r;
    char buf[256];

    /* Ibarrier with a Test loop, then with Wait */
    CK(MPI_Ibarrier(W, &r));
    test_loop(&r);
    CK(MPI_Ibarrier(W, &r));
    CK(MPI_Wait(&r, MPI_STATUS_IGNORE));
    say("ibarrier: done twice");

    /* Ibcast from root 1 */
    int bc[5] = {0};
    if (rank == 1)
        for (int i = 0; i < 5; i++)
            bc[i] = i * i + 2;
    CK(MPI_Ibcast(bc, 5, MPI_INT, 1, W, &r));
    CK(MPI_Wait(&r, MPI_STATUS_IGNORE));
    CHECK(bc[4] == 18);
    say("ibcast: %s", fmt_ints(buf, sizeof buf, bc, 5));

    /* Ireduce to root 2, Iallreduce, Iallreduce in place */
    int rv = rank + 10, rres = -1, ar = -1, inpl[2] = {rank, 2 * rank};
    CK(MPI_Ireduce(&rv, &rres, 1, MPI_INT, MPI_PROD, 2, W, &r));
    test_loop(&r);
    CK(MPI_Iallreduce(&rv, &ar, 1, MPI_INT, MPI_MAX, W, &r));
    CK(MPI_Wait(&r, MPI_STATUS_IGNORE));
    CK(MPI_Iallreduce(MPI_IN_PLACE, inpl, 2, MPI_INT, MPI_SUM, W, &r));
    test_loop(&r);
    CHECK(ar == 12 && inpl[0] == 3 && inpl[1] == 6);
    if (rank == 2)
        CHECK(rres == 1320);
    say("ireduce(prod) at root 2 / iallreduce(max) / in place(sum):");
    say_all("%d / %d / %d %d", rres, ar, inpl[0], inpl[1]);

    /* Igather, Igatherv, Iscatter, Iscatterv */
    int g[3] = {-1, -1, -1}, mine = 5 * rank + 1;
    CK(MPI_Igather(&mine, 1, MPI_INT, g, 1, MPI_INT, 0, W, &r));
    CK(MPI_Wait(&r, MPI_STATUS_IGNORE));
    int counts[3] = {1, 2, 3}, displs[3] = {5, 3, 0}, gvs[3], gvr[6] = {-1, -1, -1, -1, -1, -1};
    for (int i = 0; i <= rank; i++)
        gvs[i] = rank * 10 + i;
    CK(MPI_Igatherv(gvs, rank + 1, MPI_INT, gvr, counts, displs, MPI_INT, 1, W, &r));
    test_loop(&r);
    int scs[6] = {60, 61, 62, 63, 64, 65}, sc[2] = {-1, -1}, svr[3] = {-1, -1, -1};
    CK(MPI_Iscatter(scs, 2, MPI_INT, sc, 2, MPI_INT, 2, W, &r));
    CK(MPI_Wait(&r, MPI_STATUS_IGNORE));
    CK(MPI_Iscatterv(scs, counts, displs, MPI_INT, svr, rank + 1, MPI_INT, 0, W, &r));
    test_loop(&r);
    say("igather at 0: %s", fmt_ints(buf, sizeof buf, g, 3));
    say("igatherv / iscatter / iscatterv:");
    char b2[64], b3[64];
    say_all("%s / %s / %s", fmt_ints(buf, sizeof buf, gvr, rank == 1 ? 6 : 0),
            fmt_ints(b2, sizeof b2, sc, 2), fmt_ints(b3, sizeof b3, svr, rank + 1));

    /* Iallgather, Iallgatherv */
    int ag[3], agv[6];
    CK(MPI_Iallgather(&mine, 1, MPI_INT, ag, 1, MPI_INT, W, &r));
    CK(MPI_Wait(&r, MPI_STATUS_IGNORE));
    CK(MPI_Iallgatherv(gvs, rank + 1, MPI_INT, agv, counts, displs, MPI_INT, W, &r));
    test_loop(&r);
    CHECK(ag[2] == 11 && agv[0] == 20 && agv[5] == 0);
    say("iallgather: %s", fmt_ints(buf, sizeof buf, ag, 3));
    say("iallgatherv: %s", fmt_ints(buf, sizeof buf, agv, 6));

    /* Ialltoall, Ialltoallv, Ialltoallw */
    int as[3], ar3[3];
    for (int p = 0; p < size; p++)
        as[p] = 100 * rank + p;
    CK(MPI_Ialltoall(as, 1, MPI_INT, ar3, 1, MPI_INT, W, &r));
    test_loop(&r);
    for (int p = 0; p < size; p++)
        CHECK(ar3[p] == 100 * p + rank);
    int vs[6], vsc[3], vsd[3], vrc[3], vrd[3], vr[9];
    for (int p = 0, off = 0; p < size; p++) {
        vsc[p] = p + 1;
        vsd[p] = off;
        for (int i = 0; i <= p; i++)
            vs[off + i] = rank * 100 + p * 10 + i;
        off += p + 1;
        vrc[p] = rank + 1;
        vrd[p] = 3 * p;
    }
    for (int i = 0; i < 9; i++)
        vr[i] = 0;
    CK(MPI_Ialltoallv(vs, vsc, vsd, MPI_INT, vr, vrc, vrd, MPI_INT, W, &r));
    CK(MPI_Wait(&r, MPI_STATUS_IGNORE));
    int wsz[3], wd[3], wrd[3], wr[3];
    MPI_Datatype wt[3];
    for (int p = 0; p < size; p++) {
        wsz[p] = 1;
        wd[p] = p * (int)sizeof(int);
        wrd[p] = (size - 1 - p) * (int)sizeof(int);
        wt[p] = MPI_INT;
    }
    CK(MPI_Ialltoallw(as, wsz, wd, wt, wr, wsz, wrd, wt, W, &r));
    test_loop(&r);
    for (int p = 0; p < size; p++)
        CHECK(wr[size - 1 - p] == 100 * p + rank);
    say("ialltoall / ialltoallv / ialltoallw:");
    say_all("%s / %s / %s", fmt_ints(buf, sizeof buf, ar3, 3), fmt_ints(b2, sizeof b2, vr, 9),
            fmt_ints(b3, sizeof b3, wr, 3));

    /* Ireduce_scatter_block, Ireduce_scatter */
    int rsbs[6], rsbr[2], rss[6], rsr[3] = {-1, -1, -1};
    for (int i = 0; i < 6; i++)
        rsbs[i] = rss[i] = i + rank;
    CK(MPI_Ireduce_scatter_block(rsbs, rsbr, 2, MPI_INT, MPI_SUM, W, &r));
    CK(MPI_Wait(&r, MPI_STATUS_IGNORE));
    CK(MPI_Ireduce_scatter(rss, rsr, counts, MPI_INT, MPI_SUM, W, &r));
    test_loop(&r);
    say("ireduce_scatter_block / ireduce_scatter:");
    say_all("%d %d / %s", rsbr[0], rsbr[1], fmt_ints(buf, sizeof buf, rsr, rank + 1));

    /* Iscan, Iexscan */
    int sv = 1 << rank, scan = -1, exscan = -1;
    CK(MPI_Iscan(&sv, &scan, 1, MPI_INT, MPI_BOR, W, &r));
    CK(MPI_Wait(&r, MPI_STATUS_IGNORE));
    CK(MPI_Iexscan(&sv, &exscan, 1, MPI_INT, MPI_BOR, W, &r));
    test_loop(&r);
    if (rank == 0)
        exscan = 0;
    CHECK(scan == (1 << (rank + 1)) - 1 && exscan == (1 << rank) - 1);
    say("iscan / iexscan (bor):");
    say_all("%d / %d", scan, exscan);

    /* several outstanding at once (same order on every rank), Waitall and
     * Testall */
    MPI_Request rs[4];
    int o1 = rank + 1, o1r = 0, o2[3], o3 = 0, o4 = (rank == 0) ? 77 : 0;
    CK(MPI_Iallreduce(&o1, &o1r, 1, MPI_INT, MPI_SUM, W, &rs[0]));
    CK(MPI_Iallgather(&o1, 1, MPI_INT, o2, 1, MPI_INT, W, &rs[1]));
    CK(MPI_Ibarrier(W, &rs[2]));
    CK(MPI_Ibcast(&o4, 1, MPI_INT, 0, W, &rs[3]));
    CK(MPI_Waitall(4, rs, MPI_STATUSES_IGNORE));
    CK(MPI_Iscan(&o1, &o3, 1, MPI_INT, MPI_SUM, W, &rs[0]));
    CK(MPI_Ibarrier(W, &rs[1]));
    int flag = 0;
    while (!flag)
        CK(MPI_Testall(2, rs, &flag, MPI_STATUSES_IGNORE));
    CHECK(o1r == 6 && o2[2] == 3 && o4 == 77 && o3 == (rank + 1) * (rank + 2) / 2);
    say("four outstanding + waitall, two + testall:");
    say_all("sum=%d gathered=%s bcast=%d scan=%d", o1r, fmt_ints(buf, sizeof buf, o2, 3), o4, o3);

    /* A user operation freed while a reduction started with it is in
     * flight: MPI_Op_free only marks it for deallocation (MPICH's
     * coll/nonblocking2 does this). */
    {
        MPI_Op sumop;
        CK(MPI_Op_create(add_ints, 1, &sumop));
        int in[3] = {rank, 2 * rank, 3}, out[3] = {0, 0, 0};
        MPI_Request r;
        CK(MPI_Iallreduce(in, out, 3, MPI_INT, sumop, MPI_COMM_WORLD, &r));
        CK(MPI_Op_free(&sumop));
        CHECK(sumop == MPI_OP_NULL);
        CK(MPI_Wait(&r, MPI_STATUS_IGNORE));
        int n = world_size();
        CHECK(out[0] == n * (n - 1) / 2 && out[1] == n * (n - 1) && out[2] == 3 * n);
        say("iallreduce with its user op freed before the wait: %d %d %d", out[0], out[1], out[2]);
    }

    return finish_ok();
}
