// list_input_files(): the regular files named paths stand for, directories walked
// recursively in byte order of their entries' names (see the contract in input_files.h for
// links, FIFOs and devices).
#include "ringfork/input_files.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <stdexcept>
#include <string_view>
#include <utility>

namespace ringfork {
namespace {

std::string quoted(const std::string& path) { return "'" + path + "'"; }

class Lister {
 public:
  explicit Lister(bool keep_going) : keep_going_(keep_going) {}
  void expand(const std::string& path, bool top_level);
  InputFiles take() { return std::move(list_); }

 private:
  void add_error(const std::string& path, int error, const std::string& what) {
    if (!keep_going_) throw std::system_error(error, std::generic_category(), what);
    list_.errors.push_back({path, std::error_code(error, std::generic_category()), what});
  }

  bool keep_going_;
  InputFiles list_;
};

void Lister::expand(const std::string& path, bool top_level) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) {
    add_error(path, errno, "cannot read " + quoted(path));
    return;
  }
  if (S_ISREG(info.st_mode)) {
    // Opened once here so that an unreadable file is named now, not half-way through a run.
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
      add_error(path, errno, "cannot open " + quoted(path));
      return;
    }
    ::close(fd);
    if (list_.files.size() >= UINT32_MAX) {
      throw std::invalid_argument("more than 2^32 - 1 input files");
    }
    list_.files.push_back({.path = path,
                           .size = static_cast<std::uint64_t>(info.st_size),
                           .device = static_cast<std::uint64_t>(info.st_dev),
                           .inode = static_cast<std::uint64_t>(info.st_ino)});
    return;
  }
  if (!S_ISDIR(info.st_mode)) {
    // Sockets, FIFOs and devices met inside a directory are passed over; named, they are
    // an error.
    if (top_level) add_error(path, EINVAL, "not a regular file or directory: " + quoted(path));
    return;
  }
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) {
    add_error(path, errno, "cannot list directory " + quoted(path));
    return;
  }
  std::vector<std::string> names;
  errno = 0;
  while (const dirent* entry = ::readdir(dir)) {
    const std::string_view name = entry->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  const int list_error = errno;
  ::closedir(dir);
  if (list_error != 0) {
    add_error(path, list_error, "cannot list directory " + quoted(path));
    return;
  }
  std::sort(names.begin(), names.end());
  const std::string prefix = path.empty() || path.back() == '/' ? path : path + "/";
  for (const std::string& name : names) {
    const std::string child = prefix + name;
    struct stat link {};
    if (::lstat(child.c_str(), &link) != 0) {
      add_error(child, errno, "cannot read " + quoted(child));
    } else if (S_ISLNK(link.st_mode)) {
      struct stat target {};
      // Links to directories are not followed (no cycles). A dangling link stands for a file
      // the user meant to be read and cannot be: an error, like a missing named path.
      if (::stat(child.c_str(), &target) != 0) {
        add_error(child, errno, "cannot read " + quoted(child));
      } else if (S_ISREG(target.st_mode)) {
        expand(child, false);
      }
    } else if (S_ISDIR(link.st_mode) || S_ISREG(link.st_mode)) {
      expand(child, false);
    }
  }
}

}  // namespace

InputFiles list_input_files(const std::vector<std::string>& paths, bool keep_going) {
  Lister lister(keep_going);
  for (const std::string& path : paths) lister.expand(path, true);
  return lister.take();
}

}  // namespace ringfork
