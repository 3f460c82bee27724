// A one-line progress display on stderr for long runs: bytes done, rate, ETA. Redrawn at
// most ten times a second, so it costs nothing measurable; silent when disabled (stderr not
// a terminal), so logs and pipes never see it.
#pragma once

#include <chrono>
#include <cstdint>

namespace logscan {

class ProgressLine {
 public:
  ProgressLine(bool enabled, std::uint64_t total_bytes);
  ~ProgressLine() { clear(); }
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;

  // `done_bytes` of the total are finished; redraws if the last draw is old enough.
  void update(std::uint64_t done_bytes);
  // Erases the line, so that what is printed next starts on a clean line.
  void clear();

 private:
  using Clock = std::chrono::steady_clock;
  bool enabled_;
  bool drawn_ = false;
  std::uint64_t total_bytes_;
  Clock::time_point start_;
  Clock::time_point last_draw_;
};

// "1.5 GB", "12.0 MB", "512 B": decimal units, as disks and rates are quoted.
void format_bytes(char* out, std::size_t size, double bytes);

}  // namespace logscan
