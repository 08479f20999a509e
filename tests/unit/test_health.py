"""Health checks: hysteresis, the probe against a real DNS responder on loopback, the monitor."""

import socket
import threading

import dns.message
import dns.rrset
import pytest

from xenoflow_ovs.controller import health
from xenoflow_ovs.intent.config import Health


def test_hysteresis_rise_and_fall():
    h = health.Hysteresis(rise=2, fall=3)
    assert [h.observe(False) for _ in range(3)] == [None, None, False]
    assert not h.up
    assert h.observe(True) is None and h.observe(False) is None  # a good probe alone is not enough
    assert h.observe(True) is None and h.observe(True) is True
    assert h.up


@pytest.fixture
def responder():
    """A tiny authoritative responder on 127.0.0.1: answers TXT "be1", or REFUSED when told."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    mode = {"answer": "be1", "stop": False}

    def serve():
        sock.settimeout(0.2)
        while not mode["stop"]:
            try:
                data, addr = sock.recvfrom(2048)
            except socket.timeout:
                continue
            q = dns.message.from_wire(data)
            r = dns.message.make_response(q)
            if mode["answer"] is None:
                continue  # silent: the probe times out
            if mode["answer"] == "REFUSED":
                r.set_rcode(5)
            else:
                r.answer.append(dns.rrset.from_text(q.question[0].name, 60, "IN", "TXT",
                                                    '"%s"' % mode["answer"]))
            sock.sendto(r.to_wire(), addr)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield sock.getsockname()[1], mode
    mode["stop"] = True
    t.join()
    sock.close()


def test_probe_against_a_real_responder(responder):
    port, mode = responder
    h = Health(enabled=True, timeout=0.3, expect="be1")
    assert health.probe("127.0.0.1", port, "udp", h)[0]
    mode["answer"] = "be2"
    ok, why = health.probe("127.0.0.1", port, "udp", h)
    assert not ok and "lacks" in why
    mode["answer"] = "REFUSED"
    ok, why = health.probe("127.0.0.1", port, "udp", h)
    assert not ok and "REFUSED" in why
    mode["answer"] = None
    ok, why = health.probe("127.0.0.1", port, "udp", h)
    assert not ok and "timeout" in why


def test_monitor_reports_transitions_once(responder):
    import netaddr

    from xenoflow_ovs.intent.config import Backend, Policy, Service
    port, mode = responder
    svc = Service(name="dns", vip=netaddr.IPAddress("198.18.0.53"), vip_mac="02:00:c6:12:00:35",
                  protocols=("udp",), port=port, ingress="p0", egress="p1", policy=Policy(bits=1),
                  backends=(Backend(name="lo", ip=netaddr.IPAddress("127.0.0.1"), mac="02:00:00:00:00:01"),),
                  health=Health(enabled=True, timeout=0.2, interval=0.3, rise=2, fall=2))
    seen = []
    mon = health.Monitor([svc], lambda s, b, up, why: seen.append((s, b, up)))
    mon.run_once()
    mode["answer"] = None
    for _ in range(3):
        mon.run_once()
    assert seen == [("dns", "lo", False)] and mon.down() == {"dns": ["lo"]}
    mode["answer"] = "be1"
    for _ in range(2):
        mon.run_once()
    assert seen[-1] == ("dns", "lo", True) and mon.down() == {}
    mon.set_services([svc])  # a reload keeps state
    assert mon.states[("dns", "lo")].up


def test_a_round_where_every_probe_fails_changes_nothing():
    """The probe path (through the Arm's OVS) down looks like every backend down at once:
    no failover for that; one backend failing alone still fails over."""
    import netaddr

    from xenoflow_ovs.intent.config import Backend, Policy, Service
    svc = Service(name="dns", vip=netaddr.IPAddress("198.18.0.53"), vip_mac="02:00:c6:12:00:35",
                  protocols=("udp",), port=53, ingress="p0", egress="p1", policy=Policy(bits=1),
                  backends=(Backend(name="a", ip=netaddr.IPAddress("198.18.0.2"), mac="02:00:c6:12:00:02"),
                            Backend(name="b", ip=netaddr.IPAddress("198.18.0.3"), mac="02:00:c6:12:00:03")),
                  health=Health(enabled=True, timeout=0.1, interval=0.2, rise=2, fall=2))
    failing = {"a", "b"}
    probe = lambda ip, port, proto, h: (  # noqa: E731
        ({"198.18.0.2": "a", "198.18.0.3": "b"}[ip] not in failing, "timeout"))
    seen = []
    mon = health.Monitor([svc], lambda s, b, up, why: seen.append((b, up)), probe_fn=probe)
    for _ in range(5):
        mon.run_once()
    assert seen == [] and mon.path_suspect and mon.down() == {}
    failing = {"b"}
    for _ in range(2):
        mon.run_once()
    assert seen == [("b", False)] and not mon.path_suspect


def _dual_service(port=53, **health_kw):
    import netaddr

    from xenoflow_ovs.intent.config import Backend, Policy, Service
    return Service(name="dns", vip=netaddr.IPAddress("198.18.0.53"), vip6=netaddr.IPAddress("2001:db8::53"),
                   vip_mac="02:00:c6:12:00:35", protocols=("udp", "tcp"), port=port, ingress="p0",
                   egress="p1", policy=Policy(bits=1),
                   backends=(Backend(name="a", ip=netaddr.IPAddress("198.18.0.2"), mac="02:00:c6:12:00:02",
                                     ip6=netaddr.IPAddress("2001:db8::2")),
                             Backend(name="b", ip=netaddr.IPAddress("198.18.0.3"), mac="02:00:c6:12:00:03")),
                   health=Health(enabled=True, **health_kw))


def test_probe_targets_cover_each_transport_over_each_family_the_backend_has():
    svc = _dual_service(protocols=("udp", "tcp"))
    a, b = svc.backends
    assert health.probe_targets(svc, a) == [("198.18.0.2", "udp"), ("198.18.0.2", "tcp"),
                                            ("2001:db8::2", "udp"), ("2001:db8::2", "tcp")]
    assert health.probe_targets(svc, b) == [("198.18.0.3", "udp"), ("198.18.0.3", "tcp")]
    only6 = _dual_service(families=(6,))
    assert health.probe_targets(only6, only6.backends[0]) == [("2001:db8::2", "udp")]


def test_a_round_is_good_only_when_every_probe_answers_and_names_the_first_failure():
    svc = _dual_service(protocols=("udp", "tcp"))
    asked = []

    def probe(addr, port, proto, h):
        asked.append((addr, proto))
        return (proto != "tcp" or ":" not in addr), "refused"
    ok, why = health.probe_all(probe, svc, svc.backends[0])
    assert not ok and why == "tcp 2001:db8::2: refused"
    assert asked[-1] == ("2001:db8::2", "tcp") and len(asked) == 4
    assert health.probe_all(probe, svc, svc.backends[1])[0]


@pytest.fixture
def responder6():
    """The same answer over UDP and TCP on ::1 (a real socket per transport)."""
    udp = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    udp.bind(("::1", 0))
    port = udp.getsockname()[1]
    tcp = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("::1", port))
    tcp.listen(4)
    stop = threading.Event()

    def answer(data):
        q = dns.message.from_wire(data)
        r = dns.message.make_response(q)
        r.answer.append(dns.rrset.from_text(q.question[0].name, 60, "IN", "TXT", '"be6"'))
        return r.to_wire()

    def serve_udp():
        udp.settimeout(0.2)
        while not stop.is_set():
            try:
                data, addr = udp.recvfrom(2048)
            except socket.timeout:
                continue
            udp.sendto(answer(data), addr)

    def serve_tcp():
        tcp.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = tcp.accept()
            except socket.timeout:
                continue
            with conn:
                conn.settimeout(1.0)
                n = int.from_bytes(conn.recv(2), "big")
                data = b""
                while len(data) < n:
                    data += conn.recv(n - len(data))
                out = answer(data)
                conn.sendall(len(out).to_bytes(2, "big") + out)

    threads = [threading.Thread(target=f, daemon=True) for f in (serve_udp, serve_tcp)]
    for t in threads:
        t.start()
    yield port
    stop.set()
    for t in threads:
        t.join()
    udp.close()
    tcp.close()


def test_probe_over_ipv6_udp_and_tcp_against_a_real_responder(responder6):
    h = Health(enabled=True, timeout=0.5, expect="be6")
    for proto in ("udp", "tcp"):
        ok, why = health.probe("::1", responder6, proto, h)
        assert ok, (proto, why)
    # nothing listens on the next port: the probe fails, it does not hang or raise
    ok, why = health.probe("::1", responder6 + 1 if responder6 < 65535 else 1, "tcp", h)
    assert not ok
