// Pool throughput: apply_async of a trivial task (tasks/s, every callback counted) and map
// with chunksize 1000 (items/s), against Python's Pool in the same report.
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <numeric>
#include <optional>
#include <thread>
#include <vector>

#include "bench_runtime.h"
#include "ringfork/pool.h"

namespace {

using ringfork::bench::bench_runtime;
[[maybe_unused]] ringfork::Runtime& early_runtime = bench_runtime();

std::uint64_t plus_one(std::uint64_t x) { return x + 1; }

// One iteration is a batch of kApplyBatch tasks, timed from its first apply_async until its
// last callback has run, as Python's baseline times apply_async until every result is in
// (timing only the loop's submissions would leave the tasks still queued at its end untimed).
void BM_PoolApplyAsync(benchmark::State& state) {
  constexpr std::uint64_t kApplyBatch = 100'000;
  ringfork::Pool pool(bench_runtime(), 2);
  std::atomic<std::uint64_t> sum{0};
  std::atomic<std::uint64_t> done{0};
  std::uint64_t expected = 0;
  std::uint64_t i = 0;
  const ringfork::Callbacks<std::uint64_t> count{[&](const std::uint64_t& v) {
                                                   sum.fetch_add(v, std::memory_order_relaxed);
                                                   // release: pairs with the drain's acquire
                                                   done.fetch_add(1, std::memory_order_release);
                                                 },
                                                 {}};
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    std::optional<ringfork::AsyncResult<std::uint64_t>> last;
    for (std::uint64_t n = 0; n < kApplyBatch; ++n) {
      last = pool.apply_async(count, &plus_one, i);
      expected += ++i;
    }
    last->wait();  // asleep while the queue drains; then the few callbacks still running
    while (done.load(std::memory_order_acquire) != i) std::this_thread::yield();
    state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
                               .count());
  }
  pool.close();
  pool.join();
  if (sum.load() != expected) state.SkipWithError("a callback was lost or ran twice");
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kApplyBatch));
}
BENCHMARK(BM_PoolApplyAsync)->UseManualTime();

void BM_PoolMap(benchmark::State& state) {
  ringfork::Pool pool(bench_runtime(), 2);
  std::vector<std::uint64_t> items(100'000);
  std::iota(items.begin(), items.end(), 0);
  const auto chunksize = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    const auto results = pool.map(&plus_one, items, chunksize);
    if (results.size() != items.size() || results.back() != items.size()) {
      state.SkipWithError("wrong map result");
      break;
    }
  }
  pool.close();
  pool.join();
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(items.size()));
}
BENCHMARK(BM_PoolMap)->Arg(1000)->UseRealTime();

}  // namespace
