// Completions of the warp shuffles and votes (emu/device_functions.h), with CUDA's semantics:
// lanes are grouped into segments of `width` lanes; a shuffle whose source lies outside the
// reachable range returns the lane's own value; reading a lane outside the mask fails the
// launch (its value is undefined on a GPU).
#include <string>

#include "emu/device_functions.h"

namespace safeops {
namespace emu {

void complete_shfl(void* const* lanes, unsigned) {
  for (int l = 0; l < 32; ++l) {
    auto* me = static_cast<ShflLane*>(lanes[l]);
    if (me == nullptr) continue;
    const int width = me->width, p = me->param;
    if (width < 1 || width > 32 || (width & (width - 1)) != 0) {
      fail("shuffle width " + std::to_string(width) + " is not a power of two in [1, 32]");
    }
    const int base = l & ~(width - 1);
    int src = l;
    switch (me->kind) {
      case Shfl::kIdx:
        src = base + (p & (width - 1));
        break;
      case Shfl::kUp:
        src = l - p >= base ? l - p : l;
        break;
      case Shfl::kDown:
        src = l + p < base + width ? l + p : l;
        break;
      case Shfl::kXor:
        src = (l ^ p) < base + width ? l ^ p : l;  // earlier segments are reachable
        break;
    }
    if (src < 0 || src > 31 || lanes[src] == nullptr) {
      fail("lane " + std::to_string(l) + " reads lane " + std::to_string(src) +
           ", outside the shuffle's mask");
    }
    me->result = static_cast<const ShflLane*>(lanes[src])->value;
  }
}

void complete_vote(void* const* lanes, unsigned mask) {
  unsigned ballot = 0;
  for (int l = 0; l < 32; ++l) {
    if (lanes[l] != nullptr && static_cast<const VoteLane*>(lanes[l])->pred) ballot |= 1u << l;
  }
  for (int l = 0; l < 32; ++l) {
    if (mask >> l & 1u) static_cast<VoteLane*>(lanes[l])->ballot = ballot;
  }
}

}  // namespace emu
}  // namespace safeops
