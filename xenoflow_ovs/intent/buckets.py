"""Bucket tables: which backend serves each of a service's 2^k buckets.

A bucket is the value of k low bits of a packet field (the source address for
`src-ip-bits` and `maglev`, the source port for `src-port-bits`), so both planes
can classify by a masked match and need no hashing. Pure code, deterministic from
the config: two DPUs with the same config balance identically behind ECMP.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

from .config import MAX_BITS, Backend, Service

if TYPE_CHECKING:
    from .config import Config

Table = Tuple[str, ...]  # backend name per bucket index


def table(service: Service, exclude: Sequence[str] = ()) -> Table:
    """The bucket table of a service, without the backends in `exclude` (drained or down).

    If every backend is excluded the table keeps all of them: sending traffic to
    a backend that may be down beats black-holing it on purpose.
    """
    active = [b for b in service.backends if b.weight > 0 and b.name not in exclude]
    if not active:
        active = [b for b in service.backends if b.weight > 0]
    size = service.policy.buckets
    if service.policy.kind == "maglev":
        return maglev(active, size)
    # Interleave the realised shares, not the weights: weights that give the same
    # shares then give the same table, so a weight change that cannot change the split
    # (1 -> 2 over two buckets) moves no bucket. Weights the buckets express exactly
    # are proportional to their shares and interleave exactly as before.
    got = shares(weighted_interleave(active, size))
    return weighted_interleave([replace(b, weight=got[b.name]) for b in active if got.get(b.name)], size)


def weighted_interleave(backends: Sequence[Backend], size: int) -> Table:
    """Smooth weighted round robin over the buckets (nginx's algorithm).

    Equal weights give the classic modulo table (bucket i -> backend i mod n), so
    with one source bit and two backends this is exactly the paper's split:
    even sources to the first backend, odd to the second.
    """
    current = [0] * len(backends)
    total = sum(b.weight for b in backends)
    out: List[str] = []
    for _ in range(size):
        for i, b in enumerate(backends):
            current[i] += b.weight
        best = max(range(len(backends)), key=lambda i: (current[i], -i))
        current[best] -= total
        out.append(backends[best].name)
    return tuple(out)


def _h(name: str, salt: bytes) -> int:
    return int.from_bytes(hashlib.sha256(salt + name.encode()).digest()[:8], "big")


def maglev(backends: Sequence[Backend], size: int) -> Table:
    """Maglev's table population (Eisenbud et al., NSDI'16) on a power-of-two table.

    Each backend walks its own permutation (offset + j*skip mod size); an odd skip
    is coprime with 2^k, so every permutation visits every bucket. Weights give a
    backend that many turns per round. Removing a backend moves mostly its own
    buckets; adding it back restores the table exactly.
    """
    if size == 1:
        return (max(backends, key=lambda b: (b.weight, b.name)).name,) if backends else ()
    order = sorted(backends, key=lambda b: b.name)  # config order must not matter
    perms = [(_h(b.name, b"offset") % size, (_h(b.name, b"skip") % (size // 2)) * 2 + 1)
             for b in order]
    nxt = [0] * len(order)
    slots: List[Optional[str]] = [None] * size
    filled = 0
    while filled < size:
        for i, b in enumerate(order):
            for _ in range(b.weight):
                offset, skip = perms[i]
                while True:
                    c = (offset + nxt[i] * skip) % size
                    nxt[i] += 1
                    if slots[c] is None:
                        break
                slots[c] = b.name
                filled += 1
                if filled == size:
                    return tuple(slots)  # type: ignore[arg-type]
    return tuple(slots)  # type: ignore[arg-type]


def shares(tbl: Table) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for name in tbl:
        out[name] = out.get(name, 0) + 1
    return out


def moved(old: Table, new: Table) -> int:
    """Buckets whose backend changes from one table to the next. Tables of different sizes
    (bits changed) are compared on the finer one: its bucket i is the coarser one's
    bucket i mod size, since a bucket is the value of the low bits."""
    if not old or not new:
        return 0
    n = max(len(old), len(new))
    return sum(1 for i in range(n) if old[i % len(old)] != new[i % len(new)])


def _gaps(service: Service, bits: int) -> List[int]:
    """Per backend with weight > 0, how far its buckets are from its weight's share, in
    units of 1/(2^bits * total weight) of the traffic (integers: exact, and intent/ stays
    within its pure imports)."""
    svc = replace(service, policy=replace(service.policy, bits=bits))
    active = [b for b in svc.backends if b.weight > 0]
    total = sum(b.weight for b in active)
    got = shares(table(svc))
    return [abs(got.get(b.name, 0) * total - b.weight * (1 << bits)) for b in active]


def _exact_bits(service: Service) -> Optional[int]:
    """The fewest bits whose table can give every backend exactly its weight's share, or
    None when no power of two can (the total weight, reduced, is not a power of two)."""
    active = [b for b in service.backends if b.weight > 0]
    total = sum(b.weight for b in active)
    for bits in range(MAX_BITS + 1):
        if all(b.weight * (1 << bits) % total == 0 for b in active):
            return bits
    return None


def _within(service: Service, bits: int, percent: int) -> bool:
    total = sum(b.weight for b in service.backends if b.weight > 0)
    return all(100 * g <= percent * (1 << bits) * total for g in _gaps(service, bits))


def weight_warnings(service: Service) -> List[str]:
    """Warnings for weights that the service's 2^bits buckets cannot realise, naming the
    bits that would: the exact number when one exists, else the fewest that come within
    1% of the traffic. Empty when the table realises the weights."""
    active = [b for b in service.backends if b.weight > 0]
    if len(active) < 2 or not any(_gaps(service, service.policy.bits)):
        return []
    got = shares(table(service))
    size = service.policy.buckets
    said = " ".join("%s=%d" % (b.name, b.weight) for b in active)
    real = " ".join("%s=%d/%d" % (b.name, got.get(b.name, 0), size) for b in active)
    exact = _exact_bits(service)
    if exact is not None:
        hint = "bits: %d expresses them exactly" % exact
    else:
        close = next((b for b in range(service.policy.bits + 1, MAX_BITS + 1)
                      if _within(service, b, 1)), None)
        hint = ("no number of bits expresses them exactly (their total over their common factor "
                "is not a power of two)%s" % ("; bits: %d comes within 1%% of the traffic" % close
                                              if close is not None else ""))
    return ["service %s: weights %s cannot be realised by %d bucket(s) (bits: %d); the table "
            "gives %s; %s" % (service.name, said, size, service.policy.bits, real, hint)]


def weight_warnings_of(cfg: "Config") -> List[str]:
    out: List[str] = []
    for s in cfg.services:
        out += weight_warnings(s)
    return out


Term = Tuple[int, int, str]  # (value, mask over the k bits, backend)


def merge(tbl: Table) -> List[Term]:
    """Merge buckets of the same backend into masked terms, for OpenFlow.

    Bit by bit, two terms with the same mask that differ only in that bit and
    name the same backend become one. The result is a partition of the buckets
    (no two terms overlap), so rule priority never decides a packet's fate.
    """
    k = (len(tbl) - 1).bit_length()
    full = (1 << k) - 1
    # Terms grouped by mask, each group a dict value -> backend: int keys, no tuples to
    # build and hash (2^16 buckets merge in ~0.1 s). Before round `bit` every mask still
    # holds that bit (rounds only clear lower ones), so a term's partner is the term of
    # its group with the bit flipped.
    groups: Dict[int, Dict[int, str]] = {full: dict(enumerate(tbl))}
    for bit in range(k):
        b = 1 << bit
        out: Dict[int, Dict[int, str]] = {}
        for m, g in groups.items():
            keep: Dict[int, str] = {}
            merged: Dict[int, str] = {}
            get = g.get
            for v, name in g.items():
                if v & b:
                    if get(v ^ b) != name:
                        keep[v] = name
                elif get(v | b) == name:
                    merged[v] = name
                else:
                    keep[v] = name
            if keep:
                out.setdefault(m, {}).update(keep)
            if merged:
                out.setdefault(m & ~b, {}).update(merged)
        groups = out
    return sorted(((v, m, name) for m, g in groups.items() for v, name in g.items()),
                  key=lambda t: (t[1], t[0]))
