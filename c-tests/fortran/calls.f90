! ranks: 2
! ferry-test-refuses: attribute keyval|cannot be made again in a new process
! ferry-test-calls: yes
! Each Fortran call is counted exactly once: after every MPI call the
! library's call counter (ferry_call_count, through calls.c) must have
! moved by one. Miscounts are printed on stdout (so the run with the
! library differs from the plain one); each rank says on stderr how many
! calls it checked ("fortran-calls: ..."), which the test harness reads
! (harness/src/program.rs). Without the library nothing is checked.
module counter
  use iso_c_binding, only: c_long
  implicit none
  interface
    integer(c_long) function ferry_test_calls() bind(C, name='ferry_test_calls')
      import :: c_long
    end function
  end interface
  integer(c_long) :: last = -1
  integer :: checked = 0, bad = 0
contains
  subroutine counted(name)
    character(*), intent(in) :: name
    integer(c_long) :: now
    now = ferry_test_calls()
    if (now >= 0) then
      if (now - last /= 1) then
        print '(a,a,a,i0)', 'MISCOUNT ', name, ': counted ', now - last
        bad = bad + 1
      end if
      checked = checked + 1
    end if
    last = ferry_test_calls()
  end subroutine
end module

program calls
  use mpi
  use counter
  implicit none
  integer :: ierr, rank, size, peer, v, w, cnt, idx, outc, provided
  integer :: sub, dup, grp, g2, cart, row, t1, t2, t3, t4, tres, op, res
  integer :: req, reqs(2), st(MPI_STATUS_SIZE), sts(MPI_STATUS_SIZE, 2), indices(2)
  integer :: a(8), b(8), dims(2), coords(2), blens(2), types2(2), ranks(1), tr(1), reqs1(1)
  integer(kind=MPI_ADDRESS_KIND) :: disps(2), lb, ext
  double precision :: t
  logical :: flag, periods(2)
  character(len=MPI_MAX_PROCESSOR_NAME) :: pname
  character(len=MPI_MAX_ERROR_STRING) :: estr

  last = ferry_test_calls()
  call MPI_Initialized(flag, ierr); call counted('MPI_Initialized')
  call MPI_Init_thread(MPI_THREAD_SINGLE, provided, ierr); call counted('MPI_Init_thread')
  call MPI_Query_thread(provided, ierr); call counted('MPI_Query_thread')
  call MPI_Comm_rank(MPI_COMM_WORLD, rank, ierr); call counted('MPI_Comm_rank')
  call MPI_Comm_size(MPI_COMM_WORLD, size, ierr); call counted('MPI_Comm_size')
  peer = 1 - rank
  t = MPI_Wtime(); call counted('MPI_Wtime')
  t = MPI_Wtick(); call counted('MPI_Wtick')
  call MPI_Get_processor_name(pname, v, ierr); call counted('MPI_Get_processor_name')
  call MPI_Error_string(MPI_ERR_COMM, estr, v, ierr); call counted('MPI_Error_string')
  call MPI_Error_class(MPI_ERR_COMM, v, ierr); call counted('MPI_Error_class')

  ! point to point
  a = rank
  if (rank == 0) then
    call MPI_Send(a, 2, MPI_INTEGER, peer, 1, MPI_COMM_WORLD, ierr); call counted('MPI_Send')
    call MPI_Ssend(a, 2, MPI_INTEGER, peer, 2, MPI_COMM_WORLD, ierr); call counted('MPI_Ssend')
    call MPI_Recv(b, 8, MPI_INTEGER, MPI_ANY_SOURCE, 3, MPI_COMM_WORLD, st, ierr); call counted('MPI_Recv')
    call MPI_Get_count(st, MPI_INTEGER, cnt, ierr); call counted('MPI_Get_count')
    call MPI_Get_elements(st, MPI_INTEGER, cnt, ierr); call counted('MPI_Get_elements')
    call MPI_Probe(peer, 4, MPI_COMM_WORLD, st, ierr); call counted('MPI_Probe')
    call MPI_Recv(b, 8, MPI_INTEGER, peer, 4, MPI_COMM_WORLD, MPI_STATUS_IGNORE, ierr); call counted('MPI_Recv')
  else
    call MPI_Recv(b, 8, MPI_INTEGER, 0, 1, MPI_COMM_WORLD, st, ierr); call counted('MPI_Recv')
    call MPI_Recv(b, 8, MPI_INTEGER, 0, 2, MPI_COMM_WORLD, st, ierr); call counted('MPI_Recv')
    call MPI_Rsend(a, 1, MPI_INTEGER, peer, 3, MPI_COMM_WORLD, ierr); call counted('MPI_Rsend')
    call MPI_Send(a, 1, MPI_INTEGER, peer, 4, MPI_COMM_WORLD, ierr); call counted('MPI_Send')
  end if
  call MPI_Irecv(b, 8, MPI_INTEGER, peer, 5, MPI_COMM_WORLD, reqs(1), ierr); call counted('MPI_Irecv')
  call MPI_Isend(a, 8, MPI_INTEGER, peer, 5, MPI_COMM_WORLD, reqs(2), ierr); call counted('MPI_Isend')
  call MPI_Waitall(2, reqs, sts, ierr); call counted('MPI_Waitall')
  call MPI_Irecv(b, 8, MPI_INTEGER, peer, 6, MPI_COMM_WORLD, reqs(1), ierr); call counted('MPI_Irecv')
  call MPI_Issend(a, 8, MPI_INTEGER, peer, 6, MPI_COMM_WORLD, reqs(2), ierr); call counted('MPI_Issend')
  call MPI_Waitany(2, reqs, idx, st, ierr); call counted('MPI_Waitany')
  call MPI_Waitsome(2, reqs, outc, indices, sts, ierr); call counted('MPI_Waitsome')
  if (outc /= MPI_UNDEFINED .and. outc /= 1) then
    call MPI_Waitall(2, reqs, sts, ierr); call counted('MPI_Waitall')
  end if
  call MPI_Irecv(b, 8, MPI_INTEGER, peer, 7, MPI_COMM_WORLD, req, ierr); call counted('MPI_Irecv')
  call MPI_Sendrecv(a, 1, MPI_INTEGER, peer, 8, b, 1, MPI_INTEGER, peer, 8, MPI_COMM_WORLD, st, ierr)
  call counted('MPI_Sendrecv')
  call MPI_Send(a, 1, MPI_INTEGER, peer, 7, MPI_COMM_WORLD, ierr); call counted('MPI_Send')
  call MPI_Wait(req, st, ierr); call counted('MPI_Wait')
  call MPI_Sendrecv_replace(a, 1, MPI_INTEGER, peer, 9, peer, 9, MPI_COMM_WORLD, st, ierr)
  call counted('MPI_Sendrecv_replace')
  call MPI_Irecv(b, 8, MPI_INTEGER, peer, 10, MPI_COMM_WORLD, reqs1(1), ierr); call counted('MPI_Irecv')
  call MPI_Test(reqs1(1), flag, st, ierr); call counted('MPI_Test')
  call MPI_Send(a, 1, MPI_INTEGER, peer, 10, MPI_COMM_WORLD, ierr); call counted('MPI_Send')
  flag = .false.
  do while (.not. flag)
    call MPI_Testany(1, reqs1, idx, flag, st, ierr); call counted('MPI_Testany')
  end do
  call MPI_Send(a, 1, MPI_INTEGER, peer, 11, MPI_COMM_WORLD, ierr); call counted('MPI_Send')
  flag = .false.
  do while (.not. flag)
    call MPI_Iprobe(peer, 11, MPI_COMM_WORLD, flag, st, ierr); call counted('MPI_Iprobe')
  end do
  call MPI_Recv(b, 1, MPI_INTEGER, peer, 11, MPI_COMM_WORLD, st, ierr); call counted('MPI_Recv')
  call MPI_Recv_init(b, 1, MPI_INTEGER, peer, 12, MPI_COMM_WORLD, reqs(1), ierr); call counted('MPI_Recv_init')
  call MPI_Send_init(a, 1, MPI_INTEGER, peer, 12, MPI_COMM_WORLD, reqs(2), ierr); call counted('MPI_Send_init')
  call MPI_Start(reqs(1), ierr); call counted('MPI_Start')
  call MPI_Start(reqs(2), ierr); call counted('MPI_Start')
  call MPI_Waitall(2, reqs, MPI_STATUSES_IGNORE, ierr); call counted('MPI_Waitall')
  call MPI_Startall(2, reqs, ierr); call counted('MPI_Startall')
  flag = .false.
  do while (.not. flag)
    call MPI_Testall(2, reqs, flag, sts, ierr); call counted('MPI_Testall')
  end do
  call MPI_Startall(2, reqs, ierr); call counted('MPI_Startall')
  outc = 0
  do while (outc /= MPI_UNDEFINED)
    call MPI_Testsome(2, reqs, outc, indices, sts, ierr); call counted('MPI_Testsome')
  end do
  call MPI_Request_free(reqs(1), ierr); call counted('MPI_Request_free')
  call MPI_Request_free(reqs(2), ierr); call counted('MPI_Request_free')
  call MPI_Irecv(b, 1, MPI_INTEGER, peer, 13, MPI_COMM_WORLD, req, ierr); call counted('MPI_Irecv')
  call MPI_Cancel(req, ierr); call counted('MPI_Cancel')
  call MPI_Wait(req, st, ierr); call counted('MPI_Wait')
  call MPI_Test_cancelled(st, flag, ierr); call counted('MPI_Test_cancelled')
  call MPI_Ibsend(a, 0, MPI_INTEGER, MPI_PROC_NULL, 14, MPI_COMM_WORLD, req, ierr); call counted('MPI_Ibsend')
  call MPI_Wait(req, MPI_STATUS_IGNORE, ierr); call counted('MPI_Wait')
  call MPI_Irsend(a, 0, MPI_INTEGER, MPI_PROC_NULL, 14, MPI_COMM_WORLD, req, ierr); call counted('MPI_Irsend')
  call MPI_Wait(req, MPI_STATUS_IGNORE, ierr); call counted('MPI_Wait')
  call MPI_Bsend(a, 0, MPI_INTEGER, MPI_PROC_NULL, 14, MPI_COMM_WORLD, ierr); call counted('MPI_Bsend')

  ! collectives
  a = rank + 1
  call MPI_Bcast(a, 2, MPI_INTEGER, 0, MPI_COMM_WORLD, ierr); call counted('MPI_Bcast')
  call MPI_Reduce(a, b, 2, MPI_INTEGER, MPI_SUM, 0, MPI_COMM_WORLD, ierr); call counted('MPI_Reduce')
  call MPI_Allreduce(MPI_IN_PLACE, a, 2, MPI_INTEGER, MPI_SUM, MPI_COMM_WORLD, ierr); call counted('MPI_Allreduce')
  call MPI_Gather(a, 1, MPI_INTEGER, b, 1, MPI_INTEGER, 0, MPI_COMM_WORLD, ierr); call counted('MPI_Gather')
  call MPI_Gatherv(a, 1, MPI_INTEGER, b, (/ 1, 1 /), (/ 0, 1 /), MPI_INTEGER, 0, MPI_COMM_WORLD, ierr)
  call counted('MPI_Gatherv')
  call MPI_Scatter(b, 1, MPI_INTEGER, a, 1, MPI_INTEGER, 0, MPI_COMM_WORLD, ierr); call counted('MPI_Scatter')
  call MPI_Scatterv(b, (/ 1, 1 /), (/ 0, 1 /), MPI_INTEGER, a, 1, MPI_INTEGER, 0, MPI_COMM_WORLD, ierr)
  call counted('MPI_Scatterv')
  call MPI_Allgather(a, 1, MPI_INTEGER, b, 1, MPI_INTEGER, MPI_COMM_WORLD, ierr); call counted('MPI_Allgather')
  call MPI_Allgatherv(a, 1, MPI_INTEGER, b, (/ 1, 1 /), (/ 0, 1 /), MPI_INTEGER, MPI_COMM_WORLD, ierr)
  call counted('MPI_Allgatherv')
  call MPI_Alltoall(a, 1, MPI_INTEGER, b, 1, MPI_INTEGER, MPI_COMM_WORLD, ierr); call counted('MPI_Alltoall')
  call MPI_Alltoallv(a, (/ 1, 1 /), (/ 0, 1 /), MPI_INTEGER, b, (/ 1, 1 /), (/ 0, 1 /), MPI_INTEGER, &
                     MPI_COMM_WORLD, ierr)
  call counted('MPI_Alltoallv')
  call MPI_Reduce_scatter(a, b, (/ 1, 1 /), MPI_INTEGER, MPI_SUM, MPI_COMM_WORLD, ierr)
  call counted('MPI_Reduce_scatter')
  call MPI_Reduce_scatter_block(a, b, 1, MPI_INTEGER, MPI_SUM, MPI_COMM_WORLD, ierr)
  call counted('MPI_Reduce_scatter_block')
  call MPI_Scan(a, b, 1, MPI_INTEGER, MPI_SUM, MPI_COMM_WORLD, ierr); call counted('MPI_Scan')
  call MPI_Exscan(a, b, 1, MPI_INTEGER, MPI_SUM, MPI_COMM_WORLD, ierr); call counted('MPI_Exscan')
  call MPI_Ibarrier(MPI_COMM_WORLD, req, ierr); call counted('MPI_Ibarrier')
  call MPI_Wait(req, MPI_STATUS_IGNORE, ierr); call counted('MPI_Wait')
  call MPI_Ibcast(a, 1, MPI_INTEGER, 0, MPI_COMM_WORLD, req, ierr); call counted('MPI_Ibcast')
  call MPI_Wait(req, MPI_STATUS_IGNORE, ierr); call counted('MPI_Wait')
  call MPI_Ireduce(a, b, 1, MPI_INTEGER, MPI_SUM, 0, MPI_COMM_WORLD, req, ierr); call counted('MPI_Ireduce')
  call MPI_Wait(req, MPI_STATUS_IGNORE, ierr); call counted('MPI_Wait')
  call MPI_Iallreduce(a, b, 1, MPI_INTEGER, MPI_SUM, MPI_COMM_WORLD, req, ierr); call counted('MPI_Iallreduce')
  call MPI_Wait(req, MPI_STATUS_IGNORE, ierr); call counted('MPI_Wait')
  call MPI_Iallgather(a, 1, MPI_INTEGER, b, 1, MPI_INTEGER, MPI_COMM_WORLD, req, ierr); call counted('MPI_Iallgather')
  call MPI_Wait(req, MPI_STATUS_IGNORE, ierr); call counted('MPI_Wait')
  call MPI_Ialltoall(a, 1, MPI_INTEGER, b, 1, MPI_INTEGER, MPI_COMM_WORLD, req, ierr); call counted('MPI_Ialltoall')
  call MPI_Wait(req, MPI_STATUS_IGNORE, ierr); call counted('MPI_Wait')

  ! communicators and groups
  call MPI_Comm_split(MPI_COMM_WORLD, 0, rank, sub, ierr); call counted('MPI_Comm_split')
  call MPI_Comm_dup(sub, dup, ierr); call counted('MPI_Comm_dup')
  call MPI_Comm_compare(sub, dup, res, ierr); call counted('MPI_Comm_compare')
  call MPI_Comm_set_name(dup, 'dup', ierr); call counted('MPI_Comm_set_name')
  call MPI_Comm_get_name(dup, estr, v, ierr); call counted('MPI_Comm_get_name')
  call MPI_Comm_test_inter(dup, flag, ierr); call counted('MPI_Comm_test_inter')
  call MPI_Comm_group(dup, grp, ierr); call counted('MPI_Comm_group')
  call MPI_Group_size(grp, v, ierr); call counted('MPI_Group_size')
  call MPI_Group_rank(grp, v, ierr); call counted('MPI_Group_rank')
  ranks(1) = 0
  call MPI_Group_incl(grp, 1, ranks, g2, ierr); call counted('MPI_Group_incl')
  call MPI_Group_compare(grp, g2, res, ierr); call counted('MPI_Group_compare')
  call MPI_Group_translate_ranks(g2, 1, ranks, grp, tr, ierr); call counted('MPI_Group_translate_ranks')
  call MPI_Comm_create(dup, g2, cart, ierr); call counted('MPI_Comm_create')
  if (cart /= MPI_COMM_NULL) then
    call MPI_Comm_free(cart, ierr); call counted('MPI_Comm_free')
  end if
  call MPI_Group_free(g2, ierr); call counted('MPI_Group_free')
  call MPI_Group_excl(grp, 1, ranks, g2, ierr); call counted('MPI_Group_excl')
  call MPI_Group_free(g2, ierr); call counted('MPI_Group_free')
  call MPI_Group_union(grp, grp, g2, ierr); call counted('MPI_Group_union')
  call MPI_Group_free(g2, ierr); call counted('MPI_Group_free')
  call MPI_Group_intersection(grp, grp, g2, ierr); call counted('MPI_Group_intersection')
  call MPI_Group_free(g2, ierr); call counted('MPI_Group_free')
  call MPI_Group_difference(grp, grp, g2, ierr); call counted('MPI_Group_difference')
  call MPI_Group_free(grp, ierr); call counted('MPI_Group_free')
  dims = 0
  call MPI_Dims_create(size, 2, dims, ierr); call counted('MPI_Dims_create')
  periods = .false.
  call MPI_Cart_create(dup, 2, dims, periods, .false., cart, ierr); call counted('MPI_Cart_create')
  call MPI_Cart_coords(cart, rank, 2, coords, ierr); call counted('MPI_Cart_coords')
  call MPI_Cart_rank(cart, coords, v, ierr); call counted('MPI_Cart_rank')
  call MPI_Cart_shift(cart, 0, 1, v, w, ierr); call counted('MPI_Cart_shift')
  call MPI_Cart_get(cart, 2, dims, periods, coords, ierr); call counted('MPI_Cart_get')
  call MPI_Cart_sub(cart, (/ .true., .false. /), row, ierr); call counted('MPI_Cart_sub')
  call MPI_Cartdim_get(row, v, ierr); call counted('MPI_Cartdim_get')
  call MPI_Comm_free(row, ierr); call counted('MPI_Comm_free')
  call MPI_Comm_free(cart, ierr); call counted('MPI_Comm_free')
  call MPI_Comm_free(dup, ierr); call counted('MPI_Comm_free')
  call MPI_Comm_free(sub, ierr); call counted('MPI_Comm_free')

  ! datatypes
  call MPI_Type_contiguous(2, MPI_INTEGER, t1, ierr); call counted('MPI_Type_contiguous')
  call MPI_Type_vector(2, 1, 2, MPI_INTEGER, t2, ierr); call counted('MPI_Type_vector')
  call MPI_Type_create_hvector(2, 1, 8_MPI_ADDRESS_KIND, MPI_INTEGER, t3, ierr); call counted('MPI_Type_create_hvector')
  blens = (/ 1, 1 /)
  call MPI_Type_indexed(2, blens, (/ 0, 2 /), MPI_INTEGER, t4, ierr); call counted('MPI_Type_indexed')
  call MPI_Type_free(t4, ierr); call counted('MPI_Type_free')
  call MPI_Type_create_indexed_block(2, 1, (/ 0, 2 /), MPI_INTEGER, t4, ierr); call counted('MPI_Type_create_indexed_block')
  call MPI_Type_free(t4, ierr); call counted('MPI_Type_free')
  disps = (/ 0_MPI_ADDRESS_KIND, 8_MPI_ADDRESS_KIND /)
  types2 = (/ MPI_INTEGER, t1 /)
  call MPI_Type_create_struct(2, blens, disps, types2, t4, ierr); call counted('MPI_Type_create_struct')
  call MPI_Type_create_resized(t4, 0_MPI_ADDRESS_KIND, 16_MPI_ADDRESS_KIND, tres, ierr)
  call counted('MPI_Type_create_resized')
  call MPI_Type_dup(tres, op, ierr); call counted('MPI_Type_dup')
  call MPI_Type_commit(op, ierr); call counted('MPI_Type_commit')
  call MPI_Type_size(op, v, ierr); call counted('MPI_Type_size')
  call MPI_Type_get_extent(op, lb, ext, ierr); call counted('MPI_Type_get_extent')
  call MPI_Sendrecv(a, 1, op, peer, 15, b, 1, op, peer, 15, MPI_COMM_WORLD, MPI_STATUS_IGNORE, ierr)
  call counted('MPI_Sendrecv')
  call MPI_Type_free(op, ierr); call counted('MPI_Type_free')
  call MPI_Type_free(tres, ierr); call counted('MPI_Type_free')
  call MPI_Type_free(t4, ierr); call counted('MPI_Type_free')
  call MPI_Type_free(t3, ierr); call counted('MPI_Type_free')
  call MPI_Type_free(t2, ierr); call counted('MPI_Type_free')
  call MPI_Type_free(t1, ierr); call counted('MPI_Type_free')

  ! calls forwarded to Open MPI's own Fortran layer are counted too
  call MPI_Comm_split(MPI_COMM_WORLD, 0, rank, sub, ierr); call counted('MPI_Comm_split')
  call MPI_Comm_get_attr(sub, MPI_TAG_UB, lb, flag, ierr); call counted('MPI_Comm_get_attr')
  call MPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, MPI_COMM_NULL_DELETE_FN, v, lb, ierr)
  call counted('MPI_Comm_create_keyval')
  call MPI_Comm_set_attr(sub, v, lb, ierr); call counted('MPI_Comm_set_attr')
  call MPI_Comm_delete_attr(sub, v, ierr); call counted('MPI_Comm_delete_attr')
  call MPI_Comm_free_keyval(v, ierr); call counted('MPI_Comm_free_keyval')
  blens = (/ 1, 1 /)
  call MPI_Alltoallw(a, blens, (/ 0, 4 /), (/ MPI_INTEGER, MPI_INTEGER /), b, blens, (/ 0, 4 /), &
                     (/ MPI_INTEGER, MPI_INTEGER /), sub, ierr)
  call counted('MPI_Alltoallw')
  call MPI_Comm_free(sub, ierr); call counted('MPI_Comm_free')
  call MPI_Finalized(flag, ierr); call counted('MPI_Finalized')
  write (0, '(a,i0,a,i0,a,i0,a)') 'fortran-calls: rank ', rank, ' checked ', checked, ' calls, ', bad, ' miscounted'
  call MPI_Barrier(MPI_COMM_WORLD, ierr); call counted('MPI_Barrier')
  if (rank == 0) print '(a)', 'OK'
  call MPI_Finalize(ierr); call counted('MPI_Finalize')
  if (bad /= 0) print '(a,i0,a)', 'MISCOUNT after MPI_Finalize on rank ', rank, ' (see above)'
end program
