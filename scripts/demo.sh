#!/usr/bin/env bash
# make demo: logscan on a 1 GB sample corpus (generated once, kept in the build folder), with
# the progress line, the report as a table, and the throughput.
# Usage: scripts/demo.sh BUILD_DIR
set -euo pipefail
build="${1:-build}"
corpus="$build/demo-corpus"
bytes=1000000000
if [[ ! -f "$corpus.done" ]]; then
  echo "demo: writing a $((bytes / 1000000)) MB sample corpus to $corpus (once) ..." >&2
  rm -rf "$corpus"
  "$build/examples/logscan/loggen" --bytes "$bytes" --seed 1 --files 8 "$corpus" >/dev/null
  touch "$corpus.done"
fi
jobs="$(nproc)"
echo "demo: logscan -j $jobs --format table $corpus" >&2
start="$(date +%s.%N)"
"$build/examples/logscan/logscan" -j "$jobs" --format table "$corpus"
end="$(date +%s.%N)"
size="$(du -sb "$corpus" | cut -f1)"
python3 -c "import sys; b, s = int(sys.argv[1]), float(sys.argv[2]) - float(sys.argv[3]); \
print(f'demo: {b / 1e6:.0f} MB in {s:.2f} s = {b / 1e6 / s:.0f} MB/s with {sys.argv[4]} workers')" \
  "$size" "$end" "$start" "$jobs"
