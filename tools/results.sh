#!/bin/bash
# Results from HEAD by one command (results/README.md):
#   tools/results.sh                 # the full matrix, 3 repeats, about 10-12 minutes
#   tools/results.sh --repeat 5      # any further stress flags are passed on
# Builds the bridge and the tools in release mode, then runs `stress` into results/ (or $OUT).
# Every CSV row names the commit (`git rev-parse --short HEAD`, `-dirty` when files outside
# results/ differ from HEAD); results/summary.md names the commit and the exact command.
# Run it on an otherwise idle machine: the numbers are CPU shares of a shared box.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --release -p openephys-zmq2osc -p oe-tools
bin=${CARGO_TARGET_DIR:-$root/target}/release
out=${OUT:-results}
mkdir -p "$out"
# Files of the layout before this script (one 10 s run per scenario, parsed from the text
# report); the old numbers stay in git history and in the README's "before" section.
rm -f "$out"/bridge-report-*.txt "$out"/bridge-hist-*.csv "$out"/latency-*.csv
exec "$bin/stress" --out "$out" --contend "$@"
