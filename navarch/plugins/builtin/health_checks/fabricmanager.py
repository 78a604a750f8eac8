"""The `fabricmanager` health check: NVIDIA's fabric manager service runs on an NVSwitch machine.

On a machine whose GPUs talk through NVSwitches, CUDA does not start until the fabric manager
has set the switches up, so a fabric manager that is not active leaves the machine's GPUs out
of use. The check asks systemd for the unit's state each health-check interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from attrs import field, frozen

from navarch.plugins import HealthEvent, HealthEventType, WallClock, validators
from navarch.plugins.builtin.health_checks.nvswitch import has_nvswitches
from navarch.plugins.builtin.health_checks.repeats import Repeats

if TYPE_CHECKING:
    import trio

    from navarch.plugins.telemetry import GpuSample

UNIT = "nvidia-fabricmanager.service"


def _utc_now() -> datetime:
    return datetime.now(UTC)


@frozen(kw_only=True)
class FabricManagerCheckSettings:
    # Check the fabric manager. Unset: where the machine has NVSwitches (/dev/nvidia-nvswitch*).
    # Machines whose switches the driver does not list there (HGX B200, GB200) set it to true.
    enabled: bool | None = None
    unit: str = UNIT
    # The systemctl program; tests point it at a script of their own.
    systemctl: str = "systemctl"
    timeout: timedelta = field(default=timedelta(seconds=10), validator=validators.positive)
    # How long the service may be other than active before it is reported: it starts after the
    # driver at boot, and a restart takes a few seconds.
    grace: timedelta = field(default=timedelta(minutes=2), validator=validators.not_negative)
    repeat_every: timedelta = field(default=timedelta(minutes=5), validator=validators.positive)


class FabricManagerCheck:
    """Reports a fabric manager that has not been active for `grace`, or that systemd lacks."""

    Settings = FabricManagerCheckSettings

    def __init__(
        self, settings: FabricManagerCheckSettings, *, wall_clock: WallClock = _utc_now
    ) -> None:
        self.settings = settings
        self._enabled = settings.enabled
        self._repeats = Repeats(settings.repeat_every.total_seconds())
        self._wall_clock = wall_clock
        self._down_since: float | None = None

    async def run(self, gpus: Sequence[GpuSample]) -> list[HealthEvent]:
        import trio

        if self._enabled is None:
            self._enabled = has_nvswitches()  # one look at /dev, once
        if not self._enabled:
            return []
        try:
            state = await self._show()
        except _Unknown as exc:
            if not self._repeats.due(("failed",), ongoing=True, news=False, signature=str(exc)):
                return []
            return [
                HealthEvent(
                    type=HealthEventType.CHECK_FAILED,
                    time=self._wall_clock(),
                    message=f"could not read the state of {self.settings.unit}: {exc}",
                    details={"check": "fabricmanager"},
                )
            ]
        self._repeats.due(("failed",), ongoing=False, news=False, signature=None)
        return self._judge(state, trio.current_time())

    def _judge(self, state: dict[str, str], now: float) -> list[HealthEvent]:
        active = state.get("ActiveState", "")
        sub = state.get("SubState", "")
        loaded = state.get("LoadState", "")
        late = False
        if active == "active" and loaded != "not-found":
            self._down_since = None
        else:
            if self._down_since is None:
                self._down_since = now
            # A unit systemd does not know is not coming: it gets no grace.
            grace = self.settings.grace.total_seconds()
            late = loaded == "not-found" or now - self._down_since >= grace
        signature = (active, sub, loaded)
        if not self._repeats.due(("down",), ongoing=late, news=False, signature=signature):
            return []
        if loaded == "not-found":
            message = f"{self.settings.unit} is not installed: the NVSwitches are not set up"
        else:
            message = (
                f"{self.settings.unit} is {active} ({sub}), not active: "
                "the NVSwitches are not managed, and CUDA fails on this machine"
            )
        return [
            HealthEvent(
                type=HealthEventType.FABRIC_MANAGER,
                time=self._wall_clock(),
                message=message,
                details={
                    "unit": self.settings.unit,
                    "active_state": active,
                    "sub_state": sub,
                    "load_state": loaded,
                },
            )
        ]

    async def _show(self) -> dict[str, str]:
        import trio

        command = [
            self.settings.systemctl,
            "show",
            "--property=ActiveState,SubState,LoadState",
            self.settings.unit,
        ]
        try:
            with trio.fail_after(self.settings.timeout.total_seconds()):
                done = await trio.run_process(
                    command,
                    capture_stdout=True,
                    capture_stderr=True,
                    check=False,
                    deliver_cancel=_kill,
                )
        except trio.TooSlowError:
            seconds = self.settings.timeout.total_seconds()
            raise _Unknown(f"{command[0]} gave no answer within {seconds:g}s") from None
        except OSError as exc:
            raise _Unknown(f"{command[0]}: {exc}") from None
        if done.returncode != 0:
            error = done.stderr.decode(errors="replace").strip().splitlines()
            raise _Unknown(
                f"{command[0]} exited with {done.returncode}" + (f": {error[-1]}" if error else "")
            )
        state: dict[str, str] = {}
        for line in done.stdout.decode(errors="replace").splitlines():
            key, sep, value = line.partition("=")
            if sep:
                state[key.strip()] = value.strip()
        if "ActiveState" not in state:
            shown = done.stdout.decode(errors="replace")[:80]
            raise _Unknown(f"{command[0]} gave no ActiveState: {shown!r}")
        return state


async def _kill(process: trio.Process) -> None:
    # `systemctl show` changes nothing, so a late one is killed at once.
    process.kill()


class _Unknown(Exception):
    """The unit's state could not be read."""
