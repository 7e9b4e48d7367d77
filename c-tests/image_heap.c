/* ranks: 1 */
/* image_heap: process state that a checkpoint (`ferry run --checkpoint
 * after=K,dir=DIR`) followed by `ferry restart DIR` must carry over, whatever
 * MPI call K falls on (the harness's restart:: cases checkpoint it at several
 * K and compare with a plain run; its other modes run it too).
 *
 *   image_heap [FILE]
 *
 * State covered:
 *   - heap: 20000 small blocks of 1..700 bytes (array of pointers), a linked
 *     list of ~5000 nodes with flexible payloads, strdup'd strings, freed and
 *     reallocated as the run goes (realloc growing and shrinking, prefixes
 *     checked), a history buffer grown by realloc one chunk at a time;
 *   - three large blocks (40, 12 and 24 MiB), the 24 MiB one freed at step
 *     150 and an 8 MiB one allocated at step 200, each with a running
 *     xor-sum checked against its contents;
 *   - deep recursion (depth 20000, a frame of local arrays checked on the
 *     way back up) with MPI calls at the bottom and on the way down and up,
 *     once before the step loop and at steps 100 and 200;
 *   - globals: an initialized .data array, .bss arrays, a static in a
 *     function, the PRNG state;
 *   - stdio: stdout lines left unflushed for up to 100 steps, and a file
 *     FILE (default image_heap.txt in the current directory) created and
 *     truncated BEFORE MPI_Init (so before any checkpoint), then open in
 *     append mode for the whole run, written every 10 steps and flushed only
 *     every 30 (buffered lines cross checkpoints). At the end it is closed
 *     and its contents are checksummed through open+read. Without a FILE
 *     argument the file is removed at the end; with one it is kept (for
 *     comparison by the caller).
 * The 300 steps each make one MPI call (Allreduce on COMM_SELF, Barrier,
 * Allreduce on WORLD, in turn) whose result is mixed into the state. Nothing
 * printed depends on addresses, the environment, pids or time.
 *
 * -DVARIANT builds a binary with a different global layout (larger .data
 * and .bss arrays): restart::corrupt.foreign swaps it in to check that a restart
 * refuses a binary that is not the checkpointed one. */
#define _POSIX_C_SOURCE 200809L
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

/* A signal handler of the program and the working directory must survive
 * a checkpoint too: the handler is installed before MPI_Init, the program
 * moves into a directory of its own right after it. */
static volatile sig_atomic_t g_signals;
static void on_usr1(int sig)
{
    (void)sig;
    g_signals++;
}

#define NBLOCKS 20000
#define NNODES 5000
#define MAXBLOCK 700
#define STEPS 300
#define DEPTH 20000
#define NLABELS 64
#define MiB ((size_t)1 << 20)

#ifdef VARIANT
#define DATA_WORDS 2560
#define BSS_WORDS ((1 << 16) + 1024)
#else
#define DATA_WORDS 2048
#define BSS_WORDS (1 << 16)
#endif

/* ---- globals -------------------------------------------------------------- */

/* .data: non-zero initializers */
static uint64_t g_data[DATA_WORDS] = {0x9e3779b97f4a7c15ULL, 0xbf58476d1ce4e5b9ULL,
                                      0x94d049bb133111ebULL, 3, 5, 7, 11, 13};
static uint64_t g_rng = 0x243f6a8885a308d3ULL;
static char g_label[48] = "image_heap state";
/* .bss */
static uint64_t g_bss[BSS_WORDS];
static uint32_t g_bss_counts[1024];

/* the heap */
static unsigned char **g_blocks; /* NBLOCKS pointers */
static uint32_t *g_sizes;
static uint32_t *g_gens;

struct node {
    struct node *next;
    uint32_t id, len;
    uint64_t sum; /* of payload */
    unsigned char payload[];
};
static struct node *g_head, *g_tail;
static uint32_t g_nodes, g_next_node_id;

static char *g_labels[NLABELS]; /* strdup'd */

static uint64_t *g_hist; /* grown by realloc */
static size_t g_hist_len, g_hist_cap;

struct big {
    uint64_t *w;
    size_t words;
    uint64_t xs; /* running xor of all words */
    uint64_t seed;
};
static struct big g_big[3];

static FILE *g_log;
static unsigned long g_mpi_calls; /* calls this program made (not printed) */

/* ---- helpers -------------------------------------------------------------- */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static uint64_t rnd(void)
{
    g_rng += 0x9e3779b97f4a7c15ULL;
    return mix64(g_rng);
}

/* a function-local static that must survive */
static uint64_t tick(void)
{
    static uint64_t t = 17;
    t = t * 6364136223846793005ULL + 1442695040888963407ULL;
    return t >> 11;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

#define FNV0 0xcbf29ce484222325ULL

static unsigned char pat(uint32_t id, uint32_t gen, size_t i)
{
    return (unsigned char)(mix64(((uint64_t)id << 32) ^ ((uint64_t)gen << 20) ^ i) >> 17);
}

static void fill_block(uint32_t id)
{
    for (size_t i = 0; i < g_sizes[id]; i++)
        g_blocks[id][i] = pat(id, g_gens[id], i);
}

static void check_block(uint32_t id, size_t upto)
{
    for (size_t i = 0; i < upto; i++)
        if (g_blocks[id][i] != pat(id, g_gens[id], i)) {
            fprintf(stderr, "block %u (gen %u, %u bytes): byte %zu differs\n", id,
                    g_gens[id], g_sizes[id], i);
            CHECK(!"small block contents intact");
        }
}

static void new_block(uint32_t id)
{
    g_sizes[id] = 1 + (uint32_t)(rnd() % MAXBLOCK);
    g_blocks[id] = malloc(g_sizes[id]);
    CHECK(g_blocks[id] != NULL);
    fill_block(id);
}

static struct node *make_node(void)
{
    uint32_t len = 1 + (uint32_t)(rnd() % 300);
    struct node *n = malloc(sizeof *n + len);
    CHECK(n != NULL);
    n->next = NULL;
    n->id = g_next_node_id++;
    n->len = len;
    n->sum = FNV0;
    for (uint32_t i = 0; i < len; i++)
        n->payload[i] = (unsigned char)(mix64(n->id * 977ULL + i) >> 9);
    n->sum = fnv(FNV0, n->payload, len);
    return n;
}

static void check_node(const struct node *n)
{
    CHECK(fnv(FNV0, n->payload, n->len) == n->sum);
}

static void append_node(struct node *n)
{
    if (g_tail)
        g_tail->next = n;
    else
        g_head = n;
    g_tail = n;
    g_nodes++;
}

static void hist_push(uint64_t v)
{
    if (g_hist_len == g_hist_cap) {
        /* small steps on purpose: many reallocs, most of them moving */
        size_t cap = g_hist_cap + 37;
        uint64_t *h = realloc(g_hist, cap * sizeof *h);
        CHECK(h != NULL);
        g_hist = h;
        g_hist_cap = cap;
    }
    g_hist[g_hist_len++] = v;
}

static void set_label(int i, uint64_t v)
{
    char buf[64];
    snprintf(buf, sizeof buf, "label-%d-%016llx", i, (unsigned long long)v);
    free(g_labels[i]);
    g_labels[i] = strdup(buf);
    CHECK(g_labels[i] != NULL);
}

static void big_alloc(struct big *b, size_t mib, uint64_t seed)
{
    b->words = mib * MiB / sizeof(uint64_t);
    b->w = malloc(b->words * sizeof(uint64_t));
    CHECK(b->w != NULL);
    b->seed = seed;
    b->xs = 0;
    for (size_t i = 0; i < b->words; i++) {
        b->w[i] = mix64(seed ^ i);
        b->xs ^= b->w[i];
    }
}

static void big_check(const struct big *b)
{
    uint64_t xs = 0;
    for (size_t i = 0; i < b->words; i++)
        xs ^= b->w[i];
    CHECK(xs == b->xs);
}

static void big_free(struct big *b)
{
    big_check(b);
    free(b->w);
    b->w = NULL;
    b->words = 0;
    b->xs = 0;
}

static void big_touch(struct big *b, int n)
{
    for (int k = 0; k < n; k++) {
        size_t i = (size_t)(rnd() % b->words);
        uint64_t nw = mix64(b->w[i] + tick());
        b->xs ^= b->w[i] ^ nw;
        b->w[i] = nw;
    }
}

static uint64_t big_hash(const struct big *b)
{
    uint64_t h = FNV0 ^ b->words;
    for (size_t i = 0; i < b->words; i++)
        h = (h ^ b->w[i]) * 0x100000001b3ULL;
    return h;
}

/* One MPI call, chosen by k, whose result goes back into the state. */
static uint64_t mpi_step(int k, uint64_t v)
{
    uint64_t out = 0;
    g_mpi_calls++;
    switch (k % 3) {
    case 0:
        CK(MPI_Allreduce(&v, &out, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_SELF));
        return out;
    case 1:
        CK(MPI_Barrier(MPI_COMM_WORLD));
        return v ^ 0x5bd1e995ULL;
    default:
        CK(MPI_Allreduce(&v, &out, 1, MPI_UINT64_T, MPI_BXOR, MPI_COMM_WORLD));
        return out + 1;
    }
}

/* Deep recursion: a frame of local arrays, checked after the callee returns
 * (nothing here is a tail call). MPI calls every `every` levels on the way
 * down and back up, and `bottom` of them at the deepest level. */
static uint64_t dive(int depth, int max, int every, int bottom, const uint64_t in)
{
    uint64_t acc = in;
    uint32_t a[16];
    unsigned char b[24];
    for (int i = 0; i < 16; i++)
        a[i] = (uint32_t)mix64(acc + (uint64_t)i * 131 + (uint64_t)depth);
    for (int i = 0; i < 24; i++)
        b[i] = (unsigned char)(a[i % 16] >> (i % 24));
    if (depth % every == 0)
        acc = mpi_step(depth / every, acc);
    uint64_t r;
    if (depth == max) {
        r = acc;
        for (int i = 0; i < bottom; i++)
            r = mpi_step(i, mix64(r + (uint64_t)i));
    } else {
        r = dive(depth + 1, max, every, bottom, acc ^ a[depth % 16]);
    }
    /* the frame must be intact after the call (and after a restart) */
    for (int i = 0; i < 16; i++)
        CHECK(a[i] == (uint32_t)mix64(in + (uint64_t)i * 131 + (uint64_t)depth));
    for (int i = 0; i < 24; i++)
        CHECK(b[i] == (unsigned char)(a[i % 16] >> (i % 24)));
    if (depth % (every * 5) == 0)
        r = mpi_step(depth, r);
    return mix64(r ^ b[depth % 24]) + a[(depth + 7) % 16];
}

/* Checksum of the small-block heap, list, labels, history and globals. */
static uint64_t small_state_hash(void)
{
    uint64_t h = FNV0;
    for (uint32_t id = 0; id < NBLOCKS; id++) {
        h = fnv(h, &g_sizes[id], sizeof g_sizes[id]);
        h = fnv(h, g_blocks[id], g_sizes[id]);
    }
    for (const struct node *n = g_head; n; n = n->next) {
        h = fnv(h, &n->id, sizeof n->id);
        h = fnv(h, n->payload, n->len);
    }
    for (int i = 0; i < NLABELS; i++)
        h = fnv(h, g_labels[i], strlen(g_labels[i]));
    h = fnv(h, g_hist, g_hist_len * sizeof *g_hist);
    h = fnv(h, g_data, sizeof g_data);
    h = fnv(h, g_bss, sizeof g_bss);
    h = fnv(h, g_bss_counts, sizeof g_bss_counts);
    h = fnv(h, g_label, strlen(g_label));
    return h;
}

static uint64_t big_xs(void)
{
    uint64_t x = 0;
    for (int i = 0; i < 3; i++)
        x = mix64(x ^ g_big[i].xs ^ g_big[i].words);
    return x;
}

/* ---- the step loop -------------------------------------------------------- */

static void step(int s)
{
    /* free and reallocate small blocks */
    for (int k = 0; k < 60; k++) {
        uint32_t id = (uint32_t)(rnd() % NBLOCKS);
        check_block(id, g_sizes[id]);
        free(g_blocks[id]);
        g_gens[id]++;
        new_block(id);
    }
    /* realloc: grow or shrink, the common prefix must survive */
    for (int k = 0; k < 8; k++) {
        uint32_t id = (uint32_t)(rnd() % NBLOCKS);
        uint32_t nsz = (k % 2 == 0) ? g_sizes[id] + 1 + (uint32_t)(rnd() % 400)
                                    : 1 + g_sizes[id] / 2;
        unsigned char *p = realloc(g_blocks[id], nsz);
        CHECK(p != NULL);
        g_blocks[id] = p;
        uint32_t keep = nsz < g_sizes[id] ? nsz : g_sizes[id];
        check_block(id, keep);
        g_sizes[id] = nsz;
        fill_block(id);
    }
    /* list: unlink a few nodes at pseudo-random places, append new ones */
    for (int k = 0; k < 15; k++) {
        uint32_t pos = (uint32_t)(rnd() % g_nodes);
        struct node *prev = NULL, *n = g_head;
        for (uint32_t i = 0; i < pos; i++) {
            prev = n;
            n = n->next;
        }
        check_node(n);
        if (prev)
            prev->next = n->next;
        else
            g_head = n->next;
        if (g_tail == n)
            g_tail = prev;
        g_nodes--;
        free(n);
        append_node(make_node());
    }
    set_label(s % NLABELS, rnd());
    for (int k = 0; k < 32; k++) {
        size_t i = (size_t)(rnd() % BSS_WORDS);
        g_bss[i] = mix64(g_bss[i] ^ (uint64_t)s);
        g_bss_counts[i % 1024]++;
        g_data[(size_t)(rnd() % DATA_WORDS)] += tick();
    }
    for (int i = 0; i < 3; i++)
        if (g_big[i].w)
            big_touch(&g_big[i], 256);
    if (s == 150)
        big_free(&g_big[2]);
    if (s == 200)
        big_alloc(&g_big[2], 8, 0xabcdef);
    if (s == 100 || s == 200) {
        uint64_t d = dive(0, DEPTH, 4000, 5, g_rng ^ (uint64_t)s);
        hist_push(d);
    }

    uint64_t v = mpi_step(s, mix64(g_rng ^ g_hist[g_hist_len - 1]));
    hist_push(v);
    g_data[s % DATA_WORDS] ^= v;

    if (s % 10 == 0) {
        fprintf(g_log, "step %d: v=%016llx nodes=%u hist=%zu label=%s\n", s,
                (unsigned long long)v, g_nodes, g_hist_len, g_labels[s % NLABELS]);
        if (s % 30 == 0)
            fflush(g_log);
    }
    if (s % 25 == 0) {
        printf("step %3d: heap %016llx big %016llx nodes %u hist %zu\n", s,
               (unsigned long long)small_state_hash(), (unsigned long long)big_xs(),
               g_nodes, g_hist_len);
        if (s % 100 == 0)
            fflush(stdout);
    }
}

static uint64_t file_hash(const char *name, size_t *len)
{
    int fd = open(name, O_RDONLY);
    CHECK(fd >= 0);
    uint64_t h = FNV0;
    char buf[4096];
    ssize_t n;
    *len = 0;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        h = fnv(h, buf, (size_t)n);
        *len += (size_t)n;
    }
    CHECK(n == 0);
    close(fd);
    return h;
}

int main(int argc, char **argv)
{
    const char *name = argc > 1 ? argv[1] : "image_heap.txt";
    int keep_file = argc > 1;

    /* Created and truncated before MPI_Init: a checkpoint can only come
     * after it, so a restarted run never truncates it again. */
    FILE *t = fopen(name, "w");
    CHECK(t != NULL);
    fprintf(t, "image_heap log (%s)\n", g_label);
    CHECK(fclose(t) == 0);
    g_log = fopen(name, "a");
    CHECK(g_log != NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);

    CK(MPI_Init(&argc, &argv));
    g_mpi_calls++;
    CHECK(mkdir("image_heap.d", 0700) == 0 || errno == EEXIST);
    CHECK(chdir("image_heap.d") == 0);
    /* an environment variable of the program's own */
    CHECK(setenv("IMAGE_HEAP_MARK", "carried", 1) == 0);
    int size;
    CK(MPI_Comm_size(MPI_COMM_WORLD, &size));
    g_mpi_calls++;
    if (size != 1) {
        fprintf(stderr, "image_heap needs exactly 1 rank, got %d\n", size);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    printf("image_heap: %d blocks, %d nodes, %d steps, recursion depth %d\n", NBLOCKS,
           NNODES, STEPS, DEPTH);

    /* setup, with MPI calls in between */
    for (int i = 0; i < DATA_WORDS; i++)
        if (i >= 8)
            g_data[i] = mix64(g_data[i - 8] + (uint64_t)i);
    g_blocks = calloc(NBLOCKS, sizeof *g_blocks);
    g_sizes = calloc(NBLOCKS, sizeof *g_sizes);
    g_gens = calloc(NBLOCKS, sizeof *g_gens);
    CHECK(g_blocks && g_sizes && g_gens);
    uint64_t acc = 1;
    for (uint32_t id = 0; id < NBLOCKS; id++) {
        new_block(id);
        if ((id + 1) % 2000 == 0)
            acc = mpi_step((int)id, acc + g_sizes[id]);
    }
    for (uint32_t i = 0; i < NNODES; i++) {
        append_node(make_node());
        if ((i + 1) % 1000 == 0)
            acc = mpi_step((int)i, acc ^ g_tail->sum);
    }
    for (int i = 0; i < NLABELS; i++)
        set_label(i, (uint64_t)i);
    static const size_t big_mib[3] = {40, 12, 24};
    for (int i = 0; i < 3; i++) {
        big_alloc(&g_big[i], big_mib[i], 0x1000u + (uint64_t)i);
        acc = mpi_step(i, acc + g_big[i].xs);
    }
    hist_push(acc);
    printf("setup: heap %016llx big %016llx acc %016llx\n",
           (unsigned long long)small_state_hash(), (unsigned long long)big_xs(),
           (unsigned long long)acc);
    fflush(stdout);

    /* deep recursion with many MPI calls at the bottom */
    uint64_t d = dive(0, DEPTH, 1000, 30, acc);
    hist_push(d);
    printf("recursion: %016llx\n", (unsigned long long)d);

    for (int s = 0; s < STEPS; s++)
        step(s);

    /* final state: every block checked, everything hashed */
    for (uint32_t id = 0; id < NBLOCKS; id++)
        check_block(id, g_sizes[id]);
    uint32_t count = 0;
    for (const struct node *n = g_head; n; n = n->next, count++)
        check_node(n);
    CHECK(count == g_nodes && count == NNODES);
    uint64_t bh = FNV0;
    for (int i = 0; i < 3; i++) {
        big_check(&g_big[i]);
        bh = mix64(bh ^ big_hash(&g_big[i]));
    }
    printf("final: heap %016llx big %016llx nodes %u hist %zu ticks %016llx\n",
           (unsigned long long)small_state_hash(), (unsigned long long)bh, g_nodes,
           g_hist_len, (unsigned long long)tick());

    raise(SIGUSR1);
    raise(SIGUSR1);
    char cwd[4096];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    const char *base = strrchr(cwd, '/');
    const char *mark = getenv("IMAGE_HEAP_MARK");
    printf("signals handled: %d, working directory: %s, environment: %s\n", (int)g_signals,
           base ? base + 1 : cwd, mark ? mark : "(unset)");
    CHECK(chdir("..") == 0);
    rmdir("image_heap.d");

    fprintf(g_log, "end: %lu MPI calls made\n", g_mpi_calls);
    CHECK(fclose(g_log) == 0);
    size_t flen;
    uint64_t fh = file_hash(name, &flen);
    printf("file: %zu bytes, checksum %016llx\n", flen, (unsigned long long)fh);
    if (!keep_file)
        unlink(name);

    for (uint32_t id = 0; id < NBLOCKS; id++)
        free(g_blocks[id]);
    free(g_blocks);
    free(g_sizes);
    free(g_gens);
    while (g_head) {
        struct node *n = g_head->next;
        free(g_head);
        g_head = n;
    }
    for (int i = 0; i < NLABELS; i++)
        free(g_labels[i]);
    free(g_hist);
    for (int i = 0; i < 3; i++)
        free(g_big[i].w);
    return finish_ok();
}
