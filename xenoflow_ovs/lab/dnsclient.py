"""Ask ``who.example.lab TXT`` and return the answer (which backend replied).

Works with dnspython 1.16 (Ryu env) and 2.x: the query and the reading of its
answer come from :mod:`xenoflow_ovs.lab.frames`, the exchange is
``dns.query.udp(q, where, timeout=, port=, source=)``, or ``dns.query.tcp``
with the same arguments when `tcp` (one connection per query). The server may
be an IPv4 or an IPv6 address (a VIP or a VIP6); a source address, when given,
must be of the same family.

In a namespace, run it as a module (JSON on stdout)::

    ip netns exec NS python -m xenoflow_ovs.lab.dnsclient \\
        --server 198.18.0.53 --src 198.18.0.101 --count 10 [--tcp]
    {"server": ..., "src": ..., "count": 10, "tcp": false, "answers": ["fips2", ...],
     "by_answer": {"fips2": 10}, "timeouts": 0, "errors": 0}

or from Python with :func:`query_many_in_ns` / :func:`query_txt_in_ns`, which
do exactly that with this interpreter (sys.executable) and parse the JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Dict, List, Optional

from .pyenv import subprocess_env as _subprocess_env

DEFAULT_NAME = "who.example.lab"

__all__ = ["query_txt", "query_many", "query_rounds", "query_txt_in_ns", "query_many_in_ns", "main"]


class _NoAnswer(Exception):
    pass


def _one(server: str, src: Optional[str], name: str, timeout: float, port: int, tcp: bool = False) -> str:
    import dns.query

    from .frames import answer_txt, make_query

    exchange = dns.query.tcp if tcp else dns.query.udp
    r = exchange(make_query(name, "TXT"), server, timeout=timeout, port=port, source=src)
    txt = answer_txt(r)
    if txt is None:
        raise _NoAnswer("no TXT in answer (rcode %s)" % r.rcode())
    return txt


def query_txt(server: str, src: Optional[str] = None, name: str = DEFAULT_NAME,
              timeout: float = 1.0, port: int = 53, tcp: bool = False) -> Optional[str]:
    """One query; the TXT string, or None on timeout or a reply without TXT."""
    import dns.exception

    try:
        return _one(server, src, name, timeout, port, tcp)
    except (dns.exception.Timeout, _NoAnswer):
        return None


def query_many(server: str, src: Optional[str] = None, count: int = 1,
               name: str = DEFAULT_NAME, timeout: float = 1.0, port: int = 53, tcp: bool = False) -> Dict:
    """`count` sequential queries; a summary dict (see the module doc)."""
    import dns.exception

    answers: List[Optional[str]] = []
    by: Dict[str, int] = {}
    timeouts = errors = 0
    last_error = None
    for _ in range(count):
        ans = None
        try:
            ans = _one(server, src, name, timeout, port, tcp)
        except dns.exception.Timeout:
            timeouts += 1
        except Exception as e:  # wrong source (DSR trap), refused connection, malformed reply, no TXT...
            errors += 1
            last_error = "%s: %s" % (type(e).__name__, e)
        answers.append(ans)
        if ans is not None:
            by[ans] = by.get(ans, 0) + 1
    out = {"server": server, "src": src, "name": name, "count": count, "tcp": tcp, "answers": answers,
           "by_answer": by, "timeouts": timeouts, "errors": errors}
    if last_error:
        out["last_error"] = last_error
    return out


def query_rounds(server: str, sources: List[str], rounds: int, interval: float,
                 name: str = DEFAULT_NAME, timeout: float = 1.0, port: int = 53) -> Dict[str, Dict]:
    """`rounds` rounds of one query from every source in turn, a round starting every
    `interval` seconds (a steady rate per source, as a resolver would ask, not a burst);
    {source: summary} in query_many's shape. A round that overruns starts the next one at
    once, so a lost query delays the schedule but never drops a round."""
    import time

    per: Dict[str, Dict] = {s: {"server": server, "src": s, "name": name, "count": 0, "tcp": False,
                                "by_answer": {}, "timeouts": 0, "errors": 0} for s in sources}
    t0 = time.monotonic()
    for r in range(rounds):
        time.sleep(max(0.0, t0 + r * interval - time.monotonic()))
        for s in sources:
            _tally(per[s], server, s, name, timeout, port)
    return per


def _tally(out: Dict, server: str, src: str, name: str, timeout: float, port: int) -> None:
    """One query from `src`, counted into a query_many-shaped summary."""
    import dns.exception

    out["count"] += 1
    try:
        ans = _one(server, src, name, timeout, port)
    except dns.exception.Timeout:
        out["timeouts"] += 1
        return
    except Exception as e:  # as query_many: a wrong source, a malformed reply, no TXT
        out["errors"] += 1
        out["last_error"] = "%s: %s" % (type(e).__name__, e)
        return
    out["by_answer"][ans] = out["by_answer"].get(ans, 0) + 1


def query_many_in_ns(ns: Optional[str], server: str, src: Optional[str] = None, count: int = 1,
                     name: str = DEFAULT_NAME, timeout: float = 1.0, port: int = 53,
                     python: Optional[str] = None, tcp: bool = False) -> Dict:
    """query_many() run inside namespace `ns` (``ip netns exec``)."""
    from .netns import run_in_ns

    argv = [python or sys.executable, "-m", "xenoflow_ovs.lab.dnsclient", "--server", server,
            "--count", str(count), "--name", name, "--timeout", str(timeout), "--port", str(port)]
    if src:
        argv += ["--src", src]
    if tcp:
        argv += ["--tcp"]
    p = run_in_ns(ns, argv, env=_subprocess_env(), timeout=30 + count * (timeout + 1))
    return json.loads(p.stdout)


def query_txt_in_ns(ns: Optional[str], server: str, src: Optional[str] = None,
                    name: str = DEFAULT_NAME, timeout: float = 1.0, port: int = 53,
                    python: Optional[str] = None, tcp: bool = False) -> Optional[str]:
    """One query from inside `ns`; the TXT string or None."""
    return query_many_in_ns(ns, server, src, 1, name, timeout, port, python, tcp)["answers"][0]


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m xenoflow_ovs.lab.dnsclient",
                                 description="query who.example.lab TXT; print a JSON summary")
    ap.add_argument("--server", required=True, help="server address (the VIP or VIP6)")
    ap.add_argument("--src", default=None, help="source address to send from (the server's family)")
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--name", default=DEFAULT_NAME)
    ap.add_argument("--timeout", type=float, default=1.0)
    ap.add_argument("--port", type=int, default=53)
    ap.add_argument("--tcp", action="store_true", help="over TCP (one connection per query)")
    a = ap.parse_args(argv)
    res = query_many(a.server, a.src, a.count, a.name, a.timeout, a.port, a.tcp)
    sys.stdout.write(json.dumps(res) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
