"""`xenoflow doctor`: is this machine ready to run XenoFlow, and was the glue built for it?

Two halves: `gather()` reads the machine once (pkg-config, DOCA's VERSION file, the glue,
/proc/meminfo, the config and, with a valid config, the host as it needs it: see
doctor_host.py), and each check is a pure function of those facts returning one verdict
(ok, warn, FAIL, or n/a where it does not apply) with a hint on what to do, so the checks
are tested with made-up facts. No shell: subprocesses get argument lists and a timeout.
Add a check by adding a function to CHECKS.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from .doctor_host import Host, read_host
from .exitcodes import EXIT_FOUND, EXIT_OK

DOCA_VERSION_FILE = "/opt/mellanox/doca/applications/VERSION"
TIMEOUT_S = 5.0

OK, WARN, FAIL, NA = "ok", "warn", "FAIL", "n/a"


@dataclass
class Facts:
    """What gather() found. None: not found (the matching *_note says why)."""
    doca_pkgconfig: Optional[str] = None     # pkg-config --modversion doca-flow
    doca_file: Optional[str] = None          # the first line of DOCA's VERSION file
    glue: Dict[str, Optional[str]] = field(default_factory=dict)  # dpdk_glue.glue_info()
    dpdk: Optional[str] = None               # pkg-config --modversion libdpdk
    dpdk_note: str = ""
    meminfo: Optional[str] = None            # the text of /proc/meminfo
    config_path: Optional[str] = None
    config_errors: List[str] = field(default_factory=list)
    config_summary: str = ""
    config_driver: Optional[str] = None      # a valid config's dpu.eswitch.driver and eal_args
    config_eal: Tuple[str, ...] = ()
    host: Optional[Host] = None              # with a valid config: the host as it needs it


@dataclass(frozen=True)
class Result:
    name: str
    status: str      # ok | warn | FAIL | n/a
    detail: str
    hint: str = ""   # what to do about it (FAIL, warn)


# ---------------------------------------------------------------- versions


def version_tuple(text: Optional[str]) -> Optional[Tuple[int, ...]]:
    """"3.2.0118" -> (3, 2, 118); "3.3.0" -> (3, 3, 0); anything else -> None."""
    m = re.match(r"^\s*(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    if not m:
        return None
    return tuple(int(g) for g in m.groups() if g is not None)


def same_release(a: Optional[str], b: Optional[str]) -> bool:
    """Equal where both say something: "3.2" matches "3.2.0118"."""
    ta, tb = version_tuple(a), version_tuple(b)
    if ta is None or tb is None:
        return a == b
    n = min(len(ta), len(tb))
    return ta[:n] == tb[:n]


def installed_release(f: Facts) -> Optional[str]:
    return f.doca_pkgconfig or f.doca_file


# ---------------------------------------------------------------- the checks (pure)


def check_doca_release(f: Facts) -> Result:
    if f.doca_pkgconfig:
        return Result("doca-release", OK, "%s (pkg-config doca-flow)" % f.doca_pkgconfig)
    if f.doca_file:
        return Result("doca-release", OK, "%s (%s)" % (f.doca_file, DOCA_VERSION_FILE))
    return Result("doca-release", OK, "none (no pkg-config doca-flow, no %s)" % DOCA_VERSION_FILE)


def check_glue(f: Facts) -> Result:
    target = f.glue.get("target") or "missing"
    detail = f.glue.get("detail") or ""
    if target == "missing":
        return Result("glue", FAIL, "not built: %s" % detail)
    return Result("glue", OK, "built for %s%s" % (target, ": " + detail if detail else ""))


def check_glue_matches(f: Facts) -> Result:
    """A doca build must run with the release it was compiled against; a softdoca build is
    fine where there is no DOCA, and a missed chance where there is."""
    target = f.glue.get("target")
    compiled, runtime = f.glue.get("doca_version"), f.glue.get("doca_runtime")
    installed = installed_release(f)
    if target == "softdoca":
        if installed is None:
            return Result("glue-matches", OK, "softdoca build on a machine without DOCA%s"
                          % (" (it models DOCA %s)" % compiled if compiled else ""))
        return Result("glue-matches", WARN, "DOCA %s is installed but the glue was built for softdoca: "
                      "reinstall with XF_GLUE_TARGET=doca to drive the eSwitch" % installed)
    if target != "doca":
        return Result("glue-matches", FAIL, "no glue to compare (see the glue check)")
    if compiled is None:
        return Result("glue-matches", FAIL, "the glue does not say which DOCA it was compiled against "
                      "(an old build: reinstall)")
    problems = []
    if runtime and not same_release(compiled, runtime):
        problems.append("the DOCA library it runs with is %s" % runtime)
    if installed and not same_release(compiled, installed):
        problems.append("the installed DOCA is %s" % installed)
    if problems:
        return Result("glue-matches", FAIL, "compiled against DOCA %s, but %s: reinstall (pip install .) "
                      "against the installed SDK" % (compiled, " and ".join(problems)))
    if installed is None and runtime is None:
        return Result("glue-matches", FAIL, "compiled against DOCA %s, but no DOCA is found here" % compiled)
    return Result("glue-matches", OK, "compiled against DOCA %s, runs with %s"
                  % (compiled, runtime or installed))


def check_dpdk(f: Facts) -> Result:
    if f.dpdk:
        return Result("dpdk", OK, "%s (pkg-config libdpdk)" % f.dpdk)
    # The glue is linked already: without pkg-config's entry only a rebuild is hindered.
    status = WARN if f.glue.get("target") in ("softdoca", "doca") else FAIL
    return Result("dpdk", status, "pkg-config libdpdk finds nothing%s (needed to build the glue; DOCA's "
                  "own DPDK may need its pkgconfig directory in PKG_CONFIG_PATH)"
                  % (": " + f.dpdk_note if f.dpdk_note else ""))


def hugepages(meminfo: str) -> Dict[str, int]:
    out = {}
    for line in meminfo.splitlines():
        m = re.match(r"^(HugePages_Total|HugePages_Free|Hugepagesize):\s+(\d+)", line)
        if m:
            out[m.group(1)] = int(m.group(2))
    return out


def check_hugepages(f: Facts) -> Result:
    """Warn only: the lab runs with --no-huge; DOCA on a BlueField needs huge pages."""
    if f.meminfo is None:
        return Result("hugepages", WARN, "cannot read /proc/meminfo")
    h = hugepages(f.meminfo)
    total, free, size = h.get("HugePages_Total", 0), h.get("HugePages_Free", 0), h.get("Hugepagesize", 0)
    if total == 0:
        return Result("hugepages", WARN, "none reserved (fine for softdoca with --no-huge; DOCA needs them)")
    if free == 0:
        return Result("hugepages", WARN, "all %d in use (%d kB each)" % (total, size))
    return Result("hugepages", OK, "%d of %d free, %d kB each" % (free, total, size))


def check_config(f: Facts) -> Optional[Result]:
    if f.config_path is None:
        return None
    if f.config_errors:
        shown = f.config_errors[:5]
        more = len(f.config_errors) - len(shown)
        return Result("config", FAIL, "; ".join(shown) + (" (and %d more)" % more if more else ""))
    return Result("config", OK, "%s: %s" % (f.config_path, f.config_summary))


# EAL arguments that work against DOCA: the lab's defaults have the first two
EAL_AGAINST_DOCA = {
    "--no-huge": "DOCA needs huge pages",
    "--no-pci": "the devices are PCI functions: DOCA could not probe them",
    "-a": "the EAL would probe by itself what DOCA probes (the glue then adds no allow-list entries)",
    "--allow": "the EAL would probe by itself what DOCA probes (the glue then adds no allow-list entries)",
    "--vdev": "a virtual device is not an eSwitch port",
}


def check_eal_args(f: Facts) -> Optional[Result]:
    """Only for a valid config with driver doca: the lab's EAL arguments do not fit a BlueField."""
    if f.config_driver != "doca":
        return None
    found = ["%s: %s" % (a, EAL_AGAINST_DOCA[a]) for a in dict.fromkeys(f.config_eal)
             if a in EAL_AGAINST_DOCA]
    if found:
        return Result("eal-args", WARN, "dpu.eswitch.eal_args has " + "; ".join(found))
    return Result("eal-args", OK, " ".join(f.config_eal) or "(none)")


# ---------------------------------------------------------------- the host, for a config

NO_CONFIG = "needs a valid config (-c FILE)"


def check_interfaces(f: Facts) -> Result:
    """The uplinks and representors OVS takes as ports (and softdoca's own ends), in this
    network namespace; with DOCA, the PCI functions the ports are opened by."""
    h = f.host
    if h is None:
        return Result("interfaces", NA, NO_CONFIG)
    missing = [name for name, _, present in h.netdevs if not present]
    if len(missing) == 1:   # one: say what it is for
        missing = ["%s (%s)" % (n, role) for n, role, present in h.netdevs if not present]
    gone = ["%s of %s" % (addr, port) for port, addr, _, why in h.pci if "not found" in why.lower()]
    if missing or gone:
        return Result("interfaces", FAIL, "%d of %d missing here: %s" % (
            len(missing) + len(gone), len(h.netdevs) + len(h.pci), " ".join(missing + gone)),
                      "run doctor in the namespace the controller runs in (the lab: ip netns exec dpu); "
                      "on a BlueField the representors appear once the e-switch is in switchdev mode")
    return Result("interfaces", OK, "%d present: %s" % (len(h.netdevs), " ".join(n for n, _, _ in h.netdevs)))


def check_eswitch_mode(f: Facts) -> Result:
    h = f.host
    if h is None:
        return Result("eswitch-mode", NA, NO_CONFIG)
    if h.driver != "doca":
        return Result("eswitch-mode", NA, "driver %s: no hardware e-switch (DOCA Flow mode %s)"
                      % (h.driver, h.mode))
    if not h.pci:
        return Result("eswitch-mode", FAIL, "no device port with a pci address",
                      "give each device port its pci (docs/configuration.md)")
    bad = ["%s (%s): %s" % (addr, port, mode or why or "unknown") for port, addr, mode, why in h.pci
           if mode != "switchdev"]
    if bad:
        return Result("eswitch-mode", FAIL, "not in switchdev mode: " + ", ".join(bad),
                      "devlink dev eswitch set pci/<addr> mode switchdev (docs/bluefield.md)")
    return Result("eswitch-mode", OK, "switchdev on %s; DOCA Flow mode %s"
                  % (" ".join(a for _, a, _, _ in h.pci), h.mode))


def check_ovs(f: Facts) -> Result:
    h = f.host
    if h is None:
        return Result("ovs", NA, NO_CONFIG)
    if h.ovs_bridges is None:
        return Result("ovs", FAIL, "not reachable at %s: %s" % (h.ovs_db, h.ovs_note),
                      "start Open vSwitch (systemctl start openvswitch-switch) or fix ovs.db")
    missing = [b for b in h.want_bridges if b not in h.ovs_bridges]
    if missing:
        return Result("ovs", WARN, "reachable; bridges not there yet: %s" % " ".join(missing),
                      "the controller creates them at start")
    return Result("ovs", OK, "reachable at %s; bridges %s" % (h.ovs_db, " ".join(h.want_bridges)))


def check_hw_offload(f: Facts) -> Result:
    h = f.host
    if h is None or h.ovs_bridges is None:
        return Result("hw-offload", NA, NO_CONFIG if h is None else "OVS not reachable")
    value = h.hw_offload or "unset"
    if h.driver != "doca":
        return Result("hw-offload", NA, "driver %s: no hardware to offload to (other_config:hw-offload "
                      "is %s)" % (h.driver, value))
    if value != "true":
        return Result("hw-offload", FAIL, "other_config:hw-offload is %s: OVS's own flows (routes "
                      "left to OVS, fallback) would run on the Arm cores" % value,
                      "ovs-vsctl set Open_vSwitch . other_config:hw-offload=true, then restart OVS")
    return Result("hw-offload", OK, "other_config:hw-offload=true")


def check_routes(f: Facts) -> Result:
    """The representor routes in OVS: without them the host's traffic takes OVS's
    table-miss path (the representor-route trap, docs/operations.md)."""
    h = f.host
    if h is None or h.ovs_bridges is None:
        return Result("routes", NA, NO_CONFIG if h is None else "OVS not reachable")
    want = {br: set(r) for br, r in h.routes.items() if r}
    if not want:
        return Result("routes", NA, "the config has no routes")
    missing, unread, idle = [], [], []
    for br, flows in sorted(want.items()):
        dumped = h.flows.get(br)
        if dumped is None:
            unread.append("%s (%s)" % (br, h.flows_note.get(br) or "bridge missing"))
        elif not any(plan_is_ours(c) for c, _ in dumped):
            idle.append(br)
        else:
            missing += ["%s cookie=%#x priority=%d" % (br, c, p) for c, p in sorted(flows - set(dumped))]
    if unread or missing:
        return Result("routes", FAIL, "; ".join(["cannot read " + u for u in unread] +
                                                ["missing " + m for m in missing]),
                      "xenoflow check names the drift; the controller repairs it while it runs")
    if idle:
        return Result("routes", WARN, "no XenoFlow flows on %s yet" % " ".join(idle),
                      "start the controller: it installs them")
    return Result("routes", OK, "%d route flows present on %s" % (sum(len(v) for v in want.values()),
                                                                  " ".join(sorted(want))))


def plan_is_ours(c: int) -> bool:
    from .intent import plan as plan_mod
    return plan_mod.is_ours(c)


def check_listeners(f: Facts) -> List[Result]:
    h = f.host
    if h is None:
        return [Result("ports", NA, NO_CONFIG)]
    out = []
    for ln in h.listeners:
        name = "port-" + ln.label if ln.label != "api-socket" else ln.label
        if ln.state == "free":
            out.append(Result(name, OK, "%s free%s" % (ln.where, ": " + ln.owner if ln.owner else "")))
        elif ln.state == "ours":
            out.append(Result(name, OK, "%s held by XenoFlow: %s" % (ln.where, ln.owner)))
        elif ln.state == "unusable":
            out.append(Result(name, FAIL, "%s cannot be opened: %s" % (ln.where, ln.owner),
                              "use an address of this host (controller.* in the config)"))
        else:
            out.append(Result(name, FAIL, "%s held by another process: %s" % (ln.where, ln.owner),
                              "stop it or move the controller's listener (controller.* in the config)"))
    return out


CHECKS: List[Callable[[Facts], Any]] = [
    check_doca_release, check_glue, check_glue_matches, check_dpdk, check_hugepages, check_config,
    check_eal_args, check_interfaces, check_eswitch_mode, check_ovs, check_hw_offload, check_routes,
    check_listeners]


def run_checks(f: Facts) -> List[Result]:
    out: List[Result] = []
    for check in CHECKS:
        r = check(f)
        out += r if isinstance(r, list) else [r] if r is not None else []
    return out


# ---------------------------------------------------------------- reading the machine


def _run(argv: List[str]) -> Tuple[Optional[str], str]:
    """(stdout's first line, or None; why not)."""
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=TIMEOUT_S, check=False)
    except FileNotFoundError:
        return None, "%s is not installed" % argv[0]
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, "%s: %s" % (argv[0], exc)
    if p.returncode != 0:
        return None, (p.stderr.strip().splitlines() or ["exit %d" % p.returncode])[0]
    out = p.stdout.strip().splitlines()
    return (out[0].strip() if out else None), ""


def _read(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def glue_info() -> Dict[str, Optional[str]]:
    try:
        import dpdk_glue
    except ImportError as exc:
        return {"target": "missing", "detail": "cannot import dpdk_glue: %s" % exc}
    info = getattr(dpdk_glue, "glue_info", None)
    try:
        if info is not None:
            return dict(info())
        # a dpdk_glue from before glue_info(): the target is all it can say
        return {"target": dpdk_glue.glue_target(), "doca_version": None, "doca_runtime": None,
                "detail": "an older dpdk_glue without glue_info()"}
    except Exception as exc:  # a broken build is a finding, not a crash
        return {"target": "missing", "detail": "%s: %s" % (type(exc).__name__, exc)}


def gather(config_path: Optional[str] = None) -> Facts:
    f = Facts()
    f.doca_pkgconfig = _run(["pkg-config", "--modversion", "doca-flow"])[0]
    text = _read(DOCA_VERSION_FILE)
    f.doca_file = text.strip().splitlines()[0].strip() if text and text.strip() else None
    f.glue = glue_info()
    f.dpdk, f.dpdk_note = _run(["pkg-config", "--modversion", "libdpdk"])
    f.meminfo = _read("/proc/meminfo")
    if config_path is not None:
        from .intent import config as config_mod
        f.config_path = config_path
        try:
            cfg = config_mod.load(config_path)
        except config_mod.ConfigError as exc:
            f.config_errors = exc.lines()
        else:
            f.config_summary = "valid (eswitch %s, mode %s, %d port(s))" % (
                cfg.eswitch.driver, cfg.eswitch.mode, len(cfg.ports))
            f.config_driver, f.config_eal = cfg.eswitch.driver, cfg.eswitch.eal_args
            f.host = read_host(cfg)
    return f


def main(args: argparse.Namespace) -> int:
    results = run_checks(gather(args.config))
    failed = any(r.status == FAIL for r in results)
    if args.json:
        print(json.dumps({"ok": not failed, "checks": [asdict(r) for r in results]}, indent=1))
    else:
        for r in results:
            print("%-4s  %-14s %s%s" % (r.status, r.name, r.detail,
                                        "  (hint: %s)" % r.hint if r.hint and r.status != OK else ""))
    return EXIT_FOUND if failed else EXIT_OK
