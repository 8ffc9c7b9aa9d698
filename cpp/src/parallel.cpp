// parallel.cpp: the thread team of parallel.hpp.
#include "parallel.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif
#if defined(__linux__)
#include <sched.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define VK_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define VK_PAUSE() asm volatile("yield")
#else
#define VK_PAUSE() ((void)0)
#endif

namespace vk::cpu {

namespace {

// How long an idle worker polls for the next region before it sleeps (about GNU OpenMP's default). A training
// step runs its regions a few hundred microseconds apart; a worker woken from sleep arrives tens of
// microseconds late and then holds up the caller on the task it claims (measured: the digits VAE's 8 MFLOP
// regions ran slower on two threads than on one with a 0.2 ms spin). Spinning costs nothing on an idle core;
// on a busy one the team stands down after a stall (kBackoff) and the worker goes to sleep.
constexpr auto kSpin = std::chrono::milliseconds(1);

// Stalls: a worker descheduled while it holds a task (its core busy with another process) keeps the caller
// waiting for a scheduler time slice (milliseconds). After such a wait the team stands down for kBackoff:
// regions run on their callers alone, as fast as one thread, then the team is tried again. On an idle
// machine a wait never exceeds the caller's own share of a region, so this never triggers there.
using Clock = std::chrono::steady_clock;
constexpr auto kStall = std::chrono::milliseconds(1);
constexpr auto kBackoff = std::chrono::milliseconds(100);

int default_team_size() {
    if (const char* env = std::getenv("OMP_NUM_THREADS"); env != nullptr) {
        char* end = nullptr;
        const long n = std::strtol(env, &end, 10);
        if (end != env && n >= 1) return static_cast<int>(std::min(n, 1024L));
    }
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
#endif
    return std::max(1u, std::thread::hardware_concurrency());
}

std::atomic<int> g_team_size{0};   // 0: default_team_size()

struct Job {
    TaskFn fn = nullptr;
    void* ctx = nullptr;
    int64_t n = 0;
    int max_workers = 0;                  // workers with a smaller index may join
    std::atomic<int64_t> next{0};         // the next unclaimed task
    std::atomic<int64_t> finished{0};     // tasks run (or skipped after an exception)
    std::atomic<bool> failed{false};
    std::exception_ptr error;             // written once, by the thread that set failed
    std::atomic<int> refs{0};             // workers that may still read this slot
};

// Claims and runs tasks of job until none is left.
void work_on(Job& job) {
    for (;;) {
        const int64_t t = job.next.fetch_add(1, std::memory_order_relaxed);
        if (t >= job.n) return;
        if (!job.failed.load(std::memory_order_relaxed)) {
            try {
                job.fn(job.ctx, t);
            } catch (...) {
                if (!job.failed.exchange(true)) job.error = std::current_exception();
            }
        }
        job.finished.fetch_add(1, std::memory_order_release);
    }
}

// Jobs live in a few reusable slots owned by the team, so that the caller never waits for a worker that
// picked up a region late (perhaps descheduled on a busy core): a slot is rewritten only when no worker
// holds it (refs == 0); a worker takes a reference, then checks that the slot is still the published one.
class Team {
public:
    // Runs the region with the workers when the team is free; false when another region holds the team
    // (or every slot is still held by a straggler): the caller then runs it alone.
    bool run(TaskFn fn, void* ctx, int64_t n, int max_workers) {
        std::unique_lock<std::mutex> submit(submit_mutex_, std::try_to_lock);
        if (!submit.owns_lock()) return false;
        Job* job = nullptr;
        for (Job& s : slots_)
            if (s.refs.load() == 0) { job = &s; break; }
        if (job == nullptr) return false;
        job->fn = fn;
        job->ctx = ctx;
        job->n = n;
        job->max_workers = max_workers;
        job->next.store(0);
        job->finished.store(0);
        job->failed.store(false);
        job->error = nullptr;
        grow(max_workers);
        current_.store(job);
        generation_.fetch_add(1);
        if (sleepers_.load() > 0) {
            { std::lock_guard<std::mutex> lock(sleep_mutex_); }
            wake_.notify_all();
        }
        const auto start = Clock::now();
        work_on(*job);
        if (job->finished.load(std::memory_order_acquire) < n) {
            const auto own_work_done = Clock::now();
            while (job->finished.load(std::memory_order_acquire) < n) wait_a_little();
            const auto waited = Clock::now() - own_work_done;
            // A worker that kept the caller waiting longer than the caller's own share of the work, and
            // longer than kStall, lost its core (another process, most likely): run alone for a while.
            if (waited > kStall && waited > own_work_done - start)
                backoff_until_.store((Clock::now() + kBackoff).time_since_epoch().count(), std::memory_order_relaxed);
        }
        current_.store(nullptr);
        if (job->error) {
            std::exception_ptr e = job->error;
            job->error = nullptr;
            submit.unlock();
            std::rethrow_exception(e);
        }
        return true;
    }

private:
    static void wait_a_little() {
        for (int i = 0; i < 16; ++i) VK_PAUSE();
        std::this_thread::yield();
    }

    void grow(int n) {
        while (static_cast<int>(workers_.size()) < n) {
            const int index = static_cast<int>(workers_.size());
            std::thread w([this, index] { worker(index); });
            w.detach();   // the team lives as long as the process (see team())
            workers_.push_back(index);
        }
    }

    void worker(int index) {
        uint64_t seen = generation_.load();
        for (;;) {
            uint64_t g = generation_.load(std::memory_order_relaxed);
            if (g == seen) {
                const auto until = std::chrono::steady_clock::now() + kSpin;
                int polls = 0;
                while ((g = generation_.load(std::memory_order_relaxed)) == seen) {
                    VK_PAUSE();
                    if (++polls % 64 == 0 && std::chrono::steady_clock::now() > until) {
                        std::unique_lock<std::mutex> lock(sleep_mutex_);
                        sleepers_.fetch_add(1);
                        wake_.wait(lock, [&] { return generation_.load() != seen; });
                        sleepers_.fetch_sub(1);
                        g = generation_.load();
                        break;
                    }
                }
            }
            seen = g;
            Job* job = current_.load();
            if (job == nullptr) continue;
            job->refs.fetch_add(1);
            if (current_.load() == job && index < job->max_workers) work_on(*job);
            job->refs.fetch_sub(1);
        }
    }

public:
    // Whether regions should run on their caller alone for now (after a stall).
    bool backing_off() const {
        const auto until = backoff_until_.load(std::memory_order_relaxed);
        return until != 0 && Clock::now().time_since_epoch().count() < until;
    }

private:
    std::mutex submit_mutex_;
    std::atomic<Clock::rep> backoff_until_{0};
    std::vector<int> workers_;
    Job slots_[4];
    std::atomic<Job*> current_{nullptr};
    std::atomic<uint64_t> generation_{0};
    std::atomic<int> sleepers_{0};
    std::mutex sleep_mutex_;
    std::condition_variable wake_;
};

// The team of this process, never destroyed (its detached workers may be polling at exit). A forked child
// abandons the parent's (its threads do not exist in the child; its mutexes may be held by threads that do
// not exist either) and builds its own on first use.
std::atomic<Team*> g_team{nullptr};
std::mutex g_team_create;

void after_fork_in_child() {
    g_team.store(nullptr);                        // leaked on purpose: it cannot be destroyed safely here
    new (&g_team_create) std::mutex();
}

#if defined(__unix__) || defined(__APPLE__)
const int g_atfork = pthread_atfork(nullptr, nullptr, after_fork_in_child);
#endif

Team& team() {
    Team* t = g_team.load(std::memory_order_acquire);
    if (t != nullptr) return *t;
    std::lock_guard<std::mutex> lock(g_team_create);
    t = g_team.load();
    if (t == nullptr) {
        t = new Team();
        g_team.store(t, std::memory_order_release);
    }
    return *t;
}

}  // namespace

int team_size() {
    const int n = g_team_size.load(std::memory_order_relaxed);
    if (n > 0) return n;
    static const int by_default = default_team_size();
    return by_default;
}

void set_team_size(int n) { g_team_size.store(n < 0 ? 0 : n, std::memory_order_relaxed); }

void run_tasks(int64_t n_tasks, TaskFn fn, void* ctx) {
    if (n_tasks <= 0) return;
    const int max_workers = static_cast<int>(std::min<int64_t>(team_size() - 1, n_tasks - 1));
    if (max_workers > 0) {
        Team& t = team();
        if (!t.backing_off() && t.run(fn, ctx, n_tasks, max_workers)) return;
    }
    Job job;                       // one thread, or the team is busy: the caller runs every task
    job.fn = fn;
    job.ctx = ctx;
    job.n = n_tasks;
    work_on(job);
    if (job.error) std::rethrow_exception(job.error);
}

}  // namespace vk::cpu
