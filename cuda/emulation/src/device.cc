// The runtime entry points of device code (emu/runtime.h): forwarded to the running block.
#include <utility>

#include "block.h"

namespace safeops {
namespace emu {

void sync_threads(Site site) { Block::current().sync_threads(site); }

void warp_collective(const char* op, unsigned mask, void* lane, Completion complete, Site site) {
  Block::current().warp_collective(op, mask, lane, complete, site);
}

void fail(std::string what) { Block::current().fail(std::move(what)); }

void shared_declared(void* p, std::size_t bytes) { Block::current().shared_declared(p, bytes); }

}  // namespace emu
}  // namespace safeops
