/* ranks: 4 */
/* ferry-test-skip: swap one barrier on the world, at its end (the switch fires at the 2nd) */
/* Communicators and groups: Comm_split (also MPI_UNDEFINED), Comm_dup,
 * Comm_idup, Comm_create, Comm_create_group, Comm_split_type, Comm_compare,
 * Group incl/excl/range_incl/union/intersection/difference/translate_ranks/
 * compare, Comm_set_name/get_name, Comm_free. */
#include "common.h"

static const char *cmp_name(int c)
{
    if (c == MPI_IDENT)
        return "IDENT";
    if (c == MPI_CONGRUENT)
        return "CONGRUENT";
    if (c == MPI_SIMILAR)
        return "SIMILAR";
    if (c == MPI_UNEQUAL)
        return "UNEQUAL";
    return "?";
}

static int comm_sum(MPI_Comm c, int v)
{
    int s;
    CK(MPI_Allreduce(&v, &s, 1, MPI_INT, MPI_SUM, c));
    return s;
}

int main(int argc, char **argv)
{
    CK(MPI_Init(&argc, &argv));
    need_ranks(4);
    int rank = world_rank(), size = world_size();
    const MPI_Comm W = MPI_COMM_WORLD;
    char buf[256];
    int res;

    /* Comm_split by parity, key reverses the order */
    MPI_Comm par;
    CK(MPI_Comm_split(W, rank % 2, size - rank, &par));
    int prank, psize;
    CK(MPI_Comm_rank(par, &prank));
    CK(MPI_Comm_size(par, &psize));
    CHECK(psize == 2 && prank == (rank < 2 ? 1 : 0));
    int psum = comm_sum(par, rank);
    say("split by parity (reversed key):");
    say_all("color=%d rank=%d size=%d sum_of_world_ranks=%d", rank % 2, prank, psize, psum);

    /* split with MPI_UNDEFINED for rank 3 */
    MPI_Comm some;
    CK(MPI_Comm_split(W, rank == 3 ? MPI_UNDEFINED : 0, rank, &some));
    CHECK((rank == 3) == (some == MPI_COMM_NULL));
    int ssz = 0;
    if (some != MPI_COMM_NULL)
        CK(MPI_Comm_size(some, &ssz));
    say("split with UNDEFINED:");
    say_all("%s size=%d", some == MPI_COMM_NULL ? "COMM_NULL" : "member", ssz);

    /* Comm_dup, Comm_compare */
    MPI_Comm dup, dup2, similar;
    CK(MPI_Comm_dup(W, &dup));
    CK(MPI_Comm_dup(dup, &dup2));
    CK(MPI_Comm_split(W, 0, size - rank, &similar));
    int c1, c2, c3, c4, c5;
    CK(MPI_Comm_compare(W, W, &c1));
    CK(MPI_Comm_compare(W, dup, &c2));
    CK(MPI_Comm_compare(dup, dup2, &c3));
    CK(MPI_Comm_compare(W, similar, &c4));
    CK(MPI_Comm_compare(W, par, &c5));
    CHECK(c1 == MPI_IDENT && c2 == MPI_CONGRUENT && c3 == MPI_CONGRUENT && c4 == MPI_SIMILAR &&
          c5 == MPI_UNEQUAL);
    say("compare: world/world=%s world/dup=%s dup/dup2=%s world/reversed=%s world/split=%s",
        cmp_name(c1), cmp_name(c2), cmp_name(c3), cmp_name(c4), cmp_name(c5));
    /* messages on dup and world do not mix */
    if (rank == 0) {
        int a = 1, b = 2;
        CK(MPI_Send(&a, 1, MPI_INT, 1, 0, W));
        CK(MPI_Send(&b, 1, MPI_INT, 1, 0, dup));
    } else if (rank == 1) {
        int a, b;
        CK(MPI_Recv(&b, 1, MPI_INT, 0, 0, dup, MPI_STATUS_IGNORE));
        CK(MPI_Recv(&a, 1, MPI_INT, 0, 0, W, MPI_STATUS_IGNORE));
        CHECK(a == 1 && b == 2);
    }
    say("dup isolates traffic from world: yes");

    /* Comm_idup */
    MPI_Comm idup;
    MPI_Request r;
    CK(MPI_Comm_idup(par, &idup, &r));
    CK(MPI_Wait(&r, MPI_STATUS_IGNORE));
    CK(MPI_Comm_compare(par, idup, &res));
    CHECK(res == MPI_CONGRUENT);
    int isum = comm_sum(idup, 10 * rank);
    say("idup of parity comm:");
    say_all("compare=%s sum=%d", cmp_name(res), isum);

    /* Groups */
    MPI_Group wg, g_incl, g_excl, g_range, g_union, g_inter, g_diff;
    CK(MPI_Comm_group(W, &wg));
    int incl[3] = {3, 1, 2}, excl[1] = {0};
    int ranges[1][3] = {{0, 3, 2}}; /* 0, 2 */
    CK(MPI_Group_incl(wg, 3, incl, &g_incl));
    CK(MPI_Group_excl(wg, 1, excl, &g_excl));
    CK(MPI_Group_range_incl(wg, 1, ranges, &g_range));
    CK(MPI_Group_union(g_range, g_incl, &g_union));
    CK(MPI_Group_intersection(g_excl, g_range, &g_inter));
    CK(MPI_Group_difference(wg, g_range, &g_diff));
    int sizes[6];
    MPI_Group gs[6] = {g_incl, g_excl, g_range, g_union, g_inter, g_diff};
    for (int i = 0; i < 6; i++)
        CK(MPI_Group_size(gs[i], &sizes[i]));
    say("group sizes incl/excl/range/union/inter/diff: %s", fmt_ints(buf, sizeof buf, sizes, 6));
    const char *gnames[6] = {"incl", "excl", "range", "union", "inter", "diff"};
    int wranks[4] = {0, 1, 2, 3};
    for (int i = 0; i < 6; i++) {
        int tr[4];
        CK(MPI_Group_translate_ranks(wg, 4, wranks, gs[i], tr));
        for (int k = 0; k < 4; k++)
            if (tr[k] == MPI_UNDEFINED)
                tr[k] = -1;
        say("  world ranks 0..3 in %s: %s", gnames[i], fmt_ints(buf, sizeof buf, tr, 4));
    }
    int grank;
    CK(MPI_Group_rank(g_incl, &grank));
    CHECK(grank == (rank == 0 ? MPI_UNDEFINED : (rank == 3 ? 0 : rank)));
    int gc1, gc2, gc3;
    CK(MPI_Group_compare(g_union, wg, &gc1)); /* union = {0,2,3,1}: similar */
    CK(MPI_Group_compare(g_excl, g_excl, &gc2));
    CK(MPI_Group_compare(g_range, g_diff, &gc3));
    say("group compare: union/world=%s excl/excl=%s range/diff=%s", cmp_name(gc1), cmp_name(gc2),
        cmp_name(gc3));

    /* Comm_create with g_excl (world minus rank 0): collective over world */
    MPI_Comm cex;
    CK(MPI_Comm_create(W, g_excl, &cex));
    CHECK((rank == 0) == (cex == MPI_COMM_NULL));
    int cex_rank = -1, cex_sum = -1;
    if (cex != MPI_COMM_NULL) {
        CK(MPI_Comm_rank(cex, &cex_rank));
        cex_sum = comm_sum(cex, rank * rank);
    }
    say("comm_create (world minus 0):");
    say_all("rank=%d sum_sq=%d", cex_rank, cex_sum);

    /* Comm_create_group: only members of g_range ({0,2}) call it */
    MPI_Comm cg = MPI_COMM_NULL;
    int cg_rank = -1, cg_sum = -1;
    if (rank % 2 == 0) {
        CK(MPI_Comm_create_group(W, g_range, 7, &cg));
        CK(MPI_Comm_rank(cg, &cg_rank));
        cg_sum = comm_sum(cg, rank + 100);
    }
    say("comm_create_group {0,2}:");
    say_all("rank=%d sum=%d", cg_rank, cg_sum);

    /* Comm_split_type SHARED (one node here), and UNDEFINED */
    MPI_Comm shm, none;
    CK(MPI_Comm_split_type(W, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &shm));
    int shm_size;
    CK(MPI_Comm_size(shm, &shm_size));
    CHECK(shm_size == size);
    CK(MPI_Comm_split_type(W, MPI_UNDEFINED, rank, MPI_INFO_NULL, &none));
    CHECK(none == MPI_COMM_NULL);
    say("split_type shared: size=%d; UNDEFINED gives COMM_NULL", shm_size);

    /* names */
    char name[MPI_MAX_OBJECT_NAME];
    int len;
    CK(MPI_Comm_get_name(W, name, &len));
    CHECK(strcmp(name, "MPI_COMM_WORLD") == 0 && len == (int)strlen(name));
    say("world name: %s", name);
    CK(MPI_Comm_set_name(dup, "ferry-dup"));
    CK(MPI_Comm_get_name(dup, name, &len));
    CHECK(strcmp(name, "ferry-dup") == 0 && len == 9);
    CK(MPI_Comm_get_name(dup2, name, &len));
    say("set_name on dup: ferry-dup; dup2 name length %s", len == 0 ? "0" : ">0");
    snprintf(buf, sizeof buf, "parity-%d", rank % 2);
    CK(MPI_Comm_set_name(par, buf));
    CK(MPI_Comm_get_name(par, name, &len));
    say_all("parity comm name: %s", name);

    /* Comm_test_inter on an intracomm, Comm_get_parent (none) */
    int inter;
    MPI_Comm parent;
    CK(MPI_Comm_test_inter(dup, &inter));
    CK(MPI_Comm_get_parent(&parent));
    CHECK(!inter && parent == MPI_COMM_NULL);

    /* free everything */
    for (int i = 0; i < 6; i++)
        CK(MPI_Group_free(&gs[i]));
    CK(MPI_Group_free(&wg));
    CHECK(wg == MPI_GROUP_NULL);
    MPI_Comm comms[] = {par, some, dup, dup2, similar, idup, cex, cg, shm};
    for (size_t i = 0; i < sizeof comms / sizeof comms[0]; i++)
        if (comms[i] != MPI_COMM_NULL) {
            CK(MPI_Comm_free(&comms[i]));
            CHECK(comms[i] == MPI_COMM_NULL);
        }
    say("freed all");

    return finish_ok();
}
