#include "partial_file.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <array>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <system_error>

namespace logscan {
namespace {

constexpr std::array<char, 8> kMagic = {'L', 'S', 'C', 'N', 'P', 'A', 'R', 'T'};
constexpr std::uint32_t kFormatVersion = 1;
constexpr std::uint32_t kHeaderBytes = 40;

static_assert(std::endian::native == std::endian::little,
              "partial files are little-endian; a big-endian port needs byte swaps here");

std::uint32_t crc32_of(std::string_view bytes) {
  uLong crc = ::crc32(0L, Z_NULL, 0);
  // zlib takes lengths as uInt: feed large bodies in pieces.
  while (!bytes.empty()) {
    const std::size_t piece = std::min<std::size_t>(bytes.size(), 1u << 30);
    crc = ::crc32(crc, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(piece));
    bytes.remove_prefix(piece);
  }
  return static_cast<std::uint32_t>(crc);
}

template <class T>
void store(std::string& header, std::size_t offset, T value) {
  std::memcpy(header.data() + offset, &value, sizeof value);
}

template <class T>
T load(std::string_view bytes, std::size_t offset) {
  T value;
  std::memcpy(&value, bytes.data() + offset, sizeof value);
  return value;
}

void write_all(int fd, std::string_view bytes, const std::string& path) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      throw std::system_error(errno, std::generic_category(), "cannot write '" + path + "'");
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

}  // namespace

void write_partial_file(const std::string& path, const PartialReport& report) {
  const std::string body = report.encode();
  std::string header(kHeaderBytes, '\0');
  std::memcpy(header.data(), kMagic.data(), kMagic.size());
  store<std::uint32_t>(header, 8, kFormatVersion);
  store<std::uint32_t>(header, 12, kHeaderBytes);
  store<std::uint64_t>(header, 16, body.size());
  store<std::uint32_t>(header, 24, crc32_of(body));

  const std::string temporary = path + ".partial-tmp";
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    throw std::system_error(errno, std::generic_category(), "cannot write '" + path + "'");
  try {
    write_all(fd, header, path);
    write_all(fd, body, path);
    if (::fsync(fd) != 0)
      throw std::system_error(errno, std::generic_category(), "cannot write '" + path + "'");
  } catch (...) {
    ::close(fd);
    ::unlink(temporary.c_str());
    throw;
  }
  ::close(fd);
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    const int error = errno;
    ::unlink(temporary.c_str());
    throw std::system_error(error, std::generic_category(), "cannot write '" + path + "'");
  }
}

PartialReport read_partial_file(const std::string& path) {
  auto bad = [&](const std::string& what) {
    return BadPartialFile("'" + path + "' is not a usable partial report: " + what);
  };
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw BadPartialFile("cannot read '" + path + "': " + std::generic_category().message(errno));
  }
  const std::string file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw BadPartialFile("cannot read '" + path + "': read error");
  const std::string_view bytes(file);
  if (bytes.size() < 16 || std::memcmp(bytes.data(), kMagic.data(), kMagic.size()) != 0) {
    throw bad(bytes.size() < kMagic.size()
                  ? "too short to be one (" + std::to_string(bytes.size()) + " bytes)"
                  : "it does not begin with LSCNPART (a foreign file?)");
  }
  const auto version = load<std::uint32_t>(bytes, 8);
  if (version != kFormatVersion) {
    throw bad("format version " + std::to_string(version) + ", this logscan reads version " +
              std::to_string(kFormatVersion));
  }
  const auto header_bytes = load<std::uint32_t>(bytes, 12);
  if (header_bytes < kHeaderBytes || bytes.size() < header_bytes) {
    throw bad("truncated header (" + std::to_string(bytes.size()) + " bytes)");
  }
  const auto body_bytes = load<std::uint64_t>(bytes, 16);
  if (body_bytes != bytes.size() - header_bytes) {
    throw bad("the header announces " + std::to_string(body_bytes) +
              " bytes of report, the file holds " + std::to_string(bytes.size() - header_bytes) +
              " (truncated or appended to)");
  }
  const std::string_view body = bytes.substr(header_bytes);
  if (crc32_of(body) != load<std::uint32_t>(bytes, 24)) {
    throw bad("checksum mismatch (the file is corrupted)");
  }
  try {
    return PartialReport::decode(body);
  } catch (const std::invalid_argument& error) {
    throw bad(error.what());
  }
}

}  // namespace logscan
