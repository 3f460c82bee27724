// One log line -> one Record, parsed in place (shared/LOGFORMAT.md, "Lines").
//
// parse_line() never allocates and never throws: every string_view in the Record points
// into the caller's line, which must outlive the Record. Safe to call from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace logscan {

enum class Level : std::uint8_t { kTrace, kDebug, kInfo, kWarn, kError, kFatal };
inline constexpr std::size_t kLevelCount = 6;
inline constexpr std::array<std::string_view, kLevelCount> kLevelNames = {
    "TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"};

enum class LineKind : std::uint8_t {
  kBlank,      // length 0 once the terminator is removed
  kMalformed,  // breaks a rule of "Lines"; counts nowhere else
  kPlain,      // well formed, not a call record
  kCall,       // well formed, non-empty call, dir request or response
};

enum class Direction : std::uint8_t { kNone, kRequest, kResponse };

inline constexpr std::int32_t kMissing = -1;  // status or dur_ms absent or invalid

struct Record {
  LineKind kind = LineKind::kMalformed;
  Level level = Level::kInfo;
  Direction dir = Direction::kNone;
  std::int64_t timestamp_ms = 0;   // since 1970-01-01T00:00:00.000Z, proleptic Gregorian
  std::int32_t status = kMissing;  // 0..999
  std::int32_t dur_ms = kMissing;  // 0..86400000
  std::string_view host;           // between the brackets
  std::string_view req_id;         // empty: none (an empty value counts as none)
  std::string_view call;
  // The payload document: the payload= value without its surrounding spaces; empty when
  // the payload is `none` (no payload= token, or a value empty or all spaces).
  std::string_view payload;
};

// `line` excludes its terminator ("\n", or "\r\n" where the \r directly precedes \n).
Record parse_line(std::string_view line) noexcept;

// Exactly YYYY-MM-DDTHH:MM:SS.mmmZ naming a valid date and time of day (no leap second;
// year 0000 is valid, as in ISO 8601's proleptic calendar). False otherwise.
bool parse_timestamp(std::string_view token, std::int64_t& ms_since_epoch) noexcept;

// A decimal integer (ASCII digits only, leading zeros at any length) in 0..max, else
// kMissing.
std::int32_t parse_decimal(std::string_view value, std::int32_t max) noexcept;

}  // namespace logscan
