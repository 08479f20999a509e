"""A bind9 backend in a network namespace.

Zone ``example.lab``: A ``www`` -> `www_ip`, TXT ``who`` -> "<name>", NS/SOA.
named listens on every address of both families (``listen-on``/``listen-on-v6
{ any; }``), over UDP and TCP: a VIP or VIP6 held on ``lo`` (direct server
return) is one of them, and named answers from the address that was asked.
Where the namespace has no IPv6 (none on any interface) the v6 side just has
nothing to listen on.
named runs as root in the foreground (``named -g``: logs to stderr, which goes
to <workdir>/named.log) in the backend namespace, started with ``ip netns exec``;
every path it writes (pid, lock, session key, managed keys) is in `workdir`, so
several instances coexist (one per namespace).

Counting answers: rndc is off (``controls { };``), so the statistics channel is
on, ``127.0.0.1:8053`` *inside the namespace* (each namespace has its own
loopback, so every backend uses the same port). :meth:`Bind9.stats` reads
``/json/v1/server`` from inside the namespace with this Python
(``ip netns exec NS python -c <urllib>``), and :meth:`Bind9.queries_answered`
returns ``nsstats["Response"]`` (responses sent, any transport). The readiness
probe of :meth:`Bind9.start` is answered too: compare deltas, not absolutes.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Dict, Optional

from .dnsclient import query_txt_in_ns
from .netns import popen_in_ns, run_in_ns

STATS_PORT = 8053

__all__ = ["Bind9", "STATS_PORT"]

_NAMED_CONF = """\
options {{
    directory "{wd}";
    pid-file "{wd}/named.pid";
    lock-file "{wd}/named.lock";
    session-keyfile "{wd}/session.key";
    managed-keys-directory "{wd}";
    dump-file "{wd}/named_dump.db";
    statistics-file "{wd}/named.stats";
    listen-on port 53 {{ any; }};
    listen-on-v6 port 53 {{ any; }};
    recursion no;
    allow-query {{ any; }};
    dnssec-validation no;
    minimal-responses yes;
    querylog no;
    notify no;
}};
controls {{ }};
statistics-channels {{
    inet 127.0.0.1 port {stats_port} allow {{ 127.0.0.1; }};
}};
zone "example.lab" {{ type primary; file "{wd}/example.lab.zone"; }};
"""

_ZONE = """\
$TTL 300
@   IN SOA ns.example.lab. admin.example.lab. ( 1 3600 600 86400 300 )
@   IN NS  ns.example.lab.
ns  IN A   {vip}
www IN A   {www_ip}
who IN TXT "{name}"
"""

_STATS_SNIPPET = (
    "import sys, urllib.request;"
    "sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:%d/json/v1/server', timeout=5)"
    ".read().decode())"
)


class Bind9:
    """bind9 serving example.lab inside namespace `ns`; who.example.lab TXT = `txt`
    (defaults to `name`)."""

    def __init__(self, ns: str, workdir: str, name: str, vip: str,
                 txt: Optional[str] = None, www_ip: str = "198.18.0.80",
                 python: Optional[str] = None, threads: Optional[int] = None) -> None:
        self.ns = ns
        self.workdir = os.path.abspath(workdir)
        self.name = name
        self.vip = vip
        self.txt = name if txt is None else txt
        self.www_ip = www_ip
        self.python = python or sys.executable
        self.threads = threads
        self.conf = os.path.join(self.workdir, "named.conf")
        self.log = os.path.join(self.workdir, "named.log")
        self.proc: Optional[subprocess.Popen] = None
        self._logf = None

    def write_config(self) -> None:
        os.makedirs(self.workdir, exist_ok=True)
        with open(self.conf, "w") as f:
            f.write(_NAMED_CONF.format(wd=self.workdir, stats_port=STATS_PORT))
        with open(os.path.join(self.workdir, "example.lab.zone"), "w") as f:
            f.write(_ZONE.format(vip=self.vip, www_ip=self.www_ip, name=self.txt))
        run_in_ns(None, ["named-checkconf", "-z", self.conf])

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def start(self, timeout: float = 20.0) -> "Bind9":
        """Start named and wait until it answers who.example.lab TXT on 127.0.0.1
        and its statistics channel responds."""
        if self.pid:
            return self
        self.write_config()
        self._logf = open(self.log, "ab")
        argv = ["named", "-g", "-c", self.conf]
        if self.threads:
            argv += ["-n", str(self.threads)]
        self.proc = popen_in_ns(self.ns, argv,
                                stdout=self._logf, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("named in %s exited rc=%s; see %s"
                                   % (self.ns, self.proc.returncode, self.log))
            try:
                ans = query_txt_in_ns(self.ns, "127.0.0.1", timeout=0.5)
                if ans == self.txt:
                    self.stats()
                    return self
            except (subprocess.SubprocessError, ValueError, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("named in %s not answering after %.0fs; see %s"
                                   % (self.ns, timeout, self.log))
            time.sleep(0.2)

    def stats(self) -> Dict:
        """The JSON of /json/v1/server from named's statistics channel."""
        p = run_in_ns(self.ns, [self.python, "-c", _STATS_SNIPPET % STATS_PORT], timeout=15)
        return json.loads(p.stdout)

    def queries_answered(self) -> int:
        """Responses named has sent so far (nsstats 'Response'; 0 when absent)."""
        return int(self.stats().get("nsstats", {}).get("Response", 0))

    def stop(self, timeout: float = 10.0) -> None:
        """Stop named by PID (SIGTERM, then SIGKILL)."""
        p = self.proc
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        self.proc = None
        if self._logf is not None:
            self._logf.close()
            self._logf = None

    def __enter__(self) -> "Bind9":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
