#include "report.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <stdexcept>
#include <utility>

namespace logscan {

void CallCounts::add(const CallCounts& other) {
  requests += other.requests;
  responses += other.responses;
  errors += other.errors;
  for (std::size_t i = 0; i < status.size(); ++i) status[i] += other.status[i];
  for (std::size_t i = 0; i < payload.size(); ++i) payload[i] += other.payload[i];
  unmatched_requests += other.unmatched_requests;
  unmatched_responses += other.unmatched_responses;
}

Latency latency_summary(const LatencyHistogram& histogram) {
  std::vector<std::pair<std::int64_t, std::uint64_t>> sorted(histogram.begin(), histogram.end());
  std::sort(sorted.begin(), sorted.end());
  Latency out;
  for (const auto& [value, n] : sorted) out.count += n;
  if (out.count == 0) return out;
  const auto at_rank = [&](std::uint64_t p) {
    const std::uint64_t rank = (p * out.count + 99) / 100;  // ceil(p/100 * n), exactly
    std::uint64_t seen = 0;
    for (const auto& [value, n] : sorted) {
      seen += n;
      if (seen >= rank) return value;
    }
    return sorted.back().first;
  };
  out.p50 = at_rank(50);
  out.p90 = at_rank(90);
  out.p99 = at_rank(99);
  out.max = sorted.back().first;
  return out;
}

std::string utf8_with_replacement(std::string_view bytes) {
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  std::string out;
  out.reserve(bytes.size());
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(bytes[i]); };
  std::size_t i = 0;
  while (i < bytes.size()) {
    const unsigned char lead = byte(i);
    if (lead < 0x80) {
      out += static_cast<char>(lead);
      ++i;
      continue;
    }
    // Unicode Table 3-7: the well-formed sequences, by lead byte: how many continuation
    // bytes follow and the range of the first one (the rest are 80..BF).
    std::size_t need = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (lead >= 0xC2 && lead <= 0xDF) {
      need = 1;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      need = 2;
      if (lead == 0xE0) lo = 0xA0;
      if (lead == 0xED) hi = 0x9F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      need = 3;
      if (lead == 0xF0) lo = 0x90;
      if (lead == 0xF4) hi = 0x8F;
    }
    std::size_t len = 1;  // the maximal subpart: as far as the bytes fit the pattern
    while (len <= need && i + len < bytes.size()) {
      const unsigned char c = byte(i + len);
      const unsigned char low = len == 1 ? lo : 0x80, high = len == 1 ? hi : 0xBF;
      if (c < low || c > high) break;
      ++len;
    }
    if (need > 0 && len == need + 1) {
      out.append(bytes.substr(i, len));
    } else {
      out += kReplacement;
    }
    i += len;
  }
  return out;
}

namespace {

// A call name's first and last 8 bytes (zero-padded when shorter) and its size: what the
// linear search of call_id() compares. They are the whole name up to 16 bytes.
PartialReport::CallTag call_tag(std::string_view name) {
  PartialReport::CallTag tag;
  tag.size = name.size();
  if (name.size() >= sizeof tag.head) {
    std::memcpy(&tag.head, name.data(), sizeof tag.head);
    std::memcpy(&tag.tail, name.data() + name.size() - sizeof tag.tail, sizeof tag.tail);
  } else {
    std::memcpy(&tag.head, name.data(), name.size());
  }
  return tag;
}

}  // namespace

PartialReport::CallId PartialReport::call_id(std::string_view call) {
  const CallTag wanted = call_tag(call);
  if (call_tags_.size() <= kLinearCalls) {
    for (CallId id = 0; id < call_tags_.size(); ++id) {
      const CallTag& tag = call_tags_[id];
      if (tag.head == wanted.head && tag.tail == wanted.tail && tag.size == wanted.size &&
          (wanted.size <= 2 * sizeof tag.head || calls_[id].name == call)) {
        return id;
      }
    }
  }
  const auto found = call_ids_.find_or_insert(call, hash_bytes(call));
  if (found.inserted) {
    found.value = static_cast<CallId>(calls_.size());
    calls_.push_back({std::string(call), {}});
    call_tags_.push_back(wanted);
  }
  return found.value;
}

void PartialReport::add_call(const Record& record, const PayloadVerdict& payload) {
  const CallId id = call_id(record.call);
  CallStats& stats = calls_[id].stats;
  CallCounts& c = stats.counts;
  bool error = false;
  const bool response = record.dir == Direction::kResponse;
  if (response) {
    ++c.responses;
    const std::int32_t s = record.status;
    if (s == kMissing) {
      ++c.status[kStatusMissing];
    } else if (s >= 200 && s <= 599) {
      ++c.status[static_cast<std::size_t>(s / 100 - 2)];
    } else {
      ++c.status[kStatusOther];
    }
    error = s >= 500;
  } else {
    ++c.requests;
  }
  switch (payload.kind) {
    case PayloadKind::kNone:
      ++c.payload[kPayloadNone];
      break;
    case PayloadKind::kJson:
      ++c.payload[kPayloadJson];
      c.payload[kMalformedJson] += payload.malformed;
      break;
    case PayloadKind::kXml:
      ++c.payload[kPayloadXml];
      c.payload[kMalformedXml] += payload.malformed;
      break;
    case PayloadKind::kOther:
      ++c.payload[kPayloadOther];
      break;
  }
  c.errors += error || payload.error;

  const bool has_dur = response && record.dur_ms != kMissing;
  if (has_dur) stats.latency.add(record.dur_ms);
  if (record.req_id.empty()) return;  // never pairs
  wait(id, record.req_id,
       {.timestamp_ms = record.timestamp_ms,
        .is_response = response,
        .response_has_latency = has_dur});
}

void PartialReport::wait(CallId call, std::string_view req_id, const Waiting& record) {
  // The key is the call id's bytes, then the req_id: built on the stack when it fits (nearly
  // always), since a std::string costs a capacity check and a call per append.
  constexpr std::size_t kShortKey = 64;
  if (req_id.size() <= kShortKey - sizeof call) {
    char key[kShortKey];
    std::memcpy(key, &call, sizeof call);
    std::memcpy(key + sizeof call, req_id.data(), req_id.size());
    const std::string_view packed(key, sizeof call + req_id.size());
    wait(packed, hash_bytes(packed), record);
    return;
  }
  key_scratch_.assign(reinterpret_cast<const char*>(&call), sizeof call);
  key_scratch_.append(req_id);
  wait(key_scratch_, hash_bytes(key_scratch_), record);
}

void PartialReport::wait(std::string_view key, std::uint64_t hash, const Waiting& record) {
  const auto found = waiting_.find_or_insert(key, hash);
  Waiting& w = found.value;
  // A second request (or response) under one key is outside the contract: the later wins.
  if (found.inserted || w.is_response == record.is_response) {
    w = record;
    return;
  }
  const Waiting partner = w;
  waiting_.erase(found.slot);
  CallId call;
  std::memcpy(&call, key.data(), sizeof call);
  if (record.is_response) {
    pair(call, partner, record);
  } else {
    pair(call, record, partner);
  }
}

void PartialReport::pair(CallId call, const Waiting& request, const Waiting& response) {
  if (response.response_has_latency) return;  // its dur_ms counted already
  const std::int64_t latency = response.timestamp_ms - request.timestamp_ms;
  if (latency < 0) return;  // clocks disagree: not counted
  calls_[call].stats.latency.add(latency);
}

std::vector<PartialReport::CallId> PartialReport::merge_calls(std::vector<Call>&& other) {
  std::vector<CallId> ids;
  ids.reserve(other.size());
  for (Call& call : other) {
    const CallId id = call_id(call.name);
    calls_[id].stats.counts.add(call.stats.counts);
    calls_[id].stats.latency.add(call.stats.latency);
    ids.push_back(id);
  }
  return ids;
}

void PartialReport::merge(PartialReport&& other) {
  files += other.files;
  bytes += other.bytes;
  lines += other.lines;
  blank += other.blank;
  malformed += other.malformed;
  for (std::size_t i = 0; i < kLevelCount; ++i) levels[i] += other.levels[i];
  // Replay the smaller waiting map into the larger: merging stays proportional to what
  // the partials hold. Call ids are per report, so the calls travel with their map.
  if (other.waiting_.size() > waiting_.size()) {
    std::swap(calls_, other.calls_);
    std::swap(call_ids_, other.call_ids_);
    std::swap(call_tags_, other.call_tags_);
    std::swap(waiting_, other.waiting_);
  }
  const std::vector<CallId> ids = merge_calls(std::move(other.calls_));
  other.waiting_.for_each([&](std::string_view key, const Waiting& w) {
    CallId call;
    std::memcpy(&call, key.data(), sizeof call);
    wait(ids[call], key.substr(sizeof call), w);
  });
  other = PartialReport{};
}

void PartialReport::clear() {
  for (std::uint64_t* v : {&files, &bytes, &lines, &blank, &malformed}) *v = 0;
  levels = {};
  calls_.clear();
  call_ids_.clear();
  call_tags_.clear();
  waiting_.clear();
}

FinalReport PartialReport::finish() {
  FinalReport report;
  report.files = files;
  report.bytes = bytes;
  report.lines = lines;
  report.blank = blank;
  report.malformed = malformed;
  report.levels = levels;
  waiting_.for_each([&](std::string_view key, const Waiting& w) {
    CallId call;
    std::memcpy(&call, key.data(), sizeof call);
    CallCounts& c = calls_[call].stats.counts;
    c.unmatched_requests += !w.is_response;
    c.unmatched_responses += w.is_response;
  });
  // Names that differ only in invalid bytes decode alike; they share one entry.
  std::map<std::string, CallStats> by_name;  // UTF-8 byte order is code point order
  for (const Call& call : calls_) {
    CallStats& into = by_name[utf8_with_replacement(call.name)];
    into.counts.add(call.stats.counts);
    into.latency.add(call.stats.latency);
  }
  for (const auto& [name, stats] : by_name) {
    report.calls.push_back({name, stats.counts, latency_summary(stats.latency.histogram())});
  }
  *this = PartialReport{};
  return report;
}

// ---- encode / decode: fixed-width native-endian fields, for processes of one build.

namespace {

template <class T>
void put(std::string& out, const T& value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof value);
}

void put_bytes(std::string& out, std::string_view bytes) {
  put(out, static_cast<std::uint64_t>(bytes.size()));
  out.append(bytes);
}

struct Reader {
  std::string_view in;
  template <class T>
  T get() {
    T value;
    if (in.size() < sizeof value) throw std::invalid_argument("PartialReport::decode: truncated");
    std::memcpy(&value, in.data(), sizeof value);
    in.remove_prefix(sizeof value);
    return value;
  }
  std::string_view bytes() {
    const auto n = get<std::uint64_t>();
    if (in.size() < n) throw std::invalid_argument("PartialReport::decode: truncated");
    const std::string_view out = in.substr(0, n);
    in.remove_prefix(n);
    return out;
  }
};

constexpr std::uint32_t kEncodingVersion = 3;  // 2: waiting keys hold call ids; 3: flags byte
constexpr std::uint8_t kHasRequest = 1;
constexpr std::uint8_t kHasResponse = 2;
constexpr std::uint8_t kResponseHasLatency = 4;

// A waiting record's flags byte, checked: a waiting record is exactly one half of a pair.
std::uint8_t get_waiting_flags(Reader& r) {
  const auto flags = r.get<std::uint8_t>();
  if ((flags & ~(kHasRequest | kHasResponse | kResponseHasLatency)) != 0 ||
      ((flags & kHasRequest) != 0) == ((flags & kHasResponse) != 0)) {
    throw std::invalid_argument("PartialReport::decode: bad waiting record");
  }
  return flags;
}

}  // namespace

PartialReport::Waiting PartialReport::read_waiting(std::string_view& in) {
  Reader r{in};
  const auto request_ts = r.get<std::int64_t>();
  const auto response_ts = r.get<std::int64_t>();
  const std::uint8_t flags = get_waiting_flags(r);
  in = r.in;
  const bool is_response = (flags & kHasResponse) != 0;
  return {.timestamp_ms = is_response ? response_ts : request_ts,
          .is_response = is_response,
          .response_has_latency = (flags & kResponseHasLatency) != 0};
}

std::string PartialReport::encode() const {
  std::string out;
  // Roughly the final size (a call's latency values and the waiting keys vary), so that the
  // string seldom grows by copying itself.
  constexpr std::size_t kTypicalKey = 24;
  out.reserve(256 + calls_.size() * (sizeof(CallCounts) + 64 * 16) +
              waiting_.size() * (sizeof(std::uint64_t) + kTypicalKey + 17));
  put(out, kEncodingVersion);
  for (std::uint64_t v : {files, bytes, lines, blank, malformed}) put(out, v);
  put(out, levels);
  put(out, static_cast<std::uint64_t>(calls_.size()));
  for (const Call& call : calls_) {
    put_bytes(out, call.name);
    put(out, call.stats.counts);
    put(out, static_cast<std::uint64_t>(call.stats.latency.distinct()));
    call.stats.latency.for_each([&](std::int64_t value, std::uint64_t n) {
      put(out, value);
      put(out, n);
    });
  }
  // Waiting keys hold call ids, which are indices into the calls just written.
  put(out, static_cast<std::uint64_t>(waiting_.size()));
  // Field by field, not the struct: no padding bytes, and flags a reader can check.
  waiting_.for_each([&](std::string_view key, const Waiting& w) {
    put_bytes(out, key);
    put(out, w.is_response ? std::int64_t{0} : w.timestamp_ms);  // the request's
    put(out, w.is_response ? w.timestamp_ms : std::int64_t{0});  // the response's
    put(out, static_cast<std::uint8_t>((w.is_response ? kHasResponse : kHasRequest) |
                                       (w.response_has_latency ? kResponseHasLatency : 0)));
  });
  return out;
}

PartialReport PartialReport::decode(std::string_view bytes) {
  Reader r{bytes};
  if (r.get<std::uint32_t>() != kEncodingVersion) {
    throw std::invalid_argument("PartialReport::decode: not a PartialReport of this version");
  }
  PartialReport p;
  for (std::uint64_t* v : {&p.files, &p.bytes, &p.lines, &p.blank, &p.malformed}) {
    *v = r.get<std::uint64_t>();
  }
  p.levels = r.get<decltype(p.levels)>();
  for (auto n = r.get<std::uint64_t>(); n > 0; --n) {
    const std::string_view name = r.bytes();
    const auto found = p.call_ids_.find_or_insert(name, hash_bytes(name));
    if (!found.inserted) throw std::invalid_argument("PartialReport::decode: repeated call");
    found.value = static_cast<CallId>(p.calls_.size());
    p.calls_.push_back({std::string(name), {}});
    p.call_tags_.push_back(call_tag(name));
    CallStats& stats = p.calls_.back().stats;
    stats.counts = r.get<CallCounts>();
    for (auto m = r.get<std::uint64_t>(); m > 0; --m) {
      const auto value = r.get<std::int64_t>();
      stats.latency.add(value, r.get<std::uint64_t>());
    }
  }
  const auto waiting = r.get<std::uint64_t>();
  // Each waiting record takes at least its key's length field: a count beyond what the
  // bytes can hold is not trusted with a reservation.
  p.waiting_.reserve(std::min<std::uint64_t>(waiting, r.in.size() / sizeof(std::uint64_t)));
  for (auto n = waiting; n > 0; --n) {
    const std::string_view key = r.bytes();
    CallId call;
    if (key.size() < sizeof call) throw std::invalid_argument("PartialReport::decode: bad key");
    std::memcpy(&call, key.data(), sizeof call);
    if (call >= p.calls_.size()) throw std::invalid_argument("PartialReport::decode: bad call id");
    const Waiting w = read_waiting(r.in);
    const auto found = p.waiting_.find_or_insert(key, hash_bytes(key));
    if (!found.inserted) throw std::invalid_argument("PartialReport::decode: repeated key");
    found.value = w;
  }
  if (!r.in.empty()) throw std::invalid_argument("PartialReport::decode: trailing bytes");
  return p;
}

void PartialReport::merge_encoded(std::string_view encoded) {
  Reader r{encoded};
  if (r.get<std::uint32_t>() != kEncodingVersion) {
    throw std::invalid_argument("PartialReport::decode: not a PartialReport of this version");
  }
  for (std::uint64_t* v : {&files, &bytes, &lines, &blank, &malformed}) {
    *v += r.get<std::uint64_t>();
  }
  const auto other_levels = r.get<decltype(levels)>();
  for (std::size_t i = 0; i < kLevelCount; ++i) levels[i] += other_levels[i];
  std::vector<CallId> ids;  // the encoded report's call ids -> this report's
  for (auto n = r.get<std::uint64_t>(); n > 0; --n) {
    const CallId id = call_id(r.bytes());
    ids.push_back(id);
    CallStats& stats = calls_[id].stats;
    stats.counts.add(r.get<CallCounts>());
    for (auto m = r.get<std::uint64_t>(); m > 0; --m) {
      const auto value = r.get<std::int64_t>();
      stats.latency.add(value, r.get<std::uint64_t>());
    }
  }
  // Most of the merged table's lookups miss the cache (its records wait for partners in
  // other partials), so records go in batches: hashed, their home slots prefetched, then
  // merged in order, as one by one (a record still pairs with an earlier one of its batch).
  struct Pending {
    std::uint64_t hash;
    Waiting record;
    std::uint8_t key_size;
    char key[ShortKey::kMaxBytes];
  };
  constexpr std::size_t kBatch = 16;  // measured: 8 to 32 alike
  std::array<Pending, kBatch> batch;
  std::size_t pending = 0;
  const auto flush = [&] {
    for (std::size_t i = 0; i < pending; ++i) {
      wait(std::string_view(batch[i].key, batch[i].key_size), batch[i].hash, batch[i].record);
    }
    pending = 0;
  };
  for (auto n = r.get<std::uint64_t>(); n > 0; --n) {
    const std::string_view key = r.bytes();
    CallId call;
    if (key.size() < sizeof call) throw std::invalid_argument("PartialReport::decode: bad key");
    std::memcpy(&call, key.data(), sizeof call);
    if (call >= ids.size()) throw std::invalid_argument("PartialReport::decode: bad call id");
    const Waiting record = read_waiting(r.in);
    if (key.size() > ShortKey::kMaxBytes) {  // rare: merged alone, after the batch
      flush();
      wait(ids[call], key.substr(sizeof call), record);
      continue;
    }
    Pending& next = batch[pending++];
    next.record = record;
    next.key_size = static_cast<std::uint8_t>(key.size());
    std::memcpy(next.key, &ids[call], sizeof call);  // this report's id for the call
    std::memcpy(next.key + sizeof call, key.data() + sizeof call, key.size() - sizeof call);
    next.hash = hash_bytes(std::string_view(next.key, next.key_size));
    waiting_.prefetch(next.hash);
    if (pending == kBatch) flush();
  }
  flush();
  if (!r.in.empty()) throw std::invalid_argument("PartialReport::decode: trailing bytes");
}

}  // namespace logscan
