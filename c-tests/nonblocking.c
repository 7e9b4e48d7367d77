/* ranks: 4 */
/* ferry-test-skip: swap one barrier on the world, at its end (the switch fires at the 2nd) */
/* Nonblocking point-to-point: Isend/Irecv with Wait, Waitall, Waitany,
 * Waitsome, Test, Testall, Testany, Testsome, Cancel, Request_get_status,
 * MPI_STATUS_IGNORE / MPI_STATUSES_IGNORE.
 *
 * Rank 0 is the hub. For the Wait/Test any and some phases it posts one receive per
 * sender (request i is from rank i+1) and lets the senders go one at a time
 * with a "go" message, so exactly one request can complete at each step and
 * the index Waitany/Testany returns is deterministic. */
#include "common.h"

#define NS 3        /* senders: ranks 1..3 */
#define GO_TAG 1000

enum { PH_WAITANY, PH_TESTANY, PH_WAITSOME, PH_TESTSOME, PH_TEST, PH_TESTALL, NPHASES };
static const char *phase_name[NPHASES] = {"waitany", "testany", "waitsome",
                                          "testsome", "test", "testall"};
/* the order in which the hub lets the senders go, per phase */
static const int phase_order[NPHASES][NS] = {
    {3, 1, 2}, {2, 3, 1}, {1, 3, 2}, {3, 2, 1}, {2, 1, 3}, {1, 2, 3}};

static int value_of(int phase, int src) { return phase * 100 + src; }

static void go(int phase, int src)
{
    CK(MPI_Send(&phase, 1, MPI_INT, src, GO_TAG + phase, MPI_COMM_WORLD));
}

static void check_recv(int phase, int idx, const int *vals, const MPI_Status *st)
{
    CHECK(vals[idx] == value_of(phase, idx + 1));
    if (st != NULL)
        CHECK(st->MPI_SOURCE == idx + 1 && st->MPI_TAG == phase);
}

static void hub_phase(int phase)
{
    MPI_Request req[NS];
    MPI_Status st[NS];
    int vals[NS], idx, flag, outcount, indices[NS];
    char buf[128];
    for (int i = 0; i < NS; i++) {
        vals[i] = -1;
        CK(MPI_Irecv(&vals[i], 1, MPI_INT, i + 1, phase, MPI_COMM_WORLD, &req[i]));
    }
    const int *order = phase_order[phase];
    switch (phase) {
    case PH_WAITANY: {
        int seen[NS];
        for (int k = 0; k < NS; k++) {
            go(phase, order[k]);
            CK(MPI_Waitany(NS, req, &idx, &st[0]));
            CHECK(idx == order[k] - 1);
            CHECK(req[idx] == MPI_REQUEST_NULL);
            check_recv(phase, idx, vals, &st[0]);
            seen[k] = idx;
        }
        CK(MPI_Waitany(NS, req, &idx, MPI_STATUS_IGNORE));
        CHECK(idx == MPI_UNDEFINED);
        say("waitany: indices in order %s, then MPI_UNDEFINED", fmt_ints(buf, sizeof buf, seen, NS));
        break;
    }
    case PH_TESTANY: {
        int seen[NS];
        CK(MPI_Testany(NS, req, &idx, &flag, &st[0]));
        CHECK(!flag && idx == MPI_UNDEFINED);
        for (int k = 0; k < NS; k++) {
            go(phase, order[k]);
            do {
                CK(MPI_Testany(NS, req, &idx, &flag, &st[0]));
            } while (!flag);
            CHECK(idx == order[k] - 1);
            check_recv(phase, idx, vals, &st[0]);
            seen[k] = idx;
        }
        CK(MPI_Testany(NS, req, &idx, &flag, MPI_STATUS_IGNORE));
        CHECK(flag && idx == MPI_UNDEFINED);
        say("testany: nothing before go, indices in order %s, then flag=1 MPI_UNDEFINED",
            fmt_ints(buf, sizeof buf, seen, NS));
        break;
    }
    case PH_WAITSOME:
    case PH_TESTSOME: {
        int all[NS], nall = 0;
        if (phase == PH_TESTSOME) {
            CK(MPI_Testsome(NS, req, &outcount, indices, st));
            CHECK(outcount == 0);
        }
        for (int k = 0; k < NS; k++)
            go(phase, order[k]);
        while (nall < NS) {
            if (phase == PH_WAITSOME) {
                CK(MPI_Waitsome(NS, req, &outcount, indices, st));
                CHECK(outcount >= 1);
            } else {
                CK(MPI_Testsome(NS, req, &outcount, indices, st));
                CHECK(outcount >= 0 && outcount != MPI_UNDEFINED);
            }
            for (int j = 0; j < outcount; j++) {
                CHECK(indices[j] >= 0 && indices[j] < NS);
                CHECK(req[indices[j]] == MPI_REQUEST_NULL);
                check_recv(phase, indices[j], vals, &st[j]);
                all[nall++] = indices[j];
            }
        }
        if (phase == PH_WAITSOME)
            CK(MPI_Waitsome(NS, req, &outcount, indices, MPI_STATUSES_IGNORE));
        else
            CK(MPI_Testsome(NS, req, &outcount, indices, MPI_STATUSES_IGNORE));
        CHECK(outcount == MPI_UNDEFINED);
        qsort(all, NS, sizeof(int), cmp_int);
        say("%s: completed indices (sorted) %s, then outcount=MPI_UNDEFINED", phase_name[phase],
            fmt_ints(buf, sizeof buf, all, NS));
        break;
    }
    case PH_TEST: {
        int seen[NS];
        for (int k = 0; k < NS; k++) {
            int i = order[k] - 1;
            CK(MPI_Test(&req[i], &flag, &st[0]));
            CHECK(!flag);
            go(phase, order[k]);
            do {
                CK(MPI_Test(&req[i], &flag, &st[0]));
            } while (!flag);
            CHECK(req[i] == MPI_REQUEST_NULL);
            check_recv(phase, i, vals, &st[0]);
            seen[k] = i;
        }
        /* Test on a null request: flag set, empty status */
        CK(MPI_Test(&req[0], &flag, &st[0]));
        CHECK(flag && st[0].MPI_SOURCE == MPI_ANY_SOURCE && st[0].MPI_TAG == MPI_ANY_TAG);
        say("test: not done before go, done after, in order %s", fmt_ints(buf, sizeof buf, seen, NS));
        break;
    }
    case PH_TESTALL: {
        CK(MPI_Testall(NS, req, &flag, st));
        CHECK(!flag);
        go(phase, order[0]);
        go(phase, order[1]);
        CK(MPI_Testall(NS, req, &flag, MPI_STATUSES_IGNORE));
        CHECK(!flag); /* the last sender has not been told to go */
        go(phase, order[2]);
        do {
            CK(MPI_Testall(NS, req, &flag, st));
        } while (!flag);
        for (int i = 0; i < NS; i++) {
            CHECK(req[i] == MPI_REQUEST_NULL);
            check_recv(phase, i, vals, &st[i]);
        }
        say("testall: flag=0 before all went, then all 3 done");
        break;
    }
    }
    say("  %s values: %s", phase_name[phase], fmt_ints(buf, sizeof buf, vals, NS));
}

static void sender_phase(int phase, int rank)
{
    int p, v = value_of(phase, rank);
    CK(MPI_Recv(&p, 1, MPI_INT, 0, GO_TAG + phase, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
    CHECK(p == phase);
    /* alternate between Isend+Wait and blocking Send */
    if (rank % 2) {
        MPI_Request r;
        CK(MPI_Isend(&v, 1, MPI_INT, 0, phase, MPI_COMM_WORLD, &r));
        CK(MPI_Wait(&r, MPI_STATUS_IGNORE));
    } else {
        CK(MPI_Send(&v, 1, MPI_INT, 0, phase, MPI_COMM_WORLD));
    }
}

int main(int argc, char **argv)
{
    CK(MPI_Init(&argc, &argv));
    need_ranks(4);
    int rank = world_rank(), size = world_size();
    MPI_Status st;

    /* Isend/Irecv + Wait around a ring */
    {
        int right = (rank + 1) % size, left = (rank + size - 1) % size;
        int out[2] = {rank, rank * rank}, in[2] = {-1, -1};
        MPI_Request rr, sr;
        CK(MPI_Irecv(in, 2, MPI_INT, left, 5, MPI_COMM_WORLD, &rr));
        CK(MPI_Isend(out, 2, MPI_INT, right, 5, MPI_COMM_WORLD, &sr));
        CK(MPI_Wait(&sr, MPI_STATUS_IGNORE));
        CK(MPI_Wait(&rr, &st));
        CHECK(sr == MPI_REQUEST_NULL && rr == MPI_REQUEST_NULL);
        CHECK(in[0] == left && in[1] == left * left && st.MPI_SOURCE == left && st.MPI_TAG == 5);
        say("wait ring:");
        say_all("got %d %d", in[0], in[1]);
    }

    /* Waitall: all-to-all exchange by hand */
    {
        MPI_Request reqs[8];
        MPI_Status sts[8];
        int out[4], in[4];
        int n = 0;
        for (int p = 0; p < size; p++) {
            in[p] = -1;
            out[p] = rank * 10 + p;
            if (p == rank)
                continue;
            CK(MPI_Irecv(&in[p], 1, MPI_INT, p, 6, MPI_COMM_WORLD, &reqs[n++]));
        }
        int nrecv = n;
        for (int p = 0; p < size; p++)
            if (p != rank)
                CK(MPI_Isend(&out[p], 1, MPI_INT, p, 6, MPI_COMM_WORLD, &reqs[n++]));
        CK(MPI_Waitall(n, reqs, sts));
        int k = 0;
        for (int p = 0; p < size; p++) {
            if (p == rank)
                continue;
            CHECK(sts[k].MPI_SOURCE == p && sts[k].MPI_TAG == 6);
            CHECK(in[p] == p * 10 + rank);
            k++;
        }
        CHECK(k == nrecv);
        for (int i = 0; i < n; i++)
            CHECK(reqs[i] == MPI_REQUEST_NULL);
        in[rank] = out[rank];
        char buf[64];
        say("waitall exchange:");
        say_all("in %s", fmt_ints(buf, sizeof buf, in, size));

        /* Waitall again with MPI_STATUSES_IGNORE and a null request inside */
        for (int p = 0; p < size; p++)
            in[p] = -1;
        n = 0;
        reqs[n++] = MPI_REQUEST_NULL;
        for (int p = 0; p < size; p++)
            if (p != rank)
                CK(MPI_Irecv(&in[p], 1, MPI_INT, p, 7, MPI_COMM_WORLD, &reqs[n++]));
        for (int p = 0; p < size; p++)
            if (p != rank)
                CK(MPI_Isend(&out[p], 1, MPI_INT, p, 7, MPI_COMM_WORLD, &reqs[n++]));
        CK(MPI_Waitall(n, reqs, MPI_STATUSES_IGNORE));
        for (int p = 0; p < size; p++)
            if (p != rank)
                CHECK(in[p] == p * 10 + rank);
    }

    /* the hub phases */
    for (int phase = 0; phase < NPHASES; phase++) {
        if (rank == 0)
            hub_phase(phase);
        else
            sender_phase(phase, rank);
    }

    /* Cancel an Irecv that never matches */
    {
        int x;
        MPI_Request r;
        int flag = 0, cancelled = 0;
        CK(MPI_Irecv(&x, 1, MPI_INT, (rank + 1) % size, 999, MPI_COMM_WORLD, &r));
        CK(MPI_Cancel(&r));
        CK(MPI_Wait(&r, &st));
        CK(MPI_Test_cancelled(&st, &cancelled));
        CHECK(cancelled);
        /* Request_get_status on a completed Isend does not free the request */
        int v = rank;
        CK(MPI_Irecv(&x, 1, MPI_INT, (rank + size - 1) % size, 8, MPI_COMM_WORLD, &r));
        MPI_Request s;
        CK(MPI_Isend(&v, 1, MPI_INT, (rank + 1) % size, 8, MPI_COMM_WORLD, &s));
        do {
            CK(MPI_Request_get_status(r, &flag, &st));
        } while (!flag);
        CHECK(r != MPI_REQUEST_NULL);
        CK(MPI_Wait(&r, MPI_STATUS_IGNORE));
        CK(MPI_Wait(&s, MPI_STATUS_IGNORE));
        CHECK(x == (rank + size - 1) % size);
        say("cancel + request_get_status:");
        say_all("cancelled=%d got=%d", cancelled, x);
    }

    return finish_ok();
}
