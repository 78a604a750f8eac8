"""CPU and memory use of the machine, read from /proc: two small files per heartbeat."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class HostStats(Protocol):
    def read(self) -> tuple[float, float]:
        """(CPU busy percent since the previous call, memory used percent)."""
        ...


class ProcHostStats:
    """Reads /proc/stat and /proc/meminfo. CPU use is measured between consecutive calls."""

    def __init__(self, proc: Path = Path("/proc")) -> None:
        self._stat = proc / "stat"
        self._meminfo = proc / "meminfo"
        self._last = self._cpu_times()

    def read(self) -> tuple[float, float]:
        return self._cpu_percent(), self._memory_percent()

    def _cpu_times(self) -> tuple[int, int] | None:
        """(busy, total) jiffies over all CPUs, or None where /proc is not readable."""
        try:
            with open(self._stat, "rb") as f:
                fields = f.readline().split()
        except OSError:
            return None
        if not fields or fields[0] != b"cpu":
            return None
        values = [int(v) for v in fields[1:]]
        # user nice system idle iowait irq softirq steal [guest guest_nice]; guest time is already
        # counted in user and nice.
        total = sum(values[:8])
        idle = values[3] + (values[4] if len(values) > 4 else 0)
        return total - idle, total

    def _cpu_percent(self) -> float:
        now = self._cpu_times()
        last, self._last = self._last, now
        if now is None or last is None or now[1] <= last[1]:
            return 0.0
        return round(100.0 * (now[0] - last[0]) / (now[1] - last[1]), 1)

    def _memory_percent(self) -> float:
        total = available = None
        try:
            with open(self._meminfo, "rb") as f:
                for line in f:
                    if line.startswith(b"MemTotal:"):
                        total = int(line.split()[1])
                    elif line.startswith(b"MemAvailable:"):
                        available = int(line.split()[1])
                    if total is not None and available is not None:
                        break
        except OSError:
            return 0.0
        if not total or available is None:
            return 0.0
        return round(100.0 * (total - available) / total, 1)


class FixedHostStats:
    """Constant readings, for simulated machines."""

    def __init__(self, cpu_percent: float = 0.0, memory_percent: float = 0.0) -> None:
        self.cpu_percent = cpu_percent
        self.memory_percent = memory_percent

    def read(self) -> tuple[float, float]:
        return self.cpu_percent, self.memory_percent
