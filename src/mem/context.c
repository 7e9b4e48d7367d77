/* The two moments of the process image that must be written in C: the
 * save point (getcontext returns twice, which C compilers know and Rust
 * does not) and the jump into a restored image (the stack-protector canary
 * of the old process must be in place before any restored frame returns).
 * Built by build.rs without stack protector: these functions run while the
 * canary changes under them. */
#define _GNU_SOURCE
#include <stdint.h>
#include <ucontext.h>

/* Saves the calling thread's context into *ctx, then calls write(arg) with
 * this frame still alive below the caller, so that the context stays valid
 * in the image that write() makes of the stack. Returns 0 after write()
 * succeeded, -1 after it failed, and 1 when execution comes back here in a
 * new process through ferry_image_jump (*resumed is set there: it lives in
 * memory that is not part of the image). */
int ferry_image_save(ucontext_t *ctx, volatile int *resumed,
                     int (*write)(void *arg), void *arg)
{
    *resumed = 0;
    if (getcontext(ctx) != 0)
        return -1;
    if (*resumed)
        return 1;
    return write(arg) == 0 ? 0 : -1;
}

/* Installs the old process's stack-protector canary and continues at the
 * saved context. Does not return. */
void ferry_image_jump(const ucontext_t *ctx, volatile int *resumed, uint64_t canary)
{
    *resumed = 1;
    __asm__ volatile("movq %0, %%fs:0x28" : : "r"(canary) : "memory");
    setcontext(ctx);
    __builtin_trap();
}

/* Reads the calling thread's canary. */
uint64_t ferry_image_canary(void)
{
    uint64_t c;
    __asm__ volatile("movq %%fs:0x28, %0" : "=r"(c));
    return c;
}

/* Switches to a new stack [stack_lo, stack_lo + size) and calls
 * fn(arg) on it; returns what fn returns, back on the caller's stack. */
static ucontext_t switch_back, switch_to;
static long (*switch_fn)(void *);
static void *switch_arg;
static long switch_ret;
static void switch_tramp(void) { switch_ret = switch_fn(switch_arg); }

long ferry_image_on_stack(void *stack_lo, uint64_t size, long (*fn)(void *), void *arg)
{
    switch_fn = fn;
    switch_arg = arg;
    if (getcontext(&switch_to) != 0)
        return -1;
    switch_to.uc_stack.ss_sp = stack_lo;
    switch_to.uc_stack.ss_size = size;
    switch_to.uc_link = &switch_back;
    makecontext(&switch_to, switch_tramp, 0);
    if (swapcontext(&switch_back, &switch_to) != 0)
        return -1;
    return switch_ret;
}
