"""cffi (API mode) builder for ``dpdk_glue._glue``.

setup.py lists ``cffi_modules=["dpdk_glue/build_glue.py:ffibuilder"]``.  Target choice:

1. a real DOCA SDK (``pkg-config doca-flow`` or ``DOCA_HOME``): glue.c against it (cdef:
   glue.h);
2. else DPDK dev files (``pkg-config libdpdk``): glue.c + glue_softdoca.c + softdoca against
   softdoca's headers (cdef: glue.h + glue_softdoca.h, the softdoca-only knobs);
3. else: a stub module that only says what is missing, so ``pip install .`` of the whole
   project still works; ``import dpdk_glue`` works and using it raises GlueMissing telling
   to ``apt-get install libdpdk-dev``.  Set ``XF_GLUE_REQUIRE=1`` (CI) to fail the build
   instead.

Environment knobs: ``XF_GLUE_TARGET=auto|doca|softdoca`` (default auto),
``XF_SOFTDOCA_API=209|300|301|302|303`` (the DOCA release softdoca's headers declare: 2.9,
3.0, 3.1, 3.2 or 3.3; default 302),
``XF_GLUE_CFLAGS`` (extra compiler flags, e.g. ``-fsanitize=address``).

In-place build for development: ``python dpdk_glue/build_glue.py`` (writes
``dpdk_glue/_glue*.so`` next to this file).
"""
from __future__ import annotations

import glob
import os
import shlex
import shutil
import subprocess
import sys
from typing import List, Optional

import cffi

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SOFTDOCA = os.path.join(HERE, "softdoca")
MODULE = "dpdk_glue._glue"
MISSING_HINT = (
    "DPDK development files not found (pkg-config libdpdk failed). "
    "Install them with `apt-get install libdpdk-dev` (Debian 12: DPDK 22.11), "
    "then rebuild with `pip install .`"
)


def _log(msg: str) -> None:
    print("dpdk_glue build: " + msg, file=sys.stderr)


def _pkg_config(*args: str) -> Optional[List[str]]:
    """Flags from pkg-config, or None when the package (or pkg-config) is missing."""
    exe = shutil.which("pkg-config")
    if exe is None:
        return None
    proc = subprocess.run([exe, *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return None
    return shlex.split(proc.stdout)


def _cdef_source(header: str = "glue.h") -> str:
    """A header minus preprocessor lines: the headers are the single source of the cdef."""
    with open(os.path.join(HERE, header), encoding="utf-8") as fh:
        text = fh.read()
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def _extra_cflags() -> List[str]:
    return shlex.split(os.environ.get("XF_GLUE_CFLAGS", ""))


def _doca_flags() -> Optional[dict]:
    """Compile/link flags for a real DOCA SDK, or None."""
    pkgs = ["doca-flow", "doca-common", "doca-dpdk-bridge", "libdpdk"]
    cflags = _pkg_config("--cflags", *pkgs)
    libs = _pkg_config("--libs", *pkgs)
    if cflags is not None and libs is not None:
        return {"cflags": cflags, "libs": libs, "where": "pkg-config doca-flow"}
    home = os.environ.get("DOCA_HOME")
    if home and os.path.isfile(os.path.join(home, "include", "doca_flow.h")):
        dpdk_c = _pkg_config("--cflags", "libdpdk") or []
        dpdk_l = _pkg_config("--libs", "libdpdk") or []
        libdirs = [d for d in (os.path.join(home, "lib"), os.path.join(home, "lib", "aarch64-linux-gnu"),
                               os.path.join(home, "lib", "x86_64-linux-gnu")) if os.path.isdir(d)]
        return {
            "cflags": ["-I" + os.path.join(home, "include")] + dpdk_c,
            "libs": (["-L" + d for d in libdirs] + ["-ldoca_flow", "-ldoca_common", "-ldoca_dpdk_bridge"]
                     + dpdk_l),
            "where": "DOCA_HOME=" + home,
        }
    return None


def _src(path: str, absolute: bool) -> str:
    """setuptools refuses absolute source paths (setup.py runs with the project root as cwd);
    cffi's own compile() runs in its tmpdir, so the in-place build uses absolute ones."""
    return path if absolute else os.path.relpath(path, ROOT)


SOFTDOCA_RELEASES = ("209", "300", "301", "302", "303")


def glue_sources(absolute: bool = True) -> List[str]:
    """The glue proper (both targets): init, pipes, entries; the samples' port bring-up."""
    return [_src(os.path.join(HERE, f), absolute) for f in ("glue.c", "glue_ports.c")]


def prototype_check_cmd(api: str, cc: str = "cc") -> List[str]:
    """A compile-only command for the glue's real-DOCA code path against the prototypes
    softdoca declares for one release (-DSOFTDOCA_PROTOTYPES_ONLY: the headers then look like
    the SDK's, so every call form the glue makes on a BlueField is type-checked)."""
    dpdk_c = _pkg_config("--cflags", "libdpdk") or []
    return ([cc, "-fsyntax-only", "-std=gnu11", "-Wall", "-Werror", "-Wno-unused-parameter",
             "-DDOCA_ALLOW_EXPERIMENTAL_API", "-DALLOW_EXPERIMENTAL_API", "-DSOFTDOCA_PROTOTYPES_ONLY",
             "-DSOFTDOCA_API=" + api,
             "-I" + HERE, "-I" + os.path.join(SOFTDOCA, "include")] + dpdk_c + glue_sources(True))


def softdoca_sources(absolute: bool = True) -> List[str]:
    """What the softdoca target compiles besides glue.c: the glue's softdoca side
    (glue_softdoca.c: the model's counters and the softdoca-only knobs) and the model."""
    paths = [os.path.join(HERE, "glue_softdoca.c")] + sorted(glob.glob(os.path.join(SOFTDOCA, "*.c")))
    return [_src(p, absolute) for p in paths]


def make_ffibuilder(absolute_sources: bool = False) -> cffi.FFI:
    ffi = cffi.FFI()
    target = os.environ.get("XF_GLUE_TARGET", "auto")
    if target not in ("auto", "doca", "softdoca"):
        raise SystemExit("XF_GLUE_TARGET must be auto, doca or softdoca, not %r" % target)
    base_cflags = ["-O2", "-std=gnu11", "-Wall", "-Wno-unused-parameter"] + _extra_cflags()
    glue_c = glue_sources(absolute_sources)

    doca = _doca_flags() if target in ("auto", "doca") else None
    if target == "doca" and doca is None:
        raise SystemExit("XF_GLUE_TARGET=doca but no DOCA SDK found (pkg-config doca-flow / DOCA_HOME)")
    if doca is not None:
        _log("target = real DOCA SDK (%s)" % doca["where"])
        ffi.cdef(_cdef_source())
        ffi.set_source(
            MODULE,
            '#include "glue.h"\n',
            sources=glue_c,
            include_dirs=[HERE],
            # DPDK's hairpin calls (3.0 and older) are experimental in DPDK 22.11
            extra_compile_args=base_cflags + ["-DDOCA_ALLOW_EXPERIMENTAL_API", "-DALLOW_EXPERIMENTAL_API"]
            + doca["cflags"],
            extra_link_args=doca["libs"],
        )
        return ffi

    dpdk_c = _pkg_config("--cflags", "libdpdk")
    dpdk_l = _pkg_config("--libs", "libdpdk")
    if dpdk_c is None or dpdk_l is None:
        if os.environ.get("XF_GLUE_REQUIRE") == "1":
            raise SystemExit(MISSING_HINT)
        _log("WARNING: " + MISSING_HINT + " -- building a stub module; dpdk_glue will raise GlueMissing")
        ffi.cdef("const char *xf_target(void); const char *xf_missing_reason(void);")
        ffi.set_source(
            MODULE,
            'static const char *xf_target(void) { return "missing"; }\n'
            "static const char *xf_missing_reason(void) { return %s; }\n" % _c_string(MISSING_HINT),
        )
        return ffi

    api = os.environ.get("XF_SOFTDOCA_API", "302")
    if api not in SOFTDOCA_RELEASES:
        raise SystemExit("XF_SOFTDOCA_API must be one of %s, not %r" % (", ".join(SOFTDOCA_RELEASES), api))
    dpdk_ver = (_pkg_config("--modversion", "libdpdk") or ["?"])[0]
    release = "%s.%d" % (api[0], int(api[1:]))
    _log("target = softdoca (modelling DOCA %s) on DPDK %s" % (release, dpdk_ver))
    ffi.cdef(_cdef_source() + "\n" + _cdef_source("glue_softdoca.h"))
    ffi.set_source(
        MODULE,
        '#include "glue.h"\n#include "glue_softdoca.h"\n',
        sources=glue_c + softdoca_sources(absolute_sources),
        include_dirs=[HERE, os.path.join(SOFTDOCA, "include"), SOFTDOCA],
        extra_compile_args=base_cflags + ["-DSOFTDOCA_API=" + api] + dpdk_c,
        extra_link_args=dpdk_l + ["-lrte_bus_vdev", "-lpthread"],  # rte_vdev_init lives in a driver lib
    )
    return ffi


def _c_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


ffibuilder = make_ffibuilder()


def build_inplace() -> str:
    """Compile in a scratch dir and copy only the extension next to this file.  Returns the
    path of the copied module."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="xf-glue-build-") as tmp:
        out = make_ffibuilder(absolute_sources=True).compile(tmpdir=tmp, verbose=False)
        dest = os.path.join(HERE, os.path.basename(out))
        # write-then-rename: a process importing the module never sees a half-copied file
        shutil.copyfile(out, dest + ".tmp")
        os.replace(dest + ".tmp", dest)
    _log("built " + os.path.relpath(dest, ROOT))
    return dest


if __name__ == "__main__":
    build_inplace()
