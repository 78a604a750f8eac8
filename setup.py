"""Declares the cffi extension; `cffi_modules` has no pyproject.toml equivalent."""

import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import BaseError, CCompilerError, CompileError

FALLBACK_WARNING = """
WARNING: navarch's compiled telemetry extension (navarch._telemetry) could not be built:
  {error}
navarch installs anyway and uses the pure-Python telemetry fallback, which reads the same data
more slowly. `navarch version` shows which one is in use. To build the extension, install a C
compiler and the Python headers (for example `apt install gcc python3-dev`) and install again;
set NAVARCH_REQUIRE_EXTENSIONS=1 to make a failed build an error.
"""


class BuildExtWithWarning(build_ext):
    """Says loudly that the optional extension failed, where setuptools says it in one line."""

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except (CCompilerError, CompileError, BaseError) as exc:
            if ext.optional:
                print(FALLBACK_WARNING.format(error=exc), file=sys.stderr, flush=True)
            raise


if Path(__file__).with_name("build.py").exists():
    # cffi already names the extension .abi3.so; tag the wheel to match so one wheel serves
    # every CPython from 3.11 on.
    setup(
        cffi_modules=["build.py:ffibuilder"],
        cmdclass={"build_ext": BuildExtWithWarning},
        options={"bdist_wheel": {"py_limited_api": "cp311"}},
    )
else:
    setup()
