#!/usr/bin/env bash
# Installs the Debian packages ringfork needs, and only those missing.
# Usage: scripts/install-deps.sh [core|bench|all]   (default: core)
#   core  - build and test: compiler toolchain, meson, liburing, moodycamel, mimalloc, gtest,
#           simdjson, pugixml and zlib (logscan), OpenMPI (logscan's fleet mode, so that its
#           tests run), pybind11 and the Python headers (python/), python3-fusepy (the FUSE
#           view that fails a read mid-file, for tests/logscan/read_error.py)
#   bench - core plus Google Benchmark and the benchmarks' peers
#   all   - everything, including the optional parts
# Idempotent, and silent when everything is already present.
set -euo pipefail

profile="${1:-core}"

core=(meson ninja-build pkg-config g++ clang libclang-rt-14-dev liburing-dev
      libconcurrentqueue-dev libmimalloc-dev cmake libgtest-dev libgmock-dev
      libbenchmark-dev python3 libsimdjson-dev libpugixml-dev zlib1g-dev pybind11-dev
      python3-dev libopenmpi-dev openmpi-bin python3-fusepy)
# The benchmarks' peers (issue 9): Boost.Interprocess, ZeroMQ, and iceoryx with its RouDi
# daemon (iox-roudi, package iceoryx), which bench/run_bench.py starts and stops.
bench=(libboost-dev libzmq3-dev libiceoryx-posh-dev iceoryx)

case "$profile" in
  core) wanted=("${core[@]}") ;;
  bench | all) wanted=("${core[@]}" "${bench[@]}") ;;
  *) echo "install-deps.sh: unknown profile '$profile' (use core, bench or all)" >&2; exit 2 ;;
esac

missing=()
for pkg in "${wanted[@]}"; do
  status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "install-deps.sh: installing ${missing[*]}" >&2
sudo_cmd=()
[[ "$(id -u)" -eq 0 ]] || sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq >/dev/null
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
