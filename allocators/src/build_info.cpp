#include "ringfork/build_info.h"

#include <mimalloc.h>

#include <string>

#include "ringfork/local_alloc.h"

// Both come from allocators/meson.build, so they describe this build of the library.
#ifndef RINGFORK_VERSION_STRING
#define RINGFORK_VERSION_STRING "unknown"
#endif
#ifndef RINGFORK_SANITIZE_STRING
#define RINGFORK_SANITIZE_STRING "none"
#endif

namespace ringfork {
namespace {

std::string compiler_name() {
#if defined(__clang__)
  return std::string("clang++ ") + __clang_version__;
#elif defined(__GNUC__)
  return std::string("g++ ") + __VERSION__;
#else
  return "unknown compiler";
#endif
}

}  // namespace

const char* version() noexcept { return RINGFORK_VERSION_STRING; }

std::string local_allocator_name() {
  // mi_version() is major * 100 + minor * 10 + patch for the 2.x series (209 = 2.0.9).
  const int packed = mi_version();
  return "mimalloc " + std::to_string(packed / 100) + "." + std::to_string(packed / 10 % 10) + "." +
         std::to_string(packed % 10);
}

std::string build_info() {
  std::string sanitize = RINGFORK_SANITIZE_STRING;
  if (sanitize.empty()) sanitize = "none";
  std::string info = std::string("ringfork ") + version() + " (" + local_allocator_name() + ", " +
                     compiler_name() + ", sanitize: " + sanitize;
#ifdef NDEBUG
  info += ", release";
#else
  info += ", debug checks";
#endif
  return info + ")";
}

}  // namespace ringfork
