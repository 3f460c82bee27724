// PartialReport: merging is order-free, pairs across partials, and survives encode/decode;
// the pieces the pipeline relies on beyond what the rule files show.
#include "report.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "scan.h"

namespace {

using logscan::PartialReport;

constexpr std::string_view kLines =
    "2024-03-01T10:00:00.000Z INFO [h] call=a dir=request req_id=1 payload={\"x\":1}\n"
    "2024-03-01T10:00:00.040Z INFO [h] call=a dir=response req_id=1 status=200\n"
    "2024-03-01T10:00:00.000Z INFO [h] call=a dir=request req_id=2\n"
    "2024-03-01T10:00:00.300Z INFO [h] call=a dir=response req_id=2 status=503 dur_ms=7\n"
    "2024-03-01T10:00:01.000Z INFO [h] call=b dir=response req_id=3 status=200\n"
    "2024-03-01T10:00:00.100Z INFO [h] call=b dir=request req_id=3 payload=<error/>\n"
    "2024-03-01T10:00:00.000Z INFO [h] call=b dir=request req_id=4\n"
    "\n"
    "not a record\n";

// The lines of kLines, one partial each.
std::vector<PartialReport> partial_per_line() {
  logscan::Scanner scanner;
  std::vector<PartialReport> parts;
  std::string_view rest = kLines;
  while (!rest.empty()) {
    const std::size_t end = rest.find('\n') + 1;
    parts.emplace_back();
    scanner.scan(rest.substr(0, end), parts.back());
    rest.remove_prefix(end);
  }
  return parts;
}

std::string whole_report() {
  logscan::Scanner scanner;
  PartialReport whole;
  scanner.scan(kLines, whole);
  return whole.finish().to_json();
}

TEST(PartialReport, MergeInAnyOrderEqualsOneScan) {
  const std::string expected = whole_report();
  for (const bool reverse : {false, true}) {
    std::vector<PartialReport> parts = partial_per_line();
    PartialReport total;
    for (std::size_t i = 0; i < parts.size(); ++i) {
      total.merge(std::move(parts[reverse ? parts.size() - 1 - i : i]));
    }
    EXPECT_EQ(total.finish().to_json(), expected) << (reverse ? "reverse order" : "in order");
  }
}

TEST(PartialReport, MergePairsAcrossPartialsAndKeepsTheUnpaired) {
  std::vector<PartialReport> parts = partial_per_line();
  PartialReport total;
  for (auto& part : parts) total.merge(std::move(part));
  EXPECT_EQ(total.waiting(), 1u);  // b's req_id=4 has no response
  const logscan::FinalReport report = total.finish();
  ASSERT_EQ(report.calls.size(), 2u);
  const logscan::FinalCall& a = report.calls[0];
  EXPECT_EQ(a.counts.errors, 1u);  // the 503
  EXPECT_EQ(a.latency.count, 2u);  // 40 from timestamps, 7 from dur_ms
  EXPECT_EQ(a.latency.p50, 7);
  EXPECT_EQ(a.latency.max, 40);
  const logscan::FinalCall& b = report.calls[1];
  EXPECT_EQ(b.counts.errors, 1u);  // the <error/> element
  EXPECT_EQ(b.latency.max, 900);   // response logged before its request
  EXPECT_EQ(b.counts.unmatched_requests, 1u);
}

TEST(PartialReport, EncodeDecodeRoundTrips) {
  std::vector<PartialReport> parts = partial_per_line();
  PartialReport total;
  for (auto& part : parts) {
    total.merge(PartialReport::decode(part.encode()));
  }
  EXPECT_EQ(total.finish().to_json(), whole_report());
}

TEST(PartialReport, MergeEncodedEqualsMergeOfDecoded) {
  for (const bool reverse : {false, true}) {
    std::vector<PartialReport> parts = partial_per_line();
    PartialReport total;
    for (std::size_t i = 0; i < parts.size(); ++i) {
      total.merge_encoded(parts[reverse ? parts.size() - 1 - i : i].encode());
    }
    EXPECT_EQ(total.finish().to_json(), whole_report()) << (reverse ? "reverse order" : "in order");
  }
  PartialReport total;
  EXPECT_THROW(total.merge_encoded("garbage"), std::invalid_argument);
}

// Encoded waiting records in the format of PartialReport::encode(), for records no scan
// produces: two encoded calls of one name, so that keys of both meet in the merged table.
class EncodedPartial {
 public:
  explicit EncodedPartial(std::uint64_t calls) {
    bytes_ = PartialReport{}.encode();
    bytes_.resize(bytes_.size() - 2 * sizeof(std::uint64_t));  // its (zero) call and record counts
    put(calls);
    for (std::uint64_t i = 0; i < calls; ++i) {
      put(std::uint64_t{1});
      bytes_ += 'a';
      put(logscan::CallCounts{});
      put(std::uint64_t{0});  // no latency values
    }
  }
  void start_records(std::uint64_t n) { put(n); }
  void record(std::uint32_t call, std::string_view req_id, std::int64_t ts, bool response) {
    put(std::uint64_t{sizeof call + req_id.size()});
    put(call);
    bytes_ += req_id;
    put(response ? std::int64_t{0} : ts);
    put(response ? ts : std::int64_t{0});
    put(std::uint8_t{response ? std::uint8_t{2} : std::uint8_t{1}});
  }
  const std::string& bytes() const { return bytes_; }

 private:
  template <class T>
  void put(const T& value) {
    bytes_.append(reinterpret_cast<const char*>(&value), sizeof value);
  }
  std::string bytes_;
};

// merge_encoded() prefetches a batch of records before merging them: a record must still
// pair with one just before it in the same batch, with one a batch earlier, and across the
// long-key path that merges alone.
TEST(PartialReport, MergeEncodedPairsWithinAndAcrossBatches) {
  EncodedPartial encoded(2);  // calls 0 and 1 are both "a": one call once merged
  const std::string long_id = "a-req-id-longer-than-a-slot";
  encoded.start_records(26);
  encoded.record(0, "p", 100, false);
  encoded.record(1, "p", 130, true);  // pairs with the record before it: 30
  encoded.record(0, "q", 0, false);
  for (int i = 0; i < 20; ++i) encoded.record(0, "u" + std::to_string(i), 0, false);
  encoded.record(1, "q", 5, true);  // 21 records after its request: 5
  encoded.record(0, long_id, 0, false);
  encoded.record(1, long_id, 2, true);  // 2
  PartialReport total;
  total.merge_encoded(encoded.bytes());
  EXPECT_EQ(total.waiting(), 20u);
  const logscan::FinalReport report = total.finish();
  ASSERT_EQ(report.calls.size(), 1u);
  const logscan::FinalCall& a = report.calls[0];
  EXPECT_EQ(a.latency.count, 3u);
  EXPECT_EQ(a.latency.p50, 5);
  EXPECT_EQ(a.latency.max, 30);
  EXPECT_EQ(a.counts.unmatched_requests, 20u);
  EXPECT_EQ(a.counts.unmatched_responses, 0u);
}

TEST(PartialReport, ClearLeavesANewReport) {
  logscan::Scanner scanner;
  PartialReport reused;
  scanner.scan(kLines, reused);
  reused.files = 2;
  reused.clear();
  EXPECT_EQ(reused.waiting(), 0u);
  EXPECT_EQ(reused.encode(), PartialReport{}.encode());
  scanner.scan(kLines, reused);
  EXPECT_EQ(reused.finish().to_json(), whole_report());
}

TEST(PartialReport, DecodeRejectsForeignBytes) {
  EXPECT_THROW(PartialReport::decode("garbage"), std::invalid_argument);
  PartialReport p;
  p.files = 3;
  std::string bytes = p.encode();
  bytes.pop_back();
  EXPECT_THROW(PartialReport::decode(bytes), std::invalid_argument);
}

TEST(LatencySummary, NearestRankOnDuplicates) {
  const logscan::Latency l = logscan::latency_summary({{5, 3}, {1, 1}, {9, 96}});
  EXPECT_EQ(l.count, 100u);
  EXPECT_EQ(l.p50, 9);  // rank 50: values 1, 5, 5, 5, then 9s
  EXPECT_EQ(logscan::latency_summary({{1, 1}, {2, 1}}).p50, 1);  // rank ceil(1) = 1
  EXPECT_FALSE(logscan::latency_summary({}).p50.has_value());
}

TEST(Utf8WithReplacement, MaximalSubparts) {
  EXPECT_EQ(logscan::utf8_with_replacement("a\xE2\x82z"), "a\xEF\xBF\xBDz");
  EXPECT_EQ(logscan::utf8_with_replacement("\xF0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(logscan::utf8_with_replacement("\xF4\x8F\xBF\xBF"), "\xF4\x8F\xBF\xBF");
  EXPECT_EQ(logscan::utf8_with_replacement("\xF4\x90"), "\xEF\xBF\xBD\xEF\xBF\xBD");
}

}  // namespace
