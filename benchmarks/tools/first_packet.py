#!/usr/bin/env python3
"""Wait for the first UDP datagram on ADDR:PORT and print when it came (CLOCK_MONOTONIC,
which every network namespace shares), for "insert to first forwarded packet".

    ip netns exec NS python3 first_packet.py --bind VIP --port 5353 [--timeout 10]

Prints {"ready": true} once bound, then one JSON line: first_ns (or null), packets
received in the --linger seconds after the first one.
"""
import argparse
import json
import socket
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--linger", type=float, default=0.3)
    a = ap.parse_args()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind((a.bind, a.port))
    s.settimeout(a.timeout)
    print(json.dumps({"ready": True}), flush=True)
    first, n = None, 0
    try:
        s.recv(2048)
        first = time.monotonic_ns()
        n = 1
        end = time.monotonic() + a.linger
        s.settimeout(0.05)
        while time.monotonic() < end:
            try:
                s.recv(2048)
                n += 1
            except socket.timeout:
                pass
    except socket.timeout:
        pass
    print(json.dumps({"first_ns": first, "packets": n}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
