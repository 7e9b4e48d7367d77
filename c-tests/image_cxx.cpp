/* ranks: 1 */
/* image_cxx: C++ runtime state that a checkpoint (`ferry run --checkpoint
 * after=K,dir=DIR`) followed by `ferry restart DIR` must carry over. Built
 * with the MPI C++ wrapper (mpicxx) and run only by the harness's restart::
 * cases (harness/src/restart.rs); it calls the MPI C API only.
 *
 * Covered:
 *   - static objects with constructors and destructors: a global
 *     std::map<std::string,int>, a global std::vector<double>, a function-local
 *     static (first used at step 10, so after an early checkpoint its guard
 *     is still unset), a thread_local counter, and an object whose destructor
 *     prints a line after main returns (after "OK" and MPI_Finalize), plus an
 *     atexit handler that prints one too: a checkpointed run must not print
 *     them (it stops without running the rest of the program), the restarted
 *     run must;
 *   - std::string, std::unordered_map and std::vector growth across MPI calls;
 *   - exceptions thrown and caught between MPI calls, some unwinding through
 *     frames that made an MPI call;
 *   - std::cout formatting state: setprecision(15) is set before MPI_Init, so
 *     before any checkpoint; step lines are left unflushed for up to 50 steps.
 * 200 steps, each with one MPI call (Allreduce, Barrier, Bcast on COMM_SELF,
 * in turn); prints checksums every 20 steps and "OK" before MPI_Finalize.
 * Nothing printed depends on addresses, the environment, pids or time. */
// the C API only: keep the MPI headers' C++ bindings out
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

const int STEPS = 200;
const int FIRST_REGISTRY_STEP = 10; // after about 13 MPI calls

void fail(const char *what, int line)
{
    std::fprintf(stderr, "image_cxx: CHECK FAILED at line %d: %s\n", line, what);
    std::fflush(stderr);
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (inited && !finalized)
        MPI_Abort(MPI_COMM_WORLD, 1);
    std::exit(1);
}

#define CHECK(c)                                                                   \
    do {                                                                           \
        if (!(c))                                                                  \
            fail(#c, __LINE__);                                                    \
    } while (0)
#define CK(call) CHECK((call) == MPI_SUCCESS)

std::uint64_t mix64(std::uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

std::uint64_t str_hash(const std::string &s)
{
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (unsigned char c : s) {
        h ^= c;
        h *= 0x100000001b3ULL;
    }
    return h;
}

std::vector<double> make_series()
{
    std::vector<double> v;
    for (int i = 0; i < 1000; i++)
        v.push_back(1.0 / (i + 3) + i * 0.001);
    return v;
}

// dynamic initialization before main
std::map<std::string, int> g_names = {{"alpha", 1}, {"beta", 2}, {"gamma", 3}, {"delta", 4}};
std::vector<double> g_series = make_series();
thread_local long tl_events = 0;
int g_atexit_value = 0;

struct Announcer {
    std::string name;
    std::vector<std::string> notes;
    explicit Announcer(const char *n) : name(n) { notes.push_back("constructed"); }
    ~Announcer()
    {
        std::uint64_t h = 0;
        for (const auto &s : notes)
            h = mix64(h ^ str_hash(s));
        std::cout << "destructor " << name << ": " << notes.size() << " notes, hash "
                  << std::hex << h << std::dec << std::endl;
    }
};
Announcer g_announcer("image_cxx");

// a function-local static, first used inside the step loop
struct Registry {
    std::unordered_map<std::string, std::vector<int>> table;
    int constructed_at;
    explicit Registry(int step) : constructed_at(step) {}
};
Registry &registry(int step)
{
    static Registry r(step);
    return r;
}

struct StepError : std::runtime_error {
    int step;
    StepError(const std::string &m, int s) : std::runtime_error(m), step(s) {}
};

void at_exit_line()
{
    std::cout << "atexit: value " << g_atexit_value << std::endl;
}

int g_calls = 0;

// one MPI call, chosen by k; the result goes back into the computation
double mpi_step(int k, double v)
{
    g_calls++;
    tl_events++;
    double out = 0;
    switch (k % 3) {
    case 0:
        CK(MPI_Allreduce(&v, &out, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD));
        return out;
    case 1:
        CK(MPI_Barrier(MPI_COMM_WORLD));
        return v * 0.5 + 1.0;
    default:
        out = v;
        CK(MPI_Bcast(&out, 1, MPI_DOUBLE, 0, MPI_COMM_SELF));
        return out - 0.25;
    }
}

// throws from a few frames down, after an MPI call in the innermost one
void thrower(int depth, int s, std::string &trail)
{
    trail += static_cast<char>('a' + depth);
    std::string local = "frame" + std::to_string(depth);
    if (depth == 0) {
        mpi_step(s + 1, static_cast<double>(s));
        throw StepError("step " + std::to_string(s) + " via " + trail + "/" + local, s);
    }
    thrower(depth - 1, s, trail);
}

} // namespace

int main(int argc, char **argv)
{
    std::cout << std::setprecision(15); // before any checkpoint can happen
    CK(MPI_Init(&argc, &argv));
    int size = 0;
    CK(MPI_Comm_size(MPI_COMM_WORLD, &size));
    if (size != 1) {
        std::fprintf(stderr, "image_cxx needs exactly 1 rank, got %d\n", size);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    std::atexit(at_exit_line);
    std::cout << "image_cxx: " << g_names.size() << " names, series of " << g_series.size()
              << ", first " << g_series[0] << '\n';

    std::unordered_map<std::string, double> weights;
    std::string journal;
    double acc = 1.0 / 7.0;
    int caught_step = 0, caught_range = 0, caught_logic = 0;
    for (int s = 0; s < STEPS; s++) {
        std::string key = "k" + std::to_string(s % 37);
        weights[key] += acc / (s + 1);
        if (s >= FIRST_REGISTRY_STEP)
            registry(s).table[key].push_back(s);
        g_names[key] += s;
        g_series.push_back(acc);
        g_series[static_cast<std::size_t>(s) * 7 % g_series.size()] += 1.0 / (s + 2);

        try {
            if (s % 7 == 3) {
                std::string trail;
                thrower(3, s, trail);
            }
            if (s % 11 == 5)
                (void)g_series.at(g_series.size() + static_cast<std::size_t>(s));
            if (s % 13 == 8)
                throw std::logic_error("logic at " + std::to_string(s));
        } catch (const StepError &e) {
            caught_step++;
            journal += e.what();
            journal += ';';
            g_announcer.notes.push_back(e.what());
            CHECK(e.step == s);
        } catch (const std::out_of_range &) {
            caught_range++;
            journal += "range;";
        } catch (const std::exception &e) {
            caught_logic++;
            journal += e.what();
            journal += ';';
        }

        acc = mpi_step(s, acc + weights[key]);
        if (acc > 1e6)
            acc = acc / 1e6 + 0.125;

        if (s % 20 == 19) {
            double wsum = 0;
            std::uint64_t wh = 0; // independent of the iteration order
            for (const auto &kv : weights) {
                wsum += kv.second;
                wh += mix64(str_hash(kv.first) ^ static_cast<std::uint64_t>(kv.second * 1e9));
            }
            std::uint64_t rh = 0;
            for (const auto &kv : registry(s).table)
                for (int v : kv.second)
                    rh += mix64(str_hash(kv.first) + static_cast<std::uint64_t>(v));
            long nsum = 0;
            for (const auto &kv : g_names)
                nsum += kv.second;
            double ssum = 0;
            for (double x : g_series)
                ssum += x;
            std::cout << "step " << s << ": acc " << acc << " weights " << wsum << " ("
                      << std::hex << wh << ") registry " << rh << std::dec << " names "
                      << g_names.size() << "/" << nsum << " series " << ssum << " journal "
                      << journal.size() << "/" << std::hex << str_hash(journal) << std::dec
                      << '\n';
            if (s % 50 == 49)
                std::cout << std::flush;
        }
    }
    CHECK(registry(-1).constructed_at == FIRST_REGISTRY_STEP);
    std::ostringstream os;
    os << std::setprecision(6) << acc;
    std::cout << "final: acc " << acc << " (short " << os.str() << ") caught " << caught_step
              << "/" << caught_range << "/" << caught_logic << " calls " << g_calls
              << " thread_local " << tl_events << '\n';
    g_atexit_value = caught_step * 1000 + caught_range * 10 + caught_logic;
    CK(MPI_Barrier(MPI_COMM_WORLD));
    std::cout << "OK" << std::endl;
    CK(MPI_Finalize());
    return 0;
}
