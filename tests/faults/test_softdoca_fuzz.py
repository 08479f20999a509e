"""softdoca's packet parsing and entry validation under libFuzzer (ASan + UBSan),
through the same C glue the Python module calls. Bounded in time for CI."""

import glob
import os
import shutil
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
GLUE = os.path.join(ROOT, "dpdk_glue")
SECONDS = int(os.environ.get("XF_FUZZ_SECONDS", "20"))


def pkg_config(*args):
    return subprocess.run(["pkg-config"] + list(args) + ["libdpdk"], check=True, capture_output=True,
                          text=True).stdout.split()


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
