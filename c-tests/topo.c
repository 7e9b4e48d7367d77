/* ranks: 4 */
/* ferry-test-skip: swap one barrier on the world, at its end (the switch fires at the 2nd) */
/* Process topologies: Dims_create, Cart_create/get/coords/rank/shift/sub,
 * Cartdim_get, Topo_test, Graph_create/neighbors, Dist_graph_create_adjacent
 * and Dist_graph_create with neighbor collectives (blocking and
 * nonblocking). */
#include "common.h"

static const char *topo_name(int t)
{
    if (t == MPI_CART)
        return "CART";
    if (t == MPI_GRAPH)
        return "GRAPH";
    if (t == MPI_DIST_GRAPH)
        return "DIST_GRAPH";
    if (t == MPI_UNDEFINED)
        return "UNDEFINED";
    return "?";
}

struct pair {
    int src, val;
};

static int cmp_pair(const void *a, const void *b)
{
    const struct pair *x = a, *y = b;
    if (x->src != y->src)
        return (x->src > y->src) - (x->src < y->src);
    return (x->val > y->val) - (x->val < y->val);
}

int main(int argc, char **argv)
{
    CK(MPI_Init(&argc, &argv));
    need_ranks(4);
    int rank = world_rank(), size = world_size();
    const MPI_Comm W = MPI_COMM_WORLD;
    char buf[256], b2[128];
    int t;

    /* Cartesian 2x2, periodic in dim 0 only */
    int dims[2] = {0, 0};
    CK(MPI_Dims_create(size, 2, dims));
    CHECK(dims[0] == 2 && dims[1] == 2);
    int periods[2] = {1, 0};
    MPI_Comm cart;
    CK(MPI_Cart_create(W, 2, dims, periods, 0, &cart));
    CK(MPI_Topo_test(cart, &t));
    CHECK(t == MPI_CART);
    int ndims, cdims[2], cper[2], coords[2], crank, mycoords[2];
    CK(MPI_Cartdim_get(cart, &ndims));
    CK(MPI_Cart_get(cart, 2, cdims, cper, mycoords));
    CK(MPI_Comm_rank(cart, &crank));
    CK(MPI_Cart_coords(cart, crank, 2, coords));
    CHECK(ndims == 2 && coords[0] == mycoords[0] && coords[1] == mycoords[1]);
    int back;
    CK(MPI_Cart_rank(cart, coords, &back));
    CHECK(back == crank);
    int s0, d0, s1, d1;
    CK(MPI_Cart_shift(cart, 0, 1, &s0, &d0));
    CK(MPI_Cart_shift(cart, 1, 1, &s1, &d1));
    /* shift values along both dims with Sendrecv; PROC_NULL at the edges */
    int v0 = -1, v1 = -1, mine = 10 * crank + 1;
    CK(MPI_Sendrecv(&mine, 1, MPI_INT, d0, 1, &v0, 1, MPI_INT, s0, 1, cart, MPI_STATUS_IGNORE));
    CK(MPI_Sendrecv(&mine, 1, MPI_INT, d1, 2, &v1, 1, MPI_INT, s1, 2, cart, MPI_STATUS_IGNORE));
    say("cart %dx%d periods %d,%d:", cdims[0], cdims[1], cper[0], cper[1]);
    say_all("coords=(%d,%d) shift0 src=%d dst=%d got=%d shift1 src=%d dst=%d got=%d", coords[0],
            coords[1], s0, d0, v0, s1 < 0 ? -1 : s1, d1 < 0 ? -1 : d1, v1);
    /* periodic wrap with a larger displacement */
    int ws, wd;
    CK(MPI_Cart_shift(cart, 0, 3, &ws, &wd));
    CHECK(ws == wd);

    /* Cart_sub: keep dim 1 -> rows */
    int keep[2] = {0, 1};
    MPI_Comm row;
    CK(MPI_Cart_sub(cart, keep, &row));
    int rsize, rrank, rsum;
    CK(MPI_Comm_size(row, &rsize));
    CK(MPI_Comm_rank(row, &rrank));
    CK(MPI_Allreduce(&mine, &rsum, 1, MPI_INT, MPI_SUM, row));
    CK(MPI_Topo_test(row, &t));
    say("cart_sub rows:");
    say_all("row rank=%d size=%d sum=%d topo=%s", rrank, rsize, rsum, topo_name(t));

    /* neighbor collectives on the cart: order is (dim0 -, dim0 +, dim1 -, dim1 +) */
    int cn[4] = {-1, -1, -1, -1};
    CK(MPI_Neighbor_allgather(&mine, 1, MPI_INT, cn, 1, MPI_INT, cart));
    say("cart neighbor_allgather (-1 = PROC_NULL, untouched):");
    say_all("%s", fmt_ints(buf, sizeof buf, cn, 4));

    /* Graph: a ring, each node linked to both neighbours */
    int index[4], edges[8];
    for (int i = 0; i < 4; i++) {
        index[i] = 2 * (i + 1);
        edges[2 * i] = (i + 3) % 4;
        edges[2 * i + 1] = (i + 1) % 4;
    }
    MPI_Comm graph;
    CK(MPI_Graph_create(W, 4, index, edges, 0, &graph));
    CK(MPI_Topo_test(graph, &t));
    CHECK(t == MPI_GRAPH);
    int nn, nbrs[4], nnodes, nedges;
    CK(MPI_Graphdims_get(graph, &nnodes, &nedges));
    CK(MPI_Graph_neighbors_count(graph, rank, &nn));
    CK(MPI_Graph_neighbors(graph, rank, 4, nbrs));
    CHECK(nnodes == 4 && nedges == 8 && nn == 2);
    int gn[2];
    CK(MPI_Neighbor_allgather(&mine, 1, MPI_INT, gn, 1, MPI_INT, graph));
    CHECK(gn[0] == 10 * nbrs[0] + 1 && gn[1] == 10 * nbrs[1] + 1);
    say("graph ring: nodes=%d edges=%d", nnodes, nedges);
    say_all("neighbors %s got %s", fmt_ints(b2, sizeof b2, nbrs, nn), fmt_ints(buf, sizeof buf, gn, 2));

    /* Dist_graph_create_adjacent: r receives from r-1 and r+2, sends to r+1
     * and r-2 (mod 4) */
    int srcs[2] = {(rank + 3) % 4, (rank + 2) % 4}, dsts[2] = {(rank + 1) % 4, (rank + 2) % 4};
    int sw[2] = {1, 1}, dw[2] = {1, 1};
    MPI_Comm dg;
    CK(MPI_Dist_graph_create_adjacent(W, 2, srcs, sw, 2, dsts, dw, MPI_INFO_NULL, 0, &dg));
    CK(MPI_Topo_test(dg, &t));
    CHECK(t == MPI_DIST_GRAPH);
    int indeg, outdeg, weighted, qs[2], qsw[2], qd[2], qdw[2];
    CK(MPI_Dist_graph_neighbors_count(dg, &indeg, &outdeg, &weighted));
    CK(MPI_Dist_graph_neighbors(dg, 2, qs, qsw, 2, qd, qdw));
    CHECK(indeg == 2 && outdeg == 2 && qs[0] == srcs[0] && qd[1] == dsts[1]);
    int ag[2] = {-1, -1};
    CK(MPI_Neighbor_allgather(&mine, 1, MPI_INT, ag, 1, MPI_INT, dg));
    CHECK(ag[0] == 10 * srcs[0] + 1 && ag[1] == 10 * srcs[1] + 1);
    /* Neighbor_alltoall: a distinct value per destination */
    int a2as[2] = {rank * 100 + dsts[0], rank * 100 + dsts[1]}, a2ar[2] = {-1, -1};
    CK(MPI_Neighbor_alltoall(a2as, 1, MPI_INT, a2ar, 1, MPI_INT, dg));
    CHECK(a2ar[0] == srcs[0] * 100 + rank && a2ar[1] == srcs[1] * 100 + rank);
    /* Neighbor_allgatherv: two items from each source, placed in reverse
     * source order */
    int two[2] = {mine, mine + 1}, agv[4] = {-1, -1, -1, -1}, gvc[2] = {2, 2}, gvd[2] = {2, 0};
    CK(MPI_Neighbor_allgatherv(two, 2, MPI_INT, agv, gvc, gvd, MPI_INT, dg));
    CHECK(agv[2] == ag[0] && agv[0] == ag[1] && agv[1] == ag[1] + 1);
    /* Neighbor_alltoallv: 1 item from the first source, 2 from the second */
    int rc[2] = {1, 2}, rd[2] = {0, 1};
    int avs[3] = {rank, rank * 2, rank * 3}, sc[2] = {1, 2}, sd[2] = {0, 1}, avr[3] = {-1, -1, -1};
    /* what r sends to d must match what d expects from r: d expects 1 item
     * from its first source (d-1 == r when d = r+1) and 2 from its second
     * (d-2 == r when d = r+2); dsts are (r+1, r+2), so counts (1, 2) match */
    CK(MPI_Neighbor_alltoallv(avs, sc, sd, MPI_INT, avr, rc, rd, MPI_INT, dg));
    CHECK(avr[0] == srcs[0] && avr[1] == 2 * srcs[1] && avr[2] == 3 * srcs[1]);
    /* nonblocking neighbor collectives */
    MPI_Request r;
    int iag[2] = {-1, -1}, ia2a[2] = {-1, -1};
    CK(MPI_Ineighbor_allgather(&mine, 1, MPI_INT, iag, 1, MPI_INT, dg, &r));
    CK(MPI_Wait(&r, MPI_STATUS_IGNORE));
    CK(MPI_Ineighbor_alltoall(a2as, 1, MPI_INT, ia2a, 1, MPI_INT, dg, &r));
    int flag = 0;
    while (!flag)
        CK(MPI_Test(&r, &flag, MPI_STATUS_IGNORE));
    CHECK(iag[0] == ag[0] && iag[1] == ag[1] && ia2a[0] == a2ar[0] && ia2a[1] == a2ar[1]);
    say("dist_graph_adjacent (sources r-1, r+2):");
    say_all("allgather %d %d alltoall %d %d allgatherv %s alltoallv %d %d %d", ag[0], ag[1],
            a2ar[0], a2ar[1], fmt_ints(buf, sizeof buf, agv, 4), avr[0], avr[1], avr[2]);

    /* Dist_graph_create (non-adjacent): rank r declares edges r -> (r+1)
     * and r -> (r+3). Neighbor order is implementation-defined, so the
     * received values are paired with the source list and sorted. */
    int src1[1] = {rank}, deg1[1] = {2}, dst1[2] = {(rank + 1) % 4, (rank + 3) % 4};
    MPI_Comm dg2;
    /* Open MPI's MPI_UNWEIGHTED is a fake pointer that trips gcc's array
     * bound warnings: go through a volatile variable */
    int *volatile unweighted = MPI_UNWEIGHTED;
    CK(MPI_Dist_graph_create(W, 1, src1, deg1, dst1, unweighted, MPI_INFO_NULL, 0, &dg2));
    CK(MPI_Dist_graph_neighbors_count(dg2, &indeg, &outdeg, &weighted));
    CHECK(indeg == 2 && outdeg == 2 && !weighted);
    int in2[2], out2[2];
    CK(MPI_Dist_graph_neighbors(dg2, 2, in2, unweighted, 2, out2, unweighted));
    int g2[2] = {-1, -1};
    CK(MPI_Neighbor_allgather(&mine, 1, MPI_INT, g2, 1, MPI_INT, dg2));
    struct pair pr[2] = {{in2[0], g2[0]}, {in2[1], g2[1]}};
    qsort(pr, 2, sizeof pr[0], cmp_pair);
    for (int i = 0; i < 2; i++)
        CHECK(pr[i].val == 10 * pr[i].src + 1);
    qsort(out2, 2, sizeof(int), cmp_int);
    say("dist_graph_create (r -> r+1, r+3), sorted by source:");
    say_all("from %d got %d, from %d got %d; out %d %d", pr[0].src, pr[0].val, pr[1].src, pr[1].val,
            out2[0], out2[1]);

    CK(MPI_Topo_test(W, &t));
    say("world topo: %s", topo_name(t));

    MPI_Comm all[] = {cart, row, graph, dg, dg2};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        CK(MPI_Comm_free(&all[i]));
    return finish_ok();
}
