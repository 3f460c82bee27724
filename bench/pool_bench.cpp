// Pool throughput: apply_async of a trivial task (tasks/s, every callback counted) and map
// with chunksize 1000 (items/s), against Python's Pool in the same report.
#include <benchmark/benchmark.h>

#include <atomic>
#include <numeric>
#include <vector>

#include "bench_runtime.h"
#include "ringfork/pool.h"

namespace {

using ringfork::bench::bench_runtime;
[[maybe_unused]] ringfork::Runtime& early_runtime = bench_runtime();

std::uint64_t plus_one(std::uint64_t x) { return x + 1; }

void BM_PoolApplyAsync(benchmark::State& state) {
  ringfork::Pool pool(bench_runtime(), 2);
  std::atomic<std::uint64_t> sum{0};
  std::uint64_t expected = 0;
  std::uint64_t i = 0;
  for (auto _ : state) {
    pool.apply_async(ringfork::Callbacks<std::uint64_t>{[&](const std::uint64_t& v) { sum += v; }, {}},
                     &plus_one, i);
    expected += ++i;
  }
  pool.close();
  pool.join();  // every callback has run: the drain is timed too
  if (sum.load() != expected) state.SkipWithError("a callback was lost or ran twice");
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PoolApplyAsync)->UseRealTime();

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
