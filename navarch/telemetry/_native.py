"""Loads navarch._telemetry, the compiled telemetry extension, or says why it is not in use.

`BACKEND` is "cffi" when the extension is loaded and "python" when the pure-Python fallbacks
run instead: because the extension was not compiled on this machine (it is optional in the
build), or because NAVARCH_DISABLE_NATIVE=1 asks for the fallbacks.
"""

from __future__ import annotations

import os
from typing import Any, Literal

ffi: Any = None
lib: Any = None
REASON = ""  # why BACKEND is "python"; empty when the extension is in use

if os.environ.get("NAVARCH_DISABLE_NATIVE") == "1":
    REASON = "disabled by NAVARCH_DISABLE_NATIVE=1"
else:
    try:
        from navarch._telemetry import ffi, lib  # noqa: F401 (re-exported)
    except ImportError as exc:
        REASON = f"navarch._telemetry is not built ({exc})"

BACKEND: Literal["cffi", "python"] = "cffi" if lib is not None else "python"
