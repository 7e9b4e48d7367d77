! ranks: 3
! ferry-test-refuses: cannot be made again in a new process
! use mpi_f08: point-to-point with MPI_ANY_SOURCE and type(MPI_Status),
! MPI_STATUS_IGNORE, collectives with MPI_IN_PLACE, a derived type, a
! sub-communicator, nonblocking requests.
program f08
  use mpi_f08
  implicit none
  integer :: rank, size, i, v, cnt, a(4), got(2, 2), line(4), all(4, 0:2)
  type(MPI_Status) :: st
  type(MPI_Comm) :: sub
  type(MPI_Datatype) :: pair
  type(MPI_Request) :: reqs(2)

  call MPI_Init()
  call MPI_Comm_rank(MPI_COMM_WORLD, rank)
  call MPI_Comm_size(MPI_COMM_WORLD, size)

  if (rank == 0) then
    do i = 1, 2
      call MPI_Recv(v, 1, MPI_INTEGER, MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, st)
      call MPI_Get_count(st, MPI_INTEGER, cnt)
      got(:, st%MPI_SOURCE) = (/ v, st%MPI_TAG /)
    end do
    print '(a,*(1x,i0))', 'anysource:', got
  else
    call MPI_Send(rank * 5, 1, MPI_INTEGER, 0, rank + 20, MPI_COMM_WORLD)
  end if

  a = (/ (rank * 4 + i, i = 1, 4) /)
  call MPI_Allreduce(MPI_IN_PLACE, a, 4, MPI_INTEGER, MPI_SUM, MPI_COMM_WORLD)
  if (rank == 0) print '(a,*(1x,i0))', 'allreduce in place:', a

  call MPI_Type_contiguous(2, MPI_INTEGER, pair)
  call MPI_Type_commit(pair)
  call MPI_Comm_split(MPI_COMM_WORLD, 0, -rank, sub)
  call MPI_Comm_rank(sub, v)
  a = (/ v, v * 10, -1, -1 /)
  call MPI_Irecv(a(3), 1, pair, modulo(v - 1, size), 1, sub, reqs(1))
  call MPI_Isend(a(1), 1, pair, modulo(v + 1, size), 1, sub, reqs(2))
  call MPI_Waitall(2, reqs, MPI_STATUSES_IGNORE)
  call MPI_Recv_init(v, 0, MPI_INTEGER, MPI_PROC_NULL, 0, sub, reqs(1))
  call MPI_Wait(reqs(1), MPI_STATUS_IGNORE)
  call MPI_Request_free(reqs(1))
  call MPI_Type_free(pair)
  call MPI_Comm_rank(sub, v)
  call MPI_Comm_free(sub)
  line = (/ rank, v, a(3), a(4) /)
  call MPI_Gather(line, 4, MPI_INTEGER, all, 4, MPI_INTEGER, 0, MPI_COMM_WORLD)
  if (rank == 0) then
    do i = 0, size - 1
      print '(a,*(1x,i0))', 'sub ring:', all(:, i)
    end do
  end if
  call MPI_Barrier(MPI_COMM_WORLD)
  if (rank == 0) print '(a)', 'OK'
  call MPI_Finalize()
end program
