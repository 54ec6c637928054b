"""Browses `_oscjson._tcp.local.` with python-zeroconf (an mDNS implementation independent of the
bridge's) on the loopback interface and prints one JSON line per resolved OSCQuery service:
{"name": ..., "port": ..., "addresses": [...], "server": ...}. Exits 0 after the first one, 1
after the timeout with nothing found.

usage: python3 browse.py [timeout_s]
"""
import json
import sys
import threading

from zeroconf import IPVersion, ServiceBrowser, ServiceStateChange, Zeroconf

TYPE = "_oscjson._tcp.local."
timeout = float(sys.argv[1]) if len(sys.argv) > 1 else 20.0
found = threading.Event()
zc = Zeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)


def on_change(zeroconf, service_type, name, state_change):
    if state_change is not ServiceStateChange.Added:
        return
    info = zeroconf.get_service_info(service_type, name, timeout=3000)
    if info is None:
        return
    print(json.dumps({
        "name": name,
        "port": info.port,
        "addresses": info.parsed_addresses(),
        "server": info.server,
    }), flush=True)
    found.set()


browser = ServiceBrowser(zc, TYPE, handlers=[on_change])
ok = found.wait(timeout)
browser.cancel()
zc.close()
sys.exit(0 if ok else 1)
