"""Loss windows and backend changes read from a load's records (tests/fleet_events.py)."""

import fleet_events as fe


def rec(i, t, ok=True, who="fips2"):
    return [i, t, t + 0.001 if ok else None, who if ok else None]


def test_no_loss_is_a_zero_window():
    assert fe.loss_window([rec(0, t / 100) for t in range(100)], rate=100) == 0.0


def test_one_window_spans_its_lost_queries():
    rs = [rec(0, t / 100, ok=not (50 <= t < 80)) for t in range(200)]
    assert abs(fe.loss_window(rs, rate=100) - 0.30) < 1e-9
    assert fe.loss_windows(rs)[0][2] == 30


def test_the_window_is_per_flow_and_a_sender_pause_does_not_split_it():
    rs = []
    for t in range(200):
        now = t / 100 + (0.5 if t >= 60 else 0.0)            # the sender paused 0.5 s at t=60
        rs.append(rec(0, now, ok=not (50 <= t < 80)))        # flow 0 lost from 0.50 to 1.29
        rs.append(rec(1, now + 0.001))                      # flow 1 answered throughout
    assert abs(fe.loss_window(rs, rate=200) - (1.29 - 0.50 + 0.01)) < 1e-9


def test_separate_windows_the_longest_counts():
    rs = [rec(0, t / 100, ok=t not in (10, 11, 150)) for t in range(200)]
    wins = fe.loss_windows(rs)
    assert len(wins) == 2
    assert abs(fe.loss_window(rs, rate=100) - 0.02) < 1e-9


def test_changed_share_counts_sources_whose_backend_moved():
    rs = []
    for t in range(0, 100):
        now = t / 10
        rs.append(rec(0, now, who="fips2"))
        rs.append(rec(1, now, who="fips3" if now < 5 else "fips2"))
    share, changed = fe.changed_share(rs, t_event=5.0, settle=1.0, window=2.0)
    assert share == 0.5 and changed == [1]
