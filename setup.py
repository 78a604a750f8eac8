"""Declares the cffi extension; `cffi_modules` has no pyproject.toml equivalent."""

from pathlib import Path

from setuptools import setup

if Path(__file__).with_name("build.py").exists():
    # cffi already names the extension .abi3.so; tag the wheel to match so one wheel serves
    # every CPython from 3.11 on.
    setup(
        cffi_modules=["build.py:ffibuilder"],
        options={"bdist_wheel": {"py_limited_api": "cp311"}},
    )
else:
    setup()
