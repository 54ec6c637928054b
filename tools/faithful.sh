#!/bin/bash
# Usage: tools/faithful.sh <skip|nan|hold> <zmq port> <osc port>  (build first: cargo build --release --bins)
# 1024 ch, simulator faithful to the plugin (PUB HWM 1000), bridge with a missing-channel policy.
set -u
B=${B:-$(cd "$(dirname "$0")/.." && pwd)/target/release}
POL=$1; ZP=$2; PO=$3; S=10
cat > /tmp/faithful-$POL.json <<JSON
{"zmq": {"host": "127.0.0.1", "data_port": $ZP}, "osc": {"host": "127.0.0.1", "port": $PO,
 "processing": {"downsampling_factor": 1}},
 "performance": {"pin_threads": false, "missing_channel_policy": "$POL"}}
JSON
$B/osc-sink --bind 127.0.0.1:$PO --channels 1024 --seconds $((S+5)) > /tmp/faithful-$POL.sink 2>/dev/null &
K=$!
$B/oe-simulator --channels 1024 --seconds $S --port $ZP --pub-hwm 1000 2>/dev/null &
M=$!
sleep 0.3
$B/openephys-zmq2osc -c /tmp/faithful-$POL.json --seconds $((S+2)) --stats-interval 0 --no-tui > /tmp/faithful-$POL.bridge 2>/dev/null
wait $K $M
echo "policy $POL: $(cat /tmp/faithful-$POL.sink)"
grep -E "^zmq|^blocks|^ledger" /tmp/faithful-$POL.bridge
