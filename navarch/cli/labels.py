"""The `--label KEY=VALUE` option's parser, shared by the node commands and the daemon.

Its own module, so that `navarch daemon` does not load the node commands to read its labels.
"""

from __future__ import annotations

from collections.abc import Sequence

import click


def parse_label(
    ctx: click.Context, param: click.Parameter, values: Sequence[str]
) -> dict[str, str]:
    labels = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {value!r}", ctx, param)
        labels[key] = val
    return labels
