#include "line_parser.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <array>
#include <bit>
#include <cstring>

namespace logscan {
namespace {

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

std::uint64_t load_word(const char* p) {
  std::uint64_t word;
  std::memcpy(&word, p, sizeof word);
  return word;
}

constexpr std::uint64_t kOnes = 0x0101010101010101;
constexpr std::uint64_t kHighBits = 0x8080808080808080;

// SWAR: the high bit of each byte of `word` that equals `byte` is set (and only those:
// the exact form, not the one that may flag a byte above a match).
constexpr std::uint64_t bytes_equal(std::uint64_t word, char byte) {
  const std::uint64_t x = word ^ (kOnes * static_cast<unsigned char>(byte));
  return ~(((x & ~kHighBits) + ~kHighBits) | x) & kHighBits;
}

// The little-endian word of 8 bytes of text, as load_word() reads them.
constexpr std::uint64_t word_of(std::string_view text) {
  std::uint64_t word = 0;
  for (std::size_t i = 0; i < sizeof word; ++i) {
    word |= std::uint64_t{static_cast<unsigned char>(text[i])} << (8 * i);
  }
  return word;
}

// One 8-byte slice of the timestamp pattern: which bytes must be digits, and the bytes
// the others must equal. Built from the pattern text so the masks cannot drift from it.
struct TimestampSlice {
  std::uint64_t digit_mask = 0;    // 0xFF on digit positions
  std::uint64_t literal_mask = 0;  // 0xFF on literal positions
  std::uint64_t literals = 0;

  constexpr explicit TimestampSlice(std::string_view pattern) {
    for (std::size_t i = 0; i < 8; ++i) {
      const std::uint64_t lane = std::uint64_t{0xFF} << (8 * i);
      if (pattern[i] == 'D') {
        digit_mask |= lane;
      } else {
        literal_mask |= lane;
        literals |= std::uint64_t{static_cast<unsigned char>(pattern[i])} << (8 * i);
      }
    }
  }

  // Little-endian load: byte i of the text is lane i. A byte is an ASCII digit exactly
  // when its high nibble is 3 and adding 6 keeps it 3 (0x30..0x39). The 6 goes to digit
  // lanes only, which hold at most 0x3F by then, so no lane carries into the next.
  bool matches(std::uint64_t word) const {
    const std::uint64_t nibbles = kOnes * 0xF0 & digit_mask;
    const std::uint64_t threes = kOnes * 0x30 & digit_mask;
    return (word & literal_mask) == literals && (word & nibbles) == threes &&
           ((word + (kOnes * 0x06 & digit_mask)) & nibbles) == threes;
  }
};

static_assert(std::endian::native == std::endian::little, "SWAR lanes assume little endian");
constexpr std::string_view kTimestampPattern = "DDDD-DD-DDTDD:DD:DD.DDDZ";
constexpr TimestampSlice kTimestampSlices[3] = {TimestampSlice(kTimestampPattern.substr(0)),
                                                TimestampSlice(kTimestampPattern.substr(8)),
                                                TimestampSlice(kTimestampPattern.substr(16))};

// The first space at or after `p`, or `end`. Tokens are short, so 16 bytes a step (SSE2,
// which every x86-64 has), then 8 (SWAR), beats a call to memchr. 16 bytes a step halved
// find_space's instructions on loggen lines (callgrind: 157 -> 74 a line; the scan's total
// 17.6 -> 17.1 a byte).
[[gnu::always_inline]] inline const char* find_space(const char* p, const char* end) {
#if defined(__SSE2__)
  const __m128i spaces = _mm_set1_epi8(' ');
  for (; end - p >= 16; p += 16) {
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const auto hits = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(bytes, spaces)));
    if (hits != 0) return p + std::countr_zero(hits);
  }
#endif
  for (; end - p >= 8; p += 8) {
    const std::uint64_t hits = bytes_equal(load_word(p), ' ');
    if (hits) return p + std::countr_zero(hits) / 8;
  }
  while (p < end && *p != ' ') ++p;
  return p;
}

const char* skip_spaces(const char* p, const char* end) {
  while (p < end && *p == ' ') ++p;
  return p;
}

// `token` equals `name`: a compare of known size, done in a load or two (GCC still called
// memcmp for `memcmp(token.data(), name, N - 1) == 0`).
template <std::size_t N>
bool equals(std::string_view token, const char (&name)[N]) {
  static_assert(N - 1 <= sizeof(std::uint64_t), "names up to 8 bytes");
  if (token.size() != N - 1) return false;
  std::uint64_t got = 0, want = 0;
  std::memcpy(&got, token.data(), N - 1);
  std::memcpy(&want, name, N - 1);
  return got == want;
}

bool parse_level(std::string_view token, Level& level) {
  // The first byte tells the names apart; one compare confirms.
  bool match;
  Level candidate;
  switch (token.empty() ? '\0' : token[0]) {
    case 'T':
      match = equals(token, "TRACE");
      candidate = Level::kTrace;
      break;
    case 'D':
      match = equals(token, "DEBUG");
      candidate = Level::kDebug;
      break;
    case 'I':
      match = equals(token, "INFO");
      candidate = Level::kInfo;
      break;
    case 'W':
      match = equals(token, "WARN");
      candidate = Level::kWarn;
      break;
    case 'E':
      match = equals(token, "ERROR");
      candidate = Level::kError;
      break;
    case 'F':
      match = equals(token, "FATAL");
      candidate = Level::kFatal;
      break;
    default:
      return false;
  }
  static_assert(kLevelNames[static_cast<std::size_t>(Level::kFatal)] == "FATAL" &&
                    kLevelNames[static_cast<std::size_t>(Level::kTrace)] == "TRACE",
                "parse_level's names follow kLevelNames");
  if (match) level = candidate;
  return match;
}

constexpr bool is_key_byte(char c) { return (c >= 'a' && c <= 'z') || c == '_'; }

enum class Key : std::uint8_t { kOther, kReqId, kCall, kDir, kStatus, kDurMs, kPayload };

// A key with a meaning and its '=', as the low bytes of a little-endian word: one masked
// compare recognises (and so validates) the token's key.
struct KnownKey {
  std::string_view name;
  Key key;
  std::uint64_t prefix = 0;  // name then '='
  std::uint64_t mask = 0;

  constexpr KnownKey(std::string_view key_name, Key id) : name(key_name), key(id) {
    for (std::size_t i = 0; i <= name.size(); ++i) {
      const char c = i < name.size() ? name[i] : '=';
      prefix |= std::uint64_t{static_cast<unsigned char>(c)} << (8 * i);
      mask |= std::uint64_t{0xFF} << (8 * i);
    }
  }
};

// In Key order, from kReqId: known_key() indexes it.
constexpr KnownKey kKnownKeys[] = {{"req_id", Key::kReqId}, {"call", Key::kCall},
                                   {"dir", Key::kDir},      {"status", Key::kStatus},
                                   {"dur_ms", Key::kDurMs}, {"payload", Key::kPayload}};
static_assert(std::string_view("payload=").size() <= sizeof(std::uint64_t),
              "every known key and its '=' fit the word read_key compares");

constexpr const KnownKey& known_key(Key key) {
  return kKnownKeys[static_cast<std::size_t>(key) - static_cast<std::size_t>(Key::kReqId)];
}
static_assert([] {
  for (const KnownKey& known : kKnownKeys) {
    if (known_key(known.key).key != known.key) return false;
  }
  return true;
}(), "kKnownKeys lists the keys in Key order");

// The '=' ending the [a-z_]+ key at `pos`, or nullptr when there is none.
const char* key_end(const char* pos, const char* end) {
  const char* eq = pos;
  while (eq < end && is_key_byte(*eq)) ++eq;
  if (eq == pos || eq == end || *eq != '=') return nullptr;
  return eq;
}

// The one known key a token may name, by its first byte ('d' is dir or dur_ms: the second
// byte tells them apart).
constexpr std::array<Key, 256> kKeyByFirstByte = [] {
  std::array<Key, 256> keys{};
  for (const KnownKey& known : kKnownKeys) {
    if (known.key != Key::kDurMs) keys[static_cast<unsigned char>(known.name[0])] = known.key;
  }
  return keys;
}();
static_assert(known_key(Key::kDir).name[0] == known_key(Key::kDurMs).name[0] &&
                  known_key(Key::kDir).name[1] == 'i' && known_key(Key::kDurMs).name[1] == 'u',
              "read_key tells dir from dur_ms by their second byte");

// The token at `pos` as key=value: returns its '=' and sets `key`, or nullptr when the
// token is not [a-z_]+ '=' ...
const char* read_key(const char* pos, const char* end, Key& key) {
  if (end - pos >= 8) {
    Key candidate = kKeyByFirstByte[static_cast<unsigned char>(pos[0])];
    if (candidate == Key::kDir && pos[1] == 'u') candidate = Key::kDurMs;
    if (candidate != Key::kOther) {
      const KnownKey& known = known_key(candidate);
      if ((load_word(pos) & known.mask) == known.prefix) {
        key = candidate;
        return pos + known.name.size();
      }
    }
    // The one candidate did not match, so the key (if any) has no meaning.
    key = Key::kOther;
    return key_end(pos, end);
  }
  const char* eq = key_end(pos, end);
  if (eq == nullptr) return nullptr;
  const std::string_view name(pos, static_cast<std::size_t>(eq - pos));
  key = Key::kOther;
  for (const KnownKey& known : kKnownKeys) {
    if (name == known.name) key = known.key;
  }
  return eq;
}

}  // namespace

bool parse_timestamp(std::string_view t, std::int64_t& ms_since_epoch) noexcept {
  if (t.size() != kTimestampPattern.size()) return false;
  const std::uint64_t w0 = load_word(t.data()), w1 = load_word(t.data() + 8),
                      w2 = load_word(t.data() + 16);
  if (!kTimestampSlices[2].matches(w2)) return false;
  // Consecutive lines almost always share a minute: the first 16 bytes (YYYY-MM-DDTHH:MM) of
  // the last valid timestamp this thread saw, and that minute's start, spare the calendar and
  // clock checks. It starts as a valid pair, so that no input matches a key it never checked.
  // thread_local keeps parse_line safe to call from any thread.
  struct MinuteCache {
    std::uint64_t w0 = word_of("1970-01-");
    std::uint64_t w1 = word_of("01T00:00");
    std::int64_t minute_ms = 0;
  };
  thread_local MinuteCache cache;
  std::int64_t minute_ms;
  if (w0 == cache.w0 && w1 == cache.w1) {
    minute_ms = cache.minute_ms;
  } else {
    if (!kTimestampSlices[0].matches(w0) || !kTimestampSlices[1].matches(w1)) return false;
    const unsigned year = digits(&t[0], 4), month = digits(&t[5], 2), day = digits(&t[8], 2);
    static constexpr unsigned kDaysInMonth[13] = {0,  31, 28, 31, 30, 31, 30,
                                                  31, 31, 30, 31, 30, 31};
    if (month < 1 || month > 12 || day < 1) return false;
    const unsigned month_days = month == 2 && is_leap(year) ? 29 : kDaysInMonth[month];
    if (day > month_days) return false;
    const unsigned hour = digits(&t[11], 2), minute = digits(&t[14], 2);
    if (hour > 23 || minute > 59) return false;
    minute_ms = ((days_from_civil(year, month, day) * 24 + hour) * 60 + minute) * 60'000;
    cache = {w0, w1, minute_ms};
  }
  const unsigned second = digits(&t[17], 2), milli = digits(&t[20], 3);
  if (second > 59) return false;
  ms_since_epoch = minute_ms + second * 1000 + milli;
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
  const char* const end = line.data() + line.size();
  // Token 1 is exactly the 24 timestamp bytes, none of them a space (so a leading space
  // fails here too), then a space or the end of the line.
  const std::size_t ts_size = kTimestampPattern.size();
  if (line.size() < ts_size || (line.size() > ts_size && line[ts_size] != ' ')) return r;
  if (!parse_timestamp(line.substr(0, ts_size), r.timestamp_ms)) return r;

  const char* pos = skip_spaces(line.data() + ts_size, end);
  const char* token_end = find_space(pos, end);
  if (!parse_level(std::string_view(pos, static_cast<std::size_t>(token_end - pos)), r.level)) {
    return r;
  }

  pos = skip_spaces(token_end, end);
  token_end = find_space(pos, end);
  if (token_end - pos < 3 || pos[0] != '[' || token_end[-1] != ']') return r;
  r.host = std::string_view(pos + 1, static_cast<std::size_t>(token_end - pos - 2));
  if (r.host.find(']') != std::string_view::npos) return r;

  std::string_view call, dir, status, dur;
  for (pos = skip_spaces(token_end, end); pos < end; pos = skip_spaces(token_end, end)) {
    Key key;
    const char* const eq = read_key(pos, end, key);
    if (eq == nullptr) return r;
    if (key == Key::kPayload) {  // takes the whole rest of the line
      const char* first = skip_spaces(eq + 1, end);
      const char* last = end;
      while (last > first && last[-1] == ' ') --last;
      r.payload = std::string_view(first, static_cast<std::size_t>(last - first));
      break;
    }
    token_end = find_space(eq + 1, end);
    const std::string_view value(eq + 1, static_cast<std::size_t>(token_end - eq - 1));
    // A repeated key: the last one counts.
    switch (key) {
      case Key::kReqId:
        r.req_id = value;
        break;
      case Key::kCall:
        call = value;
        break;
      case Key::kDir:
        dir = value;
        break;
      case Key::kStatus:
        status = value;
        break;
      case Key::kDurMs:
        dur = value;
        break;
      case Key::kPayload:
      case Key::kOther:
        break;
    }
  }

  r.call = call;
  r.status = parse_decimal(status, 999);
  r.dur_ms = parse_decimal(dur, 86'400'000);
  r.dir = equals(dir, "request")    ? Direction::kRequest
          : equals(dir, "response") ? Direction::kResponse
                                    : Direction::kNone;
  r.kind = !r.call.empty() && r.dir != Direction::kNone ? LineKind::kCall : LineKind::kPlain;
  return r;
}

}  // namespace logscan
