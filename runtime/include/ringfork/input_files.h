// Input files: the regular files a list of paths stands for, each with its size, found once
// up front so that a missing or unreadable path is named before any work starts.
#pragma once

#include <cstdint>
#include <string>
#include <system_error>
#include <vector>

namespace ringfork {

struct InputFile {
  std::string path;
  std::uint64_t size = 0;  // when the list was made: readers read up to here
  std::uint64_t device = 0;  // its identity then (st_dev, st_ino): a reader can tell that the
  std::uint64_t inode = 0;   // path names another file since (rotated, replaced)
};

struct InputPathError {
  std::string path;
  std::error_code error;
  std::string message;  // what failed, naming the path
};

struct InputFiles {
  std::vector<InputFile> files;
  std::vector<InputPathError> errors;  // keep_going: the paths passed over
};

// Paths are files or directories; a directory stands for the regular files beneath it,
// recursively, each directory's entries in byte order of their names (symlinks to files are
// read, symlinks to directories are not followed, a dangling symlink is an unreadable path;
// FIFOs, sockets and devices are passed over). Every file is opened once, so that one that
// cannot be read is named here. Throws std::system_error naming the first missing or
// unreadable path, unless keep_going, which lists it in errors() and goes on.
InputFiles list_input_files(const std::vector<std::string>& paths, bool keep_going);

}  // namespace ringfork
