#include "block.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <utility>

__thread uint3 threadIdx;
__thread uint3 blockIdx;
__thread dim3 blockDim;
__thread dim3 gridDim;

namespace safeops {
namespace emu {
namespace {

__thread Block* g_current = nullptr;

bool same_site(Site a, Site b) {
  return a.line == b.line && (a.file == b.file || std::strcmp(a.file, b.file) == 0);
}

std::string site_str(Site s) {
  const char* base = std::strrchr(s.file, '/');
  return std::string(base ? base + 1 : s.file) + ":" + std::to_string(s.line);
}

std::string hex(unsigned v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

// "thread 5", "threads 0-31, 40, 42-45", "threads 3-7, 35-39, ... (160 threads)"
std::string ranges(const std::vector<int>& ids) {
  std::string out = ids.size() == 1 ? "thread " : "threads ";
  int shown = 0;
  for (std::size_t i = 0; i < ids.size(); ++shown) {
    std::size_t j = i;
    while (j + 1 < ids.size() && ids[j + 1] == ids[j] + 1) ++j;
    if (shown == 6) return out + ", ... (" + std::to_string(ids.size()) + " threads)";
    if (i > 0) out += ", ";
    out += std::to_string(ids[i]);
    if (j > i) out += "-" + std::to_string(ids[j]);
    i = j + 1;
  }
  return out;
}

}  // namespace

Block& Block::current() {
  if (g_current == nullptr || g_current->cur_ < 0) {
    std::fprintf(stderr, "safeops CUDA emulation: a device function was called outside a kernel\n");
    std::abort();
  }
  return *g_current;
}

std::string Block::run(Body body, const void* ctx, dim3 dim, uint3 index, std::uint64_t linear,
                       const Schedule& schedule) {
  body_ = body;
  ctx_ = ctx;
  n_ = static_cast<int>(dim.x * dim.y * dim.z);
  threads_.resize(n_);
  for (int t = 0; t < n_; ++t) {
    const unsigned u = static_cast<unsigned>(t);
    threads_[t] = Thread{State::kFresh,
                         {u % dim.x, u / dim.x % dim.y, u / (dim.x * dim.y)},
                         {},
                         nullptr,
                         0,
                         nullptr,
                         Fiber{},
                         nullptr};
  }
  warps_.assign((n_ + 31) / 32, Warp{});
  done_ = 0;
  at_barrier_ = 0;
  error_.clear();
  shared_.clear();
  blockIdx = index;
  blockDim = dim;
  g_current = this;

  auto runnable = [&](int t) {
    return threads_[t].state == State::kFresh || threads_[t].state == State::kReady;
  };
  RoundOrder order(schedule, n_, linear);
  while (error_.empty() && done_ < n_) {
    bool ran = false;
    if (schedule.order == Order::kWarps) {
      for (int w = 0; w < n_ && error_.empty(); w += 32) {
        for (bool again = true; again && error_.empty();) {
          again = false;
          for (int t = w; t < std::min(n_, w + 32) && error_.empty(); ++t) {
            if (runnable(t)) {
              step(t);
              again = ran = true;
            }
          }
        }
      }
    } else {
      for (int t : order.next()) {
        if (!runnable(t)) continue;
        step(t);
        ran = true;
        if (!error_.empty()) break;
      }
    }
    if (!ran && error_.empty()) error_ = deadlock();
  }
  if (!error_.empty()) {
    for (Thread& t : threads_) {
      if (t.stack != nullptr) release_stack(t);
    }
  }
  g_current = nullptr;
  return error_;
}

void Block::step(int t) {
  Thread& th = threads_[t];
  cur_ = t;
  threadIdx = th.idx;
  if (th.state == State::kFresh) {
    if (free_stacks_.empty()) {
      stacks_.push_back(std::make_unique<Stack>());
      free_stacks_.push_back(stacks_.back().get());
    }
    th.stack = free_stacks_.back();
    free_stacks_.pop_back();
    th.fiber.start(th.stack, &Block::thread_main, this);
    th.state = State::kReady;
  }
  th.fiber.resume();
  cur_ = -1;
  if (th.state == State::kDone && error_.empty()) release_stack(th);
}

void Block::release_stack(Thread& t) {
  t.fiber.forget_frames();
  free_stacks_.push_back(t.stack);
  t.stack = nullptr;
}

void Block::thread_main(void* self) {
  auto* b = static_cast<Block*>(self);
  b->body_(b->ctx_);
  b->thread_exit();
}

void Block::thread_exit() {
  Thread& me = threads_[cur_];
  me.state = State::kDone;
  ++done_;
  if (at_barrier_ > 0) {
    fail(where(cur_) + " ended while " + waiting_at_barrier() +
         ": the barrier is reached by part of the block");
  }
  const int base = cur_ & ~31, my = cur_ & 31;
  Warp& w = warps_[cur_ / 32];
  w.ended |= 1u << my;
  for (const Pending& p : w.pending) {
    if (p.mask >> my & 1u) {
      const int waiting = base + __builtin_ctz(p.arrived);
      fail(where(cur_) + " ended while " + where(waiting) + " waits for it at " + p.op + " (mask " +
           hex(p.mask) + ") at " + site_str(threads_[waiting].site));
    }
  }
  me.fiber.exit();
}

void Block::wait(State s, Site site) {
  Thread& me = threads_[cur_];
  me.state = s;
  me.site = site;
  me.fiber.yield();
}

// `what` is taken by value and moved: the failing fiber never returns, so whatever its frames
// own is never freed (leak checkers see those strings otherwise).
void Block::fail(std::string what) {
  if (error_.empty()) error_ = std::move(what);
  threads_[cur_].fiber.yield();
  std::abort();  // a failed block is never resumed
}

void Block::sync_threads(Site site) {
  if (done_ > 0) {
    std::vector<int> ended;
    for (int t = 0; t < n_; ++t) {
      if (threads_[t].state == State::kDone) ended.push_back(t);
    }
    fail(where(cur_) + " reached __syncthreads at " + site_str(site) + " after " + ranges(ended) +
         " ended: the barrier is reached by part of the block");
  }
  if (at_barrier_ > 0 && !same_site(site, barrier_site_)) {
    fail(where(cur_) + " reached __syncthreads at " + site_str(site) + " while " +
         waiting_at_barrier() + ": threads wait at different barriers (divergent code)");
  }
  barrier_site_ = site;
  if (++at_barrier_ == n_) {
    at_barrier_ = 0;
    for (Thread& t : threads_) {
      if (t.state == State::kAtBarrier) t.state = State::kReady;
    }
    return;
  }
  wait(State::kAtBarrier, site);
}

void Block::warp_collective(const char* op, unsigned mask, void* lane, Completion complete,
                            Site site) {
  Thread& me = threads_[cur_];
  me.op = op;
  me.mask = mask;
  me.site = site;
  me.lane = lane;
  const int base = cur_ & ~31, lanes = std::min(32, n_ - base), my = cur_ & 31;
  Warp& w = warps_[cur_ / 32];
  auto calls = [&] {  // built only for a diagnostic
    return where(cur_) + " calls " + op + " (mask " + hex(mask) + ") at " + site_str(site);
  };
  if (!(mask >> my & 1u)) fail(calls() + ", whose mask leaves it out");
  if (lanes < 32 && (mask >> lanes) != 0) {
    fail(calls() + ", whose mask names lanes beyond the " + std::to_string(lanes) +
         " this warp has");
  }
  if (mask & w.ended) {
    fail(calls() + ", which waits for lane " + std::to_string(__builtin_ctz(mask & w.ended)) +
         ", ended");
  }
  // Lanes whose masks overlap must be at the same operation with the same mask.
  auto p = std::find_if(w.pending.begin(), w.pending.end(),
                        [&](const Pending& q) { return (q.mask & mask) != 0; });
  if (p == w.pending.end()) {
    w.pending.push_back({op, mask, 0});
    p = w.pending.end() - 1;
  } else if (p->mask != mask || (p->op != op && std::strcmp(p->op, op) != 0)) {
    const int other = base + __builtin_ctz(p->arrived);
    fail(calls() + " while " + where(other) + " waits at " + p->op + " (mask " + hex(p->mask) +
         ") at " + site_str(threads_[other].site) + ": the lanes of a warp disagree");
  }
  p->arrived |= 1u << my;
  if (p->arrived != mask) {
    wait(State::kAtWarp, site);
    return;
  }
  w.pending.erase(p);
  void* records[32] = {};
  for (unsigned m = mask; m != 0; m &= m - 1)
    records[__builtin_ctz(m)] = threads_[base + __builtin_ctz(m)].lane;
  if (complete != nullptr) complete(records, mask);
  for (unsigned m = mask & ~(1u << my); m != 0; m &= m - 1) {
    threads_[base + __builtin_ctz(m)].state = State::kReady;
  }
}

void Block::shared_declared(void* p, std::size_t bytes) {
  if (std::find(shared_.begin(), shared_.end(), p) != shared_.end()) return;
  std::memset(p, 0xff, bytes);
  shared_.push_back(p);
}

std::string Block::where(int t) const {
  const uint3 i = threads_[t].idx;
  std::string s = "thread " + std::to_string(t);
  if (blockDim.y > 1 || blockDim.z > 1) {
    s += " (" + std::to_string(i.x) + "," + std::to_string(i.y) + "," + std::to_string(i.z) + ")";
  }
  return s;
}

std::string Block::waiting_at_barrier() const {
  std::vector<int> ids;
  for (int t = 0; t < n_; ++t) {
    if (threads_[t].state == State::kAtBarrier) ids.push_back(t);
  }
  return ranges(ids) + (ids.size() == 1 ? " waits" : " wait") + " at __syncthreads at " +
         site_str(barrier_site_);
}

std::string Block::deadlock() const {
  std::map<std::string, std::vector<int>> groups;  // what the threads do -> which threads
  for (int t = 0; t < n_; ++t) {
    const Thread& th = threads_[t];
    std::string what;
    if (th.state == State::kDone) {
      what = "ended";
    } else if (th.state == State::kAtBarrier) {
      what = "at __syncthreads at " + site_str(th.site);
    } else {
      what = std::string("at ") + th.op + " (mask " + hex(th.mask) + ") at " + site_str(th.site);
    }
    groups[what].push_back(t);
  }
  std::string out = "no thread can continue (deadlock):";
  for (const auto& g : groups) out += " " + ranges(g.second) + " " + g.first + ";";
  out.pop_back();
  return out;
}

}  // namespace emu
}  // namespace safeops
