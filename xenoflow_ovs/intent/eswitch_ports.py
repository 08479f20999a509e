"""The eSwitch's ports as DOCA Flow sees them: e-switches, the forwards the plan needs,
vnf-mode pairs, and the checks that keep a config within what DOCA Flow accepts.

Pure: the config parser calls `problems()` while it validates (so a config that DOCA
Flow would refuse at port start or pipe creation is rejected with a key path), and
eswitchd calls `port_specs()` to bring the ports up in an order DOCA accepts.

Two facts of DOCA Flow shape this module:

* switch mode: pipes live on the switch manager of an e-switch (one per PF, unless the
  PFs share a multiport e-switch), and a pipe may forward only to ports of its own
  e-switch. A representor (`of`) belongs to the e-switch of its device.
* vnf mode: a port forwards to another port only once the two are paired
  (doca_flow_port_pair), and a port is paired with one port only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Sequence, Tuple

if TYPE_CHECKING:  # the parser imports this module: no import of config at run time
    from .config import Config, Port, Route, Service

# "0000:03:00.0" or "03:00.0": [domain:]bus:device.function
PCI_RE = re.compile(r"^(?:([0-9a-fA-F]{4}):)?([0-9a-fA-F]{2}):([0-1][0-9a-fA-F])\.([0-7])$")
# a PCI address inside a devargs string (DOCA refuses devargs that carry the address)
PCI_IN_TEXT_RE = re.compile(r"(?<![0-9a-fA-F:])(?:[0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]\b")


def pci_key(addr: str) -> str:
    """The address in its full form (domain included, lower case), for comparing."""
    m = PCI_RE.match(addr)
    if not m:
        return addr.lower()
    return "%s:%s:%s.%s" % ((m.group(1) or "0000").lower(), m.group(2).lower(), m.group(3).lower(),
                             m.group(4))


@dataclass(frozen=True)
class Forward:
    """One port-to-port forward the eSwitch plane needs, and what needs it."""
    src: str
    dst: str
    what: str            # "service 'dns'" or "route pf1hpf->p1 0.0.0.0/0"
    path: Tuple[Any, ...]  # the key path errors about it are reported at


class PairConflict(ValueError):
    """A port that would have to forward to two different ports in vnf mode."""

    def __init__(self, first: Forward, second: Forward):
        self.first, self.second = first, second
        super().__init__(pair_conflict_message(first, second))


def pair_conflict_message(first: Forward, second: Forward) -> str:
    return ("in vnf mode port %r would forward to %r (%s) and to %r (%s), but DOCA Flow pairs a "
            "port with one port only; use mode switch, or give one of them another ingress"
            % (first.src, first.dst, first.what, second.dst, second.what))


# ---------------------------------------------------------------- e-switches


def is_device(port: "Port") -> bool:
    return port.of is None


def eswitch_of(ports: Sequence["Port"], multiport: bool) -> Dict[str, int]:
    """Port name -> e-switch number. Device ports (PCI functions) have one each, numbered
    in config order, or all share e-switch 0 when `multiport`; a representor is in its
    device's. A representor whose device is unknown gets none (the parser reports it)."""
    out: Dict[str, int] = {}
    n = 0
    for p in ports:
        if is_device(p):
            out[p.name] = 0 if multiport else n
            n += 1
    for p in ports:
        if not is_device(p) and p.of in out:
            out[p.name] = out[p.of]  # type: ignore[index]
    return out


def bring_up_order(ports: Sequence["Port"]) -> List["Port"]:
    """Each device port, followed by its representors (config order otherwise): a device is
    started before its representors, and stopping in reverse leaves the switch manager of an
    e-switch for last, as DOCA Flow requires."""
    out: List["Port"] = []
    for dev in ports:
        if is_device(dev):
            out.append(dev)
            out.extend(p for p in ports if p.of == dev.name)
    out.extend(p for p in ports if p not in out)  # an unknown `of`: reported by the parser
    return out


# ---------------------------------------------------------------- forwards and pairs


def needed_forwards(services: Iterable["Service"], routes: Iterable["Route"],
                    mirror_routes: bool) -> List[Forward]:
    """The port-to-port forwards of the eSwitch plan: each service's ingress -> egress (its
    bucket pipe forwards there), and each route's from -> to when routes are mirrored."""
    out = [Forward(s.ingress, s.egress, "service %r" % s.name, ("services", i))
           for i, s in enumerate(services)]
    if mirror_routes:
        out.extend(Forward(r.src_port, r.dst_port, "route %s" % r.label, ("routes", i))
                   for i, r in enumerate(routes))
    return out


def declared_pairs(ports: Iterable["Port"]) -> List[Forward]:
    """The vnf pairs the file declares (dpu.ports.X.pair). A DPU that follows a fleet's store
    opens its ports before it knows the services, so its file fixes how they pair; the
    services' forwards must then agree with it."""
    return [Forward(p.name, p.pair, "dpu.ports.%s.pair" % p.name, ("dpu", "ports", p.name, "pair"))
            for p in ports if p.pair is not None]


def forwards(cfg: "Config") -> List[Forward]:
    """The declared pairs first (they win), then what the services and routes need."""
    return declared_pairs(cfg.ports) + needed_forwards(cfg.services, cfg.routes, cfg.eswitch.mirror_routes)


def _pairing(fwds: Sequence[Forward]) -> Tuple[Dict[str, str], List[Tuple[Forward, Forward]]]:
    needed: Dict[str, Forward] = {}
    conflicts: List[Tuple[Forward, Forward]] = []
    for f in fwds:
        first = needed.setdefault(f.src, f)
        if first.dst != f.dst:
            conflicts.append((first, f))
    pairs = {src: f.dst for src, f in needed.items()}
    # NVIDIA's samples (3.1 and later) pair both ways: the way back comes free unless the
    # target needs its pair for a forward of its own.
    for f in fwds:
        if f.dst not in pairs:
            pairs[f.dst] = f.src
    return pairs, conflicts


def vnf_pairs(fwds: Sequence[Forward]) -> Dict[str, str]:
    """Port -> the port it is paired with (doca_flow_port_pair) in vnf mode. Each forward
    A->B pairs A with B; a port that needs two different targets raises PairConflict.
    Then, for each A->B whose B has no pair of its own, B is paired back with A."""
    pairs, conflicts = _pairing(fwds)
    if conflicts:
        raise PairConflict(*conflicts[0])
    return pairs


# ---------------------------------------------------------------- validation


def problems(ports: Sequence["Port"], fwds: Sequence[Forward], mode: str,
             multiport: bool) -> List[Tuple[Tuple[Any, ...], str]]:
    """What DOCA Flow would refuse about these forwards, as (key path, message)."""
    out: List[Tuple[Tuple[Any, ...], str]] = []
    if mode == "vnf":
        for first, second in _pairing(fwds)[1]:
            out.append((second.path, pair_conflict_message(first, second)))
        return out
    esw = eswitch_of(ports, multiport)
    for f in fwds:
        a, b = esw.get(f.src), esw.get(f.dst)
        if a is None or b is None or a == b:
            continue
        out.append((f.path, "in switch mode %s forwards from %r to %r, which are on different "
                    "e-switches (a pipe forwards only within its switch manager's e-switch); set "
                    "dpu.eswitch.multiport: true if the device ports share a multiport e-switch, "
                    "or use mode vnf" % (f.what, f.src, f.dst)))
    return out


# ---------------------------------------------------------------- eswitchd's port list


def port_specs(cfg: "Config") -> List[Dict[str, Any]]:
    """Keyword arguments of dpdk_glue.PortSpec for each port, in bring-up order. Each port's
    actions memory (DOCA 3.0+) is sized for the entries with actions the plan can need on
    it (intent/capacity.py): a config with more buckets gets more, one with few no 16 MiB."""
    from . import capacity  # it imports this module
    e = cfg.eswitch
    softdoca = e.driver == "softdoca"
    pairs: Dict[str, str] = vnf_pairs(forwards(cfg)) if e.mode == "vnf" else {}
    actions = capacity.action_entries(cfg)
    out = []
    for p in bring_up_order(cfg.ports):
        esw: Optional[int] = 0 if softdoca and e.multiport and is_device(p) else None
        out.append({
            "name": p.name, "id": p.id,
            "iface": p.iface if softdoca else None,
            "rep_iface": p.rep_iface if softdoca else None,
            # a port without interfaces does no packet I/O (DOCA opens its ports by PCI address)
            "driver": "af_packet" if softdoca and p.iface else "none",
            "devargs": p.devargs or "",
            "pci": p.pci, "of": p.of, "pair": pairs.get(p.name), "esw": esw,
            "action_entries": actions[p.name],
        })
    return out
