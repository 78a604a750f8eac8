"""`navarch plugins`: what is installed and what each plugin registered."""

from __future__ import annotations

import click

from navarch.cli.output import emit, output_option


@click.command()
@output_option
def plugins(output: str, as_json: bool) -> None:
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
            ("name", "Plugin"),
            ("distribution", "Distribution"),
            ("version", "Version"),
            ("registered", "Registered"),
            ("error", "Error"),
        ],
        output=output,
        as_json=as_json,
        empty="no plugins loaded",
    )
