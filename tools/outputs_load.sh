#!/bin/bash
# Several destinations under load (results/README.md): one bridge, 256 ch at 30 kHz, three
# outputs at once — sample F=1 and batch F=30 (each verified by an osc-sink) and per-channel
# F=300 (256 addresses, counted by the bridge only). Build first: cargo build --release --bins
set -u
B=${B:-$(cd "$(dirname "$0")/.." && pwd)/target/release}
S=${S:-20}; CH=${CH:-256}; ZP=${ZP:-34556}; PA=${PA:-34700}; PB=${PB:-34701}; PC=${PC:-34702}
cfg=$(mktemp /tmp/outputs-load-XXXX.json)
cat > "$cfg" <<JSON
{"zmq": {"host": "127.0.0.1", "data_port": $ZP},
 "performance": {"pin_threads": false},
 "outputs": [
   {"name": "full", "host": "127.0.0.1", "port": $PA, "downsampling_factor": 1, "max_datagram": "loopback"},
   {"name": "batch", "host": "127.0.0.1", "port": $PB, "format": "batch", "batch_size": 10,
    "downsampling_factor": 30, "max_datagram": "loopback"},
   {"name": "perch", "host": "127.0.0.1", "port": $PC, "format": "per_channel",
    "address": "{base}/ch{ch:03}", "downsampling_factor": 300}
 ]}
JSON
$B/osc-sink --bind 127.0.0.1:$PA --channels $CH --seconds $((S+5)) > /tmp/ol_full.out 2>/dev/null &
A=$!
$B/osc-sink --bind 127.0.0.1:$PB --channels $CH --mode batch --factor 30 --seconds $((S+5)) > /tmp/ol_batch.out 2>/dev/null &
Bq=$!
python3 - "$PC" $((S+5)) > /tmp/ol_perch.out <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.settimeout(0.2)
n = 0; end = time.time() + float(sys.argv[2])
while time.time() < end:
    try:
        s.recv(65536); n += 1
    except socket.timeout:
        pass
print(f"per-channel datagrams received {n}")
PY
C=$!
$B/oe-simulator --channels $CH --seconds $S --port $ZP 2>/dev/null &
SIM=$!
sleep 0.3
$B/openephys-zmq2osc -c "$cfg" --seconds $((S+2)) --stats-interval 0 --no-tui > /tmp/ol_bridge.out 2>/dev/null &
BR=$!
sleep 3
T0=$(awk '{print $14+$15}' /proc/$BR/stat); W0=$(date +%s.%N)
sleep $((S-4))
T1=$(awk '{print $14+$15}' /proc/$BR/stat); W1=$(date +%s.%N)
RSS=$(awk '/VmRSS/ {print $2/1024 " MB"}' /proc/$BR/status)
wait $BR $A $Bq $C $SIM
echo "bridge CPU $(echo "($T1-$T0)/$(getconf CLK_TCK)/($W1-$W0)*100" | bc -l | cut -c1-5) % of one core, RSS $RSS"
echo "full (sample F=1):  $(cat /tmp/ol_full.out)"
echo "batch (F=30, b=10): $(cat /tmp/ol_batch.out)"
cat /tmp/ol_perch.out
grep -E "^osc \[|ledger" /tmp/ol_bridge.out
rm -f "$cfg"
