"""A TCP relay from the host's loopback into a lab namespace: the lab's controller serves
its read-only metrics listener (the dashboard, /status, /metrics) on 127.0.0.1 inside the
DPU's namespace, where the host's browser cannot reach it.

    python -m xenoflow_ovs.lab.relay --listen 127.0.0.1:9302 --netns xf-dpu --to 127.0.0.1:9302

The process binds its listener in the namespace it starts in (the host's), then enters
`--netns` (pyroute2's setns, before any thread starts, so every thread is in it), so every
connection it opens to `--to` is made inside the namespace. Only loopback listeners:
the relay forwards no credentials of its own, and what it reaches is read-only.
"""
from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
import threading
from typing import List, Optional, Tuple

log = logging.getLogger("xenoflow.relay")

MAX_CONNECTIONS = 32
IDLE_TIMEOUT = 60.0      # s a relayed connection may stay silent in both directions
CHUNK = 65536


def parse_hostport(text: str) -> Tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("%r is not HOST:PORT" % text)
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    return host in ("127.0.0.1", "::1", "localhost") or host.startswith("127.")


def _pump(src: socket.socket, dst: socket.socket) -> None:
    """One direction until EOF or an error; then the other side learns of it."""
    try:
        while True:
            data = src.recv(CHUNK)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _relay(client: socket.socket, target: Tuple[str, int], slots: threading.Semaphore) -> None:
    try:
        upstream = socket.create_connection(target, timeout=5)
    except OSError as e:
        log.warning("%s:%d unreachable in the namespace: %s", target[0], target[1], e)
        client.close()
        slots.release()
        return
    for s in (client, upstream):
        s.settimeout(IDLE_TIMEOUT)
    back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
    back.start()
    _pump(client, upstream)
    back.join()
    client.close()
    upstream.close()
    slots.release()


def serve(listener: socket.socket, target: Tuple[str, int]) -> None:
    slots = threading.Semaphore(MAX_CONNECTIONS)
    while True:
        client, _ = listener.accept()
        if not slots.acquire(blocking=False):
            client.close()         # a browser polls a few connections at most
            continue
        threading.Thread(target=_relay, args=(client, target, slots), daemon=True).start()


def listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(16)
    return s


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m xenoflow_ovs.lab.relay", description=__doc__.splitlines()[0])
    ap.add_argument("--listen", required=True, help="HOST:PORT on this namespace's loopback")
    ap.add_argument("--netns", required=True, help="the namespace to connect from")
    ap.add_argument("--to", required=True, help="HOST:PORT to reach inside --netns")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        host, port = parse_hostport(args.listen)
        target = parse_hostport(args.to)
    except ValueError as e:
        print("relay: %s" % e, file=sys.stderr)
        return 2
    if not is_loopback(host):
        print("relay: %s is not a loopback address" % host, file=sys.stderr)
        return 2
    try:
        listener = listen(host, port)
    except OSError as e:
        print("relay: cannot listen on %s:%d: %s" % (host, port, e.strerror), file=sys.stderr)
        return 2
    from pyroute2 import netns
    try:
        netns.setns(args.netns, flags=0)    # enter only: never create a namespace
    except OSError as e:
        print("relay: cannot enter namespace %s: %s" % (args.netns, e.strerror), file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    log.info("relaying %s:%d (host) -> %s:%d in namespace %s", host, port, target[0], target[1], args.netns)
    serve(listener, target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
