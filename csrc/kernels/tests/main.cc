// Runs the registered kernel tests: all of them, or those whose "group.name" contains argv[1].
#include <cstdio>

#include "check.h"

namespace safeops_test {

std::vector<Case>& cases() {
  static std::vector<Case> all;
  return all;
}

namespace {
int failures = 0;
}

void record_failure(const char* file, int line, const std::string& what) {
  ++failures;
  if (failures <= 50) std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", file, line, what.c_str());
}

}  // namespace safeops_test

int main(int argc, char** argv) {
  using namespace safeops_test;
  const std::string filter = argc > 1 ? argv[1] : "";
  int run = 0, failed = 0;
  for (const Case& c : cases()) {
    if (c.name.find(filter) == std::string::npos) continue;
    const int before = failures;
    c.fn();
    ++run;
    const bool ok = failures == before;
    failed += !ok;
    std::printf("%s %s\n", ok ? "[ ok ]" : "[FAIL]", c.name.c_str());
  }
  std::printf("%d cases, %d failed (%d checks failed)\n", run, failed, failures);
  return run == 0 || failed != 0 ? 1 : 0;
}
