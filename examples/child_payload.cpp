// The second seed's program: a child runs a command whose output has an unpredictable size
// and sends the whole output as one message; the parent join(10 s)s, then reads it.
//
// Python original: with multiprocessing.Queue, join(10) times out (and a plain join() hangs)
// once the output exceeds the pipe's buffer (64 KiB): the child's feeder thread waits for a
// reader, so the child never exits. Here the message goes straight into shared memory and
// the child exits at once, for any size from 0 bytes to 64 MiB (and beyond).
//
// Usage: child_payload [BYTES...]   (default: 0, 1, 65536, 65537, 1 MiB and 64 MiB)
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "ringfork/process.h"
#include "ringfork/queue.h"

namespace {

int send_command_output(ringfork::Queue<ringfork::Bytes> out, std::uint64_t bytes) {
  const std::string command = "head -c " + std::to_string(bytes) + " /dev/urandom";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("cannot run " + command);
  ringfork::Bytes output;
  std::byte buffer[1 << 16];
  for (std::size_t n; (n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0;) {
    output.insert(output.end(), buffer, buffer + n);
  }
  ::pclose(pipe);
  out.put(output);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace ringfork;
  Runtime runtime;
  std::vector<std::uint64_t> sizes{0, 1, 65536, 65537, 1u << 20, 64u << 20};
  if (argc > 1) sizes.clear();
  for (int i = 1; i < argc; ++i) sizes.push_back(std::strtoull(argv[i], nullptr, 10));
  auto payloads = Queue<Bytes>::create(runtime.arena(), runtime.pool());
  bool all_ok = true;
  for (std::uint64_t size : sizes) {
    Process child(runtime, &send_command_output, payloads, size);
    const std::int64_t start = Deadline::monotonic_ns();
    child.start();
    const bool joined = child.join(std::chrono::seconds(10));
    const double join_ms = static_cast<double>(Deadline::monotonic_ns() - start) / 1e6;
    const Bytes payload = payloads.get(std::chrono::seconds(1));
    const bool ok = joined && !child.is_alive() && child.exitcode() == 0 && payload.size() == size;
    std::printf("%10llu bytes: join returned after %7.1f ms, alive=%s, received %zu bytes: %s\n",
                static_cast<unsigned long long>(size), join_ms, child.is_alive() ? "yes" : "no",
                payload.size(), ok ? "ok" : "FAILED");
    all_ok = all_ok && ok;
  }
  return all_ok ? 0 : 1;
}
