"""`xenoflow top`: the dashboard's numbers in a terminal, for an operator on the DPU's console.

Two samples of `GET /status` (controller/status.py) a few seconds apart make a frame:
per service and backend the packets/s and bytes/s of each plane and its state, the
fallback (an ALARM when any packet fell back) and miss_other rates, the verdict and
what stands behind it, the rate limits and what they dropped, and on a DPU of a fleet
its version and BGP announcement. `frame()` is pure (samples in, lines out); the
curses loop and `--once` only fetch, time and draw.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple
from urllib.parse import urlsplit

from .exitcodes import EXIT_ERROR, EXIT_OK


class Sample(NamedTuple):
    status: Dict[str, Any]
    at: float               # monotonic seconds when the reply arrived


# A line of a frame: (style, text); style "" plain, "head", "alarm" (drawn highlighted)
Line = Tuple[str, str]


# ---------------------------------------------------------------- pure rendering


def rate(prev: Any, cur: Any, dt: float) -> Optional[float]:
    """Per second between two counter readings; None where either is missing or the
    counter went down (a restarted plane: no rate across it)."""
    if not isinstance(prev, (int, float)) or not isinstance(cur, (int, float)) or dt <= 0 or cur < prev:
        return None
    return (cur - prev) / dt


def read_at(st: Dict[str, Any], plane: str) -> Optional[float]:
    """When a plane's counters were read, as the status says (the page does the same): the
    eSwitch's at the controller's last eswitchd poll, OVS's as of its bridges' oldest
    count. Rates over these do not jitter with when `top` happened to ask."""
    if plane == "eswitch":
        t = _get(st, "eswitch", "polled_at")
        return float(t) if isinstance(t, (int, float)) else None
    times = [b.get("counted_at") for b in (st.get("bridges") or {}).values() if isinstance(b, dict)]
    times = [t for t in times if isinstance(t, (int, float))]
    return float(min(times)) if times else None


def plane_dt(prev: Dict[str, Any], cur: Dict[str, Any], plane: str, dt: float) -> float:
    """Seconds between the two samples' readings of `plane` (0: the same reading, no rate),
    else between the samples themselves (an older controller's status)."""
    a, b = read_at(prev, plane), read_at(cur, plane)
    return b - a if a is not None and b is not None else dt


def new_readings(prev: Dict[str, Any], cur: Dict[str, Any]) -> bool:
    """`cur` holds a new reading of every plane whose reading time the status gives."""
    for plane in ("eswitch", "ovs"):
        a, b = read_at(prev, plane), read_at(cur, plane)
        if a is not None and b is not None and b <= a:
            return False
    return True


def pick_prev(history: Sequence[Sample], cur: Sample) -> Optional[Sample]:
    """The sample to take rates from: the newest earlier one that `cur` has new readings
    of every plane against (polling faster than the controller reads the planes repeats a
    reading: no news, not a rate of 0), else the last one."""
    for s in reversed(history):
        if new_readings(s.status, cur.status):
            return s
    return history[-1] if history else None


HISTORY = 32        # samples kept to find one with older readings


def human(x: Optional[float]) -> str:
    """A rate in 5 characters or so: 0, 3.5, 812, 12.4k, 1.20M; '-' when unknown."""
    if x is None:
        return "-"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return "%.3g%s" % (x / div, suffix)
    return "0" if x == 0 else ("%.3g" % x if abs(x) < 100 else "%.0f" % x)


def backend_state(st: Dict[str, Any], svc: str, be: str) -> str:
    """in service, drained, unhealthy or out of service, from the backend's own fields,
    the health checks and (in a fleet) this DPU's own probes while cut off."""
    c = ((st.get("services") or {}).get(svc) or {}).get(be) or {}
    h = (st.get("health") or {}).get("%s/%s" % (svc, be)) or {}
    local_down = ((st.get("fleet") or {}).get("local_down") or {}).get(svc) or []
    if c.get("drained"):
        return "drained"
    if c.get("healthy") is False or h.get("up") is False or be in local_down:
        return "unhealthy"
    if c.get("in_service") is False:
        return "out of service"
    return "in service"


def _get(st: Optional[Dict[str, Any]], *path: str) -> Any:
    for key in path:
        if not isinstance(st, dict):
            return None
        st = st.get(key)
    return st


def _drops(lim: Any, plane: str) -> Optional[int]:
    """What a service's limits dropped on a plane, all scopes; None: the plane has none."""
    scopes = _get(lim, "limited_packets", plane)
    if not isinstance(scopes, dict):
        return None
    return sum(int(v) for v in scopes.values() if isinstance(v, (int, float)))


def header_lines(st: Dict[str, Any], when: str) -> List[Line]:
    es = st.get("eswitch") or {}
    driver = es.get("driver") or "?"
    if driver != "none":
        driver += " (%s)" % ("connected" if es.get("connected") else "NOT connected")
    verdict = str(st.get("verdict"))
    return [("head", "xenoflow top  dpu %s  verdict %s  eswitch %s  runtime %s  %s" % (
        st.get("dpu"), verdict, driver, st.get("runtime") or "?", when))]


def traffic_lines(prev: Dict[str, Any], cur: Dict[str, Any], dt: float) -> List[Line]:
    """The fallback (an alarm once any packet fell back) and miss_other rates."""
    out: List[Line] = []
    fb = cur.get("fallback_packets")
    dt = plane_dt(prev, cur, "ovs", dt)     # fallback and miss_other are OVS counters
    fb_rate = human(rate(prev.get("fallback_packets"), fb, dt))
    if fb is None:
        out.append(("", "fallback n/a (no eSwitch: OVS alone balances)"))
    elif fb:
        out.append(("alarm", "ALARM fallback %d packets, %s pkt/s: OVS carried service or route traffic "
                    "the eSwitch should have" % (fb, fb_rate)))
    else:
        out.append(("", "fallback 0 packets, %s pkt/s" % fb_rate))
    out.append(("", "miss_other %s packets, %s pkt/s   packet-ins %s" % (
        cur.get("miss_other_packets"), human(rate(prev.get("miss_other_packets"),
                                                  cur.get("miss_other_packets"), dt)),
        cur.get("packet_ins"))))
    return out


BACKEND_COLUMNS = ("STATE", "eSw pkt/s", "eSw B/s", "OVS pkt/s", "OVS B/s")


def backend_lines(prev: Dict[str, Any], cur: Dict[str, Any], dt: float) -> List[Line]:
    rows = [(svc, be) for svc, bes in sorted((cur.get("services") or {}).items()) for be in sorted(bes)]
    width = max([len("%s/%s" % r) for r in rows] + [len("BACKEND")])
    fmt = "%-*s  %-14s %10s %10s %10s %10s"
    out: List[Line] = [("head", fmt % ((width, "BACKEND") + BACKEND_COLUMNS))]
    for svc, be in rows:
        now, was = cur["services"][svc][be], _get(prev, "services", svc, be) or {}
        cells = [human(rate(was.get(k), now.get(k), plane_dt(prev, cur, k.split("_")[0], dt)))
                 for k in ("eswitch_packets", "eswitch_bytes", "ovs_packets", "ovs_bytes")]
        state = backend_state(cur, svc, be)
        out.append(("" if state in ("in service", "drained") else "alarm",
                    fmt % ((width, "%s/%s" % (svc, be), state) + tuple(cells))))
    if not rows:
        out.append(("", "(no services)"))
    return out


def limit_lines(prev: Dict[str, Any], cur: Dict[str, Any], dt: float) -> List[Line]:
    """Per service with limits: the rates configured, and what each plane dropped (per
    second now, and in all)."""
    out: List[Line] = []
    for svc, lim in sorted((cur.get("limits") or {}).items()):
        rates = ["%s %s pps" % (scope, lim[key]) for scope, key in (("service", "pps"),
                                                                     ("per bucket", "per_bucket_pps"))
                 if lim.get(key) is not None]
        planes = []
        for plane in ("eswitch", "ovs"):
            n = _drops(lim, plane)
            if n is not None:
                # OVS's drops are meter statistics, read apart from the flows: sample time
                pdt = plane_dt(prev, cur, plane, dt) if plane == "eswitch" else dt
                r = rate(_drops(_get(prev, "limits", svc), plane), n, pdt)
                planes.append("%s %s/s (%d in all)" % (plane, human(r), n))
        out.append(("", "limits %s: %s; rate-limited %s" % (svc, ", ".join(rates) or "none",
                                                             ", ".join(planes) or "none")))
    return out


def verdict_lines(st: Dict[str, Any]) -> List[Line]:
    """What stands behind a verdict other than consistent, as far as the status shows it
    (`xenoflow check` lists the differing rules themselves)."""
    out: List[Line] = []
    if st.get("verdict") != "consistent":
        out.append(("alarm", "verdict %s (xenoflow check shows why)" % st.get("verdict")))
    es = st.get("eswitch") or {}
    if es.get("error"):
        out.append(("alarm", "eSwitch: %s" % es["error"]))
    for name, br in sorted((st.get("bridges") or {}).items()):
        if not br.get("connected"):
            out.append(("alarm", "bridge %s not connected" % name))
        elif br.get("in_sync") is False:
            out.append(("alarm", "bridge %s not in sync: %s flows, %s planned" % (
                name, br.get("flows"), br.get("planned"))))
    for a in st.get("alarms") or []:
        out.append(("alarm", "alarm %s: %s (%s times)" % (a.get("kind"), a.get("what"), a.get("count"))))
    return out


def fleet_lines(st: Dict[str, Any]) -> List[Line]:
    """A fleet DPU's row (its status carries its own part; every DPU's is in the store:
    `xenoflow fleet status`) and its BGP peers."""
    f = st.get("fleet")
    if not isinstance(f, dict):
        return []
    bgp = f.get("bgp") or {}
    if bgp:
        announced = ("announcing " + ", ".join(bgp["announced"]) if bgp.get("announced")
                     else "not announcing") + " (%s)" % bgp.get("why")
    else:
        announced = "no BGP"
    store = ("connected" if f.get("connected") else "cut off") + (", stale" if f.get("stale") else "")
    out: List[Line] = [
        ("head", "fleet"),
        ("alarm" if f.get("stale") or f.get("state") == "rejected" else "",
         "dpu %s: version %s of the store's %s, %s%s, verdict %s, %s, store %s" % (
             f.get("dpu") or st.get("dpu"), f.get("applied_version"), f.get("store_version"), f.get("state"),
             ": " + f["error"] if f.get("error") else "", st.get("verdict"), announced, store))]
    for peer, p in sorted((bgp.get("peers") or {}).items()):
        out.append(("" if p.get("bgp") == "Established" else "alarm",
                    "  peer %s: BGP %s, BFD %s" % (peer, p.get("bgp") or "?", p.get("bfd") or "off")))
    me = f.get("dpu") or st.get("dpu")
    for name, d in sorted((f.get("dpus") or {}).items()):
        if name != me and isinstance(d, dict):
            out.append(other_dpu_line(name, d, f.get("store_version")))
    return out


def other_dpu_line(name: str, d: Dict[str, Any], store_version: Any) -> Line:
    """Another DPU of the fleet as the store showed it at this DPU's last heartbeat."""
    why = d.get("announce_why")
    announced = ("announcing" if d.get("announced") else "not announcing") + (
        " (%s)" % why if why and why != "announced" else "")
    bad = (d.get("stale") or d.get("state") == "rejected" or not d.get("heard")
           or d.get("verdict") != "consistent")
    return ("alarm" if bad else "",
            "dpu %s: version %s of the store's %s, %s%s%s, verdict %s, %s%s" % (
                name, d.get("applied_version"), store_version, d.get("state"),
                ", drained" if d.get("drained") else "", ": " + d["error"] if d.get("error") else "",
                d.get("verdict"), announced, "" if d.get("heard") else ", silent"))


def frame(prev: Optional[Sample], cur: Sample, when: str = "") -> List[Line]:
    """The lines of one screen from two samples (prev None: the first, rates unknown)."""
    st = cur.status
    was = prev.status if prev is not None else {}
    dt = cur.at - prev.at if prev is not None else 0.0
    out = header_lines(st, when)
    out += traffic_lines(was, st, dt)
    out += verdict_lines(st)
    out += [("", "")] + backend_lines(was, st, dt)
    lim = limit_lines(was, st, dt)
    out += ([("", "")] + lim) if lim else []
    fleet = fleet_lines(st)
    out += ([("", "")] + fleet) if fleet else []
    return out


def unreachable_line(where: str, error: str, interval: Optional[float] = None) -> Line:
    """interval: how often it is tried again (None: not tried again)."""
    again = " (retrying every %g s)" % interval if interval is not None else ""
    return ("alarm", "cannot reach the controller at %s: %s%s" % (where, error, again))


def fit(lines: List[Line], width: int, height: Optional[int] = None) -> List[Line]:
    """Cut every line to the terminal's width (and the frame to its height): a narrow
    terminal shows less, never wraps or fails."""
    width = max(0, width)
    kept = lines if height is None else lines[:max(0, height)]
    return [(style, text[:width]) for style, text in kept]


# ---------------------------------------------------------------- fetching


class Source:
    """Where `/status` comes from: a URL, a unix socket (the API's) or the config's
    listeners. `fetch()` returns the status or raises OSError / ValueError."""

    def __init__(self, where: str, get: Callable[[], Tuple[int, Any]]):
        self.where = where
        self._get = get

    def fetch(self) -> Dict[str, Any]:
        code, body = self._get()
        if code != 200 or not isinstance(body, dict):
            raise ValueError("GET /status answered %s: %s" % (code, str(body)[:200]))
        return body


def url_source(url: str, timeout: float) -> Source:
    """`--url http://HOST:PORT`: the metrics listener (or the API); only http, so a URL
    can never read a local file."""
    from .api import server as api
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError("--url needs http://HOST:PORT (got %r)" % url)
    path = parts.path.rstrip("/")
    path = path if path.endswith("/status") else path + "/status"
    host, port = parts.hostname, parts.port or 80
    return Source(url, lambda: api.request("GET", path, host=host, port=port, timeout=timeout))


def config_source(args: argparse.Namespace) -> Source:
    """As `xenoflow status` finds the controller (-c, XENOFLOW_CONFIG, then the running
    lab's derived config): the API's unix socket while it exists (it is reachable from
    the host in the lab, where the listeners are inside the DPU's namespace), else the
    config's read-only metrics listener, else the API's TCP listener. Raises ValueError
    when no config is found or it does not load."""
    from . import cli
    from .api import server as api
    from .intent import config as config_mod
    if args.socket:
        token = api.read_token(args.token_file)
        return Source(args.socket, lambda: api.request("GET", "/status", unix_path=args.socket,
                                                       token=token, timeout=args.timeout))
    candidates = [args.config] if args.config else [
        c for c in (os.environ.get("XENOFLOW_CONFIG"),) + cli.DEFAULT_CONFIGS if c]
    path = next((c for c in candidates if os.path.exists(c)), None)
    if path is None:
        raise ValueError("no config found (tried %s); pass -c FILE, --socket PATH or --url URL"
                         % ", ".join(candidates))
    try:
        cfg = config_mod.load(path)
    except config_mod.ConfigError as exc:
        raise ValueError("\n".join(exc.lines())) from None
    sock = cfg.path(cfg.api.socket) if cfg.api.socket else None
    token = api.read_token(args.token_file or (cfg.path(cfg.api.token_file) if cfg.api.token_file else None))
    ep = cfg.metrics if cfg.metrics.host is not None else cfg.api

    def get() -> Tuple[int, Any]:
        if sock and os.path.exists(sock):
            return api.request("GET", "/status", unix_path=sock, token=token, timeout=args.timeout)
        return api.request("GET", "/status", host=ep.host, port=ep.port, timeout=args.timeout,
                           token=None if ep is cfg.metrics else token)
    where = "%s (socket %s, else %s:%s)" % (path, sock, ep.host, ep.port) if sock else \
        "%s (%s:%s)" % (path, ep.host, ep.port)
    return Source(where, get)


def sample(src: Source, clock: Callable[[], float] = time.monotonic) -> Tuple[Optional[Sample], str]:
    """(a sample, "") or (None, why not)."""
    try:
        return Sample(src.fetch(), clock()), ""
    except (OSError, ValueError) as exc:   # refused, timed out, a non-JSON or error reply
        return None, str(exc) or exc.__class__.__name__


# ---------------------------------------------------------------- the two front ends


def run_once(src: Source, interval: float, out: Any = sys.stdout) -> int:
    """Two samples `interval` apart, one plain frame; unreachable: the line, exit 2."""
    first, err = sample(src)
    if first is not None:
        # up to 4 more samples while the controller has not read the planes again
        for _ in range(5):
            time.sleep(interval)
            second, err = sample(src)
            if second is None or new_readings(first.status, second.status):
                break
        if second is not None:
            for _, text in frame(first, second, time.strftime("%H:%M:%S")):
                print(text, file=out)
            return EXIT_OK
    print(unreachable_line(src.where, err)[1], file=out)
    return EXIT_ERROR


def _draw(scr: Any, lines: List[Line], attrs: Dict[str, int]) -> None:
    scr.erase()
    height, width = scr.getmaxyx()
    # the last column of the last row cannot be written without curses raising
    for y, (style, text) in enumerate(fit(lines, width - 1, height)):
        scr.addstr(y, 0, text, attrs.get(style, 0))
    scr.refresh()


def _screen(scr: Any, src: Source, interval: float) -> int:
    import curses
    try:
        curses.curs_set(0)
    except curses.error:   # a terminal that cannot hide its cursor
        pass
    attrs = {"head": curses.A_BOLD, "alarm": curses.A_REVERSE}
    scr.timeout(100)
    history: List[Sample] = []
    last: Optional[List[Line]] = None
    due = 0.0
    lines: List[Line] = [("", "reading %s ..." % src.where)]
    while True:
        if time.monotonic() >= due:
            cur, err = sample(src)
            due = time.monotonic() + interval
            if cur is not None:
                last = frame(pick_prev(history, cur), cur,
                             time.strftime("%H:%M:%S") + "  every %g s, q quits" % interval)
                history, lines = (history + [cur])[-HISTORY:], last
            else:   # keep the last numbers below the line, rates restart from the next sample
                history = []
                lines = [unreachable_line(src.where, err, interval)] + ([("", "")] + last if last else [])
            _draw(scr, lines, attrs)
        ch = scr.getch()
        if ch in (ord("q"), ord("Q")):
            return EXIT_OK
        if ch == curses.KEY_RESIZE:
            _draw(scr, lines, attrs)


def run_screen(src: Source, interval: float) -> int:
    import curses
    if not (sys.stdin.isatty() and sys.stdout.isatty()):   # piped or from a script: no keys, no screen
        print("xenoflow top: not a terminal; use --once", file=sys.stderr)
        return EXIT_ERROR
    try:
        return curses.wrapper(_screen, src, interval)
    except KeyboardInterrupt:
        return EXIT_OK
    except curses.error as exc:   # no terminfo for $TERM, not a terminal
        print("xenoflow top: this terminal cannot run curses (%s); use --once" % exc, file=sys.stderr)
        return EXIT_ERROR


def main(args: argparse.Namespace) -> int:
    if args.interval <= 0:
        print("--interval must be positive", file=sys.stderr)
        return EXIT_ERROR
    try:
        src = url_source(args.url, args.timeout) if args.url else config_source(args)
    except (OSError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return EXIT_ERROR
    if args.once:
        return run_once(src, args.interval)
    return run_screen(src, args.interval)

