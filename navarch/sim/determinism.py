"""What makes a simulated run repeat (trio's scheduling seeded), and rare garbage collections.

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
    """Raises the garbage collector's first threshold for the run, and forgets `freeze_the_fleet`
    at its end.

    Thousands of daemons make short-lived objects by the million; with the default threshold
    they are promoted and collected again and again (measured: a third of a 2,000-node run went
    to collections, and the 5,000-node stress scenario took 277 s instead of 163 s). The first
    threshold is 200,000, four times what `navarch control-plane` uses: on the first 10 simulated
    minutes of stress-10000, young collections took 2.5 s at 50,000 and 0.8 s at 200,000.
    """
    thresholds = gc.get_threshold()
    gc.set_threshold(200_000, 10, 10)
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def freeze_the_fleet() -> None:
    """Moves every object alive now out of the collector's sight, until `rare_full_collections`
    ends; called as the fleet starts, when the daemons, their GPUs and the control plane's books
    come to make most of the heap and live as long as the run.

    Each collection then walks only what came after. Measured on the first 10 simulated minutes of
    stress-10000: collections took 5.7 s of 45.5 s of CPU time without it, 2.9 s with it.
    """
    gc.freeze()
