// Process start + join: from the template vs forked directly from a parent that holds 1 GiB
// of touched memory and 8 threads (what a real service looks like when it wants a worker).
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "bench_runtime.h"
#include "ringfork/process.h"

namespace {

using ringfork::bench::bench_runtime;
[[maybe_unused]] ringfork::Runtime& early_runtime = bench_runtime();

int trivial_worker(int value) { return value & 0x7f; }

// The parent's burden: 1 GiB of touched memory and 8 idle threads.
class HeavyParent {
 public:
  HeavyParent() : memory_(std::make_unique<char[]>(kBytes)) {
    std::memset(memory_.get(), 1, kBytes);
    for (int i = 0; i < 8; ++i) {
      threads_.emplace_back([this] {
        while (!stop_.load(std::memory_order_acquire)) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      });
    }
  }
  ~HeavyParent() {
    stop_.store(true, std::memory_order_release);
    for (auto& thread : threads_) thread.join();
  }

 private:
  static constexpr std::size_t kBytes = std::size_t{1} << 30;
  std::unique_ptr<char[]> memory_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
};

template <ringfork::StartMethod kMethod>
void spawn_join(benchmark::State& state) {
  ringfork::Runtime& runtime = bench_runtime();
  HeavyParent parent;
  int failures = 0;
  int i = 0;
  for (auto _ : state) {
    const int value = i++;
    if constexpr (kMethod == ringfork::StartMethod::kTemplate) {
      ringfork::Process process(runtime, &trivial_worker, value);
      process.start();
      process.join();
      failures += process.exitcode() != (value & 0x7f);
    } else {
      ringfork::Process process(runtime, [value] { return value & 0x7f; },
                                ringfork::StartMethod::kDirect);
      process.start();
      process.join();
      failures += process.exitcode() != (value & 0x7f);
    }
  }
  if (failures != 0) state.SkipWithError("a worker returned the wrong exit code");
  state.SetItemsProcessed(state.iterations());
}

void BM_SpawnJoinTemplate(benchmark::State& state) {
  spawn_join<ringfork::StartMethod::kTemplate>(state);
}
void BM_SpawnJoinDirect(benchmark::State& state) { spawn_join<ringfork::StartMethod::kDirect>(state); }

BENCHMARK(BM_SpawnJoinTemplate)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SpawnJoinDirect)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace
