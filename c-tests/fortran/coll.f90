! ranks: 3
! Collectives from Fortran through mpif.h: MPI_IN_PLACE in Allreduce,
! Reduce (root), Gather (root), Allgather, Scan; Bcast, Scatter(v),
! Gatherv, Alltoall(v), Reduce_scatter_block, Exscan; nonblocking
! Iallreduce/Ibarrier/Ibcast completed with Wait/Test.
program coll
  implicit none
  include 'mpif.h'
  integer :: ierr, rank, size, i, req, req2
  integer :: a(6), b(6), c(18), counts(3), displs(3)
  double precision :: x(2)
  logical :: flag

  call MPI_Init(ierr)
  call MPI_Comm_rank(MPI_COMM_WORLD, rank, ierr)
  call MPI_Comm_size(MPI_COMM_WORLD, size, ierr)
  if (size /= 3) call fail('needs 3 ranks')

  a = (/ (rank * 10 + i, i = 1, 6) /)
  call MPI_Allreduce(MPI_IN_PLACE, a, 6, MPI_INTEGER, MPI_SUM, MPI_COMM_WORLD, ierr)
  if (rank == 0) print '(a,*(1x,i0))', 'allreduce in place:', a

  x = (/ dble(rank) + 0.5d0, -dble(rank) - 1.0d0 /)
  call MPI_Allreduce(MPI_IN_PLACE, x, 2, MPI_DOUBLE_PRECISION, MPI_MAX, MPI_COMM_WORLD, ierr)
  if (rank == 0) print '(a,2f8.3)', 'allreduce max:', x

  a = (/ (rank + i, i = 1, 6) /)
  if (rank == 1) then
    call MPI_Reduce(MPI_IN_PLACE, a, 6, MPI_INTEGER, MPI_PROD, 1, MPI_COMM_WORLD, ierr)
  else
    call MPI_Reduce(a, b, 6, MPI_INTEGER, MPI_PROD, 1, MPI_COMM_WORLD, ierr)
  end if
  if (rank == 1) call MPI_Send(a, 6, MPI_INTEGER, 0, 1, MPI_COMM_WORLD, ierr)
  if (rank == 0) then
    call MPI_Recv(b, 6, MPI_INTEGER, 1, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE, ierr)
    print '(a,*(1x,i0))', 'reduce in place at root 1:', b
  end if

  c = -1
  c(rank * 2 + 1 : rank * 2 + 2) = (/ rank, rank * rank /)
  if (rank == 0) then
    call MPI_Gather(MPI_IN_PLACE, 2, MPI_INTEGER, c, 2, MPI_INTEGER, 0, MPI_COMM_WORLD, ierr)
    print '(a,*(1x,i0))', 'gather in place:', c(1:6)
  else
    call MPI_Gather(c(rank * 2 + 1), 2, MPI_INTEGER, c, 2, MPI_INTEGER, 0, MPI_COMM_WORLD, ierr)
  end if

  c = 0
  c(rank + 1) = 7 * (rank + 1)
  call MPI_Allgather(MPI_IN_PLACE, 1, MPI_INTEGER, c, 1, MPI_INTEGER, MPI_COMM_WORLD, ierr)
  if (rank == 0) print '(a,*(1x,i0))', 'allgather in place:', c(1:3)

  a(1) = rank + 1
  call MPI_Scan(MPI_IN_PLACE, a, 1, MPI_INTEGER, MPI_SUM, MPI_COMM_WORLD, ierr)
  call MPI_Exscan(rank + 1, b, 1, MPI_INTEGER, MPI_SUM, MPI_COMM_WORLD, ierr)
  if (rank == 0) b(1) = 0
  call show2('scan/exscan', a(1), b(1))

  if (rank == 0) a(1:3) = (/ 42, 43, 44 /)
  call MPI_Bcast(a, 3, MPI_INTEGER, 0, MPI_COMM_WORLD, ierr)
  call show2('bcast', a(1), a(3))

  if (rank == 0) c(1:6) = (/ 1, 2, 3, 4, 5, 6 /)
  call MPI_Scatter(c, 2, MPI_INTEGER, b, 2, MPI_INTEGER, 0, MPI_COMM_WORLD, ierr)
  call show2('scatter', b(1), b(2))

  counts = (/ 1, 2, 3 /)
  displs = (/ 0, 1, 3 /)
  if (rank == 0) c(1:6) = (/ 10, 20, 30, 40, 50, 60 /)
  b = 0
  call MPI_Scatterv(c, counts, displs, MPI_INTEGER, b, rank + 1, MPI_INTEGER, 0, MPI_COMM_WORLD, ierr)
  call show2('scatterv', sum(b), rank + 1)
  call MPI_Gatherv(b, rank + 1, MPI_INTEGER, c, counts, displs, MPI_INTEGER, 0, MPI_COMM_WORLD, ierr)
  if (rank == 0) print '(a,*(1x,i0))', 'gatherv:', c(1:6)

  a(1:3) = (/ (100 * rank + i, i = 0, 2) /)
  call MPI_Alltoall(a, 1, MPI_INTEGER, b, 1, MPI_INTEGER, MPI_COMM_WORLD, ierr)
  call show2('alltoall', b(1), b(3))

  a(1:3) = (/ (rank + i, i = 1, 3) /)
  call MPI_Reduce_scatter_block(a, b, 1, MPI_INTEGER, MPI_SUM, MPI_COMM_WORLD, ierr)
  call show2('reduce_scatter_block', b(1), rank)

  a(1) = rank + 1
  call MPI_Iallreduce(MPI_IN_PLACE, a, 1, MPI_INTEGER, MPI_SUM, MPI_COMM_WORLD, req, ierr)
  call MPI_Wait(req, MPI_STATUS_IGNORE, ierr)
  call MPI_Ibarrier(MPI_COMM_WORLD, req2, ierr)
  flag = .false.
  do while (.not. flag)
    call MPI_Test(req2, flag, MPI_STATUS_IGNORE, ierr)
  end do
  if (rank == 2) b(1) = 99
  call MPI_Ibcast(b, 1, MPI_INTEGER, 2, MPI_COMM_WORLD, req, ierr)
  call MPI_Wait(req, MPI_STATUS_IGNORE, ierr)
  call show2('iallreduce/ibcast', a(1), b(1))

  call MPI_Barrier(MPI_COMM_WORLD, ierr)
  if (rank == 0) print '(a)', 'OK'
  call MPI_Finalize(ierr)

contains

  subroutine fail(what)
    character(*), intent(in) :: what
    write (0, '(a,i0,a,a)') 'rank ', rank, ': CHECK FAILED: ', what
    call MPI_Abort(MPI_COMM_WORLD, 1, ierr)
  end subroutine

  subroutine show2(tag, u, v)
    character(*), intent(in) :: tag
    integer, intent(in) :: u, v
    integer :: mine(2), all(2, 0:2), r
    mine = (/ u, v /)
    call MPI_Gather(mine, 2, MPI_INTEGER, all, 2, MPI_INTEGER, 0, MPI_COMM_WORLD, ierr)
    if (rank == 0) then
      do r = 0, size - 1
        print '(a,a,i0,a,i0,1x,i0)', tag, ' rank ', r, ':', all(:, r)
      end do
    end if
  end subroutine
end program
