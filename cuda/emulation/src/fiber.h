// Fibers: the CUDA threads of one emulated block, each with its own stack, switched
// cooperatively on one OS thread (see block.h for when they switch).
//
// The switch is a few instructions of x86-64 assembly (fiber.cc): it saves the callee-saved
// registers and the floating-point control words on the old stack and loads them from the new
// one. glibc's swapcontext would also work but makes a system call per switch (it saves the
// signal mask); a block of 256 threads switches tens of thousands of times per GEMM tile.
#pragma once

#include <cstddef>

namespace safeops {
namespace emu {

// One fiber stack: reserved address space with a guard page below it, so that an overflow
// faults instead of corrupting a neighbour. Pages are committed only when touched.
class Stack {
 public:
  Stack();
  ~Stack();
  Stack(const Stack&) = delete;
  Stack& operator=(const Stack&) = delete;
  char* bottom() const { return base_; }
  std::size_t size() const { return size_; }

 private:
  char* base_;
  std::size_t size_;
};

// A scheduler context and the fibers it resumes; all on the calling OS thread.
class Fiber {
 public:
  using Entry = void (*)(void* arg);

  // Makes the fiber run entry(arg) on `stack` when next resumed. entry must end with exit().
  void start(Stack* stack, Entry entry, void* arg);
  // From the scheduler: runs the fiber until it calls yield() or exit().
  void resume();
  // From the fiber: back to the scheduler; returns when resumed again.
  void yield();
  // From the fiber, its last act: back to the scheduler for good.
  [[noreturn]] void exit();
  // AddressSanitizer keeps shadow state for stack frames; the frames a fiber leaves behind
  // (it never returns, and a failed launch abandons it mid-run) are cleared before its stack
  // is reused.
  void forget_frames();

 private:
  static void main(void* self);  // first code on a new stack: calls entry_(arg_)

  void* sp_ = nullptr;            // the fiber's saved stack pointer
  void* scheduler_sp_ = nullptr;  // the scheduler's, while the fiber runs
  Stack* stack_ = nullptr;
  Entry entry_ = nullptr;
  void* arg_ = nullptr;
  // AddressSanitizer's view of the switches: the fiber's fake stack and the scheduler's stack.
  void* fake_stack_ = nullptr;
  const void* scheduler_bottom_ = nullptr;
  std::size_t scheduler_size_ = 0;
};

}  // namespace emu
}  // namespace safeops
