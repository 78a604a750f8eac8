"""Declares the cffi extension; `cffi_modules` has no pyproject.toml equivalent."""

from pathlib import Path

from setuptools import setup

if Path(__file__).with_name("build.py").exists():
    setup(cffi_modules=["build.py:ffibuilder"])
else:
    setup()
