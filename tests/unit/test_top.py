"""`xenoflow top`'s frames from two status snapshots: rates, states, the fallback alarm,
limits, the fleet row and narrow terminals."""

import copy

import pytest

from xenoflow_ovs import top


def status(**over):
    """A status of the shape of GET /status (controller/status.py build())."""
    st = {"dpu": "bf3", "runtime": "osken", "verdict": "consistent",
          "eswitch": {"driver": "softdoca", "mode": "vnf", "connected": True, "error": None,
                      "miss_packets": {"p0": 0}},
          "bridges": {"ovsbr1": {"connected": True, "flows": 9, "planned": 9, "in_sync": True}},
          "services": {"dns": {
              "fips2": {"eswitch_packets": 1000, "eswitch_bytes": 80000, "ovs_packets": 0, "ovs_bytes": 0,
                        "drained": False, "healthy": True, "in_service": True},
              "fips3": {"eswitch_packets": 500, "eswitch_bytes": 40000, "ovs_packets": 10, "ovs_bytes": 900,
                        "drained": True, "healthy": True, "in_service": False},
              "fips4": {"eswitch_packets": 7, "eswitch_bytes": 560, "ovs_packets": 0, "ovs_bytes": 0,
                        "drained": False, "healthy": False, "in_service": False}}},
          "fallback_packets": 0, "miss_other_packets": 12, "packet_ins": 0, "alarms": [],
          "limits": {}, "last_transition": {}, "last_reconcile": {}}
    st.update(over)
    return st


def grown(st, seconds, per_second):
    """The status `seconds` later, each counter grown by per_second[key] a second."""
    st = copy.deepcopy(st)
    for be, c in st["services"]["dns"].items():
        for key, r in per_second.get(be, {}).items():
            c[key] += int(r * seconds)
    for key in ("fallback_packets", "miss_other_packets"):
        if key in per_second and st[key] is not None:
            st[key] += int(per_second[key] * seconds)
    return st


def text(lines):
    return "\n".join(t for _, t in lines)


def row(lines, name):
    got = [t for _, t in lines if t.startswith(name + " ")]
    assert len(got) == 1, text(lines)
    return got[0].split()


def test_rates_come_from_the_two_samples_and_their_time_apart():
    a = status()
    b = grown(a, 2, {"fips2": {"eswitch_packets": 250, "eswitch_bytes": 20000},
                     "fips3": {"ovs_packets": 5, "ovs_bytes": 450}, "miss_other_packets": 1.5})
    lines = top.frame(top.Sample(a, 10.0), top.Sample(b, 12.0))
    cells = row(lines, "dns/fips2")
    assert cells[1:3] == ["in", "service"] and cells[3:] == ["250", "20k", "0", "0"]
    assert row(lines, "dns/fips3")[1:] == ["drained", "0", "0", "5", "450"]
    assert "miss_other 15 packets, 1.5 pkt/s" in text(lines)
    assert "fallback 0 packets, 0 pkt/s" in text(lines)


def test_rates_are_over_each_planes_reading_times_when_the_status_has_them():
    """Samples 2 s apart that hold eSwitch readings 3 s apart and OVS counts 1 s apart:
    each plane's counters grew over their own interval, not over top's."""
    a = status()
    a["eswitch"]["polled_at"] = 100.0
    a["bridges"]["ovsbr1"]["counted_at"] = 100.5
    b = grown(a, 3, {"fips2": {"eswitch_packets": 300}})
    b = grown(b, 1, {"fips3": {"ovs_packets": 40}, "miss_other_packets": 8})
    b["eswitch"]["polled_at"] = 103.0
    b["bridges"]["ovsbr1"]["counted_at"] = 101.5
    lines = top.frame(top.Sample(a, 10.0), top.Sample(b, 12.0))
    assert row(lines, "dns/fips2")[3] == "300"
    assert row(lines, "dns/fips3")[4] == "40"
    assert "miss_other 20 packets, 8 pkt/s" in text(lines)
    same = copy.deepcopy(a)     # polled again before the controller read eswitchd again
    assert row(top.frame(top.Sample(a, 10.0), top.Sample(same, 12.0)), "dns/fips2")[3] == "-"


def test_polling_faster_than_the_readings_takes_rates_from_the_last_sample_with_older_ones():
    def at(es, ovs, pkts):
        st = status()
        st["eswitch"]["polled_at"], st["bridges"]["ovsbr1"]["counted_at"] = es, ovs
        st["services"]["dns"]["fips2"]["eswitch_packets"] = pkts
        return top.Sample(st, 0.0)
    s1, s2, s3 = at(100.0, 100.2, 1000), at(101.0, 101.2, 1400), at(101.0, 101.2, 1400)
    assert top.pick_prev([s1, s2], s3) is s1, "s3 repeats s2's readings"
    assert row(top.frame(top.pick_prev([s1, s2], s3), s3), "dns/fips2")[3] == "400"
    assert top.pick_prev([s1], s2) is s1 and top.pick_prev([], s1) is None
    older = status()        # no reading times (an older controller): the last sample
    assert top.pick_prev([s1, top.Sample(older, 1.0)], top.Sample(status(), 2.0)).at == 1.0


def test_first_frame_and_counter_resets_show_no_rate():
    a = status()
    first = top.frame(None, top.Sample(a, 1.0))
    assert row(first, "dns/fips2")[3:] == ["-", "-", "-", "-"]
    b = copy.deepcopy(a)
    b["services"]["dns"]["fips2"]["eswitch_packets"] = 3      # eswitchd restarted: counters anew
    assert row(top.frame(top.Sample(a, 1.0), top.Sample(b, 3.0)), "dns/fips2")[3] == "-"
    assert top.rate(5, 7, 0) is None and top.rate(None, 7, 1) is None and top.rate(5, 9, 2) == 2


def test_states_in_service_drained_unhealthy():
    st = status(health={"dns/fips2": {"up": True}}, fleet={"local_down": {"dns": ["fips2"]}})
    assert top.backend_state(status(), "dns", "fips2") == "in service"
    assert top.backend_state(st, "dns", "fips2") == "unhealthy"      # this DPU's own probes, cut off
    assert top.backend_state(status(), "dns", "fips3") == "drained"
    assert top.backend_state(status(), "dns", "fips4") == "unhealthy"
    lines = top.frame(None, top.Sample(status(), 0.0))
    styles = {t.split()[0]: s for s, t in lines if t.startswith("dns/")}
    assert styles == {"dns/fips2": "", "dns/fips3": "", "dns/fips4": "alarm"}


def test_fallback_is_an_alarm_once_any_packet_fell_back():
    a = status(fallback_packets=4)
    b = grown(a, 4, {"fallback_packets": 2})
    lines = top.frame(top.Sample(a, 0.0), top.Sample(b, 4.0))
    alarm = [t for s, t in lines if s == "alarm" and "fallback" in t]
    assert alarm == ["ALARM fallback 12 packets, 2 pkt/s: OVS carried service or route traffic the "
                     "eSwitch should have"]
    quiet = top.frame(None, top.Sample(status(), 0.0))
    assert not [t for s, t in quiet if s == "alarm" and not t.startswith("dns/")]
    none = top.frame(None, top.Sample(status(fallback_packets=None, eswitch={"driver": "none"}), 0.0))
    assert "fallback n/a" in text(none) and "eswitch none " in text(none)


def test_verdict_and_what_stands_behind_it():
    st = status(verdict="drift", bridges={"ovsbr1": {"connected": False}},
                alarms=[{"kind": "repeated_repair", "what": "dns/bucket 3", "count": 7, "since": 1.0}],
                eswitch={"driver": "softdoca", "connected": False, "error": "eswitchd: refused"})
    got = [t for s, t in top.frame(None, top.Sample(st, 0.0)) if s == "alarm" and not t.startswith("dns/")]
    assert got == ["verdict drift (xenoflow check shows why)", "eSwitch: eswitchd: refused",
                   "bridge ovsbr1 not connected", "alarm repeated_repair: dns/bucket 3 (7 times)"]
    head = top.frame(None, top.Sample(st, 0.0))[0][1]
    assert "verdict drift" in head and "softdoca (NOT connected)" in head


def test_limits_show_rates_and_drops_per_plane():
    lim = {"pps": 1000, "burst": None, "per_bucket_pps": 100, "per_bucket_burst": None, "bucket_count": 16,
           "limited_packets": {"eswitch": {"service": 10, "bucket": 90}, "ovs": {"service": 0, "bucket": 0}},
           "buckets": [{"bucket": 3, "eswitch": 90, "ovs": 0}], "buckets_left_out": 0}
    a = status(limits={"dns": lim})
    b = copy.deepcopy(a)
    b["limits"]["dns"]["limited_packets"]["eswitch"]["bucket"] = 190
    got = [t for _, t in top.frame(top.Sample(a, 0.0), top.Sample(b, 2.0)) if t.startswith("limits ")]
    assert got == ["limits dns: service 1000 pps, per bucket 100 pps; "
                   "rate-limited eswitch 50/s (200 in all), ovs 0/s (0 in all)"]
    assert not [t for _, t in top.frame(None, top.Sample(status(), 0.0)) if t.startswith("limits ")]


def test_fleet_row_version_verdict_announcement_and_peers():
    fleet = {"dpu": "dpu1", "connected": True, "stale": False, "state": "ok", "error": None,
             "applied_version": 7, "store_version": 7,
             "bgp": {"announced": ["198.18.0.53/32"], "why": "announced",
                     "peers": {"198.18.1.1": {"bgp": "Established", "bfd": "up"},
                               "198.18.1.2": {"bgp": "Active", "bfd": None}}}}
    lines = top.frame(None, top.Sample(status(fleet=fleet), 0.0))
    body = text(lines)
    assert ("dpu dpu1: version 7 of the store's 7, ok, verdict consistent, announcing 198.18.0.53/32 "
            "(announced), store connected") in body
    assert ("", "  peer 198.18.1.1: BGP Established, BFD up") in lines
    assert ("alarm", "  peer 198.18.1.2: BGP Active, BFD off") in lines
    assert "fleet" not in text(top.frame(None, top.Sample(status(), 0.0)))


def test_fleet_lists_the_other_dpus_as_the_store_showed_them():
    fleet = {"dpu": "dpu1", "connected": True, "stale": False, "state": "ok", "applied_version": 7,
             "store_version": 7, "bgp": {},
             "dpus": {"dpu1": {"applied_version": 7, "state": "ok", "verdict": "consistent", "heard": True},
                      "dpu2": {"applied_version": 7, "state": "ok", "stale": False, "verdict": "consistent",
                               "announced": True, "announce_why": "announced", "drained": False,
                               "heard": True},
                      "dpu3": {"applied_version": 6, "state": "rejected", "stale": True, "verdict": "drift",
                               "announced": False, "announce_why": "drained", "drained": True,
                               "error": "port p9 missing", "heard": False}}}
    lines = top.frame(None, top.Sample(status(fleet=fleet), 0.0))
    others = [ln for ln in lines if ln[1].startswith("dpu dpu2") or ln[1].startswith("dpu dpu3")]
    assert others == [
        ("", "dpu dpu2: version 7 of the store's 7, ok, verdict consistent, announcing"),
        ("alarm", "dpu dpu3: version 6 of the store's 7, rejected, drained: port p9 missing, verdict drift, "
                  "not announcing (drained), silent")]
    assert sum(1 for _, t in lines if t.startswith("dpu dpu1")) == 1, "this DPU once, live"


@pytest.mark.parametrize("width,height", [(0, 0), (1, 3), (20, 5), (37, 100)])
def test_narrow_terminals_truncate(width, height):
    a = status(limits={"dns": {"pps": 5, "limited_packets": {"ovs": {"service": 1}}}},
               fleet={"bgp": {"peers": {"p": {}}}})
    lines = top.frame(top.Sample(a, 0.0), top.Sample(grown(a, 1, {"fips2": {"eswitch_packets": 9}}), 1.0))
    got = top.fit(lines, width, height)
    assert len(got) == min(height, len(lines))
    assert all(len(t) <= width for _, t in got)
    assert [s for s, _ in got] == [s for s, _ in lines[:len(got)]]


def test_human_rates():
    assert [top.human(x) for x in (None, 0, 0.25, 3.5, 99.5, 812.4, 12400, 1.2e6, 3e9)] == \
        ["-", "0", "0.25", "3.5", "99.5", "812", "12.4k", "1.2M", "3G"]


def test_url_source_takes_http_only():
    with pytest.raises(ValueError):
        top.url_source("file:///etc/passwd", 1.0)
    assert top.url_source("http://127.0.0.1:9302/", 1.0).where == "http://127.0.0.1:9302/"
