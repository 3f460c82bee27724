// ringfork-info: prints what this libringfork is (version, allocator, compiler, sanitizers).
#include <cstdio>
#include <cstring>

#include "ringfork/build_info.h"

int main(int argc, char** argv) {
  if (argc == 2 && (std::strcmp(argv[1], "--version") == 0 || std::strcmp(argv[1], "-V") == 0)) {
    std::printf("%s\n", ringfork::build_info().c_str());
    return 0;
  }
  std::fprintf(stderr, "usage: %s --version\n", argv[0]);
  return 2;
}
