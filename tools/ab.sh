#!/usr/bin/env bash
# A/B of two bridge binaries, run alternately with the built-in simulator and verifier, so that
# machine noise falls on both. Prints, per run, the spans of the bridge's own latency table
# (p50 p99 ms) and its CPU; run it on an otherwise idle machine.
#
#   tools/ab.sh BIN_A BIN_B [channels=256] [pairs=3] [seconds=8]
#
# A binary of an older commit:
#   git worktree add /tmp/old <rev> && cargo build --release -p openephys-zmq2osc \
#       --manifest-path /tmp/old/Cargo.toml --target-dir /tmp/old-target
#   # -> /tmp/old-target/release/openephys-zmq2osc
#
# Used for issue 13: the idle back-off (b4699e1^ against b4699e1, 256 ch) and the encoder's
# prefetch (195384f^ against 195384f, 1024 ch; the built-in simulator keeps the plugin's PUB
# high-water mark, so 1024 ch rows also show upstream loss: compare shard_frame_cost).
set -euo pipefail
a=${1:?usage: tools/ab.sh BIN_A BIN_B [channels] [pairs] [seconds]}
b=${2:?usage: tools/ab.sh BIN_A BIN_B [channels] [pairs] [seconds]}
ch=${3:-256}
pairs=${4:-3}
secs=${5:-8}
root=$(cd "$(dirname "$0")/.." && pwd)
cfg="$root/examples/full-rate.json"
span() { awk -v s="$1" '$1 == s { printf "%s %s", $3, $5 }'; }
for k in $(seq 1 "$pairs"); do
    for side in A B; do
        bin=$a
        [ "$side" = B ] && bin=$b
        out=$("$bin" --simulate "$ch" --seconds "$secs" --verify --no-tui -c "$cfg" 2>&1)
        cpu=$(echo "$out" | grep '"final":true' |
            python3 -c 'import sys, json; print(json.loads(sys.stdin.read())["process"]["cpu_percent"])')
        printf '%s %d | spread %s | frame %s | added %s | e2e %s | cpu %s | %s\n' "$side" "$k" \
            "$(echo "$out" | span block_spread)" "$(echo "$out" | span shard_frame_cost)" \
            "$(echo "$out" | span bridge_added)" \
            "$(echo "$out" | grep '^end-to-end' | sed 's/.*ms: p50 \([0-9.]*\)  p99 \([0-9.]*\).*/\1 \2/')" \
            "$cpu" "$(echo "$out" | grep '^verifier' | awk '{print "delivered", $NF}')"
    done
done
