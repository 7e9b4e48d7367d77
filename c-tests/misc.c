/* ranks: 2 */
/* ferry-test-refuses: info object */
/* Environment calls: MPI_Init_thread(MPI_THREAD_FUNNELED), Query_thread,
 * Is_thread_main, Initialized/Finalized, Pcontrol, Wtime monotonic and Wtick,
 * Get_version, Get_library_version, Get_processor_name, Alloc_mem/Free_mem,
 * Info objects, MPI_COMM_SELF, Comm_get_info. Only booleans are printed for
 * values that vary between runs or MPIs. */
#include "common.h"

int main(int argc, char **argv)
{
    int flag = -1;
    CK(MPI_Initialized(&flag));
    CHECK(flag == 0);

    int provided = -1;
    CK(MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided));
    need_ranks(2);
    int rank = world_rank();
    say("init_thread(FUNNELED): provided >= requested: %s",
        provided >= MPI_THREAD_FUNNELED ? "yes" : "no");
    int q = -1, main_thread = 0;
    CK(MPI_Query_thread(&q));
    CK(MPI_Is_thread_main(&main_thread));
    CHECK(q == provided && main_thread);
    CK(MPI_Initialized(&flag));
    CHECK(flag == 1);
    CK(MPI_Finalized(&flag));
    CHECK(flag == 0);
    say("query_thread == provided: yes; is_thread_main: %d; initialized: 1; finalized: 0",
        main_thread);

    /* Pcontrol levels: no effect on results */
    CK(MPI_Pcontrol(0));
    CK(MPI_Pcontrol(2));
    CK(MPI_Pcontrol(1));
    say("pcontrol 0/2/1: returned MPI_SUCCESS");

    /* Wtime is monotonic across a little work and a barrier */
    double t0 = MPI_Wtime();
    volatile double x = 0;
    for (int i = 0; i < 200000; i++)
        x += i * 0.5;
    CK(MPI_Barrier(MPI_COMM_WORLD));
    double t1 = MPI_Wtime();
    int mono = 1;
    double prev = t1;
    for (int i = 0; i < 1000; i++) {
        double t = MPI_Wtime();
        if (t < prev)
            mono = 0;
        prev = t;
    }
    CHECK(t1 >= t0 && mono);
    CHECK(MPI_Wtick() > 0.0);
    say("wtime monotonic: %s; wtick > 0: yes", (t1 >= t0 && mono) ? "yes" : "no");

    /* version information */
    int ver, sub;
    CK(MPI_Get_version(&ver, &sub));
    CHECK(ver == MPI_VERSION && sub == MPI_SUBVERSION && ver >= 3);
    char lib[MPI_MAX_LIBRARY_VERSION_STRING], host[MPI_MAX_PROCESSOR_NAME];
    int liblen, hostlen;
    CK(MPI_Get_library_version(lib, &liblen));
    CK(MPI_Get_processor_name(host, &hostlen));
    CHECK(liblen > 0 && hostlen > 0 && (int)strlen(host) == hostlen);
    say("version >= 3 and matches mpi.h: yes; library version and processor name non-empty: yes");

    /* Alloc_mem / Free_mem */
    int *mem = NULL;
    CK(MPI_Alloc_mem(64 * sizeof(int), MPI_INFO_NULL, &mem));
    for (int i = 0; i < 64; i++)
        mem[i] = i * rank;
    int s = 0, tot = 0;
    for (int i = 0; i < 64; i++)
        s += mem[i];
    CK(MPI_Allreduce(&s, &tot, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD));
    CK(MPI_Free_mem(mem));
    say("alloc_mem sum: %d", tot);

    /* Info */
    MPI_Info info, info2;
    CK(MPI_Info_create(&info));
    CK(MPI_Info_set(info, "ferry_key", "value-1"));
    CK(MPI_Info_set(info, "other", "2"));
    CK(MPI_Info_set(info, "ferry_key", "value-3"));
    int nkeys, found, vlen;
    char val[64], key[MPI_MAX_INFO_KEY];
    CK(MPI_Info_get_nkeys(info, &nkeys));
    CK(MPI_Info_get(info, "ferry_key", sizeof val - 1, val, &found));
    CHECK(nkeys == 2 && found && strcmp(val, "value-3") == 0);
    CK(MPI_Info_get_valuelen(info, "other", &vlen, &found));
    CHECK(found && vlen == 1);
    CK(MPI_Info_dup(info, &info2));
    CK(MPI_Info_delete(info, "other"));
    CK(MPI_Info_get_nkeys(info, &nkeys));
    CHECK(nkeys == 1);
    CK(MPI_Info_get_nthkey(info2, 1, key));
    CK(MPI_Info_get(info, "other", sizeof val - 1, val, &found));
    CHECK(!found);
    say("info: nkeys after delete=%d; dup keeps 2nd key '%s'", nkeys, key);
    CK(MPI_Info_free(&info));
    CK(MPI_Info_free(&info2));
    CHECK(info == MPI_INFO_NULL);

    /* MPI_COMM_SELF */
    int ssz, srk, sv = rank + 5, sres = 0;
    CK(MPI_Comm_size(MPI_COMM_SELF, &ssz));
    CK(MPI_Comm_rank(MPI_COMM_SELF, &srk));
    CK(MPI_Allreduce(&sv, &sres, 1, MPI_INT, MPI_SUM, MPI_COMM_SELF));
    CHECK(ssz == 1 && srk == 0 && sres == sv);
    say("comm_self: size=%d rank=%d allreduce is identity", ssz, srk);

    /* Comm_set_info / get_info round trip (content is implementation-defined) */
    MPI_Info ci;
    CK(MPI_Comm_get_info(MPI_COMM_WORLD, &ci));
    CHECK(ci != MPI_INFO_NULL);
    CK(MPI_Info_free(&ci));

    CK(MPI_Barrier(MPI_COMM_WORLD));
    say("OK");
    CK(MPI_Finalize());
    report_pids(rank);
    CK(MPI_Finalized(&flag));
    CHECK(flag == 1);
    return 0;
}
