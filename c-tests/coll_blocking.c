/* ranks: 4 */
/* Blocking collectives: Barrier, Bcast, Reduce (predefined, MAXLOC, user
 * ops commutative and not), Allreduce (also MPI_IN_PLACE), Reduce_local,
 * Gather(v), Scatter(v), Allgather(v) (also in place), Alltoall(v/w),
 * Reduce_scatter, Reduce_scatter_block, Scan, Exscan. */
#include "common.h"

/* non-commutative user op: 2x2 integer matrix product, a*b (mod 1000) */
static void matmul_op(void *in, void *inout, int *len, MPI_Datatype *dt)
{
    (void)dt;
    int *a = in, *b = inout;
    for (int k = 0; k < *len; k++, a += 4, b += 4) {
        int r[4];
        r[0] = (a[0] * b[0] + a[1] * b[2]) % 1000;
        r[1] = (a[0] * b[1] + a[1] * b[3]) % 1000;
        r[2] = (a[2] * b[0] + a[3] * b[2]) % 1000;
        r[3] = (a[2] * b[1] + a[3] * b[3]) % 1000;
        memcpy(b, r, sizeof r);
    }
}

/* commutative user op: bitwise xor */
static void xorop(void *in, void *inout, int *len, MPI_Datatype *dt)
{
    (void)dt;
    unsigned *a = in, *b = inout;
    for (int i = 0; i < *len; i++)
        b[i] ^= a[i];
}

int main(int argc, char **argv)
{
    CK(MPI_Init(&argc, &argv));
    need_ranks(4);
    int rank = world_rank(), size = world_size();
    char buf[256];
    const MPI_Comm W = MPI_COMM_WORLD;

    CK(MPI_Barrier(W));

    /* Bcast from root 2 */
    int b[4] = {0, 0, 0, 0};
    if (rank == 2)
        for (int i = 0; i < 4; i++)
            b[i] = 17 * (i + 1);
    CK(MPI_Bcast(b, 4, MPI_INT, 2, W));
    CHECK(b[3] == 68);
    say("bcast root 2:");
    say_all("%s", fmt_ints(buf, sizeof buf, b, 4));

    /* Reduce SUM and MAX to root 1; MAXLOC on DOUBLE_INT */
    int v[2] = {rank + 1, (rank * 7) % 5}, rs[2] = {-1, -1}, rm[2] = {-1, -1};
    CK(MPI_Reduce(v, rs, 2, MPI_INT, MPI_SUM, 1, W));
    CK(MPI_Reduce(v, rm, 2, MPI_INT, MPI_MAX, 1, W));
    struct {
        double val;
        int loc;
    } dl = {(double)((rank * 5) % 4), rank}, dlo = {-1.0, -1};
    CK(MPI_Reduce(&dl, &dlo, 1, MPI_DOUBLE_INT, MPI_MAXLOC, 1, W));
    if (rank == 1)
        CHECK(rs[0] == 10 && rm[0] == 4 && dlo.val == 3.0 && dlo.loc == 3);
    say("reduce to root 1 (sum, max, maxloc):");
    say_all("sum=%d,%d max=%d,%d maxloc=%.1f@%d", rs[0], rs[1], rm[0], rm[1], dlo.val, dlo.loc);

    /* Allreduce, then Allreduce with MPI_IN_PLACE */
    long long lv = 1LL << (10 + rank), lsum = 0;
    CK(MPI_Allreduce(&lv, &lsum, 1, MPI_LONG_LONG, MPI_SUM, W));
    CHECK(lsum == (1LL << 10) * 15);
    double dv[3] = {rank * 0.5, -rank, 1.0};
    CK(MPI_Allreduce(MPI_IN_PLACE, dv, 3, MPI_DOUBLE, MPI_SUM, W));
    CHECK(dv[0] == 3.0 && dv[1] == -6.0 && dv[2] == 4.0);
    int mn = 100 - rank;
    CK(MPI_Allreduce(MPI_IN_PLACE, &mn, 1, MPI_INT, MPI_MIN, W));
    CHECK(mn == 97);
    int land = rank < 10, bor = rank == 2 ? 4 : 1;
    CK(MPI_Allreduce(MPI_IN_PLACE, &land, 1, MPI_INT, MPI_LAND, W));
    CK(MPI_Allreduce(MPI_IN_PLACE, &bor, 1, MPI_INT, MPI_BOR, W));
    say("allreduce: llsum=%lld inplace=%.1f,%.1f,%.1f min=%d land=%d bor=%d", lsum, dv[0], dv[1],
        dv[2], mn, land, bor);

    /* user ops: non-commutative matrix product (rank order), commutative xor */
    MPI_Op matop, xop;
    CK(MPI_Op_create(matmul_op, 0, &matop));
    CK(MPI_Op_create(xorop, 1, &xop));
    MPI_Datatype mat;
    CK(MPI_Type_contiguous(4, MPI_INT, &mat));
    CK(MPI_Type_commit(&mat));
    int m[4] = {1, rank + 1, 0, 1}, mres[4];
    if (rank == 3) { /* make it really non-commutative */
        m[0] = 2;
        m[2] = 1;
    }
    CK(MPI_Allreduce(m, mres, 1, mat, matop, W));
    unsigned xv = 0x11u << rank, xres = 0;
    CK(MPI_Allreduce(&xv, &xres, 1, MPI_UNSIGNED, xop, W));
    int commute = -1;
    CK(MPI_Op_commutative(matop, &commute));
    CHECK(commute == 0);
    say("user ops: matprod=%d %d %d %d xor=0x%x", mres[0], mres[1], mres[2], mres[3], xres);
    /* Reduce_local with the user op: in*inout */
    int a4[4] = {1, 1, 0, 1}, b4[4] = {1, 0, 2, 1};
    CK(MPI_Reduce_local(a4, b4, 1, mat, matop));
    CHECK(b4[0] == 3 && b4[1] == 1 && b4[2] == 2 && b4[3] == 1);
    say("reduce_local: %d %d %d %d", b4[0], b4[1], b4[2], b4[3]);

    /* Gather to root 3, Gather with MPI_IN_PLACE at root 0 */
    int g[4] = {-1, -1, -1, -1}, mine = rank * rank + 1;
    CK(MPI_Gather(&mine, 1, MPI_INT, g, 1, MPI_INT, 3, W));
    say("gather to root 3:");
    if (rank == 3)
        say_all("%s", fmt_ints(buf, sizeof buf, g, 4));
    else
        say_all("-");
    int gi[4] = {-1, -1, -1, -1};
    gi[rank] = mine;
    if (rank == 0)
        CK(MPI_Gather(MPI_IN_PLACE, 1, MPI_INT, gi, 1, MPI_INT, 0, W));
    else
        CK(MPI_Gather(&mine, 1, MPI_INT, NULL, 1, MPI_INT, 0, W));
    if (rank == 0)
        CHECK(gi[0] == 1 && gi[1] == 2 && gi[2] == 5 && gi[3] == 10);
    say("gather in place at 0: %s", fmt_ints(buf, sizeof buf, gi, 4));

    /* Gatherv: rank r sends r+1 values, placed in reverse rank order */
    int gv_send[4], gv_recv[10], counts[4], displs[4];
    for (int i = 0; i <= rank; i++)
        gv_send[i] = rank * 10 + i;
    /* counts[r] = r+1; displs: rank 3 first, then 2, 1, 0 */
    for (int r = 0; r < size; r++)
        counts[r] = r + 1;
    for (int r = size - 1, off = 0; r >= 0; r--) {
        displs[r] = off;
        off += counts[r];
    }
    for (int i = 0; i < 10; i++)
        gv_recv[i] = -1;
    CK(MPI_Gatherv(gv_send, rank + 1, MPI_INT, gv_recv, counts, displs, MPI_INT, 0, W));
    say("gatherv at 0: %s", fmt_ints(buf, sizeof buf, gv_recv, 10));

    /* Scatter from root 1, Scatterv from root 2 (same layout as gatherv) */
    int sc_src[8], sc[2] = {-1, -1};
    for (int i = 0; i < 8; i++)
        sc_src[i] = 100 + i;
    CK(MPI_Scatter(sc_src, 2, MPI_INT, sc, 2, MPI_INT, 1, W));
    CHECK(sc[0] == 100 + 2 * rank && sc[1] == 101 + 2 * rank);
    int sv_src[10], sv[4] = {-1, -1, -1, -1};
    for (int i = 0; i < 10; i++)
        sv_src[i] = 200 + i;
    CK(MPI_Scatterv(sv_src, counts, displs, MPI_INT, sv, rank + 1, MPI_INT, 2, W));
    say("scatter/scatterv:");
    say_all("scatter %d %d scatterv %s", sc[0], sc[1], fmt_ints(buf, sizeof buf, sv, rank + 1));

    /* Allgather, Allgather in place, Allgatherv */
    int ag[4], agi[4];
    int x = (rank + 3) * 11;
    CK(MPI_Allgather(&x, 1, MPI_INT, ag, 1, MPI_INT, W));
    for (int r = 0; r < size; r++)
        CHECK(ag[r] == (r + 3) * 11);
    agi[rank] = -x;
    CK(MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, agi, 1, MPI_INT, W));
    for (int r = 0; r < size; r++)
        CHECK(agi[r] == -(r + 3) * 11);
    int agv[10];
    CK(MPI_Allgatherv(gv_send, rank + 1, MPI_INT, agv, counts, displs, MPI_INT, W));
    CHECK(agv[0] == 30 && agv[9] == 0);
    say("allgather: %s", fmt_ints(buf, sizeof buf, ag, 4));
    say("allgatherv: %s", fmt_ints(buf, sizeof buf, agv, 10));

    /* Alltoall */
    int a2a_s[4], a2a_r[4];
    for (int p = 0; p < size; p++)
        a2a_s[p] = rank * 10 + p;
    CK(MPI_Alltoall(a2a_s, 1, MPI_INT, a2a_r, 1, MPI_INT, W));
    for (int p = 0; p < size; p++)
        CHECK(a2a_r[p] == p * 10 + rank);
    say("alltoall:");
    say_all("%s", fmt_ints(buf, sizeof buf, a2a_r, 4));

    /* Alltoallv: rank r sends p+1 items to rank p */
    int scounts[4], sdispl[4], rcounts[4], rdispl[4], avs[10], avr[16];
    for (int p = 0, off = 0; p < size; p++) {
        scounts[p] = p + 1;
        sdispl[p] = off;
        for (int i = 0; i < p + 1; i++)
            avs[off + i] = rank * 100 + p * 10 + i;
        off += p + 1;
    }
    for (int p = 0; p < size; p++) {
        rcounts[p] = rank + 1;
        rdispl[p] = p * 4;
    }
    for (int i = 0; i < 16; i++)
        avr[i] = -1;
    CK(MPI_Alltoallv(avs, scounts, sdispl, MPI_INT, avr, rcounts, rdispl, MPI_INT, W));
    long long avsum = 0;
    for (int p = 0; p < size; p++)
        for (int i = 0; i <= rank; i++) {
            CHECK(avr[p * 4 + i] == p * 100 + rank * 10 + i);
            avsum += avr[p * 4 + i];
        }
    say("alltoallv:");
    say_all("sum=%lld", avsum);

    /* Alltoallw: one int to each rank, received at byte displacements in
     * reverse rank order */
    int ws[4], wr[4] = {-1, -1, -1, -1}, wsc[4], wrc[4], wsd[4], wrd[4];
    MPI_Datatype wst[4], wrt[4];
    for (int p = 0; p < size; p++) {
        ws[p] = 1000 + rank * 10 + p;
        wsc[p] = wrc[p] = 1;
        wsd[p] = p * (int)sizeof(int);
        wrd[p] = (size - 1 - p) * (int)sizeof(int);
        wst[p] = wrt[p] = MPI_INT;
    }
    CK(MPI_Alltoallw(ws, wsc, wsd, wst, wr, wrc, wrd, wrt, W));
    for (int p = 0; p < size; p++)
        CHECK(wr[size - 1 - p] == 1000 + p * 10 + rank);
    say("alltoallw (reversed placement):");
    say_all("%s", fmt_ints(buf, sizeof buf, wr, 4));

    /* Reduce_scatter_block and Reduce_scatter */
    int rsb_s[8], rsb_r[2];
    for (int i = 0; i < 8; i++)
        rsb_s[i] = rank * 8 + i;
    CK(MPI_Reduce_scatter_block(rsb_s, rsb_r, 2, MPI_INT, MPI_SUM, W));
    int rsc[4] = {1, 2, 3, 4}, rs_s[10], rs_r[4] = {-1, -1, -1, -1};
    for (int i = 0; i < 10; i++)
        rs_s[i] = i * (rank + 1);
    CK(MPI_Reduce_scatter(rs_s, rs_r, rsc, MPI_INT, MPI_SUM, W));
    say("reduce_scatter_block / reduce_scatter:");
    say_all("block %d %d  v %s", rsb_r[0], rsb_r[1], fmt_ints(buf, sizeof buf, rs_r, rank + 1));

    /* Scan and Exscan */
    int sval = rank * 2 + 1, scan = -1, exscan = -1;
    CK(MPI_Scan(&sval, &scan, 1, MPI_INT, MPI_SUM, W));
    CK(MPI_Exscan(&sval, &exscan, 1, MPI_INT, MPI_SUM, W));
    CHECK(scan == (rank + 1) * (rank + 1));
    if (rank > 0)
        CHECK(exscan == rank * rank);
    else
        exscan = 0; /* undefined on rank 0 */
    int mscan[4];
    CK(MPI_Scan(m, mscan, 1, mat, matop, W));
    say("scan / exscan / matrix scan:");
    say_all("scan=%d exscan=%d mat=%d %d %d %d", scan, exscan, mscan[0], mscan[1], mscan[2],
            mscan[3]);

    CK(MPI_Type_free(&mat));
    CK(MPI_Op_free(&matop));
    CK(MPI_Op_free(&xop));
    return finish_ok();
}
