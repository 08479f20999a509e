"""Python face of dpdk_glue: an eSwitch (DOCA Flow, or softdoca) with root control pipes per
port, basic (service) pipes, and batched entries.  See dpdk_glue/README.md.  The knobs only
softdoca has (fault injection, forwarder policy, classify, ...) are in dpdk_glue.softdoca_ctl.

One eSwitch per process: the DPDK EAL can be initialised only once in a process, so a second
ESwitch (even after the first was closed) is refused.  Open it in a child process or in
eswitchd.  All methods are thread-safe (serialised by a lock here and a mutex in the C glue).
"""
from __future__ import annotations

import ipaddress
import re
import struct
import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

__all__ = [
    "ESwitch",
    "PortSpec",
    "GlueMatch",
    "GlueEntry",
    "EntrySpec",
    "RootPipe",
    "BasicPipe",
    "Meter",
    "COLOR_GREEN",
    "COLOR_YELLOW",
    "COLOR_RED",
    "GlueError",
    "GlueMissing",
    "default_eal_args",
    "glue_info",
    "glue_target",
]

# Meter colours as GlueMatch(meter_color=...) takes them (the glue maps them to DOCA's enum).
COLOR_GREEN, COLOR_YELLOW, COLOR_RED = 0, 1, 2

IPv4 = Union[int, str]
IPv6 = Union[int, str, ipaddress.IPv6Address]

# ------------------------------------------------------------------------------------------
# errors


class GlueError(Exception):
    """A DOCA/DPDK call failed.  ``doca_error`` is the DOCA error name (e.g.
    "DOCA_ERROR_INVALID_VALUE"), ``call`` the failing call (e.g. "doca_flow_pipe_add_entry").
    For a batch, ``failures`` lists (index in the batch, doca_error, call) per failed entry."""

    def __init__(
        self,
        doca_error: str,
        call: str,
        detail: str = "",
        failures: Optional[List[Tuple[int, str, str]]] = None,
    ) -> None:
        self.doca_error = doca_error
        self.call = call
        self.detail = detail
        self.failures = failures or []
        msg = "%s failed: %s" % (call, doca_error)
        if detail:
            msg += " (%s)" % detail
        if self.failures:
            shown = "; ".join("entry %d: %s in %s" % f for f in self.failures[:10])
            more = "" if len(self.failures) <= 10 else "; ... %d more" % (len(self.failures) - 10)
            msg += " [%s%s]" % (shown, more)
        super().__init__(msg)


class GlueMissing(RuntimeError):
    """The compiled module dpdk_glue._glue is missing (or was built without DPDK)."""


_BUILD_HINT = (
    "dpdk_glue's C module is not built. Install the DPDK development files "
    "(`apt-get install libdpdk-dev`) and run `pip install .` in the project "
    "(or `python dpdk_glue/build_glue.py` for an in-place build)."
)

_lib: Any = None
_ffi: Any = None


def _load() -> Tuple[Any, Any]:
    global _lib, _ffi
    if _lib is None:
        try:
            from dpdk_glue import _glue  # type: ignore[attr-defined]
        except ImportError as exc:
            raise GlueMissing(_BUILD_HINT + " (import error: %s)" % exc) from exc
        if _glue.ffi.string(_glue.lib.xf_target()).decode() == "missing":
            raise GlueMissing(_glue.ffi.string(_glue.lib.xf_missing_reason()).decode())
        _lib, _ffi = _glue.lib, _glue.ffi
    return _lib, _ffi


def glue_target() -> str:
    """'softdoca' or 'doca' (what the module was compiled against).  Raises GlueMissing."""
    lib, ffi = _load()
    return ffi.string(lib.xf_target()).decode()


def glue_info() -> Dict[str, Optional[str]]:
    """What the module was built for: ``target`` ("softdoca", "doca" or "missing"),
    ``doca_version`` (the DOCA_VERSION_STRING it was compiled against: the SDK's, or the
    release softdoca models), ``doca_runtime`` (doca_version_runtime(): the library it runs
    with) and ``detail``.  Never raises."""
    try:
        lib, ffi = _load()
    except GlueMissing as exc:
        return {"target": "missing", "doca_version": None, "doca_runtime": None, "detail": str(exc)}
    target = ffi.string(lib.xf_target()).decode()
    compiled = ffi.string(lib.xf_doca_version()).decode()
    runtime = ffi.string(lib.xf_doca_runtime_version()).decode()
    what = "softdoca modelling DOCA %s" if target == "softdoca" else "the DOCA SDK %s"
    return {"target": target, "doca_version": compiled, "doca_runtime": runtime, "detail": what % compiled}


def _raise_last(rc: int, failures: Optional[List[Tuple[int, str, str]]] = None) -> None:
    lib, ffi = _load()
    raise GlueError(
        ffi.string(lib.xf_error_name(rc)).decode(),
        ffi.string(lib.xf_last_call()).decode(),
        ffi.string(lib.xf_last_detail()).decode(),
        failures,
    )


# ------------------------------------------------------------------------------------------
# values


_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
_mac_cache: Dict[str, bytes] = {}


def _mac_bytes(mac: Union[str, bytes]) -> bytes:
    if isinstance(mac, bytes):
        if len(mac) != 6:
            raise ValueError("a MAC address is 6 bytes, got %d" % len(mac))
        return mac
    b = _mac_cache.get(mac)
    if b is None:
        if not isinstance(mac, str) or not _MAC_RE.match(mac):
            raise ValueError("invalid MAC address %r (expected aa:bb:cc:dd:ee:ff)" % (mac,))
        b = bytes.fromhex(mac.replace(":", ""))
        if len(_mac_cache) < 65536:
            _mac_cache[mac] = b
    return b


def _ipv4(value: IPv4, field: str) -> int:
    if isinstance(value, bool):
        raise TypeError("%s: expected an IPv4 address, got a bool" % field)
    if isinstance(value, int):
        if not 0 <= value <= 0xFFFFFFFF:
            raise ValueError("%s: %d does not fit in 32 bits" % (field, value))
        return value
    if isinstance(value, str):
        try:
            return int(ipaddress.IPv4Address(value))
        except ipaddress.AddressValueError as exc:
            raise ValueError("%s: %s" % (field, exc)) from None
    raise TypeError("%s: expected int or dotted IPv4 string, got %s" % (field, type(value).__name__))


def _ipv6(value: IPv6, field: str) -> int:
    if isinstance(value, bool):
        raise TypeError("%s: expected an IPv6 address, got a bool" % field)
    if isinstance(value, int):
        if not 0 <= value < (1 << 128):
            raise ValueError("%s: %d does not fit in 128 bits" % (field, value))
        return value
    if isinstance(value, ipaddress.IPv6Address):
        return int(value)
    if isinstance(value, str):
        try:
            return int(ipaddress.IPv6Address(value))
        except ipaddress.AddressValueError as exc:
            raise ValueError("%s: %s" % (field, exc)) from None
    raise TypeError("%s: expected int or IPv6 address string, got %s" % (field, type(value).__name__))


_ZERO16 = bytes(16)
_WORDS4 = struct.Struct("=4I")


def _ipv6_words(value: int) -> bytes:
    """An IPv6 address as struct xf_match carries it: four host-order 32-bit words, most
    significant first."""
    if not value:
        return _ZERO16
    return _WORDS4.pack((value >> 96) & 0xFFFFFFFF, (value >> 64) & 0xFFFFFFFF, (value >> 32) & 0xFFFFFFFF,
                        value & 0xFFFFFFFF)


def _uint(value: int, bits: int, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("%s: expected int, got %s" % (field, type(value).__name__))
    if not 0 <= value < (1 << bits):
        raise ValueError("%s: %d does not fit in %d bits" % (field, value, bits))
    return value


def _family(l3: int, v4: List[str], v6: List[str]) -> int:
    """The family a match is about: l3 as given (0 = derived by the glue), 6 when IPv6
    fields are set; a contradiction is a ValueError naming the fields."""
    if l3 not in (0, 4, 6):
        raise ValueError("l3 must be 0 (derive), 4 or 6, not %r" % (l3,))
    if v4 and v6:
        raise ValueError("a match is IPv4 or IPv6: %s with %s" % (", ".join(v4), ", ".join(v6)))
    if l3 == 4 and v6:
        raise ValueError("l3=4 with the IPv6 field(s) %s" % ", ".join(v6))
    if l3 == 6 and v4:
        raise ValueError("l3=6 with the IPv4 field(s) %s" % ", ".join(v4))
    return 6 if v6 else l3


class GlueMatch:
    """Outer-header fields (host order).  Unset fields are 0 (= not matched in a mask).
    IPv4 addresses as int or dotted string, IPv6 addresses as int (0 .. 2**128-1) or string.
    ``l3``: the family, 0 = derived (IPv6 with ipv6_* fields, else IPv4 when an IPv4,
    ip_proto or port field is set), 4 or 6 (say 6 for a match of ports alone of an IPv6
    service).  IPv4 with IPv6 fields, or l3 against them, is a ValueError.
    ``meter_color``: the colour the last meter marked the packet with (COLOR_GREEN,
    COLOR_YELLOW, COLOR_RED); in a mask any non-zero value means "match the colour"."""

    __slots__ = ("eth_type", "ip_proto", "ipv4_src", "ipv4_dst", "l4_src", "l4_dst", "ipv6_src", "ipv6_dst",
                 "l3", "meter_color", "_v6")

    def __init__(
        self,
        eth_type: int = 0,
        ip_proto: int = 0,
        ipv4_src: IPv4 = 0,
        ipv4_dst: IPv4 = 0,
        l4_src: int = 0,
        l4_dst: int = 0,
        ipv6_src: IPv6 = 0,
        ipv6_dst: IPv6 = 0,
        l3: int = 0,
        meter_color: int = 0,
    ) -> None:
        self.meter_color = _uint(meter_color, 8, "meter_color") if meter_color else 0
        self.eth_type = _uint(eth_type, 16, "eth_type") if eth_type else 0
        self.ip_proto = _uint(ip_proto, 8, "ip_proto") if ip_proto else 0
        self.ipv4_src = _ipv4(ipv4_src, "ipv4_src") if ipv4_src else 0
        self.ipv4_dst = _ipv4(ipv4_dst, "ipv4_dst") if ipv4_dst else 0
        self.l4_src = _uint(l4_src, 16, "l4_src") if l4_src else 0
        self.l4_dst = _uint(l4_dst, 16, "l4_dst") if l4_dst else 0
        self.ipv6_src = self.ipv6_dst = self.l3 = 0
        self._v6 = (_ZERO16, _ZERO16)
        if ipv6_src or ipv6_dst or l3:  # IPv4 matches skip all of this
            self.ipv6_src = _ipv6(ipv6_src, "ipv6_src") if ipv6_src else 0
            self.ipv6_dst = _ipv6(ipv6_dst, "ipv6_dst") if ipv6_dst else 0
            v4 = [f for f in ("ipv4_src", "ipv4_dst") if getattr(self, f)]
            v6 = [f for f in ("ipv6_src", "ipv6_dst") if getattr(self, f)]
            self.l3 = _family(l3, v4, v6)
            self._v6 = (_ipv6_words(self.ipv6_src), _ipv6_words(self.ipv6_dst))

    def full_mask(self) -> "GlueMatch":
        """All bits of every field set in this match (an exact match on those fields); the
        family (l3) is kept."""
        return GlueMatch(
            eth_type=0xFFFF if self.eth_type else 0,
            ip_proto=0xFF if self.ip_proto else 0,
            ipv4_src=0xFFFFFFFF if self.ipv4_src else 0,
            ipv4_dst=0xFFFFFFFF if self.ipv4_dst else 0,
            l4_src=0xFFFF if self.l4_src else 0,
            l4_dst=0xFFFF if self.l4_dst else 0,
            ipv6_src=_ALL128 if self.ipv6_src else 0,
            ipv6_dst=_ALL128 if self.ipv6_dst else 0,
            l3=self.l3,
            meter_color=0xFF if self.meter_color else 0,
        )

    def _packed(self) -> Tuple[int, int, int, int, int, int, int, bytes, bytes, int]:
        # order of struct xf_match (the IPv6 addresses as its four host-order words)
        return (self.ipv4_src, self.ipv4_dst, self.eth_type, self.l4_src, self.l4_dst, self.ip_proto, self.l3,
                self._v6[0], self._v6[1], self.meter_color)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GlueMatch) and self._packed() == other._packed()

    def __hash__(self) -> int:
        return hash(self._packed())

    def __repr__(self) -> str:
        parts = []
        for name in self.__slots__[:-1]:
            v = getattr(self, name)
            if v:
                if name.startswith("ipv4"):
                    shown = str(ipaddress.IPv4Address(v))
                elif name.startswith("ipv6"):
                    shown = str(ipaddress.IPv6Address(v))
                else:
                    shown = str(v) if name in ("l3", "meter_color") else hex(v)
                parts.append("%s=%s" % (name, shown))
        return "GlueMatch(%s)" % ", ".join(parts)


_ALL128 = (1 << 128) - 1
_ZERO_MATCH = GlueMatch()


# What the glue passes to doca_dpdk_port_probe when a port gives no devargs: mlx5 hardware
# steering, which DOCA Flow's "hws" mode needs.
DEFAULT_PROBE_DEVARGS = "dv_flow_en=2"
# A port's entries with actions at most: 2^24 x 128 bytes is the largest power of two of
# bytes doca_flow_port_cfg_set_actions_mem_size (uint32_t) takes.
ACTION_ENTRIES_MAX = 1 << 24


class PortSpec:
    """An eSwitch port.  A device port (a PCI function: PF or SF) or, with ``of`` (the name of
    its device port), a representor of that device's e-switch (DOCA 3.1+).
    Real DOCA: ``pci`` is the function's PCI address ("0000:03:00.0" or "03:00.0"; for a
    representor, the address of the function it represents); ``devargs`` go to
    doca_dpdk_port_probe (default "dv_flow_en=2").
    softdoca: ``iface`` (wire) and ``rep_iface`` (kernel side, where misses go) are opened
    with ``driver`` (af_packet, af_xdp, or none = no packet I/O); ``esw`` puts device ports
    with the same number in one e-switch (None: its own); ``pci`` defaults to the name.
    ``pair`` (vnf mode): the name of the port this one forwards to (doca_flow_port_pair).
    ``action_entries`` (DOCA 3.0+): how many entries with actions (a MAC rewrite) the port's
    pipes may hold -- its actions memory, 128 bytes an entry; a power of two, or 0 for the
    glue's default (131 072: 16 MiB)."""

    __slots__ = ("name", "id", "iface", "rep_iface", "driver", "devargs", "pci", "of", "pair", "esw",
                 "action_entries")

    def __init__(
        self,
        name: str,
        id: int,
        iface: Optional[str] = None,
        rep_iface: Optional[str] = None,
        driver: str = "af_packet",
        devargs: str = "",
        pci: Optional[str] = None,
        of: Optional[str] = None,
        pair: Optional[str] = None,
        esw: Optional[int] = None,
        action_entries: int = 0,
    ) -> None:
        if not name:
            raise ValueError("port name must not be empty")
        _uint(id, 4, "port id (0..15)")
        if driver not in ("af_packet", "af_xdp", "none"):
            raise ValueError("driver must be af_packet, af_xdp or none, not %r" % driver)
        for label, ifname in (("iface", iface), ("rep_iface", rep_iface)):
            if ifname is not None and not re.match(r"^[A-Za-z0-9_.-]{1,15}$", ifname):
                raise ValueError("%s %r is not a valid interface name (<= 15 chars)" % (label, ifname))
        if driver != "none" and (iface is None or rep_iface is None):
            raise ValueError("port %s: driver %s needs iface and rep_iface" % (name, driver))
        if pci is not None and not re.match(r"^[0-9A-Za-z:._-]{1,63}$", pci):
            raise ValueError("port %s: pci %r is not an address" % (name, pci))
        if len(devargs) >= 160 or re.search(r"\b[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.\d", devargs):
            raise ValueError("port %s: devargs %r must be under 160 characters and name no PCI address "
                             "(the address is pci)" % (name, devargs))
        if of is not None and of == name:
            raise ValueError("port %s cannot be a representor of itself" % name)
        if pair is not None and pair == name:
            raise ValueError("port %s cannot be paired with itself" % name)
        if esw is not None:
            _uint(esw, 7, "esw (0..127)")
        _uint(action_entries, 25, "action_entries")
        if action_entries & (action_entries - 1) or action_entries > ACTION_ENTRIES_MAX:
            raise ValueError("port %s: action_entries %d must be 0 or a power of two up to %d (DOCA "
                             "takes a power of two of bytes, 128 an entry, in 32 bits)"
                             % (name, action_entries, ACTION_ENTRIES_MAX))
        self.name, self.id, self.iface, self.rep_iface = name, id, iface, rep_iface
        self.driver, self.devargs, self.pci = driver, devargs, pci
        self.of, self.pair, self.esw = of, pair, esw
        self.action_entries = action_entries

    def softdoca_args(self) -> str:
        parts = ["driver=%s" % self.driver]
        if self.iface:
            parts.append("iface=%s" % self.iface)
        if self.rep_iface:
            parts.append("rep=%s" % self.rep_iface)
        if self.esw is not None:
            parts.append("esw=%d" % self.esw)
        return ",".join(parts)

    def __repr__(self) -> str:
        extra = "".join(", %s=%r" % (k, getattr(self, k)) for k in ("pci", "of", "pair", "esw")
                        if getattr(self, k) is not None)
        return "PortSpec(name=%r, id=%d, iface=%r, rep_iface=%r, driver=%r%s)" % (
            self.name, self.id, self.iface, self.rep_iface, self.driver, extra)


def default_eal_args(file_prefix: str, lcores: str = "0-1", memory_mb: int = 256) -> List[str]:
    """EAL arguments that work on this machine kind: no hugepages, no PCI probing, a private
    runtime dir (file prefix) per process.  softdoca adds its vdevs itself (rte_vdev_init)."""
    return ["--no-huge", "-m", str(memory_mb), "--no-pci", "-l", lcores, "--file-prefix", file_prefix,
            "--log-level", "lib.eal:warning"]


# ------------------------------------------------------------------------------------------
# pipes and entries

_FWD_NONE, _FWD_PORT, _FWD_PIPE, _FWD_DROP = 0, 1, 2, 3
_METER_NONE, _METER_ENTRY, _METER_SHARED = 0, 1, 2
_METER_KINDS = {None: _METER_NONE, "entry": _METER_ENTRY, "shared": _METER_SHARED}
# struct xf_entry_spec: pipe, priority, match{src,dst,eth,l4s,l4d,proto,l3,ipv6_src[4],ipv6_dst[4],
# meter_color,pad[3]}, mask{...}, fwd_target, fwd_kind, has_mac, dst_mac[6], meter_kind, meter_bytes,
# pad[2], cir, cbs, shared_meter, pad2  (152 bytes, asserted against cffi)
_SPEC = struct.Struct("=II" + "IIHHHBB16s16sB3x" * 2 + "IBB6sBB2xQQI4x")
_NO_METER = (_METER_NONE, 0, 0, 0)


class _Pipe:
    __slots__ = ("_sw", "_handle", "name", "port", "nr_entries", "_alive")

    def __init__(self, sw: "ESwitch", handle: int, name: str, port: str, nr_entries: int) -> None:
        self._sw, self._handle, self.name, self.port = sw, handle, name, port
        self.nr_entries = nr_entries
        self._alive = True

    @property
    def alive(self) -> bool:
        return self._alive and self._sw._open

    def _check(self) -> None:
        if not self._sw._open:
            raise RuntimeError("the eSwitch of pipe %r is closed" % self.name)
        if not self._alive:
            raise RuntimeError("pipe %r was destroyed" % self.name)


class EntrySpec:
    """An entry not yet installed; made by RootPipe.entry / BasicPipe.entry."""

    __slots__ = ("pipe", "match", "mask", "priority", "fwd_kind", "fwd_target", "mac", "meter")

    def __init__(self, pipe: _Pipe, match: GlueMatch, mask: GlueMatch, priority: int, fwd_kind: int,
                 fwd_target: Any, mac: Optional[bytes], meter: Tuple[int, int, int, Any] = _NO_METER) -> None:
        self.pipe, self.match, self.mask, self.priority = pipe, match, mask, priority
        self.fwd_kind, self.fwd_target, self.mac = fwd_kind, fwd_target, mac
        self.meter = meter  # (kind, cir, cbs, shared Meter or 0)


class RootPipe(_Pipe):
    """A port's root control pipe: entries carry their own mask and a priority
    (0 = highest, as in DOCA/rte_flow); unmatched frames go to the port's representor."""

    __slots__ = ()

    def entry(
        self,
        match: GlueMatch,
        mask: Optional[GlueMatch] = None,
        priority: int = 0,
        fwd_pipe: Optional["BasicPipe"] = None,
        fwd_port: Optional[str] = None,
        drop: bool = False,
        dst_mac: Optional[str] = None,
    ) -> EntrySpec:
        """mask None = exact match on the fields set in ``match``.  Exactly one of
        fwd_pipe / fwd_port / drop."""
        self._check()
        if sum((fwd_pipe is not None, fwd_port is not None, bool(drop))) != 1:
            raise ValueError("a root entry needs exactly one of fwd_pipe, fwd_port, drop")
        _uint(priority, 32, "priority")
        target: Any
        if fwd_pipe is not None:
            if not isinstance(fwd_pipe, BasicPipe) or fwd_pipe._sw is not self._sw:
                raise ValueError("fwd_pipe must be a BasicPipe of the same eSwitch")
            fwd_pipe._check()
            kind, target = _FWD_PIPE, fwd_pipe
        elif fwd_port is not None:
            kind, target = _FWD_PORT, self._sw._port_id(fwd_port)
        else:
            kind, target = _FWD_DROP, 0
        return EntrySpec(self, match, match.full_mask() if mask is None else mask, priority, kind, target,
                         None if dst_mac is None else _mac_bytes(dst_mac))


def _meter_rate(value: Any, what: str) -> Tuple[int, int]:
    """(cir, cbs), both > 0, as a meter takes them."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError("%s must be (cir, cbs), not %r" % (what, value))
    cir, cbs = _uint(value[0], 64, what + " cir"), _uint(value[1], 64, what + " cbs")
    if cir == 0 or cbs == 0:
        raise ValueError("%s: cir and cbs must be > 0 (to drop everything use a drop entry)" % what)
    return cir, cbs


class Meter:
    """A shared meter (ESwitch.create_meter): RFC 2697 srTCM, colour-blind, committed rate
    ``cir`` per second and burst ``cbs``, in packets or bytes (``unit``), for the pipes of
    ``port`` (its e-switch's in switch mode)."""

    __slots__ = ("_sw", "_handle", "port", "cir", "cbs", "unit", "_alive")

    def __init__(self, sw: "ESwitch", handle: int, port: str, cir: int, cbs: int, unit: str) -> None:
        self._sw, self._handle, self.port = sw, handle, port
        self.cir, self.cbs, self.unit = cir, cbs, unit
        self._alive = True

    @property
    def alive(self) -> bool:
        return self._alive and self._sw._open

    def __repr__(self) -> str:
        return "Meter(port=%r, cir=%d, cbs=%d, unit=%r%s)" % (self.port, self.cir, self.cbs, self.unit,
                                                               "" if self.alive else ", destroyed")


class BasicPipe(_Pipe):
    """A basic pipe: one match mask for all entries.  It forwards to ``fwd_port``, to the
    next pipe ``fwd_pipe`` or drops (``drop``); a frame no entry matches goes to
    ``miss_port`` / ``miss_pipe`` (None: the port's default miss).  Its entries set a
    destination MAC when ``set_mac``, and carry a meter when ``meter`` is "entry" (each its
    own) or "shared" (each names a Meter)."""

    __slots__ = ("mask", "fwd_port", "fwd_pipe", "drop", "miss_port", "miss_pipe", "meter", "set_mac")

    def __init__(self, sw: "ESwitch", handle: int, name: str, port: str, nr_entries: int, mask: GlueMatch,
                 fwd_port: Optional[str], **kw: Any) -> None:
        super().__init__(sw, handle, name, port, nr_entries)
        self.mask = mask
        self.fwd_port = fwd_port
        self.fwd_pipe: Optional[BasicPipe] = kw.get("fwd_pipe")
        self.drop: bool = kw.get("drop", False)
        self.miss_port: Optional[str] = kw.get("miss_port")
        self.miss_pipe: Optional[BasicPipe] = kw.get("miss_pipe")
        self.meter: Optional[str] = kw.get("meter")
        self.set_mac: bool = kw.get("set_mac", True)

    def entry(self, match: GlueMatch, dst_mac: Optional[Union[str, bytes]] = None, *,
              meter: Optional[Tuple[int, int]] = None, shared_meter: Optional[Meter] = None) -> EntrySpec:
        """``dst_mac``: required when the pipe sets a MAC, refused otherwise.  ``meter``:
        (cir pps, cbs packets) for a meter="entry" pipe; ``shared_meter``: a Meter for a
        meter="shared" pipe."""
        self._check()
        if self.set_mac and dst_mac is None:
            raise ValueError("pipe %r sets a destination MAC: its entries need dst_mac" % self.name)
        if not self.set_mac and dst_mac is not None:
            raise ValueError("pipe %r sets no MAC (set_mac=False or a drop stage): no dst_mac" % self.name)
        mac = None if dst_mac is None else _mac_bytes(dst_mac)
        metering = self._entry_meter(meter, shared_meter)
        return EntrySpec(self, match, _ZERO_MATCH, 0, _FWD_NONE, 0, mac, metering)

    def _entry_meter(self, meter: Any, shared_meter: Optional[Meter]) -> Tuple[int, int, int, Any]:
        if self.meter != "entry" and meter is not None:
            raise ValueError("pipe %r has no per-entry meter (meter=%r): meter=(cir, cbs) not allowed"
                             % (self.name, self.meter))
        if self.meter != "shared" and shared_meter is not None:
            raise ValueError("pipe %r has no shared meter (meter=%r): shared_meter not allowed"
                             % (self.name, self.meter))
        if self.meter == "entry":
            if meter is None:
                raise ValueError("pipe %r has a meter per entry: give meter=(cir, cbs)" % self.name)
            cir, cbs = _meter_rate(meter, "meter")
            return (_METER_ENTRY, cir, cbs, 0)
        if self.meter == "shared":
            if not isinstance(shared_meter, Meter) or shared_meter._sw is not self._sw:
                raise ValueError("pipe %r has a shared meter: give shared_meter=<a Meter of this eSwitch>"
                                 % self.name)
            if not shared_meter.alive:
                raise RuntimeError("shared meter %r was destroyed" % (shared_meter,))
            return (_METER_SHARED, 0, 0, shared_meter)
        return _NO_METER


class GlueEntry:
    """An installed entry (returned by ESwitch.add_entries)."""

    __slots__ = ("pipe", "_handle", "match", "priority", "_alive")

    def __init__(self, pipe: _Pipe, handle: int, match: GlueMatch, priority: int = 0) -> None:
        self.pipe, self._handle, self.match, self.priority = pipe, handle, match, priority
        self._alive = True

    @property
    def alive(self) -> bool:
        return self._alive and self.pipe._alive and self.pipe._sw._open

    def __repr__(self) -> str:
        state = "" if self.alive else ", removed"
        return "GlueEntry(pipe=%r, match=%r%s)" % (self.pipe.name, self.match, state)


# ------------------------------------------------------------------------------------------
# the eSwitch

_process_lock = threading.Lock()
_process_used = False  # the EAL was (being) initialised in this process


DEFAULT_METERS = 131072
DEFAULT_SHARED_METERS = 1024


class ESwitch:
    """Open with ``with ESwitch(...) as sw`` (or open()/close()).  ``mode`` is the DOCA Flow
    mode, "vnf" or "switch".  ``meters`` / ``shared_meters``: the per-entry and shared meters
    declared to DOCA Flow at init (adds past them fail, naming the budget)."""

    def __init__(
        self,
        eal_args: Sequence[str],
        ports: Sequence[PortSpec],
        mode: str = "vnf",
        meters: int = DEFAULT_METERS,
        shared_meters: int = DEFAULT_SHARED_METERS,
    ) -> None:
        if mode not in ("vnf", "switch"):
            raise ValueError("mode must be 'vnf' or 'switch', not %r" % mode)
        self.meters = _uint(meters, 32, "meters")
        self.shared_meters = _uint(shared_meters, 20, "shared_meters")
        names = [p.name for p in ports]
        ids = [p.id for p in ports]
        if len(set(names)) != len(names) or len(set(ids)) != len(ids):
            raise ValueError("port names and ids must be unique")
        if not ports:
            raise ValueError("an eSwitch needs at least one port")
        by_name = {p.name: p for p in ports}
        for p in ports:
            if p.of is not None and (p.of not in by_name or by_name[p.of].of is not None):
                raise ValueError("port %s: of=%r must name a device port of this eSwitch" % (p.name, p.of))
            if p.pair is not None:
                if mode != "vnf":
                    raise ValueError("port %s: ports are paired in vnf mode only" % p.name)
                if p.pair not in by_name:
                    raise ValueError("port %s: pair=%r is not a port of this eSwitch" % (p.name, p.pair))
        self.eal_args = [str(a) for a in eal_args]
        self.ports = list(ports)
        self.mode = mode
        self._by_name = {p.name: p for p in ports}
        self._lock = threading.RLock()
        self._open = False
        self._pipes: List[_Pipe] = []
        self._meters: List[Meter] = []

    # -- lifecycle ---------------------------------------------------------------------
    def open(self) -> "ESwitch":
        global _process_used
        lib, ffi = _load()
        with _process_lock:
            if _process_used:
                raise GlueError(
                    "DOCA_ERROR_BAD_STATE", "rte_eal_init",
                    "the DPDK EAL initialises once per process and this process already used it; "
                    "open the eSwitch in a child process or talk to eswitchd")
            _process_used = True
        argv_keep = [ffi.new("char[]", a.encode()) for a in ["dpdk_glue"] + self.eal_args]
        argv = ffi.new("char *[]", argv_keep)
        rc = lib.xf_init_ex(len(argv_keep), argv, self.mode.encode(), self.meters, self.shared_meters)
        if rc:
            _raise_last(rc)
        self._open = True
        try:
            cfgs = self._port_cfgs(glue_target(), ffi)
            rc = lib.xf_ports_start(cfgs, len(self.ports))
            if rc:
                _raise_last(rc)
        except BaseException:
            self.close()
            raise
        return self

    def _port_cfgs(self, target: str, ffi: Any) -> Any:
        """The ports as the glue's struct xf_port_cfg array (devices and representors alike;
        the glue brings devices up first)."""
        cfgs = ffi.new("struct xf_port_cfg[]", len(self.ports))
        for c, p in zip(cfgs, self.ports):
            if target == "doca" and not p.pci:
                raise ValueError("port %s: the DOCA target needs its PCI address (pci)" % p.name)
            c.id = p.id
            c.kind = 1 if p.of else 0
            c.parent = self._by_name[p.of].id if p.of else 0xFFFF
            c.pair = self._by_name[p.pair].id if p.pair else 0xFFFF
            c.addr = (p.pci or p.name).encode()
            c.devargs = (p.devargs or DEFAULT_PROBE_DEVARGS).encode()
            c.target_args = p.softdoca_args().encode() if target == "softdoca" else b""
            c.action_entries = p.action_entries
        return cfgs

    def close(self) -> None:
        """Flush pipes, stop ports (switch manager last), destroy DOCA Flow, clean up the EAL.
        Entries still installed are removed with their pipes.  Idempotent."""
        with self._lock:
            if not self._open:
                return
            self._open = False
            for p in self._pipes:
                p._alive = False
            self._pipes.clear()
            for m in self._meters:
                m._alive = False
            self._meters.clear()
            lib, _ = _load()
            rc = lib.xf_close()
            if rc:
                _raise_last(rc)

    def __enter__(self) -> "ESwitch":
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def target(self) -> str:
        return glue_target()

    def _check_open(self) -> None:
        if not self._open:
            raise RuntimeError("the eSwitch is closed")

    def _port_id(self, name: str) -> int:
        try:
            return self._by_name[name].id
        except KeyError:
            raise ValueError("unknown port %r (ports: %s)" % (name, ", ".join(self._by_name))) from None

    # -- pipes -------------------------------------------------------------------------
    def create_root_pipe(self, port: str, nr_entries: int = 64, name: Optional[str] = None) -> RootPipe:
        lib, ffi = _load()
        _uint(nr_entries, 24, "nr_entries")
        with self._lock:
            self._check_open()
            pid = self._port_id(port)
            name = name or "root-%s" % port
            out = ffi.new("uint32_t *")
            rc = lib.xf_pipe_create_root(pid, name.encode(), nr_entries, out)
            if rc:
                _raise_last(rc)
            pipe = RootPipe(self, out[0], name, port, nr_entries)
            self._pipes.append(pipe)
            return pipe

    def _fwd_of(self, what: str, port: Optional[str], pipe: Optional[BasicPipe],
                drop: bool) -> Tuple[int, int]:
        """(kind, target) of a pipe's forward or miss: a port, a basic pipe of this eSwitch,
        drop, or (none given) _FWD_NONE."""
        if sum((port is not None, pipe is not None, bool(drop))) > 1:
            raise ValueError("%s: at most one of a port, a pipe, drop" % what)
        if pipe is not None:
            if not isinstance(pipe, BasicPipe) or pipe._sw is not self:
                raise ValueError("%s: the pipe must be a BasicPipe of this eSwitch" % what)
            pipe._check()
            return _FWD_PIPE, pipe._handle
        if port is not None:
            return _FWD_PORT, self._port_id(port)
        return (_FWD_DROP, 0) if drop else (_FWD_NONE, 0)

    def create_basic_pipe(self, port: str, name: str, mask: GlueMatch, fwd_port: Optional[str] = None,
                          nr_entries: int = 8192, *, fwd_pipe: Optional[BasicPipe] = None, drop: bool = False,
                          miss_port: Optional[str] = None, miss_pipe: Optional[BasicPipe] = None,
                          meter: Optional[str] = None, set_mac: Optional[bool] = None) -> BasicPipe:
        """A basic pipe on ``port`` matching ``mask`` (may be empty: every frame; may hold
        meter_color).  Exactly one of fwd_port / fwd_pipe / drop; miss_port / miss_pipe: where a
        frame no entry matches goes (default: the port's default miss, the kernel).  ``meter``:
        None, "entry" (each entry its own meter) or "shared" (each entry names a Meter).
        ``set_mac``: entries set a destination MAC (default: True, False for a drop pipe)."""
        lib, ffi = _load()
        _uint(nr_entries, 24, "nr_entries")
        if nr_entries == 0:
            raise ValueError("nr_entries must be > 0")
        if not isinstance(mask, GlueMatch):
            raise TypeError("mask must be a GlueMatch")
        if meter not in _METER_KINDS:
            raise ValueError("meter must be None, 'entry' or 'shared', not %r" % (meter,))
        if sum((fwd_port is not None, fwd_pipe is not None, bool(drop))) != 1:
            raise ValueError("pipe %r needs exactly one of fwd_port, fwd_pipe, drop" % name)
        mac = (not drop) if set_mac is None else bool(set_mac)
        with self._lock:
            self._check_open()
            pid = self._port_id(port)
            opts = ffi.new("struct xf_pipe_opts *")
            opts.fwd_kind, opts.fwd_target = self._fwd_of("pipe %r forward" % name, fwd_port, fwd_pipe, drop)
            miss = self._fwd_of("pipe %r miss" % name, miss_port, miss_pipe, False)
            opts.miss_kind, opts.miss_target = miss
            opts.meter_kind = _METER_KINDS[meter]
            opts.set_mac = 1 if mac else 0
            cm = ffi.new("struct xf_match *")
            k = mask._packed()
            (cm.ipv4_src, cm.ipv4_dst, cm.eth_type, cm.l4_src, cm.l4_dst, cm.ip_proto, cm.l3) = k[:7]
            cm.ipv6_src = list(_WORDS4.unpack(k[7]))
            cm.ipv6_dst = list(_WORDS4.unpack(k[8]))
            cm.meter_color = k[9]
            out = ffi.new("uint32_t *")
            rc = lib.xf_pipe_create_basic_ex(pid, name.encode(), cm, opts, nr_entries, out)
            if rc:
                _raise_last(rc)
            pipe = BasicPipe(self, out[0], name, port, nr_entries, mask, fwd_port, fwd_pipe=fwd_pipe,
                             drop=drop, miss_port=miss_port, miss_pipe=miss_pipe, meter=meter, set_mac=mac)
            self._pipes.append(pipe)
            return pipe

    # -- shared meters -------------------------------------------------------------------
    def create_meter(self, port: str, cir: int, cbs: int, unit: str = "packets") -> Meter:
        """A shared meter for the pipes of ``port``: ``cir`` per second, burst ``cbs``, in
        ``unit`` "packets" or "bytes".  Fails past shared_meters (naming it)."""
        lib, ffi = _load()
        if unit not in ("packets", "bytes"):
            raise ValueError("unit must be 'packets' or 'bytes', not %r" % (unit,))
        cir, cbs = _meter_rate((cir, cbs), "shared meter")
        with self._lock:
            self._check_open()
            out = ffi.new("uint32_t *")
            rc = lib.xf_meter_create(self._port_id(port), cir, cbs, 1 if unit == "bytes" else 0, out)
            if rc:
                _raise_last(rc)
            m = Meter(self, out[0], port, cir, cbs, unit)
            self._meters.append(m)
            return m

    def _own_meter(self, meter: Meter) -> None:
        if not isinstance(meter, Meter) or meter._sw is not self:
            raise ValueError("not a meter of this eSwitch: %r" % (meter,))
        if not meter.alive:
            raise RuntimeError("meter %r was destroyed" % (meter,))

    def modify_meter(self, meter: Meter, cir: int, cbs: int) -> None:
        """A new rate for a shared meter, in place: the entries using it keep it."""
        lib, _ = _load()
        cir, cbs = _meter_rate((cir, cbs), "shared meter")
        with self._lock:
            self._check_open()
            self._own_meter(meter)
            rc = lib.xf_meter_modify(meter._handle, cir, cbs)
            if rc:
                _raise_last(rc)
            meter.cir, meter.cbs = cir, cbs

    def destroy_meter(self, meter: Meter) -> None:
        """Refused (DOCA_ERROR_IN_USE) while entries use it."""
        lib, _ = _load()
        with self._lock:
            self._check_open()
            self._own_meter(meter)
            rc = lib.xf_meter_destroy(meter._handle)
            if rc:
                _raise_last(rc)
            meter._alive = False
            self._meters.remove(meter)

    def update_entry_meters(self, updates: Sequence[Tuple[GlueEntry, Tuple[int, int]]]) -> None:
        """New rates (cir, cbs) for entries with their own meter, in place (counters kept, the
        new rate applies from the change); all-or-nothing."""
        lib, ffi = _load()
        if not updates:
            return
        rates = [_meter_rate(r, "meter") for _, r in updates]
        for e, _ in updates:
            if isinstance(e, GlueEntry) and not (isinstance(e.pipe, BasicPipe) and e.pipe.meter == "entry"):
                raise ValueError("entry %r has no meter of its own (its pipe's meter is not 'entry')" % (e,))
        with self._lock:
            self._check_open()
            h = self._handles([e for e, _ in updates])
            n = len(updates)
            errs = ffi.new("int32_t[]", n)
            rc = lib.xf_entries_update_meter(h, [c for c, _ in rates], [b for _, b in rates], n, errs)
            if rc:
                _raise_last(rc)

    def destroy_pipe(self, pipe: _Pipe) -> None:
        """Destroy a pipe with its entries.  Refused (DOCA_ERROR_IN_USE) while root entries
        still forward to it: remove those first."""
        lib, _ = _load()
        with self._lock:
            self._check_open()
            if pipe._sw is not self:
                raise ValueError("pipe belongs to another eSwitch")
            pipe._check()
            rc = lib.xf_pipe_destroy(pipe._handle)
            if rc:
                _raise_last(rc)
            pipe._alive = False
            self._pipes.remove(pipe)

    # -- entries -----------------------------------------------------------------------
    def add_entries(self, specs: Sequence[EntrySpec]) -> List[GlueEntry]:
        """Install a batch (queued, one entries_process).  All-or-nothing: on any failure
        the batch's successful entries are removed again and GlueError lists the failures."""
        lib, ffi = _load()
        self._check_open()
        n = len(specs)
        if n == 0:
            return []
        buf = bytearray(_SPEC.size * n)
        pack = _SPEC.pack_into
        size = _SPEC.size
        off = 0
        for s in specs:
            if s.pipe._sw is not self:
                raise ValueError("entry of a pipe of another eSwitch")
            if not s.pipe._alive:
                raise RuntimeError("pipe %r was destroyed" % s.pipe.name)
            m = s.match._packed()
            k = s.mask._packed()
            tgt = s.fwd_target
            if s.fwd_kind == _FWD_PIPE:
                if not tgt._alive:
                    raise RuntimeError("pipe %r (forward target) was destroyed" % tgt.name)
                tgt = tgt._handle
            mac = s.mac
            mk, cir, cbs, shm = s.meter
            if mk == _METER_SHARED:
                if not shm.alive:
                    raise RuntimeError("shared meter %r was destroyed" % (shm,))
                shm = shm._handle
            pack(buf, off, s.pipe._handle, s.priority, *m, *k, tgt, s.fwd_kind, mac is not None, mac or b"",
                 mk, 0, cir, cbs, shm)
            off += size
        handles = ffi.new("uint64_t[]", n)
        errs = ffi.new("int32_t[]", n)
        stages = ffi.new("uint8_t[]", n)
        nfailed = ffi.new("uint32_t *")
        with self._lock:
            self._check_open()
            cspecs = ffi.from_buffer("struct xf_entry_spec[]", buf)
            rc = lib.xf_entries_add(cspecs, n, handles, errs, stages, nfailed)
        if rc:
            failures = []
            if nfailed[0]:
                for i in range(n):
                    if errs[i]:
                        failures.append((i, ffi.string(lib.xf_error_name(errs[i])).decode(),
                                         ffi.string(lib.xf_stage_call(stages[i])).decode()))
            _raise_last(rc, failures)
        return [GlueEntry(s.pipe, handles[i], s.match, s.priority) for i, s in enumerate(specs)]

    def _handles(self, entries: Sequence[GlueEntry]) -> Any:
        _, ffi = _load()
        for e in entries:
            if not isinstance(e, GlueEntry) or e.pipe._sw is not self:
                raise ValueError("not an entry of this eSwitch: %r" % (e,))
            if not e.alive:
                raise RuntimeError("entry %r is not installed (removed, or its pipe was destroyed)" % (e,))
        return ffi.new("uint64_t[]", [e._handle for e in entries])

    def update_entries(self, updates: Sequence[Tuple[GlueEntry, Union[str, bytes]]]) -> None:
        """Set a new destination MAC on service entries, in place (one batch)."""
        lib, ffi = _load()
        if not updates:
            return
        for e, _ in updates:
            if isinstance(e, GlueEntry) and not (isinstance(e.pipe, BasicPipe) and e.pipe.set_mac):
                raise ValueError("only entries of basic pipes that set a MAC carry a MAC to update")
        macs = b"".join(_mac_bytes(m) for _, m in updates)
        with self._lock:
            self._check_open()
            h = self._handles([e for e, _ in updates])
            errs = ffi.new("int32_t[]", len(updates))
            rc = lib.xf_entries_update_mac(h, macs, len(updates), errs)
            if rc:
                _raise_last(rc)

    def remove_entries(self, entries: Sequence[GlueEntry]) -> None:
        lib, ffi = _load()
        if not entries:
            return
        with self._lock:
            self._check_open()
            h = self._handles(entries)
            errs = ffi.new("int32_t[]", len(entries))
            rc = lib.xf_entries_remove(h, len(entries), errs)
            for e in entries:
                e._alive = False  # removed (or released) either way
            if rc:
                _raise_last(rc)

    def query_entries(self, entries: Sequence[GlueEntry]) -> List[Tuple[int, int]]:
        """(packets, bytes) per entry."""
        lib, ffi = _load()
        n = len(entries)
        if n == 0:
            return []
        with self._lock:
            self._check_open()
            h = self._handles(entries)
            pk = ffi.new("uint64_t[]", n)
            by = ffi.new("uint64_t[]", n)
            rc = lib.xf_entries_query(h, n, pk, by)
            if rc:
                _raise_last(rc)
        return [(pk[i], by[i]) for i in range(n)]

    # -- ports --------------------------------------------------------------------------
    def port_stats(self, port: str) -> Dict[str, Optional[int]]:
        """rx/tx (wire), rep_rx/rep_tx (representor), miss (default miss), malformed, drop,
        tx_fail, miss_rss (of the misses: to the application's queues, lost).  On real DOCA
        the miss fields are None (not counted)."""
        lib, ffi = _load()
        with self._lock:
            self._check_open()
            st = ffi.new("struct xf_port_stats *")
            rc = lib.xf_port_stats(self._port_id(port), st)
            if rc:
                _raise_last(rc)
        names = ("rx_pkts", "rx_bytes", "tx_pkts", "tx_bytes", "rep_rx_pkts", "rep_rx_bytes", "rep_tx_pkts",
                 "rep_tx_bytes", "miss_pkts", "miss_bytes", "malformed_pkts", "drop_pkts", "tx_fail_pkts",
                 "miss_rss_pkts")
        out: Dict[str, Optional[int]] = {k: int(getattr(st, k)) for k in names}
        if not st.valid:
            for k in names[4:]:
                out[k] = None
        return out
