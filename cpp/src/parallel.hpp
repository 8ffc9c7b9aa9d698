// parallel.hpp: the CPU kernels' thread team. One process-wide team of worker threads; a parallel region is
// a list of independent tasks that the calling thread and the workers claim one at a time.
//
// Why not OpenMP: an OpenMP loop splits its iterations over the team up front and ends in a barrier, so a
// region takes as long as its slowest thread; with one core busy with another process, a two-thread team
// waits on the thread that shares that core (4x the one-thread time measured on the digits demo). Here the
// caller takes part and claims tasks until none is left, so a worker that is descheduled only delays the
// task it has already claimed, and a busy team (a second Python thread's kernel, a kernel called from a
// task) never makes anyone wait: the region then runs on the calling thread alone. Tasks are fixed by the
// problem, never by the team, so results do not depend on which thread ran what.
//
// A region whose caller had to wait on a descheduled worker (longer than 1 ms and than its own share)
// makes the team stand down for 100 ms: regions then run on their callers alone, at one thread's speed,
// rather than stalling a scheduler time slice each (parallel.cpp, kStall / kBackoff).
//
// Waiting: an idle worker spins for 1 ms (a training step's regions come a few hundred microseconds apart),
// then sleeps on a condition variable. Fork: a child forked after the team started gets a fresh team on its
// first region (the parent's threads do not exist there).
#pragma once

#include <cstdint>
#include <utility>

namespace vk::cpu {

using TaskFn = void (*)(void* ctx, int64_t task);

// Runs fn(ctx, t) for every t in [0, n_tasks), each exactly once, on the calling thread and up to
// team_size() - 1 workers; returns when all have finished. The first exception a task throws is rethrown
// here (after every claimed task has finished; unclaimed tasks are skipped).
void run_tasks(int64_t n_tasks, TaskFn fn, void* ctx);

// The same with a callable: parallel_tasks(n, [&](int64_t t) { ... }).
template <class F>
void parallel_tasks(int64_t n_tasks, F&& f) {
    if (n_tasks <= 0) return;
    if (n_tasks == 1) { f(int64_t{0}); return; }
    using Fn = std::remove_reference_t<F>;
    run_tasks(n_tasks, [](void* c, int64_t t) { (*static_cast<Fn*>(c))(t); },
              const_cast<void*>(static_cast<const void*>(&f)));
}

// The number of threads a region may use (the caller included): set_team_size(n) for n >= 1, otherwise the
// environment's OMP_NUM_THREADS (its first number), otherwise the CPUs this process may run on. Process-wide;
// results never depend on it.
int team_size();
void set_team_size(int n);   // 0: back to the environment's default

}  // namespace vk::cpu
