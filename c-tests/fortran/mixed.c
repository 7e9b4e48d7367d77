/* The C half of mixed.f90. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int mixed_c_world(void)
{
    return (int)MPI_Comm_c2f(MPI_COMM_WORLD);
}

/* Completes the Fortran request, checks the Fortran communicator, returns
 * the Fortran integer of a dup of it. */
int mixed_c_side(int fcomm, int freq, int n)
{
    MPI_Comm comm = MPI_Comm_f2c((MPI_Fint)fcomm);
    MPI_Request req = MPI_Request_f2c((MPI_Fint)freq);
    int rank, size, got = 0, sum = 0, rank_in_world;
    MPI_Status st;
    if (MPI_Comm_c2f(comm) != (MPI_Fint)fcomm) {
        fprintf(stderr, "MPI_Comm_c2f(MPI_Comm_f2c(x)) != x\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    if (rank != n) {
        fprintf(stderr, "rank %d in C, %d in Fortran\n", rank, n);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    MPI_Wait(&req, &st);
    /* the Fortran buffer: the value is checked through the allreduce */
    MPI_Allreduce(&st.MPI_SOURCE, &sum, 1, MPI_INT, MPI_SUM, comm);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_in_world);
    MPI_Comm dup;
    MPI_Comm_dup(comm, &dup);
    got = (int)MPI_Comm_c2f(dup);
    if (rank_in_world == 0)
        printf("c: size %d sources sum %d\n", size, sum);
    fflush(stdout);
    return got;
}
