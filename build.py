"""The cffi builder for navarch._telemetry, the C half of navarch's GPU telemetry.

setup.py names `build.py:ffibuilder` in `cffi_modules`, so `pip install .` and `pip install -e .`
compile the extension. Every csrc/telemetry_*.c is compiled into the one extension, and every
csrc/telemetry_*.cdef and telemetry_*.h joins its declarations, so a new telemetry source needs
no change here.

To compile in place without pip:

    python build.py

This file's name shadows pypa/build for `python -m build` run from the repository root, so when
it is run that way it hands the command over to the real `build` package.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CSRC = HERE / "csrc"


def _hand_over_to_pypa_build() -> None:
    import runpy

    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
    sys.modules.pop("build", None)
    runpy.run_module("build", run_name="__main__", alter_sys=True)


def _make_builder(*, in_place: bool = False):
    from cffi import FFI

    ffi = FFI()
    cdefs = sorted(CSRC.glob("telemetry_*.cdef"))
    headers = sorted(CSRC.glob("telemetry_*.h"))
    sources = sorted(CSRC.glob("telemetry_*.c"))
    ffi.cdef("\n".join(p.read_text() for p in cdefs))
    if in_place:
        # cffi compiles inside its temporary directory, so paths must be absolute, and a person
        # who runs this file wants to see a failed compile fail.
        paths = {"sources": [str(p) for p in sources], "include_dirs": [str(CSRC)]}
        options = {"optional": False, "py_limited_api": _abi3()}
    else:
        # setuptools wants paths relative to the project root, the working directory of every
        # build frontend; NAVARCH_REQUIRE_EXTENSIONS=1 (CI) turns a failed compile into an error.
        paths = {"sources": [os.path.relpath(p, HERE) for p in sources], "include_dirs": ["csrc"]}
        options = {"optional": os.environ.get("NAVARCH_REQUIRE_EXTENSIONS") != "1"}
    ffi.set_source(
        "navarch._telemetry",
        "\n".join(f'#include "{p.name}"' for p in headers),
        libraries=["dl", "pthread"],  # part of libc since glibc 2.34, separate before
        extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        **paths,
        **options,
    )
    return ffi


def _abi3() -> bool:
    """Whether pip would name the extension .abi3.so here (cffi's rule)."""
    import sysconfig

    return not hasattr(sys, "gettotalrefcount") and not sysconfig.get_config_var("Py_GIL_DISABLED")


def _compile_in_place() -> None:
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        built = _make_builder(in_place=True).compile(tmpdir=tmp, verbose=True)
        # The same file name as `pip install -e .` gives it, so that neither shadows the other.
        shutil.copy2(built, HERE / "navarch")
    print(f"built navarch/{Path(built).name}")


if __name__ == "__main__" and globals().get("__spec__") is not None:
    _hand_over_to_pypa_build()
elif __name__ == "__main__":
    _compile_in_place()
else:
    ffibuilder = _make_builder()
