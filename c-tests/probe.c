/* ranks: 3 */
/* ferry-test-refuses: matched with MPI_Mprobe */
/* Probe, Iprobe, Mprobe, Improbe, Mrecv, Imrecv with Get_count and
 * Get_elements; MPI_MESSAGE_NO_PROC from a probe on MPI_PROC_NULL. */
#include "common.h"

int main(int argc, char **argv)
{
    CK(MPI_Init(&argc, &argv));
    need_ranks(3);
    int rank = world_rank();
    MPI_Status st;
    int count, flag;

    /* 1. Probe a message of unknown length, allocate, receive */
    if (rank == 1) {
        int v[7];
        for (int i = 0; i < 7; i++)
            v[i] = 3 * i;
        CK(MPI_Send(v, 7, MPI_INT, 0, 5, MPI_COMM_WORLD));
    } else if (rank == 0) {
        CK(MPI_Probe(1, 5, MPI_COMM_WORLD, &st));
        CK(MPI_Get_count(&st, MPI_INT, &count));
        CHECK(count == 7 && st.MPI_SOURCE == 1 && st.MPI_TAG == 5);
        int *v = malloc((size_t)count * sizeof(int));
        CK(MPI_Recv(v, count, MPI_INT, st.MPI_SOURCE, st.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
        char buf[128];
        say("probe: count=%d data %s", count, fmt_ints(buf, sizeof buf, v, count));
        free(v);
    }

    /* 2. Iprobe before the message exists (the barrier orders it), then loop */
    if (rank == 0) {
        CK(MPI_Iprobe(MPI_ANY_SOURCE, 6, MPI_COMM_WORLD, &flag, &st));
        CHECK(!flag);
        say("iprobe before send: flag=%d", flag);
    }
    CK(MPI_Barrier(MPI_COMM_WORLD));
    if (rank == 2) {
        double d[13];
        for (int i = 0; i < 13; i++)
            d[i] = i / 4.0;
        CK(MPI_Send(d, 13, MPI_DOUBLE, 0, 6, MPI_COMM_WORLD));
    } else if (rank == 0) {
        do {
            CK(MPI_Iprobe(MPI_ANY_SOURCE, 6, MPI_COMM_WORLD, &flag, &st));
        } while (!flag);
        int elems;
        CK(MPI_Get_count(&st, MPI_DOUBLE, &count));
        CK(MPI_Get_elements(&st, MPI_DOUBLE, &elems));
        CHECK(count == 13 && elems == 13 && st.MPI_SOURCE == 2);
        /* probing again finds the same message */
        CK(MPI_Iprobe(2, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st));
        CHECK(flag && st.MPI_TAG == 6);
        double d[13];
        CK(MPI_Recv(d, 13, MPI_DOUBLE, 2, 6, MPI_COMM_WORLD, &st));
        say("iprobe: source=%d count=%d elements=%d last=%.2f", st.MPI_SOURCE, count, elems, d[12]);
    }

    /* 3. Mprobe + Mrecv from two senders with ANY_SOURCE */
    if (rank == 0) {
        int lens[3] = {0, 0, 0}, sums[3] = {0, 0, 0};
        for (int k = 0; k < 2; k++) {
            MPI_Message msg;
            CK(MPI_Mprobe(MPI_ANY_SOURCE, 8, MPI_COMM_WORLD, &msg, &st));
            CHECK(msg != MPI_MESSAGE_NULL);
            CK(MPI_Get_count(&st, MPI_INT, &count));
            int src = st.MPI_SOURCE;
            CHECK(src == 1 || src == 2);
            CHECK(count == src * 3);
            int *v = malloc((size_t)count * sizeof(int));
            CK(MPI_Mrecv(v, count, MPI_INT, &msg, &st));
            CHECK(msg == MPI_MESSAGE_NULL && st.MPI_SOURCE == src);
            lens[src] = count;
            for (int i = 0; i < count; i++)
                sums[src] += v[i];
            free(v);
        }
        say("mprobe/mrecv: from 1 len=%d sum=%d, from 2 len=%d sum=%d", lens[1], sums[1], lens[2],
            sums[2]);
    } else {
        int n = rank * 3;
        int v[6];
        for (int i = 0; i < n; i++)
            v[i] = rank * 100 + i;
        CK(MPI_Send(v, n, MPI_INT, 0, 8, MPI_COMM_WORLD));
    }

    /* 4. Improbe loop + Imrecv + Wait (1 -> 2) */
    if (rank == 1) {
        char s[] = "ferry-probe";
        CK(MPI_Send(s, (int)sizeof s, MPI_CHAR, 2, 9, MPI_COMM_WORLD));
    } else if (rank == 2) {
        MPI_Message msg;
        do {
            CK(MPI_Improbe(1, 9, MPI_COMM_WORLD, &flag, &msg, &st));
        } while (!flag);
        CK(MPI_Get_count(&st, MPI_CHAR, &count));
        char s[64];
        MPI_Request r;
        CK(MPI_Imrecv(s, count, MPI_CHAR, &msg, &r));
        CK(MPI_Wait(&r, &st));
        CHECK(count == 12 && strcmp(s, "ferry-probe") == 0 && st.MPI_TAG == 9);
        CK(MPI_Send(&count, 1, MPI_INT, 0, 10, MPI_COMM_WORLD));
    }
    if (rank == 0) {
        CK(MPI_Recv(&count, 1, MPI_INT, 2, 10, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
        say("improbe/imrecv at rank 2: count=%d", count);
    }

    /* 5. Mprobe on MPI_PROC_NULL gives MPI_MESSAGE_NO_PROC */
    MPI_Message np;
    CK(MPI_Mprobe(MPI_PROC_NULL, 0, MPI_COMM_WORLD, &np, &st));
    CHECK(np == MPI_MESSAGE_NO_PROC && st.MPI_SOURCE == MPI_PROC_NULL);
    int dummy = 42;
    CK(MPI_Mrecv(&dummy, 1, MPI_INT, &np, &st));
    CK(MPI_Get_count(&st, MPI_INT, &count));
    CHECK(np == MPI_MESSAGE_NULL && count == 0 && dummy == 42);
    CK(MPI_Iprobe(MPI_PROC_NULL, 0, MPI_COMM_WORLD, &flag, &st));
    CHECK(flag && st.MPI_SOURCE == MPI_PROC_NULL);
    say("mprobe/iprobe on PROC_NULL: NO_PROC, count=0");

    return finish_ok();
}
