/* ranks: 3 */
/* ferry-test-refuses: cannot be made again in a new process */
/* ferry-test-skip: swap one barrier on the world, at its end (the switch fires at the 2nd) */
/* A communicator freed by one rank while the others go on using it:
 * rank 0 frees its duplicate of MPI_COMM_WORLD at once, ranks 1 and 2
 * exchange a token over theirs for a while (MPI_Comm_free is local in
 * effect: the others' handles stay valid) and free it at the end. A
 * regroup keeps such a communicator as it is; a migration or checkpoint
 * while it is half freed is refused, saying so (a new process could not
 * make it again), and the job goes on. */
#include "common.h"

#define ROUNDS 100

int main(int argc, char **argv)
{
    CK(MPI_Init(&argc, &argv));
    need_ranks(3);
    int rank = world_rank();
    MPI_Comm dup;
    CK(MPI_Comm_dup(MPI_COMM_WORLD, &dup));
    if (rank == 0)
        CK(MPI_Comm_free(&dup));
    long long token = 1, sum = 0;
    for (int i = 0; i < ROUNDS; i++) {
        if (rank == 1) {
            token = (token * 31 + i) % 1000003;
            CK(MPI_Send(&token, 1, MPI_LONG_LONG, 2, i, dup));
            CK(MPI_Recv(&token, 1, MPI_LONG_LONG, 2, i, dup, MPI_STATUS_IGNORE));
        } else if (rank == 2) {
            CK(MPI_Recv(&token, 1, MPI_LONG_LONG, 1, i, dup, MPI_STATUS_IGNORE));
            token = (token * 7 + 3) % 1000003;
            CK(MPI_Send(&token, 1, MPI_LONG_LONG, 1, i, dup));
        }
        long long mine = rank == 0 ? i : token;
        CK(MPI_Allreduce(&mine, &sum, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD));
    }
    if (rank != 0)
        CK(MPI_Comm_free(&dup));
    CHECK(dup == MPI_COMM_NULL);
    say("freed_comm: %d rounds, last sum %lld", ROUNDS, sum);
    return finish_ok();
}
