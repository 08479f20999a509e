"""Only the cffi build hook lives here; all metadata is in setup.cfg.

dpdk_glue/build_glue.py (the cffi FFI builder of the DOCA Flow glue) is declared
only when it exists, so the package still builds while it is being written.
"""
import os

from setuptools import setup

_HERE = os.path.dirname(os.path.abspath(__file__))
_kwargs = {}
if os.path.isfile(os.path.join(_HERE, "dpdk_glue", "build_glue.py")):
    _kwargs["cffi_modules"] = ["dpdk_glue/build_glue.py:ffibuilder"]

setup(**_kwargs)
