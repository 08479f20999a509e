"""The lab's dashboard relay (xenoflow_ovs/lab/relay.py): the host's loopback to a listener
that exists only inside a namespace, as the lab's metrics listener does."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest
from process_helpers import free_port

from xenoflow_ovs.lab import netns as nsh
from xenoflow_ovs.lab import relay
from xenoflow_ovs.lab.pyenv import subprocess_env

pytestmark = [pytest.mark.root]

INNER_PORT = 9302


def test_addresses_are_parsed_and_only_loopback_is_listened_on():
    assert relay.parse_hostport("127.0.0.1:9302") == ("127.0.0.1", 9302)
    assert relay.parse_hostport("[::1]:80") == ("::1", 80)
    for bad in ("127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "host:port"):
        with pytest.raises(ValueError):
            relay.parse_hostport(bad)
    assert relay.is_loopback("127.0.0.1") and relay.is_loopback("::1")
    assert not relay.is_loopback("0.0.0.0") and not relay.is_loopback("198.18.0.1")


def _start(argv):
    return subprocess.Popen([sys.executable, "-m", "xenoflow_ovs.lab.relay"] + argv, env=subprocess_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _get(port, path="/page.txt"):
    return urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5).read().decode()


def test_the_host_reaches_a_listener_inside_the_namespace(netns):
    ns = netns("dr")
    docroot = tempfile.mkdtemp(prefix="xf-relay-")
    with open(os.path.join(docroot, "page.txt"), "w") as f:
        f.write("inside %s\n" % ns)
    inner = nsh.popen_in_ns(ns, [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(INNER_PORT)],
                            cwd=docroot)
    port = free_port()
    proc = _start(["--listen", "127.0.0.1:%d" % port, "--netns", ns, "--to", "127.0.0.1:%d" % INNER_PORT])
    try:
        # the namespace's listener is not the host's
        deadline, got = time.monotonic() + 10, None
        while time.monotonic() < deadline and got is None:
            try:
                got = _get(port)
            except OSError:
                time.sleep(0.2)
        assert got == "inside %s\n" % ns
        for _ in range(20):            # connections come and go; the relay keeps serving
            assert _get(port) == got
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(10)
        inner.terminate()
        inner.wait(10)
        for name in os.listdir(docroot):
            os.unlink(os.path.join(docroot, name))
        os.rmdir(docroot)


def test_nothing_listening_inside_closes_the_connection_and_the_relay_stays(netns):
    ns = netns("dn")
    port = free_port()
    proc = _start(["--listen", "127.0.0.1:%d" % port, "--netns", ns, "--to", "127.0.0.1:%d" % INNER_PORT])
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                _get(port)
                raise AssertionError("an answer from nowhere")
            except ConnectionRefusedError:
                assert time.monotonic() < deadline, "the relay does not listen"
                time.sleep(0.2)
            except OSError:           # accepted, then closed: the inside refused
                break
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("argv, words", [
    (["--listen", "0.0.0.0:9", "--netns", "x", "--to", "127.0.0.1:1"], "not a loopback address"),
    (["--listen", "127.0.0.1", "--netns", "x", "--to", "127.0.0.1:1"], "not HOST:PORT"),
    (["--listen", "127.0.0.1:%d" % free_port(), "--netns", "xf-no-such-ns", "--to", "127.0.0.1:1"],
     "cannot enter namespace xf-no-such-ns"),
])
def test_bad_arguments_exit_2_naming_the_problem(argv, words):
    p = _start(argv)
    try:
        _out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:      # a relay that did not refuse must not outlive the test
            p.kill()
            p.wait(5)
    assert p.returncode == 2 and words in err, err
