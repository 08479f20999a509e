"""`xenoflow`: the command line. Subcommands import their machinery lazily so that
`check-config` and `plan` work without os-ken, Ryu, OVS or DPDK installed."""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import List, Optional

from . import __version__, logsetup, overlay_cli
from .exitcodes import EXIT_ERROR, EXIT_FOUND, EXIT_OK
from .fleet import cli as fleet_cli
from .intent import config as config_mod


def _load_or_report(path: str) -> Optional[config_mod.Config]:
    try:
        return config_mod.load(path)
    except config_mod.ConfigError as exc:
        for line in exc.lines():
            print(line, file=sys.stderr)
        return None


def cmd_check_config(args: argparse.Namespace) -> int:
    cfg = _load_or_report(args.config)
    if cfg is None:
        return EXIT_ERROR
    print("%s: ok (%d service(s), %d route(s), %d bridge(s), eswitch %s)" % (
        args.config, len(cfg.services), len(cfg.routes), len(cfg.bridges), cfg.eswitch.driver))
    overlay_cli.warn(cfg)
    # Past a known limit the file is still valid: the limits are the hardware's, or where
    # OVS stops being comfortable, so they warn and leave the exit code alone. OpenFlow
    # rules are counted, not rendered, where the plan can (2^16 buckets make many rules).
    from .intent import capacity
    from .intent import plan as plan_mod
    p = plan_mod.plan(cfg)
    count = getattr(p, "flow_count", None)
    flows = {br.name: count(br.name) if count else len(p.bridge_flows(br.name)) for br in cfg.bridges}
    for line in capacity.warnings(cfg, flows):
        print("warning: " + line, file=sys.stderr)
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    from .intent import plan as plan_mod
    from .intent import render
    cfg = _load_or_report(args.config)
    if cfg is None:
        return EXIT_ERROR
    got = overlay_cli.plan_input(args, cfg)
    if got is None:
        return EXIT_ERROR
    cfg, drained = got
    p = plan_mod.plan(cfg, exclude=drained)
    for br in cfg.bridges:
        print("# OpenFlow 1.3 rules on %s (ovs-ofctl syntax)" % br.name)
        for m in p.meters(br.name):
            print(render.meter_to_ofctl(m))
        for f in sorted(p.bridge_flows(br.name), key=lambda f: (-f.priority, render.to_ofctl(f))):
            print(render.to_ofctl(f))
        print()
    print("# eSwitch (%s, mode %s%s)" % (cfg.eswitch.driver, cfg.eswitch.mode,
                                          ", routes mirrored" if cfg.eswitch.mirror_routes else ""))
    if not cfg.has_eswitch:
        print("(none: OVS alone balances)")
    for m in p.es_meters():
        print("shared meter %d on port %s: %d pps, burst %d (%s)" % (m.meter_id, m.where, m.pps, m.burst,
                                                                    m.owner))
    for pipe in p.pipes:
        print(render.describe_pipe(pipe))
    for e in sorted(p.entries, key=lambda e: (e.port, e.pipe != "root", -e.priority, e.bucket or 0)):
        print(render.describe_entry(e))
    for name, tbl in p.tables:
        print("\n# bucket table of %s: %s" % (name, " ".join("%d:%s" % (i, b) for i, b in enumerate(tbl))))
    return EXIT_OK


# Where `status` and `check` look for a controller when not told: the running
# lab's derived config first (its API socket lives in the lab's run dir).
DEFAULT_CONFIGS = ("run/paper/xenoflow.yaml", "topologies/paper/xenoflow.yaml")
API_TIMEOUT = 120.0


def _api_call(args: argparse.Namespace, path: str, method: str = "GET", body=None):
    import os

    from .api import server as api
    timeout = getattr(args, "timeout", API_TIMEOUT)
    if args.socket:
        return api.request(method, path, unix_path=args.socket, body=body,
                           token=_token(args.token_file), timeout=timeout)
    candidates = [args.config] if args.config else [
        c for c in (os.environ.get("XENOFLOW_CONFIG"),) + DEFAULT_CONFIGS if c]
    for candidate in candidates:
        if not os.path.exists(candidate):
            continue
        cfg = _load_or_report(candidate)
        if cfg is None:
            return None
        sock = cfg.path(cfg.api.socket) if cfg.api.socket else None
        token = _token(args.token_file or (cfg.path(cfg.api.token_file) if cfg.api.token_file else None))
        if sock and os.path.exists(sock):
            return api.request(method, path, unix_path=sock, body=body, token=token, timeout=timeout)
        return api.request(method, path, host=cfg.api.host, port=cfg.api.port, body=body, token=token,
                           timeout=timeout)
    print("no config found (tried %s); pass -c FILE or --socket PATH" % ", ".join(candidates),
          file=sys.stderr)
    return None


def _token(path):
    if not path:
        return None
    from .api import server as api
    return api.read_token(path)


def _api_or_error(args: argparse.Namespace, path: str, method: str = "GET", body=None):
    try:
        got = _api_call(args, path, method, body)
    except OSError as exc:
        print("cannot reach the controller's API: %s (is the controller running?)" % exc,
              file=sys.stderr)
        return None
    if got is None:
        return None
    code, reply = got
    if code not in (200, 201):
        if isinstance(reply, dict) and "error" in reply:
            print("%s %s: %s" % (method, path, reply["error"]), file=sys.stderr)
            for line in reply.get("errors", []):
                print("  " + line, file=sys.stderr)
        else:
            print("API %s answered %d: %s" % (path, code, reply), file=sys.stderr)
        return None
    return reply


def cmd_status(args: argparse.Namespace) -> int:
    import json
    body = _api_or_error(args, "/status")
    if body is None:
        return EXIT_ERROR
    if args.json:
        print(json.dumps(body, indent=1, sort_keys=True))
        return EXIT_OK
    print("dpu %s, eswitch %s, verdict %s" % (body.get("dpu"), body.get("eswitch", {}).get("driver"),
                                             body.get("verdict")))
    for svc, backends in sorted((body.get("services") or {}).items()):
        for name, c in sorted(backends.items()):
            print("  %s/%s: ovs %s pkts, eswitch %s pkts%s" % (
                svc, name, c.get("ovs_packets"), c.get("eswitch_packets"),
                "" if c.get("in_service", True) else " (out of service)"))
    print("  fallback packets: %s, miss_other packets: %s, packet-ins: %s" % (
        body.get("fallback_packets"), body.get("miss_other_packets"), body.get("packet_ins")))
    for line in limit_lines(body):
        print("  " + line)
    fleet = body.get("fleet")
    if fleet:   # a DPU of a fleet: which version of the store it applies
        print("  fleet: version %s of the store's %s, %s%s%s" % (
            fleet.get("applied_version"), fleet.get("store_version"), fleet.get("state"),
            ", stale (%s)" % ("store unreachable" if not fleet.get("connected") else "catching up")
            if fleet.get("stale") else "", ": " + fleet["error"] if fleet.get("error") else ""))
        bgp = fleet.get("bgp")
        if bgp:
            peers = ", ".join("peer %s %s, bfd %s" % (p, s.get("bgp"), s.get("bfd") or "off")
                              for p, s in sorted((bgp.get("peers") or {}).items()))
            print("  bgp: %s (%s); %s" % (
                "announcing " + ", ".join(bgp["announced"]) if bgp.get("announced") else "not announcing",
                bgp.get("why"), peers or "no peers"))
    for line in alarm_lines(body):
        print("  " + line)
    url = dashboard_url(args)
    if url:
        print("  dashboard: %s" % url)
    return EXIT_OK


def dashboard_url(args: argparse.Namespace):
    """The dashboard's address: the lab's relay on the host's loopback when the config is a
    running lab's (its metrics listener is inside the DPU's namespace), else the config's
    metrics listener; None when neither is known (--socket without a config)."""
    import os
    path = args.config or next((c for c in (os.environ.get("XENOFLOW_CONFIG"),) + DEFAULT_CONFIGS
                                if c and os.path.exists(c)), None)
    if args.socket and not args.config or path is None or not os.path.exists(path):
        return None
    from .lab.topology import LabState
    lab = LabState(os.path.dirname(os.path.abspath(path)))
    if lab.process_alive("dashboard"):
        return "http://127.0.0.1:%d/dashboard/" % lab.data.get("extra", {}).get("dashboard_port", 9302)
    cfg = _load_or_report(path)
    if cfg is None or cfg.metrics.host is None:
        return None
    host = "[%s]" % cfg.metrics.host if ":" in cfg.metrics.host else cfg.metrics.host
    return "http://%s:%d/dashboard/" % (host, cfg.metrics.port)


def _rate_text(pps, burst) -> str:
    from .intent.config import default_burst
    return "%s pps (burst %s)" % (pps, burst if burst is not None else "%d, the default" % default_burst(pps))


def limit_lines(body: dict) -> List[str]:
    """Per service with limits: the limits, what they dropped per plane (by scope) and the
    buckets that dropped most (GET /status `limits`)."""
    out = []
    for svc, lim in sorted((body.get("limits") or {}).items()):
        rates = []
        if lim.get("pps") is not None:
            rates.append("service " + _rate_text(lim["pps"], lim.get("burst")))
        if lim.get("per_bucket_pps") is not None:
            rates.append("per bucket " + _rate_text(lim["per_bucket_pps"], lim.get("per_bucket_burst")))
        planes = []
        for plane, scopes in sorted((lim.get("limited_packets") or {}).items()):
            if scopes is not None:
                planes.append("%s %d (service %d, buckets %d)" % (
                    plane, sum(scopes.values()), scopes.get("service", 0), scopes.get("bucket", 0)))
        out.append("%s limits: %s; rate-limited packets: %s" % (
            svc, ", ".join(rates) or "none", ", ".join(planes) or "none"))
        rows = lim.get("buckets") or []
        if rows:
            shown = ["%d (%s)" % (r["bucket"], ", ".join("%s %d" % (p, r[p]) for p in ("eswitch", "ovs")
                                                          if p in r)) for r in rows[:8]]
            left = len(rows) - len(shown) + int(lim.get("buckets_left_out") or 0)
            out.append("%s buckets limited most: %s%s" % (svc, "; ".join(shown),
                                                            ", and %d more" % left if left else ""))
    return out


def cmd_limits(args: argparse.Namespace) -> int:
    """Set or remove a service's rate limits through the controller's API."""
    import json
    from urllib.parse import quote
    path = "/services/%s/limits" % quote(args.service, safe="")
    body = {k: getattr(args, k) for k in ("pps", "burst", "per_bucket_pps", "per_bucket_burst")
            if getattr(args, k) is not None}
    if args.remove == bool(body):
        print("limits needs --pps and/or --per-bucket-pps (with their bursts), or --remove", file=sys.stderr)
        return EXIT_ERROR
    reply = _api_or_error(args, path, "DELETE") if args.remove else _api_or_error(args, path, "PUT", body)
    if reply is None:
        return EXIT_ERROR
    what = "removed" if args.remove else " ".join("%s=%s" % kv for kv in sorted(body.items()))
    if "version" in reply and not args.json:    # a fleet's controller: committed to the store
        here = "applied here" if reply["applied"] else "not applied here"
        print("limits %s %s: fleet version %d, %s" % (args.service, what, reply["version"], here))
        return EXIT_OK if reply["applied"] else EXIT_FOUND
    print(json.dumps(reply, sort_keys=True) if args.json else
          "limits %s %s: applied (%d OpenFlow, %d eSwitch change(s))" % (
              args.service, what, reply.get("ovs", 0), reply.get("eswitch", 0)))
    return EXIT_OK


def alarm_lines(body: dict) -> List[str]:
    """One line per alarm of a /status or /check reply ("alarms: none" when there are none;
    nothing for a controller too old to report them)."""
    import time

    from .controller.alarms import describe
    if "alarms" not in body:
        return []
    alarms = body.get("alarms") or []
    return [describe(a, time.time()) for a in alarms] if alarms else ["alarms: none"]


def cmd_check(args: argparse.Namespace) -> int:
    import json

    from .intent.consistency import format_report
    body = _api_or_error(args, "/check")
    if body is None:
        return EXIT_ERROR
    if args.json:
        print(json.dumps(body, indent=1, sort_keys=True))
    else:
        print(format_report(body))
        for line in alarm_lines(body):
            print(line)
    # an alarm is a finding like drift: something keeps undoing the intent
    return EXIT_OK if body.get("verdict") == "consistent" and not body.get("alarms") else EXIT_FOUND


def cmd_backend(args: argparse.Namespace) -> int:
    """Operate on one backend through the controller's API (drain keeps its counters)."""
    import json
    from urllib.parse import quote
    if args.db:
        return _backend_in_store(args)
    base = "/services/%s/backends" % quote(args.service, safe="")
    one = "%s/%s" % (base, quote(args.name, safe=""))
    if args.action in ("drain", "undrain"):
        reply = _api_or_error(args, "%s/%s" % (one, args.action), "POST")
    elif args.action == "remove":
        reply = _api_or_error(args, one, "DELETE")
    elif args.action == "weight":
        if args.weight is None:
            print("backend weight needs --weight N", file=sys.stderr)
            return EXIT_ERROR
        reply = _api_or_error(args, one + "/weight", "PUT", {"weight": args.weight})
    else:  # add
        if not (args.ip or args.ip6) or not args.mac:
            print("backend add needs --ip and/or --ip6, and --mac", file=sys.stderr)
            return EXIT_ERROR
        body = {"name": args.name, "mac": args.mac}
        body.update((k, getattr(args, k)) for k in ("ip", "ip6") if getattr(args, k))
        if args.weight is not None:
            body["weight"] = args.weight
        reply = _api_or_error(args, base, "POST", body)
    if reply is None:
        return EXIT_ERROR
    if "version" in reply and not args.json:    # a fleet's controller: committed to the store
        here = ("applied here in %.3f s" % reply["applied_in"] if reply["applied"]
                else "not applied here: %s" % (reply.get("error") or "timeout"))
        print("%s %s/%s: fleet version %d, %s" % (args.action, args.service, args.name,
                                                  reply["version"], here))
        return EXIT_OK if reply["applied"] else EXIT_FOUND
    print(json.dumps(reply, sort_keys=True) if args.json else
          "%s %s/%s: applied (%d OpenFlow, %d eSwitch change(s), %d bucket(s) moved)" % (
              args.action, args.service, args.name, reply.get("ovs", 0), reply.get("eswitch", 0),
              reply.get("moved_buckets", 0)))
    return EXIT_OK


def _backend_in_store(args: argparse.Namespace) -> int:
    """`--db`: the edit as a transaction on the fleet's store, no controller involved."""
    from .fleet import edits
    from .fleet.model import FleetError
    from .fleet.store import Store, StoreError
    if args.action in ("drain", "undrain"):
        mutate = edits.drain(args.service, args.name, args.action == "drain")
    elif args.action == "add" and (not (args.ip or args.ip6) or not args.mac):
        print("backend add needs --ip and/or --ip6, and --mac", file=sys.stderr)
        return EXIT_ERROR
    elif args.action == "weight" and args.weight is None:
        print("backend weight needs --weight N", file=sys.stderr)
        return EXIT_ERROR
    else:
        fields = {"add": dict({"mac": args.mac}, **{k: getattr(args, k) for k in ("ip", "ip6")
                                                    if getattr(args, k)}),
                  "weight": {"weight": args.weight}}.get(args.action, {})
        if args.action == "add" and args.weight is not None:
            fields["weight"] = args.weight
        mutate = edits.backend_edit(args.action, args.service, args.name, **fields)
    try:
        store = Store(args.db.split(","), timeout=args.timeout).connect()
        try:
            version = store.change(mutate, "%s %s/%s" % (args.action, args.service, args.name))
        finally:
            store.close()
    except FleetError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return EXIT_ERROR
    except (LookupError, edits.Conflict, StoreError) as exc:
        print(exc.args[0] if exc.args else exc, file=sys.stderr)
        return EXIT_ERROR
    print("%s %s/%s: committed as fleet version %d" % (args.action, args.service, args.name, version))
    return EXIT_OK


def _delegate(module: str, func: str):
    def run(args: argparse.Namespace) -> int:
        import importlib
        return getattr(importlib.import_module("xenoflow_ovs." + module), func)(args)
    return run


def _log_args(p: argparse.ArgumentParser, here: bool) -> None:
    """The logging flags, before the command (`xenoflow -v controller`) or, for the daemons,
    after it too (`xenoflow controller -v`): the later position only overrides when given."""
    kw = {} if here else {"default": argparse.SUPPRESS}
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging (= --log-level debug)",
                   **kw)
    p.add_argument("--log-level", choices=logsetup.LEVELS, help="default info", **kw)
    p.add_argument("--log-file", help="log to this file (default: stderr; under systemd the "
                   "journal)", **kw)
    p.add_argument("--log-format", choices=logsetup.FORMATS, help="default text", **kw)
    if here:
        p.set_defaults(log_level=None, log_file=None, log_format="text")


def log_level(args: argparse.Namespace) -> str:
    return "debug" if getattr(args, "verbose", False) else (getattr(args, "log_level", None) or "info")


def _timeout_arg(p: argparse.ArgumentParser) -> None:
    # A check reads a fresh dump and judges every bucket, a change waits for both planes:
    # seconds with 2^16 buckets a service, tens of seconds with several such services.
    p.add_argument("--timeout", type=float, default=API_TIMEOUT, metavar="S",
                   help="seconds to wait for the controller's answer (default %(default)g)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="xenoflow", description="XenoFlow-OVS: a SmartNIC eSwitch "
                                 "DNS load balancer driven by an OpenFlow controller")
    ap.add_argument("--version", action="version", version="xenoflow %s" % __version__)
    _log_args(ap, here=True)
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("check-config", help="validate a config file (exit 0 ok, 2 errors)")
    p.add_argument("config")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("plan", help="print the OpenFlow rules and eSwitch entries of a config")
    p.add_argument("config")
    overlay_cli.add_plan_flag(p)
    p.set_defaults(func=cmd_plan)
    overlay_cli.add_parsers(sub)
    fleet_cli.add_parsers(sub)

    p = sub.add_parser("controller", help="run the OpenFlow controller app (os-ken 4)")
    p.add_argument("-c", "--config", required=True)
    p.add_argument("--app", action="append", default=[], metavar="MODULE",
                   help="also run this os-ken app module in the same manager (repeatable), "
                   "as ryu-manager takes several; docs/sdn-apps.md")
    _log_args(p, here=False)
    p.set_defaults(func=_delegate("controller.launcher", "main"))

    p = sub.add_parser("eswitchd", help="own the eSwitch (softdoca or DOCA) and serve the controller")
    p.add_argument("-c", "--config", required=True)
    _log_args(p, here=False)
    p.set_defaults(func=_delegate("eswitch.daemon", "main"))

    for name, func, text in (("status", cmd_status, "per-backend counters, fallback and the verdict"),
                             ("check", cmd_check, "consistency of both planes (exit 0 ok, 1 drift "
                              "or fallback, 2 error)")):
        p = sub.add_parser(name, help=text)
        p.add_argument("-c", "--config", help="the controller's config (default: the running lab's)")
        p.add_argument("--socket", help="the API's unix socket")
        p.add_argument("--token-file", help="bearer token file (default: controller.api.token_file)")
        p.add_argument("--json", action="store_true")
        _timeout_arg(p)
        p.set_defaults(func=func)

    p = sub.add_parser("top", help="live per-backend rates of both planes, fallback, limits and the "
                       "verdict in the terminal (q quits)")
    p.add_argument("-c", "--config", help="the controller's config (default: the running lab's)")
    p.add_argument("--url", help="a metrics listener or API to read GET /status from "
                   "(http://127.0.0.1:9302)")
    p.add_argument("--socket", help="the API's unix socket")
    p.add_argument("--token-file", help="bearer token file (default: controller.api.token_file)")
    p.add_argument("--interval", type=float, default=2.0, metavar="S",
                   help="seconds between samples (default %(default)g)")
    p.add_argument("--once", action="store_true", help="print one plain frame (two samples "
                   "--interval apart) and exit: for scripts and terminals without curses")
    p.add_argument("--timeout", type=float, default=5.0, metavar="S",
                   help="seconds to wait for each answer (default %(default)g)")
    p.set_defaults(func=_delegate("top", "main"))

    p = sub.add_parser("backend", help="drain, undrain, add, remove or re-weight a backend "
                       "(through the controller's API)")
    p.add_argument("action", choices=("drain", "undrain", "add", "remove", "weight"))
    p.add_argument("name", help="backend name")
    p.add_argument("--service", default="dns", help="service name (default dns)")
    p.add_argument("--ip", help="the backend's IPv4 address")
    p.add_argument("--ip6", help="the backend's IPv6 address")
    p.add_argument("--mac")
    p.add_argument("--weight", type=int)
    p.add_argument("-c", "--config", help="the controller's config (default: the running lab's)")
    p.add_argument("--db", help="a fleet's store (comma-separated remotes): commit the edit there "
                   "directly, without a controller")
    p.add_argument("--socket", help="the API's unix socket")
    p.add_argument("--token-file", help="bearer token file (default: controller.api.token_file)")
    p.add_argument("--json", action="store_true")
    _timeout_arg(p)
    p.set_defaults(func=cmd_backend)

    p = sub.add_parser("limits", help="set or remove a service's rate limits (the DoS guard, through "
                       "the controller's API)")
    p.add_argument("service", help="service name")
    for flag, text in (("--pps", "the service's packets/s"), ("--burst", "the service's burst, packets"),
                       ("--per-bucket-pps", "every bucket's packets/s"),
                       ("--per-bucket-burst", "every bucket's burst, packets")):
        p.add_argument(flag, type=int, help=text)
    p.add_argument("--remove", action="store_true", help="remove the service's limits")
    p.add_argument("-c", "--config", help="the controller's config (default: the running lab's)")
    p.add_argument("--socket", help="the API's unix socket")
    p.add_argument("--token-file", help="bearer token file (default: controller.api.token_file)")
    p.add_argument("--json", action="store_true")
    _timeout_arg(p)
    p.set_defaults(func=cmd_limits)

    p = sub.add_parser("doctor", help="is this machine ready for eswitchd: the DOCA release, what the "
                       "glue was built for, DPDK, huge pages, a config (exit 0 all ok, 1 a check failed)")
    p.add_argument("-c", "--config", help="also validate this config file")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_delegate("doctor", "main"))

    p = sub.add_parser("lab", help="the paper's testbed in network namespaces on this machine")
    p.add_argument("action", choices=("up", "down", "status", "demo", "dashboard"))
    p.add_argument("--topology", default="paper", help="a folder name under topologies/ (default paper)")
    p.add_argument("--run-dir", default=None, help="where the lab keeps its state (default: run/<topology>)")
    p.add_argument("--mirror-routes", choices=("on", "off"), default=None,
                   help="demo only: override dpu.eswitch.mirror_routes (off shows the paper's trap)")
    p.add_argument("--eswitch", choices=("softdoca", "none"), default=None,
                   help="override dpu.eswitch.driver")
    p.add_argument("--eswitch-mode", choices=("vnf", "switch"), default=None,
                   help="override dpu.eswitch.mode (switch also sets multiport: the paper's p0 -> p1 "
                   "crosses the two PFs)")
    p.add_argument("--flood", action="store_true",
                   help="the topology's flood variant (flood.yaml: 16 buckets, a per-bucket rate limit); "
                   "with demo: one source floods its bucket at 5x the limit while 15 others query (a running "
                   "lab keeps the variant until down)")
    p.add_argument("--dashboard-port", type=int, default=None, metavar="PORT",
                   help="up and dashboard: the host's loopback port the dashboard is relayed to "
                   "(default 9302; the fleet's DPUs get consecutive ports from it)")
    p.set_defaults(func=_delegate("lab.labctl", "main"))
    return ap


def main(argv: Optional[List[str]] = None) -> int:
    # the ovs library imports eventlet when it is installed (the controller's runtime), which
    # warns about its own future on every command that reads an OVSDB: not the user's concern
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    ap = build_parser()
    args = ap.parse_args(argv)
    try:
        logsetup.configure(log_level(args), args.log_file, args.log_format, daemon=args.command)
    except OSError as exc:
        print("cannot log to %s: %s" % (args.log_file, exc.strerror or exc), file=sys.stderr)
        return EXIT_ERROR
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
