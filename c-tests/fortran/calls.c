/* The call counter of calls.f90 and calls_f08.f90: the library's count
 * (ferry_call_count in ferry.h), or -1 when the library is not loaded. */
#include "ferry.h"

long ferry_test_calls(void)
{
    return ferry_call_count ? ferry_call_count() : -1;
}
