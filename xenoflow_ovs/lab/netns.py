"""Network namespace helpers for tests and the lab (pyroute2 + a few commands).

Everything is addressed by exact name: nothing here lists and deletes by
pattern. Interface names must be <= 15 characters (Linux IFNAMSIZ - 1).

Commands inside a namespace run as ``ip netns exec NS argv...`` (list args,
never a shell): :func:`ns_argv` builds that argv, :func:`run_in_ns` runs it and
:func:`popen_in_ns` starts it in the background.
"""
from __future__ import annotations

import os
import subprocess
import time
from typing import Dict, List, Optional, Sequence, Tuple

from pyroute2 import IPRoute, NetNS
from pyroute2 import netns as _pr_netns

IFNAMSIZ_MAX = 15

__all__ = [
    "IFNAMSIZ_MAX", "check_ifname", "ns_exists", "create_ns", "delete_ns", "ns_argv",
    "run_in_ns", "popen_in_ns", "add_veth", "link_exists", "delete_link", "set_link",
    "add_address", "add_lo_address", "set_if_sysctls", "if_sysctl_key", "IFA_F_NODAD",
    "disable_tx_offload", "disable_ipv6", "set_sysctl",
    "set_arp_dsr", "prepare_link", "wait_oper_up", "ns_pids", "unix_peer_inodes",
    "pids_of_socket_inodes", "unix_socket_clients", "named_namespaces", "ancestors",
]


def check_ifname(name: str) -> str:
    if not name or len(name) > IFNAMSIZ_MAX or "/" in name or " " in name:
        raise ValueError("bad interface name %r (1..15 chars, no '/' or space)" % (name,))
    return name


def _ipr(ns: Optional[str]):
    """An IPRoute-like socket in `ns` (None = this process's namespace)."""
    return NetNS(ns) if ns else IPRoute()


def _index(ipr, ifname: str) -> int:
    idx = ipr.link_lookup(ifname=ifname)
    if not idx:
        raise LookupError("no interface %r" % ifname)
    return idx[0]


# --- namespaces ---------------------------------------------------------------

def ns_exists(name: str) -> bool:
    return name in _pr_netns.listnetns()


def create_ns(name: str, lo_up: bool = True, exist_ok: bool = False) -> str:
    """Create network namespace `name` (bring its loopback up)."""
    if ns_exists(name):
        if not exist_ok:
            raise FileExistsError("namespace %s exists" % name)
    else:
        _pr_netns.create(name)
    if lo_up:
        set_link("lo", ns=name, up=True)
    return name


def delete_ns(name: str) -> bool:
    """Delete namespace `name` (exact name). Returns False if it did not exist.

    Deleting a namespace deletes the veths inside it, and so their peers."""
    if not ns_exists(name):
        return False
    _pr_netns.remove(name)
    return True


# --- commands in a namespace ----------------------------------------------------

def ns_argv(ns: Optional[str], argv: Sequence[str]) -> List[str]:
    """argv that runs `argv` inside `ns` (unchanged when ns is None)."""
    argv = [str(a) for a in argv]
    return (["ip", "netns", "exec", ns] + argv) if ns else argv


def run_in_ns(ns: Optional[str], argv: Sequence[str], check: bool = True,
              timeout: float = 60, env: Optional[Dict[str, str]] = None,
              input: Optional[str] = None) -> subprocess.CompletedProcess:
    """Run argv in `ns`, capture text stdout/stderr; raise on failure if `check`."""
    p = subprocess.run(ns_argv(ns, argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=timeout, env=env, input=input)
    if check and p.returncode != 0:
        raise subprocess.CalledProcessError(p.returncode, p.args, p.stdout, p.stderr)
    return p


def popen_in_ns(ns: Optional[str], argv: Sequence[str], env: Optional[Dict[str, str]] = None,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                cwd: Optional[str] = None) -> subprocess.Popen:
    """Start argv in `ns` in the background. The Popen's pid is the command's own
    (``ip netns exec`` execs it), so stop it with p.terminate()/p.kill()."""
    return subprocess.Popen(ns_argv(ns, argv), env=env, stdout=stdout, stderr=stderr,
                            stdin=subprocess.DEVNULL, cwd=cwd, start_new_session=True)


# --- links and addresses ------------------------------------------------------

def add_veth(name: str, peer: str, ns: Optional[str] = None,
             peer_ns: Optional[str] = None) -> None:
    """Create veth pair name<->peer, `name` in `ns` and `peer` in `peer_ns`
    (None = this process's namespace). Both ends are left down."""
    check_ifname(name)
    check_ifname(peer)
    with _ipr(ns) as ipr:
        peer_spec = {"ifname": peer}
        if peer_ns:
            peer_spec["net_ns_fd"] = peer_ns
        ipr.link("add", ifname=name, kind="veth", peer=peer_spec)
    if not peer_ns and ns:
        # the peer was created inside `ns`: move it out to this namespace
        with NetNS(ns) as ipr:
            ipr.link("set", index=_index(ipr, peer), net_ns_pid=os.getpid())


def link_exists(ifname: str, ns: Optional[str] = None) -> bool:
    if ns and not ns_exists(ns):
        return False
    with _ipr(ns) as ipr:
        return bool(ipr.link_lookup(ifname=ifname))


def delete_link(ifname: str, ns: Optional[str] = None) -> bool:
    """Delete interface `ifname` (exact name) in `ns`; False if absent."""
    if not link_exists(ifname, ns):
        return False
    with _ipr(ns) as ipr:
        ipr.link("del", index=_index(ipr, ifname))
    return True


def set_link(ifname: str, ns: Optional[str] = None, mac: Optional[str] = None,
             up: Optional[bool] = True, mtu: Optional[int] = None) -> None:
    """Set MAC / MTU, then up or down (None leaves the state alone)."""
    with _ipr(ns) as ipr:
        idx = _index(ipr, ifname)
        kw = {}
        if mac:
            kw["address"] = mac
        if mtu:
            kw["mtu"] = int(mtu)
        if kw:
            ipr.link("set", index=idx, **kw)
        if up is not None:
            ipr.link("set", index=idx, state="up" if up else "down")


IFA_F_NODAD = 0x02   # linux/if_addr.h: no duplicate address detection for this address


def _family(addr: str) -> int:
    return 10 if ":" in addr else 2   # AF_INET6 / AF_INET


def add_address(ifname: str, cidr: str, ns: Optional[str] = None) -> None:
    """Add address 'a.b.c.d/len' or 'x:y::z/len' to ifname (idempotent). IPv6 addresses are
    added with ``nodad``: usable at once (never ``tentative``), and no DAD probe on the wire."""
    addr, _, plen = cidr.partition("/")
    fam = _family(addr)
    plen_i = int(plen or (128 if fam == 10 else 32))
    with _ipr(ns) as ipr:
        idx = _index(ipr, ifname)
        for a in ipr.get_addr(index=idx, family=fam):
            if _same_ip(a.get_attr("IFA_ADDRESS"), addr, fam) and a["prefixlen"] == plen_i:
                return
        if fam == 10:
            ipr.addr("add", index=idx, address=addr, prefixlen=plen_i, family=fam, flags=IFA_F_NODAD)
        else:
            ipr.addr("add", index=idx, address=addr, prefixlen=plen_i)


def _same_ip(have: Optional[str], want: str, fam: int) -> bool:
    """Compare as addresses (the kernel reports IPv6 in its compressed form)."""
    if fam == 2 or have is None:
        return have == want
    import ipaddress
    return ipaddress.ip_address(have) == ipaddress.ip_address(want)


def add_lo_address(ns: str, cidr: str) -> None:
    """Add an address to the namespace's loopback (e.g. a DSR VIP, /32 or /128)."""
    if "/" not in cidr:
        cidr += "/128" if _family(cidr) == 10 else "/32"
    set_link("lo", ns=ns, up=True)
    add_address("lo", cidr, ns=ns)


def set_if_sysctls(ns: Optional[str], ifname: str, kv: Sequence[Tuple[str, str]]) -> None:
    """Per-interface sysctls: ("ipv6.accept_ra", "0") is net/ipv6/conf/<ifname>/accept_ra ('/'
    separators: an interface name may hold dots). One ``sysctl`` call, in the given order."""
    if kv:
        run_in_ns(ns, ["sysctl", "-q", "-w"] + ["%s=%s" % (if_sysctl_key(ifname, k), v) for k, v in kv])


def if_sysctl_key(ifname: str, key: str) -> str:
    """'ipv6.disable_ipv6' of eth0 -> 'net/ipv6/conf/eth0/disable_ipv6'."""
    family, _, name = key.partition(".")
    return "net/%s/conf/%s/%s" % (family, ifname, name)


def disable_tx_offload(ifname: str, ns: Optional[str] = None) -> None:
    """``ethtool -K IF tx off``: required on every veth whose frames cross the OVS
    netdev datapath, else UDP checksums stay partial."""
    run_in_ns(ns, ["ethtool", "-K", ifname, "tx", "off"])


def set_sysctl(ns: Optional[str], key: str, value) -> None:
    """sysctl inside `ns`. `key` may use '/' separators (needed for ifnames with dots)."""
    run_in_ns(ns, ["sysctl", "-q", "-w", "%s=%s" % (key, value)])


def disable_ipv6(ifname: str, ns: Optional[str] = None) -> None:
    """Turn IPv6 off on one link (no router solicitations / ND noise)."""
    set_sysctl(ns, "net/ipv6/conf/%s/disable_ipv6" % ifname, 1)


def set_arp_dsr(ns: str, ifname: str = "all") -> None:
    """arp_ignore=1, arp_announce=2 (a DSR backend holding the VIP on lo)."""
    set_sysctl(ns, "net/ipv4/conf/%s/arp_ignore" % ifname, 1)
    set_sysctl(ns, "net/ipv4/conf/%s/arp_announce" % ifname, 2)


def prepare_link(ifname: str, ns: Optional[str] = None, mac: Optional[str] = None,
                 cidr: Optional[str] = None, tx_off: bool = True, ipv6_off: bool = True,
                 mtu: Optional[int] = None) -> None:
    """The usual lab link setup in one call: IPv6 off, MAC, address, TX
    checksum offload off, up."""
    if ipv6_off:
        disable_ipv6(ifname, ns)
    set_link(ifname, ns=ns, mac=mac, mtu=mtu, up=None)
    if cidr:
        add_address(ifname, cidr, ns=ns)
    if tx_off:
        disable_tx_offload(ifname, ns)
    set_link(ifname, ns=ns, up=True)


def wait_oper_up(ifname: str, ns: Optional[str] = None, timeout: float = 5.0) -> bool:
    """Wait until `ifname` is operationally up (a veth: once both ends are up)."""
    deadline = time.monotonic() + timeout
    while True:
        with _ipr(ns) as ipr:
            link = ipr.get_links(_index(ipr, ifname))[0]
            if link.get_attr("IFLA_OPERSTATE") == "UP":
                return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


# --- processes attached to a lab ------------------------------------------------

def ns_pids(ns: str) -> List[int]:
    """PIDs of every process in namespace `ns` (``ip netns pids``); [] if it is gone."""
    if not ns_exists(ns):
        return []
    p = run_in_ns(None, ["ip", "netns", "pids", ns], check=False, timeout=30)
    return [int(x) for x in p.stdout.split() if x.isdigit()]


def unix_peer_inodes(ss_output: str, paths: Sequence[str]) -> List[int]:
    """From ``ss -x -a -n`` output: the peer inodes of connections to any of `paths` (the
    server side of an accepted connection shows the socket's path, the client its inode).
    Pure: the lines are ``Netid State Recv-Q Send-Q <path> <inode> <peer path|*> <peer inode>``."""
    want = set(paths)
    out = []
    for line in ss_output.splitlines():
        f = line.split()
        if len(f) < 8 or f[0] != "u_str" or f[4] not in want:
            continue
        try:
            peer = int(f[7])
        except ValueError:
            continue
        if peer:
            out.append(peer)
    return out


def pids_of_socket_inodes(inodes: Sequence[int]) -> List[int]:
    """Processes holding a socket with one of these inodes (their /proc/PID/fd links)."""
    want = {"socket:[%d]" % i for i in inodes}
    found = []
    if not want:
        return found
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            fds = os.listdir("/proc/%s/fd" % pid)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink("/proc/%s/fd/%s" % (pid, fd)) in want:
                    found.append(int(pid))
                    break
            except OSError:
                continue
    return found


def unix_socket_clients(paths: Sequence[str], namespaces: Sequence[Optional[str]]) -> List[int]:
    """PIDs connected to any of the unix sockets `paths`, looked up in each of `namespaces`
    (None: this one). The server's end of a connection belongs to the network namespace of
    the client that connected (the kernel makes it in the client's), so look where clients
    may be: this namespace and every named one."""
    inodes: List[int] = []
    for ns in namespaces:
        if ns is not None and not ns_exists(ns):
            continue
        p = run_in_ns(ns, ["ss", "-x", "-a", "-n"], check=False, timeout=30)
        inodes += unix_peer_inodes(p.stdout, paths)
    return sorted(set(pids_of_socket_inodes(inodes)))


def named_namespaces() -> List[str]:
    return list(_pr_netns.listnetns())


def ancestors(pid: Optional[int] = None) -> List[int]:
    """`pid` (default: this process) and its parents up to init: never ours to stop."""
    out = []
    cur = pid or os.getpid()
    while cur > 1:
        out.append(cur)
        try:
            with open("/proc/%d/stat" % cur) as f:
                cur = int(f.read().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return out
