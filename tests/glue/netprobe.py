"""Small traffic helpers run inside the test namespaces (``python netprobe.py MODE ...``).

sink IP PORT       count UDP datagrams to IP:PORT per source address until stdin closes,
                   then print one JSON line {source: count}.
capture IFACE      count frames on IFACE (AF_PACKET) until stdin closes: UDP to port 5454
                   and ARP requests for 198.18.0.99 (the test's unmatched traffic markers).
send SPEC_JSON     send UDP datagrams: [[src, dst, dport, count], ...], 1 ms apart, and
                   ARP requests for 198.18.0.99 on IFACE (arp_iface, arp_count); print totals.
Every loop is bounded (count, or stdin/timeout).
"""
from __future__ import annotations

import json
import select
import socket
import sys
import time

from xenoflow_ovs.lab import frames

ETH_P_ALL = 0x0003
MARK_PORT = 5454
ARP_TARGET = "198.18.0.99"


def _until_stdin_closes(sock: socket.socket, handle, max_s: float = 300.0) -> None:
    deadline = time.monotonic() + max_s
    while time.monotonic() < deadline:
        r, _, _ = select.select([sock, sys.stdin], [], [], 0.5)
        if sys.stdin in r and not sys.stdin.readline():
            return
        if sock in r:
            handle(sock)


def sink(ip: str, port: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.bind((ip, port))
    counts = {}

    def handle(sock):
        _, addr = sock.recvfrom(2048)
        counts[addr[0]] = counts.get(addr[0], 0) + 1

    print("READY", flush=True)
    _until_stdin_closes(s, handle)
    print(json.dumps(counts), flush=True)


def capture(iface: str) -> None:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((iface, 0))
    counts = {"udp_mark": 0, "arp_mark": 0, "frames": 0}

    def handle(sock):
        f = frames.parse_frame(sock.recv(4096))
        counts["frames"] += 1
        if f.arp_tpa == ARP_TARGET:
            counts["arp_mark"] += 1
        elif f.ip_proto == frames.IPPROTO_UDP and f.l4_dst == MARK_PORT:
            counts["udp_mark"] += 1

    print("READY", flush=True)
    _until_stdin_closes(s, handle)
    print(json.dumps(counts), flush=True)


def send(spec: dict) -> None:
    sent = {}
    for src, dst, dport, count in spec["udp"]:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((src, 0))
        # a minimal DNS query (id, RD, one question: xf.lab A IN)
        for i in range(count):
            s.sendto(frames.dns_query("xf.lab", "A", qid=i), (dst, dport))
            time.sleep(0.001)
        s.close()
        key = "%s>%s:%d" % (src, dst, dport)
        sent[key] = sent.get(key, 0) + count
    n_arp = spec.get("arp_count", 0)
    if n_arp:
        r = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        r.bind((spec["arp_iface"], 0))
        arp = frames.arp_frame(r.getsockname()[4], spec["arp_src"], ARP_TARGET)
        for _ in range(n_arp):
            r.send(arp)
            time.sleep(0.001)
        r.close()
        sent["arp"] = n_arp
    print(json.dumps(sent), flush=True)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "sink":
        sink(sys.argv[2], int(sys.argv[3]))
    elif mode == "capture":
        capture(sys.argv[2])
    elif mode == "send":
        send(json.loads(sys.argv[2]))
    else:
        raise SystemExit("unknown mode " + mode)
