// The scheduler of one thread block: every CUDA thread of the block is a fiber on the calling
// OS thread, resumed in the order of the launch's Schedule until it waits or ends.
//
// Waiting happens in exactly two places, both with real barrier semantics:
//  * __syncthreads: a thread waits until all threads of the block have arrived at the same
//    barrier (the same call site);
//  * warp collectives (shuffles, votes, __syncwarp, wmma): a lane waits until every lane in
//    the mask has arrived at the same operation with the same mask; the last one completes it.
// Nothing else switches threads, so a kernel without barriers runs each thread to its end.
//
// The launch fails with a diagnostic, never a hang, when
//  * a thread ends while others wait at a barrier it would have to reach, or a barrier is
//    reached after some threads ended (a barrier reached by part of the block),
//  * threads wait at different __syncthreads (a barrier in divergent code),
//  * lanes of a warp disagree on a collective (operation or mask), name lanes that do not exist
//    or have ended, or a completion rejects their arguments (wmma),
//  * no thread can continue (deadlock).
#pragma once

#include <vector_types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "emu/runtime.h"
#include "fiber.h"
#include "schedule.h"

namespace safeops {
namespace emu {

class Block {
 public:
  // Runs all threads of block `index` (linear `linear`) of a launch with `dim` threads a block;
  // returns "" or the diagnostic of the failure.
  std::string run(Body body, const void* ctx, dim3 dim, uint3 index, std::uint64_t linear,
                  const Schedule& schedule);

  // From the running thread:
  void sync_threads(Site site);
  void warp_collective(const char* op, unsigned mask, void* lane, Completion complete, Site site);
  void shared_declared(void* p, std::size_t bytes);
  [[noreturn]] void fail(std::string what);

  // The block running on this OS thread; fails when called outside a kernel.
  static Block& current();

 private:
  enum class State : std::uint8_t { kFresh, kReady, kAtBarrier, kAtWarp, kDone };
  struct Thread {
    State state;
    uint3 idx;
    Site site;       // where it waits
    const char* op;  // the warp collective it waits at
    unsigned mask;
    void* lane;  // its record of that collective
    Fiber fiber;
    Stack* stack;
  };
  // A warp collective some lanes have arrived at (lanes with disjoint masks may have several).
  struct Pending {
    const char* op;
    unsigned mask, arrived;
  };
  struct Warp {
    unsigned ended = 0;  // lanes whose thread has ended
    std::vector<Pending> pending;
  };

  static void thread_main(void* self);
  [[noreturn]] void thread_exit();
  void step(int t);
  void release_stack(Thread& t);
  void wait(State s, Site site);
  std::string deadlock() const;
  std::string where(int t) const;
  std::string waiting_at_barrier() const;

  Body body_ = nullptr;
  const void* ctx_ = nullptr;
  int n_ = 0;
  int cur_ = -1;
  int done_ = 0;
  int at_barrier_ = 0;
  Site barrier_site_{};
  std::string error_;
  std::vector<Thread> threads_;
  std::vector<Warp> warps_;
  std::vector<const void*> shared_;  // __shared__ variables poisoned in this block
  std::vector<std::unique_ptr<Stack>> stacks_;
  std::vector<Stack*> free_stacks_;
};

}  // namespace emu
}  // namespace safeops
