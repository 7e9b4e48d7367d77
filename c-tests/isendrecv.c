/* ranks: 3 */
/* ferry-test-asks: yes (ferry_regroup through ferry.h) */
/* MPI 4's nonblocking send-receive (MPI_Isendrecv, MPI_Isendrecv_replace)
 * across regroups and moves: the library takes it apart into a receive of
 * the program (taken off and posted again like any MPI_Irecv) and a send of
 * a copy it owns. MPICH's pt2pt/isendrecv, isendrecv_replace and
 * sendrecv3 -isendrecv hung with a regroup before. On an MPI older than 4
 * (Open MPI 4.1) the same exchanges are made with MPI_Irecv + MPI_Isend:
 * the output is the same. (MPICH 5.0.2's own MPI_Isendrecv reports a wrong
 * source and tag in its status: not printed.)
 *   1. a ring of send-receives, 60 rounds (regroups and moves land there
 *      in the harness's modes);
 *   2. send-receives pending at a regroup asked for while their messages
 *      are not sent yet, of which one replaces its buffer, and one of
 *      1 MiB each way (sent only once received: the drain takes it);
 *   3. an MPI_ANY_SOURCE send-receive pending at a regroup. */
#include "asked.h"

#define ROUNDS 60
#define BIG (1 << 18) /* ints: 1 MiB */

/* A send-receive's requests: one (MPI 4) or two (older MPIs). */
typedef struct {
    MPI_Request r[2];
} op_t;

static void sendrecv_start(const void *sbuf, int scount, MPI_Datatype stype, int dest, int stag,
                           void *rbuf, int rcount, MPI_Datatype rtype, int source, int rtag,
                           MPI_Comm comm, op_t *op)
{
#if MPI_VERSION >= 4
    CK(MPI_Isendrecv(sbuf, scount, stype, dest, stag, rbuf, rcount, rtype, source, rtag, comm,
                     &op->r[0]));
    op->r[1] = MPI_REQUEST_NULL;
#else
    CK(MPI_Irecv(rbuf, rcount, rtype, source, rtag, comm, &op->r[0]));
    CK(MPI_Isend(sbuf, scount, stype, dest, stag, comm, &op->r[1]));
#endif
}

/* (Only used with an MPI 4 library; older ones copy the data first.) */
static void replace_start(void *buf, int count, MPI_Datatype type, int dest, int stag, int source,
                          int rtag, MPI_Comm comm, op_t *op, void *scratch)
{
#if MPI_VERSION >= 4
    (void)scratch;
    CK(MPI_Isendrecv_replace(buf, count, type, dest, stag, source, rtag, comm, &op->r[0]));
    op->r[1] = MPI_REQUEST_NULL;
#else
    int size;
    CK(MPI_Type_size(type, &size));
    memcpy(scratch, buf, (size_t)count * (size_t)size);
    sendrecv_start(scratch, count, type, dest, stag, buf, count, type, source, rtag, comm, op);
#endif
}

static void finish(op_t *op)
{
    CK(MPI_Waitall(2, op->r, MPI_STATUSES_IGNORE));
}

int main(int argc, char **argv)
{
    CK(MPI_Init(&argc, &argv));
    need_ranks(3);
    int rank = world_rank(), size = world_size();
    const MPI_Comm W = MPI_COMM_WORLD;
    int right = (rank + 1) % size, left = (rank + size - 1) % size;

    /* 1. a ring */
    long sum = 0;
    for (int i = 0; i < ROUNDS; i++) {
        int out[4] = {rank, i, rank * i, 7}, in[4] = {-1, -1, -1, -1};
        op_t op;
        sendrecv_start(out, 4, MPI_INT, right, i, in, 4, MPI_INT, left, i, W, &op);
        finish(&op);
        CHECK(in[0] == left && in[1] == i);
        sum += in[0] + in[1] + in[2] + in[3];
        if (i % 10 == 9)
            CK(MPI_Barrier(W));
    }
    long total = 0;
    CK(MPI_Allreduce(&sum, &total, 1, MPI_LONG, MPI_SUM, W));
    say("1. ring of %d send-receives: sum %ld", ROUNDS, total);

    /* 2. pending at a regroup: rank 0 sends to 1 and receives from 2; rank
     * 1 replaces its buffer with rank 0's data while sending its own to 2;
     * ranks 0 and 1 also exchange 1 MiB each way. Nobody's matching call
     * comes before the regroup. */
    int *big_out = malloc(BIG * sizeof(int)), *big_in = malloc(BIG * sizeof(int));
    int *scratch = malloc(BIG * sizeof(int));
    CHECK(big_out && big_in && scratch);
    for (int i = 0; i < BIG; i++) {
        big_out[i] = rank * 1000003 + i;
        big_in[i] = -1;
    }
    int a[3] = {10 + rank, 20 + rank, 30 + rank}, b[3] = {-1, -1, -1};
    op_t small, large;
    if (rank == 0) {
        sendrecv_start(a, 3, MPI_INT, 1, 100, b, 3, MPI_INT, 2, 102, W, &small);
        sendrecv_start(big_out, BIG, MPI_INT, 1, 200, big_in, BIG, MPI_INT, 1, 201, W, &large);
    }
    regroup_here("pending send-receives");
    if (rank == 1) {
        replace_start(a, 3, MPI_INT, 2, 101, 0, 100, W, &small, scratch);
        sendrecv_start(big_out, BIG, MPI_INT, 0, 201, big_in, BIG, MPI_INT, 0, 200, W, &large);
    } else if (rank == 2) {
        sendrecv_start(a, 3, MPI_INT, 0, 102, b, 3, MPI_INT, 1, 101, W, &small);
    }
    char line[LINE_MAX_LEN];
    long big_sum = 0;
    if (rank == 0 || rank == 1) {
        finish(&large);
        for (int i = 0; i < BIG; i++)
            CHECK(big_in[i] == (1 - rank) * 1000003 + i);
        big_sum = big_in[0] + big_in[BIG - 1];
    }
    finish(&small);
    say("2. pending at a regroup:");
    const int *got = rank == 1 ? a : b;
    say_all("%s; 1 MiB: %ld", fmt_ints(line, sizeof line, got, 3), big_sum);

    /* 3. MPI_ANY_SOURCE, pending at a regroup: rank 2 receives from anyone
     * (rank 1's message, sent after the regroup) and sends to rank 0 */
    int c = 500 + rank, d = -1;
    op_t any;
    if (rank == 2)
        sendrecv_start(&c, 1, MPI_INT, 0, 300, &d, 1, MPI_INT, MPI_ANY_SOURCE, 301, W, &any);
    regroup_here("pending any-source send-receive");
    if (rank == 0) {
        CK(MPI_Recv(&d, 1, MPI_INT, 2, 300, W, MPI_STATUS_IGNORE));
    } else if (rank == 1) {
        CK(MPI_Send(&c, 1, MPI_INT, 2, 301, W));
    } else {
        finish(&any);
    }
    say("3. any source, pending at a regroup:");
    say_all("got %d", d);

    free(big_out);
    free(big_in);
    free(scratch);
    settle();
    return finish_ok();
}
