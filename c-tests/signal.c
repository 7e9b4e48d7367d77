/* ranks: 3 */
/* ferry-test-asks: yes (SIGUSR2) */
/* A regroup asked for with a signal: rank 1 raises SIGUSR2 in the middle of
 * a ring exchange (only when libferry.so is loaded: without it the signal
 * would end the process). The output is the same with and without it. */
#include "common.h"
#include <ferry.h>
#include <signal.h>

int main(int argc, char **argv)
{
    CK(MPI_Init(&argc, &argv));
    need_ranks(3);
    int rank = world_rank(), size = world_size();
    int right = (rank + 1) % size, left = (rank + size - 1) % size;
    long acc = 0;
    for (int it = 0; it < 100; it++) {
        if (it == 40 && rank == 1 && ferry_is_loaded())
            CHECK(raise(SIGUSR2) == 0);
        int out = rank * 1000 + it, in;
        CK(MPI_Sendrecv(&out, 1, MPI_INT, right, it, &in, 1, MPI_INT, left, it, MPI_COMM_WORLD,
                        MPI_STATUS_IGNORE));
        acc += in;
        if (it % 10 == 9) {
            long total;
            CK(MPI_Allreduce(&acc, &total, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD));
            acc = total % 1000003;
        }
    }
    CK(MPI_Barrier(MPI_COMM_WORLD));
    CHECK(!ferry_is_loaded() || ferry_regroups() >= 1);
    say("signal: ring done");
    say_all("acc=%ld", acc);
    finish_ok();
    return 0;
}
