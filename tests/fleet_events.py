"""Reading a steady load's records around a DPU event (tests/lab/test_fleet_lab.py and the
fleet benchmark): loss windows and the clients that changed backend. Pure.

A record is lab_harness's: [source index, t_send, t_answer or None, answer or None].
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

Record = Sequence[Any]


def loss_windows(records: Sequence[Record], gap: float = 0.25) -> List[Tuple[float, float, int]]:
    """The spans of lost queries: (first lost send, last lost send, count); lost queries
    less than `gap` apart (in send time) belong to one window."""
    lost = sorted(r[1] for r in records if r[2] is None)
    out: List[Tuple[float, float, int]] = []
    for t in lost:
        if out and t - out[-1][1] <= gap:
            a, _, n = out[-1]
            out[-1] = (a, t, n + 1)
        else:
            out.append((t, t, 1))
    return out


def loss_window(records: Sequence[Record], rate: float) -> float:
    """The longest loss window in seconds, per flow (source): from the first to the last
    query of one unbroken run of its lost queries, plus one of its sending intervals (so one
    lost query is one interval, none is 0). Per flow, a pause of the sender inside the window
    cannot split it, and other flows' answers do not hide it."""
    flows: Dict[int, List[Record]] = {}
    for r in records:
        flows.setdefault(r[0], []).append(r)
    interval = len(flows) / rate if flows else 0.0
    longest = 0.0
    for recs in flows.values():
        run_start: Optional[float] = None
        for r in sorted(recs, key=lambda x: x[1]):
            if r[2] is None:
                run_start = r[1] if run_start is None else run_start
                longest = max(longest, r[1] - run_start + interval)
            else:
                run_start = None
    return longest


def backends_by_source(records: Sequence[Record], t_from: float, t_to: float) -> Dict[int, str]:
    """Each source's backend among its answered queries sent in [t_from, t_to) (the most
    frequent one)."""
    seen: Dict[int, Dict[str, int]] = {}
    for r in records:
        if r[2] is not None and t_from <= r[1] < t_to and r[3]:
            c = seen.setdefault(r[0], {})
            c[r[3]] = c.get(r[3], 0) + 1
    return {i: max(c.items(), key=lambda kv: kv[1])[0] for i, c in seen.items()}


def changed_share(records: Sequence[Record], t_event: float, settle: float = 3.0,
                  window: float = 2.0, t_end: Optional[float] = None) -> Tuple[float, List[int]]:
    """The share of sources whose backend differs between the `window` s before the event
    and the `window` s starting `settle` s after it; and which sources changed."""
    before = backends_by_source(records, t_event - window, t_event)
    start = t_event + settle
    after = backends_by_source(records, start, t_end if t_end is not None else start + window)
    both = sorted(set(before) & set(after))
    changed = [i for i in both if before[i] != after[i]]
    return (len(changed) / len(both) if both else 0.0), changed
