! ranks: 2
! ferry-test-refuses: cannot be made again in a new process
! ferry-test-calls: yes
! The per-call counter test of calls.f90 for `use mpi_f08` programs: after
! every MPI call the library's call counter must have moved by one.
module counter08
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

program calls_f08
  use mpi_f08
  use counter08
  implicit none
  integer :: rank, size, peer, v, cnt, idx, a(4), b(4)
  type(MPI_Status) :: st
  type(MPI_Comm) :: sub, dup
  type(MPI_Group) :: grp
  type(MPI_Datatype) :: t1
  type(MPI_Request) :: req, reqs(2)
  logical :: flag
  double precision :: t

  last = ferry_test_calls()
  call MPI_Init(); call counted('MPI_Init')
  call MPI_Comm_rank(MPI_COMM_WORLD, rank); call counted('MPI_Comm_rank')
  call MPI_Comm_size(MPI_COMM_WORLD, size); call counted('MPI_Comm_size')
  peer = 1 - rank
  t = MPI_Wtime(); call counted('MPI_Wtime')
  a = rank
  if (rank == 0) then
    call MPI_Send(a, 4, MPI_INTEGER, peer, 1, MPI_COMM_WORLD); call counted('MPI_Send')
    call MPI_Recv(b, 4, MPI_INTEGER, MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, st); call counted('MPI_Recv')
    call MPI_Get_count(st, MPI_INTEGER, cnt); call counted('MPI_Get_count')
  else
    call MPI_Probe(peer, 1, MPI_COMM_WORLD, st); call counted('MPI_Probe')
    call MPI_Recv(b, 4, MPI_INTEGER, peer, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE); call counted('MPI_Recv')
    call MPI_Ssend(a, 4, MPI_INTEGER, peer, 2, MPI_COMM_WORLD); call counted('MPI_Ssend')
  end if
  call MPI_Irecv(b, 4, MPI_INTEGER, peer, 3, MPI_COMM_WORLD, reqs(1)); call counted('MPI_Irecv')
  call MPI_Isend(a, 4, MPI_INTEGER, peer, 3, MPI_COMM_WORLD, reqs(2)); call counted('MPI_Isend')
  call MPI_Waitany(2, reqs, idx, st); call counted('MPI_Waitany')
  call MPI_Waitall(2, reqs, MPI_STATUSES_IGNORE); call counted('MPI_Waitall')
  call MPI_Sendrecv(a, 1, MPI_INTEGER, peer, 4, b, 1, MPI_INTEGER, peer, 4, MPI_COMM_WORLD, st)
  call counted('MPI_Sendrecv')
  call MPI_Irecv(b, 4, MPI_INTEGER, peer, 5, MPI_COMM_WORLD, req); call counted('MPI_Irecv')
  call MPI_Send(a, 4, MPI_INTEGER, peer, 5, MPI_COMM_WORLD); call counted('MPI_Send')
  flag = .false.
  do while (.not. flag)
    call MPI_Test(req, flag, st); call counted('MPI_Test')
  end do
  flag = .false.
  call MPI_Send(a, 1, MPI_INTEGER, peer, 6, MPI_COMM_WORLD); call counted('MPI_Send')
  do while (.not. flag)
    call MPI_Iprobe(peer, 6, MPI_COMM_WORLD, flag, st); call counted('MPI_Iprobe')
  end do
  call MPI_Recv(b, 1, MPI_INTEGER, peer, 6, MPI_COMM_WORLD, st); call counted('MPI_Recv')
  call MPI_Barrier(MPI_COMM_WORLD); call counted('MPI_Barrier')
  call MPI_Bcast(a, 4, MPI_INTEGER, 0, MPI_COMM_WORLD); call counted('MPI_Bcast')
  call MPI_Allreduce(MPI_IN_PLACE, a, 4, MPI_INTEGER, MPI_SUM, MPI_COMM_WORLD); call counted('MPI_Allreduce')
  call MPI_Reduce(a, b, 4, MPI_INTEGER, MPI_MAX, 0, MPI_COMM_WORLD); call counted('MPI_Reduce')
  call MPI_Gather(a, 1, MPI_INTEGER, b, 1, MPI_INTEGER, 0, MPI_COMM_WORLD); call counted('MPI_Gather')
  call MPI_Scatter(b, 1, MPI_INTEGER, a, 1, MPI_INTEGER, 0, MPI_COMM_WORLD); call counted('MPI_Scatter')
  call MPI_Allgather(a, 1, MPI_INTEGER, b, 1, MPI_INTEGER, MPI_COMM_WORLD); call counted('MPI_Allgather')
  call MPI_Alltoall(a, 1, MPI_INTEGER, b, 1, MPI_INTEGER, MPI_COMM_WORLD); call counted('MPI_Alltoall')
  call MPI_Iallreduce(a, b, 1, MPI_INTEGER, MPI_SUM, MPI_COMM_WORLD, req); call counted('MPI_Iallreduce')
  call MPI_Wait(req, MPI_STATUS_IGNORE); call counted('MPI_Wait')
  call MPI_Comm_split(MPI_COMM_WORLD, 0, rank, sub); call counted('MPI_Comm_split')
  call MPI_Comm_dup(sub, dup); call counted('MPI_Comm_dup')
  call MPI_Comm_group(dup, grp); call counted('MPI_Comm_group')
  call MPI_Group_size(grp, v); call counted('MPI_Group_size')
  call MPI_Group_free(grp); call counted('MPI_Group_free')
  call MPI_Comm_free(dup); call counted('MPI_Comm_free')
  call MPI_Comm_free(sub); call counted('MPI_Comm_free')
  call MPI_Type_contiguous(2, MPI_INTEGER, t1); call counted('MPI_Type_contiguous')
  call MPI_Type_commit(t1); call counted('MPI_Type_commit')
  call MPI_Type_size(t1, v); call counted('MPI_Type_size')
  call MPI_Type_free(t1); call counted('MPI_Type_free')
  write (0, '(a,i0,a,i0,a,i0,a)') 'fortran-calls: rank ', rank, ' checked ', checked, ' calls, ', bad, ' miscounted'
  call MPI_Barrier(MPI_COMM_WORLD); call counted('MPI_Barrier')
  if (rank == 0) print '(a)', 'OK'
  call MPI_Finalize(); call counted('MPI_Finalize')
  if (bad /= 0) print '(a,i0)', 'MISCOUNT after MPI_Finalize on rank ', rank
end program
