// team_driver.cpp: the kernels' thread team (cpp/src/parallel.cpp) under ThreadSanitizer, and checked: every
// task of every region runs exactly once, also with regions started from several threads at once (all but
// one then run on their caller), regions started from inside a task, a task that throws (rethrown to the
// caller, the team usable afterwards), team sizes changing between regions, and regions far apart in time
// (workers asleep). Exits non-zero on a wrong count; TSan reports any data race.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <thread>
#include <vector>

#include "parallel.hpp"

namespace {

int failures = 0;

void expect(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "FAILED: %s\n", what);
        ++failures;
    }
}

// Each task increments its own slot: afterwards every slot must be exactly 1.
void region(int64_t n) {
    std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
    for (auto& h : hits) h.store(0);
    vk::cpu::parallel_tasks(n, [&](int64_t t) { hits[static_cast<size_t>(t)].fetch_add(1); });
    for (auto& h : hits) expect(h.load() == 1, "every task exactly once");
}

}  // namespace

int main() {
    for (int64_t n : {0, 1, 2, 3, 7, 64, 1000}) region(n);
    // regions from four threads at once, many times
    std::vector<std::thread> callers;
    for (int c = 0; c < 4; ++c)
        callers.emplace_back([] {
            for (int r = 0; r < 200; ++r) region(1 + r % 37);
        });
    for (auto& t : callers) t.join();
    // a region inside a task (the team is busy: it runs on the task's thread)
    std::atomic<int64_t> inner{0};
    vk::cpu::parallel_tasks(8, [&](int64_t) {
        vk::cpu::parallel_tasks(5, [&](int64_t) { inner.fetch_add(1); });
    });
    expect(inner.load() == 40, "nested regions");
    // a throwing task: the exception reaches the caller, the team still works
    bool caught = false;
    try {
        vk::cpu::parallel_tasks(16, [](int64_t t) {
            if (t == 5) throw std::runtime_error("task 5");
        });
    } catch (const std::runtime_error&) {
        caught = true;
    }
    expect(caught, "exception rethrown");
    region(100);
    // team sizes changing between regions, and workers asleep between regions
    for (int size : {1, 2, 3, 0}) {
        vk::cpu::set_team_size(size);
        region(50);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    region(50);
    if (failures == 0) std::puts("team run complete");
    return failures == 0 ? 0 : 1;
}
