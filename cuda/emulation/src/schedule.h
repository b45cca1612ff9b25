// The order in which a block's scheduler resumes its runnable threads (SAFEOPS_EMU_ORDER).
// On a GPU, warps run in an unspecified interleaving; a kernel whose result changes with the
// order has a missing barrier (or a race the barriers do not order).
//
//   forward      each round resumes threads 0, 1, ..., n-1 (the default)
//   reverse      each round resumes n-1, ..., 0
//   warps        warp by warp: warp 0 runs until all its lanes wait at __syncthreads (or end),
//                then warp 1, ...
//   shuffle[:S]  each round in a fresh random order, seeded by S (default 1) and the block
//
// A thread runs until it waits (at __syncthreads or a warp collective) or ends.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace safeops {
namespace emu {

enum class Order { kForward, kReverse, kWarps, kShuffle };

struct Schedule {
  Order order = Order::kForward;
  std::uint64_t seed = 1;
};

// Parses SAFEOPS_EMU_ORDER (unset: forward); false with *error for a value it does not know.
bool schedule_from_env(Schedule* out, std::string* error);

// The threads of one round, in order (kWarps rounds are handled by the scheduler itself).
class RoundOrder {
 public:
  RoundOrder(const Schedule& s, int threads, std::uint64_t block);
  const std::vector<int>& next();

 private:
  Schedule schedule_;
  std::vector<int> order_;
  std::uint64_t state_;
};

}  // namespace emu
}  // namespace safeops
