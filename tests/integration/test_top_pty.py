"""`xenoflow top` in a pseudo-terminal against the real metrics listener
(api.server.start_metrics_listener) serving a status built by the controller's own builder
(controller.status.build over a Runtime of the paper's intent) whose counters grow at every
request: the screen shows the backends and non-zero rates, `q` quits with 0 and leaves the
terminal as it found it; `--once` prints a plain frame; an unreachable controller is said so."""
from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time

import pytest
import yaml
from process_helpers import free_port

from xenoflow_ovs.api import server as api
from xenoflow_ovs.api.metrics import Metrics
from xenoflow_ovs.controller import status as status_mod
from xenoflow_ovs.controller.counters import Drops, MeteredTotals
from xenoflow_ovs.controller.runtime import Runtime
from xenoflow_ovs.intent import config
from xenoflow_ovs.lab.pyenv import subprocess_env

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAPER = os.path.join(ROOT, "topologies", "paper", "xenoflow.yaml")
LOADED = "fips2"
PKTS_PER_REQUEST, BYTES_PER_PKT = 400, 82
ROWS, COLS = 40, 160


class Dpu:
    """A controller's GET /status: the paper's intent with rate limits, eswitchd's totals in
    its reply format and the app view; every request is one more poll of traffic to LOADED
    and of drops by a bucket's limit."""

    def __init__(self):
        data = config.to_data(config.load(PAPER))
        data["dpu"]["eswitch"]["driver"] = "softdoca"
        data["services"][0]["limits"] = {"pps": 5000, "per_bucket_pps": 200}
        data["controller"]["metrics"] = {"host": "127.0.0.1", "port": free_port()}
        self.cfg = config.from_data(data, base_dir=os.path.dirname(PAPER))
        self.rt = Runtime(self.cfg, lambda changes: None)
        self.drops = Drops()
        self.rt.es_totals = MeteredTotals(self.drops)
        self.rt.transition(why="initial")
        self.rt.start()
        self.requests = 0
        self.lock = threading.Lock()

    def _view(self):
        plan = self.rt.in_force
        services = {svc.name: {b.name: {"ovs_packets": 0, "ovs_bytes": 0} for b in svc.backends}
                    for svc in self.cfg.services}
        es = self.cfg.eswitch
        return {"dpu": self.cfg.dpu_name, "runtime": "osken", "time": time.time(), "pid": os.getpid(),
                "eswitch": {"driver": es.driver, "mode": es.mode, "mirror_routes": es.mirror_routes,
                            "error": None},
                "bridges": {b.name: {"connected": True, "flows": plan.flow_count(b.name),
                                     "planned": plan.flow_count(b.name), "in_sync": True}
                            for b in self.cfg.bridges},
                "services": services, "routes": {}, "fallback_packets": 0, "miss_other_packets": 0,
                "packet_ins": 0, "repairs": 0, "last_reconcile": {}, "last_transition": {},
                "ovsdb": {}, "handler_errors": 0, "of_errors": 0}

    def status(self):
        with self.lock:
            self.requests += 1
            n = self.requests * PKTS_PER_REQUEST
            self.rt.es_totals.update({
                "table": {"boot": "b1"}, "ports": {p: {"miss_pkts": 0} for p in ("p0", "p1")},
                "totals": [{"kind": "bucket", "owner": "dns", "backend": LOADED, "pkts": n,
                            "bytes": n * BYTES_PER_PKT},
                           {"kind": "drop", "owner": "dns", "backend": "bucket/2", "pkts": n // 10,
                            "bytes": 0}]})
            return status_mod.build(self.rt, self._view(), "consistent", limited=self.drops)


@pytest.fixture
def listener():
    dpu = Dpu()
    srv = api.start_metrics_listener(dpu.cfg, Metrics(dpu.cfg.dpu_name, dpu.status), dpu.status)
    yield "http://127.0.0.1:%d" % srv.port, dpu
    srv.stop()


# ---------------------------------------------------------------- a terminal


class Screen:
    """What a terminal shows after the bytes curses sent it: enough of xterm's control
    sequences for ncurses' output (cursor addressing and motion, erasing, insert/delete,
    repeat); attributes and modes are read and dropped."""

    CSI = re.compile(rb"\x1b\[([?>]?)([0-9;]*)([ -/]*)([@-~])")

    def __init__(self, rows, cols):
        self.rows, self.cols = rows, cols
        self.cells = [[" "] * cols for _ in range(rows)]
        self.y = self.x = 0
        self.top, self.bottom = 0, rows - 1
        self.last = " "
        self.raw = b""

    def text(self):
        return "\n".join("".join(r).rstrip() for r in self.cells)

    def feed(self, data):
        self.raw += data
        i = 0
        while i < len(data):
            c = data[i:i + 1]
            if c == b"\x1b":
                i = self._escape(data, i)
                continue
            i += 1
            if c == b"\r":
                self.x = 0
            elif c == b"\n":
                self._index()
            elif c == b"\b":
                self.x = max(0, self.x - 1)
            elif c >= b" " and c != b"\x7f":
                self._put(c.decode("latin-1"))

    def _put(self, ch):
        if self.x >= self.cols:
            self.x = 0
            self._index()
        self.cells[self.y][self.x] = ch
        self.last = ch
        self.x += 1

    def _index(self):
        if self.y == self.bottom:
            del self.cells[self.top]
            self.cells.insert(self.bottom, [" "] * self.cols)
        else:
            self.y = min(self.rows - 1, self.y + 1)

    def _escape(self, data, i):
        m = self.CSI.match(data, i)
        if m:
            self._csi(m.group(1), [int(p) if p else 0 for p in m.group(2).split(b";")], m.group(4))
            return m.end()
        nxt = data[i + 1:i + 2]
        if nxt == b"M":                      # reverse index
            if self.y == self.top:
                del self.cells[self.bottom]
                self.cells.insert(self.top, [" "] * self.cols)
            else:
                self.y = max(0, self.y - 1)
        if nxt in (b"(", b")"):              # character set designation: ESC ( B
            return i + 3
        return i + 2

    def _csi(self, private, ps, final):
        if private:
            return                            # modes: alternate screen, cursor keys
        n = max(1, ps[0])
        for finals, act in ((b"HfABCDGdr", self._move), (b"KJX@P", self._erase), (b"LM", self._lines)):
            if final in finals:
                act(final, ps, n)
        if final == b"b":                     # repeat the last character
            for _ in range(n):
                self._put(self.last)
        # m (attributes), h/l (modes), t and the rest: nothing to draw

    def _move(self, final, ps, n):
        second = ps[1] if len(ps) > 1 else 0
        if final in b"Hf":
            self.y, self.x = min(self.rows, max(1, ps[0])) - 1, min(self.cols, max(1, second)) - 1
        elif final == b"r":                   # scrolling region; the cursor goes home
            self.top, self.bottom = max(1, ps[0]) - 1, (second or self.rows) - 1
            self.y = self.x = 0
        else:
            dy, dx = {b"A": (-n, 0), b"B": (n, 0), b"C": (0, n), b"D": (0, -n)}.get(final, (0, 0))
            self.y = {b"d": n - 1}.get(final, self.y + dy)
            self.x = {b"G": n - 1}.get(final, self.x + dx)
            self.y, self.x = min(self.rows - 1, max(0, self.y)), min(self.cols - 1, max(0, self.x))

    def _erase(self, final, ps, n):
        row = self.cells[self.y]
        if final == b"K":
            lo, hi = {0: (self.x, self.cols), 1: (0, self.x + 1), 2: (0, self.cols)}[ps[0]]
            row[lo:hi] = [" "] * (hi - lo)
        elif final == b"J":
            if ps[0] == 0:
                row[self.x:] = [" "] * (self.cols - self.x)
            rows = {0: range(self.y + 1, self.rows), 1: range(self.y), 2: range(self.rows)}.get(ps[0], ())
            for y in rows:
                self.cells[y] = [" "] * self.cols
        elif final == b"X":
            row[self.x:self.x + n] = [" "] * len(row[self.x:self.x + n])
        elif final == b"@":
            row[self.x:self.x] = [" "] * n
            del row[self.cols:]
        else:                                 # P: delete characters
            del row[self.x:self.x + n]
            row.extend([" "] * (self.cols - len(row)))

    def _lines(self, final, ps, n):
        for _ in range(n):
            if final == b"L":
                del self.cells[self.bottom]
                self.cells.insert(self.y, [" "] * self.cols)
            else:
                del self.cells[self.y]
                self.cells.insert(self.bottom, [" "] * self.cols)


class Top:
    """`xenoflow top ARGS` on the slave side of a pty of ROWS x COLS, as a console runs it."""

    def __init__(self, *argv):
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        self.before = termios.tcgetattr(slave)
        env = dict(subprocess_env(), TERM="xterm-256color", LINES=str(ROWS), COLUMNS=str(COLS))
        self.proc = subprocess.Popen([sys.executable, "-m", "xenoflow_ovs.cli", "top"] + list(argv),
                                     stdin=slave, stdout=slave, stderr=slave, env=env,
                                     start_new_session=True, close_fds=True)
        self.slave = slave
        self.screen = Screen(ROWS, COLS)

    def read_until(self, done, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done(self.screen.text()):
                return True
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    self.screen.feed(os.read(self.master, 65536))
                except OSError:       # EIO: the slave side is closed
                    break
        return done(self.screen.text())

    def press(self, key):
        os.write(self.master, key)

    def wait(self, timeout=10.0):
        try:
            rc = self.proc.wait(timeout)
        finally:
            self.read_until(lambda _: False, timeout=0.3)   # what it wrote last
        return rc

    def close(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(5)
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def terminal():
    started = []

    def run(*argv):
        t = Top(*argv)
        started.append(t)
        return t
    yield run
    for t in started:
        t.close()


def backend_row(text, name):
    rows = [line.split() for line in text.splitlines() if line.startswith("dns/" + name + " ")]
    return rows[-1] if rows else None


def loaded_rates_shown(text):
    """The loaded backend's eSwitch pkt/s and B/s are numbers above zero."""
    row = backend_row(text, LOADED)
    if row is None or len(row) < 7 or row[1:3] != ["in", "service"] or row[3] in ("-", "0"):
        return False
    return all(re.match(r"^[0-9.]+[kMG]?$", c) for c in row[3:5])


def a_whole_frame_with_rates(text):
    """curses rewrites only the cells that changed, and the pty may hand them over in parts:
    wait until every rate of the frame is drawn, not just the first row's."""
    idle = backend_row(text, "fips3")
    return (loaded_rates_shown(text) and idle is not None and len(idle) >= 7 and idle[3] != "-"
            and "rate-limited eswitch -/s" not in text)


def test_the_screen_shows_backends_and_rates_and_q_quits_cleanly(listener, terminal):
    url, dpu = listener
    top = terminal("--url", url, "--interval", "0.5")
    assert top.read_until(a_whole_frame_with_rates), top.screen.text()
    text = top.screen.text()
    for be in ("fips2", "fips3"):
        assert backend_row(text, be) is not None, text
    assert backend_row(text, "fips3")[3] == "0"          # idle backend: a rate, and it is zero
    assert "verdict consistent" in text and "fallback 0 packets" in text
    assert "limits dns: service 5000 pps, per bucket 200 pps; rate-limited eswitch" in text
    assert dpu.requests >= 2
    top.press(b"q")
    assert top.wait() == 0
    # curses let go of the terminal: its modes are back and the alternate screen is left
    assert termios.tcgetattr(top.slave) == top.before
    assert top.screen.raw.rfind(b"\x1b[?1049l") > top.screen.raw.rfind(b"\x1b[?1049h") >= 0


def test_once_prints_one_plain_frame(listener):
    url, _ = listener
    p = subprocess.run([sys.executable, "-m", "xenoflow_ovs.cli", "top", "--url", url, "--once",
                        "--interval", "0.5"], capture_output=True, text=True, timeout=30,
                       env=subprocess_env())
    assert p.returncode == 0, p.stderr
    assert "\x1b" not in p.stdout                        # plain text: for scripts and a log
    assert p.stdout.startswith("xenoflow top  dpu ")
    assert loaded_rates_shown(p.stdout), p.stdout
    rate = float(re.sub("[^0-9.]", "", backend_row(p.stdout, LOADED)[3])) * (
        1000 if backend_row(p.stdout, LOADED)[3].endswith("k") else 1)
    # PKTS_PER_REQUEST between two requests 0.5 s apart (and the time the first took)
    assert 200 < rate <= PKTS_PER_REQUEST / 0.5 * 1.05, p.stdout


def test_unreachable_controller_is_said_and_retried(terminal):
    port = free_port()                                  # nothing listens there
    top = terminal("--url", "http://127.0.0.1:%d" % port, "--interval", "0.3")
    assert top.read_until(lambda t: "cannot reach the controller at http://127.0.0.1:%d" % port in t
                          and "retrying every 0.3 s" in t), top.screen.text()
    top.press(b"q")
    assert top.wait() == 0
    p = subprocess.run([sys.executable, "-m", "xenoflow_ovs.cli", "top", "--url",
                        "http://127.0.0.1:%d" % port, "--once", "--interval", "0.1"],
                       capture_output=True, text=True, timeout=30, env=subprocess_env())
    assert p.returncode == 2 and "cannot reach the controller at" in p.stdout


def test_the_listener_coming_up_later_is_picked_up(terminal):
    dpu = Dpu()
    top = terminal("--url", "http://127.0.0.1:%d" % dpu.cfg.metrics.port, "--interval", "0.3")
    assert top.read_until(lambda t: "cannot reach the controller" in t), top.screen.text()
    srv = api.start_metrics_listener(dpu.cfg, Metrics(dpu.cfg.dpu_name, dpu.status), dpu.status)
    try:
        assert top.read_until(lambda t: "cannot reach" not in t and loaded_rates_shown(t)), \
            top.screen.text()
    finally:
        srv.stop()
    top.press(b"q")
    assert top.wait() == 0


def test_a_config_leads_to_its_api_socket_else_its_metrics_listener(listener, tmp_path):
    """-c FILE as `xenoflow status -c`: the API's unix socket while it exists (the lab's way in
    from the host), else the config's read-only metrics listener."""
    url, dpu = listener
    data = config.to_data(dpu.cfg)
    sock = str(tmp_path / "api.sock")
    data["controller"]["api"] = {"host": "127.0.0.1", "port": free_port(), "socket": sock}
    data["controller"]["metrics"] = {"host": "127.0.0.1", "port": int(url.rsplit(":", 1)[1])}
    data["dpu"]["state_dir"] = str(tmp_path / "state")
    path = tmp_path / "xf.yaml"
    path.write_text(yaml.safe_dump(data))

    def once():
        return subprocess.run([sys.executable, "-m", "xenoflow_ovs.cli", "top", "-c", str(path), "--once",
                               "--interval", "0.2"], capture_output=True, text=True, timeout=30,
                              env=subprocess_env(), cwd=os.path.dirname(PAPER))
    p = once()                                          # no socket: the metrics listener
    assert p.returncode == 0 and loaded_rates_shown(p.stdout), p.stdout + p.stderr
    other = Dpu()                                       # the socket answers with another DPU's
    other_status = lambda: dict(other.status(), dpu="via-socket")  # noqa: E731
    srv = api.Api(None, None, unix_path=sock, name="API")
    srv.route("GET", "/status", lambda body: (200, other_status()))
    srv.start()
    try:
        p = once()
    finally:
        srv.stop()
    assert p.returncode == 0 and p.stdout.startswith("xenoflow top  dpu via-socket "), p.stdout + p.stderr


def test_without_a_terminal_it_points_to_once(listener):
    url, _ = listener
    p = subprocess.run([sys.executable, "-m", "xenoflow_ovs.cli", "top", "--url", url],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
                       env=subprocess_env())
    assert p.returncode == 2 and "not a terminal; use --once" in p.stderr and p.stdout == ""
