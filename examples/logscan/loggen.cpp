// loggen: writes a realistic corpus of application logs to shared/LOGFORMAT.md.
//
//   loggen --bytes N --seed S --files K [--big-every BYTES] OUTDIR
//
// Writes OUTDIR/app-000.log .. app-(K-1).log, about N bytes together, the same bytes for the
// same arguments. Calls are logged as requests and responses: most responses follow their
// request within a few lines, some thousands of lines later, some in a later file, some
// never (and some responses have no request). Payloads are JSON and XML, well formed and
// not, with errors, "error": null, SOAP faults, namespaces (declared or not), CDATA,
// entities and escapes; fields go missing or invalid; lines are malformed, blank, CRLF;
// plain values carry invalid UTF-8; a multi-MB payload appears every --big-every bytes
// (default 64 MiB). Every (call, req_id) has at most one request and one response, as
// the contract requires of its input.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <queue>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace std::string_view_literals;

// SplitMix64: small, fast and fully determined by the seed.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  std::uint64_t below(std::uint64_t n) { return next() % n; }
  bool percent(unsigned p) { return below(1000) < p * 10; }
  bool permille(unsigned p) { return below(1000) < p; }
  template <class T, std::size_t N>
  const T& pick(const std::array<T, N>& items) {
    return items[below(N)];
  }

 private:
  std::uint64_t state_;
};

constexpr std::array<std::string_view, 12> kCalls = {
    "payment.authorize", "payment.capture", "user.lookup",       "inventory.reserve",
    "shipping.quote",    "fraud.score",     "email.send",        "crm.GetCustomer",
    "ledger.post",       "search.query",    "caf\xC3\xA9.order", "legacy.\xC3\x28sync"};
constexpr std::array<std::string_view, 6> kHosts = {"[api-1]",    "[api-2]",   "[worker-7]",
                                                    "[db-proxy]", "[h\xFFst]", "[edge\t3]"};

constexpr std::array<std::string_view, 10> kJsonRequests = {
    R"({"amount":123.45,"currency":"EUR","card":{"last4":"4242","exp":"12/27"}})",
    R"({"user":"ann","tags":["a","b"],"limit":50,"offset":0,"deep":{"x":[1,[2,[3]]]}})",
    R"({"note":"caf\u00e9 \"quoted\" \\ C:\\path\/x \t\n","emoji":"\ud83d\ude00"})",
    R"({"big":18446744073709551615,"neg":-9223372036854775808,"tiny":1.5e-300,"z":-0})",
    R"([{"sku":"A-1","qty":2},{"sku":"B-7","qty":1}])",
    R"({"query":"日本語 テキスト","page":1,"filters":{}})",
    R"(  {"padded": true}  )",
    R"({"to":"bob@example.com","subject":"Hi","body":"line1\nline2"})",
    R"({"errors":[],"error_count":0})",
    R"({"nested":{"error":"inner only"}})"};
constexpr std::array<std::string_view, 8> kJsonOk = {
    R"({"ok":true,"id":"7f3a","error":null})",
    R"({"ok":true,"score":0.93,"flags":[]})",
    R"({"status":"reserved","until":"2024-03-01T00:00:00Z"})",
    R"([{"error":"in an array: not an error"}])",
    R"({"error":null,"error":null})",
    R"({"result":{"items":[1,2,3],"total":3},"error":null})",
    R"({"e":1E+2,"f":-0.5e-3,"g":1e308})",
    R"({"message":"\u00bfOK?","error" : null })"};
constexpr std::array<std::string_view, 6> kJsonErrors = {
    R"({"error":{"code":"card_declined","message":"Insufficient funds"}})",
    R"({"error":"timeout"})",
    R"({"error":null,"error":"second one counts"})",
    R"({"\u0065rror":1})",
    R"({"ok":false,"error":false})",
    R"({"error":[]})"};
constexpr std::array<std::string_view, 14> kJsonMalformed = {R"({"a":1,})",
                                                             R"({"a":NaN})",
                                                             R"({"a":Infinity})",
                                                             R"({"a":1e400})",
                                                             R"({"a":18446744073709551616})",
                                                             R"({"a":-9223372036854775809})",
                                                             R"({"a":"\ud800"})",
                                                             R"({"a":"\udc00\ud800"})",
                                                             "{\"a\":\"caf\xE9\"}",
                                                             R"({"a":[1,2)",
                                                             R"({"a":1}{"b":2})",
                                                             R"({'a':1})",
                                                             R"({"error":"x",})",
                                                             "{\"a\":\"tab\there\"}"};
constexpr std::array<std::string_view, 8> kXmlOk = {
    R"(<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><m:GetCustomerResponse xmlns:m="urn:crm"><m:Name>Ann &amp; Bob</m:Name><m:Note><![CDATA[<b>raw</b> & stuff]]></m:Note></m:GetCustomerResponse></soap:Body></soap:Envelope>)",
    R"(<ns1:order id="7" xml:lang='en'><ns1:item qty='2'>X &#x263A; &#233; &lt;&gt;&quot;&apos;</ns1:item></ns1:order>)",
    R"(<response><!-- cached --><status>ok</status><errors/><error_count>0</error_count></response>)",
    R"(<?xml version="1.0"?>  <!-- lead --> <a><b x="1>2"/><?app hint?></a> <!-- trail -->)",
    R"(<quote xmlns="urn:ship"><price currency="EUR">12.50</price><eta>2</eta></quote>)",
    R"(<r><t>]] ></t><c><![CDATA[]]]]><![CDATA[>]]></c></r>)",
    "<msg>multi\tline\rtext</msg>",
    R"(<e:errors xmlns:e="urn:e"><e:count>0</e:count></e:errors>)"};
constexpr std::array<std::string_view, 5> kXmlErrors = {
    R"(<?xml version="1.0"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault><faultcode>soap:Server</faultcode><faultstring>Boom &#233;</faultstring></soap:Fault></soap:Body></soap:Envelope>)",
    R"(<error code="42">bad request</error>)",
    R"(<result><x:error xmlns:x="urn:x">late</x:error></result>)",
    R"(<S:Envelope><S:Body><S:Fault><S:Reason>undeclared prefix</S:Reason></S:Fault></S:Body></S:Envelope>)",
    R"(<a><b><c><Fault/></c></b></a>)"};
constexpr std::array<std::string_view, 12> kXmlMalformed = {
    R"(<a><b></a>)",
    R"(<a x=1/>)",
    R"(<a>&nbsp;</a>)",
    R"(<!DOCTYPE a><a/>)",
    R"(<?pi outside?><a/>)",
    R"(<a/><b/>)",
    R"(<a>AT&T</a>)",
    R"(<a>&#0;</a>)",
    R"(<error>unclosed)",
    R"(<a x="1"y="2"/>)",
    R"(<?xml version="1.0"?><soap:Fault>)",
    R"(<a><![CDATA[x]]></a><!-- ok --><?late?>)"};
constexpr std::array<std::string_view, 6> kOtherPayloads = {"OK",
                                                            "plain text with  spaces  ",
                                                            "\xFF\xFE binary \x01\x02",
                                                            "42",
                                                            "\t{\"tab\":1}",
                                                            "\"just a string\""};
constexpr std::array<std::string_view, 16> kMalformedLines = {
    "2023-02-29T10:00:00.000Z INFO [api-1] msg=not_a_leap_year",
    "2024-13-01T10:00:00.000Z INFO [api-1] msg=month_13",
    "2024-04-31T10:00:00.000Z INFO [api-1] msg=april_31",
    "2024-01-01T24:00:00.000Z INFO [api-1] msg=hour_24",
    "2024-01-01T10:00:60.000Z INFO [api-1] msg=leap_second",
    "2024-01-01 10:00:00.000Z INFO [api-1] msg=space_in_timestamp",
    "2024-01-01T10:00:00.00Z INFO [api-1] msg=short_millis",
    "2024-01-01T10:00:00.000Z Info [api-1] msg=lowercase_level",
    "2024-01-01T10:00:00.000Z INFO api-1 msg=no_brackets",
    "2024-01-01T10:00:00.000Z INFO [] msg=empty_host",
    "2024-01-01T10:00:00.000Z INFO [a]b] msg=bracket_in_host",
    "  2024-01-01T10:00:00.000Z INFO [api-1] msg=leading_spaces",
    "2024-01-01T10:00:00.000Z INFO [api-1] Msg=upper_key",
    "2024-01-01T10:00:00.000Z INFO [api-1] call=x dir=request orphan_token",
    "2024-01-01T10:00:00.000Z\tINFO [api-1] msg=tab_separator",
    "\x00\x01\x02 binary garbage \xFF"sv};
constexpr std::array<std::string_view, 8> kMessages = {"msg=started",
                                                       "msg=cache_miss key=user:42",
                                                       "msg=caf\xE9_latin1 user=ren\xE9",
                                                       "msg=retrying attempt=2 backoff_ms=150",
                                                       "msg=gc pause_ms=12 heap=3.2GB",
                                                       "msg= empty_after=",
                                                       "msg=done req_id=",
                                                       "user=ann action=login ok=true"};

struct Pending {
  std::uint64_t due_line;
  std::uint64_t req_id;
  std::int64_t request_ts;
  std::uint32_t call;
  bool operator>(const Pending& o) const { return due_line > o.due_line; }
};

class Generator {
 public:
  Generator(std::uint64_t seed, std::uint64_t big_every)
      : rng_(seed), big_every_(big_every), next_big_(big_every / 2) {
    // 2024-02-28T23:00:00.000Z: the corpus crosses a leap day.
    clock_ms_ = 1709161200000LL + static_cast<std::int64_t>(rng_.below(3'600'000));
  }

  // Writes one file of about `target` bytes: lines go to `out`, which `flush` empties
  // whenever it holds more than kFlushBytes.
  void fill_file(std::string& out, std::uint64_t target, bool last_file,
                 const std::function<void(std::string&)>& flush) {
    static constexpr std::size_t kFlushBytes = std::size_t{8} << 20;
    crlf_file_ = rng_.percent(25);
    std::uint64_t flushed = 0;
    while (flushed + out.size() < target) {
      if (out.size() >= kFlushBytes) {
        flushed += out.size();
        written_ += out.size();
        flush(out);
        out.clear();
      }
      ++line_;
      if (!pending_.empty() && pending_.top().due_line <= line_) {
        const Pending p = pending_.top();
        pending_.pop();
        response(out, p);
      } else {
        next_line(out);
      }
      if (written_ + out.size() >= next_big_) {
        big_payload(out);
        next_big_ += big_every_;
      }
    }
    if (last_file) {  // most waiting responses are written; the rest stay unmatched
      while (!pending_.empty()) {
        const Pending p = pending_.top();
        pending_.pop();
        if (!rng_.percent(20)) response(out, p);
      }
    }
    // Half the files end without a final newline, some of them on a '\r'.
    if (!out.empty() && rng_.percent(50)) {
      out.pop_back();
      if (!out.empty() && out.back() == '\r' && rng_.percent(50)) out.pop_back();
    }
    written_ += out.size();
    flush(out);
    out.clear();
  }

 private:
  void next_line(std::string& out) {
    const std::uint64_t roll = rng_.below(1000);
    if (roll < 560) {
      request(out);
    } else if (roll < 760) {
      plain(out);
    } else if (roll < 780) {
      end_line(out, false);  // blank
    } else if (roll < 810) {
      out += rng_.pick(kMalformedLines);
      end_line(out);
    } else if (roll < 830) {
      orphan_response(out);
    } else if (roll < 845) {
      request_without_id(out);
    } else {
      plain(out);
    }
  }

  void end_line(std::string& out, bool allow_trailing_spaces = true) {
    if (allow_trailing_spaces && rng_.permille(20)) out += "   ";
    out += (crlf_file_ || rng_.percent(2)) ? "\r\n" : "\n";
  }

  void timestamp(std::string& out, std::int64_t ms) {
    const std::int64_t second = ms / 1000;
    if (second != cached_second_) {
      cached_second_ = second;
      std::int64_t z = second / 86400 + 719468;  // civil_from_days (H. Hinnant)
      const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
      const auto doe = static_cast<unsigned>(z - era * 146097);
      const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
      const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
      const unsigned mp = (5 * doy + 2) / 153;
      const unsigned d = doy - (153 * mp + 2) / 5 + 1;
      const unsigned m = mp < 10 ? mp + 3 : mp - 9;
      const auto y = static_cast<unsigned>(static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2));
      const auto sod = static_cast<unsigned>(second % 86400);
      std::snprintf(cached_prefix_, sizeof cached_prefix_, "%04u-%02u-%02uT%02u:%02u:%02u.", y, m,
                    d, sod / 3600, sod / 60 % 60, sod % 60);
    }
    out.append(cached_prefix_, 20);
    const auto milli = static_cast<unsigned>(ms % 1000);
    out += static_cast<char>('0' + milli / 100);
    out += static_cast<char>('0' + milli / 10 % 10);
    out += static_cast<char>('0' + milli % 10);
    out += 'Z';
  }

  void number(std::string& out, std::uint64_t n) {
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof buf, n);
    out.append(buf, static_cast<std::size_t>(r.ptr - buf));
  }

  void req_id(std::string& out, std::uint64_t id) {
    static constexpr char kHex[] = "0123456789abcdef";
    out += "req_id=";
    for (int shift = 44; shift >= 0; shift -= 4) out += kHex[(id >> shift) & 0xF];
  }

  void head(std::string& out, std::int64_t ts, std::string_view level) {
    timestamp(out, ts);
    out += rng_.permille(30) ? "  " : " ";
    out += level;
    out += ' ';
    out += rng_.percent(2) ? rng_.pick(kHosts) : kHosts[rng_.below(4)];
  }

  std::int64_t tick() { return clock_ms_ += static_cast<std::int64_t>(rng_.below(7)); }

  void plain(std::string& out) {
    static constexpr std::array<std::string_view, 8> kLevels = {"INFO",  "INFO", "INFO",  "DEBUG",
                                                                "TRACE", "WARN", "ERROR", "FATAL"};
    head(out, tick(), rng_.below(100) < 97 ? kLevels[rng_.below(6)] : rng_.pick(kLevels));
    out += ' ';
    out += rng_.pick(kMessages);
    if (rng_.percent(3)) out += " payload=free text in a plain line";
    end_line(out);
  }

  std::uint32_t pick_call() {
    // The last two names (non-ASCII, invalid UTF-8) are rarer.
    return static_cast<std::uint32_t>(rng_.percent(3) ? rng_.below(kCalls.size())
                                                      : rng_.below(kCalls.size() - 2));
  }

  void call_fields(std::string& out, std::uint32_t call, std::string_view dir) {
    if (rng_.permille(5)) out += " call=other.name";  // repeated key: the last counts
    out += " call=";
    out += kCalls[call];
    out += " dir=";
    out += dir;
  }

  void request_payload(std::string& out, bool xml_call) {
    const std::uint64_t roll = rng_.below(100);
    if (roll < 8) return;  // none
    out += " payload=";
    if (roll < 11) return;  // empty: none
    if (roll < 13) {
      out += "    ";  // all spaces: none
      return;
    }
    if (roll < 16) {
      out += rng_.pick(kOtherPayloads);
    } else if (roll < 20) {
      out += xml_call ? rng_.pick(kXmlMalformed) : rng_.pick(kJsonMalformed);
    } else {
      out += xml_call ? rng_.pick(kXmlOk) : rng_.pick(kJsonRequests);
    }
  }

  void request(std::string& out) {
    const std::uint32_t call = pick_call();
    const std::uint64_t id = next_id_++ * 0x9E3779B1ULL + 1;  // unique, not sequential-looking
    const std::int64_t ts = tick();
    head(out, ts, rng_.percent(5) ? "DEBUG" : "INFO");
    call_fields(out, call, "request");
    out += ' ';
    if (rng_.permille(5)) out += "req_id=decoy ";  // repeated key: the last counts
    req_id(out, id);
    request_payload(out, call == 7 || rng_.percent(10));
    end_line(out);

    if (rng_.permille(30)) return;  // never answered
    const std::uint64_t roll = rng_.below(1000);
    std::uint64_t distance = 1 + rng_.below(roll < 900 ? 8 : roll < 990 ? 2000 : 400000);
    pending_.push({line_ + distance, id, ts, call});
  }

  void response(std::string& out, const Pending& p) {
    // Latency: mostly tens of ms, a tail into seconds; now and then the clocks disagree.
    std::int64_t latency = static_cast<std::int64_t>(rng_.below(40) + rng_.below(40));
    if (rng_.percent(10)) latency += static_cast<std::int64_t>(rng_.below(3000));
    if (rng_.percent(1)) latency = -static_cast<std::int64_t>(rng_.below(500)) - 1;
    std::int64_t ts = p.request_ts + latency;
    if (ts < clock_ms_ - 5000 && !rng_.percent(30)) ts = clock_ms_;  // far away: later
    const std::uint64_t status_roll = rng_.below(1000);
    static constexpr std::array<std::string_view, 16> kStatuses = {
        "status=201",  "status=204", "status=0204", "status=302", "status=400", "status=404",
        "status=409",  "status=500", "status=503",  "status=0",   "status=99",  "status=999",
        "status=1000", "status=abc", "status=",     "status=-1"};
    std::string_view status = status_roll < 700   ? "status=200"
                              : status_roll < 980 ? kStatuses[rng_.below(9)]
                                                  : kStatuses[9 + rng_.below(7)];
    const bool server_error = status == "status=500" || status == "status=503";
    head(out, ts, server_error ? "ERROR" : rng_.percent(3) ? "WARN" : "INFO");
    call_fields(out, p.call, "response");
    out += ' ';
    req_id(out, p.req_id);
    if (!rng_.permille(15)) {
      if (rng_.permille(5)) out += " status=nope";
      out += ' ';
      out += status;
    }
    const std::uint64_t dur_roll = rng_.below(100);
    if (dur_roll < 85 && latency >= 0) {
      out += " dur_ms=";
      if (rng_.percent(2)) out += "000";
      number(out, static_cast<std::uint64_t>(latency));
    } else if (dur_roll < 90) {
      out += rng_.percent(50) ? " dur_ms=12ms" : " dur_ms=86400001";
    }
    if (rng_.percent(20)) out += " attempt=1";
    response_payload(out, p.call == 7 || rng_.percent(10), server_error);
    end_line(out);
  }

  void response_payload(std::string& out, bool xml_call, bool server_error) {
    const std::uint64_t roll = rng_.below(100);
    if (roll < 10) return;
    out += " payload=";
    if (roll < 12) out += "  ";
    if (roll < 15) {
      out += rng_.pick(kOtherPayloads);
    } else if (roll < 19) {
      out += xml_call ? rng_.pick(kXmlMalformed) : rng_.pick(kJsonMalformed);
    } else if (roll < 27 || (server_error && roll < 70)) {
      out += xml_call ? rng_.pick(kXmlErrors) : rng_.pick(kJsonErrors);
    } else {
      out += xml_call ? rng_.pick(kXmlOk) : rng_.pick(kJsonOk);
    }
  }

  void orphan_response(std::string& out) {
    const std::uint64_t id = next_id_++ * 0x9E3779B1ULL + 1;
    response(out, {line_, id, clock_ms_, pick_call()});
  }

  void request_without_id(std::string& out) {
    const std::uint32_t call = pick_call();
    head(out, tick(), "INFO");
    call_fields(out, call, rng_.percent(50) ? "request" : "response");
    if (rng_.percent(50)) out += " req_id=";  // empty: counts as none
    out += rng_.percent(30) ? " dur_ms=15" : " status=200";
    request_payload(out, rng_.percent(30));
    end_line(out);
  }

  // A multi-MB payload, or nesting at and past the contract's depth limit.
  void big_payload(std::string& out) {
    const std::uint32_t call = pick_call();
    head(out, tick(), "INFO");
    call_fields(out, call, "request");
    out += ' ';
    req_id(out, next_id_++ * 0x9E3779B1ULL + 1);
    out += " payload=";
    switch (rng_.below(4)) {
      case 0: {  // a large JSON array of records
        out += '[';
        const std::uint64_t items = 20000 + rng_.below(40000);
        for (std::uint64_t i = 0; i < items; ++i) {
          if (i) out += ',';
          out += R"({"i":)";
          number(out, i);
          out += R"(,"name":"item \u00e9","v":[1.5,2,null,true]})";
        }
        out += ']';
        break;
      }
      case 1: {  // a large SOAP-ish document
        out += R"(<?xml version="1.0"?><soap:Envelope><soap:Body><list>)";
        const std::uint64_t items = 20000 + rng_.below(40000);
        for (std::uint64_t i = 0; i < items; ++i) {
          out += R"(<item n=")";
          number(out, i);
          out += R"(">a &amp; b <![CDATA[<raw>]]></item>)";
        }
        out += "</list></soap:Body></soap:Envelope>";
        break;
      }
      case 2: {  // 1024 deep: valid; 1025 deep: malformed
        const std::size_t depth = rng_.percent(50) ? 1024 : 1025;
        out.append(depth, '[');
        out.append(depth, ']');
        break;
      }
      default:  // 10^5 levels: malformed, and no parser may crash on it
        out.append(100000, '[');
        out.append(100000, ']');
    }
    end_line(out);
  }

  Rng rng_;
  std::uint64_t big_every_;
  std::uint64_t next_big_;
  std::uint64_t written_ = 0;  // bytes of all files so far
  std::uint64_t line_ = 0;
  std::uint64_t next_id_ = 1;
  std::int64_t clock_ms_ = 0;
  std::int64_t cached_second_ = -1;
  char cached_prefix_[32] = {};
  bool crlf_file_ = false;
  std::priority_queue<Pending, std::vector<Pending>, std::greater<>> pending_;
};

void write_all(int fd, const std::string& path, const std::string& data) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      std::fprintf(stderr, "loggen: cannot write '%s': %s\n", path.c_str(), std::strerror(errno));
      std::exit(1);
    }
    done += static_cast<std::size_t>(n);
  }
}

std::uint64_t parse_size(const char* text, const char* what) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(text, &end, 10);
  std::uint64_t scale = 1;
  if (*end == 'K' || *end == 'k')
    scale = 1ULL << 10, ++end;
  else if (*end == 'M' || *end == 'm')
    scale = 1ULL << 20, ++end;
  else if (*end == 'G' || *end == 'g')
    scale = 1ULL << 30, ++end;
  if (errno != 0 || end == text || *end != '\0') {
    std::fprintf(stderr, "loggen: %s must be a number (K, M, G suffixes allowed), not '%s'\n", what,
                 text);
    std::exit(2);
  }
  return v * scale;
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t bytes = 16 << 20, seed = 1, files = 1, big_every = 64ULL << 20;
  const char* outdir = nullptr;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--help" || arg == "-h") {
      std::puts(
          "usage: loggen --bytes N --seed S --files K [--big-every BYTES] OUTDIR\n"
          "Writes OUTDIR/app-NNN.log, about N bytes in K files, deterministic for S.");
      return 0;
    } else if (arg == "--bytes" && has_value) {
      bytes = parse_size(argv[++i], "--bytes");
    } else if (arg == "--seed" && has_value) {
      seed = parse_size(argv[++i], "--seed");
    } else if (arg == "--files" && has_value) {
      files = parse_size(argv[++i], "--files");
    } else if (arg == "--big-every" && has_value) {
      big_every = parse_size(argv[++i], "--big-every");
    } else if (!arg.starts_with("-") && outdir == nullptr) {
      outdir = argv[i];
    } else {
      std::fprintf(stderr, "loggen: unexpected argument '%s' (see --help)\n", argv[i]);
      return 2;
    }
  }
  if (outdir == nullptr || files == 0 || files > 100000 || big_every == 0) {
    std::fprintf(stderr, "loggen: need OUTDIR, 1 <= --files <= 100000, --big-every > 0\n");
    return 2;
  }
  if (::mkdir(outdir, 0755) != 0 && errno != EEXIST) {
    std::fprintf(stderr, "loggen: cannot create '%s': %s\n", outdir, std::strerror(errno));
    return 2;
  }
  Generator generator(seed, big_every);
  std::string data;
  data.reserve(std::size_t{12} << 20);
  for (std::uint64_t f = 0; f < files; ++f) {
    const std::uint64_t target = bytes / files + (f < bytes % files ? 1 : 0);
    char name[32];
    std::snprintf(name, sizeof name, "/app-%03llu.log", static_cast<unsigned long long>(f));
    const std::string path = std::string(outdir) + name;
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      std::fprintf(stderr, "loggen: cannot create '%s': %s\n", path.c_str(), std::strerror(errno));
      return 2;
    }
    data.clear();
    generator.fill_file(data, target, f + 1 == files,
                        [&](std::string& out) { write_all(fd, path, out); });
    ::close(fd);
  }
  return 0;
}
