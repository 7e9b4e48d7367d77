/* ranks: 4 */
/* ferry-test-skip: swap one barrier on the world, at its end (the switch fires at the 2nd) */
/* ferry-test-skip: regroup20@mpich-deb a regroup sometimes never completes: 2 of 6 runs before MPI_Intercomm_create's leaders were counted as a group collective, 2 of 16 after (the job hangs at its second regroup); MPICH 5.0.2 passes 5 of 5: issue 17 */
/* Intercommunicators: Intercomm_create between the two halves of the world,
 * Comm_test_inter, Comm_remote_size/group, point-to-point across, Bcast with
 * MPI_ROOT/MPI_PROC_NULL, Allreduce and Allgather across, Comm_dup of an
 * intercomm, Intercomm_merge (both high settings). */
#include "common.h"

int main(int argc, char **argv)
{
    CK(MPI_Init(&argc, &argv));
    need_ranks(4);
    int rank = world_rank(), size = world_size();
    const MPI_Comm W = MPI_COMM_WORLD;
    char buf[128];

    int color = rank < size / 2 ? 0 : 1;
    MPI_Comm half, inter;
    CK(MPI_Comm_split(W, color, rank, &half));
    int remote_leader = color == 0 ? size / 2 : 0;
    CK(MPI_Intercomm_create(half, 0, W, remote_leader, 42, &inter));

    int is_inter, lsize, rsize, lrank;
    CK(MPI_Comm_test_inter(inter, &is_inter));
    CK(MPI_Comm_size(inter, &lsize));
    CK(MPI_Comm_remote_size(inter, &rsize));
    CK(MPI_Comm_rank(inter, &lrank));
    CHECK(is_inter && lsize == 2 && rsize == 2);
    MPI_Group rg, wg;
    CK(MPI_Comm_remote_group(inter, &rg));
    CK(MPI_Comm_group(W, &wg));
    int rr[2] = {0, 1}, rw[2];
    CK(MPI_Group_translate_ranks(rg, 2, rr, wg, rw));
    say("intercomm:");
    say_all("group=%d local rank=%d local size=%d remote size=%d remote world ranks=%d %d", color,
            lrank, lsize, rsize, rw[0], rw[1]);

    /* p2p: local rank i exchanges with remote rank i */
    int out = 1000 * color + lrank, in = -1;
    MPI_Status st;
    CK(MPI_Sendrecv(&out, 1, MPI_INT, lrank, 5, &in, 1, MPI_INT, lrank, 5, inter, &st));
    CHECK(in == 1000 * (1 - color) + lrank && st.MPI_SOURCE == lrank);
    /* and a one-way message with ANY_SOURCE: group 0 rank 1 -> group 1 */
    int any = -1;
    if (color == 0 && lrank == 1) {
        int v = 77;
        CK(MPI_Send(&v, 1, MPI_INT, 0, 6, inter));
        CK(MPI_Send(&v, 1, MPI_INT, 1, 6, inter));
    } else if (color == 1) {
        CK(MPI_Recv(&any, 1, MPI_INT, MPI_ANY_SOURCE, 6, inter, &st));
        CHECK(any == 77 && st.MPI_SOURCE == 1);
    }
    say("p2p across:");
    say_all("sendrecv got %d, any_source got %d", in, any);

    /* Bcast rooted at group 0's rank 1 */
    int bc[3] = {0, 0, 0};
    if (color == 0) {
        if (lrank == 1) {
            bc[0] = 5;
            bc[1] = 6;
            bc[2] = 7;
        }
        CK(MPI_Bcast(bc, 3, MPI_INT, lrank == 1 ? MPI_ROOT : MPI_PROC_NULL, inter));
    } else {
        CK(MPI_Bcast(bc, 3, MPI_INT, 1, inter));
        CHECK(bc[0] == 5 && bc[2] == 7);
    }
    say("bcast from group 0 rank 1:");
    say_all("%s", fmt_ints(buf, sizeof buf, bc, 3));

    /* Allreduce: each side gets the reduction of the other side */
    int av = rank * rank + 1, ares = -1;
    CK(MPI_Allreduce(&av, &ares, 1, MPI_INT, MPI_SUM, inter));
    CHECK(ares == (color == 0 ? 5 + 10 : 1 + 2));
    /* Allgather: remote group's values */
    int ag[2] = {-1, -1};
    CK(MPI_Allgather(&av, 1, MPI_INT, ag, 1, MPI_INT, inter));
    say("allreduce / allgather across:");
    say_all("%d / %d %d", ares, ag[0], ag[1]);

    /* barrier across and a dup of the intercomm */
    CK(MPI_Barrier(inter));
    MPI_Comm idup;
    CK(MPI_Comm_dup(inter, &idup));
    int dres = -1;
    CK(MPI_Allreduce(&out, &dres, 1, MPI_INT, MPI_MAX, idup));
    CK(MPI_Comm_test_inter(idup, &is_inter));
    CHECK(is_inter);
    say("dup of intercomm, allreduce max:");
    say_all("%d", dres);

    /* merge with group 1 high, then with group 0 high */
    MPI_Comm m1, m2;
    CK(MPI_Intercomm_merge(inter, color, &m1));
    CK(MPI_Intercomm_merge(idup, 1 - color, &m2));
    int r1, r2, s1;
    CK(MPI_Comm_rank(m1, &r1));
    CK(MPI_Comm_rank(m2, &r2));
    CK(MPI_Comm_size(m1, &s1));
    CHECK(s1 == 4 && r1 == rank && r2 == (rank + 2) % 4);
    int msum = -1;
    CK(MPI_Allreduce(&r2, &msum, 1, MPI_INT, MPI_SUM, m2));
    /* rank 0 of m2 broadcasts a value */
    int mb = r2 == 0 ? 4321 : 0;
    CK(MPI_Bcast(&mb, 1, MPI_INT, 0, m2));
    CHECK(mb == 4321 && msum == 6);
    say("merge:");
    say_all("rank in merge(g1 high)=%d in merge(g0 high)=%d bcast=%d", r1, r2, mb);

    CK(MPI_Group_free(&rg));
    CK(MPI_Group_free(&wg));
    CK(MPI_Comm_free(&m1));
    CK(MPI_Comm_free(&m2));
    CK(MPI_Comm_free(&idup));
    CK(MPI_Comm_free(&inter));
    CK(MPI_Comm_free(&half));
    return finish_ok();
}
