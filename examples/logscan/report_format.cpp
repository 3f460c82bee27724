// FinalReport's two renderings: the contract's JSON and a table for people.
#include <cstdio>
#include <string>

#include "report.h"

namespace logscan {
namespace {

// JSON string escaping as Python's json.dumps(ensure_ascii=False) does it, so that the
// C++ and Python reports are equal byte for byte, not only after normalisation.
void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char escaped[8];
          std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(c));
          out += escaped;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

struct JsonWriter {
  std::string out;
  int depth = 0;
  bool first = true;

  void newline() {
    out += '\n';
    out.append(static_cast<std::size_t>(depth) * 2, ' ');
  }
  void key(std::string_view name) {
    if (!first) out += ',';
    first = false;
    newline();
    append_json_string(out, name);
    out += ": ";
  }
  void open(std::string_view name) {
    key(name);
    open();
  }
  void open() {
    out += '{';
    ++depth;
    first = true;
  }
  void close() {
    --depth;
    if (!first) newline();  // an empty object prints as {}
    out += '}';
    first = false;
  }
  void number(std::string_view name, std::uint64_t value) {
    key(name);
    out += std::to_string(value);
  }
  void optional(std::string_view name, const std::optional<std::int64_t>& value) {
    key(name);
    out += value ? std::to_string(*value) : "null";
  }
};

}  // namespace

std::string FinalReport::to_json() const {
  JsonWriter w;
  w.open();
  w.number("files", files);
  w.number("bytes", bytes);
  w.number("lines", lines);
  w.number("blank", blank);
  w.number("malformed", malformed);
  w.open("levels");
  for (std::size_t i = 0; i < kLevelCount; ++i) w.number(kLevelNames[i], levels[i]);
  w.close();
  w.open("calls");
  for (const FinalCall& call : calls) {
    const CallCounts& c = call.counts;
    w.open(call.name);
    w.number("requests", c.requests);
    w.number("responses", c.responses);
    w.number("errors", c.errors);
    w.open("status");
    for (std::size_t i = 0; i < c.status.size(); ++i) w.number(kStatusNames[i], c.status[i]);
    w.close();
    w.open("payload");
    for (std::size_t i = 0; i < c.payload.size(); ++i) w.number(kPayloadNames[i], c.payload[i]);
    w.close();
    w.open("latency_ms");
    w.number("count", call.latency.count);
    w.optional("p50", call.latency.p50);
    w.optional("p90", call.latency.p90);
    w.optional("p99", call.latency.p99);
    w.optional("max", call.latency.max);
    w.close();
    w.number("unmatched_requests", c.unmatched_requests);
    w.number("unmatched_responses", c.unmatched_responses);
    w.close();
  }
  w.close();
  w.close();
  w.out += '\n';
  return std::move(w.out);
}

std::string FinalReport::to_table() const {
  std::string out = "files " + std::to_string(files) + "  bytes " + std::to_string(bytes) +
                    "  lines " + std::to_string(lines) + "  blank " + std::to_string(blank) +
                    "  malformed " + std::to_string(malformed) + "\nlevels ";
  for (std::size_t i = 0; i < kLevelCount; ++i) {
    out += " " + std::string(kLevelNames[i]) + " " + std::to_string(levels[i]);
  }
  out += "\n\n";
  std::vector<std::vector<std::string>> rows = {
      {"call", "req", "resp", "err",   "2xx", "3xx", "4xx", "5xx", "oth",     "miss",
       "json", "xml", "bad",  "lat_n", "p50", "p90", "p99", "max", "unm_req", "unm_resp"}};
  const auto opt = [](const std::optional<std::int64_t>& v) {
    return v ? std::to_string(*v) : std::string("-");
  };
  for (const FinalCall& call : calls) {
    const CallCounts& c = call.counts;
    std::vector<std::string> row = {call.name, std::to_string(c.requests),
                                    std::to_string(c.responses), std::to_string(c.errors)};
    for (std::uint64_t s : c.status) row.push_back(std::to_string(s));
    row.push_back(std::to_string(c.payload[kPayloadJson]));
    row.push_back(std::to_string(c.payload[kPayloadXml]));
    row.push_back(std::to_string(c.payload[kMalformedJson] + c.payload[kMalformedXml]));
    row.push_back(std::to_string(call.latency.count));
    for (const auto* v :
         {&call.latency.p50, &call.latency.p90, &call.latency.p99, &call.latency.max}) {
      row.push_back(opt(*v));
    }
    row.push_back(std::to_string(c.unmatched_requests));
    row.push_back(std::to_string(c.unmatched_responses));
    rows.push_back(std::move(row));
  }
  // Column widths in code points, so that a name with multi-byte characters still aligns.
  const auto width = [](const std::string& s) {
    std::size_t n = 0;
    for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
    return n;
  };
  std::vector<std::size_t> widths(rows[0].size(), 0);
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], width(row[i]));
  }
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < row.size(); ++i) {
      const std::string pad(widths[i] - width(row[i]), ' ');
      if (i > 0) out += "  ";
      out += i == 0 ? row[i] + pad : pad + row[i];
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    out += '\n';
  }
  return out;
}

}  // namespace logscan
