/* ranks: 2 */
/* ferry-test-skip: swap one barrier on the world, at its end (the switch fires at the 2nd) */
/* MPI_BOTTOM with absolute-address struct types: Get_address of scattered
 * variables (globals, stack, heap), Type_create_struct/hindexed with
 * absolute displacements, send and receive from MPI_BOTTOM, a collective
 * (Bcast) on MPI_BOTTOM, and Aint_add/Aint_diff. */
#include "common.h"

static int g_counter;
static double g_scale;

int main(int argc, char **argv)
{
    CK(MPI_Init(&argc, &argv));
    need_ranks(2);
    int rank = world_rank();
    const MPI_Comm W = MPI_COMM_WORLD;

    long stack_id = 0;
    int *heap = calloc(4, sizeof(int));
    CHECK(heap != NULL);
    if (rank == 0) {
        g_counter = 41;
        g_scale = 2.5;
        stack_id = 9000000001L;
        for (int i = 0; i < 4; i++)
            heap[i] = 7 * (i + 1);
    }

    /* one struct type covering four unrelated objects by absolute address */
    MPI_Aint addr[4];
    CK(MPI_Get_address(&g_counter, &addr[0]));
    CK(MPI_Get_address(&g_scale, &addr[1]));
    CK(MPI_Get_address(&stack_id, &addr[2]));
    CK(MPI_Get_address(heap, &addr[3]));
    int bl[4] = {1, 1, 1, 4};
    MPI_Datatype types[4] = {MPI_INT, MPI_DOUBLE, MPI_LONG, MPI_INT};
    MPI_Datatype abs_t;
    CK(MPI_Type_create_struct(4, bl, addr, types, &abs_t));
    CK(MPI_Type_commit(&abs_t));

    /* Aint_diff / Aint_add agree with the addresses */
    MPI_Aint d = MPI_Aint_diff(addr[3], addr[0]);
    CHECK(MPI_Aint_add(addr[0], d) == addr[3]);

    MPI_Status st;
    int count;
    if (rank == 0) {
        CK(MPI_Send(MPI_BOTTOM, 1, abs_t, 1, 1, W));
    } else {
        CK(MPI_Recv(MPI_BOTTOM, 1, abs_t, 0, 1, W, &st));
        CK(MPI_Get_count(&st, abs_t, &count));
        CHECK(count == 1);
        CHECK(g_counter == 41 && g_scale == 2.5 && stack_id == 9000000001L && heap[3] == 28);
    }
    say("send/recv from MPI_BOTTOM:");
    say_all("counter=%d scale=%.2f stack=%ld heap=%d %d %d %d", g_counter, g_scale, stack_id,
            heap[0], heap[1], heap[2], heap[3]);

    /* receive side: absolute hindexed of the heap array reversed, from a
     * plain contiguous send */
    MPI_Aint raddr[4];
    for (int i = 0; i < 4; i++)
        CK(MPI_Get_address(&heap[3 - i], &raddr[i]));
    int ones[4] = {1, 1, 1, 1};
    MPI_Datatype rev_t;
    CK(MPI_Type_create_hindexed(4, ones, raddr, MPI_INT, &rev_t));
    CK(MPI_Type_commit(&rev_t));
    if (rank == 1) {
        int src[4] = {1, 2, 3, 4};
        CK(MPI_Send(src, 4, MPI_INT, 0, 2, W));
    } else {
        CK(MPI_Recv(MPI_BOTTOM, 1, rev_t, 1, 2, W, MPI_STATUS_IGNORE));
        CHECK(heap[0] == 4 && heap[3] == 1);
    }
    say("recv into MPI_BOTTOM with a reversed absolute hindexed type:");
    say_all("heap=%d %d %d %d", heap[0], heap[1], heap[2], heap[3]);

    /* Bcast on MPI_BOTTOM with the absolute type, root 1 */
    if (rank == 1) {
        g_counter = -5;
        g_scale = -0.75;
        stack_id = 12345;
    }
    CK(MPI_Bcast(MPI_BOTTOM, 1, abs_t, 1, W));
    CHECK(g_counter == -5 && g_scale == -0.75 && stack_id == 12345);
    say("bcast on MPI_BOTTOM from rank 1:");
    say_all("counter=%d scale=%.2f stack=%ld heap=%d %d %d %d", g_counter, g_scale, stack_id,
            heap[0], heap[1], heap[2], heap[3]);

    CK(MPI_Type_free(&abs_t));
    CK(MPI_Type_free(&rev_t));
    free(heap);
    return finish_ok();
}
