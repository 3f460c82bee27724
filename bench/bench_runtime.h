// The one ringfork::Runtime of the benchmark binary, made during static initialisation, before
// main() and before any benchmark thread: the template must fork from a small process.
#pragma once

#include "ringfork/runtime.h"

namespace ringfork::bench {

inline Runtime& bench_runtime() {
  static Runtime runtime;
  return runtime;
}

}  // namespace ringfork::bench
