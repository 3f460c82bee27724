// LatencyCounts: how many responses had each latency (ms), added to once per response.
//
// Nearly all latencies are small, so values below kDenseLimit count in an array indexed by
// the value (one increment, no hashing); the rest go to a LatencyHistogram. A plain value:
// one thread at a time; throws only std::bad_alloc.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <vector>

namespace logscan {

// Latency value (ms) -> how many responses had it.
using LatencyHistogram = std::unordered_map<std::int64_t, std::uint64_t>;

class LatencyCounts {
 public:
  // Bounds the array at 32 KiB per call, whatever the input.
  static constexpr std::int64_t kDenseLimit = 4096;

  void add(std::int64_t value, std::uint64_t n = 1) {
    if (value >= 0 && value < kDenseLimit) {
      const auto index = static_cast<std::size_t>(value);
      if (index >= dense_.size()) {
        dense_.resize(std::max<std::size_t>(std::bit_ceil(index + 1), 64));
      }
      dense_[index] += n;
    } else {
      sparse_[value] += n;
    }
  }

  void add(const LatencyCounts& other) {
    other.for_each([this](std::int64_t value, std::uint64_t n) { add(value, n); });
  }

  // Calls f(value, count) for every value with a count, in no particular order.
  template <class F>
  void for_each(F&& f) const {
    for (std::size_t i = 0; i < dense_.size(); ++i) {
      if (dense_[i] != 0) f(static_cast<std::int64_t>(i), dense_[i]);
    }
    for (const auto& [value, n] : sparse_) f(value, n);
  }

  std::size_t distinct() const {
    return sparse_.size() +
           static_cast<std::size_t>(
               std::count_if(dense_.begin(), dense_.end(), [](std::uint64_t n) { return n != 0; }));
  }

  LatencyHistogram histogram() const {
    LatencyHistogram out(sparse_);
    for (std::size_t i = 0; i < dense_.size(); ++i) {
      if (dense_[i] != 0) out[static_cast<std::int64_t>(i)] = dense_[i];
    }
    return out;
  }

 private:
  std::vector<std::uint64_t> dense_;  // value -> count, for 0 <= value < its size
  LatencyHistogram sparse_;           // every other value
};

}  // namespace logscan
