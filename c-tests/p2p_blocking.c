/* ranks: 3 */
/* Blocking point-to-point: Send/Recv, Ssend, Bsend with an attached buffer,
 * Rsend after a barrier that guarantees the receive is posted, Sendrecv,
 * Sendrecv_replace, MPI_PROC_NULL, zero-length and large messages,
 * MPI_STATUS_IGNORE. */
#include "common.h"

#define BIG 300000

int main(int argc, char **argv)
{
    CK(MPI_Init(&argc, &argv));
    need_ranks(3);
    int rank = world_rank();
    MPI_Status st;
    int count;

    /* 1. Send/Recv 0 -> 1, then the sum 1 -> 2 received with STATUS_IGNORE */
    int arr[10], sum = 0, got_sum = -1;
    if (rank == 0) {
        for (int i = 0; i < 10; i++)
            arr[i] = i * i + 7;
        CK(MPI_Send(arr, 10, MPI_INT, 1, 11, MPI_COMM_WORLD));
    } else if (rank == 1) {
        CK(MPI_Recv(arr, 10, MPI_INT, 0, 11, MPI_COMM_WORLD, &st));
        CK(MPI_Get_count(&st, MPI_INT, &count));
        CHECK(count == 10 && st.MPI_SOURCE == 0 && st.MPI_TAG == 11);
        for (int i = 0; i < 10; i++)
            sum += arr[i];
        CK(MPI_Send(&sum, 1, MPI_INT, 2, 12, MPI_COMM_WORLD));
    } else {
        CK(MPI_Recv(&got_sum, 1, MPI_INT, 1, 12, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
        CHECK(got_sum == 355);
    }
    say("send/recv:");
    say_all("sum=%d got_sum=%d", sum, got_sum);

    /* 2. Ssend 2 -> 0 */
    double d[5] = {0};
    if (rank == 2) {
        for (int i = 0; i < 5; i++)
            d[i] = 0.5 * i + 1.0;
        CK(MPI_Ssend(d, 5, MPI_DOUBLE, 0, 21, MPI_COMM_WORLD));
    } else if (rank == 0) {
        CK(MPI_Recv(d, 5, MPI_DOUBLE, 2, 21, MPI_COMM_WORLD, &st));
        CK(MPI_Get_count(&st, MPI_DOUBLE, &count));
        CHECK(count == 5 && st.MPI_SOURCE == 2 && st.MPI_TAG == 21);
        say("ssend: %.1f %.1f %.1f %.1f %.1f", d[0], d[1], d[2], d[3], d[4]);
    }

    /* 3. Bsend: 1 sends three messages; 0 receives them in reverse tag order,
     * which only works because the sends are buffered. */
    int psize;
    CK(MPI_Pack_size(4, MPI_INT, MPI_COMM_WORLD, &psize));
    int bsize = 3 * (psize + MPI_BSEND_OVERHEAD);
    char *bbuf = malloc((size_t)bsize);
    CHECK(bbuf != NULL);
    CK(MPI_Buffer_attach(bbuf, bsize));
    if (rank == 1) {
        for (int t = 1; t <= 3; t++) {
            int m[4] = {t, t * 10, t * 100, t * 1000};
            CK(MPI_Bsend(m, 4, MPI_INT, 0, 30 + t, MPI_COMM_WORLD));
        }
    } else if (rank == 0) {
        for (int t = 3; t >= 1; t--) {
            int m[4];
            CK(MPI_Recv(m, 4, MPI_INT, 1, 30 + t, MPI_COMM_WORLD, &st));
            CHECK(m[0] == t && m[3] == t * 1000 && st.MPI_TAG == 30 + t);
            say("bsend: tag %d -> %d %d %d %d", st.MPI_TAG, m[0], m[1], m[2], m[3]);
        }
    }
    void *detached;
    int detached_size;
    CK(MPI_Buffer_detach(&detached, &detached_size));
    CHECK(detached == bbuf && detached_size == bsize);
    free(bbuf);

    /* 4. Rsend: 1 posts the receive, the barrier guarantees it, 2 Rsends */
    MPI_Request req = MPI_REQUEST_NULL;
    int rv[3] = {0, 0, 0};
    if (rank == 1)
        CK(MPI_Irecv(rv, 3, MPI_INT, 2, 40, MPI_COMM_WORLD, &req));
    CK(MPI_Barrier(MPI_COMM_WORLD));
    if (rank == 2) {
        int sv[3] = {4, 5, 6};
        CK(MPI_Rsend(sv, 3, MPI_INT, 1, 40, MPI_COMM_WORLD));
    } else if (rank == 1) {
        CK(MPI_Wait(&req, &st));
        CHECK(req == MPI_REQUEST_NULL && st.MPI_SOURCE == 2 && st.MPI_TAG == 40);
        CHECK(rv[0] == 4 && rv[1] == 5 && rv[2] == 6);
    }
    say("rsend:");
    say_all("rv=%d %d %d", rv[0], rv[1], rv[2]);

    /* 5. Sendrecv: shift right around the ring */
    int right = (rank + 1) % 3, left = (rank + 2) % 3;
    int out = rank * 100 + 1, in = -1;
    CK(MPI_Sendrecv(&out, 1, MPI_INT, right, 50, &in, 1, MPI_INT, left, 50, MPI_COMM_WORLD,
                    &st));
    CHECK(in == left * 100 + 1 && st.MPI_SOURCE == left);
    say("sendrecv:");
    say_all("from left %d", in);

    /* 6. Sendrecv_replace: shift left */
    int rb[3] = {rank, rank * 2, rank * 3};
    CK(MPI_Sendrecv_replace(rb, 3, MPI_INT, left, 60, right, 60, MPI_COMM_WORLD, &st));
    CHECK(rb[0] == right && rb[2] == right * 3 && st.MPI_SOURCE == right && st.MPI_TAG == 60);
    say("sendrecv_replace:");
    say_all("now %d %d %d", rb[0], rb[1], rb[2]);

    /* 7. MPI_PROC_NULL */
    int pn = 123;
    CK(MPI_Send(&pn, 1, MPI_INT, MPI_PROC_NULL, 70, MPI_COMM_WORLD));
    CK(MPI_Recv(&pn, 1, MPI_INT, MPI_PROC_NULL, 70, MPI_COMM_WORLD, &st));
    CK(MPI_Get_count(&st, MPI_INT, &count));
    CHECK(pn == 123 && st.MPI_SOURCE == MPI_PROC_NULL && st.MPI_TAG == MPI_ANY_TAG && count == 0);
    say("proc_null: source=PROC_NULL tag=ANY_TAG count=%d", count);

    /* 8. zero-length message 0 -> 2 */
    if (rank == 0) {
        CK(MPI_Send(NULL, 0, MPI_INT, 2, 80, MPI_COMM_WORLD));
    } else if (rank == 2) {
        CK(MPI_Recv(NULL, 0, MPI_INT, 0, 80, MPI_COMM_WORLD, &st));
        CK(MPI_Get_count(&st, MPI_INT, &count));
        CHECK(count == 0 && st.MPI_SOURCE == 0 && st.MPI_TAG == 80);
    }

    /* 9. large message (rendezvous path) 2 -> 0, Ssend 0 -> 1 */
    int *big = malloc(BIG * sizeof(int));
    CHECK(big != NULL);
    long long chk = 0;
    if (rank == 2) {
        for (int i = 0; i < BIG; i++)
            big[i] = (i * 31) % 1009;
        CK(MPI_Send(big, BIG, MPI_INT, 0, 90, MPI_COMM_WORLD));
    } else if (rank == 0) {
        CK(MPI_Recv(big, BIG, MPI_INT, 2, 90, MPI_COMM_WORLD, &st));
        CK(MPI_Get_count(&st, MPI_INT, &count));
        CHECK(count == BIG);
        for (int i = 0; i < BIG; i++)
            big[i] += 1;
        CK(MPI_Ssend(big, BIG, MPI_INT, 1, 91, MPI_COMM_WORLD));
    } else {
        CK(MPI_Recv(big, BIG, MPI_INT, 0, 91, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
        for (int i = 0; i < BIG; i++) {
            CHECK(big[i] == (i * 31) % 1009 + 1);
            chk += big[i] * (long long)(i % 7 + 1);
        }
    }
    free(big);
    say("large:");
    say_all("checksum=%lld", chk);

    return finish_ok();
}
