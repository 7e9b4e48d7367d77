/* ranks: 4 */
/* ferry-test-skip: regroup20@mpich-deb MPICH 4.0.2 segfaults inside MPI_Comm_create_group (address 0x8) once a regroup has happened, every run (FERRY_REGROUP="rank=1,after=40"); MPICH 5.0.2 and Open MPI pass: issue 17 */
/* MPI_Comm_create_group, collective over the group only, in a loop over
 * changing groups (as MPICH's comm/comm_group_rand): the ranks outside a
 * group go on meanwhile, so while one member waits inside the call for
 * another, that other may be anywhere, and a regroup or move must bring
 * it there before it freezes. Two tags on one parent, the same group
 * again, a group of one, and a communicator made of one such group on
 * which the loop runs as well. */
#include "common.h"

#define LOOPS 40

/* A deterministic sequence of groups: bit r of the mask is world rank r. */
static unsigned next_mask(unsigned *x, int size)
{
    *x = *x * 1103515245u + 12345u;
    unsigned m = (*x >> 16) & ((1u << size) - 1);
    return m ? m : 1u;
}

static MPI_Group group_of(MPI_Comm parent, unsigned mask, int *count)
{
    MPI_Group all, sub;
    int size, ranks[32], n = 0;
    CK(MPI_Comm_size(parent, &size));
    for (int r = 0; r < size; r++)
        if (mask & (1u << r))
            ranks[n++] = r;
    CK(MPI_Comm_group(parent, &all));
    CK(MPI_Group_incl(all, n, ranks, &sub));
    CK(MPI_Group_free(&all));
    *count = n;
    return sub;
}

/* One pass of the loop on `parent` (ranks of `parent` in the masks);
 * returns this rank's checksum of what it saw. */
static long loop_on(MPI_Comm parent, unsigned seed)
{
    int rank, size;
    CK(MPI_Comm_rank(parent, &rank));
    CK(MPI_Comm_size(parent, &size));
    unsigned x = seed;
    long sum = 0;
    for (int j = 0; j < LOOPS; j++) {
        unsigned mask = next_mask(&x, size);
        int n = 0;
        MPI_Group g = group_of(parent, mask, &n);
        if (mask & (1u << rank)) {
            MPI_Comm c;
            /* Two tags on one parent: both made in this order. */
            CK(MPI_Comm_create_group(parent, g, 10 + j % 2, &c));
            int crank = -1, csize = 0, total = 0;
            CK(MPI_Comm_rank(c, &crank));
            CK(MPI_Comm_size(c, &csize));
            CHECK(csize == n);
            CK(MPI_Allreduce(&rank, &total, 1, MPI_INT, MPI_SUM, c));
            int want = 0;
            for (int r = 0; r < size; r++)
                if (mask & (1u << r))
                    want += r;
            CHECK(total == want);
            sum += total * (j + 1) + crank;
            CK(MPI_Comm_free(&c));
        } else if (j % 5 == 0) {
            /* Outside the group: a ring over the ranks outside it too
             * (if more than one), while the group makes its own. */
            int next = -1, prev = -1;
            for (int d = 1; d < size && next < 0; d++)
                if (!(mask & (1u << ((rank + d) % size))))
                    next = (rank + d) % size;
            for (int d = 1; d < size && prev < 0; d++)
                if (!(mask & (1u << ((rank - d + size) % size))))
                    prev = (rank - d + size) % size;
            if (next >= 0) {
                int got = -1;
                CK(MPI_Sendrecv(&j, 1, MPI_INT, next, j, &got, 1, MPI_INT, prev, j, parent,
                                MPI_STATUS_IGNORE));
                CHECK(got == j);
                sum += got + prev;
            }
        }
        CK(MPI_Group_free(&g));
    }
    return sum;
}

int main(int argc, char **argv)
{
    CK(MPI_Init(&argc, &argv));
    need_ranks(4);
    int rank = world_rank();
    long a = loop_on(MPI_COMM_WORLD, 7);
    CK(MPI_Barrier(MPI_COMM_WORLD));

    /* A communicator of ranks 1..3 made by its members only, and the
     * loop again on it. */
    MPI_Group g;
    int n = 0;
    g = group_of(MPI_COMM_WORLD, 0xEu, &n);
    long b = 0;
    if (rank != 0) {
        MPI_Comm sub;
        CK(MPI_Comm_create_group(MPI_COMM_WORLD, g, 99, &sub));
        b = loop_on(sub, 11);
        CK(MPI_Comm_free(&sub));
    }
    CK(MPI_Group_free(&g));
    CK(MPI_Barrier(MPI_COMM_WORLD));

    /* A group of one, many times. */
    MPI_Group self_g = group_of(MPI_COMM_WORLD, 1u << rank, &n);
    long c = 0;
    for (int i = 0; i < 10; i++) {
        MPI_Comm one;
        CK(MPI_Comm_create_group(MPI_COMM_WORLD, self_g, 5, &one));
        int s = 0;
        CK(MPI_Comm_size(one, &s));
        c += s;
        CK(MPI_Comm_free(&one));
    }
    CK(MPI_Group_free(&self_g));
    CK(MPI_Barrier(MPI_COMM_WORLD));
    say_all("world %ld sub %ld self %ld", a, b, c);
    CK(MPI_Barrier(MPI_COMM_WORLD));
    return finish_ok();
}
