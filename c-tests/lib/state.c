/* A library of the program with state of its own, for the libstate*.c
 * tests (built by scripts/c-tests.sh from their "ferry-test-lib" headers):
 *   - static data: a counter, a flag, a pointer to a table on the heap;
 *   - a table allocated by the library's constructor (before main) and
 *     changed at every call;
 *   - with -DSTATE_TLS, the same state thread-local (__thread);
 *   - a communicator of its own, duplicated at the first call;
 *   - it calls MPI itself (it needs libmpi, as real application libraries
 *     do): it is still the program's.
 * If a move lost any of it, the sums the program prints would change. */
#include <mpi.h>
#include <stdlib.h>

#ifdef STATE_TLS
#define STATE __thread
#define FN(name) tls_##name
#else
#define STATE
#define FN(name) state_##name
#endif

static STATE long counter;
static STATE double *table;
static STATE int initialized;
static long *made_at_start;
static int calls;
/* A communicator of the library's own, as real libraries keep (a handle
 * value in its data: on Open MPI, one of ferry's virtual handles). */
static MPI_Comm own = MPI_COMM_NULL;

__attribute__((constructor)) static void made_before_main(void)
{
    made_at_start = malloc(32 * sizeof *made_at_start);
    for (int i = 0; i < 32; i++)
        made_at_start[i] = 3 * i + 1;
}

long FN(step)(long x)
{
    if (!initialized) {
        table = malloc(64 * sizeof *table);
        for (int i = 0; i < 64; i++)
            table[i] = i;
        initialized = 1;
    }
    if (own == MPI_COMM_NULL)
        MPI_Comm_dup(MPI_COMM_WORLD, &own);
    int rank = 0;
    MPI_Comm_rank(own, &rank);
    calls++;
    counter += x;
    unsigned long c = (unsigned long)counter;
    table[c % 64] += 1.0;
    made_at_start[(c + (unsigned long)rank) % 32] += x % 7;
    return counter + (long)table[c % 64] + made_at_start[c % 32] + calls % 5;
}
