// The main() of a test program whose tests start processes: the Runtime (and so its
// template process) must exist before gtest starts anything, since the template forks from
// main's single thread.
#pragma once

#include <gtest/gtest.h>

#include "ringfork/runtime.h"

namespace ringfork::testing {

// The program's Runtime, for its tests; set by run_all_tests_with_runtime.
inline Runtime* g_runtime = nullptr;

inline int run_all_tests_with_runtime(int argc, char** argv, const RuntimeOptions& options = {}) {
  Runtime runtime(options);
  g_runtime = &runtime;
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}

}  // namespace ringfork::testing
