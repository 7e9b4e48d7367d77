/* Macro-only MPI constants as linkable objects, read by src/sys/constants.rs.
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
MPI_Message const ferry_MPI_MESSAGE_NULL = MPI_MESSAGE_NULL;
MPI_Message const ferry_MPI_MESSAGE_NO_PROC = MPI_MESSAGE_NO_PROC;
MPI_Win const ferry_MPI_WIN_NULL = MPI_WIN_NULL;
MPI_Status * const ferry_MPI_STATUS_IGNORE = MPI_STATUS_IGNORE;
MPI_Status * const ferry_MPI_STATUSES_IGNORE = MPI_STATUSES_IGNORE;
void * const ferry_MPI_IN_PLACE = MPI_IN_PLACE;
void * const ferry_MPI_BOTTOM = MPI_BOTTOM;
int * const ferry_MPI_ERRCODES_IGNORE = MPI_ERRCODES_IGNORE;
char ** const ferry_MPI_ARGV_NULL = MPI_ARGV_NULL;
int const ferry_MPI_ANY_SOURCE = MPI_ANY_SOURCE;
int const ferry_MPI_ANY_TAG = MPI_ANY_TAG;
int const ferry_MPI_PROC_NULL = MPI_PROC_NULL;
int const ferry_MPI_ROOT = MPI_ROOT;
int const ferry_MPI_UNDEFINED = MPI_UNDEFINED;
int const ferry_MPI_SUCCESS = MPI_SUCCESS;
int const ferry_MPI_ERR_COMM = MPI_ERR_COMM;
int const ferry_MPI_ERR_REQUEST = MPI_ERR_REQUEST;
int const ferry_MPI_ERR_ARG = MPI_ERR_ARG;
int const ferry_MPI_ERR_GROUP = MPI_ERR_GROUP;
int const ferry_MPI_ERR_INTERN = MPI_ERR_INTERN;
int const ferry_MPI_ERR_OTHER = MPI_ERR_OTHER;
int const ferry_MPI_ERR_COUNT = MPI_ERR_COUNT;
int const ferry_MPI_ERR_PENDING = MPI_ERR_PENDING;
int const ferry_MPI_ERR_IN_STATUS = MPI_ERR_IN_STATUS;
int const ferry_MPI_THREAD_SINGLE = MPI_THREAD_SINGLE;
int const ferry_MPI_THREAD_FUNNELED = MPI_THREAD_FUNNELED;
int const ferry_MPI_THREAD_SERIALIZED = MPI_THREAD_SERIALIZED;
int const ferry_MPI_THREAD_MULTIPLE = MPI_THREAD_MULTIPLE;
int const ferry_MPI_IDENT = MPI_IDENT;
int const ferry_MPI_CONGRUENT = MPI_CONGRUENT;
int const ferry_MPI_SIMILAR = MPI_SIMILAR;
int const ferry_MPI_UNEQUAL = MPI_UNEQUAL;
int const ferry_MPI_GRAPH = MPI_GRAPH;
int const ferry_MPI_CART = MPI_CART;
int const ferry_MPI_DIST_GRAPH = MPI_DIST_GRAPH;
int const ferry_MPI_TAG_UB = MPI_TAG_UB;
int const ferry_MPI_KEYVAL_INVALID = MPI_KEYVAL_INVALID;
int const ferry_MPI_MODE_NOCHECK = MPI_MODE_NOCHECK;
int const ferry_MPI_LOCK_SHARED = MPI_LOCK_SHARED;
int const ferry_MPI_LOCK_EXCLUSIVE = MPI_LOCK_EXCLUSIVE;
int const ferry_MPI_MAX_ERROR_STRING = MPI_MAX_ERROR_STRING;
int const ferry_MPI_MAX_PROCESSOR_NAME = MPI_MAX_PROCESSOR_NAME;
int const ferry_MPI_MAX_OBJECT_NAME = MPI_MAX_OBJECT_NAME;
int const ferry_MPI_COMM_TYPE_SHARED = MPI_COMM_TYPE_SHARED;
int const ferry_status_size = (int)sizeof(MPI_Status);

/* Sentinels that are addresses of library variables (not constants). */
int *ferry_unweighted(void) { return MPI_UNWEIGHTED; }
