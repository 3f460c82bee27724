// How arguments and results cross into another process: a small, explicit byte codec.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace ringfork {

class SharedArena;
class BlockPool;

// What a decoder may need besides the bytes: ringfork handles travel as segment offsets and
// are rebuilt against the receiving process's arena and pool.
struct DecodeContext {
  SharedArena* arena = nullptr;
  BlockPool* pool = nullptr;
};

class ArgWriter {
 public:
  void write_bytes(const void* data, std::size_t length) {
    if (length == 0) return;
    const std::size_t used = buffer_.size();
    buffer_.resize(used + length);
    std::memcpy(buffer_.data() + used, data, length);
  }
  template <class T>
  void write_raw(const T& value) {
    static_assert(std::is_trivially_copyable_v<T>);
    write_bytes(&value, sizeof(T));
  }
  std::vector<std::byte>& buffer() noexcept { return buffer_; }

 private:
  std::vector<std::byte> buffer_;
};

// Reads what an ArgWriter wrote. Every read is bounds-checked: the bytes may come from a
// crashed or buggy process, so a short or malformed buffer throws std::runtime_error.
class ArgReader {
 public:
  ArgReader(std::span<const std::byte> bytes, DecodeContext context)
      : bytes_(bytes), context_(context) {}
  void read_bytes(void* out, std::size_t length) {
    if (length > bytes_.size() - position_) [[unlikely]] throw_truncated(length);
    if (length != 0) std::memcpy(out, bytes_.data() + position_, length);
    position_ += length;
  }
  template <class T>
  T read_raw() {
    static_assert(std::is_trivially_copyable_v<T>);
    T value;
    read_bytes(&value, sizeof(T));
    return value;
  }
  std::size_t remaining() const noexcept { return bytes_.size() - position_; }
  const DecodeContext& context() const noexcept { return context_; }

 private:
  // Out of line, so that the message building stays out of every inlined read.
  [[noreturn, gnu::cold, gnu::noinline]] void throw_truncated(std::size_t length) const {
    throw std::runtime_error("truncated argument bytes: wanted " + std::to_string(length) +
                             " at offset " + std::to_string(position_) + " of " +
                             std::to_string(bytes_.size()));
  }

  std::span<const std::byte> bytes_;
  std::size_t position_ = 0;
  DecodeContext context_;
};

// The customisation point. Provided: trivially copyable types, std::string, std::vector of
// any codec type, and (in queue.h) Queue<T> handles. For your own type specialise:
//   template <> struct Codec<MyType> {
//     static void encode(ArgWriter&, const MyType&);
//     static MyType decode(ArgReader&);
//   };
template <class T, class Enable = void>
struct Codec {
  static_assert(sizeof(T) == 0,
                "no ringfork::Codec<T> for this type: it is not trivially copyable, a "
                "std::string or a std::vector; specialise ringfork::Codec<T> to send it");
};

template <class T>
struct Codec<T, std::enable_if_t<std::is_trivially_copyable_v<T> && !std::is_pointer_v<T>>> {
  static void encode(ArgWriter& out, const T& value) { out.write_raw(value); }
  static T decode(ArgReader& in) { return in.read_raw<T>(); }
};

template <>
struct Codec<std::string> {
  static void encode(ArgWriter& out, const std::string& value) {
    out.write_raw<std::uint64_t>(value.size());
    out.write_bytes(value.data(), value.size());
  }
  static std::string decode(ArgReader& in) {
    const auto length = in.read_raw<std::uint64_t>();
    if (length > in.remaining()) throw std::runtime_error("string length beyond argument bytes");
    std::string value(length, '\0');
    in.read_bytes(value.data(), length);
    return value;
  }
};

template <class T>
struct Codec<std::vector<T>> {
  static void encode(ArgWriter& out, const std::vector<T>& values) {
    out.write_raw<std::uint64_t>(values.size());
    if constexpr (std::is_trivially_copyable_v<T>) {
      out.write_bytes(values.data(), values.size() * sizeof(T));
    } else {
      for (const T& value : values) Codec<T>::encode(out, value);
    }
  }
  static std::vector<T> decode(ArgReader& in) {
    const auto count = in.read_raw<std::uint64_t>();
    // Each element takes at least one byte, which bounds a corrupt count before allocating.
    if (count > in.remaining()) throw std::runtime_error("vector length beyond argument bytes");
    std::vector<T> values;
    if constexpr (std::is_trivially_copyable_v<T>) {
      values.resize(count);
      in.read_bytes(values.data(), count * sizeof(T));
    } else {
      values.reserve(count);
      for (std::uint64_t i = 0; i < count; ++i) values.push_back(Codec<T>::decode(in));
    }
    return values;
  }
};

template <class... Ts>
struct Codec<std::tuple<Ts...>> {
  static void encode(ArgWriter& out, const std::tuple<Ts...>& values) {
    std::apply([&](const Ts&... each) { (Codec<Ts>::encode(out, each), ...); }, values);
  }
  static std::tuple<Ts...> decode(ArgReader& in) {
    return std::tuple<Ts...>{Codec<Ts>::decode(in)...};
  }
};

template <class... Args>
void encode_all(ArgWriter& out, const Args&... args) {
  (Codec<std::decay_t<Args>>::encode(out, args), ...);
}

template <class... Params>
std::tuple<std::decay_t<Params>...> decode_all(ArgReader& in) {
  // Braced initialisation evaluates left to right, matching encode_all's order.
  return std::tuple<std::decay_t<Params>...>{Codec<std::decay_t<Params>>::decode(in)...};
}

}  // namespace ringfork
