"""docs/cli.md documents every command and every option that `navarch` has."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click

from navarch.cli import COMMANDS, cli

DOC = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
# Options that every operator command or every listing shares, documented once.
SHARED_SECTIONS = ("Talking to a control plane", "Output")


def commands() -> Iterator[tuple[str, click.Command]]:
    ctx = click.Context(cli)

    def walk(path: str, command: click.Command) -> Iterator[tuple[str, click.Command]]:
        yield path, command
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                yield from walk(f"{path} {name}", sub)

    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert command is not None
        yield from walk(f"navarch {name}", command)


def sections() -> dict[str, str]:
    """The text under each `## ` heading, by heading."""
    parts = re.split(r"^## (.+)$", DOC, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def section_of(path: str) -> str:
    top = " ".join(path.split()[:2])
    return "".join(text for heading, text in sections().items() if heading.startswith(f"`{top}"))


def test_every_command_and_option_is_in_the_docs():
    shared = "".join(sections()[name] for name in SHARED_SECTIONS)
    missing = []
    for path, command in commands():
        text = section_of(path)
        if command.hidden:
            continue
        if not text or (f"`{path}`" not in DOC and f"`{path} " not in DOC):
            missing.append(path)
        for param in command.params:
            if not isinstance(param, click.Option) or param.hidden or param.name == "help":
                continue
            flag = max(param.opts, key=len)
            named = re.compile(rf"(?<![\w-]){re.escape(flag)}(?![\w-])")
            if not named.search(text) and not named.search(shared):
                missing.append(f"{path} {flag}")
    assert not missing, "not in docs/cli.md: " + ", ".join(missing)
