// What this libringfork is: version, process-local allocator, compiler, sanitizers.
#pragma once

#include <string>

namespace ringfork {

// One line such as "ringfork 0.1.0 (mimalloc 2.0.9, g++ 12.2.0, sanitize: address)",
// describing the library as built (not the headers the caller compiled against), so a
// benchmark or bug report can record exactly what ran. Thread-safe; never throws except
// std::bad_alloc.
std::string build_info();

// The library's version, "<major>.<minor>.<patch>".
const char* version() noexcept;

}  // namespace ringfork
