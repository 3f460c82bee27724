// The main() of a test program whose tests start processes: the Runtime (and so its
// template process) must exist before gtest starts anything, since the template forks from
// main's single thread.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>

#include "ringfork/runtime.h"

namespace ringfork::testing {

// The program's Runtime, for its tests; set by run_all_tests_with_runtime.
inline Runtime* g_runtime = nullptr;

// Process entries of g_runtime not free: one per started Process until it is joined or
// released and its exit recorded.
inline std::size_t entries_in_use() {
  std::size_t used = 0;
  for (int i = 0; i < RuntimeControl::kMaxWorkers; ++i) {
    if (g_runtime->entry(static_cast<std::uint32_t>(i)).state.load() != WorkerEntry::kFree) {
      ++used;
    }
  }
  return used;
}

inline int run_all_tests_with_runtime(int argc, char** argv, const RuntimeOptions& options = {}) {
  Runtime runtime(options);
  g_runtime = &runtime;
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}

}  // namespace ringfork::testing
