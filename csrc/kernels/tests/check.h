// A minimal harness for the kernel tests (no test framework to download): TEST(group, name)
// registers a case, CHECK(cond) << "context" records a failure and goes on, and main() runs the
// cases whose "group.name" contains its argument (ctest runs one group per test).
#pragma once

#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

namespace safeops_test {

struct Case {
  std::string name;
  void (*fn)();
};

std::vector<Case>& cases();
void record_failure(const char* file, int line, const std::string& what);

struct Register {
  Register(const char* name, void (*fn)()) { cases().push_back({name, fn}); }
};

// Collects the message of a failed CHECK and reports it when the statement ends.
class Failure {
 public:
  Failure(const char* file, int line, const char* expr) : file_(file), line_(line) { out_ << expr; }
  ~Failure() { record_failure(file_, line_, out_.str()); }
  template <class V>
  Failure& operator<<(const V& v) {
    out_ << (first_ ? ": " : "") << v;
    first_ = false;
    return *this;
  }

 private:
  const char* file_;
  int line_;
  bool first_ = true;
  std::ostringstream out_;
};

// The bits of a value, for exact comparisons (-0 and NaN payloads included).
template <class T>
std::uint64_t bits_of(T v) {
  std::uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}

}  // namespace safeops_test

#define TEST(group, name)                                                             \
  static void group##_##name();                                                       \
  static const ::safeops_test::Register group##_##name##_registered(#group "." #name, \
                                                                    group##_##name);  \
  static void group##_##name()

#define CHECK(cond) \
  if (cond) {       \
  } else            \
    ::safeops_test::Failure(__FILE__, __LINE__, #cond)
