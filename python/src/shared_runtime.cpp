#include "shared_runtime.h"

#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <system_error>

namespace ringfork::python {
namespace {

RuntimeOptions g_options;
// Never deleted: queues in this process and in forked children point into it until exit.
SharedRuntime* g_runtime = nullptr;

std::uint64_t random_token() {
  std::uint64_t token = 0;
  if (::getrandom(&token, sizeof(token), 0) != static_cast<ssize_t>(sizeof(token))) {
    throw std::system_error(errno, std::generic_category(), "getrandom for the segment token");
  }
  return token | 1;  // never 0, so 0 can mean "no segment"
}

}  // namespace

SharedRuntime::SharedRuntime(Segment segment, const RuntimeOptions& options)
    : segment_(std::move(segment)),
      arena_(SharedArena::create(segment_)),
      pool_(BlockPool::create(arena_, BlockPoolOptions{.max_bytes = options.max_bytes})),
      token_(random_token()),
      creator_(::getpid()) {}

SharedRuntime& SharedRuntime::instance() {
  if (g_runtime == nullptr) {
    Segment segment = Segment::create(SegmentOptions{.capacity = g_options.capacity});
    g_runtime = new SharedRuntime(std::move(segment), g_options);
  }
  return *g_runtime;
}

SharedRuntime* SharedRuntime::existing() noexcept { return g_runtime; }

void SharedRuntime::configure(const RuntimeOptions& options) {
  if (g_runtime != nullptr) {
    throw std::logic_error(
        "ringfork.configure() must be called before the first queue is made (the shared "
        "segment already exists)");
  }
  if (options.capacity < (std::size_t{16} << 20)) {
    throw std::invalid_argument("ringfork.configure: capacity must be at least 16 MiB");
  }
  if (options.max_bytes == 0 || options.max_bytes > options.capacity) {
    throw std::invalid_argument("ringfork.configure: max_bytes must be in 1..capacity");
  }
  if (options.max_backlog == 0 || options.max_backlog > (std::size_t{1} << 32)) {
    throw std::invalid_argument("ringfork.configure: max_backlog must be in 1..2**32");
  }
  g_options = options;
}

const RuntimeOptions& SharedRuntime::options() noexcept { return g_options; }

}  // namespace ringfork::python
