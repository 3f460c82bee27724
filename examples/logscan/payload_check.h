// Payload kinds and the checks of shared/LOGFORMAT.md, "Payloads" and "Errors".
//
// A PayloadChecker holds a simdjson parser and a pugixml document that it reuses from
// payload to payload, so it belongs to one thread at a time. check() never throws (a
// payload that cannot be checked for lack of memory counts as malformed) and allocates
// only while its reusable buffers grow.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

namespace logscan {

enum class PayloadKind : std::uint8_t { kNone, kJson, kXml, kOther };

struct PayloadVerdict {
  PayloadKind kind = PayloadKind::kNone;
  bool malformed = false;  // json or xml that breaks the contract's rules
  bool error = false;      // an `error` member (JSON) or `error`/`Fault` element (XML)
};

// Bytes that must be readable after a JSON payload for simdjson to parse it in place
// (simdjson's SIMDJSON_PADDING); with fewer, check() copies the payload first.
inline constexpr std::size_t kJsonPadding = 64;

// Decided by the first byte of the document (the payload without surrounding spaces).
PayloadKind payload_kind(std::string_view doc) noexcept;

class PayloadChecker {
 public:
  PayloadChecker();
  ~PayloadChecker();
  PayloadChecker(PayloadChecker&&) noexcept;
  PayloadChecker& operator=(PayloadChecker&&) noexcept;

  // `doc` is the payload without its surrounding spaces; `readable_after` is how many
  // bytes after doc's end may be read (not interpreted), 0 if unknown.
  PayloadVerdict check(std::string_view doc, std::size_t readable_after = 0) noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The XML rules pugixml does not enforce: document structure around the one element (an
// optional declaration first, comments and whitespace; no DOCTYPE, no processing
// instruction outside the element, no second element or text at top level), entity
// references (the five predefined or numeric, naming an XML Char), XML characters, "]]>"
// outside CDATA. Sets `error_element` when an element's local name is error or Fault.
// Exposed for the fuzz target and tests.
bool xml_lexically_well_formed(std::string_view doc, bool& error_element) noexcept;

}  // namespace logscan
