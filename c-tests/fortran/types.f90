! ranks: 2
! Derived datatypes from Fortran: a struct of (double precision, integer)
! matching a bind(C) derived type, resized to its extent; a vector (a
! matrix column); contiguous and indexed; sizes and extents; freed.
program types
  use mpi
  use iso_c_binding, only: c_double, c_int
  implicit none
  type, bind(C) :: rec
    real(c_double) :: x
    integer(c_int) :: i
  end type
  type(rec) :: recs(3)
  integer :: ierr, rank, i, j, tstruct, tres, tvec, tcont, tidx, tsize
  integer :: blens(2), types2(2), m(4, 4), col(4), idx(6)
  integer(kind=MPI_ADDRESS_KIND) :: disps(2), lb, extent

  call MPI_Init(ierr)
  call MPI_Comm_rank(MPI_COMM_WORLD, rank, ierr)

  blens = (/ 1, 1 /)
  disps = (/ 0_MPI_ADDRESS_KIND, 8_MPI_ADDRESS_KIND /)
  types2 = (/ MPI_DOUBLE_PRECISION, MPI_INTEGER /)
  call MPI_Type_create_struct(2, blens, disps, types2, tstruct, ierr)
  call MPI_Type_create_resized(tstruct, 0_MPI_ADDRESS_KIND, 16_MPI_ADDRESS_KIND, tres, ierr)
  call MPI_Type_commit(tres, ierr)
  call MPI_Type_size(tres, tsize, ierr)
  call MPI_Type_get_extent(tres, lb, extent, ierr)
  if (rank == 0) print '(a,i0,a,i0,a,i0)', 'struct: size ', tsize, ' lb ', lb, ' extent ', extent

  if (rank == 0) then
    do i = 1, 3
      recs(i) = rec(1.5d0 * i, 10 * i)
    end do
    call MPI_Send(recs, 3, tres, 1, 0, MPI_COMM_WORLD, ierr)
    call MPI_Recv(recs, 3, tres, 1, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE, ierr)
    do i = 1, 3
      print '(a,i0,a,f6.2,1x,i0)', 'struct rec ', i, ':', recs(i)%x, recs(i)%i
    end do
  else
    call MPI_Recv(recs, 3, tres, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE, ierr)
    recs(:)%x = recs(:)%x * 2
    recs(:)%i = recs(:)%i + 1
    call MPI_Send(recs, 3, tres, 0, 1, MPI_COMM_WORLD, ierr)
  end if

  ! a row of a column-major matrix: 4 elements, stride 4
  call MPI_Type_vector(4, 1, 4, MPI_INTEGER, tvec, ierr)
  call MPI_Type_commit(tvec, ierr)
  if (rank == 0) then
    m = reshape((/ (i, i = 1, 16) /), (/ 4, 4 /))
    call MPI_Send(m(2, 1), 1, tvec, 1, 2, MPI_COMM_WORLD, ierr)
    call MPI_Recv(col, 4, MPI_INTEGER, 1, 3, MPI_COMM_WORLD, MPI_STATUS_IGNORE, ierr)
    print '(a,*(1x,i0))', 'vector row 2 back:', col
  else
    call MPI_Recv(col, 4, MPI_INTEGER, 0, 2, MPI_COMM_WORLD, MPI_STATUS_IGNORE, ierr)
    col = col * 3
    call MPI_Send(col, 4, MPI_INTEGER, 0, 3, MPI_COMM_WORLD, ierr)
  end if

  call MPI_Type_contiguous(3, MPI_INTEGER, tcont, ierr)
  call MPI_Type_commit(tcont, ierr)
  blens = (/ 2, 1 /)
  call MPI_Type_indexed(2, blens, (/ 0, 4 /), MPI_INTEGER, tidx, ierr)
  call MPI_Type_commit(tidx, ierr)
  idx = (/ (rank * 100 + j, j = 1, 6) /)
  if (rank == 0) then
    call MPI_Send(idx, 2, tcont, 1, 4, MPI_COMM_WORLD, ierr)
    call MPI_Recv(idx, 1, tidx, 1, 5, MPI_COMM_WORLD, MPI_STATUS_IGNORE, ierr)
    print '(a,*(1x,i0))', 'contiguous/indexed:', idx
  else
    call MPI_Recv(idx, 2, tcont, 0, 4, MPI_COMM_WORLD, MPI_STATUS_IGNORE, ierr)
    idx = idx + 1000
    call MPI_Send(idx, 1, tidx, 0, 5, MPI_COMM_WORLD, ierr)
  end if

  call MPI_Type_free(tcont, ierr)
  call MPI_Type_free(tidx, ierr)
  call MPI_Type_free(tvec, ierr)
  call MPI_Type_free(tres, ierr)
  call MPI_Type_free(tstruct, ierr)
  if (tres /= MPI_DATATYPE_NULL) then
    write (0, *) 'type not null after free'
    call MPI_Abort(MPI_COMM_WORLD, 1, ierr)
  end if
  call MPI_Barrier(MPI_COMM_WORLD, ierr)
  if (rank == 0) print '(a)', 'OK'
  call MPI_Finalize(ierr)
end program
