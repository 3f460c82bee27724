#include "payload_check.h"

#include <simdjson.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <bit>
#include <cstring>
#include <new>
#include <pugixml.hpp>
#include <vector>

namespace logscan {

static_assert(kJsonPadding >= simdjson::SIMDJSON_PADDING,
              "kJsonPadding must cover simdjson's padding for in-place parsing");

PayloadKind payload_kind(std::string_view doc) noexcept {
  if (doc.empty()) return PayloadKind::kNone;
  switch (doc.front()) {
    case '{':
    case '[':
      return PayloadKind::kJson;
    case '<':
      return PayloadKind::kXml;
    default:
      return PayloadKind::kOther;
  }
}

namespace {

constexpr bool is_xml_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

constexpr bool is_name_start(char c) {
  const auto u = static_cast<unsigned char>(c);
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' || u >= 0x80;
}

constexpr bool is_xml_char(std::uint32_t cp) {
  return cp == 0x9 || cp == 0xA || cp == 0xD || (cp >= 0x20 && cp <= 0xD7FF) ||
         (cp >= 0xE000 && cp <= 0xFFFD) || (cp >= 0x10000 && cp <= 0x10FFFF);
}

// The document is valid UTF-8 already, so only the excluded code points need a look: the
// C0 controls other than tab, LF and CR, and U+FFFE/U+FFFF (EF BF BE, EF BF BF).
bool only_xml_chars(std::string_view doc) {
  std::size_t i = 0;
#if defined(__SSE2__)
  // 16 bytes a step (SSE2, which every x86-64 has): a byte is below 0x20 exactly when its
  // unsigned minimum with 0x1F is itself.
  const __m128i controls = _mm_set1_epi8(0x1F), ef = _mm_set1_epi8(static_cast<char>(0xEF));
  for (; i + 16 <= doc.size(); i += 16) {
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(doc.data() + i));
    const __m128i suspect = _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(bytes, controls), bytes),
                                         _mm_cmpeq_epi8(bytes, ef));
    if (_mm_movemask_epi8(suspect) != 0) break;  // the loops below check from here
  }
#endif
  // 8 bytes a step, SWAR: a word with no byte below 0x20 and no 0xEF needs no closer look
  // (a byte's high bit is set when it is below 0x20, or when it equals 0xEF).
  constexpr std::uint64_t kOnes = 0x0101010101010101, kHigh = 0x8080808080808080;
  for (; i + 8 <= doc.size(); i += 8) {
    std::uint64_t word;
    std::memcpy(&word, doc.data() + i, sizeof word);
    const std::uint64_t below_space = (word - kOnes * 0x20) & ~word & kHigh;
    const std::uint64_t x = word ^ (kOnes * 0xEF);
    const std::uint64_t is_ef = ~(((x & ~kHigh) + ~kHigh) | x) & kHigh;
    if (below_space | is_ef) break;  // the byte loop below checks from here
  }
  for (; i < doc.size(); ++i) {
    const auto c = static_cast<unsigned char>(doc[i]);
    if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') return false;
    if (c == 0xEF && i + 2 < doc.size() && static_cast<unsigned char>(doc[i + 1]) == 0xBF &&
        (static_cast<unsigned char>(doc[i + 2]) & 0xFE) == 0xBE) {
      return false;
    }
  }
  return true;
}

// The first '<', '&' or ']' at or after `pos` (the bytes of character data that need a
// look), or doc.size(). Text runs between tags are short, yet 16 bytes a step beat one.
std::size_t next_markup(std::string_view doc, std::size_t pos) {
#if defined(__SSE2__)
  const __m128i lt = _mm_set1_epi8('<'), amp = _mm_set1_epi8('&'), bracket = _mm_set1_epi8(']');
  for (; pos + 16 <= doc.size(); pos += 16) {
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(doc.data() + pos));
    const __m128i hits = _mm_or_si128(
        _mm_or_si128(_mm_cmpeq_epi8(bytes, lt), _mm_cmpeq_epi8(bytes, amp)),
        _mm_cmpeq_epi8(bytes, bracket));
    const auto mask = static_cast<unsigned>(_mm_movemask_epi8(hits));
    if (mask != 0) return pos + static_cast<std::size_t>(std::countr_zero(mask));
  }
#endif
  while (pos < doc.size() && doc[pos] != '<' && doc[pos] != '&' && doc[pos] != ']') ++pos;
  return pos;
}

// `&` at doc[pos]: one of the five predefined entities, or a character reference naming an
// XML Char. Returns the position after the `;`, or npos.
std::size_t entity_reference_end(std::string_view doc, std::size_t pos) {
  const std::size_t semi = doc.find(';', pos + 1);
  if (semi == std::string_view::npos) return semi;
  const std::string_view body = doc.substr(pos + 1, semi - pos - 1);
  if (body == "lt" || body == "gt" || body == "amp" || body == "apos" || body == "quot") {
    return semi + 1;
  }
  if (body.size() < 2 || body[0] != '#') return std::string_view::npos;
  const bool hex = body[1] == 'x';
  const std::string_view number = body.substr(hex ? 2 : 1);
  if (number.empty()) return std::string_view::npos;
  std::uint32_t cp = 0;
  for (char c : number) {
    unsigned digit;
    if (c >= '0' && c <= '9') {
      digit = static_cast<unsigned>(c - '0');
    } else if (hex && c >= 'a' && c <= 'f') {
      digit = static_cast<unsigned>(c - 'a' + 10);
    } else if (hex && c >= 'A' && c <= 'F') {
      digit = static_cast<unsigned>(c - 'A' + 10);
    } else {
      return std::string_view::npos;
    }
    cp = cp * (hex ? 16 : 10) + digit;
    if (cp > 0x10FFFF) return std::string_view::npos;
  }
  return is_xml_char(cp) ? semi + 1 : std::string_view::npos;
}

// <?xml version="..." (encoding="...")? (standalone="yes|no")? ?> at the start.
std::size_t declaration_end(std::string_view doc) {
  std::size_t pos = 5;  // after "<?xml"
  const auto spaces = [&] {
    const std::size_t from = pos;
    while (pos < doc.size() && is_xml_space(doc[pos])) ++pos;
    return pos > from;
  };
  const auto attribute = [&](std::string_view name, auto&& valid_value) {
    const std::size_t saved = pos;
    if (!spaces() || doc.substr(pos, name.size()) != name) {
      pos = saved;
      return false;
    }
    pos += name.size();
    spaces();
    if (pos >= doc.size() || doc[pos] != '=') return pos = saved, false;
    ++pos;
    spaces();
    if (pos >= doc.size() || (doc[pos] != '"' && doc[pos] != '\'')) return pos = saved, false;
    const std::size_t close = doc.find(doc[pos], pos + 1);
    if (close == std::string_view::npos || !valid_value(doc.substr(pos + 1, close - pos - 1))) {
      return pos = saved, false;
    }
    pos = close + 1;
    return true;
  };
  const auto version = [](std::string_view v) {
    if (v.empty()) return false;
    for (char c : v) {
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
            c == '.' || c == '_' || c == ':' || c == '-')) {
        return false;
      }
    }
    return true;
  };
  const auto encoding = [](std::string_view v) {
    if (v.empty() || !((v[0] >= 'a' && v[0] <= 'z') || (v[0] >= 'A' && v[0] <= 'Z'))) {
      return false;
    }
    for (char c : v) {
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
            c == '.' || c == '_' || c == '-')) {
        return false;
      }
    }
    return true;
  };
  const auto standalone = [](std::string_view v) { return v == "yes" || v == "no"; };
  if (!attribute("version", version)) return std::string_view::npos;
  attribute("encoding", encoding);
  attribute("standalone", standalone);
  spaces();
  return doc.substr(pos, 2) == "?>" ? pos + 2 : std::string_view::npos;
}

}  // namespace

bool xml_lexically_well_formed(std::string_view doc, bool& error_element) noexcept {
  constexpr auto npos = std::string_view::npos;
  if (!only_xml_chars(doc)) return false;
  std::size_t pos = 0;
  if (doc.starts_with("<?xml") && doc.size() > 5 && (is_xml_space(doc[5]) || doc[5] == '?')) {
    pos = declaration_end(doc);
    if (pos == npos) return false;
  }
  std::size_t depth = 0;
  bool seen_root = false;
  while (pos < doc.size()) {
    const char c = doc[pos];
    if (c == '<') {
      const std::string_view rest = doc.substr(pos);
      // The byte after '<' tells the kinds of markup apart.
      const char kind = rest.size() > 1 ? rest[1] : '\0';
      if (kind == '!') {
        if (rest.starts_with("<!--")) {
          const std::size_t end = doc.find("--", pos + 4);
          if (end == npos || doc.substr(end, 3) != "-->") return false;
          pos = end + 3;
        } else if (rest.starts_with("<![CDATA[")) {
          const std::size_t end = doc.find("]]>", pos + 9);
          if (depth == 0 || end == npos) return false;
          pos = end + 3;
        } else {
          return false;  // a DOCTYPE (or any other declaration)
        }
      } else if (kind == '?') {
        // A processing instruction: outside the element it makes the payload malformed;
        // inside, its target may not be `xml` in any case (only the declaration is).
        if (depth == 0 || rest.size() < 3 || !is_name_start(rest[2])) return false;
        std::size_t t = 2;
        while (t < rest.size() && !is_xml_space(rest[t]) && rest[t] != '?') ++t;
        const std::string_view target = rest.substr(2, t - 2);
        if (target.size() == 3 && (target[0] | 0x20) == 'x' && (target[1] | 0x20) == 'm' &&
            (target[2] | 0x20) == 'l') {
          return false;
        }
        const std::size_t end = doc.find("?>", pos + 2);
        if (end == npos) return false;
        pos = end + 2;
      } else if (kind == '/') {
        const std::size_t end = doc.find('>', pos);
        if (depth == 0 || end == npos) return false;
        --depth;
        pos = end + 1;
      } else {
        if (depth == 0 && seen_root) return false;  // a second element
        seen_root = true;
        std::size_t name_end = pos + 1;
        while (name_end < doc.size() && !is_xml_space(doc[name_end]) && doc[name_end] != '/' &&
               doc[name_end] != '>') {
          ++name_end;
        }
        std::string_view name = doc.substr(pos + 1, name_end - pos - 1);
        const std::size_t colon = name.rfind(':');
        if (colon != npos) name.remove_prefix(colon + 1);
        if (name == "error" || name == "Fault") error_element = true;
        // The attributes: quoted values may hold '>' and must hold only valid references.
        std::size_t i = name_end;
        char quote = 0;
        for (; i < doc.size(); ++i) {
          const char a = doc[i];
          if (quote) {
            if (a == quote) {
              quote = 0;
            } else if (a == '<') {
              return false;
            } else if (a == '&') {
              const std::size_t after = entity_reference_end(doc, i);
              if (after == npos) return false;
              i = after - 1;
            }
          } else if (a == '"' || a == '\'') {
            quote = a;
          } else if (a == '>') {
            break;
          }
        }
        if (i >= doc.size()) return false;
        if (doc[i - 1] != '/') ++depth;
        pos = i + 1;
      }
    } else if (depth == 0) {
      if (!is_xml_space(c)) return false;  // text outside the element
      ++pos;
    } else if (c == '&') {
      pos = entity_reference_end(doc, pos);
      if (pos == npos) return false;
    } else if (c == ']' && doc.substr(pos, 3) == "]]>") {
      return false;  // not allowed in character data
    } else {
      pos = next_markup(doc, pos + 1);
    }
  }
  return seen_root && depth == 0;
}

// Deepest nesting of arrays and objects in a JSON text already known to be well formed
// (so strings are terminated and escapes complete).
std::size_t json_nesting_depth(std::string_view doc) noexcept {
  std::size_t depth = 0, deepest = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < doc.size(); ++i) {
    const char c = doc[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

constexpr std::size_t kMaxJsonDepth = 1024;  // the contract's limit (RFC 8259 section 9)

struct PayloadChecker::Impl {
  // simdjson counts a scalar inside the innermost container as one level more, so its
  // default limit (1024) refuses some texts of exactly the contract's 1024 levels. Those
  // (rare) texts are parsed again with room for that level and their depth counted here.
  simdjson::dom::parser json;
  simdjson::dom::parser deep_json;
  std::vector<char> padded;    // a copy of a payload without enough readable bytes after it
  pugi::xml_document xml;
  std::vector<char> xml_copy;  // pugixml parses in place; this buffer only grows

  PayloadVerdict check_json(std::string_view doc, std::size_t readable_after) {
    PayloadVerdict v{PayloadKind::kJson, true, false};
    const char* data = doc.data();
    if (readable_after < simdjson::SIMDJSON_PADDING) {
      padded.resize(doc.size() + simdjson::SIMDJSON_PADDING);
      std::memcpy(padded.data(), doc.data(), doc.size());
      std::memset(padded.data() + doc.size(), 0, simdjson::SIMDJSON_PADDING);
      data = padded.data();
    }
    // simdjson's DOM parse enforces RFC 8259 and each of the contract's limits: UTF-8,
    // depth 1024, integers in -2^63..2^64-1, finite doubles, surrogate escapes in pairs;
    // and it treats a BOM as an error, as the JSON grammar does.
    simdjson::dom::element root;
    simdjson::error_code error = json.parse(data, doc.size(), false).get(root);
    if (error == simdjson::DEPTH_ERROR) {
      if (deep_json.max_depth() != kMaxJsonDepth + 1 &&
          deep_json.allocate(doc.size(), kMaxJsonDepth + 1) != simdjson::SUCCESS) {
        return v;
      }
      error = deep_json.parse(data, doc.size(), false).get(root);
      if (error == simdjson::SUCCESS && json_nesting_depth(doc) > kMaxJsonDepth) return v;
    }
    if (error != simdjson::SUCCESS) return v;
    v.malformed = false;
    simdjson::dom::object object;
    if (root.get_object().get(object) == simdjson::SUCCESS) {
      for (const auto member : object) {  // a repeated name: one non-null value is enough
        if (member.key == "error" && !member.value.is_null()) {
          v.error = true;
          break;
        }
      }
    }
    return v;
  }

  PayloadVerdict check_xml(std::string_view doc) {
    PayloadVerdict v{PayloadKind::kXml, true, false};
    if (!simdjson::validate_utf8(doc.data(), doc.size())) return v;
    bool error_element = false;
    if (!xml_lexically_well_formed(doc, error_element)) return v;
    // pugixml checks the rest: names, quoted attributes with whitespace between them,
    // every tag closed and properly nested, comments/CDATA/PIs terminated.
    // parse_minimal: no tree of text nodes, no escapes expanded (checked above). In place
    // on a reused copy: load_buffer would allocate and copy the payload every time.
    if (xml_copy.size() < doc.size()) xml_copy.resize(doc.size());
    std::memcpy(xml_copy.data(), doc.data(), doc.size());
    const pugi::xml_parse_result result = xml.load_buffer_inplace(
        xml_copy.data(), doc.size(), pugi::parse_minimal, pugi::encoding_utf8);
    if (!result) return v;
    v.malformed = false;
    v.error = error_element;
    return v;
  }
};

PayloadChecker::PayloadChecker() : impl_(std::make_unique<Impl>()) {}
PayloadChecker::~PayloadChecker() = default;
PayloadChecker::PayloadChecker(PayloadChecker&&) noexcept = default;
PayloadChecker& PayloadChecker::operator=(PayloadChecker&&) noexcept = default;

PayloadVerdict PayloadChecker::check(std::string_view doc, std::size_t readable_after) noexcept {
  try {
    switch (payload_kind(doc)) {
      case PayloadKind::kNone:
        return {PayloadKind::kNone, false, false};
      case PayloadKind::kOther:
        return {PayloadKind::kOther, false, false};
      case PayloadKind::kJson:
        return impl_->check_json(doc, readable_after);
      case PayloadKind::kXml:
        return impl_->check_xml(doc);
    }
  } catch (const std::bad_alloc&) {
  }
  return {payload_kind(doc), true, false};
}

}  // namespace logscan
