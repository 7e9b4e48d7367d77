/* Regroups a program asks for itself, through the C API (include/ferry.h),
 * at chosen points, and the check that each happened. Without the library
 * ferry_regroup() does nothing and the checks pass. */
#ifndef FERRY_CTEST_ASKED_H
#define FERRY_CTEST_ASKED_H

#include "common.h"
#include <ferry.h>

static long expect_regroups = 0;

/* A regroup asked for before these returns before anyone leaves the third
 * (a rank may enter one more collective before the command reaches it). */
static inline void settle(void)
{
    for (int i = 0; i < 3; i++)
        CK(MPI_Barrier(MPI_COMM_WORLD));
}

/* After a section: with the library, the regroup asked for has happened. */
static inline void regrouped(const char *what)
{
    if (!ferry_is_loaded())
        return;
    expect_regroups++;
    if (ferry_regroups() < expect_regroups) {
        fprintf(stderr, "rank %d: %s: %ld regroups, expected %ld\n", world_rank(), what,
                ferry_regroups(), expect_regroups);
        CHECK(ferry_regroups() >= expect_regroups);
    }
    expect_regroups = ferry_regroups();
}

/* World rank 0 asks for a regroup here, which every rank waits for in
 * settle(); then the check. */
static inline void regroup_here(const char *what)
{
    if (world_rank() == 0)
        CHECK(ferry_regroup() == FERRY_OK || !ferry_is_loaded());
    settle();
    regrouped(what);
}

#endif
