// Grid launches: the blocks of a launch spread over a pool of OS threads (one per core, the
// launching thread included), each running one block at a time through its own Block.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "block.h"
#include "emu/builtins.h"
#include "last_error.h"
#include "schedule.h"

namespace safeops {
namespace emu {
namespace {

// Worker threads waiting for launches. Never destroyed (they may outlive static destructors);
// a forked child, which has none of the parent's threads, starts its own.
class Workers {
 public:
  static Workers& get() {
    static std::mutex m;
    static Workers* w = nullptr;
    std::lock_guard<std::mutex> lock(m);
    if (w == nullptr || w->pid_ != getpid()) w = new Workers();
    return *w;
  }

  // Runs work() on every worker and on the calling thread, and returns when all are done.
  void run(const std::function<void()>& work) {
    std::lock_guard<std::mutex> one_launch_at_a_time(launch_);
    {
      std::lock_guard<std::mutex> lock(m_);
      work_ = &work;
      pending_ = threads_;
      ++generation_;
    }
    start_.notify_all();
    work();
    std::unique_lock<std::mutex> lock(m_);
    done_.wait(lock, [&] { return pending_ == 0; });
  }

 private:
  Workers() : pid_(getpid()), threads_(std::max(1u, std::thread::hardware_concurrency()) - 1) {
    for (int i = 0; i < threads_; ++i) std::thread([this] { loop(); }).detach();
  }

  void loop() {
    std::uint64_t seen = 0;
    for (;;) {
      std::unique_lock<std::mutex> lock(m_);
      start_.wait(lock, [&] { return generation_ != seen; });
      seen = generation_;
      const std::function<void()>* work = work_;
      lock.unlock();
      (*work)();
      lock.lock();
      if (--pending_ == 0) done_.notify_all();
    }
  }

  const pid_t pid_;
  const int threads_;
  std::mutex launch_, m_;
  std::condition_variable start_, done_;
  const std::function<void()>* work_ = nullptr;
  int pending_ = 0;
  std::uint64_t generation_ = 0;
};

std::string dims(dim3 d) {
  return "(" + std::to_string(d.x) + "," + std::to_string(d.y) + "," + std::to_string(d.z) + ")";
}

// The limits every GPU of the targeted architectures has.
std::string config_error(dim3 grid, dim3 block) {
  const unsigned long long threads = 1ull * block.x * block.y * block.z;
  if (threads == 0 || threads > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64) {
    return "block " + dims(block) + " outside 1..1024 threads (x, y <= 1024, z <= 64)";
  }
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 0x7fffffffu || grid.y > 65535 ||
      grid.z > 65535) {
    return "grid " + dims(grid) + " outside x <= 2^31 - 1, y, z <= 65535, none 0";
  }
  return "";
}

}  // namespace

void launch(const Kernel& kernel, dim3 grid, dim3 block, std::size_t shared_bytes, Body body,
            const void* ctx) {
  const std::string name = std::string(kernel.name) + " (launched at " + kernel.file + ":" +
                           std::to_string(kernel.line) + ")";
  if (std::string e = config_error(grid, block); !e.empty()) {
    set_last_error(cudaErrorInvalidConfiguration, name + ": " + e);
    return;
  }
  if (shared_bytes != 0) {
    set_last_error(cudaErrorNotSupported, name + ": dynamic shared memory is not emulated");
    return;
  }
  Schedule schedule;
  std::string error;
  if (!schedule_from_env(&schedule, &error)) {
    set_last_error(cudaErrorInvalidValue, error);
    return;
  }
  const std::uint64_t blocks = 1ull * grid.x * grid.y * grid.z;
  std::atomic<std::uint64_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex error_mutex;
  Workers::get().run([&] {
    static thread_local Block runner;  // keeps its fiber stacks from launch to launch
    gridDim = grid;
    for (std::uint64_t b; !failed.load() && (b = next.fetch_add(1)) < blocks;) {
      const uint3 idx{static_cast<unsigned>(b % grid.x), static_cast<unsigned>(b / grid.x % grid.y),
                      static_cast<unsigned>(b / (1ull * grid.x * grid.y))};
      std::string e = runner.run(body, ctx, block, idx, b, schedule);
      if (!e.empty()) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!failed.exchange(true)) error = "block " + dims(dim3(idx.x, idx.y, idx.z)) + ": " + e;
      }
    }
  });
  if (failed) set_last_error(cudaErrorLaunchFailure, name + ", " + error);
}

}  // namespace emu
}  // namespace safeops
