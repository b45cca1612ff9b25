#include "fiber.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#if defined(__SANITIZE_ADDRESS__)
#define SAFEOPS_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SAFEOPS_EMU_ASAN 1
#endif
#endif
#if SAFEOPS_EMU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#if !defined(__x86_64__)
#error "the CUDA emulation's fiber switch (cuda/emulation/src/fiber.cc) is written for x86-64"
#endif

// safeops_emu_switch(save, load): pushes the callee-saved registers, stores the stack pointer
// in *save, loads `load` and pops the same set from there. The x87/SSE control words, also
// callee-saved, are left alone: every fiber and its scheduler run with the OS thread's (kernel
// code never changes rounding modes), and saving them makes a switch several times slower.
// safeops_emu_trampoline: where a new fiber's first switch returns to; calls r12(rbx).
extern "C" void safeops_emu_switch(void** save, void* load);
extern "C" void safeops_emu_trampoline();
asm(R"(
  .pushsection .text
  .globl safeops_emu_switch
  .hidden safeops_emu_switch
  .type safeops_emu_switch, @function
  .p2align 4
safeops_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size safeops_emu_switch, .-safeops_emu_switch

  .globl safeops_emu_trampoline
  .hidden safeops_emu_trampoline
  .type safeops_emu_trampoline, @function
  .p2align 4
safeops_emu_trampoline:
  .cfi_startproc
  .cfi_undefined rip
  movq %rbx, %rdi
  callq *%r12
  ud2
  .cfi_endproc
  .size safeops_emu_trampoline, .-safeops_emu_trampoline
  .popsection
)");

namespace safeops {
namespace emu {
namespace {

// Kernel threads need little stack (a few KiB of registers-turned-locals); AddressSanitizer's
// redzones multiply frame sizes. Only touched pages are committed.
#if SAFEOPS_EMU_ASAN
constexpr std::size_t kStackBytes = 1 << 20;
#else
constexpr std::size_t kStackBytes = 256 << 10;
#endif

std::size_t page_size() { return static_cast<std::size_t>(sysconf(_SC_PAGESIZE)); }

}  // namespace

Stack::Stack() : size_(kStackBytes) {
  const std::size_t guard = page_size();
  void* p = mmap(nullptr, size_ + guard, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (p == MAP_FAILED) {
    std::perror("safeops CUDA emulation: mmap of a fiber stack");
    std::abort();
  }
  mprotect(p, guard, PROT_NONE);
  base_ = static_cast<char*>(p) + guard;
}

Stack::~Stack() { munmap(base_ - page_size(), size_ + page_size()); }

void Fiber::start(Stack* stack, Entry entry, void* arg) {
  stack_ = stack;
  entry_ = entry;
  arg_ = arg;
  // The frame safeops_emu_switch pops: r15, r14, r13, r12, rbx, rbp, return address. The
  // trampoline then runs with a 16-byte aligned stack pointer, as a call expects.
  auto* top = reinterpret_cast<std::uint64_t*>(
      (reinterpret_cast<std::uintptr_t>(stack->bottom() + stack->size()) & ~std::uintptr_t{15}));
  std::uint64_t* sp = top - 9;
  std::memset(sp, 0, 9 * sizeof(std::uint64_t));
  sp[3] = reinterpret_cast<std::uint64_t>(&Fiber::main);             // r12
  sp[4] = reinterpret_cast<std::uint64_t>(this);                     // rbx
  sp[6] = reinterpret_cast<std::uint64_t>(&safeops_emu_trampoline);  // return address
  sp_ = sp;
}

void Fiber::main(void* self) {
  auto* f = static_cast<Fiber*>(self);
#if SAFEOPS_EMU_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &f->scheduler_bottom_, &f->scheduler_size_);
#endif
  f->entry_(f->arg_);
  std::fprintf(stderr, "safeops CUDA emulation: a fiber returned without Fiber::exit\n");
  std::abort();
}

void Fiber::resume() {
#if SAFEOPS_EMU_ASAN
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(&fake, stack_->bottom(), stack_->size());
#endif
  safeops_emu_switch(&scheduler_sp_, sp_);
#if SAFEOPS_EMU_ASAN
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
}

void Fiber::yield() {
#if SAFEOPS_EMU_ASAN
  __sanitizer_start_switch_fiber(&fake_stack_, scheduler_bottom_, scheduler_size_);
#endif
  safeops_emu_switch(&sp_, scheduler_sp_);
#if SAFEOPS_EMU_ASAN
  __sanitizer_finish_switch_fiber(fake_stack_, &scheduler_bottom_, &scheduler_size_);
#endif
}

void Fiber::exit() {
#if SAFEOPS_EMU_ASAN
  __sanitizer_start_switch_fiber(nullptr, scheduler_bottom_, scheduler_size_);
#endif
  safeops_emu_switch(&sp_, scheduler_sp_);
  __builtin_unreachable();
}

void Fiber::forget_frames() {
#if SAFEOPS_EMU_ASAN
  // Frames below the saved stack pointer have returned (and unpoisoned themselves).
  char* top = stack_->bottom() + stack_->size();
  char* sp = static_cast<char*>(sp_);
  ASAN_UNPOISON_MEMORY_REGION(sp, static_cast<std::size_t>(top - sp));
#endif
}

}  // namespace emu
}  // namespace safeops
