/* ranks: 2 */
/* ferry-test-lib: libstate.so lib/state.c */
/* ferry-test-lib: libstate_tls.so lib/state.c -DSTATE_TLS */
/* ferry-test-link: -ldl */
/* ferry-test-skip: swap one barrier on the world, at its end (the switch fires at the 2nd) */
/* As libstate.c and libstate_tls.c, with both libraries opened by the
 * program with dlopen after MPI_Init (by the name its RUNPATH resolves):
 * a new process must open them again at the same addresses, with their
 * data and the main thread's thread-local block. */
#include "common.h"
#include <dlfcn.h>

typedef long (*step_fn)(long);

static step_fn open_step(const char *lib, const char *sym)
{
    void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "dlopen %s: %s\n", lib, dlerror());
        CHECK(h != NULL);
    }
    step_fn f = (step_fn)dlsym(h, sym);
    CHECK(f != NULL);
    return f;
}

int main(int argc, char **argv)
{
    CK(MPI_Init(&argc, &argv));
    need_ranks(2);
    int rank = world_rank();
    step_fn step = open_step("libstate.so", "state_step");
    step_fn tls = open_step("libstate_tls.so", "tls_step");
    long acc = 0;
    for (int i = 0; i < 3000; i++) {
        acc += step(i + rank) + 3 * tls(i - rank);
        long t;
        CK(MPI_Allreduce(&acc, &t, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD));
        if (i % 500 == 0)
            say("libstate_dlopen: step %d sum %ld", i, t);
    }
    say_all("libstate_dlopen: rank final %ld", acc);
    return finish_ok();
}
