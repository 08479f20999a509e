"""glue.c + softdoca built with AddressSanitizer + UBSan (clang), once per DOCA release
softdoca models (2.9, 3.0, 3.1, 3.2, 3.3: every version branch of glue.c), and run:
control paths + 200k random/malformed frames through the parser, then (root) the forwarding
thread on af_packet vdevs while entries churn.  Any sanitizer report fails the test."""
from __future__ import annotations

import glob
import os
import shutil
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
GLUE = os.path.join(os.path.dirname(os.path.dirname(HERE)), "dpdk_glue")
PROFILES = ("209", "300", "301", "302", "303")  # softdoca's SOFTDOCA_API values
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "SUMMARY: ")


def glue_softdoca_sources():
    """The glue and everything the softdoca target compiles with it (as build_glue.py does)."""
    return ([os.path.join(GLUE, f) for f in ("glue.c", "glue_ports.c", "glue_softdoca.c")]
            + sorted(glob.glob(os.path.join(GLUE, "softdoca", "*.c"))))


def _pkg_config(*args):
    return subprocess.run(["pkg-config", *args], capture_output=True, text=True, check=True).stdout.split()


@pytest.fixture(scope="module")
def drivers(tmp_path_factory):
    if shutil.which("clang") is None or shutil.which("pkg-config") is None:
        pytest.fail("clang and pkg-config are needed (apt-get install clang libclang-rt-14-dev pkg-config)")
    out = tmp_path_factory.mktemp("asan")
    built = {}
    for api in PROFILES:
        exe = str(out / ("drv" + api))
        argv = ["clang", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
                "-fno-omit-frame-pointer", "-g", "-O1", "-std=gnu11", "-Wall", "-Werror",
                "-DSOFTDOCA_API=" + api, "-I" + GLUE, "-I" + os.path.join(GLUE, "softdoca", "include"),
                "-I" + os.path.join(GLUE, "softdoca"), os.path.join(HERE, "asan_driver.c")]
        argv += glue_softdoca_sources()
        argv += _pkg_config("--cflags", "libdpdk") + _pkg_config("--libs", "libdpdk")
        argv += ["-lrte_bus_vdev", "-lpthread", "-o", exe]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
        assert proc.returncode == 0, proc.stderr[-4000:]
        built[api] = exe
    return built


def _run(argv, timeout=180):
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:exitcode=23",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    reports = [m for m in SANITIZER_MARKS if m in proc.stderr]
    assert proc.returncode == 0 and not reports and "DRIVER OK" in proc.stdout, (
        "rc=%s reports=%s\n%s" % (proc.returncode, reports, proc.stderr[-6000:]))
    return proc


@pytest.mark.parametrize("api", PROFILES)
def test_control_and_parser_under_asan(drivers, api, glue):
    _run([drivers[api], glue.file_prefix("asan" + api), "control"])


@pytest.mark.root
def test_forwarder_under_asan_with_churn(drivers, netns, glue):
    from xenoflow_ovs.lab import netns as nl

    ns = netns("a")
    nl.add_veth("w0", "w0p", ns=ns, peer_ns=ns)
    nl.add_veth("r0", "r0p", ns=ns, peer_ns=ns)
    for ifn in ("w0", "w0p", "r0", "r0p"):
        nl.prepare_link(ifn, ns=ns)
    proc = _run(nl.ns_argv(ns, [drivers["302"], glue.file_prefix("asanio"), "io", "w0", "r0", "w0p"]))
    # the forwarder really forwarded, missed and saw malformed frames while entries churned
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("io: ")][-1]
    fields = dict(kv.split("=") for kv in line[4:].split())
    assert int(fields["rounds"]) > 100 and int(fields["tx"]) > 0 and int(fields["malformed"]) > 0
