"""The `infiniband` health check: the machine's InfiniBand ports, from sysfs.

Each health-check interval it reads every port under /sys/class/infiniband (`DEVICE/ports/N/`):
its state, physical state and rate, and the error counters under `counters/`. A port that is not
ACTIVE and LinkUp, a port slower than the expected rate, and error counters that rose by their
threshold since the last sample are events. A machine without the tree has no InfiniBand and
no events.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import attrs
from attrs import field, frozen

from navarch.plugins import ConfigValueError, HealthEvent, HealthEventType, WallClock, validators
from navarch.plugins.builtin.health_checks.repeats import Repeats

if TYPE_CHECKING:
    from navarch.plugins.telemetry import GpuSample

SYSFS_ROOT = "/sys/class/infiniband"
# The rise of each counter between two samples that is worth an event. Link resets and integrity
# errors mean a flapping link at once; symbol, receive and discard counters also rise a little on
# healthy links under load, so a few per interval are tolerated. The thresholds are navarch's.
DEFAULT_THRESHOLDS: dict[str, int] = {
    "link_downed": 1,
    "link_error_recovery": 1,
    "local_link_integrity_errors": 1,
    "excessive_buffer_overrun_errors": 1,
    "symbol_error": 10,
    "port_rcv_errors": 10,
    "port_xmit_discards": 100,
}
_IGNORED = re.compile(r"[^/\s]+(/[1-9][0-9]*)?")
_COUNTER = re.compile(r"[A-Za-z0-9_]+")
_STATE = re.compile(r"(\d+):\s*(\S+)")
_RATE = re.compile(r"(\d+(?:\.\d+)?) Gb/sec\b")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _ignore_entries(
    _inst: object, attribute: attrs.Attribute[tuple[str, ...]], value: tuple[str, ...]
) -> None:
    for i, entry in enumerate(value):
        if not _IGNORED.fullmatch(entry):
            raise ConfigValueError(
                f'{attribute.name}[{i}]: expected "DEVICE" or "DEVICE/PORT" '
                f'(such as "mlx5_0" or "mlx5_0/1"), got "{entry}"'
            )


def _thresholds(
    _inst: object, attribute: attrs.Attribute[dict[str, int]], value: dict[str, int]
) -> None:
    for name, rise in value.items():
        if not _COUNTER.fullmatch(name):
            raise ConfigValueError(
                f'{attribute.name}: "{name}" is not a counter file name under ports/N/counters/'
            )
        if rise < 0:
            raise ConfigValueError(f"{attribute.name}.{name}: expected at least 0, got {rise}")


def _link_layers(
    _inst: object, attribute: attrs.Attribute[tuple[str, ...]], value: tuple[str, ...]
) -> None:
    for i, layer in enumerate(value):
        if layer not in ("InfiniBand", "Ethernet"):
            raise ConfigValueError(
                f'{attribute.name}[{i}]: expected "InfiniBand" or "Ethernet", got "{layer}"'
            )


@frozen(kw_only=True)
class InfinibandCheckSettings:
    # Where the kernel lists RDMA devices; tests point it at a tree of their own.
    sysfs_root: str = SYSFS_ROOT
    # The rate every active port should run at, in Gb/s (400 for NDR); unset: not checked.
    expected_rate_gbps: float | None = field(
        default=None, validator=attrs.validators.optional(validators.at_least(1))
    )
    # Devices ("mlx5_4") or ports ("mlx5_4/1") to leave alone, such as ports with no cable.
    ignore: tuple[str, ...] = field(default=(), validator=_ignore_entries)
    # The link layers to watch. RoCE ports are "Ethernet"; most machines also list their
    # Ethernet NICs here, so only InfiniBand ports are watched unless asked.
    link_layers: tuple[str, ...] = field(
        default=("InfiniBand",), validator=[validators.not_empty("link layer"), _link_layers]
    )
    # A counter's rise between two samples that is worth an event, by counter name; merged over
    # DEFAULT_THRESHOLDS. 0 stops watching a counter.
    counter_thresholds: dict[str, int] = field(factory=dict, validator=_thresholds)
    repeat_every: timedelta = field(default=timedelta(minutes=5), validator=validators.positive)


@frozen
class PortReading:
    """One port as sysfs showed it; `problems` are files that could not be read or parsed."""

    device: str
    port: str
    link_layer: str = "InfiniBand"
    state: str = ""  # "ACTIVE", "DOWN", ...
    phys_state: str = ""  # "LinkUp", "Polling", "Disabled", ...
    rate_gbps: float | None = None
    counters: dict[str, int] = field(factory=dict)
    problems: tuple[str, ...] = ()


def read_ports(root: str) -> list[PortReading]:
    """Every port under `root`, read from sysfs; blocking, so the check runs it in a thread.

    A missing `root` is a machine without InfiniBand: no ports. A directory or file that cannot
    be read or parsed is named in the `problems` of its port (or of a reading with an empty
    port, or an empty device for `root` itself); it never raises.
    """
    try:
        devices = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    except OSError as exc:
        return [PortReading(device="", port="", problems=(f"{root}: {exc}",))]
    out: list[PortReading] = []
    for device in devices:
        ports_dir = os.path.join(root, device, "ports")
        try:
            ports = sorted(os.listdir(ports_dir), key=lambda p: (len(p), p))
        except FileNotFoundError:
            continue
        except OSError as exc:
            out.append(PortReading(device=device, port="", problems=(f"ports: {exc}",)))
            continue
        for port in ports:
            out.append(_read_port(device, port, os.path.join(ports_dir, port)))
    return out


def _read_port(device: str, port: str, path: str) -> PortReading:
    problems: list[str] = []

    def text(name: str, *, required: bool = True) -> str | None:
        try:
            with open(os.path.join(path, name), encoding="ascii") as f:
                return f.read().strip()
        except FileNotFoundError:
            if required:
                problems.append(f"{name}: missing")
            return None
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{name}: {exc}")
            return None

    def state(name: str) -> str:
        raw = text(name)
        if raw is None:
            return ""
        match = _STATE.fullmatch(raw)
        if match is None:
            problems.append(f'{name}: expected "N: NAME", got {raw[:40]!r}')
            return ""
        return match.group(2)

    link_layer = text("link_layer", required=False) or "InfiniBand"
    port_state = state("state")
    phys_state = state("phys_state")
    rate: float | None = None
    raw_rate = text("rate")
    if raw_rate is not None:
        match = _RATE.match(raw_rate)
        if match is None:
            problems.append(f'rate: expected "N Gb/sec ...", got {raw_rate[:40]!r}')
        else:
            rate = float(match.group(1))
    counters: dict[str, int] = {}
    counters_dir = os.path.join(path, "counters")
    try:
        names = sorted(os.listdir(counters_dir))
    except FileNotFoundError:
        names = []
    except OSError as exc:
        problems.append(f"counters: {exc}")
        names = []
    for name in names:
        raw = text(os.path.join("counters", name))
        if raw is None:
            continue
        try:
            counters[name] = int(raw)
        except ValueError:
            problems.append(f"counters/{name}: expected a number, got {raw[:40]!r}")
    return PortReading(
        device=device,
        port=port,
        link_layer=link_layer,
        state=port_state,
        phys_state=phys_state,
        rate_gbps=rate,
        counters=counters,
        problems=tuple(problems),
    )


class InfinibandCheck:
    """Reads the InfiniBand ports each health-check interval and reports what is wrong.

    Counters are compared with the previous sample of the same port, so a rise is reported once,
    when it happens; a counter that went down (reset by hand) starts over. A port that stays down
    or slow is reported when that starts or changes, and again every `repeat_every`.
    """

    Settings = InfinibandCheckSettings

    def __init__(
        self, settings: InfinibandCheckSettings, *, wall_clock: WallClock = _utc_now
    ) -> None:
        self.settings = settings
        self._thresholds = {
            name: rise
            for name, rise in {**DEFAULT_THRESHOLDS, **settings.counter_thresholds}.items()
            if rise > 0
        }
        self._ignored = set(settings.ignore)
        self._repeats = Repeats(settings.repeat_every.total_seconds())
        self._wall_clock = wall_clock
        self._previous: dict[tuple[str, str], dict[str, int]] = {}

    async def run(self, gpus: Sequence[GpuSample]) -> list[HealthEvent]:
        import trio

        root = self.settings.sysfs_root
        # One stat, where most machines stop: no InfiniBand, and no thread to wait for.
        if not os.path.lexists(root):
            return []
        ports = await trio.to_thread.run_sync(read_ports, root)
        return self.judge(ports)

    def judge(self, ports: Sequence[PortReading]) -> list[HealthEvent]:
        """The events of one reading of every port, against the previous reading."""
        events: list[HealthEvent] = []
        for reading in ports:
            key = (reading.device, reading.port)
            if (
                reading.device in self._ignored
                or f"{reading.device}/{reading.port}" in self._ignored
            ):
                continue
            if reading.link_layer not in self.settings.link_layers:
                continue
            events += self._problems(reading)
            events += self._state(reading)
            events += self._rate(reading)
            events += self._counters(reading, self._previous.get(key))
            self._previous[key] = reading.counters
        return events

    def _event(
        self,
        reading: PortReading,
        type_: HealthEventType,
        message: str,
        metrics: dict[str, float] | None = None,
        details: dict[str, str] | None = None,
    ) -> HealthEvent:
        where = "InfiniBand"
        located: dict[str, str] = {}
        if reading.device:
            where += f" {reading.device}"
            located["device"] = reading.device
        if reading.port:
            where += f" port {reading.port}"
            located["port"] = reading.port
        return HealthEvent(
            type=type_,
            time=self._wall_clock(),
            message=f"{where}: {message}",
            metrics=metrics or {},
            details={**located, **(details or {})},
        )

    def _due(self, reading: PortReading, kind: str, *, ongoing: bool, signature: object) -> bool:
        key = (reading.device, reading.port, kind)
        return self._repeats.due(key, ongoing=ongoing, news=False, signature=signature)

    def _problems(self, reading: PortReading) -> list[HealthEvent]:
        problems = reading.problems
        if not self._due(reading, "unreadable", ongoing=bool(problems), signature=problems):
            return []
        return [
            self._event(
                reading,
                HealthEventType.CHECK_FAILED,
                "could not read " + "; ".join(problems),
                details={"check": "infiniband"},
            )
        ]

    def _state(self, reading: PortReading) -> list[HealthEvent]:
        if not reading.state or not reading.phys_state:
            return []  # unreadable: reported by _problems
        down = reading.state != "ACTIVE" or reading.phys_state != "LinkUp"
        signature = (reading.state, reading.phys_state)
        if not self._due(reading, "down", ongoing=down, signature=signature):
            return []
        return [
            self._event(
                reading,
                HealthEventType.INFINIBAND,
                f"the port is {reading.state} ({reading.phys_state}), not ACTIVE (LinkUp)",
                details={
                    "problem": "port_down",
                    "state": reading.state,
                    "phys_state": reading.phys_state,
                },
            )
        ]

    def _rate(self, reading: PortReading) -> list[HealthEvent]:
        expected = self.settings.expected_rate_gbps
        rate = reading.rate_gbps
        # A port that is down has no meaningful rate; the state says enough.
        slow = (
            expected is not None
            and rate is not None
            and reading.state == "ACTIVE"
            and rate < expected
        )
        if not self._due(reading, "rate", ongoing=slow, signature=rate):
            return []
        assert rate is not None and expected is not None
        return [
            self._event(
                reading,
                HealthEventType.INFINIBAND,
                f"the port runs at {rate:g} Gb/s, below the expected {expected:g} Gb/s",
                metrics={"rate_gbps": rate, "expected_rate_gbps": expected},
                details={"problem": "rate_low"},
            )
        ]

    def _counters(self, reading: PortReading, previous: dict[str, int] | None) -> list[HealthEvent]:
        if previous is None:
            return []
        rises = {
            name: reading.counters[name] - previous[name]
            for name, threshold in self._thresholds.items()
            if name in reading.counters
            and name in previous
            and reading.counters[name] - previous[name] >= threshold
        }
        if not rises:
            return []
        listed = ", ".join(f"{name} +{rise}" for name, rise in sorted(rises.items()))
        return [
            self._event(
                reading,
                HealthEventType.INFINIBAND,
                f"error counters rose: {listed}",
                metrics={f"{name}_delta": float(rise) for name, rise in rises.items()},
                details={"problem": "counters", "counters": ",".join(sorted(rises))},
            )
        ]
