"""`navarch plugins`: what is installed and what each plugin registered."""

from __future__ import annotations

import click

from navarch.cli.output import Column, emit, output_option, wide_option


@click.command()
@wide_option
@output_option
def plugins(wide: bool, output: str, as_json: bool) -> None:
    """List plugins, their distribution and version, and what they registered."""
    from navarch.plugins.manager import installed_plugins

    loaded = installed_plugins()
    rows = [
        {
            "name": info.name,
            "distribution": info.distribution,
            "version": info.version,
            "builtin": info.builtin,
            "registered": info.registered,
            "error": info.error or None,
        }
        for info in loaded
    ]
    emit(
        rows,
        [
            Column("name", "Plugin"),
            Column("distribution", "Distribution", priority=3),
            Column("version", "Version", priority=2),
            Column("registered", "Registered", priority=1, squeeze_to=20),
            Column("error", "Error", squeeze_to=20),
        ],
        output=output,
        as_json=as_json,
        empty="no plugins loaded",
        wide=wide,
    )
