"""Bucket tables: which backend serves each of a service's 2^k buckets.

A bucket is the value of k low bits of a packet field (the source address for
`src-ip-bits` and `maglev`, the source port for `src-port-bits`), so both planes
can classify by a masked match and need no hashing. Pure code, deterministic from
the config: two DPUs with the same config balance identically behind ECMP.
"""

from __future__ import annotations

import hashlib
from typing import Dict, List, Optional, Sequence, Tuple

from .config import Backend, Service

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
    return weighted_interleave(active, size)


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
    """Buckets whose backend differs between two tables of the same size."""
    return sum(1 for a, b in zip(old, new) if a != b)


Term = Tuple[int, int, str]  # (value, mask over the k bits, backend)


def merge(tbl: Table) -> List[Term]:
    """Merge buckets of the same backend into masked terms, for OpenFlow.

    Bit by bit, two terms with the same mask that differ only in that bit and
    name the same backend become one. The result is a partition of the buckets
    (no two terms overlap), so rule priority never decides a packet's fate.
    """
    k = (len(tbl) - 1).bit_length()
    full = (1 << k) - 1
    terms = {(v, full): name for v, name in enumerate(tbl)}
    for bit in range(k):
        b = 1 << bit
        merged: Dict[Tuple[int, int], str] = {}
        for (v, m), name in sorted(terms.items()):
            if not m & b:
                merged[(v, m)] = name
                continue
            if v & b:
                partner = (v & ~b, m)
                if terms.get(partner) == name:
                    continue  # folded into the partner below
                merged[(v, m)] = name
            else:
                partner = (v | b, m)
                if terms.get(partner) == name:
                    merged[(v, m & ~b)] = name
                else:
                    merged[(v, m)] = name
        terms = merged
    return sorted(((v, m, name) for (v, m), name in terms.items()), key=lambda t: (t[1], t[0]))
