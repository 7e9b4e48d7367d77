/* ranks: 2 */
/* ferry-test-refuses: error handler */
/* ferry-test-skip: swap one barrier on the world, at its end (the switch fires at the 2nd) */
/* Error handling: MPI_ERRORS_RETURN on a communicator, then deliberately bad
 * calls (invalid rank, tag, count, root, communicator MPI_COMM_NULL,
 * datatype MPI_DATATYPE_NULL, op MPI_OP_NULL); the error CLASS is printed by
 * name (codes and strings differ between MPIs). A user error handler from
 * Comm_create_errhandler records its calls; Comm_call_errhandler;
 * Comm_get_errhandler; Add_error_class/code/string. The communicator keeps
 * working after the errors. */
#include "common.h"

static const char *class_name(int c)
{
    static const struct {
        int cls;
        const char *name;
    } t[] = {
        {MPI_SUCCESS, "MPI_SUCCESS"},     {MPI_ERR_BUFFER, "MPI_ERR_BUFFER"},
        {MPI_ERR_COUNT, "MPI_ERR_COUNT"}, {MPI_ERR_TYPE, "MPI_ERR_TYPE"},
        {MPI_ERR_TAG, "MPI_ERR_TAG"},     {MPI_ERR_COMM, "MPI_ERR_COMM"},
        {MPI_ERR_RANK, "MPI_ERR_RANK"},   {MPI_ERR_ROOT, "MPI_ERR_ROOT"},
        {MPI_ERR_GROUP, "MPI_ERR_GROUP"}, {MPI_ERR_OP, "MPI_ERR_OP"},
        {MPI_ERR_ARG, "MPI_ERR_ARG"},     {MPI_ERR_OTHER, "MPI_ERR_OTHER"},
        {MPI_ERR_INTERN, "MPI_ERR_INTERN"}, {MPI_ERR_REQUEST, "MPI_ERR_REQUEST"},
        {MPI_ERR_UNKNOWN, "MPI_ERR_UNKNOWN"}, {MPI_ERR_TRUNCATE, "MPI_ERR_TRUNCATE"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (t[i].cls == c)
            return t[i].name;
    return "(other class)";
}

/* report one failed call: class by name, string non-empty */
static void report(const char *what, int rc)
{
    int cls = -1, len = 0;
    char msg[MPI_MAX_ERROR_STRING];
    CHECK(rc != MPI_SUCCESS);
    CK(MPI_Error_class(rc, &cls));
    CK(MPI_Error_string(rc, msg, &len));
    CHECK(len > 0 && len < MPI_MAX_ERROR_STRING);
    say("  %-28s -> %s, string length>0: %s", what, class_name(cls), len > 0 ? "yes" : "no");
}

static int handler_calls;
static int handler_last_class;
static MPI_Comm handler_last_comm;

static void my_handler(MPI_Comm *comm, int *code, ...)
{
    handler_calls++;
    handler_last_comm = *comm;
    MPI_Error_class(*code, &handler_last_class);
}

int main(int argc, char **argv)
{
    CK(MPI_Init(&argc, &argv));
    need_ranks(2);
    int rank = world_rank();
    int v = 1, rc;

    /* errors not tied to a communicator go to MPI_COMM_WORLD (MPI 3) or
     * MPI_COMM_SELF (MPI 4): make both return */
    CK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    CK(MPI_Comm_set_errhandler(MPI_COMM_SELF, MPI_ERRORS_RETURN));
    MPI_Comm c;
    CK(MPI_Comm_dup(MPI_COMM_WORLD, &c));
    CK(MPI_Comm_set_errhandler(c, MPI_ERRORS_RETURN));
    MPI_Errhandler eh;
    CK(MPI_Comm_get_errhandler(c, &eh));
    CHECK(eh == MPI_ERRORS_RETURN);
    CK(MPI_Errhandler_free(&eh));

    say("bad calls with MPI_ERRORS_RETURN (error class):");
    /* only rank 0 makes the local bad calls (they never reach a peer) */
    if (rank == 0) {
        report("Send to rank 99", MPI_Send(&v, 1, MPI_INT, 99, 0, c));
        report("Send with tag -5", MPI_Send(&v, 1, MPI_INT, 1, -5, c));
        report("Send with count -1", MPI_Send(&v, -1, MPI_INT, 1, 0, c));
        report("Send on MPI_COMM_NULL", MPI_Send(&v, 1, MPI_INT, 1, 0, MPI_COMM_NULL));
        report("Send with MPI_DATATYPE_NULL", MPI_Send(&v, 1, MPI_DATATYPE_NULL, 1, 0, c));
        report("Recv from rank -7", MPI_Recv(&v, 1, MPI_INT, -7, 0, c, MPI_STATUS_IGNORE));
        MPI_Request r;
        report("Isend to rank 99", MPI_Isend(&v, 1, MPI_INT, 99, 0, c, &r));
        int sz;
        report("Comm_size(MPI_COMM_NULL)", MPI_Comm_size(MPI_COMM_NULL, &sz));
    }
    /* collective bad calls are made by every rank consistently */
    int out = 0;
    rc = MPI_Bcast(&v, 1, MPI_INT, 5, c);
    report("Bcast with root 5", rc);
    rc = MPI_Allreduce(&v, &out, 1, MPI_INT, MPI_OP_NULL, c);
    report("Allreduce with MPI_OP_NULL", rc);

    /* the communicator still works */
    int in = rank + 1;
    CK(MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_SUM, c));
    CHECK(out == 3);
    say("allreduce on c after errors: %d", out);

    /* user error handler */
    MPI_Errhandler mine;
    MPI_Comm c2;
    CK(MPI_Comm_create_errhandler(my_handler, &mine));
    CK(MPI_Comm_dup(MPI_COMM_WORLD, &c2));
    CK(MPI_Comm_set_errhandler(c2, mine));
    if (rank == 0) {
        /* what the call returns after a user handler differs between MPIs
         * (MPICH 5 returns MPI_SUCCESS), so only the handler is checked */
        (void)MPI_Send(&v, 1, MPI_INT, 42, 0, c2);
        CHECK(handler_calls == 1 && handler_last_class == MPI_ERR_RANK);
        int cmp;
        CK(MPI_Comm_compare(handler_last_comm, c2, &cmp));
        CHECK(cmp == MPI_IDENT);
        say("user handler after Send to rank 42: calls=%d class=%s", handler_calls,
            class_name(handler_last_class));
    }
    /* Comm_call_errhandler on every rank */
    handler_calls = 0;
    CK(MPI_Comm_call_errhandler(c2, MPI_ERR_OTHER));
    CHECK(handler_calls == 1 && handler_last_class == MPI_ERR_OTHER);
    say("comm_call_errhandler(MPI_ERR_OTHER): calls=%d class=%s", handler_calls,
        class_name(handler_last_class));
    /* dup inherits the error handler */
    MPI_Comm c3;
    CK(MPI_Comm_dup(c2, &c3));
    handler_calls = 0;
    if (rank == 1) {
        (void)MPI_Recv(&v, 1, MPI_INT, 77, 0, c3, MPI_STATUS_IGNORE);
        CHECK(handler_calls == 1 && handler_last_class == MPI_ERR_RANK);
    }
    int calls_all[2];
    CK(MPI_Gather(&handler_calls, 1, MPI_INT, calls_all, 1, MPI_INT, 0, MPI_COMM_WORLD));
    say("dup inherits the user handler: calls on rank 0=%d rank 1=%d", calls_all[0], calls_all[1]);

    /* user-defined error class/code/string */
    int ucls, ucode;
    CK(MPI_Add_error_class(&ucls));
    CK(MPI_Add_error_code(ucls, &ucode));
    CK(MPI_Add_error_string(ucode, "ferry test error"));
    char msg[MPI_MAX_ERROR_STRING];
    int len, back;
    CK(MPI_Error_string(ucode, msg, &len));
    CK(MPI_Error_class(ucode, &back));
    CHECK(back == ucls && strcmp(msg, "ferry test error") == 0);
    handler_calls = 0;
    CK(MPI_Comm_call_errhandler(c2, ucode));
    CHECK(handler_calls == 1 && handler_last_class == ucls);
    say("user error code: string '%s', class matches: yes, handler called: %d", msg,
        handler_calls);

    CK(MPI_Errhandler_free(&mine));
    CK(MPI_Comm_free(&c3));
    CK(MPI_Comm_free(&c2));
    CK(MPI_Comm_free(&c));
    return finish_ok();
}
