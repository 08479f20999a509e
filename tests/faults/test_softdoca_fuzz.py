"""softdoca's packet parsing and entry validation under libFuzzer (ASan + UBSan),
through the same C glue the Python module calls. Bounded in time for CI."""

import glob
import ipaddress
import os
import shutil
import struct
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
GLUE = os.path.join(ROOT, "dpdk_glue")
SECONDS = int(os.environ.get("XF_FUZZ_SECONDS", "20"))


def pkg_config(*args):
    return subprocess.run(["pkg-config"] + list(args) + ["libdpdk"], check=True, capture_output=True,
                          text=True).stdout.split()


def ipv6_seeds():
    """IPv6 frames to the fuzzed eSwitch's VIP6 (UDP/53): plain, behind each extension header,
    fragments, ESP; the fuzzer mutates from these into the odd and broken ones."""
    src, vip6 = ipaddress.IPv6Address("2001:db8::7").packed, ipaddress.IPv6Address("2001:db8:53::53").packed
    udp = struct.pack("!HHHH", 40000, 53, 12, 0) + b"qqqq"

    def frame(nh, payload):
        ip = struct.pack("!IHBB", 6 << 28, len(payload), nh, 64) + src + vip6 + payload
        return bytes.fromhex("0200c61200350200c612000786dd") + ip

    opt = bytes([17, 0]) + bytes(6)
    return [frame(17, udp), frame(0, bytes([60, 0]) + bytes(6) + opt + udp), frame(43, opt + udp),
            frame(51, bytes([17, 2]) + bytes(14) + udp), frame(44, struct.pack("!BBHI", 17, 0, 1, 9) + udp),
            frame(44, struct.pack("!BBHI", 17, 0, 800, 9) + udp), frame(50, bytes(16)),
            frame(6, struct.pack("!HHIIBBHHH", 40000, 53, 0, 0, 0x50, 2, 1024, 0, 0))]


@pytest.mark.slow
def test_softdoca_fuzz(tmp_path):
    if shutil.which("clang") is None:
        pytest.fail("clang is required (scripts/install-deps.sh installs it)")
    binary = str(tmp_path / "fuzz_softdoca")
    build = subprocess.run(
        ["clang", "-g", "-O1", "-fsanitize=fuzzer,address,undefined", "-fno-sanitize-recover=undefined",
         "-DSOFTDOCA_API=302", "-I" + GLUE, "-I" + os.path.join(GLUE, "softdoca", "include"),
         "-I" + os.path.join(GLUE, "softdoca")] + pkg_config("--cflags") +
        [os.path.join(HERE, "fuzz", "fuzz_softdoca.c"), os.path.join(GLUE, "glue.c"),
         os.path.join(GLUE, "glue_ports.c"), os.path.join(GLUE, "glue_softdoca.c")]
        + sorted(glob.glob(os.path.join(GLUE, "softdoca", "*.c"))) +
        pkg_config("--libs") + ["-lrte_bus_vdev", "-lpthread", "-o", binary],
        capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-4000:]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, seed in enumerate(ipv6_seeds()):
        (corpus / ("ipv6-%d" % i)).write_bytes(b"\0" + seed)  # first byte even: a frame
    proc = subprocess.Popen([binary, "-max_total_time=%d" % SECONDS, "-rss_limit_mb=4096", str(corpus)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _, out = proc.communicate(timeout=SECONDS + 120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        # The harness never closes the EAL: remove its runtime dir, by its exact name.
        shutil.rmtree("/var/run/dpdk/xf-fuzz-%d" % proc.pid, ignore_errors=True)
    run = proc
    assert run.returncode == 0, out[-6000:]
    assert "ERROR: AddressSanitizer" not in out and "runtime error:" not in out, out[-6000:]
    done = [line for line in out.splitlines() if line.startswith("Done ")]
    assert done and int(done[-1].split()[1]) > 10000, out[-2000:]   # it really ran
