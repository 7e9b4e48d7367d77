! ranks: 3
! ferry-test-refuses: attribute keyval|made from Fortran by MPI_Op_create|cannot be made again in a new process
! Functions the library forwards to Open MPI's own Fortran layer (callbacks,
! attribute values, the w collectives), given handles the library made
! virtual: attributes on a sub-communicator (with a Fortran copy callback
! run by MPI_Comm_dup), a Fortran reduction operation, MPI_Alltoallw with a
! derived datatype on a sub-communicator.
module fwd_ops
  implicit none
contains
  subroutine absmax(invec, inoutvec, len, datatype)
    integer :: len, datatype
    integer :: invec(len), inoutvec(len)
    integer :: i
    do i = 1, len
      inoutvec(i) = max(abs(invec(i)), abs(inoutvec(i)))
    end do
  end subroutine

  subroutine copy_plus_one(oldcomm, keyval, extra, attr_in, attr_out, flag, ierr)
    use mpi
    integer :: oldcomm, keyval, ierr
    integer(kind=MPI_ADDRESS_KIND) :: extra, attr_in, attr_out
    logical :: flag
    attr_out = attr_in + 1
    flag = .true.
    ierr = MPI_SUCCESS
  end subroutine
end module

program forwarded
  use mpi
  use fwd_ops
  implicit none
  integer :: ierr, rank, size, sub, dup, key, op, pair, i, srank, ssize
  integer(kind=MPI_ADDRESS_KIND) :: val, extra
  logical :: flag
  integer :: a(3), b(3), sc(3), sd(3), st(3), rc(3), rd(3), rt(3), sbuf(6), rbuf(6)
  integer :: line(4), all(4, 0:2)

  call MPI_Init(ierr)
  call MPI_Comm_rank(MPI_COMM_WORLD, rank, ierr)
  call MPI_Comm_size(MPI_COMM_WORLD, size, ierr)
  call MPI_Comm_split(MPI_COMM_WORLD, 0, size - rank, sub, ierr)
  call MPI_Comm_rank(sub, srank, ierr)
  call MPI_Comm_size(sub, ssize, ierr)

  ! attributes on the sub-communicator, copied by MPI_Comm_dup
  extra = 0
  call MPI_Comm_create_keyval(copy_plus_one, MPI_COMM_NULL_DELETE_FN, key, extra, ierr)
  val = 40 + rank
  call MPI_Comm_set_attr(sub, key, val, ierr)
  call MPI_Comm_dup(sub, dup, ierr)
  val = -1
  call MPI_Comm_get_attr(dup, key, val, flag, ierr)
  if (.not. flag .or. val /= 41 + rank) then
    write (0, *) 'attribute not copied', flag, val
    call MPI_Abort(MPI_COMM_WORLD, 1, ierr)
  end if
  call MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, val, flag, ierr)
  if (.not. flag .or. val < 32767) call MPI_Abort(MPI_COMM_WORLD, 2, ierr)

  ! a reduction operation written in Fortran, on the dup
  call MPI_Op_create(absmax, .true., op, ierr)
  a = (/ rank - 5, -rank, 2 * rank /)
  call MPI_Allreduce(a, b, 3, MPI_INTEGER, op, dup, ierr)
  call MPI_Op_free(op, ierr)

  ! Alltoallw on the sub-communicator with a derived datatype (pairs)
  call MPI_Type_contiguous(2, MPI_INTEGER, pair, ierr)
  call MPI_Type_commit(pair, ierr)
  sbuf = (/ (100 * rank + i, i = 1, 6) /)
  rbuf = -1
  do i = 1, 3
    sc(i) = 1; sd(i) = 8 * (i - 1); st(i) = pair
    rc(i) = 2; rd(i) = 8 * (i - 1); rt(i) = MPI_INTEGER
  end do
  call MPI_Alltoallw(sbuf, sc, sd, st, rbuf, rc, rd, rt, sub, ierr)
  call MPI_Type_free(pair, ierr)

  call MPI_Comm_delete_attr(sub, key, ierr)
  call MPI_Comm_free(dup, ierr)
  call MPI_Comm_free(sub, ierr)
  call MPI_Comm_free_keyval(key, ierr)

  line = (/ rank, srank, sum(b), sum(rbuf) /)
  call MPI_Gather(line, 4, MPI_INTEGER, all, 4, MPI_INTEGER, 0, MPI_COMM_WORLD, ierr)
  if (rank == 0) then
    print '(a,*(1x,i0))', 'absmax:', b
    do i = 0, size - 1
      print '(a,*(1x,i0))', 'rank/sub/absmax/alltoallw:', all(:, i)
    end do
    print '(a)', 'OK'
  end if
  call MPI_Finalize(ierr)
end program
