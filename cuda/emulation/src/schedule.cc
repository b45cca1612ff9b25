#include "schedule.h"

#include <algorithm>
#include <cstdlib>
#include <numeric>
#include <utility>

namespace safeops {
namespace emu {
namespace {

std::uint64_t splitmix64(std::uint64_t* state) {
  std::uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace

bool schedule_from_env(Schedule* out, std::string* error) {
  *out = Schedule{};
  const char* env = std::getenv("SAFEOPS_EMU_ORDER");
  const std::string v = env ? env : "";
  if (v.empty() || v == "forward") return true;
  if (v == "reverse") {
    out->order = Order::kReverse;
    return true;
  }
  if (v == "warps") {
    out->order = Order::kWarps;
    return true;
  }
  if (v == "shuffle" || v.rfind("shuffle:", 0) == 0) {
    out->order = Order::kShuffle;
    if (v.size() > 8) {
      char* end = nullptr;
      out->seed = std::strtoull(v.c_str() + 8, &end, 10);
      if (*end == '\0') return true;
    } else {
      return true;
    }
  }
  *error = "SAFEOPS_EMU_ORDER=" + v + ": expected forward, reverse, warps or shuffle[:SEED]";
  return false;
}

RoundOrder::RoundOrder(const Schedule& s, int threads, std::uint64_t block)
    : schedule_(s), order_(threads), state_(s.seed * 0x100000001b3ull ^ block) {
  std::iota(order_.begin(), order_.end(), 0);
  if (s.order == Order::kReverse) std::reverse(order_.begin(), order_.end());
}

const std::vector<int>& RoundOrder::next() {
  if (schedule_.order == Order::kShuffle) {
    for (std::size_t i = order_.size(); i > 1; --i) {
      std::swap(order_[i - 1], order_[splitmix64(&state_) % i]);
    }
  }
  return order_;
}

}  // namespace emu
}  // namespace safeops
