"""The InfiniBand ports of a simulated machine, read by the built-in `infiniband` check.

A machine has `PORTS` NDR ports (`mlx5_0` to `mlx5_7`, port 1, 400 Gb/s). An `ib_port_down`
failure takes one down, as a pulled cable or a failing transceiver does: the port goes DOWN
(Disabled) and its `link_downed` counter rises; when the failure recovers the port comes back
ACTIVE. A flapping link is a failure injected and recovered again and again. The check is the real
one (`InfinibandCheck.judge`), fed these readings instead of sysfs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

import trio

from navarch.plugins import HealthEvent
from navarch.plugins.builtin.health_checks import InfinibandCheck, InfinibandCheckSettings
from navarch.plugins.builtin.health_checks.infiniband import PortReading
from navarch.plugins.telemetry import GpuSample

PORTS = 8
RATE_GBPS = 400.0


class SimulatedInfiniband:
    def __init__(self) -> None:
        self._down: set[int] = set()
        self._link_downed = [0] * PORTS

    def take_down(self, port: int) -> None:
        if port not in self._down:
            self._down.add(port)
            self._link_downed[port] += 1

    def bring_up(self, port: int) -> None:
        self._down.discard(port)

    def readings(self) -> list[PortReading]:
        return [
            PortReading(
                device=f"mlx5_{index}",
                port="1",
                state="DOWN" if index in self._down else "ACTIVE",
                phys_state="Disabled" if index in self._down else "LinkUp",
                rate_gbps=RATE_GBPS,
                counters={"link_downed": self._link_downed[index]},
            )
            for index in range(PORTS)
        ]

    def check(self, wall_clock: Callable[[], datetime]) -> InfinibandCheck:
        return _SimulatedPortsCheck(self, wall_clock)


class _SimulatedPortsCheck(InfinibandCheck):
    def __init__(self, ports: SimulatedInfiniband, wall_clock: Callable[[], datetime]) -> None:
        settings = InfinibandCheckSettings(expected_rate_gbps=RATE_GBPS)
        super().__init__(settings, wall_clock=wall_clock)
        self._ports = ports

    async def run(self, gpus: Sequence[GpuSample]) -> list[HealthEvent]:
        await trio.lowlevel.checkpoint()
        return self.judge(self._ports.readings())
