// libFuzzer target for the logscan contract core: the line parser, the Scanner and the
// mergeable PartialReport (shared/LOGFORMAT.md).
//
// The input is a chunk of lines, as a reader hands it to Scanner::scan(). Every check
// below is an invariant that a real bug could break, and each traps on violation:
//   - the line parser agrees with reference_line(), a slow, literal reading of "Lines";
//   - `lines` counts every line; blank + malformed + levels add up to it;
//   - per call: status classes add up to responses, payload kinds to call records,
//     malformed_* stay within their kind, unmatched and latency counts within their records;
//   - the report does not depend on where the input is cut: scanned whole, cut after a
//     '\n' at input-chosen points (as a reader cuts chunks), merged in either order, or
//     carried through encode()/decode(), the finished report is the same;
//   - JSON payloads parsed in place (padding after the chunk) and from a copy agree;
//   - to_json() is valid JSON whose counts are the report's, with call names valid UTF-8
//     and strictly sorted (two raw names decoding alike must share one entry).
// Input that breaks the pairing rule (one request and one response per req_id and call) is
// outside the contract: only the pairing-dependent numbers may then depend on the cut.
//
// Build and run: `make fuzz` (clang, -fsanitize=fuzzer,address,undefined).
#include <simdjson.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "line_parser.h"
#include "report.h"
#include "scan.h"

namespace {

using logscan::FinalReport;
using logscan::PartialReport;

// Names the broken invariant on stderr (libFuzzer keeps the input as a crash file), then
// traps so the fuzzer stops there.
#define FUZZ_CHECK(condition)                                                                     \
  do {                                                                                            \
    if (!(condition)) {                                                                           \
      std::fprintf(stderr, "fuzz_scan: invariant broken at line %d: %s\n", __LINE__, #condition); \
      __builtin_trap();                                                                           \
    }                                                                                             \
  } while (0)

// ---- a literal reading of LOGFORMAT "Lines", independent of line_parser.cpp ----

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

long number(std::string_view digits) {
  long n = 0;
  for (char c : digits) n = n * 10 + (c - '0');
  return n;
}

// Milliseconds since 1970-01-01, or false. Days are counted from year 0 by whole years and
// months, not by the civil-from-days formula the parser uses.
bool reference_timestamp(std::string_view t, std::int64_t& ms) {
  if (t.size() != 24 || t[4] != '-' || t[7] != '-' || t[10] != 'T' || t[13] != ':' ||
      t[16] != ':' || t[19] != '.' || t[23] != 'Z') {
    return false;
  }
  for (int i : {0, 5, 8, 11, 14, 17, 20}) {
    const int width = i == 0 ? 4 : i == 20 ? 3 : 2;
    if (!all_digits(t.substr(static_cast<std::size_t>(i), static_cast<std::size_t>(width)))) {
      return false;
    }
  }
  const long y = number(t.substr(0, 4)), mo = number(t.substr(5, 2)), d = number(t.substr(8, 2));
  const long h = number(t.substr(11, 2)), mi = number(t.substr(14, 2));
  const long s = number(t.substr(17, 2)), milli = number(t.substr(20, 3));
  const bool leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
  const int month_days[] = {31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (mo < 1 || mo > 12 || d < 1 || d > month_days[mo - 1] || h > 23 || mi > 59 || s > 59) {
    return false;
  }
  // Days from 0000-01-01 to y-01-01: 365 a year plus the leap years 0, 4, ... before y.
  const auto days_to_year = [](long year) {
    return 365 * year + (year + 3) / 4 - (year + 99) / 100 + (year + 399) / 400;
  };
  long days = days_to_year(y) - days_to_year(1970);
  for (long m = 1; m < mo; ++m) days += month_days[m - 1];
  days += d - 1;
  ms = (((days * 24 + h) * 60 + mi) * 60 + s) * 1000 + milli;
  return true;
}

std::int32_t reference_decimal(std::string_view v, long max) {
  if (!all_digits(v)) return logscan::kMissing;
  while (v.size() > 1 && v.front() == '0') v.remove_prefix(1);
  if (v.size() > 9) return logscan::kMissing;  // more than either maximum
  const long n = number(v);
  return n <= max ? static_cast<std::int32_t>(n) : logscan::kMissing;
}

logscan::Record reference_line(std::string_view line) {
  logscan::Record r;
  if (line.empty()) {
    r.kind = logscan::LineKind::kBlank;
    return r;
  }
  r.kind = logscan::LineKind::kMalformed;
  std::vector<std::string_view> tokens;  // the payload= token, if any, is the last
  std::size_t pos = 0;
  if (line[0] == ' ') return r;
  while (pos < line.size()) {
    if (line.substr(pos).starts_with("payload=")) {
      tokens.push_back(line.substr(pos));
      break;
    }
    std::size_t end = pos;
    while (end < line.size() && line[end] != ' ') ++end;
    tokens.push_back(line.substr(pos, end - pos));
    pos = end;
    while (pos < line.size() && line[pos] == ' ') ++pos;
  }
  if (tokens.size() < 3 || !reference_timestamp(tokens[0], r.timestamp_ms)) return r;
  bool level_found = false;
  for (std::size_t i = 0; i < logscan::kLevelCount; ++i) {
    if (tokens[1] == logscan::kLevelNames[i]) {
      r.level = static_cast<logscan::Level>(i);
      level_found = true;
    }
  }
  const std::string_view host = tokens[2];
  if (!level_found || host.size() < 3 || host.front() != '[' || host.back() != ']' ||
      host.substr(1, host.size() - 2).find(']') != std::string_view::npos) {
    return r;
  }
  std::string_view call, dir, status, dur, payload;
  for (std::size_t i = 3; i < tokens.size(); ++i) {
    const std::size_t eq = tokens[i].find('=');
    if (eq == 0 || eq == std::string_view::npos) return r;
    const std::string_view key = tokens[i].substr(0, eq), value = tokens[i].substr(eq + 1);
    for (char c : key) {
      if (!((c >= 'a' && c <= 'z') || c == '_')) return r;
    }
    if (key == "req_id") r.req_id = value;
    if (key == "call") call = value;
    if (key == "dir") dir = value;
    if (key == "status") status = value;
    if (key == "dur_ms") dur = value;
    if (key == "payload") payload = value;
  }
  while (!payload.empty() && payload.front() == ' ') payload.remove_prefix(1);
  while (!payload.empty() && payload.back() == ' ') payload.remove_suffix(1);
  r.payload = payload;
  r.call = call;
  r.status = reference_decimal(status, 999);
  r.dur_ms = reference_decimal(dur, 86'400'000);
  r.dir = dir == "request"    ? logscan::Direction::kRequest
          : dir == "response" ? logscan::Direction::kResponse
                              : logscan::Direction::kNone;
  r.kind = !call.empty() && r.dir != logscan::Direction::kNone ? logscan::LineKind::kCall
                                                               : logscan::LineKind::kPlain;
  return r;
}

// ---- invariants ----

// The lines of a chunk, each without its terminator, as Scanner::scan() defines them.
std::vector<std::string_view> split_lines(std::string_view chunk) {
  std::vector<std::string_view> lines;
  while (!chunk.empty()) {
    const std::size_t nl = chunk.find('\n');
    std::string_view line = chunk.substr(0, nl);
    if (nl != std::string_view::npos && line.ends_with('\r')) line.remove_suffix(1);
    lines.push_back(line);
    chunk.remove_prefix(nl == std::string_view::npos ? chunk.size() : nl + 1);
  }
  return lines;
}

// The parser and the reference agree on one line: its kind and every field the report
// uses. Returns the reference's reading.
logscan::Record check_line(std::string_view line) {
  const logscan::Record got = logscan::parse_line(line);
  const logscan::Record want = reference_line(line);
  FUZZ_CHECK(got.kind == want.kind);
  if (got.kind != logscan::LineKind::kPlain && got.kind != logscan::LineKind::kCall) return want;
  FUZZ_CHECK(got.level == want.level);
  FUZZ_CHECK(got.timestamp_ms == want.timestamp_ms);
  if (got.kind != logscan::LineKind::kCall) return want;
  FUZZ_CHECK(got.dir == want.dir);
  FUZZ_CHECK(got.call == want.call);
  FUZZ_CHECK(got.req_id == want.req_id);
  FUZZ_CHECK(got.status == want.status);
  FUZZ_CHECK(got.dur_ms == want.dur_ms);
  FUZZ_CHECK(got.payload == want.payload);
  // The views point into the line (the scanner parses payloads in place).
  FUZZ_CHECK(got.payload.empty() ||
             (got.payload.data() >= line.data() &&
              got.payload.data() + got.payload.size() <= line.data() + line.size()));
  return want;
}

// What the reference reading of the lines says the report's line counts must be.
struct Tally {
  std::uint64_t lines = 0, blank = 0, malformed = 0, requests = 0, responses = 0;
  std::array<std::uint64_t, logscan::kLevelCount> levels{};

  void add(const logscan::Record& r) {
    ++lines;
    if (r.kind == logscan::LineKind::kBlank) ++blank;
    if (r.kind == logscan::LineKind::kMalformed) ++malformed;
    if (r.kind != logscan::LineKind::kPlain && r.kind != logscan::LineKind::kCall) return;
    ++levels[static_cast<std::size_t>(r.level)];
    if (r.kind == logscan::LineKind::kCall) {
      ++(r.dir == logscan::Direction::kRequest ? requests : responses);
    }
  }
};

// Each call record's (call, req_id, dir) once: otherwise pairing is outside the contract.
bool pairing_within_contract(const std::vector<std::string_view>& lines) {
  std::set<std::string> seen;
  for (std::string_view line : lines) {
    const logscan::Record r = logscan::parse_line(line);
    if (r.kind != logscan::LineKind::kCall || r.req_id.empty()) continue;
    std::string key = std::to_string(r.call.size()) + ":" + std::string(r.call) +
                      std::string(r.req_id) + (r.dir == logscan::Direction::kRequest ? "<" : ">");
    if (!seen.insert(std::move(key)).second) return false;
  }
  return true;
}

void check_report(const FinalReport& report, const Tally& tally) {
  FUZZ_CHECK(report.lines == tally.lines);
  std::uint64_t classified = report.blank + report.malformed;
  for (std::uint64_t n : report.levels) classified += n;
  FUZZ_CHECK(classified == report.lines);
  FUZZ_CHECK(report.blank == tally.blank && report.malformed == tally.malformed);
  FUZZ_CHECK(report.levels == tally.levels);
  std::uint64_t requests = 0, responses = 0;
  for (std::size_t i = 0; i < report.calls.size(); ++i) {
    const logscan::FinalCall& call = report.calls[i];
    const logscan::CallCounts& c = call.counts;
    FUZZ_CHECK(simdjson::validate_utf8(call.name.data(), call.name.size()));
    FUZZ_CHECK(i == 0 || report.calls[i - 1].name < call.name);  // sorted, no duplicates
    FUZZ_CHECK(c.requests + c.responses > 0);  // a call is listed because a record named it
    std::uint64_t statuses = 0;
    for (std::uint64_t n : c.status) statuses += n;
    FUZZ_CHECK(statuses == c.responses);
    FUZZ_CHECK(c.payload[logscan::kPayloadNone] + c.payload[logscan::kPayloadJson] +
                   c.payload[logscan::kPayloadXml] + c.payload[logscan::kPayloadOther] ==
               c.requests + c.responses);
    FUZZ_CHECK(c.payload[logscan::kMalformedJson] <= c.payload[logscan::kPayloadJson]);
    FUZZ_CHECK(c.payload[logscan::kMalformedXml] <= c.payload[logscan::kPayloadXml]);
    FUZZ_CHECK(c.errors <= c.requests + c.responses);
    FUZZ_CHECK(c.unmatched_requests <= c.requests && c.unmatched_responses <= c.responses);
    const logscan::Latency& l = call.latency;
    FUZZ_CHECK(l.count <= c.responses);
    if (l.count == 0) {
      FUZZ_CHECK(!l.p50 && !l.p90 && !l.p99 && !l.max);
    } else {
      FUZZ_CHECK(l.p50 && l.p90 && l.p99 && l.max);
      FUZZ_CHECK(0 <= *l.p50 && *l.p50 <= *l.p90 && *l.p90 <= *l.p99 && *l.p99 <= *l.max);
    }
    requests += c.requests;
    responses += c.responses;
  }
  FUZZ_CHECK(requests == tally.requests && responses == tally.responses);

  // to_json() parses back, and says what the report holds.
  const std::string text = report.to_json();
  static simdjson::dom::parser parser;  // reused: its buffers are allocated once
  simdjson::dom::element root;
  FUZZ_CHECK(parser.parse(text).get(root) == simdjson::SUCCESS);
  std::uint64_t lines = 0, malformed = 0;
  FUZZ_CHECK(root["lines"].get(lines) == simdjson::SUCCESS && lines == report.lines);
  FUZZ_CHECK(root["malformed"].get(malformed) == simdjson::SUCCESS &&
             malformed == report.malformed);
  simdjson::dom::object calls;
  FUZZ_CHECK(root["calls"].get(calls) == simdjson::SUCCESS);
  std::size_t i = 0;
  for (const auto member : calls) {
    FUZZ_CHECK(i < report.calls.size() && member.key == report.calls[i].name);
    std::uint64_t requests = 0;
    FUZZ_CHECK(member.value["requests"].get(requests) == simdjson::SUCCESS &&
               requests == report.calls[i].counts.requests);
    ++i;
  }
  FUZZ_CHECK(i == report.calls.size());
}

// Outside the pairing contract, only what pairing decides may differ between two cuts.
void check_same_except_pairing(FinalReport a, FinalReport b) {
  for (FinalReport* r : {&a, &b}) {
    for (logscan::FinalCall& call : r->calls) {
      call.latency = {};
      call.counts.unmatched_requests = call.counts.unmatched_responses = 0;
    }
  }
  FUZZ_CHECK(a.to_json() == b.to_json());
}

std::uint64_t fnv1a(std::string_view bytes) {
  std::uint64_t h = 1469598103934665603ull;
  for (char c : bytes) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  return h;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // libFuzzer's buffer is exactly `size` bytes: a read past the chunk is an ASan report.
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::vector<std::string_view> lines = split_lines(input);
  Tally tally;
  for (std::string_view line : lines) tally.add(check_line(line));
  const bool in_contract = pairing_within_contract(lines);

  // One Scanner throughout, as a worker keeps one: its parsers' reused buffers must not
  // carry anything from one chunk to the next.
  static logscan::Scanner scanner;
  const auto scan = [](std::string_view chunk, std::size_t readable_after = 0) {
    PartialReport partial;
    scanner.scan(chunk, partial, readable_after);
    return partial;
  };
  const std::string whole = scan(input).finish().to_json();
  {
    PartialReport partial = scan(input);
    FUZZ_CHECK(partial.lines == lines.size());
    FinalReport report = partial.finish();
    check_report(report, tally);
  }

  // In place, with padding after the chunk the scanner may read but must not interpret:
  // bytes that would change any JSON text they were taken into.
  std::string padded(input);
  padded.append(logscan::kJsonPadding, '"');
  FUZZ_CHECK(
      scan(std::string_view(padded).substr(0, size), logscan::kJsonPadding).finish().to_json() ==
      whole);

  // Through encode()/decode(), as worker processes hand partials to the parent.
  FUZZ_CHECK(PartialReport::decode(scan(input).encode()).finish().to_json() == whole);

  // Cut after a '\n' at a few input-chosen points: two chunks, merged either way round,
  // and scanned one after the other into one partial (a reader's sequence of chunks).
  std::vector<std::size_t> cuts;
  for (std::size_t i = 0; i + 1 < size; ++i) {
    if (input[i] == '\n') cuts.push_back(i + 1);
  }
  const FinalReport reference = scan(input).finish();
  std::uint64_t choice = fnv1a(input);
  for (int round = 0; round < 3 && !cuts.empty(); ++round, choice /= cuts.size() + 1) {
    const std::size_t cut = cuts[choice % cuts.size()];
    const std::string_view head = input.substr(0, cut), tail = input.substr(cut);
    PartialReport forward = scan(head);
    forward.merge(scan(tail));
    PartialReport backward = scan(tail);
    backward.merge(scan(head));
    PartialReport sequential;
    scanner.scan(head, sequential, tail.size());  // the tail is readable after the head
    scanner.scan(tail, sequential);
    for (PartialReport* p : {&forward, &backward, &sequential}) {
      const FinalReport report = p->finish();
      if (in_contract) {
        FUZZ_CHECK(report.to_json() == whole);
      } else {
        check_same_except_pairing(report, reference);
      }
    }
  }
  return 0;
}
