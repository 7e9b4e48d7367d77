/* ranks: 4 */
/* ferry-test-refuses: attribute keyval */
/* Several hundred MPI_Barrier calls on MPI_COMM_WORLD interleaved with
 * communication on derived communicators made before the loop (split, dup,
 * cart, intercomm, Comm_create) and during it (after many barriers), plus a
 * receive that stays pending across most of the barriers. ferry's test switch
 * can swap the world communicator underneath at the N-th barrier: every
 * derived communicator must keep working and give the same results. */
#include "common.h"

#define ITERS 210
#define LATE_AT 100
#define PENDING_POST 10
#define PENDING_SEND 180

static unsigned mix(unsigned acc, int v) { return acc * 31u + (unsigned)v + 7u; }

int main(int argc, char **argv)
{
    CK(MPI_Init(&argc, &argv));
    need_ranks(4);
    const MPI_Comm W = MPI_COMM_WORLD;
    int rank = world_rank(), size = world_size();

    /* derived communicators, before the loop */
    MPI_Comm split, dup, cart, half, inter, created;
    CK(MPI_Comm_split(W, rank % 2, -rank, &split)); /* reversed order inside */
    CK(MPI_Comm_dup(W, &dup));
    /* a name and an attribute that must stay with the communicator when
     * the library rebuilds it underneath */
    static int attr_value = 77;
    int key;
    CK(MPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, MPI_COMM_NULL_DELETE_FN, &key, NULL));
    CK(MPI_Comm_set_attr(dup, key, &attr_value));
    CK(MPI_Comm_set_name(dup, "the-dup"));
    int dims[1] = {size}, periods[1] = {1};
    CK(MPI_Cart_create(W, 1, dims, periods, 0, &cart));
    int color = rank < size / 2 ? 0 : 1;
    CK(MPI_Comm_split(W, color, rank, &half));
    CK(MPI_Intercomm_create(half, 0, W, color == 0 ? size / 2 : 0, 17, &inter));
    MPI_Group wg, g3;
    CK(MPI_Comm_group(W, &wg));
    int excl[1] = {1};
    CK(MPI_Group_excl(wg, 1, excl, &g3));
    CK(MPI_Comm_create(W, g3, &created)); /* ranks 0, 2, 3 */
    CHECK((rank == 1) == (created == MPI_COMM_NULL));

    int split_rank, half_rank, cart_src, cart_dst;
    CK(MPI_Comm_rank(split, &split_rank));
    CK(MPI_Comm_rank(half, &half_rank));
    CK(MPI_Cart_shift(cart, 0, 1, &cart_src, &cart_dst));

    /* a receive on dup posted early that is matched only late in the loop */
    int pending_val = -1;
    MPI_Request pending = MPI_REQUEST_NULL;

    MPI_Comm late_dup = MPI_COMM_NULL, late_split = MPI_COMM_NULL;
    unsigned acc = 0;
    int counts[9] = {0};
    for (int i = 0; i < ITERS; i++) {
        CK(MPI_Barrier(W));
        int wr, ws;
        CK(MPI_Comm_rank(W, &wr));
        CK(MPI_Comm_size(W, &ws));
        CHECK(wr == rank && ws == size);

        if (i == PENDING_POST)
            CK(MPI_Irecv(&pending_val, 1, MPI_INT, (rank + size - 1) % size, 999, dup, &pending));
        if (i == PENDING_SEND) {
            int v = 5000 + rank;
            CK(MPI_Send(&v, 1, MPI_INT, (rank + 1) % size, 999, dup));
        }
        if (i == LATE_AT) {
            CK(MPI_Comm_dup(W, &late_dup));
            CK(MPI_Comm_split(cart, rank / 2, rank, &late_split));
        }

        int v = 0, in = -1;
        switch (i % 7) {
        case 0: /* allreduce on the parity split */
            v = i + rank;
            CK(MPI_Allreduce(&v, &in, 1, MPI_INT, MPI_SUM, split));
            CHECK(in == 2 * i + (rank % 2 ? 4 : 2));
            break;
        case 1: { /* bcast on the dup from a rotating root */
            int root = (i / 7) % size;
            in = rank == root ? i * 7 + root : -1;
            CK(MPI_Bcast(&in, 1, MPI_INT, root, dup));
            CHECK(in == i * 7 + root);
            break;
        }
        case 2: /* shift along the periodic cart */
            v = i * 10 + rank;
            CK(MPI_Sendrecv(&v, 1, MPI_INT, cart_dst, i, &in, 1, MPI_INT, cart_src, i, cart,
                            MPI_STATUS_IGNORE));
            CHECK(in == i * 10 + (rank + size - 1) % size);
            break;
        case 3: /* p2p across the intercomm, same local rank on each side */
            v = i * 100 + rank;
            CK(MPI_Sendrecv(&v, 1, MPI_INT, half_rank, i, &in, 1, MPI_INT, half_rank, i, inter,
                            MPI_STATUS_IGNORE));
            CHECK(in == i * 100 + (rank + size / 2) % size);
            break;
        case 4: /* allreduce across the intercomm: sum of the other side */
            v = rank + 1;
            CK(MPI_Allreduce(&v, &in, 1, MPI_INT, MPI_SUM, inter));
            CHECK(in == (color == 0 ? 7 : 3));
            break;
        case 5: /* allgather on the Comm_create communicator */
            if (created != MPI_COMM_NULL) {
                int g[3];
                v = i + 3 * rank;
                CK(MPI_Allgather(&v, 1, MPI_INT, g, 1, MPI_INT, created));
                in = g[0] + 2 * g[1] + 3 * g[2];
                CHECK(in == 6 * i + 3 * (0 + 2 * 2 + 3 * 3));
            }
            break;
        case 6: /* world itself: ring shift */
            v = i + 1000 * rank;
            CK(MPI_Sendrecv(&v, 1, MPI_INT, (rank + 1) % size, 6, &in, 1, MPI_INT,
                            (rank + size - 1) % size, 6, W, MPI_STATUS_IGNORE));
            CHECK(in == i + 1000 * ((rank + size - 1) % size));
            break;
        }
        counts[i % 7]++;
        acc = mix(acc, in);

        if (i > LATE_AT && i % 10 == 3) { /* communicators made mid-loop */
            int a = rank * i, b = -1, c = -1;
            CK(MPI_Allreduce(&a, &b, 1, MPI_INT, MPI_MAX, late_dup));
            CK(MPI_Allreduce(&a, &c, 1, MPI_INT, MPI_SUM, late_split));
            CHECK(b == 3 * i && c == (rank < 2 ? 1 : 5) * i);
            acc = mix(mix(acc, b), c);
            counts[7]++;
        }
        if (pending != MPI_REQUEST_NULL && i < PENDING_SEND) {
            int flag;
            CK(MPI_Test(&pending, &flag, MPI_STATUS_IGNORE));
            CHECK(!flag); /* nobody has sent it yet */
        }
    }
    CK(MPI_Wait(&pending, MPI_STATUS_IGNORE));
    CHECK(pending_val == 5000 + (rank + size - 1) % size);
    acc = mix(acc, pending_val);
    counts[8] = 1;

    /* relations between the communicators still hold */
    int cmp_dup, cmp_late;
    CK(MPI_Comm_compare(W, dup, &cmp_dup));
    CK(MPI_Comm_compare(W, late_dup, &cmp_late));
    CHECK(cmp_dup == MPI_CONGRUENT && cmp_late == MPI_CONGRUENT);

    char buf[128];
    say("%d barriers; operations per kind (split bcast cart inter-p2p inter-allreduce created "
        "world late pending): %s",
        ITERS, fmt_ints(buf, sizeof buf, counts, 9));
    say("world/dup and world/late_dup compare CONGRUENT: yes");
    say_all("split rank=%d pending got %d checksum=%u", split_rank, pending_val, acc);
    unsigned all[4];
    CK(MPI_Gather(&acc, 1, MPI_UNSIGNED, all, 1, MPI_UNSIGNED, 0, W));
    unsigned total = 0;
    for (int r = 0; r < size; r++)
        total = total * 131u + all[r];
    say("combined checksum: %u", total);
    int *got_attr = NULL, attr_found = 0, name_len = 0;
    char name[MPI_MAX_OBJECT_NAME];
    CK(MPI_Comm_get_attr(dup, key, &got_attr, &attr_found));
    CK(MPI_Comm_get_name(dup, name, &name_len));
    CHECK(attr_found && got_attr == &attr_value);
    say("dup keeps its attribute (%d) and its name (%s)", *got_attr, name);
    CK(MPI_Comm_free_keyval(&key));

    CK(MPI_Group_free(&g3));
    CK(MPI_Group_free(&wg));
    MPI_Comm comms[] = {split, dup, cart, half, inter, created, late_dup, late_split};
    for (size_t k = 0; k < sizeof comms / sizeof comms[0]; k++)
        if (comms[k] != MPI_COMM_NULL)
            CK(MPI_Comm_free(&comms[k]));
    return finish_ok();
}
