/* ranks: 3 */
/* ferry-test-refuses: RMA window */
/* One-sided communication: Win_create and Win_allocate; Put, Get and
 * Accumulate in fence epochs; passive target Lock/Unlock (exclusive and
 * shared), Lock_all/Flush/Unlock_all; Fetch_and_op, Compare_and_swap,
 * Get_accumulate; Win_get_group; Win_free. */
#include "common.h"

int main(int argc, char **argv)
{
    CK(MPI_Init(&argc, &argv));
    need_ranks(3);
    int rank = world_rank(), size = world_size();
    const MPI_Comm W = MPI_COMM_WORLD;
    char buf[256];

    /* --- Win_create over a local array, fence epochs --- */
    int local[8];
    for (int i = 0; i < 8; i++)
        local[i] = -1;
    MPI_Win win;
    CK(MPI_Win_create(local, sizeof local, sizeof(int), MPI_INFO_NULL, W, &win));
    MPI_Group wg;
    int gsize;
    CK(MPI_Win_get_group(win, &wg));
    CK(MPI_Group_size(wg, &gsize));
    CHECK(gsize == size);
    CK(MPI_Group_free(&wg));

    /* Put: every rank writes rank+1 into slot [rank] of every other rank */
    CK(MPI_Win_fence(0, win));
    int mine = rank + 1;
    for (int t = 0; t < size; t++)
        if (t != rank)
            CK(MPI_Put(&mine, 1, MPI_INT, t, rank, 1, MPI_INT, win));
    local[rank] = mine;
    CK(MPI_Win_fence(0, win));
    for (int s = 0; s < size; s++)
        CHECK(local[s] == s + 1);

    /* Get: read slots 0..2 of the right neighbour into slots 4..6 locally */
    int got[3] = {0, 0, 0};
    CK(MPI_Get(got, 3, MPI_INT, (rank + 1) % size, 0, 3, MPI_INT, win));
    CK(MPI_Win_fence(0, win));
    CHECK(got[0] == 1 && got[2] == 3);

    /* Accumulate SUM into slot 7 of rank 0 (initially -1) */
    int contrib = 10 * (rank + 1);
    CK(MPI_Accumulate(&contrib, 1, MPI_INT, 0, 7, 1, MPI_INT, MPI_SUM, win));
    CK(MPI_Win_fence(0, win));
    if (rank == 0)
        CHECK(local[7] == 59);
    say("win_create + fence (put / get / accumulate):");
    say_all("local %s got %s", fmt_ints(buf, sizeof buf, local, 8),
            fmt_ints(buf + 128, 128, got, 3));
    CK(MPI_Win_free(&win));
    CHECK(win == MPI_WIN_NULL);

    /* --- Win_allocate, passive target --- */
    int *mem = NULL;
    MPI_Win aw;
    CK(MPI_Win_allocate(4 * sizeof(int), sizeof(int), MPI_INFO_NULL, W, &mem, &aw));
    CHECK(mem != NULL);
    CK(MPI_Win_lock(MPI_LOCK_EXCLUSIVE, rank, 0, aw));
    for (int i = 0; i < 4; i++)
        mem[i] = 0;
    CK(MPI_Win_unlock(rank, aw));
    CK(MPI_Barrier(W));

    /* read-modify-write of rank 0's mem[0] under an exclusive lock, 5 times
     * per rank: the final value must be 5*size */
    for (int k = 0; k < 5; k++) {
        int v = 0;
        CK(MPI_Win_lock(MPI_LOCK_EXCLUSIVE, 0, 0, aw));
        CK(MPI_Get(&v, 1, MPI_INT, 0, 0, 1, MPI_INT, aw));
        CK(MPI_Win_flush(0, aw));
        v += 1;
        CK(MPI_Put(&v, 1, MPI_INT, 0, 0, 1, MPI_INT, aw));
        CK(MPI_Win_unlock(0, aw));
    }

    /* Fetch_and_op on rank 1's mem[1] under a shared lock: fetched values
     * are a permutation of 0..size-1 */
    int one = 1, fetched = -1;
    CK(MPI_Win_lock(MPI_LOCK_SHARED, 1, 0, aw));
    CK(MPI_Fetch_and_op(&one, &fetched, MPI_INT, 1, 1, MPI_SUM, aw));
    CK(MPI_Win_unlock(1, aw));

    /* Compare_and_swap on rank 2's mem[2]: exactly one rank wins 0 -> rank+100 */
    int cmp = 0, swap = rank + 100, old = -1;
    CK(MPI_Win_lock(MPI_LOCK_SHARED, 2, 0, aw));
    CK(MPI_Compare_and_swap(&swap, &cmp, &old, MPI_INT, 2, 2, aw));
    CK(MPI_Win_unlock(2, aw));
    int won = old == 0;

    /* Lock_all + Accumulate to everyone's mem[3] + Flush_all + Unlock_all */
    CK(MPI_Win_lock_all(0, aw));
    for (int t = 0; t < size; t++) {
        int a = (rank + 1) * (t + 1);
        CK(MPI_Accumulate(&a, 1, MPI_INT, t, 3, 1, MPI_INT, MPI_SUM, aw));
    }
    CK(MPI_Win_flush_all(aw));
    CK(MPI_Win_unlock_all(aw));
    CK(MPI_Barrier(W));

    /* everyone reads its own window under a lock and reports */
    int snap[4];
    CK(MPI_Win_lock(MPI_LOCK_SHARED, rank, 0, aw));
    memcpy(snap, mem, sizeof snap);
    CK(MPI_Win_unlock(rank, aw));

    /* Get_accumulate (fetch then add 1000) on rank 0's mem[0], one at a time
     * in rank order so the fetched values are deterministic */
    int ga_prev = -1;
    for (int turn = 0; turn < size; turn++) {
        if (turn == rank) {
            int add = 1000;
            CK(MPI_Win_lock(MPI_LOCK_EXCLUSIVE, 0, 0, aw));
            CK(MPI_Get_accumulate(&add, 1, MPI_INT, &ga_prev, 1, MPI_INT, 0, 0, 1, MPI_INT,
                                  MPI_SUM, aw));
            CK(MPI_Win_unlock(0, aw));
        }
        CK(MPI_Barrier(W));
    }
    CHECK(ga_prev == 5 * size + 1000 * rank);

    /* gather the fetched values and the CAS winners */
    int fetched_all[3], won_all[3];
    CK(MPI_Allgather(&fetched, 1, MPI_INT, fetched_all, 1, MPI_INT, W));
    CK(MPI_Allgather(&won, 1, MPI_INT, won_all, 1, MPI_INT, W));
    qsort(fetched_all, 3, sizeof(int), cmp_int);
    for (int i = 0; i < size; i++)
        CHECK(fetched_all[i] == i);
    int winners = won_all[0] + won_all[1] + won_all[2];
    CHECK(winners == 1);
    if (rank == 0)
        CHECK(snap[0] == 5 * size);
    if (rank == 1)
        CHECK(snap[1] == size);
    CHECK(snap[3] == 6 * (rank + 1));
    if (rank == 2)
        CHECK(snap[2] >= 100 && snap[2] < 100 + size);
    say("win_allocate + passive target:");
    say("  fetch_and_op fetched (sorted): %s", fmt_ints(buf, sizeof buf, fetched_all, 3));
    say("  compare_and_swap winners: %d", winners);
    /* rank 2's mem[2] depends on who won the CAS: print it as 'winner' */
    if (rank == 2)
        snap[2] = snap[2] >= 100 ? 1 : 0;
    say_all("mem %s (mem[2] on rank 2 shown as 1 = swapped) get_accumulate fetched %d",
            fmt_ints(buf, sizeof buf, snap, 4), ga_prev);

    CK(MPI_Win_free(&aw));
    return finish_ok();
}
