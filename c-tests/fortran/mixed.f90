! ranks: 3
! ferry-test-refuses: cannot be made again in a new process
! A program of Fortran and C: Fortran makes a sub-communicator and a
! request and hands their integers to C (MPI_Comm_f2c, MPI_Request_f2c);
! C uses them, makes a communicator of its own and hands its integer back
! (MPI_Comm_c2f), which Fortran uses and frees. One integer per handle
! whichever side converts it.
program mixed
  use mpi
  use iso_c_binding, only: c_int
  implicit none
  interface
    integer(c_int) function c_side(fcomm, freq, n) bind(C, name='mixed_c_side')
      import :: c_int
      integer(c_int), value :: fcomm, freq, n
    end function
    integer(c_int) function c_world() bind(C, name='mixed_c_world')
      import :: c_int
    end function
  end interface
  integer :: ierr, rank, sub, back, req, val, n, buf, line(3), all(3, 0:2), i

  call MPI_Init(ierr)
  call MPI_Comm_rank(MPI_COMM_WORLD, rank, ierr)
  if (c_world() /= MPI_COMM_WORLD) then
    write (0, *) 'MPI_Comm_c2f(MPI_COMM_WORLD) is not MPI_COMM_WORLD'
    call MPI_Abort(MPI_COMM_WORLD, 1, ierr)
  end if
  call MPI_Comm_split(MPI_COMM_WORLD, 0, 2 - rank, sub, ierr)
  ! a receive posted in Fortran, completed in C
  buf = -1
  call MPI_Irecv(buf, 1, MPI_INTEGER, MPI_ANY_SOURCE, 4, sub, req, ierr)
  call MPI_Comm_rank(sub, n, ierr)
  call MPI_Send(n * 7, 1, MPI_INTEGER, mod(n + 1, 3), 4, sub, ierr)
  back = c_side(sub, req, n)
  ! the communicator C made (a dup of sub), used from Fortran
  call MPI_Comm_rank(back, val, ierr)
  call MPI_Allreduce(MPI_IN_PLACE, val, 1, MPI_INTEGER, MPI_SUM, back, ierr)
  call MPI_Comm_free(back, ierr)
  call MPI_Comm_free(sub, ierr)
  line = (/ rank, n, val /)
  call MPI_Gather(line, 3, MPI_INTEGER, all, 3, MPI_INTEGER, 0, MPI_COMM_WORLD, ierr)
  if (rank == 0) then
    do i = 0, 2
      print '(a,*(1x,i0))', 'fortran:', all(:, i)
    end do
    print '(a)', 'OK'
  end if
  call MPI_Finalize(ierr)
end program
