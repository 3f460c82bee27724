// Allocators: the shared BlockPool against its baselines, glibc malloc and mimalloc, in one
// binary so every ratio comes from one run. Each iteration is one allocate + free pair.
#include <benchmark/benchmark.h>
#include <mimalloc.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <thread>

#include "ringfork/block_pool.h"
#include "ringfork/cache_line.h"

namespace ringfork {
namespace {

// A pool in its own segment, built in place (the arena points at the segment, the pool at
// the arena).
struct BenchPool {
  BenchPool()
      : segment(Segment::create({.capacity = std::size_t{512} << 20})),
        arena(SharedArena::create(segment)),
        pool(BlockPool::create(arena, {.max_bytes = std::size_t{256} << 20})) {}
  Segment segment;
  SharedArena arena;
  BlockPool pool;
};

// The timed loop: one allocate + free pair per iteration.
void time_allocate_free_pairs(benchmark::State& state, BlockPool& pool, std::size_t bytes) {
  for (auto _ : state) {
    std::uint64_t block = 0;
    if (pool.allocate(bytes, block)) {
      state.SkipWithError("BlockPool::allocate failed");
      break;
    }
    benchmark::DoNotOptimize(block);
    pool.free(block);
  }
}

void BM_PoolAllocFree(benchmark::State& state) {
  const auto bytes = static_cast<std::size_t>(state.range(0));
  BenchPool f;
  time_allocate_free_pairs(state, f.pool, bytes);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PoolAllocFree)->Arg(64)->Arg(4096)->Arg(1 << 20);

// Two processes allocate and free on one pool at once; the rate reported is the parent's.
void BM_PoolAllocFreeXproc(benchmark::State& state) {
  const auto bytes = static_cast<std::size_t>(state.range(0));
  BenchPool f;
  struct Control {
    alignas(kFalseSharingRange) std::atomic<std::uint32_t> running;
    alignas(kFalseSharingRange) std::atomic<std::uint32_t> stop;
  };
  auto* control = new (f.segment.at(Offset<Control>{
      f.arena.allocate_or_throw(sizeof(Control), kFalseSharingRange, "bench control")})) Control{};
  const pid_t parent = ::getpid();
  const pid_t child = ::fork();
  if (child < 0) {
    state.SkipWithError("fork failed");
    return;
  }
  if (child == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::minutes(5);
    // release: the parent starts timing only once this process is in its loop.
    control->running.store(1, std::memory_order_release);
    std::uint64_t pairs = 0;
    // relaxed: a stop request needs no data with it.
    while (control->stop.load(std::memory_order_relaxed) == 0) {
      std::uint64_t block = 0;
      if (f.pool.allocate(bytes, block)) ::_exit(2);
      f.pool.free(block);
      if (++pairs % 65536 == 0 && std::chrono::steady_clock::now() > give_up) break;
    }
    f.pool.flush_local_cache();
    ::_exit(0);
  }
  // acquire: pairs with the child's release.
  while (control->running.load(std::memory_order_acquire) == 0) std::this_thread::yield();
  time_allocate_free_pairs(state, f.pool, bytes);
  control->stop.store(1, std::memory_order_relaxed);  // relaxed: see the child's loop
  int status = 0;
  ::waitpid(child, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) state.SkipWithError("child failed");
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PoolAllocFreeXproc)->Arg(64)->UseRealTime();

// glibc's allocator itself, even where mimalloc replaces malloc: a binary that calls mi_*
// links libmimalloc directly, and the distribution's build then overrides malloc/free.
}  // namespace
}  // namespace ringfork
extern "C" void* __libc_malloc(std::size_t bytes);
extern "C" void __libc_free(void* memory);
namespace ringfork {
namespace {

void BM_MallocFree(benchmark::State& state) {
  const auto bytes = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    void* memory = __libc_malloc(bytes);
    benchmark::DoNotOptimize(memory);
    __libc_free(memory);
  }
  state.SetLabel("glibc");
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MallocFree)->Arg(64)->Arg(4096)->Arg(1 << 20);

void BM_MimallocFree(benchmark::State& state) {
  const auto bytes = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    void* memory = mi_malloc(bytes);
    benchmark::DoNotOptimize(memory);
    mi_free(memory);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MimallocFree)->Arg(64)->Arg(4096)->Arg(1 << 20);

}  // namespace
}  // namespace ringfork
