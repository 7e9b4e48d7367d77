! ranks: 4
! Point-to-point from Fortran (use mpi): MPI_ANY_SOURCE/MPI_ANY_TAG receives
! with the status read back, nonblocking ring with Waitall, Sendrecv with
! MPI_STATUS_IGNORE, Probe/Iprobe + Get_count, Waitany (1-based index),
! Testall, persistent requests. Arrival order between senders is not
! deterministic: received items are checked and printed sorted.
program p2p
  use mpi
  implicit none
  integer, parameter :: per = 3
  integer :: ierr, rank, size, i, k, cnt, idx, left, right, val
  integer :: st(MPI_STATUS_SIZE), sts(MPI_STATUS_SIZE, 4)
  integer :: reqs(4), got(3 * per, 3), buf(8), rbuf(8), line(4)
  logical :: flag
  integer, allocatable :: pbuf(:)

  call MPI_Init(ierr)
  call MPI_Comm_rank(MPI_COMM_WORLD, rank, ierr)
  call MPI_Comm_size(MPI_COMM_WORLD, size, ierr)
  if (size /= 4) call fail('needs 4 ranks')

  ! 1. blocking receives from any source, any tag
  if (rank == 0) then
    do i = 1, 3 * per
      call MPI_Recv(val, 1, MPI_INTEGER, MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, st, ierr)
      call MPI_Get_count(st, MPI_INTEGER, cnt, ierr)
      if (cnt /= 1) call fail('count')
      if (val /= 100 * st(MPI_SOURCE) + st(MPI_TAG)) call fail('value/status')
      got(i, :) = (/ st(MPI_SOURCE), st(MPI_TAG), val /)
    end do
    call sort_rows(got, 3 * per)
    do i = 1, 3 * per
      print '(a,i0,a,i0,a,i0)', 'anysource: from ', got(i, 1), ' tag ', got(i, 2), ' value ', got(i, 3)
    end do
  else
    do k = 1, per
      val = 100 * rank + k
      call MPI_Send(val, 1, MPI_INTEGER, 0, k, MPI_COMM_WORLD, ierr)
    end do
  end if
  ! (the ANY_TAG receives above must not match later messages)
  call MPI_Barrier(MPI_COMM_WORLD, ierr)

  ! 2. nonblocking ring: Irecv from left, Isend to right, Waitall
  left = mod(rank + size - 1, size)
  right = mod(rank + 1, size)
  buf = (/ (rank * 10 + i, i = 1, 8) /)
  call MPI_Irecv(rbuf, 8, MPI_INTEGER, left, 7, MPI_COMM_WORLD, reqs(1), ierr)
  call MPI_Isend(buf, 8, MPI_INTEGER, right, 7, MPI_COMM_WORLD, reqs(2), ierr)
  call MPI_Waitall(2, reqs, sts, ierr)
  if (reqs(1) /= MPI_REQUEST_NULL .or. reqs(2) /= MPI_REQUEST_NULL) call fail('requests not null')
  if (sts(MPI_SOURCE, 1) /= left .or. sts(MPI_TAG, 1) /= 7) call fail('waitall status')
  line = (/ rank, rbuf(1), rbuf(8), sum(rbuf) /)
  call show('ring', line, 4)

  ! 3. Sendrecv with MPI_STATUS_IGNORE, and Sendrecv_replace
  call MPI_Sendrecv(buf, 8, MPI_INTEGER, right, 8, rbuf, 8, MPI_INTEGER, left, 8, &
                    MPI_COMM_WORLD, MPI_STATUS_IGNORE, ierr)
  val = rank
  call MPI_Sendrecv_replace(val, 1, MPI_INTEGER, right, 9, left, 9, MPI_COMM_WORLD, st, ierr)
  line = (/ rank, rbuf(2), val, st(MPI_SOURCE) /)
  call show('sendrecv', line, 4)

  ! 4. Probe and Iprobe from any source, size from Get_count
  if (rank == 0) then
    call MPI_Ssend((/ 1, 2, 3, 4, 5 /), 5, MPI_INTEGER, 1, 3, MPI_COMM_WORLD, ierr)
    call MPI_Send((/ 6, 7 /), 2, MPI_INTEGER, 2, 4, MPI_COMM_WORLD, ierr)
  else if (rank == 1) then
    call MPI_Probe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, st, ierr)
    call MPI_Get_count(st, MPI_INTEGER, cnt, ierr)
    allocate(pbuf(cnt))
    call MPI_Recv(pbuf, cnt, MPI_INTEGER, st(MPI_SOURCE), st(MPI_TAG), MPI_COMM_WORLD, MPI_STATUS_IGNORE, ierr)
    if (cnt /= 5 .or. sum(pbuf) /= 15) call fail('probe')
    deallocate(pbuf)
  else if (rank == 2) then
    flag = .false.
    do while (.not. flag)
      call MPI_Iprobe(0, MPI_ANY_TAG, MPI_COMM_WORLD, flag, st, ierr)
    end do
    call MPI_Get_count(st, MPI_INTEGER, cnt, ierr)
    call MPI_Recv(rbuf, cnt, MPI_INTEGER, 0, st(MPI_TAG), MPI_COMM_WORLD, st, ierr)
    if (cnt /= 2 .or. rbuf(1) + rbuf(2) /= 13 .or. st(MPI_TAG) /= 4) call fail('iprobe')
  end if

  ! 5. Waitany: rank 0 receives one message from each other rank
  if (rank == 0) then
    do i = 1, 3
      call MPI_Irecv(got(i, 1), 1, MPI_INTEGER, i, 5, MPI_COMM_WORLD, reqs(i), ierr)
    end do
    cnt = 0
    do i = 1, 3
      call MPI_Waitany(3, reqs, idx, st, ierr)
      if (idx < 1 .or. idx > 3) call fail('waitany index not 1-based')
      if (st(MPI_SOURCE) /= idx .or. reqs(idx) /= MPI_REQUEST_NULL) call fail('waitany')
      cnt = cnt + got(idx, 1)
    end do
    call MPI_Waitany(3, reqs, idx, st, ierr)
    ! MPICH 4.0's Fortran layer makes even MPI_UNDEFINED 1-based
    ! (MPI_UNDEFINED + 1): its bug, accepted there only, with or without
    ! the library (which leaves MPICH's Fortran layer its conversions).
    if (idx /= MPI_UNDEFINED .and. .not. (idx == MPI_UNDEFINED + 1 .and. mpich40())) &
      call fail('waitany on null requests')
    print '(a,i0)', 'waitany: sum ', cnt
  else
    val = rank * rank
    call MPI_Send(val, 1, MPI_INTEGER, 0, 5, MPI_COMM_WORLD, ierr)
  end if

  ! 6. persistent requests, Startall and Testall
  call MPI_Recv_init(rbuf, 1, MPI_INTEGER, left, 6, MPI_COMM_WORLD, reqs(1), ierr)
  call MPI_Send_init(buf, 1, MPI_INTEGER, right, 6, MPI_COMM_WORLD, reqs(2), ierr)
  cnt = 0
  do k = 1, 3
    buf(1) = 1000 * k + rank
    call MPI_Startall(2, reqs, ierr)
    flag = .false.
    do while (.not. flag)
      call MPI_Testall(2, reqs, flag, MPI_STATUSES_IGNORE, ierr)
    end do
    cnt = cnt + rbuf(1)
  end do
  call MPI_Request_free(reqs(1), ierr)
  call MPI_Request_free(reqs(2), ierr)
  if (reqs(1) /= MPI_REQUEST_NULL) call fail('request_free')
  line = (/ rank, cnt, 0, 0 /)
  call show('persistent', line, 4)

  call MPI_Barrier(MPI_COMM_WORLD, ierr)
  if (rank == 0) print '(a)', 'OK'
  call MPI_Finalize(ierr)

contains

  ! Whether the library is MPICH 4.0.x.
  logical function mpich40()
    character(len=MPI_MAX_LIBRARY_VERSION_STRING) :: v
    integer :: n, e
    call MPI_Get_library_version(v, n, e)
    mpich40 = index(v, 'MPICH Version:') == 1 .and. index(v(1:40), '4.0.') > 0
  end function

  subroutine fail(what)
    character(*), intent(in) :: what
    write (0, '(a,i0,a,a)') 'rank ', rank, ': CHECK FAILED: ', what
    call MPI_Abort(MPI_COMM_WORLD, 1, ierr)
  end subroutine

  ! every rank's line gathered to rank 0, printed in rank order
  subroutine show(tag, v, n)
    character(*), intent(in) :: tag
    integer, intent(in) :: n, v(n)
    integer :: all(n, 0:63), r
    call MPI_Gather(v, n, MPI_INTEGER, all, n, MPI_INTEGER, 0, MPI_COMM_WORLD, ierr)
    if (rank == 0) then
      do r = 0, size - 1
        print '(a,a,*(1x,i0))', tag, ':', all(:, r)
      end do
    end if
  end subroutine

  subroutine sort_rows(a, n)
    integer, intent(in) :: n
    integer, intent(inout) :: a(:, :)
    integer :: i, j, t(3)
    do i = 2, n
      t = a(i, :)
      j = i - 1
      do while (j >= 1)
        if (a(j, 1) < t(1) .or. (a(j, 1) == t(1) .and. a(j, 2) <= t(2))) exit
        a(j + 1, :) = a(j, :)
        j = j - 1
      end do
      a(j + 1, :) = t
    end do
  end subroutine
end program
