// run_fleet() in a build without OpenMPI: says how to get a build with it.
#include <cstdio>

#include "fleet.h"

namespace logscan {

bool fleet_supported() noexcept { return false; }

int run_fleet(ringfork::Runtime&, const Arguments&, int&, char**&) {
  std::fputs(
      "logscan: this build has no fleet mode: OpenMPI was not found when it was built.\n"
      "Install it (Debian: apt-get install libopenmpi-dev openmpi-bin; `make deps` does)\n"
      "and rebuild (meson setup --reconfigure build && ninja -C build).\n",
      stderr);
  return kExitBadInput;
}

}  // namespace logscan
