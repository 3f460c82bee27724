// Producers and consumers in separate processes sharing one bounded queue, as in the third
// seed's multiprocessing example: a sentinel per consumer ends the run; every item is
// accounted for.
#include <cstdio>
#include <vector>

#include "ringfork/process.h"
#include "ringfork/queue.h"

namespace {

constexpr std::int64_t kStop = -1;

int produce(ringfork::Queue<std::int64_t> items, std::int64_t first, std::int64_t count) {
  for (std::int64_t i = first; i < first + count; ++i) items.put(i);
  return 0;
}

int consume(ringfork::Queue<std::int64_t> items, ringfork::Queue<std::int64_t> sums) {
  std::int64_t sum = 0;
  for (std::int64_t item; (item = items.get()) != kStop;) sum += item;
  sums.put(sum);
  return 0;
}

}  // namespace

int main() {
  using namespace ringfork;
  Runtime runtime;
  constexpr int kProducers = 4, kConsumers = 3;
  constexpr std::int64_t kPerProducer = 250'000;
  auto items = Queue<std::int64_t>::create(runtime.arena(), runtime.pool(), {.maxsize = 1024});
  auto sums = Queue<std::int64_t>::create(runtime.arena(), runtime.pool());

  std::vector<Process> producers, consumers;
  for (int c = 0; c < kConsumers; ++c) consumers.emplace_back(runtime, &consume, items, sums);
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back(runtime, &produce, items, p * kPerProducer, kPerProducer);
  }
  const std::int64_t start = Deadline::monotonic_ns();
  for (auto& process : consumers) process.start();
  for (auto& process : producers) process.start();
  for (auto& process : producers) process.join();
  for (int c = 0; c < kConsumers; ++c) items.put(kStop);
  for (auto& process : consumers) process.join();
  const double seconds = static_cast<double>(Deadline::monotonic_ns() - start) / 1e9;

  std::int64_t total = 0;
  for (int c = 0; c < kConsumers; ++c) total += sums.get();
  const std::int64_t n = kProducers * kPerProducer;
  const bool ok = total == n * (n - 1) / 2;
  std::printf("%d producers -> %d consumers: %lld items in %.2f s (%.1f M items/s); sum %s\n",
              kProducers, kConsumers, static_cast<long long>(n), seconds, n / seconds / 1e6,
              ok ? "correct" : "WRONG");
  return ok ? 0 : 1;
}
