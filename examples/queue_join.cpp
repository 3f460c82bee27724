// The first seed's program, which hangs in Python, finishing in ringfork.
//
// Python original: a child process reads a big file and put()s every line on a
// multiprocessing.Queue; the parent calls p.join() before reading the queue. It never ends:
// the child's feeder thread is blocked writing into a pipe that nobody drains, so the child
// cannot exit and join() waits forever.
//
// Here put() returns as soon as the line is in shared memory (the queue is unbounded and
// needs no reader), so the child exits when it is done and join() returns at once; the
// parent then reads every line and checks the count and a checksum.
//
// Usage: queue_join [FILE]   (without FILE it writes a ~100 MB sample in /tmp first)
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "ringfork/process.h"
#include "ringfork/queue.h"

namespace {

std::uint64_t fnv1a(std::string_view text, std::uint64_t hash) {
  for (unsigned char c : text) hash = (hash ^ c) * 0x100000001b3ULL;
  return hash;
}

std::string write_sample(std::uint64_t& lines, std::uint64_t& checksum) {
  const std::string path = "/tmp/ringfork-demo-" + std::to_string(::getpid()) + ".log";
  std::ofstream out(path);
  lines = 0;
  checksum = 0xcbf29ce484222325ULL;
  std::string line;
  for (std::uint64_t bytes = 0; bytes < (100u << 20); ++lines) {
    line = "2026-11-23T14:00:" + std::to_string(lines % 60) + "Z INFO host-" +
           std::to_string(lines % 17) + " request " + std::to_string(lines * 7919) +
           " served in " + std::to_string(lines % 250) + " ms";
    out << line << '\n';
    checksum = fnv1a(line, checksum);
    bytes += line.size() + 1;
  }
  return path;
}

// The child's work: a plain function, so it runs in a worker forked from the template.
int put_every_line(ringfork::Queue<std::string> lines, std::string path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::string line;
  while (std::getline(in, line)) lines.put(line);
  return in.bad() ? 1 : 0;
}

double seconds_since(std::int64_t start) {
  return static_cast<double>(ringfork::Deadline::monotonic_ns() - start) / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace ringfork;
  Runtime runtime;  // first thing in main: forks the template workers come from
  std::uint64_t expected_lines = 0, expected_checksum = 0;
  const bool own_sample = argc < 2;
  const std::string path = own_sample ? write_sample(expected_lines, expected_checksum) : argv[1];
  auto lines = Queue<std::string>::create(runtime.arena(), runtime.pool());  // unbounded
  std::printf("segment backing: %s\n", to_string(runtime.segment().backing()));

  const std::int64_t start = Deadline::monotonic_ns();
  Process child(runtime, &put_every_line, lines, path);
  child.start();
  child.join();  // join() before reading anything: where Python deadlocks
  const double joined = seconds_since(start);
  if (child.exitcode() != 0) {
    std::fprintf(stderr, "child failed reading %s (exit code %d)\n", path.c_str(),
                 child.exitcode().value_or(-1));
    return 1;
  }
  std::printf("child put %zu lines and exited; join returned after %.2f s with nothing read\n",
              lines.qsize(), joined);

  std::uint64_t count = 0, checksum = 0xcbf29ce484222325ULL;
  std::string line;
  while (lines.get_nowait(line) == RingStatus::kOk) {
    checksum = fnv1a(line, checksum);
    ++count;
  }
  const double total = seconds_since(start);
  std::printf("parent read %llu lines (%.0f lines/s end to end, %.2f s)\n",
              static_cast<unsigned long long>(count), static_cast<double>(count) / total, total);
  if (own_sample) {
    ::unlink(path.c_str());
    const bool ok = count == expected_lines && checksum == expected_checksum;
    std::printf("line count and checksum %s\n", ok ? "match" : "DO NOT MATCH");
    return ok ? 0 : 1;
  }
  return 0;
}
