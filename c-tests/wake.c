/* ranks: 2 */
/* ferry-test-skip: swap one barrier on the world, at its end (the switch fires at the 2nd) */
/* Blocking calls that wait long enough for the library to interrupt them:
 * rank 1 blocks in MPI_Recv, MPI_Probe, MPI_Wait and MPI_Waitall on
 * messages rank 0 sends only after a pause. Under the library's test switch
 * FERRY_TEST_WAKE_AFTER=K the process's MIG_WAKE flag is raised after its
 * K-th call; the blocked call must notice it (the log says "woken ... while
 * blocked in ..."), go back to waiting, and return the right message. */
#include "common.h"
#include <unistd.h>

int main(int argc, char **argv)
{
    CK(MPI_Init(&argc, &argv));
    need_ranks(2);
    int rank = world_rank();
    int got[5] = {0, 0, 0, 0, 0}, tags[2] = {0, 0};
    if (rank == 0) {
        for (int i = 1; i <= 5; i++) {
            usleep(100000);
            int v = 10 * i;
            CK(MPI_Send(&v, 1, MPI_INT, 1, i, MPI_COMM_WORLD));
        }
    } else {
        MPI_Status st;
        CK(MPI_Recv(&got[0], 1, MPI_INT, 0, 1, MPI_COMM_WORLD, &st));
        tags[0] = st.MPI_TAG;
        CK(MPI_Probe(0, 2, MPI_COMM_WORLD, &st));
        tags[1] = st.MPI_TAG;
        CK(MPI_Recv(&got[1], 1, MPI_INT, st.MPI_SOURCE, st.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
        MPI_Request r, rs[2];
        CK(MPI_Irecv(&got[2], 1, MPI_INT, 0, 3, MPI_COMM_WORLD, &r));
        CK(MPI_Wait(&r, &st));
        CK(MPI_Irecv(&got[3], 1, MPI_INT, 0, 4, MPI_COMM_WORLD, &rs[0]));
        CK(MPI_Irecv(&got[4], 1, MPI_INT, 0, 5, MPI_COMM_WORLD, &rs[1]));
        CK(MPI_Waitall(2, rs, MPI_STATUSES_IGNORE));
    }
    say_all("recv %d (tag %d), probe tag %d + recv %d, wait %d, waitall %d %d", got[0], tags[0],
            tags[1], got[1], got[2], got[3], got[4]);
    return finish_ok();
}
