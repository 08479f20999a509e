"""doctor's host checks, from made-up facts; and the parts that read the host, on this one
(a port held by us or by another process, a live or stale API socket)."""

import socket
import subprocess
import sys

import pytest

from xenoflow_ovs import doctor
from xenoflow_ovs import doctor_host as dh
from xenoflow_ovs.api import server as api
from xenoflow_ovs.doctor import FAIL, NA, OK, WARN, Facts
from xenoflow_ovs.intent import plan as plan_mod

ROUTE = plan_mod.cookie("route", "pf1hpf->p1")


def host(**kw):
    base = dict(driver="softdoca", netdevs=[("p0", "uplink p0, an OVS port", True)], ovs_db="unix:/x",
                ovs_bridges=["ovsbr1"], want_bridges=["ovsbr1"], routes={"ovsbr1": [(ROUTE, 100)]},
                flows={"ovsbr1": [(ROUTE, 100)]}, listeners=[dh.Listener("api", "127.0.0.1:8080", "free")])
    base.update(kw)
    return Facts(host=dh.Host(**base))


def status(check, facts):
    r = check(facts)
    return (r[0] if isinstance(r, list) else r).status


def test_every_host_check_is_na_without_a_config():
    for check in (doctor.check_interfaces, doctor.check_eswitch_mode, doctor.check_ovs,
                  doctor.check_hw_offload, doctor.check_routes, doctor.check_listeners):
        assert status(check, Facts()) == NA


def test_interfaces():
    assert status(doctor.check_interfaces, host()) == OK
    r = doctor.check_interfaces(host(netdevs=[("p0", "uplink p0", False), ("p1", "uplink p1", True)]))
    assert r.status == FAIL and "p0 (uplink p0)" in r.detail and "ip netns exec dpu" in r.hint


def test_eswitch_mode_only_for_doca_and_switchdev():
    assert status(doctor.check_eswitch_mode, host()) == NA
    ok = host(driver="doca", pci=[("p0", "0000:03:00.0", "switchdev", "")])
    assert status(doctor.check_eswitch_mode, ok) == OK
    r = doctor.check_eswitch_mode(host(driver="doca", pci=[("p0", "0000:03:00.0", "legacy", "")]))
    assert r.status == FAIL and "legacy" in r.detail and "mode switchdev" in r.hint
    assert dh.parse_devlink_mode("pci/0000:03:00.0: mode switchdev inline-mode none encap-mode basic") == \
        "switchdev"


def test_ovs_reachable_and_bridges():
    assert status(doctor.check_ovs, host()) == OK
    r = doctor.check_ovs(host(ovs_bridges=None, ovs_note="database connection failed"))
    assert r.status == FAIL and "connection failed" in r.detail
    assert status(doctor.check_ovs, host(ovs_bridges=[])) == WARN   # the controller creates them


def test_hw_offload_matters_with_doca_only():
    assert status(doctor.check_hw_offload, host()) == NA
    assert status(doctor.check_hw_offload, host(driver="doca", hw_offload="true")) == OK
    r = doctor.check_hw_offload(host(driver="doca", hw_offload=None))
    assert r.status == FAIL and "unset" in r.detail and "hw-offload=true" in r.hint


def test_routes_in_our_cookie_space():
    assert status(doctor.check_routes, host()) == OK
    other = plan_mod.cookie("service", "dns")
    r = doctor.check_routes(host(flows={"ovsbr1": [(other, 201)]}))
    assert r.status == FAIL and "cookie=%#x priority=100" % ROUTE in r.detail
    assert status(doctor.check_routes, host(flows={"ovsbr1": [(0, 0)]})) == WARN   # no controller yet
    assert status(doctor.check_routes, host(routes={"ovsbr1": []})) == NA
    text = (" cookie=%#x, duration=1.2s, table=0, n_packets=0, n_bytes=0, priority=100,ip,in_port=4 "
            "actions=output:2\n cookie=0x0, duration=1s, table=0, priority=0 actions=NORMAL\n" % ROUTE)
    assert dh.parse_flows(text) == [(ROUTE, 100), (0, 0)]


def test_listeners_verdicts():
    facts = host(listeners=[dh.Listener("api", "a", "free"), dh.Listener("metrics", "b", "ours", "pid 1 (x)"),
                            dh.Listener("openflow", "c", "other", "pid 2 (nginx)"),
                            dh.Listener("api-socket", "d", "unusable", "no")])
    got = [(r.name, r.status) for r in doctor.check_listeners(facts)]
    assert got == [("port-api", OK), ("port-metrics", OK), ("port-openflow", FAIL), ("api-socket", FAIL)]


def test_a_port_held_by_another_process_is_named():
    code = ("import socket, time\ns = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
            "print(s.getsockname()[1], flush=True)\ntime.sleep(60)\n")
    other = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, universal_newlines=True)
    try:
        port = int(other.stdout.readline())
        ln = dh.tcp_listener("api", "127.0.0.1", port)
        assert ln.state == "other" and "pid %d" % other.pid in ln.owner
        free = socket.socket()
        free.bind(("127.0.0.1", 0))
        fport = free.getsockname()[1]
        free.close()
        assert dh.tcp_listener("api", "127.0.0.1", fport).state == "free"
        assert dh.tcp_listener("api", "192.0.2.77", 8080).state == "unusable"   # not an address of ours
    finally:
        other.kill()
        other.wait()


def test_the_owner_is_ours_when_its_command_line_says_xenoflow(monkeypatch):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    try:
        monkeypatch.setattr(dh, "_cmdline", lambda pid: "python -m xenoflow_ovs.cli controller -c x")
        ln = dh.tcp_listener("api", "127.0.0.1", s.getsockname()[1])
        assert ln.state == "ours" and "xenoflow_ovs.cli controller" in ln.owner
    finally:
        s.close()


@pytest.mark.parametrize("dpu, state", [("bf3", "ours"), ("bf4", "other")])
def test_api_socket_live_or_stale(tmp_path, dpu, state):
    path = str(tmp_path / "api.sock")
    assert dh.unix_listener("api-socket", path, dpu).state == "free"
    srv = api.Api(None, None, path)
    srv.route("GET", "/status", lambda body: (200, {"dpu": "bf3", "pid": 7}))
    srv.start()
    try:
        assert dh.unix_listener("api-socket", path, dpu).state == state
    finally:
        srv.stop()
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()
    ln = dh.unix_listener("api-socket", path, dpu)
    assert ln.state == "free" and "stale" in ln.owner
