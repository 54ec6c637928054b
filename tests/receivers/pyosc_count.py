#!/usr/bin/env python3
"""Counts the bridge's /data/sample messages with python-osc's AsyncIO server.

Usage: pyosc_count.py PORT [--channels N] [--idle S] [--max S]

Prints "READY <port>" once the socket is bound (the test waits for it), then counts
/data/sample messages and checks that each has N float arguments. It stops when no datagram
arrived for --idle seconds after the first one, or after --max seconds, and prints one JSON
summary line: {"count", "bad_args", "other", "first"}.
Exits 3 if python-osc is missing (so the test fails instead of skipping).
"""
import argparse
import asyncio
import json
import socket
import sys
import time

try:
    from pythonosc.dispatcher import Dispatcher
    from pythonosc.osc_server import AsyncIOOSCUDPServer
except ImportError as e:  # pragma: no cover
    print(f"python-osc is not installed ({e}); run: python3 -m pip install python-osc", file=sys.stderr)
    sys.exit(3)

ap = argparse.ArgumentParser()
ap.add_argument("port", type=int)
ap.add_argument("--channels", type=int, default=8)
ap.add_argument("--idle", type=float, default=0.5)
ap.add_argument("--max", type=float, default=30.0)
a = ap.parse_args()

st = {"count": 0, "bad_args": 0, "other": 0, "first": None}
last = [None]


def on_sample(address, *args):
    last[0] = time.monotonic()
    st["count"] += 1
    if len(args) != a.channels or not all(isinstance(x, float) for x in args):
        st["bad_args"] += 1
    if st["first"] is None:
        st["first"] = list(args)


def on_other(address, *args):
    last[0] = time.monotonic()
    st["other"] += 1


# strict_timing=False: never sleep on bundle time tags in the receive path.
d = Dispatcher(strict_timing=False) if "strict_timing" in Dispatcher.__init__.__code__.co_varnames else Dispatcher()
d.map("/data/sample", on_sample)
d.set_default_handler(on_other)


async def main():
    srv = AsyncIOOSCUDPServer(("127.0.0.1", a.port), d, asyncio.get_running_loop())
    transport, _ = await srv.create_serve_endpoint()
    # A large receive buffer: the default (~208 KiB) loses bursts.
    transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    print(f"READY {a.port}", flush=True)
    start = time.monotonic()
    while True:
        await asyncio.sleep(0.05)
        now = time.monotonic()
        if last[0] is not None and now - last[0] >= a.idle:
            break
        if now - start >= a.max:
            break
    transport.close()
    print(json.dumps(st), flush=True)


asyncio.run(main())
