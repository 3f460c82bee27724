// The third seed's Pool examples in ringfork: apply, apply_async with a callback, map, imap,
// and a plain ringfork queue where the Python version needed Manager().Queue().
//
// Python original: Pool workers cannot receive a multiprocessing.Queue as an argument
// ("Queue objects should only be shared between processes through inheritance"), so the seed
// used Manager().Queue(), a proxy that sends every put through a server process and a socket.
// A ringfork queue is an offset into shared memory: it travels as a task argument, and puts
// go straight to memory. A worker that crashes fails only its own task (Python's Pool hangs).
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <numeric>

#include "ringfork/pool.h"

namespace {

int square(int x) { return x * x; }

int report_progress(ringfork::Queue<std::string> progress, int task) {
  progress.put("task " + std::to_string(task) + " done");
  return task;
}

int crash(int) {
  ::signal(SIGSEGV, SIG_DFL);
  ::raise(SIGSEGV);
  return 0;
}

}  // namespace

int main() {
  using namespace ringfork;
  Runtime runtime;
  Pool pool(runtime, 2);
  bool ok = true;

  std::printf("apply(square, 7) = %d\n", pool.apply(&square, 7));
  ok = ok && pool.apply(&square, 7) == 49;

  std::atomic<int> callback_sum{0};
  std::vector<AsyncResult<int>> pending;
  for (int i = 0; i < 10; ++i) {
    pending.push_back(pool.apply_async(
        Callbacks<int>{[&](const int& value) { callback_sum += value; }, nullptr}, &square, i));
  }
  for (auto& result : pending) result.get();
  std::printf("apply_async with a callback: the callbacks summed %d (expected 285)\n",
              callback_sum.load());
  ok = ok && callback_sum.load() == 285;

  std::vector<int> numbers(100);
  std::iota(numbers.begin(), numbers.end(), 0);
  const std::vector<int> squares = pool.map(&square, numbers, 10);
  std::printf("map over 100 numbers: squares[99] = %d\n", squares[99]);
  ok = ok && squares[99] == 9801;

  auto stream = pool.imap(&square, numbers, 25);
  int first = *stream.next(), second = *stream.next();
  std::printf("imap yields in order: %d, %d, ...\n", first, second);

  auto progress = Queue<std::string>::create(runtime.arena(), runtime.pool());
  for (int task = 0; task < 4; ++task) pool.apply_async(&report_progress, progress, task).get();
  const std::size_t held = progress.qsize();
  const std::string first_message = progress.get();
  std::printf("progress queue (instead of Manager().Queue()) held %zu messages, first: %s\n",
              held, first_message.c_str());
  ok = ok && held == 4 && first_message == "task 0 done";

  try {
    pool.apply(&crash, 0);
    ok = false;
  } catch (const WorkerCrashed& error) {
    std::printf("a crashing task fails alone: WorkerCrashed (%s)\n", error.what());
  }
  std::printf("and the pool still works: apply(square, 12) = %d\n", pool.apply(&square, 12));

  pool.close();
  pool.join();
  std::printf("%s\n", ok ? "all as expected" : "UNEXPECTED RESULT");
  return ok ? 0 : 1;
}
