! ranks: 2
! A Fortran unit written to a file between MPI calls: each rank writes a
! line per step (after an Allreduce) to its own file, then reads it back;
! rank 0 prints every rank's checksum and its own file. The files are
! deleted at the end.
program fileunit
  use mpi
  implicit none
  integer, parameter :: steps = 20
  integer :: ierr, rank, size, step, v, total, k, sums(0:63)
  character(len=32) :: fname
  character(len=64) :: text

  call MPI_Init(ierr)
  call MPI_Comm_rank(MPI_COMM_WORLD, rank, ierr)
  call MPI_Comm_size(MPI_COMM_WORLD, size, ierr)
  write (fname, '(a,i0,a)') 'fileunit.', rank, '.tmp'
  open (unit=21, file=fname, status='replace', action='write')
  do step = 1, steps
    v = step * (rank + 1)
    call MPI_Allreduce(v, total, 1, MPI_INTEGER, MPI_SUM, MPI_COMM_WORLD, ierr)
    write (21, '(a,i0,a,i0,a,i0)') 'step ', step, ' mine ', v, ' total ', total
  end do
  close (21)

  open (unit=22, file=fname, status='old', action='read')
  k = 0
  do step = 1, steps
    read (22, '(a)') text
    k = k + len_trim(text) * step
    if (rank == 0 .and. mod(step, 5) == 0) print '(a)', trim(text)
  end do
  close (22, status='delete')
  call MPI_Gather(k, 1, MPI_INTEGER, sums, 1, MPI_INTEGER, 0, MPI_COMM_WORLD, ierr)
  if (rank == 0) then
    do v = 0, size - 1
      print '(a,i0,a,i0)', 'rank ', v, ' file checksum ', sums(v)
    end do
    print '(a)', 'OK'
  end if
  call MPI_Finalize(ierr)
end program
