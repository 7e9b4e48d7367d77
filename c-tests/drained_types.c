/* ranks: 2 */
/* ferry-test-asks: yes (ferry_regroup through ferry.h) */
/* Messages that a regroup drains, or receives it takes off and posts
 * again, delivered to receives of every shape, which must see what MPI
 * would have given them. In each section rank 0 sends first, then asks
 * for a regroup; rank 1 receives only after it (so the messages are in
 * flight at the freeze: drained, then served from the library's queue),
 * or has posted its receive before it (taken off and posted again).
 * MPICH's test suite found each case (datatype/getpartelm, sendrecvt4,
 * tfree, comm/cmfree, pt2pt/mprobe, the dtp variants of pt2pt/pingping):
 *   1. partial elements of a struct (MPI_Get_elements, MPI_Get_count
 *      giving MPI_UNDEFINED), and a packed message received so;
 *   2. a strided (vector) receive of contiguous data, holes untouched;
 *   3. a receive at MPI_BOTTOM into an absolute-address struct;
 *   4. a type whose lower bound is below the buffer's start (negative
 *      displacement), and a receive larger than the message;
 *   5. a matched probe (MPI_Mprobe/MPI_Mrecv) of a drained message into a
 *      derived type, with MPI_Get_elements on the probe's status (and, as
 *      in 2, the status's error field left as the program set it:
 *      pt2pt/mprobe);
 *   6. a receive pending with a datatype the program freed (MPI keeps it
 *      until the receive completes);
 *   7. a receive pending on a communicator the program freed (likewise);
 *   8. MPI_Buffer_detach waiting for buffered sends while the receiver
 *      asks for a regroup and receives only after it (pt2pt/bsendpending;
 *      MPI 4.1's MPI_Buffer_iflush makes it possible: on older MPIs the
 *      messages are received before the detach).
 * Without the library ferry_regroup() does nothing: same output. */
#include "asked.h"

/* Rank 1 formats a line, rank 0 prints it (both call it). */
static void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void report(const char *fmt, ...)
{
    char line[LINE_MAX_LEN] = "";
    if (world_rank() == 1) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(line, sizeof line, fmt, ap);
        va_end(ap);
        CK(MPI_Send(line, LINE_MAX_LEN, MPI_CHAR, 0, 999, MPI_COMM_WORLD));
    } else {
        CK(MPI_Recv(line, LINE_MAX_LEN, MPI_CHAR, 1, 999, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
        say("%s", line);
    }
}

static MPI_Datatype int_chars(int nchars)
{
    MPI_Datatype types[2] = {MPI_INT, MPI_CHAR}, t;
    int lens[2] = {1, nchars};
    MPI_Aint disp[2] = {0, sizeof(int)};
    CK(MPI_Type_create_struct(2, lens, disp, types, &t));
    CK(MPI_Type_commit(&t));
    return t;
}

int g_value;

int main(int argc, char **argv)
{
    CK(MPI_Init(&argc, &argv));
    need_ranks(2);
    int rank = world_rank();
    const MPI_Comm W = MPI_COMM_WORLD;

    /* 1. partial struct elements */
    if (rank == 0) {
        int buf[64];
        for (int i = 0; i < 64; i++)
            buf[i] = 0x01010101 * (i + 1);
        int n[2] = {4 * (int)sizeof(int), 4 * (int)sizeof(int) + 1};
        for (int m = 0; m < 2; m++) {
            MPI_Datatype t = int_chars(n[m]);
            buf[0] = n[m];
            CK(MPI_Send(buf, 1, t, 1, m, W));
            CK(MPI_Type_free(&t));
        }
        char packed[64];
        int pos = 0, seven = 7;
        CK(MPI_Pack(&seven, 1, MPI_INT, packed, sizeof packed, &pos, W));
        CK(MPI_Pack("message", 7, MPI_CHAR, packed, sizeof packed, &pos, W));
        CK(MPI_Send(packed, pos, MPI_PACKED, 1, 2, W));
    }
    regroup_here("partial elements");
    if (rank == 1) {
        MPI_Datatype t = int_chars(256);
        char line[LINE_MAX_LEN] = "";
        for (int m = 0; m < 3; m++) {
            int buf[80], elements = -1, count = -1;
            memset(buf, 0xff, sizeof buf);
            MPI_Status st;
            CK(MPI_Recv(buf, 1, t, 0, m, W, &st));
            CK(MPI_Get_elements(&st, t, &elements));
            CK(MPI_Get_count(&st, t, &count));
            size_t len = strlen(line);
            snprintf(line + len, sizeof line - len, " [tag %d: first %d, elements %d, count %s]",
                     st.MPI_TAG, buf[0], elements, count == MPI_UNDEFINED ? "UNDEFINED" : "defined");
        }
        report("1. partial struct elements:%s", line);
        CK(MPI_Type_free(&t));
    }

    if (rank == 0)
        report("-");

    /* 2. a strided receive of contiguous data */
    if (rank == 0) {
        int v[12];
        for (int i = 0; i < 12; i++)
            v[i] = 100 + i;
        CK(MPI_Send(v, 12, MPI_INT, 1, 10, W));
    }
    regroup_here("strided receive");
    if (rank == 1) {
        MPI_Datatype vec;
        CK(MPI_Type_vector(4, 3, 5, MPI_INT, &vec));
        CK(MPI_Type_commit(&vec));
        int out[20], count = -1;
        for (int i = 0; i < 20; i++)
            out[i] = -1;
        MPI_Status st;
        st.MPI_ERROR = MPI_ERR_DIMS;
        CK(MPI_Recv(out, 1, vec, 0, 10, W, &st));
        CHECK(st.MPI_ERROR == MPI_ERR_DIMS);
        CK(MPI_Get_count(&st, vec, &count));
        char line[LINE_MAX_LEN];
        report("2. vector(4,3,5) receive: count %d, %s", count, fmt_ints(line, sizeof line, out, 20));
        CK(MPI_Type_free(&vec));
    }

    if (rank == 0)
        report("-");

    /* 3. MPI_BOTTOM with absolute addresses */
    if (rank == 0) {
        struct {
            int i;
            double d[2];
            char s[3];
        } src = {41, {2.5, -0.125}, {'a', 'b', 'c'}};
        MPI_Datatype types[3] = {MPI_INT, MPI_DOUBLE, MPI_CHAR}, t;
        int lens[3] = {1, 2, 3};
        MPI_Aint disp[3];
        CK(MPI_Get_address(&src.i, &disp[0]));
        CK(MPI_Get_address(&src.d[0], &disp[1]));
        CK(MPI_Get_address(&src.s[0], &disp[2]));
        CK(MPI_Type_create_struct(3, lens, disp, types, &t));
        CK(MPI_Type_commit(&t));
        CK(MPI_Send(MPI_BOTTOM, 1, t, 1, 20, W));
        CK(MPI_Type_free(&t));
    }
    regroup_here("MPI_BOTTOM receive");
    if (rank == 1) {
        double *heap = calloc(2, sizeof(double));
        char stack[3] = {0, 0, 0};
        MPI_Datatype types[3] = {MPI_INT, MPI_DOUBLE, MPI_CHAR}, t;
        int lens[3] = {1, 2, 3};
        MPI_Aint disp[3];
        CK(MPI_Get_address(&g_value, &disp[0]));
        CK(MPI_Get_address(heap, &disp[1]));
        CK(MPI_Get_address(stack, &disp[2]));
        CK(MPI_Type_create_struct(3, lens, disp, types, &t));
        CK(MPI_Type_commit(&t));
        MPI_Status st;
        CK(MPI_Recv(MPI_BOTTOM, 1, t, 0, 20, W, &st));
        report("3. MPI_BOTTOM receive: %d %g %g %c%c%c", g_value, heap[0], heap[1], stack[0],
            stack[1], stack[2]);
        CK(MPI_Type_free(&t));
        free(heap);
    }

    if (rank == 0)
        report("-");

    /* 4. a negative displacement, and a receive larger than the message */
    if (rank == 0) {
        int v[6] = {7, 8, 9, 10, 11, 12};
        CK(MPI_Send(v, 3, MPI_INT, 1, 30, W));
        CK(MPI_Send(v, 6, MPI_INT, 1, 31, W));
    }
    regroup_here("negative displacement");
    if (rank == 1) {
        int out[8];
        for (int i = 0; i < 8; i++)
            out[i] = -1;
        /* elements at -2, 0, +2 ints from the address given */
        int lens[3] = {1, 1, 1}, disps[3] = {-2, 0, 2};
        MPI_Datatype t;
        CK(MPI_Type_indexed(3, lens, disps, MPI_INT, &t));
        CK(MPI_Type_commit(&t));
        MPI_Status st;
        CK(MPI_Recv(&out[3], 1, t, 0, 30, W, &st));
        int big[10], count = -1;
        for (int i = 0; i < 10; i++)
            big[i] = -1;
        CK(MPI_Recv(big, 10, MPI_INT, 0, 31, W, &st));
        CK(MPI_Get_count(&st, MPI_INT, &count));
        char a[LINE_MAX_LEN], b[LINE_MAX_LEN];
        report("4. indexed(-2,0,2): %s; 10 ints for 6: count %d, %s", fmt_ints(a, sizeof a, out, 8),
            count, fmt_ints(b, sizeof b, big, 10));
        CK(MPI_Type_free(&t));
    }

    if (rank == 0)
        report("-");

    /* 5. a matched probe of a drained message into a derived type */
    if (rank == 0) {
        double d[5] = {1.5, 2.5, 3.5, 4.5, 5.5};
        CK(MPI_Send(d, 5, MPI_DOUBLE, 1, 40, W));
    }
    regroup_here("matched probe");
    if (rank == 1) {
        MPI_Datatype pair;
        CK(MPI_Type_contiguous(2, MPI_DOUBLE, &pair));
        CK(MPI_Type_commit(&pair));
        MPI_Message msg;
        MPI_Status st;
        /* a call that completes one operation leaves the error field alone */
        st.MPI_ERROR = MPI_ERR_DIMS;
        CK(MPI_Mprobe(0, 40, W, &msg, &st));
        CHECK(st.MPI_ERROR == MPI_ERR_DIMS);
        int elements = -1, count = -1;
        CK(MPI_Get_elements(&st, pair, &elements));
        CK(MPI_Get_count(&st, pair, &count));
        double out[6] = {0, 0, 0, 0, 0, 0};
        st.MPI_ERROR = MPI_ERR_TOPOLOGY;
        CK(MPI_Mrecv(out, 3, pair, &msg, &st));
        CHECK(st.MPI_ERROR == MPI_ERR_TOPOLOGY);
        report("5. mprobe: elements %d, count %s; %g %g %g %g %g %g", elements,
            count == MPI_UNDEFINED ? "UNDEFINED" : "defined", out[0], out[1], out[2], out[3],
            out[4], out[5]);
        CK(MPI_Type_free(&pair));
    }

    if (rank == 0)
        report("-");

    /* 6. a receive pending with a datatype the program freed */
    int out6[16];
    MPI_Request req6 = MPI_REQUEST_NULL;
    if (rank == 1) {
        MPI_Datatype vec;
        CK(MPI_Type_vector(4, 2, 4, MPI_INT, &vec));
        CK(MPI_Type_commit(&vec));
        for (int i = 0; i < 16; i++)
            out6[i] = -1;
        CK(MPI_Irecv(out6, 1, vec, 0, 50, W, &req6));
        CK(MPI_Type_free(&vec));
        CHECK(vec == MPI_DATATYPE_NULL);
    }
    regroup_here("receive of a freed datatype");
    if (rank == 0) {
        int v[8] = {1, 2, 3, 4, 5, 6, 7, 8};
        CK(MPI_Send(v, 8, MPI_INT, 1, 50, W));
    } else {
        MPI_Status st;
        CK(MPI_Wait(&req6, &st));
        char line[LINE_MAX_LEN];
        report("6. freed datatype: %s", fmt_ints(line, sizeof line, out6, 16));
    }

    if (rank == 0)
        report("-");

    /* 7. a receive pending on a communicator the program freed */
    MPI_Comm dup;
    CK(MPI_Comm_dup(W, &dup));
    int out7[4] = {-1, -1, -1, -1};
    MPI_Request req7 = MPI_REQUEST_NULL;
    if (rank == 1) {
        CK(MPI_Irecv(out7, 4, MPI_INT, 0, 60, dup, &req7));
        CK(MPI_Comm_free(&dup));
        CHECK(dup == MPI_COMM_NULL);
    }
    regroup_here("receive on a freed communicator");
    if (rank == 0) {
        int v[4] = {21, 22, 23, 24};
        CK(MPI_Send(v, 4, MPI_INT, 1, 60, dup));
        CK(MPI_Comm_free(&dup));
    } else {
        MPI_Status st;
        CK(MPI_Wait(&req7, &st));
        char line[LINE_MAX_LEN];
        report("7. freed communicator: tag %d, %s", st.MPI_TAG, fmt_ints(line, sizeof line, out7, 4));
    }

    if (rank == 0)
        report("-");

    /* 8. MPI_Buffer_detach waiting for buffered messages while the
     * receiver asks for a regroup and receives only after it (MPICH's
     * pt2pt/bsendpending): the detach must let the regroup happen (with
     * MPI_Buffer_iflush, MPI 4.1; on older MPIs it blocks, so the
     * receiver does not wait for a regroup there) */
    {
        enum { N = 3, SIZE = 128 * 1024 };
        static unsigned char msgs[N][SIZE];
        if (rank == 0) {
            int bufsize = N * (MPI_BSEND_OVERHEAD + SIZE), outsize = 0;
            unsigned char *buf = malloc((size_t)bufsize);
            CHECK(buf != NULL);
            CK(MPI_Buffer_attach(buf, bufsize));
            for (int m = 0; m < N; m++) {
                for (int i = 0; i < SIZE; i++)
                    msgs[m][i] = (unsigned char)(0xff ^ ((2 * m + 1) * i & 0xff));
                CK(MPI_Bsend(msgs[m], SIZE, MPI_UNSIGNED_CHAR, 1, 70, W));
            }
            CK(MPI_Send(NULL, 0, MPI_INT, 1, 71, W));
#if !(MPI_VERSION > 4 || (MPI_VERSION == 4 && MPI_SUBVERSION >= 1))
            /* (without MPI_Buffer_iflush a regroup cannot interrupt the
             * detach: the messages are received first) */
            CK(MPI_Recv(NULL, 0, MPI_INT, 1, 72, W, MPI_STATUS_IGNORE));
#endif
            void *back = NULL;
            CK(MPI_Buffer_detach(&back, &outsize));
            CHECK(back == buf && outsize == bufsize);
            free(buf);
        } else {
            CK(MPI_Recv(NULL, 0, MPI_INT, 0, 71, W, MPI_STATUS_IGNORE));
#if MPI_VERSION > 4 || (MPI_VERSION == 4 && MPI_SUBVERSION >= 1)
            if (ferry_is_loaded()) {
                long before = ferry_regroups();
                CHECK(ferry_regroup() == FERRY_OK);
                int flag;
                while (ferry_regroups() == before)
                    CK(MPI_Iprobe(0, 9999, W, &flag, MPI_STATUS_IGNORE));
            }
#endif
            long bad = 0;
            for (int m = 0; m < N; m++) {
                CK(MPI_Recv(msgs[m], SIZE, MPI_UNSIGNED_CHAR, 0, 70, W, MPI_STATUS_IGNORE));
                for (int i = 0; i < SIZE; i++)
                    bad += msgs[m][i] != (unsigned char)(0xff ^ ((2 * m + 1) * i & 0xff));
            }
#if !(MPI_VERSION > 4 || (MPI_VERSION == 4 && MPI_SUBVERSION >= 1))
            CK(MPI_Send(NULL, 0, MPI_INT, 0, 72, W));
#endif
            report("8. buffered sends detached during a regroup: %d x %d bytes, %ld wrong", N,
                   SIZE, bad);
        }
        if (rank == 0)
            report("-");
        expect_regroups = ferry_regroups();
    }

    settle();
    return finish_ok();
}
