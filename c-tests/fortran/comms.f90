! ranks: 4
! ferry-test-refuses: cannot be made again in a new process
! Sub-communicators from Fortran: Comm_split by parity, Comm_dup, names,
! Comm_compare, groups (Comm_group, Group_incl/excl/translate_ranks,
! Comm_create), a 2x2 periodic Cartesian grid (Cart_create, coords,
! shift, rank, Cart_sub, Cart_get), traffic and collectives on each, and
! every communicator and group freed.
program comms
  use mpi
  implicit none
  integer :: ierr, rank, size, half, hrank, hsize, dup, cmp, wgroup, g2, g3, newc
  integer :: cart, row, crank, src, dst, i, val, nlen, ndims
  integer :: dims(2), coords(2), ranks(2), tr(2), line(6), all(6, 0:3)
  logical :: periods(2), remain(2)
  character(len=MPI_MAX_OBJECT_NAME) :: name

  call MPI_Init(ierr)
  call MPI_Comm_rank(MPI_COMM_WORLD, rank, ierr)
  call MPI_Comm_size(MPI_COMM_WORLD, size, ierr)

  call MPI_Comm_split(MPI_COMM_WORLD, mod(rank, 2), -rank, half, ierr)
  call MPI_Comm_rank(half, hrank, ierr)
  call MPI_Comm_size(half, hsize, ierr)
  val = rank
  call MPI_Allreduce(MPI_IN_PLACE, val, 1, MPI_INTEGER, MPI_SUM, half, ierr)
  call MPI_Comm_dup(half, dup, ierr)
  call MPI_Comm_compare(half, dup, cmp, ierr)
  if (cmp /= MPI_CONGRUENT) call fail('dup not congruent')
  call MPI_Comm_set_name(dup, 'half dup   ', ierr)
  call MPI_Comm_get_name(dup, name, nlen, ierr)
  if (name /= 'half dup' .or. nlen /= 8) call fail('comm name')
  ! a message within the sub-communicator: its rank 0 to its rank 1
  if (hrank == 0) then
    call MPI_Send(rank * 11, 1, MPI_INTEGER, 1, 0, dup, ierr)
    i = -1
  else
    call MPI_Recv(i, 1, MPI_INTEGER, 0, 0, dup, MPI_STATUS_IGNORE, ierr)
  end if
  line = (/ rank, hrank, hsize, val, i, cmp /)
  call MPI_Gather(line, 6, MPI_INTEGER, all, 6, MPI_INTEGER, 0, MPI_COMM_WORLD, ierr)
  if (rank == 0) then
    do i = 0, size - 1
      print '(a,*(1x,i0))', 'split:', all(:, i)
    end do
  end if

  ! groups: the first and the last rank of the world
  call MPI_Comm_group(MPI_COMM_WORLD, wgroup, ierr)
  ranks = (/ 0, size - 1 /)
  call MPI_Group_incl(wgroup, 2, ranks, g2, ierr)
  call MPI_Group_excl(wgroup, 2, ranks, g3, ierr)
  call MPI_Group_translate_ranks(g2, 2, (/ 0, 1 /), wgroup, tr, ierr)
  call MPI_Comm_create(MPI_COMM_WORLD, g2, newc, ierr)
  if (newc /= MPI_COMM_NULL) then
    call MPI_Comm_size(newc, i, ierr)
    val = rank
    call MPI_Allreduce(MPI_IN_PLACE, val, 1, MPI_INTEGER, MPI_MAX, newc, ierr)
    if (rank == 0) print '(a,i0,a,i0,a,2(1x,i0))', 'created: size ', i, ' max ', val, ' translated', tr
    call MPI_Comm_free(newc, ierr)
  else if (rank == 0) then
    call fail('rank 0 not in the created communicator')
  end if
  call MPI_Group_free(g3, ierr)
  call MPI_Group_free(g2, ierr)
  call MPI_Group_free(wgroup, ierr)
  if (g2 /= MPI_GROUP_NULL) call fail('group not null after free')

  ! a 2x2 periodic grid
  dims = 0
  call MPI_Dims_create(size, 2, dims, ierr)
  periods = (/ .true., .true. /)
  call MPI_Cart_create(MPI_COMM_WORLD, 2, dims, periods, .false., cart, ierr)
  call MPI_Comm_rank(cart, crank, ierr)
  call MPI_Cart_coords(cart, crank, 2, coords, ierr)
  call MPI_Cart_shift(cart, 1, 1, src, dst, ierr)
  call MPI_Sendrecv(crank, 1, MPI_INTEGER, dst, 1, val, 1, MPI_INTEGER, src, 1, cart, MPI_STATUS_IGNORE, ierr)
  call MPI_Cart_rank(cart, coords, i, ierr)
  if (i /= crank) call fail('cart_rank')
  remain = (/ .false., .true. /)
  call MPI_Cart_sub(cart, remain, row, ierr)
  call MPI_Cartdim_get(row, ndims, ierr)
  call MPI_Cart_get(cart, 2, dims, periods, coords, ierr)
  if (.not. (periods(1) .and. periods(2))) call fail('cart_get periods')
  i = crank
  call MPI_Allreduce(MPI_IN_PLACE, i, 1, MPI_INTEGER, MPI_SUM, row, ierr)
  line = (/ crank, coords(1), coords(2), val, i, ndims /)
  call MPI_Gather(line, 6, MPI_INTEGER, all, 6, MPI_INTEGER, 0, MPI_COMM_WORLD, ierr)
  if (rank == 0) then
    print '(a,2(1x,i0))', 'dims:', dims
    do i = 0, size - 1
      print '(a,*(1x,i0))', 'cart:', all(:, i)
    end do
  end if

  call MPI_Comm_free(row, ierr)
  call MPI_Comm_free(cart, ierr)
  call MPI_Comm_free(dup, ierr)
  call MPI_Comm_free(half, ierr)
  if (half /= MPI_COMM_NULL) call fail('comm not null after free')
  call MPI_Barrier(MPI_COMM_WORLD, ierr)
  if (rank == 0) print '(a)', 'OK'
  call MPI_Finalize(ierr)

contains

  subroutine fail(what)
    character(*), intent(in) :: what
    write (0, '(a,i0,a,a)') 'rank ', rank, ': CHECK FAILED: ', what
    call MPI_Abort(MPI_COMM_WORLD, 1, ierr)
  end subroutine
end program
