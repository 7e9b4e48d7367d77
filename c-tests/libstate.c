/* ranks: 2 */
/* ferry-test-lib: libstate.so lib/state.c */
/* ferry-test-link: -lstate */
/* ferry-test-skip: swap one barrier on the world, at its end (the switch fires at the 2nd) */
/* A program whose state lives partly in a shared library of its own
 * (lib/state.c: static data, a heap table, a table its constructor made).
 * A move that did not carry the library's data changes the sums. */
#include "common.h"

long state_step(long);

int main(int argc, char **argv)
{
    CK(MPI_Init(&argc, &argv));
    need_ranks(2);
    int rank = world_rank();
    long acc = 0;
    for (int i = 0; i < 3000; i++) {
        acc += state_step(i + rank);
        long t;
        CK(MPI_Allreduce(&acc, &t, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD));
        if (i % 500 == 0)
            say("libstate: step %d sum %ld", i, t);
    }
    say_all("libstate: rank final %ld", acc);
    return finish_ok();
}
