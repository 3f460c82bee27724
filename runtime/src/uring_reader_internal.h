// UringReader internals shared by its source files: buffer alignment arithmetic and the way
// error messages name a path.
#pragma once

#include <cstddef>
#include <string>

namespace ringfork::uring_reader_internal {

inline std::size_t round_up(std::size_t value, std::size_t to) {
  return (value + to - 1) / to * to;
}
inline std::size_t round_down(std::size_t value, std::size_t to) { return value / to * to; }

inline std::string quoted(const std::string& path) { return "'" + path + "'"; }

}  // namespace ringfork::uring_reader_internal
