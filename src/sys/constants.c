/* Macro-only MPI handle and sentinel constants as linkable objects, read by
   src/sys/constants.rs (integer constants are evaluated at build time by
   build.rs instead).
   MPICH defines handles as casted integers and Open MPI as addresses of
   predefined objects; neither can be evaluated by bindgen. Regenerate the
   list here and in constants.rs together. */
#include <mpi.h>

MPI_Comm const ferry_MPI_COMM_WORLD = MPI_COMM_WORLD;
MPI_Comm const ferry_MPI_COMM_SELF = MPI_COMM_SELF;
MPI_Comm const ferry_MPI_COMM_NULL = MPI_COMM_NULL;
MPI_Group const ferry_MPI_GROUP_NULL = MPI_GROUP_NULL;
MPI_Group const ferry_MPI_GROUP_EMPTY = MPI_GROUP_EMPTY;
MPI_Request const ferry_MPI_REQUEST_NULL = MPI_REQUEST_NULL;
MPI_Info const ferry_MPI_INFO_NULL = MPI_INFO_NULL;
MPI_Errhandler const ferry_MPI_ERRHANDLER_NULL = MPI_ERRHANDLER_NULL;
MPI_Errhandler const ferry_MPI_ERRORS_RETURN = MPI_ERRORS_RETURN;
MPI_Errhandler const ferry_MPI_ERRORS_ARE_FATAL = MPI_ERRORS_ARE_FATAL;
MPI_Datatype const ferry_MPI_DATATYPE_NULL = MPI_DATATYPE_NULL;
MPI_Datatype const ferry_MPI_BYTE = MPI_BYTE;
MPI_Datatype const ferry_MPI_INT = MPI_INT;
MPI_Datatype const ferry_MPI_UINT64_T = MPI_UINT64_T;
MPI_Datatype const ferry_MPI_INT64_T = MPI_INT64_T;
MPI_Datatype const ferry_MPI_PACKED = MPI_PACKED;
MPI_Op const ferry_MPI_OP_NULL = MPI_OP_NULL;
MPI_Op const ferry_MPI_MAX = MPI_MAX;
MPI_Op const ferry_MPI_SUM = MPI_SUM;
MPI_Op const ferry_MPI_BOR = MPI_BOR;
MPI_Op const ferry_MPI_REPLACE = MPI_REPLACE;
MPI_Message const ferry_MPI_MESSAGE_NULL = MPI_MESSAGE_NULL;
MPI_Message const ferry_MPI_MESSAGE_NO_PROC = MPI_MESSAGE_NO_PROC;
MPI_Win const ferry_MPI_WIN_NULL = MPI_WIN_NULL;
MPI_Status * const ferry_MPI_STATUS_IGNORE = MPI_STATUS_IGNORE;
MPI_Status * const ferry_MPI_STATUSES_IGNORE = MPI_STATUSES_IGNORE;
void * const ferry_MPI_IN_PLACE = MPI_IN_PLACE;
void * const ferry_MPI_BOTTOM = MPI_BOTTOM;
int * const ferry_MPI_ERRCODES_IGNORE = MPI_ERRCODES_IGNORE;
char ** const ferry_MPI_ARGV_NULL = MPI_ARGV_NULL;
int const ferry_status_size = (int)sizeof(MPI_Status);

/* Sentinels that are addresses of library variables (not constants). */
int *ferry_unweighted(void) { return MPI_UNWEIGHTED; }
