/* ranks: 4 */
/* MPI_ANY_SOURCE and MPI_ANY_TAG receives (blocking, nonblocking, Sendrecv).
 * Arrival order between senders is not deterministic, so received items are
 * checked (per-sender order must follow send order) and printed sorted. */
#include "common.h"

#define PER 4

struct item {
    int src, tag, val;
};

static int cmp_item(const void *a, const void *b)
{
    const struct item *x = a, *y = b;
    if (x->src != y->src)
        return (x->src > y->src) - (x->src < y->src);
    return (x->tag > y->tag) - (x->tag < y->tag);
}

int main(int argc, char **argv)
{
    CK(MPI_Init(&argc, &argv));
    need_ranks(4);
    int rank = world_rank(), size = world_size();
    MPI_Status st;

    /* 1. blocking Recv(ANY_SOURCE, ANY_TAG): ranks 1..3 send PER messages each */
    if (rank == 0) {
        struct item items[3 * PER];
        int last_tag[4] = {-1, -1, -1, -1};
        for (int i = 0; i < 3 * PER; i++) {
            int v;
            CK(MPI_Recv(&v, 1, MPI_INT, MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &st));
            CHECK(st.MPI_SOURCE >= 1 && st.MPI_SOURCE < size);
            CHECK(v == st.MPI_SOURCE * 1000 + st.MPI_TAG);
            /* non-overtaking: tags from one sender arrive in send order */
            CHECK(st.MPI_TAG > last_tag[st.MPI_SOURCE]);
            last_tag[st.MPI_SOURCE] = st.MPI_TAG;
            items[i].src = st.MPI_SOURCE;
            items[i].tag = st.MPI_TAG;
            items[i].val = v;
        }
        qsort(items, 3 * PER, sizeof items[0], cmp_item);
        say("recv any/any (sorted):");
        for (int i = 0; i < 3 * PER; i++)
            say("  src=%d tag=%d val=%d", items[i].src, items[i].tag, items[i].val);
    } else {
        for (int k = 0; k < PER; k++) {
            int tag = rank * 10 + k;
            int v = rank * 1000 + tag;
            CK(MPI_Send(&v, 1, MPI_INT, 0, tag, MPI_COMM_WORLD));
        }
    }

    /* nothing later may be matched by rank 0's any/any receives above */
    CK(MPI_Barrier(MPI_COMM_WORLD));

    /* 2. Irecv(ANY_SOURCE, fixed tag) + Waitall at rank 2 */
    if (rank == 2) {
        MPI_Request reqs[3];
        MPI_Status sts[3];
        int vals[3];
        for (int i = 0; i < 3; i++)
            CK(MPI_Irecv(&vals[i], 1, MPI_INT, MPI_ANY_SOURCE, 77, MPI_COMM_WORLD, &reqs[i]));
        CK(MPI_Waitall(3, reqs, sts));
        int srcs[3];
        for (int i = 0; i < 3; i++) {
            CHECK(sts[i].MPI_TAG == 77 && vals[i] == sts[i].MPI_SOURCE + 500);
            srcs[i] = sts[i].MPI_SOURCE;
        }
        qsort(srcs, 3, sizeof(int), cmp_int);
        CHECK(srcs[0] == 0 && srcs[1] == 1 && srcs[2] == 3);
        CK(MPI_Send(srcs, 3, MPI_INT, 0, 78, MPI_COMM_WORLD));
    } else {
        int v = rank + 500;
        CK(MPI_Send(&v, 1, MPI_INT, 2, 77, MPI_COMM_WORLD));
    }
    if (rank == 0) {
        int srcs[3];
        char buf[64];
        CK(MPI_Recv(srcs, 3, MPI_INT, 2, 78, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
        say("irecv any_source at rank 2: sources (sorted) %s", fmt_ints(buf, sizeof buf, srcs, 3));
    }

    /* 3. Recv(fixed source, ANY_TAG): tags come in send order */
    if (rank == 3) {
        int tags[3] = {5, 2, 9};
        for (int i = 0; i < 3; i++)
            CK(MPI_Send(&tags[i], 1, MPI_INT, 1, tags[i], MPI_COMM_WORLD));
    } else if (rank == 1) {
        int got[3];
        for (int i = 0; i < 3; i++) {
            int v;
            CK(MPI_Recv(&v, 1, MPI_INT, 3, MPI_ANY_TAG, MPI_COMM_WORLD, &st));
            CHECK(v == st.MPI_TAG && st.MPI_SOURCE == 3);
            got[i] = st.MPI_TAG;
        }
        CHECK(got[0] == 5 && got[1] == 2 && got[2] == 9);
    }
    say("recv from 3 with any_tag: tags 5 2 9 in send order");

    /* 4. Sendrecv with ANY_SOURCE/ANY_TAG on the receive side */
    int right = (rank + 1) % size;
    int out = rank * 3 + 1, in = -1;
    CK(MPI_Sendrecv(&out, 1, MPI_INT, right, 40 + rank, &in, 1, MPI_INT, MPI_ANY_SOURCE,
                    MPI_ANY_TAG, MPI_COMM_WORLD, &st));
    int left = (rank + size - 1) % size;
    CHECK(st.MPI_SOURCE == left && st.MPI_TAG == 40 + left && in == left * 3 + 1);
    say("sendrecv any/any:");
    say_all("src=%d tag=%d val=%d", st.MPI_SOURCE, st.MPI_TAG, in);

    return finish_ok();
}
