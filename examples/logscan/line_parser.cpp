#include "line_parser.h"

#include <cstring>

namespace logscan {
namespace {

constexpr std::string_view kPayloadPrefix = "payload=";

constexpr bool is_digit(char c) { return c >= '0' && c <= '9'; }

constexpr bool is_leap(std::int64_t year) {
  return year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
}

// Days since 1970-01-01 (Howard Hinnant's days_from_civil), valid for years 0..9999.
constexpr std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

unsigned digits(const char* p, int n) {
  unsigned v = 0;
  for (int i = 0; i < n; ++i) v = v * 10 + static_cast<unsigned>(p[i] - '0');
  return v;
}

std::size_t skip_spaces(std::string_view line, std::size_t pos) {
  while (pos < line.size() && line[pos] == ' ') ++pos;
  return pos;
}

std::size_t token_end(std::string_view line, std::size_t pos) {
  const void* space = std::memchr(line.data() + pos, ' ', line.size() - pos);
  return space ? static_cast<std::size_t>(static_cast<const char*>(space) - line.data())
               : line.size();
}

bool parse_level(std::string_view token, Level& level) {
  for (std::size_t i = 0; i < kLevelCount; ++i) {
    if (token == kLevelNames[i]) {
      level = static_cast<Level>(i);
      return true;
    }
  }
  return false;
}

bool is_key(std::string_view key) {
  if (key.empty()) return false;
  for (char c : key) {
    if (!((c >= 'a' && c <= 'z') || c == '_')) return false;
  }
  return true;
}

}  // namespace

bool parse_timestamp(std::string_view t, std::int64_t& ms_since_epoch) noexcept {
  static constexpr std::string_view kPattern = "DDDD-DD-DDTDD:DD:DD.DDDZ";
  if (t.size() != kPattern.size()) return false;
  for (std::size_t i = 0; i < t.size(); ++i) {
    if (kPattern[i] == 'D' ? !is_digit(t[i]) : t[i] != kPattern[i]) return false;
  }
  const unsigned year = digits(&t[0], 4), month = digits(&t[5], 2), day = digits(&t[8], 2);
  const unsigned hour = digits(&t[11], 2), minute = digits(&t[14], 2);
  const unsigned second = digits(&t[17], 2), milli = digits(&t[20], 3);
  static constexpr unsigned kDaysInMonth[13] = {0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return false;
  const unsigned month_days = month == 2 && is_leap(year) ? 29 : kDaysInMonth[month];
  if (day > month_days) return false;
  const std::int64_t days = days_from_civil(year, month, day);
  ms_since_epoch = ((days * 24 + hour) * 60 + minute) * 60'000 + second * 1000 + milli;
  return true;
}

std::int32_t parse_decimal(std::string_view value, std::int32_t max) noexcept {
  if (value.empty()) return kMissing;
  std::size_t i = 0;
  while (i < value.size() && value[i] == '0') ++i;  // leading zeros, at any length
  std::int64_t n = 0;
  for (std::size_t j = i; j < value.size(); ++j) {
    if (!is_digit(value[j])) return kMissing;
    n = n * 10 + (value[j] - '0');
    if (n > max) {
      // Still every byte must be a digit for the value to be "present but too large";
      // either way it counts as missing.
      return kMissing;
    }
  }
  return static_cast<std::int32_t>(n);
}

Record parse_line(std::string_view line) noexcept {
  Record r;
  if (line.empty()) {
    r.kind = LineKind::kBlank;
    return r;
  }
  r.kind = LineKind::kMalformed;
  if (line[0] == ' ') return r;  // leading spaces make the line malformed

  std::size_t pos = 0;
  std::size_t end = token_end(line, pos);
  if (!parse_timestamp(line.substr(pos, end - pos), r.timestamp_ms)) return r;

  pos = skip_spaces(line, end);
  end = token_end(line, pos);
  if (pos == end || !parse_level(line.substr(pos, end - pos), r.level)) return r;

  pos = skip_spaces(line, end);
  end = token_end(line, pos);
  const std::string_view host = line.substr(pos, end - pos);
  if (host.size() < 3 || host.front() != '[' || host.back() != ']') return r;
  r.host = host.substr(1, host.size() - 2);
  if (r.host.find(']') != std::string_view::npos) return r;

  std::string_view call, dir, status, dur;
  for (pos = skip_spaces(line, end); pos < line.size(); pos = skip_spaces(line, end)) {
    const std::string_view rest = line.substr(pos);
    if (rest.starts_with(kPayloadPrefix)) {  // takes the whole rest of the line
      std::string_view doc = rest.substr(kPayloadPrefix.size());
      const std::size_t first = doc.find_first_not_of(' ');
      if (first != std::string_view::npos) {
        doc.remove_prefix(first);
        doc.remove_suffix(doc.size() - 1 - doc.find_last_not_of(' '));
        r.payload = doc;
      }
      break;
    }
    end = token_end(line, pos);
    const std::string_view token = line.substr(pos, end - pos);
    const std::size_t eq = token.find('=');
    if (eq == std::string_view::npos || !is_key(token.substr(0, eq))) return r;
    const std::string_view key = token.substr(0, eq);
    const std::string_view value = token.substr(eq + 1);
    // A repeated key: the last one counts.
    if (key == "req_id") {
      r.req_id = value;
    } else if (key == "call") {
      call = value;
    } else if (key == "dir") {
      dir = value;
    } else if (key == "status") {
      status = value;
    } else if (key == "dur_ms") {
      dur = value;
    }
  }

  r.call = call;
  r.status = parse_decimal(status, 999);
  r.dur_ms = parse_decimal(dur, 86'400'000);
  r.dir = dir == "request"    ? Direction::kRequest
          : dir == "response" ? Direction::kResponse
                              : Direction::kNone;
  r.kind = !call.empty() && r.dir != Direction::kNone ? LineKind::kCall : LineKind::kPlain;
  return r;
}

}  // namespace logscan
