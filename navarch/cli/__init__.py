"""The `navarch` command. Each command group lives in its own module and is imported on use."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from navarch import __version__
from navarch.errors import NavarchError

# name -> "module:attribute"; a command module is imported only when that command runs.
COMMANDS: dict[str, str] = {
    "bootstrap": "navarch.cli.bootstrap:bootstrap",
    "config": "navarch.cli.config:config",
    "control-plane": "navarch.cli.controlplane:control_plane",
    "cordon": "navarch.cli.nodes:cordon",
    "daemon": "navarch.cli.daemon:daemon",
    "drain": "navarch.cli.nodes:drain",
    "events": "navarch.cli.nodes:events",
    "get": "navarch.cli.nodes:get_node",
    "gpus": "navarch.cli.gpus:gpus",
    "list": "navarch.cli.nodes:list_nodes",
    "plugins": "navarch.cli.plugins:plugins",
    "pool": "navarch.cli.pools:pool",
    "pools": "navarch.cli.pools:pools",
    "policy": "navarch.cli.policy:policy",
    "remediation": "navarch.cli.remediation:remediation",
    "sim": "navarch.cli.sim:sim",
    "store": "navarch.cli.store:store",
    "terminate": "navarch.cli.nodes:terminate",
    "uncordon": "navarch.cli.nodes:uncordon",
    "version": "navarch.cli.version:version",
    "xid": "navarch.cli.xid:xid",
}


# One-line summaries for `navarch --help`, so that listing commands imports none of them.
SUMMARIES: dict[str, str] = {
    "bootstrap": "Show the script a pool's new machines run to install the daemon.",
    "config": "Check a configuration file or show the effective configuration.",
    "control-plane": "Run the control plane.",
    "cordon": "Stop placing new work on a node.",
    "daemon": "Run the node daemon on a GPU machine.",
    "drain": "Move the work off a node.",
    "events": "List node lifecycle and command events, newest first.",
    "get": "Show one node.",
    "gpus": "Show what this machine's NVIDIA GPUs report.",
    "list": "List nodes.",
    "plugins": "List plugins and what they registered.",
    "pool": "Show or scale one pool.",
    "pools": "List pools, or report a pool's queue depth.",
    "policy": "Check a health policy and test it against events.",
    "remediation": "List, pause, resume or cancel node remediations; reset a breaker.",
    "sim": "Run fleet scenarios against the real control plane and simulated nodes.",
    "store": "Back up the control plane's SQLite store.",
    "terminate": "Terminate a node.",
    "uncordon": "Return a node to service.",
    "version": "Show the versions of navarch, its telemetry, the NVIDIA driver and the plugins.",
    "xid": "Parse kernel logs into XID events and explain XID codes.",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *super().list_commands(ctx)})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in COMMANDS:
            module_name, attr = COMMANDS[name].split(":")
            command: click.Command = getattr(importlib.import_module(module_name), attr)
            return command
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            summary = SUMMARIES.get(name) if name in COMMANDS else None
            if summary is None:
                command = self.get_command(ctx, name)
                if command is None or command.hidden:
                    continue
                summary = command.get_short_help_str(formatter.width)
            rows.append((name, summary))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="navarch")
def cli() -> None:
    """navarch: GPU fleet management.

    Provisions GPU machines into pools, watches every GPU, cordons, drains and replaces bad
    machines, and autoscales pools.
    """


def _add_plugin_commands() -> None:
    from navarch.plugins.manager import installed_plugins

    plugins = installed_plugins()
    for impl in plugins.manager.hook.navarch_cli.get_hookimpls():
        try:
            impl.function(cli=cli)
        except Exception as exc:  # a broken plugin must not take the CLI down
            print(
                f"navarch: warning: plugin {impl.plugin_name!r} could not add its commands: {exc}",
                file=sys.stderr,
            )


def main(argv: list[str] | None = None) -> Any:
    try:
        _add_plugin_commands()
    except NavarchError as exc:
        print(f"navarch: {exc}", file=sys.stderr)
    try:
        return cli.main(args=argv, prog_name="navarch", standalone_mode=False)
    except click.exceptions.Abort:
        print("navarch: aborted", file=sys.stderr)
        sys.exit(130)
    except click.ClickException as exc:
        # Usage errors keep click's hint line; everything else is one line.
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            click.echo(exc.ctx.get_usage(), err=True)
        print(f"navarch: {exc.format_message()}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except NavarchError as exc:
        print(f"navarch: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except BaseExceptionGroup as group:
        # A failure inside a trio nursery arrives wrapped, once per nursery it left.
        leaves = _leaves(group)
        if any(isinstance(leaf, KeyboardInterrupt) for leaf in leaves):
            sys.exit(130)
        if not all(isinstance(leaf, NavarchError) for leaf in leaves):
            raise
        first = leaves[0]
        assert isinstance(first, NavarchError)
        print(f"navarch: {first}", file=sys.stderr)
        sys.exit(first.exit_code)


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    leaves: list[BaseException] = []
    for exc in group.exceptions:
        leaves += _leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc]
    return leaves
