// The logscan report (shared/LOGFORMAT.md, "The report"), built from mergeable parts.
//
// A PartialReport is what one scan of some lines produces: counts, an exact latency
// histogram (value -> count) per call, and the records with a req_id still waiting for their
// partner. Partials merge in any order, across chunks, workers and files: merge() pairs the
// waiting records of both sides, so the final report does not depend on how the input was
// cut. finish() turns the merged whole into a FinalReport: unmatched records counted, calls
// keyed by their UTF-8-decoded names, percentiles by the nearest-rank method.
// A PartialReport is a plain value: one thread at a time; encode()/decode() carry it
// between processes. Methods throw only std::bad_alloc, and decode() std::invalid_argument.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "flat_string_map.h"
#include "latency_counts.h"
#include "line_parser.h"
#include "payload_check.h"

namespace logscan {

enum StatusClass : std::uint8_t { k2xx, k3xx, k4xx, k5xx, kStatusOther, kStatusMissing };
inline constexpr std::array<std::string_view, 6> kStatusNames = {"2xx", "3xx",   "4xx",
                                                                 "5xx", "other", "missing"};
enum PayloadCount : std::uint8_t {
  kPayloadNone,
  kPayloadJson,
  kPayloadXml,
  kPayloadOther,
  kMalformedJson,
  kMalformedXml,
};
inline constexpr std::array<std::string_view, 6> kPayloadNames = {
    "none", "json", "xml", "other", "malformed_json", "malformed_xml"};

struct CallCounts {
  std::uint64_t requests = 0;
  std::uint64_t responses = 0;
  std::uint64_t errors = 0;
  std::array<std::uint64_t, 6> status{};   // indexed by StatusClass
  std::array<std::uint64_t, 6> payload{};  // indexed by PayloadCount
  std::uint64_t unmatched_requests = 0;    // set by finish()
  std::uint64_t unmatched_responses = 0;   // set by finish()

  void add(const CallCounts& other);
};

struct CallStats {
  CallCounts counts;
  LatencyCounts latency;
};

struct Latency {
  std::uint64_t count = 0;
  std::optional<std::int64_t> p50, p90, p99, max;  // nullopt when count is 0
};

struct FinalCall {
  std::string name;  // valid UTF-8: invalid sequences replaced by U+FFFD
  CallCounts counts;
  Latency latency;
};

struct FinalReport {
  std::uint64_t files = 0, bytes = 0, lines = 0, blank = 0, malformed = 0;
  std::array<std::uint64_t, kLevelCount> levels{};
  std::vector<FinalCall> calls;  // sorted by name (code point order)

  std::string to_json() const;   // the contract's shape, keys in its order, indent 2
  std::string to_table() const;  // for people
};

// Nearest rank: the value at rank ceil(p/100 * n), 1-based, over the sorted values.
Latency latency_summary(const LatencyHistogram& histogram);

// Bytes decoded as UTF-8, each maximal invalid subpart replaced by U+FFFD.
std::string utf8_with_replacement(std::string_view bytes);

class PartialReport {
 public:
  // Counters the reader adds to (files, bytes) and scan() adds to (the rest).
  std::uint64_t files = 0, bytes = 0, lines = 0, blank = 0, malformed = 0;
  std::array<std::uint64_t, kLevelCount> levels{};

  // A call record (kind == kCall) and its payload's verdict.
  void add_call(const Record& record, const PayloadVerdict& payload);

  // Adds `other` to this report, pairing waiting records across the two.
  void merge(PartialReport&& other);

  // The final report; this partial is left empty.
  FinalReport finish();

  std::size_t waiting() const { return waiting_.size(); }

  // Empties this report as if new, keeping its tables' memory: a worker that scans range
  // after range into one report then grows its waiting table once, not once per range.
  void clear();

  // A call name's first and last 8 bytes and its size, compared by call_id().
  struct CallTag {
    std::uint64_t head = 0;  // the name's first 8 bytes, zero-padded
    std::uint64_t tail = 0;  // its last 8 bytes, or 0 when shorter than 8
    std::size_t size = 0;
  };

  // A byte string for another process, and back; decode throws std::invalid_argument
  // for bytes encode() did not produce.
  std::string encode() const;
  static PartialReport decode(std::string_view bytes);

  // merge(decode(encoded)) without building the decoded report's maps, which the merge would
  // only walk again: what the pipeline does with every chunk's partial. Throws
  // std::invalid_argument for bytes encode() did not produce (a repeated call or key is not
  // detected, unlike decode()); this report is then partly merged.
  void merge_encoded(std::string_view encoded);

 private:
  // A record with a req_id whose partner has not been seen: the key is the call's id (4
  // bytes, an index into calls_) and the req_id; both halves of a pair meet under one key,
  // and are then removed, so a waiting entry is always one half.
  struct Waiting {
    std::int64_t timestamp_ms = 0;
    bool is_response = false;
    bool response_has_latency = false;  // from its dur_ms: timestamps not needed
  };
  struct Call {
    std::string name;  // the raw bytes of the call= value
    CallStats stats;
  };
  using CallId = std::uint32_t;

  // The id of `call`, added with zero counts if new. While there are at most kLinearCalls
  // calls (the usual case), a linear search over call_tags_ finds it without hashing the
  // name, and call_ids_ takes over beyond.
  CallId call_id(std::string_view call);
  void wait(CallId call, std::string_view req_id, const Waiting& record);
  // key: call id bytes, req_id; hash: its hash_bytes()
  void wait(std::string_view key, std::uint64_t hash, const Waiting& record);
  void pair(CallId call, const Waiting& request, const Waiting& response);
  // Reads one encoded waiting record (after its key) from the front of `in`.
  static Waiting read_waiting(std::string_view& in);
  // Moves `other`'s calls in; the result maps other's ids to this report's.
  std::vector<CallId> merge_calls(std::vector<Call>&& other);

  std::vector<Call> calls_;
  static constexpr std::size_t kLinearCalls = 16;
  FlatStringMap<CallId> call_ids_;
  std::vector<CallTag> call_tags_;  // calls_[id]'s tag at [id]
  FlatStringMap<Waiting> waiting_;
  std::string key_scratch_;
};

}  // namespace logscan
