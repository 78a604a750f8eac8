"""`navarch sim validate|run|interactive`: the fleet simulator."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from navarch.errors import UsageError

if TYPE_CHECKING:
    from types import TracebackType

    from rich.console import Console
    from rich.live import Live

    from navarch.sim.runner import Progress
    from navarch.sim.scenario import Scenario

_SET_HELP = (
    "Override a scenario key before it is checked, as KEY.PATH=VALUE with a TOML value "
    "(`--set fleet_gen.total_nodes=100 --set duration=2m`). Repeatable."
)


@click.group()
def sim() -> None:
    """Run scenarios against the real control plane and a simulated fleet."""


def _load(file: str, overrides: tuple[str, ...]) -> Scenario:
    from navarch.sim.scenario import load_scenario

    return load_scenario(file, overrides)


@sim.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=_SET_HELP)
def validate(file: str, overrides: tuple[str, ...]) -> None:
    """Check a scenario file and summarize it.

    Prints every problem with its key path and exits with status 2 if there is any.
    """
    from navarch.sim.scenario import summarize

    scenario = _load(file, overrides)
    for line in summarize(scenario):
        click.echo(line)
    click.echo(f"{file}: valid")


@sim.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--seed", type=int, help="Seed of every random choice (the scenario's `seed` by default)."
)
@click.option(
    "--report",
    "report_dir",
    type=click.Path(file_okay=False),
    help="Write report.json and report.html into this directory.",
)
@click.option(
    "--real-time",
    is_flag=True,
    help="Run on the wall clock, the daemons talking to the control plane over loopback HTTP.",
)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=_SET_HELP)
def run(
    file: str,
    seed: int | None,
    report_dir: str | None,
    real_time: bool,
    overrides: tuple[str, ...],
) -> None:
    """Run a scenario; exit 0 when every assertion held, 1 otherwise.

    By default the run is in virtual time: simulated minutes pass in moments, and one seed
    always gives the same report.
    """
    from navarch.sim.report import write_report
    from navarch.sim.runner import run_scenario

    if seed is not None:
        # The seed of the file makes the generated fleet too; --seed stands in for it.
        overrides = (*overrides, f"seed={seed}")
    scenario = _load(file, overrides)
    console = _console()
    mode = "real time over loopback HTTP" if real_time else "virtual time"
    from rich.markup import escape

    console.print(
        f"[bold]{escape(scenario.name)}[/bold]: {_count(len(scenario.fleet), 'node')} in the "
        f"fleet, {_count(len(scenario.config.pools), 'pool')}, seed {scenario.seed}, {mode}",
        highlight=False,
    )

    def show_log(t: float, message: str) -> None:
        console.print(f"{_clock(t)}  {message}", highlight=False, markup=False)

    with _LiveProgress(console) as progress:
        report = run_scenario(
            scenario,
            seed=seed,
            real_time=real_time,
            on_progress=progress.show,
            on_log=show_log,
        )
    _print_summary(console, report)
    if report_dir is not None:
        for path in write_report(report, Path(report_dir)):
            console.print(f"wrote {path}", highlight=False)
    if not report["passed"]:
        sys.exit(1)


@sim.command()
@click.option(
    "--listen",
    default="127.0.0.1:50051",
    show_default=True,
    metavar="HOST:PORT",
    help="Address of the control plane (loopback only).",
)
@click.option("--nodes", default=2, show_default=True, help="Simulated nodes to start.")
def interactive(listen: str, nodes: int) -> None:
    """Start a control plane and a small simulated fleet, and use the CLI against it.

    Runs on the wall clock until Ctrl-C (SIGINT) or SIGTERM.
    """
    from navarch.api.server import is_loopback, split_listen
    from navarch.sim.runner import run_scenario
    from navarch.sim.scenario import interactive_scenario

    host, _port = split_listen(listen)
    if not is_loopback(host):
        raise UsageError(f"--listen: the simulator serves on loopback only, got {listen}")
    if not 1 <= nodes <= 1000:
        raise UsageError(f"--nodes: expected 1 to 1000, got {nodes}")
    scenario = interactive_scenario(nodes)

    def ready(url: str) -> None:
        ids = ", ".join(spec.id for spec in scenario.fleet[:5])
        more = f" and {nodes - 5} more" if nodes > 5 else ""
        click.echo(f"navarch simulator: control plane at {url} with {nodes} nodes ({ids}{more})")
        click.echo("Try, in another terminal:")
        first = scenario.fleet[0].id
        for command in (
            "list",
            f"get {first}",
            f"cordon {first}",
            f"uncordon {first}",
            "events",
        ):
            click.echo(f"  navarch {command} --server {url}")
        click.echo("Stop with Ctrl-C.", nl=True)
        sys.stdout.flush()

    run_scenario(scenario, real_time=True, on_ready=ready, forever=True, listen=listen)
    click.echo("stopped")


def _console() -> Console:
    from rich.console import Console

    return Console(stderr=False, soft_wrap=True)


class _LiveProgress:
    """A one-line live view of the run on a terminal; nothing when output is not a terminal."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._live: Live | None = None

    def __enter__(self) -> _LiveProgress:
        if self._console.is_terminal:
            from rich.live import Live

            self._live = Live("", console=self._console, auto_refresh=False, transient=True)
            self._live.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.__exit__(kind, error, trace)

    def show(self, progress: Progress) -> None:
        if self._live is None:
            return
        from rich.text import Text

        statuses = "  ".join(
            f"{name} {count}" for name, count in progress.by_status.items() if count
        )
        end = f" / {_clock(progress.end)}" if progress.end else ""
        line = (
            f"{_clock(progress.t)}{end}  {statuses}  failures {progress.failures}"
            f"  recovered {progress.recoveries}  remediating {progress.remediations_open}"
            f"  replaced {progress.replacements}"
        )
        self._live.update(Text(line), refresh=True)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _print_summary(console: Any, report: dict[str, Any]) -> None:
    s = report["summary"]
    latency = s["detection_latency_s"]
    replace = s["time_to_replacement_s"]
    console.print(
        f"ran {_clock(report['duration_s'])} simulated: "
        f"{_count(s['nodes_started'], 'node')} started, "
        f"{_count(s['failures_injected'], 'failure')} injected, {s['failures_recovered']} "
        f"recovered, {_count(s['remediations_completed'], 'remediation')} completed, "
        f"{s['remediations_held']} held, {_count(s['replacements'], 'replacement')}",
        highlight=False,
    )
    if latency["count"]:
        console.print(
            f"detection latency p50 {latency['p50']:g}s, p90 {latency['p90']:g}s, "
            f"max {latency['max']:g}s",
            highlight=False,
        )
    if replace["count"]:
        console.print(
            f"time to replacement p50 {replace['p50']:g}s, p90 {replace['p90']:g}s, "
            f"max {replace['max']:g}s",
            highlight=False,
        )
    from rich.markup import escape

    for result in report["assertions"]:
        mark = "[green]PASS[/green]" if result["passed"] else "[red]FAIL[/red]"
        text = f"{result['source']}: {result['description']}"
        if not result["passed"]:
            text += f": {result['message']}"
        console.print(f"{mark} {escape(text)}", highlight=False)
    passed, failed = s["assertions_passed"], s["assertions_failed"]
    verdict = "[green]passed[/green]" if report["passed"] else "[red]failed[/red]"
    console.print(f"{verdict}: {passed} assertions held, {failed} failed", highlight=False)
