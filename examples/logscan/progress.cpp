#include "progress.h"

#include <cstdio>

namespace logscan {

void format_bytes(char* out, std::size_t size, double bytes) {
  static constexpr const char* kUnits[] = {"B", "kB", "MB", "GB", "TB"};
  int unit = 0;
  while (bytes >= 1000.0 && unit < 4) {
    bytes /= 1000.0;
    ++unit;
  }
  std::snprintf(out, size, unit == 0 ? "%.0f %s" : "%.1f %s", bytes, kUnits[unit]);
}

ProgressLine::ProgressLine(bool enabled, std::uint64_t total_bytes)
    : enabled_(enabled), total_bytes_(total_bytes), start_(Clock::now()), last_draw_(start_) {}

void ProgressLine::update(std::uint64_t done_bytes) {
  if (!enabled_) return;
  const Clock::time_point now = Clock::now();
  if (now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  const double seconds = std::chrono::duration<double>(now - start_).count();
  const double rate = seconds > 0 ? static_cast<double>(done_bytes) / seconds : 0.0;
  char done[32], total[32], per_second[32], eta[32] = "?";
  format_bytes(done, sizeof done, static_cast<double>(done_bytes));
  format_bytes(total, sizeof total, static_cast<double>(total_bytes_));
  format_bytes(per_second, sizeof per_second, rate);
  if (rate > 0 && total_bytes_ >= done_bytes) {
    std::snprintf(eta, sizeof eta, "%.0f s", static_cast<double>(total_bytes_ - done_bytes) / rate);
  }
  const double percent = total_bytes_ == 0 ? 100.0
                                           : 100.0 * static_cast<double>(done_bytes) /
                                                 static_cast<double>(total_bytes_);
  // \r and "erase to end of line": the line is redrawn in place.
  std::fprintf(stderr, "\rlogscan: %s of %s (%.0f%%), %s/s, ETA %s\033[K", done, total, percent,
               per_second, eta);
  std::fflush(stderr);
  drawn_ = true;
}

void ProgressLine::clear() {
  if (!drawn_) return;
  std::fputs("\r\033[K", stderr);
  std::fflush(stderr);
  drawn_ = false;
}

}  // namespace logscan
