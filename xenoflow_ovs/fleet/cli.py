"""`xenoflow fleet ...`: the store's cluster members, its intent, and the DPUs following it.

  init      create a member's database file (the first: a new cluster; the others: join
            one) and, with --serve, start its ovsdb-server
  serve     start the ovsdb-server of an existing member file
  members   the cluster as a member sees it (role, leader, term, servers)
  kick      remove a member lost for good (then `init --join` its replacement)
  election-timer  set the cluster's election timer (stepped as ovsdb-server requires)
  import    load the services of a YAML config into the store (validated by the same parser
            and against every DPU's facts: a bad file changes nothing)
  export    write the store's services back as YAML
  status    every DPU's applied version, state, verdict, heartbeat
  check     do all DPUs hold identical tables for the version in force? (exit 0 / 1)
  forget    remove a decommissioned DPU's row

The store is named by --db (comma-separated remotes), else by the fleet.remotes of -c CONFIG.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

import yaml

from ..exitcodes import EXIT_ERROR, EXIT_FOUND, EXIT_OK
from ..intent import config as config_mod
from . import edits, model

# The store's client pulls in ovsdbapp and the `ovs` IDL: imported when a command needs
# them, so `xenoflow --help` and the other commands stay quick and quiet.

ENV_DB = "XENOFLOW_FLEET_DB"


def _remotes(args: argparse.Namespace) -> Optional[List[str]]:
    if getattr(args, "db", None):
        return [r for r in args.db.split(",") if r]
    if getattr(args, "config", None):
        try:
            cfg = config_mod.load(args.config)
        except config_mod.ConfigError as exc:
            for line in exc.lines():
                print(line, file=sys.stderr)
            return None
        if cfg.fleet is None:
            print("%s: no fleet: section (give the store with --db)" % args.config, file=sys.stderr)
            return None
        from .store import absolute_remotes
        return absolute_remotes(cfg.fleet.remotes, cfg.base_dir)   # relative: to the config's dir
    if os.environ.get(ENV_DB):
        return [r for r in os.environ[ENV_DB].split(",") if r]
    print("which store? --db tcp:HOST:PORT[,...] or -c CONFIG (its fleet.remotes)", file=sys.stderr)
    return None


def _store(args: argparse.Namespace) -> Any:
    from .store import Store, StoreError
    remotes = _remotes(args)
    if remotes is None:
        return None
    try:
        return Store(remotes, timeout=args.timeout).connect()
    except StoreError as exc:
        print(str(exc), file=sys.stderr)
        return None


# ---------------------------------------------------------------- members


def cmd_init(args: argparse.Namespace) -> int:
    from . import cluster
    try:
        if args.join:
            cluster.join(args.file, args.raft, args.join)
        else:
            cluster.create(args.file, args.raft)
        print("%s: %s (Raft address %s)" % (args.file, "joins the cluster through " + ", ".join(args.join)
                                            if args.join else "a new cluster", args.raft))
        if args.serve:
            return _serve(args)
    except cluster.ClusterError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def _member(args: argparse.Namespace) -> Any:
    from . import cluster
    run_dir = args.run_dir or os.path.dirname(os.path.abspath(args.file))
    return cluster.Member(args.file, run_dir, args.name)


def _serve(args: argparse.Namespace) -> int:
    from . import cluster
    m = _member(args)
    pid = m.start(args.serve)
    print("ovsdb-server %d serves %s on %s (control socket %s)"
          % (pid, args.file, ", ".join(args.serve), m.ctl))
    if args.election_timer:
        try:
            got = cluster.set_election_timer(m, args.election_timer)
            print("election timer %d ms" % got)
        except cluster.ClusterError as exc:
            print("election timer not set (it is changed on the leader): %s" % exc, file=sys.stderr)
    return EXIT_OK


def _cluster_call(fn: Any, *args: Any) -> int:
    """fn(*args), a ClusterError printed as one line (exit 2)."""
    from . import cluster
    try:
        return fn(*args)
    except cluster.ClusterError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_ERROR


def cmd_serve(args: argparse.Namespace) -> int:
    return _cluster_call(_serve, args)


def _ctl_member(args: argparse.Namespace) -> Any:
    from . import cluster
    return cluster.Member("", os.path.dirname(os.path.abspath(args.ctl)),
                          os.path.basename(args.ctl)[:-4] if args.ctl.endswith(".ctl") else args.ctl)


def _appctl(args: argparse.Namespace, fn: Any) -> int:
    if not args.ctl.endswith(".ctl"):
        print("--ctl names the member's control socket (NAME.ctl in its run directory)", file=sys.stderr)
        return EXIT_ERROR
    return _cluster_call(fn, _ctl_member(args))


def cmd_members(args: argparse.Namespace) -> int:
    def show(m: Any) -> int:
        st = m.status()
        if args.json:
            print(json.dumps(st, sort_keys=True))
        else:
            for k in ("Address", "Status", "Role", "Term", "Leader", "Election timer"):
                print("%-15s %s" % (k.lower() + ":", st.get(k, "?")))
            print("servers:\n  " + st.get("servers", "").replace("\n", "\n  "))
        return EXIT_OK
    return _appctl(args, show)


def cmd_kick(args: argparse.Namespace) -> int:
    def kick(m: Any) -> int:
        m.kick(args.server)
        print("member %s removed from the cluster" % args.server)
        return EXIT_OK
    return _appctl(args, kick)


def cmd_election_timer(args: argparse.Namespace) -> int:
    def setit(m: Any) -> int:
        from . import cluster
        print("election timer %d ms" % cluster.set_election_timer(m, args.ms))
        return EXIT_OK
    return _appctl(args, setit)


# ---------------------------------------------------------------- intent


def cmd_import(args: argparse.Namespace) -> int:
    """Validate the file first (the same parser as check-config); then the transaction
    validates its services against every DPU's facts: nothing is written on any error."""
    try:
        data = yaml.safe_load(open(args.file)) or {}
    except (OSError, yaml.YAMLError) as exc:
        print("%s: cannot read: %s" % (args.file, exc), file=sys.stderr)
        return EXIT_ERROR
    try:
        if isinstance(data, dict) and "dpu" in data:
            cfg = config_mod.load(args.file, fleet_services=True)
            services = config_mod.to_data(cfg)["services"]
            facts: Optional[str] = model.facts_of(cfg)
        else:
            services, facts = _services_only(args.file, data), None
    except config_mod.ConfigError as exc:
        for line in exc.lines():
            print(line, file=sys.stderr)
        return EXIT_ERROR
    from .store import StoreError
    store = _store(args)
    if store is None:
        return EXIT_ERROR
    try:
        before = store.snapshot()["version"]
        version = store.change(edits.import_services(services, facts), "import %s" % args.file)
    except model.FleetError as exc:
        for line in exc.lines:
            print("%s: %s" % (args.file, line), file=sys.stderr)
        print("%s: nothing imported" % args.file, file=sys.stderr)
        return EXIT_ERROR
    except StoreError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_ERROR
    finally:
        store.close()
    print("%s: %d service(s) %s" % (args.file, len(services), "imported as version %d" % version
                                    if version != before else "already in the store (version %d)" % version))
    return EXIT_OK


def _services_only(path: str, data: Any) -> List[Dict[str, Any]]:
    """A file holding only `services:` (what export writes): checked for shape here, and
    against every DPU's facts in the transaction."""
    if not isinstance(data, dict) or not isinstance(data.get("services"), list) or set(data) - {"services"}:
        raise config_mod.ConfigError([("<file>", "expected a config file, or a file with only a "
                                       "`services:` list (as `xenoflow fleet export` writes)", 0)],
                                     source=path)
    return data["services"]


def cmd_export(args: argparse.Namespace) -> int:
    snap = _snapshot(args)
    if snap is None:
        return EXIT_ERROR
    intent = model.intent_of(snap)
    lines = ["# the fleet's services, version %d (xenoflow fleet export)" % intent.version]
    for s, names in sorted(intent.drained.items()):
        lines.append("# drained in the store: %s" % ", ".join("%s/%s" % (s, n) for n in sorted(names)))
    for s, names in sorted(intent.down.items()):
        lines.append("# out of service by agreed health: %s"
                     % ", ".join("%s/%s" % (s, n) for n in sorted(names)))
    text = "\n".join(lines) + "\n" + yaml.safe_dump({"services": intent.services}, sort_keys=False)
    if args.output and args.output != "-":
        with open(args.output, "w") as f:
            f.write(text)
        print("%s: %d service(s), version %d" % (args.output, len(intent.services), intent.version))
    else:
        sys.stdout.write(text)
    return EXIT_OK


# ---------------------------------------------------------------- DPUs


def fleet_view(snap: Dict[str, Any]) -> Dict[str, Any]:
    """`fleet status --json`: the store's version and every DPU's row, judged."""
    version = snap["version"]
    dpus = model.dpu_rows(snap)
    return {"version": version, "health_seq": snap["health_seq"], "dpus": dpus,
            "drained_dpus": list(snap.get("drained_dpus", ())),
            "lagging": model.lagging(snap["dpus"], version),
            "differing": model.differing(snap["dpus"], version),
            "backends": {"%s/%s" % (s["name"], b["name"]): {"drained": b["drained"], "health": b["health"],
                                                            "why": b["health_why"] or None}
                         for s in snap["services"] for b in s["backends"]}}


def _snapshot(args: argparse.Namespace) -> Optional[Dict[str, Any]]:
    """One read of the store named by the arguments; None after saying why not."""
    store = _store(args)
    if store is None:
        return None
    try:
        return store.snapshot()
    finally:
        store.close()


def cmd_status(args: argparse.Namespace) -> int:
    snap = _snapshot(args)
    if snap is None:
        return EXIT_ERROR
    view = fleet_view(snap)
    if args.json:
        print(json.dumps(view, sort_keys=True))
        return EXIT_OK
    same = not view["lagging"] and not view["differing"] and all(
        d["verdict"] == "consistent" for d in view["dpus"].values())
    verdict = ("no DPU follows the store yet" if not view["dpus"] else "same version and tables on all"
               if same else "NOT all on the same version and tables (fleet check)")
    print("fleet version %d, %d DPU(s): %s" % (view["version"], len(view["dpus"]), verdict))
    for name, d in view["dpus"].items():
        print("  %-12s version %-5s %-9s %-12s %-13s %12d pkts%s%s%s" % (
            name, d["applied_version"], d["state"], d["verdict"] or "-",
            "announced" if d["announced"] else "not announced", sum(d["packets"].values()),
            " stale" if d["stale"] else "",
            "" if d["heard"] else " silent (%d health rounds behind)" % d["behind_by"],
            ": " + d["error"] if d["error"] else ""))
        if (d["announce_why"] and d["announce_why"] != "announced") or d["drained"]:
            print("  %-12s   %s%s" % ("", "DRAINED: " if d["drained"] else "", d["announce_why"] or "")
                  + ("; VIP counters flat: its data plane may go" if d["drained"] and d["quiet"] else ""))
        for peer, state in sorted(d["bgp"].items()):
            print("  %-12s   peer %-15s %s" % ("", peer, state))
        for key, n in sorted(d["packets"].items()):
            print("  %-12s   %-24s %12d pkts" % ("", key, n))
    for key, b in sorted(view["backends"].items()):
        if b["drained"] or b["health"] == "down":
            print("  %s: %s" % (key, "drained" if b["drained"] else "down (%s)" % b["why"]))
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    """Exit 0 when every DPU applied the store's version with identical tables and a
    consistent verdict; else 1, naming each DPU that differs and why."""
    snap = _snapshot(args)
    if snap is None:
        return EXIT_ERROR
    view = fleet_view(snap)
    problems = ["%s: %s" % kv for kv in view["lagging"].items()]
    problems += ["%s: tables of service %s differ from the fleet's" % (d, svc)
                 for svc, names in sorted(view["differing"].items()) for d in names]
    problems += ["%s: verdict %s" % (n, d["verdict"] or "none") for n, d in view["dpus"].items()
                 if d["verdict"] != "consistent" and n not in view["lagging"]]
    if not view["dpus"]:
        problems.append("no DPU follows the store yet")
    if args.json:
        print(json.dumps({"version": view["version"], "ok": not problems, "problems": problems,
                          "dpus": sorted(view["dpus"])}, sort_keys=True))
    else:
        print("fleet version %d: %s" % (view["version"], "%d DPU(s), identical tables" % len(view["dpus"])
                                          if not problems else "%d problem(s)" % len(problems)))
        for p in problems:
            print("  " + p)
    return EXIT_OK if not problems else EXIT_FOUND


def cmd_forget(args: argparse.Namespace) -> int:
    store = _store(args)
    if store is None:
        return EXIT_ERROR
    try:
        n = store.forget(args.dpu)
    finally:
        store.close()
    print("%s: %s" % (args.dpu, "row removed" if n else "no such DPU"))
    return EXIT_OK if n else EXIT_ERROR


def cmd_drain_dpu(args: argparse.Namespace) -> int:
    """Withdraw a DPU's VIPs (stored in the intent: it stays drained across restarts), and
    wait until its VIP counters stay flat, when it is safe to stop its data plane."""
    from . import edits
    from .store import StoreError
    store = _store(args)
    if store is None:
        return EXIT_ERROR
    on = not args.undo
    try:
        try:
            version = store.change(edits.drain_dpu(args.dpu, on, force=args.force),
                                   "%s DPU %s" % ("drain" if on else "undrain", args.dpu))
        except (LookupError, edits.Conflict) as exc:
            print("fleet drain-dpu: %s" % str(exc).strip("'\""), file=sys.stderr)
            return EXIT_ERROR
        print("%s %s in the store's version %d"
              % (args.dpu, "drained" if on else "back in the fleet", version))
        if args.no_wait:
            return EXIT_OK
        deadline = time.monotonic() + args.wait
        t0 = time.monotonic()
        while time.monotonic() < deadline:
            d = store.snapshot()["dpus"].get(args.dpu) or {}
            if on and not d.get("announced") and d.get("quiet"):
                print("%s: withdrawn, VIP counters flat (after %.1f s): its data plane may go"
                      % (args.dpu, time.monotonic() - t0))
                return EXIT_OK
            if not on and (d.get("announced") or (d.get("announce_why") or "").startswith("no backend")):
                print("%s: %s (after %.1f s)" % (args.dpu, d.get("announce_why") or "announced",
                                                 time.monotonic() - t0))
                return EXIT_OK
            time.sleep(0.1)
        d = store.snapshot()["dpus"].get(args.dpu) or {}
        print("%s: not there after %.0f s: %s (announced %s)" % (
            args.dpu, args.wait, d.get("announce_why") or "the DPU did not report", d.get("announced")),
            file=sys.stderr)
        return EXIT_FOUND
    except StoreError as exc:
        print("fleet drain-dpu: %s" % exc, file=sys.stderr)
        return EXIT_ERROR
    finally:
        store.close()


def cmd_frr_config(args: argparse.Namespace) -> int:
    """The FRR files (zebra, bfdd, bgpd) of a DPU's speaker, from its config's fleet.bgp."""
    from ..intent import config as config_mod
    from . import bgp
    try:
        cfg = config_mod.load(args.config)
    except config_mod.ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_ERROR
    speaker = cfg.bgp_speaker()
    if speaker is None:
        print("%s: no fleet.bgp: this DPU announces nothing" % args.config, file=sys.stderr)
        return EXIT_ERROR
    files = bgp.speaker_files(speaker[0], speaker[1].ip, cfg.dpu_name)
    if args.output_dir:
        os.makedirs(args.output_dir, mode=0o750, exist_ok=True)
        for name, text in sorted(files.items()):
            with open(os.path.join(args.output_dir, name), "w") as f:
                f.write(text)
            print(os.path.join(args.output_dir, name))
    else:
        for name, text in sorted(files.items()):
            print("! ---- %s\n%s" % (name, text))
    return EXIT_OK


def cmd_upgrade(args: argparse.Namespace) -> int:
    """Convert the store to this version's schema (ovsdb-client convert, through the
    cluster's leader); a store already on it is left alone."""
    from .store import SCHEMA, remotes_string
    remotes = _remotes(args)
    if not remotes:
        return EXIT_ERROR
    with open(SCHEMA) as f:
        want = json.load(f)["version"]
    last = "no remote answered"
    for remote in remotes:
        try:
            have = subprocess.run(["ovsdb-client", "get-schema-version", remote, model.SCHEMA_NAME],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                                  timeout=args.timeout)
            if have.returncode != 0:
                last = "%s: %s" % (remote, have.stderr.strip())
                continue
            if have.stdout.strip() == want:
                print("the store is on schema %s already" % want)
                return EXIT_OK
            conv = subprocess.run(["ovsdb-client", "convert", remote, SCHEMA], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, universal_newlines=True,
                                  timeout=max(30, args.timeout))
            if conv.returncode == 0:
                print("store converted from schema %s to %s" % (have.stdout.strip(), want))
                return EXIT_OK
            last = "%s: %s" % (remote, conv.stderr.strip())
        except subprocess.TimeoutExpired:
            last = "%s: no answer within %g s" % (remote, args.timeout)
    print("fleet upgrade: %s (remotes %s)" % (last, remotes_string(remotes)), file=sys.stderr)
    return EXIT_ERROR


# ---------------------------------------------------------------- parsers


def _db_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", help="the store: comma-separated remotes (tcp:HOST:PORT, unix:PATH)")
    p.add_argument("-c", "--config", help="a controller config whose fleet.remotes name the store")
    p.add_argument("--timeout", type=float, default=5.0, metavar="S", help="default %(default)g")


def _member_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run-dir", help="pid file, control socket and log (default: the file's directory)")
    p.add_argument("--name", default="store", help="file names in the run dir (default store)")
    p.add_argument("--election-timer", type=int, metavar="MS",
                   help="then set the cluster's election timer (on the leader; e.g. 500)")


def add_parsers(sub: Any) -> None:
    fp = sub.add_parser("fleet", help="the fleet's intent store (clustered OVSDB) and its DPUs")
    fsub = fp.add_subparsers(dest="fleet_command", metavar="ACTION")
    fsub.required = True

    p = fsub.add_parser("init", help="create a cluster member's database file (and start it with --serve)")
    p.add_argument("--file", required=True, help="the member's database file")
    p.add_argument("--raft", required=True, help="its Raft address: tcp:IP:PORT, where members reach it")
    p.add_argument("--join", nargs="+", metavar="RAFT", help="join the cluster of these members' "
                   "Raft addresses (default: a new cluster)")
    p.add_argument("--serve", nargs="+", metavar="REMOTE",
                   help="start ovsdb-server for clients on these (ptcp:6640:IP, punix:PATH)")
    _member_args(p)
    p.set_defaults(func=cmd_init)

    p = fsub.add_parser("serve", help="start the ovsdb-server of a member file")
    p.add_argument("--file", required=True)
    p.add_argument("--serve", nargs="+", metavar="REMOTE", required=True)
    _member_args(p)
    p.set_defaults(func=cmd_serve)

    for name, func, text in (("members", cmd_members, "the cluster as this member sees it"),
                             ("kick", cmd_kick, "remove a member lost for good, by server id"),
                             ("election-timer", cmd_election_timer, "set the election timer (ms)")):
        p = fsub.add_parser(name, help=text)
        p.add_argument("--ctl", required=True, help="a member's control socket (RUN_DIR/NAME.ctl); "
                       "election-timer: the leader's")
        if name == "kick":
            p.add_argument("server", help="the server id (4 hex digits or the full id, see members)")
        if name == "election-timer":
            p.add_argument("ms", type=int)
        if name == "members":
            p.add_argument("--json", action="store_true")
        p.set_defaults(func=func)

    p = fsub.add_parser("import", help="load a config file's services into the store")
    p.add_argument("file")
    _db_args(p)
    p.set_defaults(func=cmd_import)

    p = fsub.add_parser("export", help="the store's services as YAML")
    p.add_argument("-o", "--output", help="write here (default stdout)")
    _db_args(p)
    p.set_defaults(func=cmd_export)

    for name, func, text in (("status", cmd_status, "every DPU's version, state and verdict"),
                             ("check", cmd_check, "identical tables on every DPU? (exit 0 yes, 1 no)")):
        p = fsub.add_parser(name, help=text)
        p.add_argument("--json", action="store_true")
        _db_args(p)
        p.set_defaults(func=func)

    p = fsub.add_parser("drain-dpu", help="withdraw a DPU's VIPs (kept in the store) and wait until its "
                        "VIP counters are flat; --undo puts it back")
    p.add_argument("dpu")
    p.add_argument("--undo", action="store_true", help="announce again (once it forwards consistently)")
    p.add_argument("--force", action="store_true", help="drain even if no other DPU announces the VIPs")
    p.add_argument("--wait", type=float, default=30.0, metavar="S", help="at most (default %(default)g)")
    p.add_argument("--no-wait", action="store_true", help="return once the store has it")
    _db_args(p)
    p.set_defaults(func=cmd_drain_dpu)

    p = fsub.add_parser("frr-config", help="the FRR files of this DPU's BGP speaker, from fleet.bgp")
    p.add_argument("-c", "--config", required=True)
    p.add_argument("-o", "--output-dir", help="write zebra.conf, bfdd.conf, bgpd.conf here (default stdout)")
    p.set_defaults(func=cmd_frr_config)

    p = fsub.add_parser("upgrade", help="convert the store to this version's schema")
    _db_args(p)
    p.set_defaults(func=cmd_upgrade)

    p = fsub.add_parser("forget", help="remove a decommissioned DPU's row")
    p.add_argument("dpu")
    _db_args(p)
    p.set_defaults(func=cmd_forget)
