/* The call counter of calls_f08.f90: the same as calls.f90's. */
#include "calls.c"
