from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from navarch.testing import FakeNvml


@pytest.fixture
def pynvml_for() -> Iterator[Callable[[FakeNvml], Any]]:
    """Initialises nvidia-ml-py on the same fake library instance that navarch uses."""
    import pynvml

    def load(fake: FakeNvml) -> Any:
        with pynvml.libLoadLock:
            pynvml.nvmlLib = ctypes.CDLL(str(fake.path))
            pynvml._nvmlGetFunctionPointer_cache.clear()
        pynvml.nvmlInit()
        loaded.append(fake)
        return pynvml

    loaded: list[FakeNvml] = []
    yield load
    for _ in loaded:
        pynvml.nvmlShutdown()
    with pynvml.libLoadLock:
        pynvml.nvmlLib = None
        pynvml._nvmlGetFunctionPointer_cache.clear()
