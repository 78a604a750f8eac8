"""navarch's abstract instance types: one name for the same machine on every cloud.

A pool names `instance_type = "h100-8x"`; each provider maps that name to its cloud's own type
in `instance_type_for` (the plugins' READMEs and docs/providers.md list them), so the core never
names a cloud's types. A cloud that has no such machine leaves the name unmapped
rather than choosing a near match: an L4 is not an A10.
"""

from __future__ import annotations

import re

from attrs import frozen


@frozen
class AbstractType:
    gpu_model: str
    gpu_count: int


# The abstract names, `MODEL-COUNTx`, with the GPU model and the GPUs per machine.
ABSTRACT_INSTANCE_TYPES: dict[str, AbstractType] = {
    "h100-8x": AbstractType("H100", 8),
    "h100-1x": AbstractType("H100", 1),
    "a100-8x": AbstractType("A100", 8),
    "a100-4x": AbstractType("A100", 4),
    "a100-1x": AbstractType("A100", 1),
    "a10-1x": AbstractType("A10", 1),
    "l4-1x": AbstractType("L4", 1),
}

_ABSTRACT = re.compile(r"^([a-z][a-z0-9]*)-(\d{1,2})x$")


def parse_abstract(name: str) -> AbstractType | None:
    """The GPU model and count of a name of the abstract form `MODEL-COUNTx` (`h100-8x`), listed
    or not; None for any other name."""
    match = _ABSTRACT.match(name)
    if match is None or int(match.group(2)) == 0:
        return None
    return AbstractType(match.group(1).upper(), int(match.group(2)))
