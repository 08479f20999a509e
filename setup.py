"""The cffi build hook and the data copied into the package; all metadata is in setup.cfg.

dpdk_glue/build_glue.py (the cffi FFI builder of the DOCA Flow glue) is declared
only when it exists, so the package still builds while it is being written.
"""
import os

from setuptools import setup
from setuptools.command.build_py import build_py

_HERE = os.path.dirname(os.path.abspath(__file__))

# Files kept at the top of the checkout that an installed package needs: the lab's
# topologies (`xenoflow lab` from a wheel). Copied into the package at build time; an
# editable install reads them from the checkout. (The systemd units live in the package
# already: package_data in setup.cfg.)
# (source dir, destination inside the package, file endings)
SHIPPED = (
    ("topologies", ("xenoflow_ovs", "lab", "topologies"), (".yaml",)),
)


class BuildPyWithData(build_py):
    def run(self):
        super().run()
        for src, dst, endings in SHIPPED:
            top = os.path.join(_HERE, src)
            for dirpath, _dirs, files in os.walk(top):
                for name in sorted(files):
                    if not name.endswith(endings):
                        continue
                    rel = os.path.relpath(os.path.join(dirpath, name), top)
                    out = os.path.join(self.build_lib, *dst, rel)
                    self.mkpath(os.path.dirname(out))
                    self.copy_file(os.path.join(dirpath, name), out)


_kwargs = {}
if os.path.isfile(os.path.join(_HERE, "dpdk_glue", "build_glue.py")):
    _kwargs["cffi_modules"] = ["dpdk_glue/build_glue.py:ffibuilder"]

setup(cmdclass={"build_py": BuildPyWithData}, **_kwargs)
