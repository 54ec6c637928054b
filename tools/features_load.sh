#!/bin/bash
# Issue 11's load row: 256 ch at 30 kHz (the bridge's built-in simulator, GUI-sized blocks) through
# two outputs at once, each into its own `osc-sink --any`:
#   lfp      sample mode, downsampling_method "lowpass", F = 30 (1 000 rows/s)
#   features rms, band:alpha and mua_rate at 60 Hz
# It prints rows expected vs received for both, from the bridge's final JSON stats object and
# the sinks' counts, and the bridge's CPU. Files go to $OUT (default results/runs/features-*).
#   tools/features_load.sh            # 10 s
#   S=30 tools/features_load.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
B=${B:-$root/target/release}
S=${S:-10}
out=${OUT:-$root/results/runs}
mkdir -p "$out"
read -r zp p1 p2 < <(python3 - <<'PY'
import socket
s=[]
for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_DGRAM):
    x=socket.socket(socket.AF_INET, kind); x.bind(("127.0.0.1",0)); s.append(x)
print(s[0].getsockname()[1], s[1].getsockname()[1], s[2].getsockname()[1])
PY
)
cfg="$out/features-config.json"
cat > "$cfg" <<JSON
{"performance": {"max_channels": 256, "pin_threads": false},
 "outputs": [
  {"name": "lfp", "host": "127.0.0.1", "port": $p1, "format": "sample",
   "downsampling_factor": 30, "downsampling_method": "lowpass"},
  {"name": "features", "host": "127.0.0.1", "port": $p2, "format": "features",
   "features": ["rms", "band:alpha", "mua_rate"], "feature_rate": 60}]}
JSON
"$B/osc-sink" --any --bind "127.0.0.1:$p1" --seconds $((S + 8)) > "$out/features-lfp.sink.txt" 2>/dev/null &
s1=$!
"$B/osc-sink" --any --bind "127.0.0.1:$p2" --seconds $((S + 8)) > "$out/features-features.sink.txt" 2>/dev/null &
s2=$!
rm -f "$out/features.stats.jsonl"
"$B/openephys-zmq2osc" -c "$cfg" --simulate 256 --seconds "$S" --no-tui --zmq-port "$zp" \
    --stats-interval $((S + 60)) --stats-json "$out/features.stats.jsonl" \
    > "$out/features.bridge.txt" 2> "$out/features.bridge.stderr.txt"
wait $s1 $s2
python3 - "$out" "$(git -C "$root" rev-parse --short HEAD)" <<'PY'
import json, re, sys
out = sys.argv[1]
final = [json.loads(l) for l in open(f"{out}/features.stats.jsonl") if l.startswith("{")][-1]
assert final["final"], "no final JSON object"
rx, tx = final["rx"], final["tx"]
samples = rx["data_msgs"] // 256 * 696          # every message of a block carries 696 samples
seconds = samples / 30000.0
def sink(name):
    first = open(f"{out}/features-{name}.sink.txt").readline()
    return {k: int(v) for k, v in re.findall(r"(\w+) (\d+)(?= |$)", first)}
lfp, feat = sink("lfp"), sink("features")
print(f"commit      {sys.argv[2]}")
print(f"published   {rx['data_msgs']} messages = {samples} samples x 256 ch ({seconds:.2f} s of signal)")
print(f"bridge      blocks emitted {rx['blocks_emitted']}  learning {rx['blocks_learning']}  incomplete {rx['blocks_incomplete']}  "
      f"send_dropped {tx['send_dropped']}  dropped {tx['dropped_oldest']}  dsp_unsupported {tx.get('dsp_unsupported', 0)}  "
      f"CPU {final['process']['cpu_percent']:.1f} % of one core over the run")
print(f"lfp         rows {lfp['rows']} of {samples // 30} expected (samples / 30): delivered {lfp['rows'] / (samples // 30):.6f}  kernel drops {lfp['kernel_drops']}")
ticks = feat["messages"] // 3
print(f"features    {feat['messages']} messages = {ticks} ticks x 3 features; 60 Hz x {seconds:.2f} s = {60 * seconds:.1f} ticks  kernel drops {feat['kernel_drops']}")
PY
