#include "partial_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <array>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstring>
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
  // Checked before it is read whole: a directory, a FIFO, /dev/zero or a 20 GB log named
  // by mistake is refused at once, not read (or waited for) first.
  const auto cannot_read = [&](int error) {
    return BadPartialFile("cannot read '" + path + "': " + std::generic_category().message(error));
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw cannot_read(errno);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw cannot_read(errno);
  if (!S_ISREG(st.st_mode)) throw bad("not a regular file");
  const auto read_up_to = [&](std::size_t wanted) {
    std::string out(wanted, '\0');
    std::size_t got = 0;
    while (got < wanted) {
      const ssize_t n = ::read(fd, out.data() + got, wanted - got);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw cannot_read(errno);
      if (n == 0) break;
      got += static_cast<std::size_t>(n);
    }
    out.resize(got);
    return out;
  };
  std::string file = read_up_to(kHeaderBytes);
  if (file.size() == kHeaderBytes && std::memcmp(file.data(), kMagic.data(), kMagic.size()) == 0) {
    // A partial file's size is in its header: read no more than it announces, and one byte
    // more to see an appended one.
    const std::uint64_t body_bytes = load<std::uint64_t>(file, 16);
    const auto header_bytes = load<std::uint32_t>(file, 12);
    const auto size = static_cast<std::uint64_t>(st.st_size);
    if (header_bytes >= kHeaderBytes && header_bytes <= size && body_bytes <= size - header_bytes) {
      file += read_up_to(static_cast<std::size_t>(header_bytes - kHeaderBytes + body_bytes + 1));
    }
  }
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
