/* leave.c: N original ranks; all spawn 1 child (collective over WORLD),
 * merge the intercomm, split so the child takes the place of rank LEAVER.
 * The leaver then disconnects from every communicator it shares and leaves
 * (MODE: fin = MPI_Finalize+exit(0), exit = _exit(0) w/o finalize,
 *        finexit = finalize then _exit, sleep = stay asleep forever (today)).
 * The others + child loop: Allreduce on the new comm for STEPS steps,
 * sleeping 100 ms per step, then finalize. Output: sum each 10 steps.
 * Usage: leave MODE STEPS [KILLSELF]  */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>
static int NLEAVE = 1; /* ranks 1..NLEAVE leave (env LEAVE_N) */
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static char host[64];
int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    gethostname(host, sizeof host);
    if (getenv("LEAVE_N")) NLEAVE = atoi(getenv("LEAVE_N"));
    const char *mode = argc > 1 ? argv[1] : "fin";
    int steps = argc > 2 ? atoi(argv[2]) : 30;
    MPI_Comm parent, inter, merged, work;
    MPI_Comm_get_parent(&parent);
    int wrank, wsize;
    MPI_Comm_rank(MPI_COMM_WORLD, &wrank);
    MPI_Comm_size(MPI_COMM_WORLD, &wsize);
    const char *target = getenv("LEAVE_TARGET"); /* host for the child */
    if (parent == MPI_COMM_NULL) {
        MPI_Info info = MPI_INFO_NULL;
        if (target) { MPI_Info_create(&info); MPI_Info_set(info, "host", target); }
        MPI_Comm_spawn(argv[0], argv + 1, NLEAVE, info, 0, MPI_COMM_WORLD, &inter, MPI_ERRCODES_IGNORE);
        MPI_Intercomm_merge(inter, 0, &merged);
    } else {
        inter = parent;
        MPI_Intercomm_merge(inter, 1, &merged);
    }
    int mrank, msize; MPI_Comm_rank(merged, &mrank); MPI_Comm_size(merged, &msize);
    /* child (last in merged) takes key LEAVER; leaver gets color UNDEFINED */
    int color = 0, key = mrank;
    if (parent == MPI_COMM_NULL && wrank >= 1 && wrank <= NLEAVE) color = MPI_UNDEFINED;
    if (parent != MPI_COMM_NULL) key = 1 + wrank; /* child i takes rank 1+i */
    MPI_Comm_split(merged, color, key, &work);
    fprintf(stderr, "[%s pid %d] %s wrank %d split done\n", host, getpid(), parent==MPI_COMM_NULL?"orig":"child", wrank);
    /* everyone drops the spawn communicators: collective */
    if (getenv("LEAVE_FREE")) { MPI_Comm_free(&merged); MPI_Comm_free(&inter); }
    else {
        if (getenv("LEAVE_FREE_MERGED")) MPI_Comm_free(&merged); else MPI_Comm_disconnect(&merged);
        fprintf(stderr, "[%s pid %d] merged disconnected\n", host, getpid());
        MPI_Comm_disconnect(&inter);
    }
    fprintf(stderr, "[%s pid %d] disconnected\n", host, getpid());
    if (parent == MPI_COMM_NULL && wrank >= 1 && wrank <= NLEAVE) {
        double t0 = now();
        if (!strcmp(mode, "sleep")) { for(;;) sleep(100); }
        if (!strcmp(mode, "exit")) { fprintf(stderr, "[%s pid %d] leaver _exit\n", host, getpid()); _exit(0); }
        MPI_Finalize();
        fprintf(stderr, "[%s pid %d] leaver finalized in %.3f s\n", host, getpid(), now()-t0);
        if (!strcmp(mode, "finexit")) _exit(0);
        return 0;
    }
    int r; MPI_Comm_rank(work, &r);
    for (int i = 0; i < steps; i++) {
        int v = r + i, s;
        MPI_Allreduce(&v, &s, 1, MPI_INT, MPI_SUM, work);
        if (r == 0 && i % 10 == 0) printf("step %d sum %d\n", i, s), fflush(stdout);
        usleep(100000);
    }
    double t0 = now();
    MPI_Comm_free(&work);
    MPI_Finalize();
    fprintf(stderr, "[%s pid %d] rank %d finalized in %.3f s\n", host, getpid(), r, now()-t0);
    return 0;
}
