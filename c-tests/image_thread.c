/* ranks: 2 */
/* ferry-test-refuses: thread */
/* ferry-test-skip: swap one barrier on the world, at its end (the switch fires at the 2nd) */
/* image_thread: every rank starts a pthread of its own right after
 * MPI_Init_thread(FUNNELED) and keeps it alive, waiting on a condition
 * variable between jobs that the main thread hands it, until it is joined
 * after the last of 200 steps. Only the main thread calls MPI: each step is
 * a Sendrecv between the two ranks, plus an Allreduce every 10 steps and a
 * gathered checksum line every 50.
 *
 * restart::image_thread.refused asks for a checkpoint of it (`ferry run -n 2
 * --checkpoint after=50,...`): a rank with a thread of the program's own
 * cannot be imaged, so the checkpoint must be refused (a message with
 * "refused" and the reason on stderr, no image written) and the job must
 * run to the end with the same output as a plain run. */
#define _POSIX_C_SOURCE 200809L
#include "common.h"

#include <pthread.h>
#include <stdint.h>

#define STEPS 200

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static int g_job_ready, g_job_done, g_quit;
static uint64_t g_job_in, g_job_out;
static long g_jobs_run; /* written by the worker only */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

/* The worker: waits for a job, computes, hands the result back. */
static void *worker(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&g_mu);
    for (;;) {
        while (!g_job_ready && !g_quit)
            pthread_cond_wait(&g_cv, &g_mu);
        if (!g_job_ready)
            break; /* quit */
        uint64_t in = g_job_in;
        g_job_ready = 0;
        pthread_mutex_unlock(&g_mu);

        uint64_t x = in;
        for (int i = 0; i < 2000; i++)
            x = mix64(x + (uint64_t)i);

        pthread_mutex_lock(&g_mu);
        g_jobs_run++;
        g_job_out = x;
        g_job_done = 1;
        pthread_cond_broadcast(&g_cv);
    }
    pthread_mutex_unlock(&g_mu);
    return NULL;
}

static uint64_t run_job(uint64_t in)
{
    pthread_mutex_lock(&g_mu);
    g_job_in = in;
    g_job_ready = 1;
    g_job_done = 0;
    pthread_cond_broadcast(&g_cv);
    while (!g_job_done)
        pthread_cond_wait(&g_cv, &g_mu);
    uint64_t out = g_job_out;
    pthread_mutex_unlock(&g_mu);
    return out;
}

int main(int argc, char **argv)
{
    int provided = -1;
    CK(MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided));
    need_ranks(2);
    CHECK(provided >= MPI_THREAD_FUNNELED);
    int rank = world_rank();
    int other = 1 - rank;

    pthread_t tid;
    CHECK(pthread_create(&tid, NULL, worker, NULL) == 0);
    say("image_thread: worker thread started on each rank, %d steps", STEPS);

    uint64_t local = 0x1234567ULL + (uint64_t)rank, seen = 0, total = 0;
    for (int s = 0; s < STEPS; s++) {
        local = run_job(local ^ seen);
        uint64_t mine = local % 1000003, theirs = 0;
        CK(MPI_Sendrecv(&mine, 1, MPI_UINT64_T, other, s, &theirs, 1, MPI_UINT64_T, other, s,
                        MPI_COMM_WORLD, MPI_STATUS_IGNORE));
        seen = theirs;
        if (s % 10 == 9) {
            uint64_t sum = 0;
            CK(MPI_Allreduce(&mine, &sum, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD));
            total = total * 31 + sum;
        }
        if (s % 50 == 49)
            say_all("step %d: local %016llx seen %llu total %016llx", s,
                    (unsigned long long)local, (unsigned long long)seen,
                    (unsigned long long)total);
    }

    pthread_mutex_lock(&g_mu);
    g_quit = 1;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
    CHECK(pthread_join(tid, NULL) == 0);
    CHECK(g_jobs_run == STEPS);
    say_all("worker joined after %ld jobs; final %016llx", g_jobs_run,
            (unsigned long long)mix64(local ^ total));
    return finish_ok();
}
