"""What makes a simulated run repeat: trio's scheduling seeded, and rare full collections.

One scenario and one seed must give the same report byte for byte, across processes. trio runs
the tasks that are ready at one moment in an order it shuffles, and tasks whose timeouts expire
at the same instant join that batch in the order of their cancel scopes' memory addresses, which
differ from process to process. trio has a deterministic mode (the one pytest-trio uses under
Hypothesis) that sorts each batch by task creation before the shuffle; it is private, so
`seeded_scheduler` is the one place that reaches into trio, and it refuses a trio release it was
not tested with rather than risk runs that silently stop repeating.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

import trio

from navarch.errors import NavarchError

# The trio releases whose private scheduler state `seeded_scheduler` is known to match; the same
# range bounds trio in pyproject.toml.
TESTED_TRIO = ((0, 30), (0, 35))


def _trio_release() -> tuple[int, int]:
    major, minor = trio.__version__.split(".")[:2]
    return int(major), int(minor)


@contextlib.contextmanager
def seeded_scheduler(seed: int) -> Iterator[None]:
    """Makes the order in which trio runs the tasks that are ready at one moment follow `seed`."""
    low, high = TESTED_TRIO
    if not low <= _trio_release() <= high:
        raise NavarchError(
            f"repeatable simulator runs need trio {low[0]}.{low[1]} to {high[0]}.{high[1]}, "
            f"and trio {trio.__version__} is installed; install a tested trio "
            f'(pip install "trio>={low[0]}.{low[1]},<{high[0]}.{high[1] + 1}")'
        )
    from trio._core import _run

    state = _run._r.getstate()
    deterministic = _run._ALLOW_DETERMINISTIC_SCHEDULING
    _run._r.seed(f"navarch-sim/{seed}")
    # trio marks the switch Final for its own code; flipping it here is the point of this module.
    _run._ALLOW_DETERMINISTIC_SCHEDULING = True  # type: ignore[misc]
    try:
        yield
    finally:
        _run._r.setstate(state)
        _run._ALLOW_DETERMINISTIC_SCHEDULING = deterministic  # type: ignore[misc]


@contextlib.contextmanager
def rare_full_collections() -> Iterator[None]:
    """Raises the garbage collector's first threshold, as `navarch control-plane` does.

    Thousands of daemons make short-lived objects by the million; with the default threshold
    they are promoted and collected again and again (measured: a third of a 2,000-node run went
    to collections, and the 5,000-node stress scenario took 277 s instead of 163 s).
    """
    thresholds = gc.get_threshold()
    gc.set_threshold(50_000, 10, 10)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
