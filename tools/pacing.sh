#!/bin/bash
# Pacing effect (results/pacing.md): build first with `cargo build --release --bins`.
# Pacing effect: one bridge, two outputs of the same 256-channel full-rate stream, one paced,
# one not, each into an osc-sink with a small receive buffer (SO_RCVBUF request $RCV bytes).
set -u
B=${B:-$(cd "$(dirname "$0")/.." && pwd)/target/release}
RCV=${RCV:-106496}
S=${S:-20}
ZP=${ZP:-31556}
PA=${PA:-31700}; PB=${PB:-31701}
CH=${CH:-256}
cfg=/tmp/pacing.json
cat > $cfg <<JSON
{"zmq": {"host": "127.0.0.1", "data_port": $ZP},
 "performance": {"pin_threads": false},
 "outputs": [
   {"name": "paced", "host": "127.0.0.1", "port": $PA, "downsampling_factor": 1, "max_datagram": "loopback", "pacing": "smooth"},
   {"name": "burst", "host": "127.0.0.1", "port": $PB, "downsampling_factor": 1, "max_datagram": "loopback"}
 ]}
JSON
$B/osc-sink --bind 127.0.0.1:$PA --channels $CH --rcvbuf $RCV --seconds $((S+5)) > /tmp/sink_paced.out 2>/dev/null &
A=$!
$B/osc-sink --bind 127.0.0.1:$PB --channels $CH --rcvbuf $RCV --seconds $((S+5)) > /tmp/sink_burst.out 2>/dev/null &
Bp=$!
$B/oe-simulator --channels $CH --seconds $S --port $ZP 2>/dev/null &
SIM=$!
sleep 0.3
$B/openephys-zmq2osc -c $cfg --seconds $((S+2)) --stats-interval 0 --no-tui > /tmp/bridge_pacing.out 2>/tmp/bridge_pacing.err
wait $A $Bp $SIM
echo "paced: $(cat /tmp/sink_paced.out)"
echo "burst: $(cat /tmp/sink_burst.out)"
grep -E "bridge_added|block_to_output" /tmp/bridge_pacing.out
