/* ranks: 2 */
/* ferry-test-lib: libstate_tls.so lib/state.c -DSTATE_TLS */
/* ferry-test-link: -lstate_tls */
/* ferry-test-skip: swap one barrier on the world, at its end (the switch fires at the 2nd) */
/* As libstate.c, with the library's state thread-local (__thread): the
 * main thread's block of the library must be carried. */
#include "common.h"

long tls_step(long);

int main(int argc, char **argv)
{
    CK(MPI_Init(&argc, &argv));
    need_ranks(2);
    int rank = world_rank();
    long acc = 0;
    for (int i = 0; i < 3000; i++) {
        acc += tls_step(i + rank);
        long t;
        CK(MPI_Allreduce(&acc, &t, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD));
        if (i % 500 == 0)
            say("libstate_tls: step %d sum %ld", i, t);
    }
    say_all("libstate_tls: rank final %ld", acc);
    return finish_ok();
}
